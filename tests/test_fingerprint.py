"""A run folder belongs to one configuration: a second run into it with settings that change answers
stops before any work and names them; one that differs only in when (budget, workers, chunks) resumes;
--fresh moves the old work aside; --adapters-from reuses adapters only when they were trained alike."""

import dataclasses
import json
import shutil
from dataclasses import dataclass, fields

import pytest

from submission.arc.data import DataError
from submission.knobs import answers_of, knob
from submission.pipeline.config import STAGES, resolve
from submission.pipeline.fingerprint import RECORD, answer_settings, claim, model_identity, record

from conftest import SMALL_TASKS
from test_run import run_cli, write_challenges

CHEAP = ["--trainer", "none", "--engine", "hf", "--quick-transforms", "0", "--extra-rounds", "0",
         "--score-augmentations", "0", "--permutations", "1", "--max-new-tokens", "20", "--max-model-len", "2048"]


def test_every_setting_is_classified_and_a_new_one_fails_closed():
    for cls in STAGES:
        for f in fields(cls):
            assert isinstance(answers_of(f), bool), f"{cls.__name__}.{f.name}"

    @dataclass(frozen=True)
    class Later:  # a setting a later change adds without saying
        new_knob: int = knob(3, "something new")

    assert answers_of(dataclasses.fields(Later)[0]) is True  # counted as answer-changing until marked


def test_the_record_holds_what_changes_answers_and_not_what_changes_when():
    answers = answer_settings(resolve({}))
    assert {"transforms", "permutations", "preset", "seed", "lora_rank", "augmentations", "search", "min_prob",
            "dtype", "transform_colors", "score_augmentations", "challenges"} <= set(answers)
    assert not {"budget", "workers", "chunk_seconds", "chunk_prompts", "executor", "out", "verbose", "limit",
                "model", "fresh", "adapters_from"} & set(answers)  # the model counts by its contents


def test_a_model_copy_keeps_its_identity_and_another_model_does_not(tiny_model, tmp_path):
    from submission.engines.tiny_model import write_tiny_model

    copy = shutil.copytree(tiny_model, tmp_path / "copy")
    assert model_identity(copy) == model_identity(tiny_model)
    assert model_identity(write_tiny_model(tmp_path / "other", seed=1)) != model_identity(tiny_model)


def test_adapters_from_needs_the_same_training(tmp_path, tiny_model):
    source = tmp_path / "ttt"
    source.mkdir()
    trained = resolve({"model": str(tiny_model), "lora_rank": 8})
    (source / RECORD).write_text(json.dumps(record(trained)))
    (source / "train.jsonl").write_text('{"task_id": "flip", "adapter": "x"}\n')
    other_search = resolve({"model": str(tiny_model), "lora_rank": 8, "search": "dfs",
                            "adapters_from": str(source)})
    assert "adapters of" in claim(tmp_path / "dfs", other_search, fresh=False)
    assert (tmp_path / "dfs" / "train.jsonl").read_text() == (source / "train.jsonl").read_text()
    other_rank = resolve({"model": str(tiny_model), "lora_rank": 16, "adapters_from": str(source)})
    with pytest.raises(DataError, match="--lora-rank: before 8, now 16"):
        claim(tmp_path / "rank16", other_rank, fresh=False)


def test_a_second_run_with_other_settings_stops_and_one_with_another_budget_resumes(tmp_path, tiny_model):
    from submission.engines.tiny_model import write_tiny_model

    c = write_challenges(tmp_path / "x_challenges.json", {"flip": SMALL_TASKS["flip"]})
    out = tmp_path / "out"
    base = ["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), *CHEAP]
    first = run_cli([*base, "--transforms", "1"], cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    answers = (out / "predictions.jsonl").read_bytes()
    assert answers and (out / RECORD).is_file()

    other = run_cli([*base, "--transforms", "2"], cwd=tmp_path)
    assert other.returncode == 2
    assert "--transforms: before 1, now 2" in other.stderr and "--fresh" in other.stderr and "new --out" in other.stderr
    assert (out / "predictions.jsonl").read_bytes() == answers  # nothing was done

    another = write_tiny_model(tmp_path / "other-model", seed=1)
    base_other = [a if a != str(tiny_model) else str(another) for a in base]
    r = run_cli([*base_other, "--transforms", "1"], cwd=tmp_path)
    assert r.returncode == 2 and "model folder's contents differ" in r.stderr

    when = run_cli([*base, "--transforms", "1", "--budget", "900", "--workers", "1", "--chunk-seconds", "7"],
                   cwd=tmp_path)
    assert when.returncode == 0, when.stdout[-2000:] + when.stderr[-2000:]
    assert "1 with answers from before" in when.stdout
    assert (out / "predictions.jsonl").read_bytes() == answers  # resumed: nothing generated again

    fresh = run_cli([*base, "--transforms", "2", "--fresh"], cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stdout[-2000:] + fresh.stderr[-2000:]
    assert (out / "previous-1" / "predictions.jsonl").read_bytes() == answers  # moved aside, not deleted
    keys = [json.loads(line)["key"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(keys) == 2 and json.loads((out / RECORD).read_text())["answers"]["transforms"] == 2
