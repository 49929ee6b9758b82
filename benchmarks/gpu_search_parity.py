"""CUDA parity of the HF threshold search (--search dfs, the CPU fallback engine's reference): the same
requests searched on the CPU in fp32, on CUDA in fp32 and on CUDA in the GPU's own dtype (bf16);
equal candidate sets and log-probabilities, and CUDA's greedy vs DFS seconds. Needs a GPU.

    python benchmarks/gpu_search_parity.py [--run RUN] [--jsonl FILE]

RUN: a finished run folder whose adapters the requests use (one task in two keeps the base model);
without it every request is on the base model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))


def requests(model: str, run: str | None, n_tasks: int):
    """Main-phase prompts (8 transforms) of the n smallest ARC-AGI-1 eval tasks as SearchRequests."""
    from submission.arc.data import load_challenges
    from submission.arc.prompts import build_prompts
    from submission.engines.api import SearchRequest
    from submission.pipeline.budget import answer_limit
    from submission.pipeline.start import load_tokenizer_format
    from submission.pipeline.state import RunState

    tok, fmt, dec = load_tokenizer_format(model)
    tasks = load_challenges("arc1-eval").tasks
    small = sorted(t for t, task in tasks.items() if all(max(x.input.shape) <= 6 for x in task.train + task.test))
    state = RunState.load(Path(run)) if run else None
    out = []
    for k, tid in enumerate(small[:n_tasks]):
        adapter = state.adapter(tid) if state and k % 2 == 0 else None
        for q in build_prompts(tasks[tid], 8, 1, fmt, 0):
            ids = tuple(tok(q.text)["input_ids"])
            out.append(SearchRequest(ids, adapter, min(answer_limit(tasks[tid], q.test_index, fmt), 4096 - len(ids)),
                                     1.0, 8))  # min_prob: set per threshold
    return out, dec


def dump(args) -> None:
    """This process's device: search (and time greedy vs DFS) and write the candidates as json."""
    import torch

    from submission.engines.api import GenRequest
    from submission.engines.config import GenerateConfig
    from submission.engines.gen_hf import HfGenerator

    res = {"device": "cuda" if torch.cuda.is_available() else "cpu", "dtype": args.dtype, "probs": {}}
    base, dec = requests(args.model, args.run, args.n_tasks)
    hf = HfGenerator(args.model, GenerateConfig(dtype=args.dtype), dec, batch_size=16)
    for p in map(float, args.probs.split(",")):
        reqs = [replace(r, min_prob=p) for r in base]
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        t0 = time.perf_counter()
        list(hf.generate([GenRequest(r.prompt_ids, r.adapter, r.max_tokens) for r in reqs]))
        sync()
        t1 = time.perf_counter()
        got = dict(hf.search(reqs))
        sync()
        t2 = time.perf_counter()
        found = {str(i): [[list(c.token_ids), c.logprob] for c in cs] for i, cs in got.items()}
        res["probs"][str(p)] = {"greedy_s": t1 - t0, "dfs_s": t2 - t1, "prompts": len(reqs), "found": found}
    Path(args.dump).write_text(json.dumps(res))


def compare(a: dict, b: dict, tol: float) -> dict:
    """Same candidate sets (answers within tol of the threshold aside) and the largest log-prob gap."""
    out = {}
    for p, x in a["probs"].items():
        y, floor = b["probs"][p], math.log(float(p))
        same, gap, n = 0, 0.0, len(x["found"])
        for i, cands in x["found"].items():
            ca = {tuple(t): lp for t, lp in cands if abs(lp - floor) > tol}
            cb = {tuple(t): lp for t, lp in y["found"][i] if abs(lp - floor) > tol}
            same += ca.keys() == cb.keys()
            gap = max([gap, *(abs(ca[k] - cb[k]) for k in ca.keys() & cb.keys())])
        out[p] = {"same_sets": same, "prompts": n, "max_logprob_gap": gap,
                  "answers": sum(len(c) for c in x["found"].values()),
                  "a_greedy_s": x["greedy_s"], "a_dfs_s": x["dfs_s"],
                  "b_greedy_s": y["greedy_s"], "b_dfs_s": y["dfs_s"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "arc-tiny"))
    ap.add_argument("--run", default=None, help="a finished run folder whose adapters the requests use")
    ap.add_argument("--n-tasks", type=int, default=6)
    ap.add_argument("--probs", default="0.2,0.1,0.05")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--dump", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--jsonl", default=None)
    ap.add_argument("--workdir", default="/tmp/search_parity")
    args = ap.parse_args()
    if args.dump:
        return dump(args)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    base = [sys.executable, __file__, "--model", args.model, "--n-tasks", str(args.n_tasks), "--probs", args.probs,
            *(["--run", args.run] if args.run else [])]
    runs = {"cpu_fp32": ({"CUDA_VISIBLE_DEVICES": ""}, "float32"), "cuda_fp32": ({}, "float32"),
            "cuda_auto": ({}, "auto")}
    got = {}
    for name, (env, dtype) in runs.items():
        path = Path(args.workdir) / f"{name}.json"
        subprocess.run([*base, "--dtype", dtype, "--dump", str(path)], check=True, env={**os.environ, **env})
        got[name] = json.loads(path.read_text())
    res = {"kind": "search_parity", "run": args.run, "n_tasks": args.n_tasks,
           "cuda_fp32_vs_cpu": compare(got["cuda_fp32"], got["cpu_fp32"], 1e-4),
           "cuda_auto_vs_cpu": compare(got["cuda_auto"], got["cpu_fp32"], 5e-2)}
    line = json.dumps(res)
    print(line)
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
