"""Presets: recipes keyed by real config fields with allowed values, compact = today's defaults,
detect() on every family's stand-in, and the prompt viewer."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from submission.arc.data import DataError
from submission.arc.formats import FORMATS, make_format
from submission.arc.ttt.data import LOSS_MODES
from submission.arc.vote import RULES
from submission.pipeline.config import STAGES
from submission.pipeline.presets import PRESETS, detect, preset_settings

CONFIGS = STAGES
FIELDS = {f.name: f for cls in CONFIGS for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_keys_are_config_fields_with_allowed_values(name):
    p = PRESETS[name]
    assert p.format in FORMATS
    settings = preset_settings(name)
    assert set(settings) <= set(FIELDS), set(settings) - set(FIELDS)
    assert settings["color_policy"] in ("keep0", "all", "none") and settings["loss_mode"] in LOSS_MODES
    assert settings["select"] in RULES and isinstance(settings["targets"], tuple)
    for key, value in settings.items():
        assert isinstance(value, type(FIELDS[key].default)), (key, value)
    assert not set(p.unmapped) & set(FIELDS)  # anything a config field holds belongs in recipe/inference


def test_compact_preset_is_todays_defaults():
    defaults = {f.name: f.default for cls in CONFIGS for f in dataclasses.fields(cls)}
    assert {k: defaults[k] for k in PRESETS["compact"].settings()} == PRESETS["compact"].settings()


def test_published_recipes():
    assert (PRESETS["nvarc"].settings()["lora_rank"], PRESETS["nvarc"].settings()["use_rslora"]) == (256, True)
    assert PRESETS["architects"].settings()["select"] == "poe"
    assert PRESETS["marc"].settings()["color_policy"] == "keep0"
    for name in ("nvarc", "architects"):  # their embeddings train too, as LoRA (vLLM serves it, tests/test_engines.py)
        assert {"embed_tokens", "lm_head"} <= set(PRESETS[name].settings()["targets"])
        assert not any("embed" in k for k in PRESETS[name].unmapped)
    assert PRESETS["architects"].settings()["embedding_learning_rate"] == 1e-5  # their line 111
    assert "embed_tokens" not in PRESETS["marc"].settings().get("targets", ())
    with pytest.raises(ValueError, match="unknown preset"):
        preset_settings("llama")


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    from submission.engines.tiny_model import write_tiny_model

    root = tmp_path_factory.mktemp("presets")
    return {name: write_tiny_model(root / name, preset=name, layers=1) for name in FORMATS}


def test_detect_each_family(standins, tmp_path):
    assert {name: detect(folder) for name, folder in standins.items()} == {n: n for n in FORMATS}
    assert detect(tmp_path) is None  # nothing to read
    qwen = tmp_path / "qwen"  # a full Qwen3: ChatML tokens but a 151k vocabulary -> not NVARC's
    qwen.mkdir()
    (qwen / "config.json").write_text(json.dumps({"model_type": "qwen3", "vocab_size": 151936}))
    (qwen / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {
        "151644": {"content": "<|im_start|>"}, "151645": {"content": "<|im_end|>"}}}))
    assert detect(qwen) is None


def test_show_prompt(standins):
    from submission.arc.data import load_challenges
    from submission.cli.show_prompt import show_prompt

    task = load_challenges("arc1-eval").tasks["00576224"]
    demos = [(p.input, p.output) for p in task.train]
    for name in FORMATS:
        assert show_prompt(name, "arc1-eval", "00576224", None, False) == make_format(name).prompt(
            demos, task.test[0].input)
    shown = show_prompt("auto", "arc1-eval", "00576224", str(standins["nvarc"]), True)
    assert "preset nvarc, format nvarc" in shown and ": ok:" in shown and "'<|im_start|>'" in shown
    refused = show_prompt("compact", "arc1-eval", "00576224", str(standins["marc"]), True)
    assert "FAILED" in refused and "--preset marc" in refused
    with pytest.raises(DataError, match="'nope'"):
        show_prompt("nvarc", "arc1-eval", "nope", None, False)
    with pytest.raises(DataError, match="--tokens needs --model"):
        show_prompt("nvarc", "arc1-eval", "00576224", None, True)


def test_a_named_preset_without_a_model_plans_with_its_own_recipe():
    """`plan --preset nvarc` without --model: NVARC's recipe, not the default tiny model's recommendations."""
    from submission.pipeline.config import resolve

    nvarc, default = resolve({"preset": "nvarc"}), resolve({})
    want = preset_settings("nvarc")
    assert (nvarc.train.lora_rank, nvarc.train.epochs, nvarc.ttt.max_examples) == (
        want["lora_rank"], want["epochs"], want["max_examples"])
    assert nvarc.applied == {} and default.applied  # the default model's arc_ttt.json applies to itself only


def test_plan_for_the_hidden_sets_size(tmp_path):
    r = subprocess.run([sys.executable, "-m", "submission", "plan", "--challenges", "arc2-eval", "--limit", "3",
                        "--preset", "nvarc", "--profile", "l4x4", "--plan-tasks", "240"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "for 240 tasks" in r.stdout and r.stdout.count("\n") > 240  # one row per planned task
    assert "ttt 743 tok/s" in r.stdout  # the l4x4 profile at Qwen3-4B's size
    marc = subprocess.run([sys.executable, "-m", "submission", "plan", "--challenges", "arc2-eval", "--limit", "1",
                           "--preset", "marc", "--profile", "l4x4"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert "ttt 372 tok/s" in marc.stdout, marc.stdout[-1500:]  # an 8B checkpoint: half, without its weights
