"""Stage 1 (the paper's fine-tuning before TTT): train a base model on many ARC-style tasks in the
same text format and augmentations as TTT, loss on the outputs. Full fine-tuning (small models, or
from scratch with the character tokenizer) or LoRA merged into the base at the end; PEFT or plain
torch, Unsloth for LoRA on a GPU. Resumable: OUT/checkpoint holds weights, optimiser and step, and
the data of step s is a pure function of (seed, s), so a resumed run sees exactly the same batches.
Writes a standard HF folder that `run --model OUT` accepts.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from submission.arc.augment import permute, random_transform, transform_pair
from submission.arc.data import BUNDLED, Pair, load_challenges, load_solutions, solutions_for
from submission.arc.formats import check_format_tokenizer
from submission.arc.grid import grid_problem, to_grid
from submission.arc.synth.generate import SPLIT_VERSION, generate_task
from submission.arc.ttt.data import LOSS_MODES, fit_context, render_example
from submission.engines.api import TrainExample
from submission.engines.stage1 import checkpoint, load_model
from submission.engines.train_loop import NaNLossError, encode, pad_batch
from submission.knobs import check_choices, knob
from submission.pipeline.presets import preset_format


@dataclass(frozen=True)
class FinetuneConfig:
    """Stage-1 fine-tuning. Defaults train the embedded tiny model from scratch on CPU."""

    model: str = knob("scratch", "a local HF causal-LM folder, or 'scratch': a new Llama of the --scratch-* shape")
    out: str = knob("runs/finetune", "the HF model folder to write; checkpoints go to OUT/checkpoint")
    preset: str = knob("compact", "the text format to train in: compact (this project's) | nvarc | architects | marc",
                       ("compact", "nvarc", "architects", "marc"))
    data: str = knob("generated", "comma-separated: generated | arc1-train (any bundled set) | a challenges .json")
    steps: int = knob(3000, "optimiser steps")
    batch_tokens: int = knob(8192, "padded tokens per optimiser step")
    learning_rate: float = knob(1e-3, "1e-3 for a tiny model from scratch; ~1e-4 for LoRA on a real model")
    warmup_steps: int = knob(100, "linear warmup, then cosine decay to 10%")
    weight_decay: float = knob(0.01, "AdamW weight decay")
    lora_rank: int = knob(0, "0: full fine-tuning; >0: LoRA of this rank, merged into the base at the end")
    lora_alpha: int = knob(16, "LoRA alpha")
    trainer: str = knob("auto", "auto (torch for full fine-tuning; Unsloth for LoRA on a GPU when installed, "
                                "else PEFT) | torch | peft | unsloth", ("auto", "torch", "peft", "unsloth"))
    loss_mode: str = knob("all_but_first", "all | all_but_first | query (as for TTT)", LOSS_MODES)
    max_tokens: int = knob(2048, "per example; larger context demos are dropped")
    max_side: int = knob(10, "generated tasks: input grid sides 3..max_side")
    checkpoint_every: int = knob(250, "steps between checkpoints (and at the end)")
    scratch_hidden: int = knob(256, "--model scratch: width (head_dim = hidden / heads must be >= 32 for vLLM-CPU)")
    scratch_layers: int = knob(4, "--model scratch: layers")
    scratch_heads: int = knob(8, "--model scratch: attention heads")
    dtype: str = knob("auto", "auto: bf16 on Ampere+, fp16 on T4, fp32 on CPU", ("auto", "float32", "bfloat16",
                                                                                  "float16"))
    gradient_checkpointing: bool = knob(False, "trade speed for memory")
    threads: int = knob(0, "CPU threads for torch; 0 = torch's default")
    seed: int = knob(0, "seed of the data stream and the initial weights")

    def problems(self) -> list[str]:
        out = check_choices(self)
        out += [f"--{k.replace('_', '-')} must be >= 1" for k in ("steps", "batch_tokens", "checkpoint_every",
                                                                   "max_tokens") if getattr(self, k) < 1]
        return out


class ExampleSource:
    """Training examples as a pure function of (seed, step, index): generated tasks (training-split
    rules only) and/or fixed task files augmented with random D8 x colour transforms and orders."""

    def __init__(self, spec: str, fmt, cfg: FinetuneConfig):
        self.fmt, self.cfg = fmt, cfg
        self.generated = False
        self.tasks: list[list[Pair]] = []
        for part in [p.strip() for p in spec.split(",") if p.strip()]:
            if part == "generated":
                self.generated = True
                continue
            if part not in BUNDLED and not part.endswith(".json"):
                raise ValueError(f"--data {part!r}: give 'generated', a .json file or one of {', '.join(BUNDLED)}")
            ts = load_challenges(part)
            sol_src = solutions_for(part)
            sols = load_solutions(sol_src) if sol_src and (sol_src in BUNDLED or Path(sol_src).is_file()) else {}
            for tid, problem in ts.invalid.items():
                print(f"skipped task {tid!r} in {part}: {problem}", file=sys.stderr)
            for tid, task in ts.tasks.items():
                tests = [Pair(p.input, to_grid(g)) for p, g in zip(task.test, sols.get(tid, []))
                         if grid_problem(g) is None]
                self.tasks.append(list(task.train) + tests)
        if not self.generated and not self.tasks:
            raise ValueError(f"--data {spec!r} gave no training tasks")

    def example(self, step: int, index: int) -> TrainExample:
        rng = np.random.default_rng([self.cfg.seed, step, index])
        if self.generated and (not self.tasks or rng.random() < 0.5):
            task = generate_task(rng, "g", split="train", max_side=self.cfg.max_side)
            pairs = task.train + task.test
        else:
            pairs = self.tasks[int(rng.integers(len(self.tasks)))]
            t = random_transform(rng, "keep0")
            pairs = tuple(transform_pair(t, p) for p in permute(pairs, tuple(rng.permutation(len(pairs)))))
        pairs = fit_context(tuple(pairs), self.cfg.max_tokens, self.fmt) or pairs[-1:]
        ex = render_example(pairs, self.fmt)
        return TrainExample(ex.text, ex.loss_spans(self.cfg.loss_mode))


def batches(source: ExampleSource, tokenizer: Any, cfg: FinetuneConfig, step: int) -> list[tuple[list[int], list[int]]]:
    """The batch of step `step`: examples until the padded batch would exceed batch_tokens."""
    out, width, j = [], 0, 0
    while True:
        enc = encode(tokenizer, source.example(step, j), cfg.max_tokens)
        j += 1
        if enc is None or all(label == -100 for label in enc[1]):
            if j > 1000:
                raise ValueError("no example fits --max-tokens")
            continue
        w = max(width, len(enc[0]))
        if out and w * (len(out) + 1) > cfg.batch_tokens:
            return out
        out.append(enc)
        width = w


# -- the loop ----------------------------------------------------------------------------------------------


def finetune(cfg: FinetuneConfig, argv: list[str] | None = None) -> dict:
    """Train, checkpoint, resume, write the final HF folder to cfg.out; returns the run's stats."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    ckpt = out / "checkpoint"
    state = resume_state(cfg, ckpt)
    model, tokenizer, trainer = load_model(cfg, ckpt if state else None)
    fmt = preset_format(cfg.preset, tokenizer.eos_token)
    check_format_tokenizer(tokenizer, fmt)
    source = ExampleSource(cfg.data, fmt, cfg)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    start = 0
    if state:
        from submission.engines.stage1 import load_optimizer

        load_optimizer(opt, ckpt / "optimizer.safetensors", state["optimizer"])
        start = state["step"]
    history = state["history"] if state else []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.train()
    bar = _progress(cfg.steps, start)
    t0, tokens, losses = time.perf_counter(), 0, []
    for step in range(start, cfg.steps):
        batch = batches(source, tokenizer, cfg, step)
        ids, labels, mask = pad_batch(batch, pad, device)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        if not torch.isfinite(loss):
            raise NaNLossError(f"loss is {loss.item()} at step {step}; lower --learning-rate")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for group in opt.param_groups:  # warmup + cosine, a function of the step alone (exact resume)
            group["lr"] = cfg.learning_rate * lr_factor(step, cfg)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}",
                        tok_s=f"{tokens / (time.perf_counter() - t0):.0f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            history.append({"step": step + 1, "loss": sum(losses[-50:]) / len(losses[-50:]),
                            "elapsed_s": round(time.perf_counter() - t0, 1)})
            checkpoint(model, tokenizer, opt, ckpt, step + 1, asdict(cfg), history)
    bar.close()
    model.eval()
    stats = {"steps": cfg.steps, "resumed_from": start, "trainer": trainer, "tokens_this_session": tokens,
             "train_s_this_session": round(time.perf_counter() - t0, 1),
             "final_loss": history[-1]["loss"] if history else None, "history": history,
             "parameters": sum(p.numel() for p in model.parameters()), "config": asdict(cfg),
             "generator_split_version": SPLIT_VERSION,  # which rules 'generated' data could draw
             "command": "python -m submission finetune " + " ".join(argv if argv is not None else sys.argv[2:])}
    write_final(model.merge_and_unload() if cfg.lora_rank else model, tokenizer, out, stats)
    return stats


def resume_state(cfg: FinetuneConfig, ckpt: Path) -> dict | None:
    """The checkpoint's state when there is one; refuses one written with other settings."""
    if not (ckpt / "state.json").is_file():
        return None
    state = json.loads((ckpt / "state.json").read_text())
    changed = {k for k, v in state["config"].items() if k not in ("steps", "checkpoint_every", "threads")
               and asdict(cfg).get(k) != v}
    if changed:
        raise ValueError(f"{ckpt} was written with different settings ({', '.join(sorted(changed))}); "
                         "use another --out or delete the checkpoint")
    return state


def write_final(model, tokenizer, out: Path, stats: dict) -> None:
    """The final HF folder in OUT (next to checkpoint/ and init/), written aside and moved in."""
    tmp = out.with_name(out.name + ".final-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / "finetune.json").write_text(json.dumps(stats, indent=1))
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()


def lr_factor(step: int, cfg: FinetuneConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def _progress(total: int, start: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="finetune", unit="step", file=sys.stderr,
                mininterval=2.0, dynamic_ncols=True)
