"""`python -m submission sweep`: one task set under a grid of run settings, one run folder per cell,
then one table and a plot of score against time. The tool for tuning time budgets per task.

    python -m submission sweep --grid "budget=120,240;transforms=2,4" --out sweeps/b -- --limit 20
    python -m submission sweep --grid "lora_rank=16,32" --executor ray --ray-address HOST:PORT -- --limit 100

Each cell is `python -m submission run <flags after --> <cell flags> --out SWEEP/<cell>`, in its own
process (a crash costs that cell only). Locally the cells run one after another; on a Ray cluster
they run at once, the cluster's slots split between them (ARC_TTT_RAY_ACTORS). A cell whose folder
has summary.json is finished and kept: the same command resumes a sweep. Writes SWEEP/sweep.csv,
SWEEP/score_vs_time.png and SWEEP/index.html.

Columns: score (the leaderboard rule), cell accuracy (per test output, the fraction of cells of
attempt 1 equal to the solution, 0 when the shape differs; averaged per task, then over tasks, as
the score is), wall seconds (the run's own clock), GPU-seconds (workers x wall: worker-seconds on
CPU), and the cell's settings.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import html
import io
import itertools
import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path

from submission.arc.data import DataError, load_solutions, solutions_for

RESERVED = {"out", "submission", "executor", "ray_address"}  # the sweep sets these per cell
COLUMNS = ("cell", "status", "score", "cell_accuracy", "wall_s", "gpu_s", "workers")


@dataclass
class Cell:
    name: str
    settings: dict[str, str]  # flag (snake_case) -> value as given
    out: Path
    workers: int = 0  # actors given to a Ray cell (0: the run decides)
    row: dict = field(default_factory=dict)


def parse_grid(text: str, known: set[str]) -> dict[str, list[str]]:
    """'budget=120,240;transforms=2,4' -> {'budget': ['120', '240'], 'transforms': ['2', '4']}; every
    problem reported at once."""
    grid, problems = {}, []
    for part in (p.strip() for p in text.split(";") if p.strip()):
        key, _, values = part.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if key not in known:
            problems.append(f"--grid {key!r}: not a run setting (see python -m submission run --help)")
        elif key in RESERVED:
            problems.append(f"--grid {key!r}: set by the sweep itself")
        elif key in grid:
            problems.append(f"--grid {key!r}: given twice")
        elif not vals:
            problems.append(f"--grid {key!r}: no values (write {key}=A,B)")
        else:
            grid[key] = vals
    if not grid and not problems:
        problems.append("--grid: no settings (e.g. --grid \"budget=120,240;transforms=2,4\")")
    if problems:
        raise DataError("bad arguments:\n  " + "\n  ".join(problems))
    return grid


def cell_name(settings: dict[str, str]) -> str:
    """A folder name that says the settings: budget-120_transforms-2."""
    return "_".join(f"{k}-{re.sub(r'[^A-Za-z0-9.+-]', '', v)}" for k, v in settings.items())


def make_cells(grid: dict[str, list[str]], out: Path) -> list[Cell]:
    combos = [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())]
    return [Cell(cell_name(c), c, out / cell_name(c)) for c in combos]


def cell_flags(cell: Cell) -> list[str]:
    return [x for k, v in cell.settings.items() for x in (f"--{k.replace('_', '-')}", v)]


def check_cells(cells: list[Cell], base: list[str]) -> None:
    """Parse and resolve every cell's run settings before anything runs, as `run` would."""
    from submission.cli.args import add_run_args, given
    from submission.pipeline.config import STAGES, resolve

    problems = []
    parser = argparse.ArgumentParser(prog="python -m submission run")
    add_run_args(parser)  # the flags `run` has, from the same definitions (not the whole command line)
    for cell in cells:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):  # argparse prints its usage and exits on a bad flag
                args = parser.parse_args([*base, *cell_flags(cell)])
            resolve(given(args, STAGES))
        except SystemExit:
            problems.append(f"cell {cell.name}: {err.getvalue().strip().splitlines()[-1]}")
        except DataError as e:
            problems.append(f"cell {cell.name}: {str(e).strip()}")
    if problems:
        raise DataError("\n".join(problems))


def run_command(cell: Cell, base: list[str], address: str) -> list[str]:
    ray = ["--executor", "ray", "--ray-address", address] if address else []
    return [sys.executable, "-m", "submission", "run", *base, *cell_flags(cell), *ray, "--out", str(cell.out)]


def launch(cell: Cell, base: list[str], address: str) -> subprocess.Popen:
    cell.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **({"ARC_TTT_RAY_ACTORS": str(cell.workers)} if cell.workers else {})}
    log = open(cell.out / "sweep.log", "w")  # the run's console; the child keeps its own copy of the fd
    with log:
        return subprocess.Popen(run_command(cell, base, address), stdout=log, stderr=subprocess.STDOUT, env=env)


def execute(cells: list[Cell], base: list[str], address: str, parallel: int) -> None:
    """Run the unfinished cells, `parallel` at a time; each leaves its exit code in SWEEP/<cell>/sweep.json."""
    todo = [c for c in cells if not (c.out / "summary.json").is_file()]
    for c in cells:
        if c not in todo:
            print(f"{c.name}: finished before, kept")
    running: dict[str, tuple[Cell, subprocess.Popen, float]] = {}
    while todo or running:
        while todo and len(running) < parallel:
            cell = todo.pop(0)
            print(f"{cell.name}: running -> {cell.out}")
            running[cell.name] = (cell, launch(cell, base, address), time.monotonic())
        time.sleep(0.5)
        for name, (cell, proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            wall = round(time.monotonic() - t0, 2)
            (cell.out / "sweep.json").write_text(json.dumps({"returncode": proc.returncode, "process_wall_s": wall,
                                                             "ray_actors": cell.workers, "settings": cell.settings}))
            print(f"{cell.name}: " + ("done" if proc.returncode == 0 else
                                      f"FAILED (exit {proc.returncode}), see {cell.out / 'sweep.log'}") + f", {wall} s")


def cell_accuracy(submission: dict, solutions: dict, task_ids: list[str]) -> float:
    """Mean over tasks of the mean over test outputs of the fraction of attempt-1 cells that are right
    (0 for a wrong shape or a missing attempt)."""
    per_task = []
    for tid in task_ids:
        accs = []
        for i, truth in enumerate(solutions[tid]):
            tests = submission.get(tid) or []
            guess = tests[i].get("attempt_1") if i < len(tests) and isinstance(tests[i], dict) else None
            same = (isinstance(guess, list) and len(guess) == len(truth)
                    and all(isinstance(g, list) and len(g) == len(t) for g, t in zip(guess, truth)))
            cells = sum(len(row) for row in truth)
            accs.append(sum(a == b for g, t in zip(guess, truth) for a, b in zip(g, t)) / cells if same else 0.0)
        per_task.append(sum(accs) / len(accs) if accs else 0.0)
    return sum(per_task) / len(per_task) if per_task else 0.0


def collect(cell: Cell) -> dict:
    """The cell's row of the table, from its run folder."""
    row = {"cell": cell.name, "status": "not run", **cell.settings}
    meta_path, summary_path = cell.out / "sweep.json", cell.out / "summary.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if not summary_path.is_file():
        if meta:
            row["status"] = f"failed (exit {meta['returncode']})"
        return row
    summary = json.loads(summary_path.read_text())
    cfg = summary["config"]["run"]
    workers = meta.get("ray_actors") or summary.get("workers", 1)
    wall = summary["times_s"]["total"]
    row.update(status="ok", wall_s=round(wall, 1), gpu_s=round(workers * wall, 1), workers=workers)
    sol_source = cfg.get("solutions") or solutions_for(cfg["challenges"])
    if sol_source:
        ids = [json.loads(line)["task_id"] for line in (cell.out / "results.jsonl").read_text().splitlines()]
        sub = json.loads(Path(cfg.get("submission") or cell.out / "submission.json").read_text())
        sols = load_solutions(sol_source)
        row["score"] = round(summary.get("score", 0.0), 4)
        row["cell_accuracy"] = round(cell_accuracy(sub, sols, [t for t in ids if t in sols]), 4)
    return row


def format_table(rows: list[dict], keys: list[str]) -> str:
    cols = [*COLUMNS, *keys]
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(xs, widths)).rstrip() for xs in [cols, *cells])


def write_csv(path: Path, rows: list[dict], keys: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*COLUMNS, *keys], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def plot(path: Path, rows: list[dict], keys: list[str]) -> str:
    """Score against wall seconds, one point per finished cell labelled with its values; matplotlib
    when installed, else unlabelled points on axes from a tiny PNG writer. Returns which was used."""
    pts = [(r["wall_s"], r["score"], "/".join(r[k] for k in keys)) for r in rows if "score" in r]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        write_png(path, scatter_pixels([(x, y) for x, y, _ in pts]))
        return "png"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts])
    for x, y, name in pts:
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("wall seconds")
    ax.set_ylabel("score")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"score against time; points: {'/'.join(keys)}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return "matplotlib"


W, H, PAD = 480, 320, 30  # the fallback plot's size and margin in pixels


def scatter_pixels(pts: list[tuple[float, float]]) -> list[bytearray]:
    """White canvas, black axes from the origin, a blue 5x5 square per point (x from 0 to the max,
    y = score from 0 to 1)."""
    rows = [bytearray(b"\xff" * (3 * W)) for _ in range(H)]

    def dot(x: int, y: int, rgb: bytes) -> None:
        if 0 <= x < W and 0 <= y < H:
            rows[y][3 * x: 3 * x + 3] = rgb

    for x in range(PAD, W - PAD // 2):
        dot(x, H - PAD, b"\x00\x00\x00")
    for y in range(PAD // 2, H - PAD + 1):
        dot(PAD, y, b"\x00\x00\x00")
    xmax = max((x for x, _ in pts), default=1.0) or 1.0
    for x, y in pts:
        px = PAD + round(x / xmax * (W - 2 * PAD))
        py = H - PAD - round(max(0.0, min(1.0, y)) * (H - 2 * PAD))
        for dx in range(-2, 3):
            for dy in range(-2, 3):
                dot(px + dx, py + dy, b"\x1f\x5f\xbf")
    return rows


def write_png(path: Path, rows: list[bytearray]) -> None:
    """An 8-bit RGB PNG from rows of pixels (filter 0 per row), standard library only."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    ihdr = struct.pack(">IIBBBBB", len(rows[0]) // 3, len(rows), 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
                     + chunk(b"IEND", b""))


def write_html(path: Path, rows: list[dict], keys: list[str], png: str, title: str) -> None:
    cols = [*COLUMNS, *keys]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    path.write_text(f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style>"
                    f"<h1>{html.escape(title)}</h1><img src='{png}' alt='score against wall seconds'>"
                    f"<table><tr>{head}</tr>{body}</table>", encoding="utf-8")


def ray_slots(address: str) -> tuple[str, int]:
    """Join (or start) the cluster for the sweep's lifetime: its address for the runs, and its slots
    (GPUs, else CPUs)."""
    from submission.pipeline.pool.ray_pool import connect, ray

    connect(address, to_console=False)
    res = ray.cluster_resources()
    return ray.get_runtime_context().gcs_address, int(res.get("GPU", 0) or res.get("CPU", 1))


def sweep(grid_text: str, out: Path, base: list[str], executor: str, address: str, parallel: int) -> list[dict]:
    from submission.pipeline.config import STAGES

    if bad := [a for a in base if a.startswith("--") and a[2:].replace("-", "_").split("=")[0] in RESERVED]:
        raise DataError(f"flags after --: {', '.join(bad)} are set by the sweep (use --out / --executor of sweep)")
    grid = parse_grid(grid_text, {f.name for cls in STAGES for f in fields(cls)})
    cells = make_cells(grid, out)
    check_cells(cells, base)
    out.mkdir(parents=True, exist_ok=True)
    if executor == "ray":
        address, slots = ray_slots(address)
        parallel = parallel or min(len(cells), slots)
        for c in cells:
            c.workers = max(1, slots // parallel)
        print(f"sweep: {len(cells)} cells on the Ray cluster at {address} ({slots} slots), {parallel} at a time, "
              f"{cells[0].workers} actor(s) each")
    else:
        address, parallel = "", parallel or 1
    (out / "sweep_grid.json").write_text(json.dumps({"grid": grid, "base": base, "executor": executor}, indent=1))
    execute(cells, base, address, parallel)
    rows = [collect(c) for c in cells]
    keys = list(grid)
    print(format_table(rows, keys))
    write_csv(out / "sweep.csv", rows, keys)
    used = plot(out / "score_vs_time.png", rows, keys)
    write_html(out / "index.html", rows, keys, "score_vs_time.png", f"sweep {out.name}: {grid_text}")
    print(f"wrote {out / 'sweep.csv'}, {out / 'score_vs_time.png'} ({used}) and {out / 'index.html'}")
    return rows


def cmd_sweep(args: argparse.Namespace) -> int:
    base = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    rows = sweep(args.grid, Path(args.out), base, args.executor, args.ray_address, args.parallel)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run one task set under a grid of settings: a table and a plot of score "
                                     "against time (time-budget tuning)")
    p.add_argument("--grid", required=True, help="settings and their values: \"budget=120,240;transforms=2,4\" "
                                                 "(any run flag, with _ or -)")
    p.add_argument("--out", required=True, help="sweep folder: one run folder per cell, sweep.csv, the plot")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local: cells one after another on this machine | ray: cells at once on a Ray cluster, "
                        "its slots split between them (default: local)")
    p.add_argument("--ray-address", default="", help="HOST:PORT of the cluster (empty: start a local one)")
    p.add_argument("--parallel", type=int, default=0, help="cells at once (default: 1 locally, one per cluster "
                                                           "slot up to the number of cells on Ray)")
    p.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then the run flags every cell shares "
                                                              "(e.g. -- --challenges arc1-eval --limit 20)")
    p.set_defaults(func=cmd_sweep)
