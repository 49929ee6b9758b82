"""submission.pipeline.kaggle: which test file (the slug wins), smoke run vs full run by the rerun
signal (scored against training or evaluation solutions), and the environment check's messages."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from submission.pipeline import kaggle

from conftest import SMALL_TASKS


@dataclass(frozen=True)
class Cfg:  # the RunConfig fields resolve reads and replaces
    challenges: str = "kaggle"
    out: str | None = None
    submission: str | None = None
    limit: int = 0
    solutions: str | None = None


def competition(folder: Path, test: dict, training: dict, evaluation: dict) -> Path:
    folder.mkdir(parents=True)
    for split, tasks in (("training", training), ("evaluation", evaluation)):
        (folder / f"arc-agi_{split}_challenges.json").write_text(json.dumps(tasks))
        (folder / f"arc-agi_{split}_solutions.json").write_text(json.dumps({k: [[[0]]] for k in tasks}))
    (folder / "arc-agi_test_challenges.json").write_text(json.dumps(test))
    return folder


@pytest.fixture
def mounted(tmp_path, monkeypatch):
    """/kaggle/input with two ARC competitions and an ARC dataset that sorts first."""
    root = tmp_path / "input"
    train = {"t1": SMALL_TASKS["flip"], "t2": SMALL_TASKS["recolor"]}
    evaluation = {"e1": SMALL_TASKS["flip"], "e2": SMALL_TASKS["recolor"]}
    competition(root / "aaa-arc-agi-copy", {"x": SMALL_TASKS["flip"]}, train, evaluation)
    competition(root / "competitions" / "arc-prize-2026", train, train, evaluation)
    competition(root / "arc-prize-2025", train, train, evaluation)
    (tmp_path / "working").mkdir()
    monkeypatch.setattr(kaggle, "KAGGLE_INPUT", root)
    monkeypatch.setattr(kaggle, "KAGGLE_WORKING", tmp_path / "working")
    monkeypatch.setattr(kaggle, "KAGGLE_TEMP", tmp_path / "temp")
    for k in ("KAGGLE_IS_COMPETITION_RERUN", kaggle.COMPETITION_ENV, kaggle.SMOKE_ENV):
        monkeypatch.delenv(k, raising=False)
    return root


def test_the_competition_slug_picks_the_test_file(mounted, monkeypatch):
    assert kaggle.find_competition_files(mounted).test.parent.name == "aaa-arc-agi-copy"  # shallowest, then a-z
    files = kaggle.find_competition_files(mounted, slug="arc-prize-2026")
    assert files.test == mounted / "competitions" / "arc-prize-2026" / "arc-agi_test_challenges.json"
    assert files.evaluation_solutions.name == "arc-agi_evaluation_solutions.json"
    monkeypatch.setenv(kaggle.COMPETITION_ENV, "arc-prize-2025")  # as the notebook sets it
    assert kaggle.find_competition_files(mounted).test.parent.name == "arc-prize-2025"


@pytest.mark.parametrize("test_ids, solutions", [("t", "training"), ("e", "evaluation"), ("h", None)])
def test_committed_run_is_a_smoke_run_scored_where_the_ids_are_known(mounted, monkeypatch, test_ids, solutions):
    folder = mounted / "arc-prize-2025"
    (folder / "arc-agi_test_challenges.json").write_text(json.dumps(
        {f"{test_ids}{i}": SMALL_TASKS["flip"] for i in (1, 2)}))
    monkeypatch.setenv(kaggle.COMPETITION_ENV, "arc-prize-2025")
    cfg = kaggle.resolve(Cfg())
    assert cfg.challenges == str(folder / "arc-agi_test_challenges.json") and cfg.limit == kaggle.SMOKE_TASKS
    assert cfg.solutions == (str(folder / f"arc-agi_{solutions}_solutions.json") if solutions else None)
    assert cfg.submission == str(kaggle.KAGGLE_WORKING / "submission.json")
    assert kaggle.is_placeholder(kaggle.find_competition_files(mounted)) == bool(solutions)
    monkeypatch.setenv(kaggle.SMOKE_ENV, "2")
    assert kaggle.resolve(Cfg()).limit == 2 and kaggle.resolve(Cfg(limit=7)).limit == 7


def test_scoring_rerun_is_the_full_run_even_on_training_ids(mounted, monkeypatch):
    monkeypatch.setenv(kaggle.COMPETITION_ENV, "arc-prize-2025")
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "True")
    cfg = kaggle.resolve(Cfg())
    assert cfg.limit == 0 and cfg.solutions is None and cfg.challenges.endswith("arc-agi_test_challenges.json")
    assert not kaggle.is_placeholder(kaggle.find_competition_files(mounted))


L4_OK = [("NVIDIA L4", "580.65.06")] * 4
TARGET = {"python": "3.12", "cuda": "13.0", "min_driver": 580}


@pytest.mark.parametrize("torch_cuda, gpus, machine, expect", [
    ("13.0", L4_OK, "NvidiaL4", []),
    (None, L4_OK, "NvidiaL4", ["torch 2.13.0 is a CPU build", "CUDA 13.0 build"]),
    ("12.8", L4_OK, "NvidiaL4", ["torch.version.cuda is 12.8, the lock's torch is built for CUDA 13.0"]),
    ("13.0", [("NVIDIA L4", "550.54.15")] * 4, "NvidiaL4",
     ["NVIDIA driver 550.54.15 is older than 580, which CUDA 13.0 needs"]),
    ("13.0", [], "NvidiaL4", ["nvidia-smi shows no GPU"]),
    ("13.0", [("Tesla T4", "580.65.06")] * 2, "NvidiaL4",
     ["--machine NvidiaL4 means 4 x L4, nvidia-smi shows 2 x Tesla T4"]),
    ("13.0", [("NVIDIA L4", "580.65.06")], "NvidiaL4", ["means 4 x L4, nvidia-smi shows 1 x NVIDIA L4"]),
    ("13.0", [("Tesla T4", "580.65.06")] * 2, "NvidiaTeslaT4", []),
    ("13.0", [("Tesla P100-PCIE-16GB", "580.65.06")], "NvidiaTeslaP100", ["P100 (sm60) cannot run this torch"]),
])
def test_environment_problems_name_both_numbers(torch_cuda, gpus, machine, expect):
    problems = kaggle.environment_problems(TARGET, "2.13.0", torch_cuda, gpus, machine)
    text = "\n".join(problems)
    assert all(e in text for e in expect) and bool(problems) == bool(expect), problems


def test_t4_gets_a_note_not_a_failure():
    assert "fp16" in kaggle.accelerator_notes([("Tesla T4", "580.65.06")])[0]
    assert kaggle.accelerator_notes(L4_OK) == []


def test_read_gpus_from_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi at all
    assert kaggle.read_gpus() == []
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA L4, 580.65.06'\necho 'NVIDIA L4, 580.65.06'\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + "/bin:/usr/bin")
    assert kaggle.read_gpus() == [("NVIDIA L4", "580.65.06")] * 2
