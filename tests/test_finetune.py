"""Stage-1 fine-tuning on the tiny model: full and LoRA (merged), exact resume, data sources, and
the folder it writes is a model `run --model` accepts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from submission.arc.text import TextFormat
from submission.pipeline.finetune import ExampleSource, FinetuneConfig, finetune

from conftest import SMALL_TASKS


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def small(tiny_model, out, **kw):
    # warmup longer than the run: the lr of step s does not depend on --steps (for the resume test)
    base = dict(model=str(tiny_model), out=str(out), steps=4, batch_tokens=1536, checkpoint_every=2,
                learning_rate=1e-3, warmup_steps=10, max_tokens=768, max_side=6, threads=1)
    return FinetuneConfig(**{**base, **kw})


def test_finetune_lowers_the_loss(tiny_model, tmp_path):
    """Training learns: the mean loss of the last steps is below that of the first (a loss that rises, or
    stays flat because nothing is updated, fails)."""
    stats = finetune(small(tiny_model, tmp_path / "l", steps=16, warmup_steps=0, learning_rate=3e-3,
                           checkpoint_every=4), argv=[])
    means = [h["loss"] for h in stats["history"]]  # running means at steps 4, 8, 12, 16
    assert len(means) == 4 and means[-1] < 0.9 * means[0], means


def test_full_finetune_trains_and_resumes_exactly(tiny_model, tmp_path):
    stats = finetune(small(tiny_model, tmp_path / "a"), argv=[])
    base, a = weights(tiny_model), weights(tmp_path / "a")
    assert set(a) == set(base) and any(not (a[k] == base[k]).all() for k in a)
    assert stats["history"][-1]["step"] == 4
    finetune(small(tiny_model, tmp_path / "b", steps=2), argv=[])  # 'interrupted' after step 2
    resumed = finetune(small(tiny_model, tmp_path / "b"), argv=[])
    assert resumed["resumed_from"] == 2
    b = weights(tmp_path / "b")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5  # same batches, same optimiser state
    with pytest.raises(ValueError, match="different settings"):
        finetune(small(tiny_model, tmp_path / "b", learning_rate=5e-4), argv=[])


def test_lora_finetune_is_merged_into_a_plain_model(tiny_model, tmp_path):
    stats = finetune(small(tiny_model, tmp_path / "l", lora_rank=4, steps=2, learning_rate=5e-3), argv=[])
    assert stats["trainer"] == "peft"
    merged, base = weights(tmp_path / "l"), weights(tiny_model)
    assert set(merged) == set(base)  # no lora_A/lora_B left: a standard HF checkpoint
    assert any(not (merged[k] == base[k]).all() for k in merged if "proj" in k)
    assert all((merged[k] == base[k]).all() for k in merged if "embed" in k)


def test_example_sources(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    fmt = TextFormat(end_marker=tok.eos_token)
    cfg = small(tiny_model, "unused", data="arc1-train,generated", max_tokens=2048)
    src = ExampleSource(cfg.data, fmt, cfg)
    assert len(src.tasks) == 400
    for s in range(20):
        ex = src.example(s, 0)
        assert ex == src.example(s, 0)  # a pure function of (seed, step, index)
        assert len(ex.text) <= 2048 + 64 and ex.loss_spans
        for a, b in ex.loss_spans:  # every loss span is an output grid ending with the end marker
            assert ex.text[a:b].endswith(tok.eos_token) and ex.text[:a].endswith("O\n")
    with pytest.raises(ValueError, match="--data 'nope'"):
        ExampleSource("nope", fmt, cfg)


def test_cli_from_scratch_then_run_uses_it(tmp_path):
    root = Path(__file__).parents[1]
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}
    out = tmp_path / "m"
    r = subprocess.run([sys.executable, "-m", "submission", "finetune", "--out", str(out), "--steps", "2",
                        "--scratch-hidden", "64", "--scratch-heads", "2", "--scratch-layers", "1",
                        "--batch-tokens", "1024", "--max-tokens", "512", "--max-side", "5"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote" in r.stdout and "finetune:" in r.stderr  # the progress bar
    info = json.loads((out / "finetune.json").read_text())
    assert info["steps"] == 2 and info["command"].startswith("python -m submission finetune --out")
    bad = subprocess.run([sys.executable, "-m", "submission", "finetune", "--trainer", "magic"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "invalid choice: 'magic'" in bad.stderr  # argparse, from the field's choices
    (tmp_path / "c.json").write_text(json.dumps({"flip": SMALL_TASKS["flip"]}))
    r = subprocess.run([sys.executable, "-m", "submission", "run", "--challenges", str(tmp_path / "c.json"),
                        "--model", str(out), "--out", str(tmp_path / "o"), "--engine", "hf", "--trainer", "peft",
                        "--augmentations", "1", "--max-examples", "4", "--epochs", "1", "--lora-rank", "4",
                        "--transforms", "2", "--permutations", "1", "--max-new-tokens", "20",
                        "--max-model-len", "2048", "--quick-transforms", "0", "--extra-rounds", "0",
                        "--score-augmentations", "0"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["adapters"] == 1


def test_model_folder_recommends_run_settings(tiny_model, tmp_path):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    (model / "arc_ttt.json").write_text(json.dumps({"run_defaults": {"learning_rate": 0.003, "epochs": 3}}))
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "submission", "plan", "--challenges", "arc1-eval", "--limit", "2",
           "--model", str(model)]
    r = subprocess.run([*cmd, "--epochs", "1"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--learning-rate 0.003" in r.stdout and "--epochs" not in r.stdout  # the user's flag wins
    (model / "arc_ttt.json").write_text(json.dumps({"run_defaults": {"learning_rat": 0.003}}))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode != 0 and "arc_ttt.json: run_defaults has unknown settings: learning_rat" in r.stderr


def test_default_model_is_the_committed_trained_model():
    from submission.cli.main import build_parser
    from submission.engines.tiny_model import TRAINED, default_model
    from submission.pipeline.start import load_tokenizer_format

    assert default_model() == TRAINED
    assert (TRAINED / "model.safetensors").stat().st_size <= 20e6
    info = json.loads((TRAINED / "finetune.json").read_text())
    assert info["command"].startswith("python -m submission finetune") and info["config"]["model"] == "scratch"
    from submission.arc.synth.generate import SPLIT_VERSION

    assert info["generator_split_version"] == SPLIT_VERSION  # trained on no rule of today's held-out split
    assert "auto_map" not in json.loads((TRAINED / "config.json").read_text())  # no remote code
    load_tokenizer_format(str(TRAINED))  # one token per digit/newline, eos as the end marker
    args = build_parser().parse_args(["run"])
    for key in json.loads((TRAINED / "arc_ttt.json").read_text())["run_defaults"]:
        assert hasattr(args, key), key  # every recommended setting is a flag of `run`


def test_the_default_model_has_learned_the_grid_language():
    """Loss on the query outputs of held-out generated tasks: ~2.9 (= ln 18, uniform) before
    training, ~0.6 for the committed model. Exact-match accuracy is in benchmarks/README.md."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from submission.arc.synth.generate import generate_tasks
    from submission.arc.ttt.data import render_example
    from submission.engines.tiny_model import TRAINED
    from submission.engines.train_loop import TrainExample, encode, pad_batch

    tok = AutoTokenizer.from_pretrained(TRAINED)
    model = AutoModelForCausalLM.from_pretrained(TRAINED).eval()
    fmt = TextFormat(end_marker=tok.eos_token)
    exs = [render_example(t.train + t.test, fmt) for t in generate_tasks(8, seed=77, split="heldout", max_side=6)]
    batch = [encode(tok, TrainExample(e.text, e.loss_spans("query")), 4096) for e in exs]
    ids, labels, mask = pad_batch(batch, 0, "cpu")
    with torch.no_grad():
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()
    assert loss < 1.0, loss
