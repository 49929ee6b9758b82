"""Each public checkpoint's preset end to end on its stand-in (a random tiny model whose tokenizer
has that family's structure): detected from the folder, TTT (PEFT) -> vLLM multi-LoRA -> vote ->
a valid submission; the wrong preset is refused with a clear message."""

import json

import pytest

from submission.arc.data import load_challenges
from submission.arc.submission_io import validate_submission

from conftest import SMALL_TASKS
from test_run import run_cli, write_challenges

FAST = ["--transforms", "2", "--permutations", "1", "--augmentations", "1", "--max-examples", "4", "--epochs", "1",
        "--lora-rank", "8", "--max-model-len", "2048", "--quick-transforms", "0", "--extra-rounds", "0",
        "--score-augmentations", "0", "--max-new-tokens", "24"]


@pytest.mark.parametrize("preset", ["nvarc", "architects", "marc"])
def test_preset_runs_end_to_end_on_its_stand_in(preset, tmp_path):
    from submission.engines.tiny_model import write_tiny_model

    model = write_tiny_model(tmp_path / preset, preset=preset)
    c = write_challenges(tmp_path / "c_challenges.json", SMALL_TASKS)
    out = tmp_path / "out"
    r = run_cli(["--challenges", str(c), "--model", str(model), "--out", str(out), "--engine", "vllm",
                 "--trainer", "peft", "--keep-adapters", *FAST], cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"preset {preset} (detected in {model})" in r.stdout
    assert validate_submission(json.loads((out / "submission.json").read_text()), load_challenges(c)) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["run"]["preset"] == preset and summary["adapters"] == len(SMALL_TASKS)
    # each preset selects as its authors did: NVARC's count + likelihood, the ARChitects' PoE, MARC's own vote
    assert summary["config"]["run"]["select"] == {"nvarc": "nvarc", "architects": "poe", "marc": "marc"}[preset]
    assert summary["adapter_answers_landed"] == len(SMALL_TASKS)
    from safetensors import safe_open

    for folder in (out / "adapters").iterdir():  # NVARC's and the ARChitects' recipes adapt the embeddings too
        with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
            keys = list(f.keys())
        assert all("lora_" in k for k in keys)
        assert any("lora_embedding_A" in k for k in keys) == any("lm_head.lora_A" in k for k in keys) == (
            preset != "marc"), keys
    recs = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {x["task_id"] for x in recs} == set(SMALL_TASKS)  # every task's prompts went through the engine
    search = summary["config"]["search"]["search"]  # nvarc and architects search (DFS) as published
    assert search == ("dfs" if preset in ("nvarc", "architects") else "greedy")
    if search == "greedy":  # one answer per prompt, parsed or not (a random model's DFS may find none >= P)
        assert all(len(x["grids"]) == 1 and x["tokens"] > 0 for x in recs)


def test_marc_tokenizer_is_refused_under_compact_with_the_preset_to_use(tmp_path):
    from submission.engines.tiny_model import write_tiny_model

    model = write_tiny_model(tmp_path / "marc", preset="marc")
    c = write_challenges(tmp_path / "c.json", {"flip": SMALL_TASKS["flip"]})
    r = run_cli(["--challenges", str(c), "--model", str(model), "--out", str(tmp_path / "o"), "--preset", "compact",
                 *FAST], cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "merges" in r.stderr and "--preset marc" in r.stderr
    assert validate_submission(json.loads((tmp_path / "o" / "submission.json").read_text()), load_challenges(c)) == []
