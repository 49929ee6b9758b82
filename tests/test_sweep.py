"""`python -m submission sweep`: the grid, cell accuracy, the plot, and a 2 x 2 sweep over 3 tasks."""

import csv
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from test_scheduler import TASKS

from submission.arc.data import DataError
from submission.cli.sweep import cell_accuracy, parse_grid, plot, scatter_pixels, write_png

from test_run import write_challenges

ROOT = Path(__file__).parents[1]
KNOWN = {"budget", "transforms", "lora_rank", "out", "seed"}
CHEAP = ["--engine", "hf", "--trainer", "none", "--quick-transforms", "0", "--score-augmentations", "0",
         "--extra-rounds", "0", "--max-new-tokens", "20", "--max-model-len", "2048"]


def test_grid_parses_and_reports_every_problem_at_once():
    assert parse_grid("budget=120,240; lora-rank=8", KNOWN) == {"budget": ["120", "240"], "lora_rank": ["8"]}
    with pytest.raises(DataError) as e:
        parse_grid("budjet=1;out=x;seed=;budget=1;budget=2", KNOWN)
    text = str(e.value)
    assert "'budjet': not a run setting" in text and "'out': set by the sweep" in text
    assert "'seed': no values" in text and "'budget': given twice" in text


def test_cell_accuracy_counts_attempt_one_cells():
    sols = {"a": [[[1, 2], [3, 4]]], "b": [[[1]], [[5, 5]]]}
    sub = {"a": [{"attempt_1": [[1, 2], [3, 0]], "attempt_2": [[1, 2], [3, 4]]}],  # 3 of 4 right
           "b": [{"attempt_1": [[1]], "attempt_2": [[0]]}, {"attempt_1": [[5]], "attempt_2": [[5, 5]]}]}  # 1, 0
    assert cell_accuracy(sub, sols, ["a", "b"]) == pytest.approx((0.75 + 0.5) / 2)
    assert cell_accuracy({}, sols, ["a"]) == 0.0  # a missing task is wrong, not an error


def test_fallback_png_is_a_valid_image(tmp_path):
    path = tmp_path / "p.png"
    write_png(path, scatter_pixels([(10.0, 0.5), (20.0, 1.0)]))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    w, h = struct.unpack(">II", data[16:24])
    assert kind == b"IHDR" and (w, h) == (480, 320)
    idat = data.index(b"IDAT")
    raw = zlib.decompress(data[idat + 4: idat + 4 + struct.unpack(">I", data[idat - 4: idat])[0]])
    assert len(raw) == h * (1 + 3 * w) and b"\x1f\x5f\xbf" in raw  # every row, and the points are drawn


def test_plot_falls_back_to_the_png_writer_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    rows = [{"cell": "a", "wall_s": 3.0, "score": 0.5, "budget": "60"}, {"cell": "b", "status": "failed"}]
    assert plot(tmp_path / "p.png", rows, ["budget"]) == "png"
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def sweep_cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "submission", "sweep", *args], capture_output=True, text=True,
                          timeout=900, cwd=cwd, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_bad_cell_values_stop_the_sweep_before_any_run(tmp_path):
    r = sweep_cli(["--grid", "transforms=2,0;select=vote", "--out", str(tmp_path / "s"), "--", "--limit", "1"],
                  tmp_path)
    assert r.returncode == 2 and "transforms-0" in r.stderr and "--transforms must be >= 1" in r.stderr
    assert not (tmp_path / "s").exists()


def test_sweep_2x2_writes_four_runs_the_table_and_the_plot(tmp_path, tiny_model):
    c = write_challenges(tmp_path / "s_challenges.json", {k: TASKS[k] for k in ("flip", "recolor", "t3")},
                         {"flip": [[[0, 1], [2, 0]]], "recolor": [[[2, 0, 2]], [[0, 2], [2, 2]]], "t3": [[[0, 5]]]})
    out = tmp_path / "sweep"
    args = ["--grid", "transforms=1,2;permutations=1,2", "--out", str(out), "--", "--challenges", str(c),
            "--model", str(tiny_model), *CHEAP]
    r = sweep_cli(args, tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    names = sorted(f"transforms-{t}_permutations-{p}" for t in (1, 2) for p in (1, 2))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    for name in names:
        assert (out / name / "submission.json").is_file() and (out / name / "summary.json").is_file()
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert sorted(r["cell"] for r in rows) == names and all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert 0 <= float(row["score"]) <= 1 and 0 <= float(row["cell_accuracy"]) <= 1
        assert float(row["wall_s"]) > 0 and float(row["gpu_s"]) >= float(row["wall_s"])
        summary = json.loads((out / row["cell"] / "summary.json").read_text())
        assert str(summary["config"]["run"]["transforms"]) == row["transforms"]  # the cell ran its settings
        assert abs(summary["score"] - float(row["score"])) < 1e-3
    assert (out / "score_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    assert "score_vs_time.png" in page and all(n in page for n in names)
    assert "cell_accuracy" in r.stdout and all(n in r.stdout for n in names)  # the printed table

    again = sweep_cli(args, tmp_path)  # finished cells are kept: the same command resumes
    assert again.returncode == 0 and again.stdout.count("finished before, kept") == 4
