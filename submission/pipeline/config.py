"""The run's settings: RunConfig plus the stage configs, resolved once into one frozen bundle.

Resolution order (later wins): dataclass defaults < the preset (--preset, or detected from the model
folder) < MODEL/arc_ttt.json `run_defaults` < flags the user gave. Kaggle paths are applied last.
Every problem with the result is collected and reported in one message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from submission.arc.data import BUNDLED, DataError
from submission.arc.prompts import TRANSFORM_COLORS
from submission.arc.ttt.data import TTTDataConfig
from submission.arc.vote import RULES
from submission.engines.config import GenerateConfig, TrainConfig
from submission.knobs import check_choices, knob
from submission.pipeline.presets import DETECT, PRESETS, pick
from submission.programs.merge import POLICIES

PROFILES = ("", "cpu", "t4x2", "l4x4", "h100")


@dataclass(frozen=True)
class RunConfig:
    challenges: str = knob("arc1-eval", "a *_challenges.json path, 'kaggle', or a bundled set: " + ", ".join(BUNDLED))
    solutions: str | None = knob(None, "answers to score against; default: the bundled answers or the "
                                       "*_solutions.json beside the challenges", answers=False)
    model: str | None = knob(None, "a local HF causal-LM folder; default: the embedded tiny model (models/arc-tiny)",
                             answers=False)
    preset: str = knob(DETECT, f"text format + TTT recipe + inference defaults of a public checkpoint: compact | nvarc "
                               f"| architects | marc; {DETECT}: detected from the model folder, else compact",
                       (DETECT, *PRESETS))
    out: str | None = knob(None, "run folder; default runs/<timestamp>", answers=False)
    submission: str | None = knob(None, "where submission.json goes; default OUT/submission.json", answers=False)
    limit: int = knob(0, "process only the first N valid tasks (0 = all); the submission still lists every task",
                      answers=False)
    tasks: str = knob("", "comma-separated task ids to process", answers=False)
    trainer: str = knob("auto", "auto (Unsloth on a GPU when installed, else PEFT) | unsloth | peft | none (no TTT)",
                        ("auto", "unsloth", "peft", "none"))
    adapter: str = knob("per-task", "per-task (the paper: a fresh LoRA per task) | shared: one LoRA trained on every "
                                    "task's TTT set together (the paper's ablation: -24 % relative)",
                        ("per-task", "shared"))
    engine: str = knob("auto", "auto (vLLM when installed, else HF) | vllm | hf", ("auto", "vllm", "hf"))
    transforms: int = knob(8, "inference transforms per test input: identity, the 7 other D8, then D8 + colour maps")
    transform_colors: str = knob("after_d8", "after_d8: identity, the 7 other D8, then D8 + seeded colour maps | "
                                             "with_d8: identity, then D8 + a seeded colour map each (seeds differ)",
                                 TRANSFORM_COLORS)
    permutations: int = knob(2, "demo orders per transform (the paper's voting uses several)")
    select: str = knob("vote", "vote (the paper's hierarchical vote) | flat | poe (product of experts) | combined | "
                               "identity (no augmentation)", RULES, answers=False)
    program_policy: str = knob("vote", "how verified programs (DSL search, induction) join the model's candidates: "
                                       "vote (each a weighted vote, half the test input's predictions at weight 1: "
                                       "it never passes an answer more than half the predictions agree on) | fill "
                                       "(only an empty or repeated attempt 2) | induction-first (BARC: the top "
                                       "program first) | off (no program search)", POLICIES, answers=False)
    dsl_depth: int = knob(2, "program phase: most DSL primitives composed in one program (deeper finds more, costs "
                             "the library's size to that power)")
    dsl_seconds: float = knob(2.0, "program phase: seconds of DSL search per task (in CPU worker processes; the "
                                   "phase ends at a tenth of a --budget whatever is left)", answers=False)
    program_search: str = knob("auto", "where the DSL search runs: before (a phase before any model starts, cut at "
                                       "a tenth of a --budget) | beside (CPU worker processes beside the GPU phases, "
                                       "to the end of the run) | auto (beside when the GPU workers leave a CPU core "
                                       "spare, else before)", ("auto", "before", "beside"), answers=False)
    induction_model: str = knob("", "induction: a local model folder that writes programs (BARC's "
                                    "Llama-3.1-ARC-Potpourri-Induction-8B); '' = no induction phase")
    induction_samples: int = knob(64, "induction: programs sampled per task (BARC's script: 64)")
    induction_temperature: float = knob(0.8, "induction: sampling temperature (BARC's script: 0.8)")
    induction_max_tokens: int = knob(1536, "induction: most new tokens per sampled program (BARC's script: 1536)")
    induction_library: str = knob("", "induction: a copy of BARC's seeds/common.py for `from common import *` "
                                      "(not shipped: see the README); '' = programs that import it fail, named")
    induction_share: float = knob(0.25, "induction: the share of a --budget the phase may take (its programs "
                                        "found by then are kept)", answers=False)
    score_augmentations: int = knob(8, "PoE: augmentations each candidate is scored under (0 = no scoring phase)")
    score_candidates: int = knob(4, "PoE: top candidates per test input (by vote) that get scored")
    seed: int = knob(0, "seed of every random choice (task i uses seed + i, whatever worker runs it)")
    budget: float = knob(0.0, "seconds for the whole run; 0 = unlimited (on Kaggle: 12 h minus 10 min)", answers=False)
    workers: int = knob(0, "worker processes, one per GPU; 0 = number of visible GPUs (1 on CPU)", answers=False)
    order: str = knob("largest", "the order tasks start TTT from one shared queue: largest (the most planned seconds "
                                 "first: no long task starts last and keeps one GPU busy alone) | file",
                      ("largest", "file"), answers=False)
    quick_transforms: int = knob(2, "phase 1: base-model prompts per test input before any TTT (0 = skip)",
                                 answers=False)
    extra_rounds: int = knob(1, "rounds of extra augmentations for each uncertain task (see --extra-below), least "
                                "certain first, with time the tasks still to train do not need", answers=False)
    extra_below: float = knob(1.0, "a task gets extra rounds when fewer than this share of its answers agree with "
                                   "its top candidate (1.0: any disagreement; 0: never)")
    adapter_disk_gb: float = knob(0.0, "disk for the run's live adapters, GB; 0: the free space of --out's disk at "
                                        "the start, less 10%. Tasks train in waves that fit it; each wave's adapters "
                                        "are deleted once answered", answers=False)
    keep_adapters: bool = knob(False, "keep every adapter after its answers (to reuse with --adapters-from, or to "
                                      "inspect); the disk bound then limits how many tasks train", answers=False)
    chunk_prompts: int = knob(512, "most prompts in one batched engine call", answers=False)
    chunk_seconds: float = knob(60.0, "most predicted seconds in one batched engine call: the cost model re-fits "
                                      "after each (results stream back per finished prompt regardless)", answers=False)
    task_timeout: float = knob(0.0, "seconds per TTT task / engine call before it is killed; 0 = from the cost model",
                               answers=False)
    profile: str = knob("", "cost-model hardware profile: cpu | t4x2 | l4x4 | h100 (default: h100 with a GPU, "
                            "else cpu)", PROFILES, answers=False)
    ttt_tok_s: float = knob(0.0, "override the profile's TTT tokens/s with a measured figure", answers=False)
    prefill_tok_s: float = knob(0.0, "override the profile's prompt tokens/s", answers=False)
    decode_tok_s: float = knob(0.0, "override the profile's generated tokens/s", answers=False)
    executor: str = knob("local", "local: one worker process per GPU of this machine | ray: Ray actors across a "
                                  "cluster (--ray-address)", ("local", "ray"), answers=False)
    ray_address: str = knob("", "the Ray cluster to use with --executor ray (HOST:PORT; empty: start a local one)",
                            answers=False)
    verbose: bool = knob(False, "show engine and library output on the console (default: OUT/engines.log)",
                         answers=False)
    adapters_from: str = knob("", "a finished run folder whose TTT adapters this run answers with (no TTT of its "
                                  "own): its training settings and model must be this run's; inference may differ",
                              answers=False)
    plan_tasks: int = knob(0, "plan only: plan for this many tasks, the selected ones repeated in turn (e.g. 240, the "
                              "hidden ARC-AGI-2 set, planned from the 120 public evaluation tasks); 0: as selected",
                           answers=False)
    deterministic: bool = knob(False, "the same submission whatever --workers, --chunk-* and the task order: seeds by "
                                      "task id, one engine call per task, deterministic torch (slower inference)")
    fresh: bool = knob(False, "start over in an --out that holds another configuration's run: its answers and "
                              "adapters move to OUT/previous-N/ (nothing is deleted)", answers=False)

    def problems(self) -> list[str]:
        out = check_choices(self)
        for name, low in (("limit", 0), ("transforms", 1), ("permutations", 1), ("chunk_prompts", 1),
                          ("budget", 0), ("workers", 0), ("quick_transforms", 0), ("extra_rounds", 0),
                          ("task_timeout", 0), ("score_augmentations", 0), ("score_candidates", 0),
                          ("adapter_disk_gb", 0), ("extra_below", 0), ("dsl_depth", 1)):
            if getattr(self, name) < low:
                out.append(f"--{name.replace('_', '-')} must be >= {low}")
        if self.dsl_seconds <= 0:
            out.append("--dsl-seconds must be > 0")
        if self.induction_model:
            if self.induction_samples < 1 or self.induction_max_tokens < 1:
                out.append("--induction-samples and --induction-max-tokens must be >= 1")
            if self.induction_temperature < 0 or not 0 < self.induction_share <= 1:
                out.append("--induction-temperature must be >= 0 and --induction-share in (0, 1]")
            if not Path(self.induction_model, "config.json").is_file():
                out.append(f"--induction-model {self.induction_model!r}: no config.json there (a local model folder)")
            if self.program_policy == "off":
                out.append("--induction-model with --program-policy off: its programs would never be used")
        if self.induction_library:
            from submission.programs.barc import check_library

            if problem := check_library(self.induction_library):
                out.append(f"--induction-library: {problem}")
        if self.chunk_seconds <= 0:
            out.append("--chunk-seconds must be > 0")
        if self.challenges not in (*BUNDLED, "kaggle") and not self.challenges.endswith(".json"):
            out.append(f"--challenges {self.challenges!r}: give a .json file, 'kaggle' or one of {', '.join(BUNDLED)}")
        return out


SEARCHES = ("greedy", "sample", "dfs")


@dataclass(frozen=True)
class SearchConfig:
    """How answers are looked for, per prompt. The pipeline drives it (infer.py makes a SearchRequest of
    every prompt under dfs; the budget plans its paths); the engines only serve the requests."""

    search: str = knob("greedy", "greedy: one answer per prompt | sample: --n answers at --temperature | dfs: every "
                                 "answer with probability >= --min-prob (exact threshold search, the ARChitects/"
                                 "NVARC candidate pool)", SEARCHES)
    min_prob: float = knob(0.1, "dfs: keep answers at least this probable (raw softmax, stop token included); "
                                "lower finds more candidates and costs up to 1/P greedy paths per prompt "
                                "(the ARChitects 0.09-0.17, NVARC 0.2)")
    max_candidates: int = knob(8, "dfs: at most this many answers per prompt (the most probable): a flat answer "
                                  "distribution stops at the cap")

    def problems(self, gen: GenerateConfig | None = None) -> list[str]:
        out = [] if self.search in SEARCHES else [f"--search {self.search!r}: must be one of {', '.join(SEARCHES)}"]
        if not 0 < self.min_prob <= 1:
            out.append("--min-prob must be in (0, 1]")
        if self.max_candidates < 1:
            out.append("--max-candidates must be >= 1")
        if gen is not None and self.search != "sample" and gen.temperature > 0:
            out.append(f"--temperature > 0 samples: add --search sample (--search {self.search} decodes greedily)")
        if gen is not None and self.search == "sample" and gen.temperature <= 0:
            out.append("--search sample needs --temperature > 0")
        return out


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, resolved once."""

    run: RunConfig
    ttt: TTTDataConfig
    train: TrainConfig
    gen: GenerateConfig
    search: SearchConfig
    applied: dict  # settings taken from the preset and the model folder: {field: value}, printed at start
    preset_source: str  # why this preset: "--preset", "detected in MODEL" or "default"


STAGES = (RunConfig, TTTDataConfig, TrainConfig, GenerateConfig, SearchConfig)
SHARED = {"seed"}  # fields a stage takes from RunConfig, not from its own flag


def model_defaults(model: str) -> dict[str, Any]:
    """What a model folder recommends for itself: MODEL/arc_ttt.json {"run_defaults": {field: value}}."""
    path = Path(model) / "arc_ttt.json"
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text())["run_defaults"]
        assert isinstance(found, dict)
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise DataError(f"{path}: expected {{\"run_defaults\": {{setting: value}}}} "
                        f"({type(e).__name__}: {e})") from None
    known = {f.name for cls in STAGES for f in fields(cls)}
    unknown = sorted(set(found) - known)
    if unknown:
        raise DataError(f"{path}: run_defaults has unknown settings: {', '.join(unknown)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in found.items()}


def resolve(given: dict[str, Any]) -> Settings:
    """Flags the user gave ({field: value}) + the model's recommendations + the preset + defaults ->
    Settings. Raises DataError listing every problem at once."""
    from submission.engines.tiny_model import default_model

    model = given.get("model") or str(default_model())
    try:
        preset, why = pick(given.get("preset"), model)
    except ValueError as e:
        raise DataError(f"--preset: {e}") from None
    from_preset = {k: v for k, v in PRESETS[preset].settings().items() if k not in given}
    # the default model's own recommendations are for the default model: a named preset without --model
    # (a plan for a public checkpoint) takes the preset's recipe, not the tiny model's
    own = model_defaults(model) if given.get("model") or why != "--preset" else {}
    from_model = {k: v for k, v in own.items() if k not in given}
    recommended = {**from_preset, **from_model}
    values = {**recommended, **given, "model": model, "preset": preset}
    built = {}
    for cls in STAGES:
        names = {f.name for f in fields(cls)}
        built[cls] = cls(**{k: v for k, v in values.items() if k in names and (cls is RunConfig or k not in SHARED)})
    run, ttt, train, gen = built[RunConfig], built[TTTDataConfig], built[TrainConfig], built[GenerateConfig]
    gen, search = replace(gen, seed=run.seed), built[SearchConfig]
    problems = [p for c in (run, ttt, train, gen) for p in c.problems()] + search.problems(gen)
    if problems:
        raise DataError("bad arguments:\n  " + "\n  ".join(problems))
    if run.challenges == "kaggle":
        from submission.pipeline.kaggle import resolve as kaggle_resolve

        run = kaggle_resolve(run)
    return Settings(run, ttt, train, gen, search, from_model, why)
