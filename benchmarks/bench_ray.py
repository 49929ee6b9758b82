"""--executor ray against the local pool, and what a cluster buys for the 400-task ARC-AGI-1 dry run.

1. Measured: the same tasks (the 10 smallest ARC-AGI-1 eval tasks) run with the local pool and with
   Ray actors on a local cluster (`ray start --head`, 2 CPU slots, started and torn down here), both
   with 2 workers and OMP_NUM_THREADS=1 (Ray gives a 1-CPU actor one thread; the local workers must
   match or the ratio measures thread oversubscription, not the executor). Prints both walls, the
   ratio, Ray's extra seconds, and whether the submissions are identical.
2. Paper estimate: the run's own plan (token counts per task, the h100 profile for an 8B model,
   the preset's TTT recipe) scheduled on 1, 4 and 16 GPUs: TTT tasks longest-first onto the least
   loaded GPU, inference split evenly, two engine starts per actor, the measured Ray overhead (per run),
   and the adapter bytes a multi-node cluster moves.

    python benchmarks/bench_ray.py [--tasks 10] [--repeats 2] [--presets marc,architects] [--skip-measure]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
PORT = 6398
RUN = ["--engine", "hf", "--trainer", "peft", "--epochs", "1", "--max-examples", "8", "--transforms", "2",
       "--permutations", "1", "--quick-transforms", "0", "--score-augmentations", "0", "--extra-rounds", "0",
       "--workers", "2"]
LLAMA3_8B = {"layers": 32, "hidden": 4096, "kv": 1024, "mlp": 14336}  # MARC's base model
NET_GB_S = 1.25  # 10 GbE between nodes


def smallest_tasks(n: int, folder: Path) -> Path:
    """The n ARC-AGI-1 eval tasks with the fewest cells, as a challenges file with its solutions."""
    from submission.arc.data import _raw_bundled

    raw = _raw_bundled("arc1-eval")
    size = {t: sum(len(g) * len(g[0]) for p in v["train"] + v["test"] for g in p.values()) for t, v in raw.items()}
    ids = sorted(raw, key=lambda t: (size[t], t))[:n]
    (folder / "b_solutions.json").write_text(json.dumps({t: [p["output"] for p in raw[t]["test"]] for t in ids}))
    path = folder / "b_challenges.json"
    path.write_text(json.dumps({t: {"train": raw[t]["train"], "test": [{"input": p["input"]} for p in raw[t]["test"]]}
                                for t in ids}))
    return path


def start_cluster(temp: Path, env: dict) -> subprocess.Popen:
    head = subprocess.Popen(["ray", "start", "--head", "--block", "--port", str(PORT), "--num-cpus", "2",
                             "--include-dashboard=false", "--disable-usage-stats", "--ray-client-server-port",
                             str(PORT + 1), "--dashboard-agent-listen-port", str(PORT + 2), "--temp-dir", str(temp)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t = time.monotonic()
    while subprocess.run(["ray", "status", "--address", f"127.0.0.1:{PORT}"], env=env,
                         capture_output=True).returncode != 0:
        if time.monotonic() - t > 120:
            raise SystemExit("the Ray head did not come up in 120 s")
        time.sleep(1)
    return head


def stop_cluster(head: subprocess.Popen) -> None:
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(15)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def one_run(challenges: Path, out: Path, extra: list[str], env: dict) -> tuple[float, dict]:
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "submission", "run", "--challenges", str(challenges), "--out", str(out),
                        *RUN, *extra], env=env, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"run failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return time.monotonic() - t, json.loads((out / "summary.json").read_text())


def measure(n_tasks: int, repeats: int) -> float:
    """Both executors on the same tasks, in alternating order (local first, then ray first: the shared
    machine's load drifts); returns Ray's extra seconds per run (0 if it was faster)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    challenges = smallest_tasks(n_tasks, tmp)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    ray_args = ["--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}"]
    walls, subs = {"local": [], "ray": []}, set()
    print(f"{n_tasks} tasks, 2 workers, OMP_NUM_THREADS=1, HF engine, PEFT TTT (--epochs 1 --max-examples 8)")
    print(f"{'executor':<8} {'wall s':>7} {'ttt s':>6} {'main s':>7} {'score':>6}")
    head = start_cluster(tmp / "ray", env)
    try:
        for r in range(repeats):
            for name in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
                out = tmp / f"{name}{r}"
                wall, s = one_run(challenges, out, ray_args if name == "ray" else [], env)
                walls[name].append(wall)
                subs.add((out / "submission.json").read_text())
                print(f"{name:<8} {wall:>7.1f} {s['times_s'].get('ttt', 0):>6.1f} {s['times_s'].get('main', 0):>7.1f} "
                      f"{s.get('score', 0):>6.3f}")
    finally:
        stop_cluster(head)
        shutil.rmtree(tmp, ignore_errors=True)  # the run folders and the cluster's session logs
    ray_s, local_s = sum(walls["ray"]) / repeats, sum(walls["local"]) / repeats
    pairs = ", ".join(f"{a / b:.2f}" for a, b in zip(walls["ray"], walls["local"]))
    print(f"ratio ray/local: {ray_s / local_s:.2f} (per pair: {pairs}); Ray {ray_s - local_s:+.1f} s per run, "
          f"{(ray_s - local_s) / n_tasks:+.2f} s per task; identical submissions: {len(subs) == 1}")
    return max(0.0, ray_s - local_s)


def lora_bytes(rank: int) -> int:
    """bf16 bytes of a LoRA on all seven projections of Llama-3-8B: r x (in + out) per matrix."""
    h, kv, m = LLAMA3_8B["hidden"], LLAMA3_8B["kv"], LLAMA3_8B["mlp"]
    per_rank = (h + h) * 2 + (h + kv) * 2 + (h + m) * 2 + (m + h)
    return 2 * rank * per_rank * LLAMA3_8B["layers"]


def makespan(times: list[float], gpus: int) -> float:
    """Longest-first onto the least loaded GPU: what the pool's queue does, give or take the order."""
    loads = [0.0] * gpus
    for t in sorted(times, reverse=True):
        heapq.heapreplace(loads, loads[0] + t)
    return max(loads)


def estimate(preset: str, overhead_s: float) -> None:
    from submission.arc.data import load_challenges
    from submission.arc.formats import make_format
    from submission.pipeline.budget import PROFILES, plan_task
    from submission.pipeline.config import resolve
    from submission.pipeline.presets import PRESETS

    settings = resolve({"challenges": "arc1-eval", "preset": preset, "model": tempfile.mkdtemp()})
    tasks = load_challenges("arc1-eval")
    fmt = make_format(PRESETS[preset].format, eos="</s>")
    p = PROFILES["h100"]
    plans = [plan_task(tasks.tasks[t], settings.ttt, settings.train.epochs, settings.run.transforms,
                       settings.run.permutations, fmt, i) for i, t in enumerate(tasks.ids)]
    ttt, infer = [x.ttt_s(p) for x in plans], sum(x.infer_s(p) for x in plans)
    adapter = lora_bytes(settings.train.lora_rank)
    print(f"\n{preset}: {len(plans)} ARC-AGI-1 eval tasks, 8B on H100 ({p.note}); rank {settings.train.lora_rank}, "
          f"{settings.train.epochs} epochs, {settings.run.transforms} transforms x {settings.run.permutations} orders")
    print(f"  serial: TTT {sum(ttt) / 3600:.1f} h + inference {infer / 3600:.1f} h; "
          f"adapter {adapter / 1e6:.0f} MB bf16 (Llama-3-8B shapes)")
    print(f"  {'GPUs':>4} {'wall h':>7} {'TTT h':>6} {'infer h':>7} {'starts min':>10} {'Ray min':>7} "
          f"{'adapters min':>12}")
    for n in (1, 4, 16):
        t_ttt, t_inf, starts = makespan(ttt, n), infer / n, 2 * p.engine_start_s
        ray = overhead_s  # measured: joining the cluster and starting actors, a per-run cost
        # off the driver's node every adapter comes back once, and a gen actor may serve all of them
        # (breadth-first engine calls mix tasks): two node ingresses, added as if nothing overlapped
        net = 0.0 if n == 1 else 2 * len(plans) * adapter / (NET_GB_S * 1e9)
        wall = t_ttt + t_inf + starts + ray + net
        print(f"  {n:>4} {wall / 3600:>7.2f} {t_ttt / 3600:>6.2f} {t_inf / 3600:>7.2f} {starts / 60:>10.1f} "
              f"{ray / 60:>7.1f} {net / 60:>12.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2, help="runs per executor, the order alternating")
    ap.add_argument("--presets", default="marc,architects")
    ap.add_argument("--skip-measure", action="store_true", help="only the paper estimate (0 s Ray overhead)")
    args = ap.parse_args()
    overhead = 0.0 if args.skip_measure else measure(args.tasks, args.repeats)
    for preset in args.presets.split(","):
        estimate(preset, overhead)


if __name__ == "__main__":
    main()
