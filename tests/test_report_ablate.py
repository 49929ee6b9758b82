"""ablate from stored predictions (hand-made run folder with known answers) and the HTML report
rendered in a real headless Chromium."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from submission.arc.vote import RULES, Prediction
from submission.pipeline.ablate import ablate
from submission.pipeline.report import PALETTE, write_report
from submission.pipeline.state import Answer, RunState

from conftest import SMALL_TASKS

ROOT = Path(__file__).parents[1]
RIGHT, WRONG1, WRONG2 = [[0, 1], [2, 0]], [[1, 0], [0, 2]], [[5]]


def grid(g):
    return np.array(g, dtype=np.int8)


@pytest.fixture
def run_dir(tmp_path):
    """A finished run: 'flip' where the flat vote is right and the hierarchical vote is not."""
    c = tmp_path / "x_challenges.json"
    c.write_text(json.dumps({"flip": SMALL_TASKS["flip"]}))
    (tmp_path / "x_solutions.json").write_text(json.dumps({"flip": [RIGHT]}))
    out = tmp_path / "run"
    out.mkdir()
    state = RunState(out)
    preds = ([Prediction(grid(RIGHT), "rot90")] * 5 + [Prediction(grid(WRONG1), "identity", True),
             Prediction(grid(WRONG1), "flip_lr"), Prediction(grid(WRONG2), "transpose"),
             Prediction(grid(WRONG2), "flip_ud")])
    state.add_answers([Answer("flip", "main", f"0|{p.transform}|{k}", 0, p.transform, p.is_identity,
                              (p.grid.tolist(),), (None,), 5, 0.1) for k, p in enumerate(preds)])
    state.add_scores("flip", [[(RIGHT, [-1.0, -2.0]), (WRONG1, [-5.0, -6.0]), (WRONG2, [-7.0, -8.0])]])
    (out / "results.jsonl").write_text(json.dumps({"task_id": "flip", "answer_from": "main", "score": 0.0,
                                                   "tests": [{"attempts": [WRONG1, WRONG2],
                                                              "candidates": [{"grid": RIGHT, "count": 5,
                                                                              "transform_votes": 1}]}]}) + "\n")
    (out / "summary.json").write_text(json.dumps({"config": {"run": {"challenges": str(c), "solutions": None,
                                                                     "select": "vote"}},
                                                  "processed": 1, "score": 0.0, "times_s": {"main": 1.0}}))
    return out


def test_ablate_scores_every_rule_from_stored_predictions(run_dir):
    scores = ablate(run_dir)
    # hierarchical: RIGHT is top-3 in one transform, WRONG1/WRONG2 in two each -> not in the top 2
    # PoE and combined: RIGHT has the highest likelihood under the augmentations
    # identity: only the untransformed prompt's answer (WRONG1) counts
    want = {"identity": 0.0, "vote": 0.0, "flat": 1.0, "poe": 1.0, "combined": 1.0, "oracle": 1.0}
    assert {k: scores[k] for k in want} == want and set(scores) == {*RULES, "oracle"}
    r = subprocess.run([sys.executable, "-m", "submission", "ablate", str(run_dir)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert "<- the run's rule (run printed 0.0000)" in r.stdout and "oracle  1.0000" in r.stdout


def browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise AssertionError("no Chromium found: install Debian's chromium (the README's test command does)")


def test_report_renders_grids_in_headless_chromium(run_dir, tmp_path):
    page = write_report(run_dir)
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained
    shot = tmp_path / "shot.png"
    subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,800",
                    page.as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    colours = {tuple(int(PALETTE[c][i:i + 2], 16) for i in (1, 3, 5)) for c in (1, 2, 5)}  # blue, red, grey cells
    present = {c for c in colours if (img == c).all(axis=1).sum() > 50}
    assert present == colours, f"grid colours missing from the screenshot: {colours - present}"
