"""Adapter disk: one adapter's size from the model's shape, waves that fit a bound, and a run whose
adapters do not all fit the disk at once: it trains in waves and every trained task answers with its
own adapter before that adapter is deleted."""

import json
import subprocess
import sys
from pathlib import Path

from submission.engines.model_folder import model_shape
from submission.pipeline.adapter_disk import AdapterDisk, estimate_bytes, folder_bytes, plan_waves, release
from submission.pipeline.presets import PRESETS, PROJECTIONS

from conftest import SMALL_TASKS
from test_run import FAST, run_cli, write_challenges

ROOT = Path(__file__).parents[1]


def test_qwen3_4b_at_nvarcs_rank_is_the_size_the_issue_measured():
    """Rank 256 on the seven projections of Qwen3-4B: 528 M LoRA parameters (~1.06 GB in bf16)."""
    shape = PRESETS["nvarc"].shape
    assert shape.lora_params(PROJECTIONS, 256) == 36 * 256 * (2 * (2560 + 4096) + 2 * (2560 + 1024) + 3 * (2560 + 9728))
    assert 1.05e9 < 2 * shape.lora_params(PROJECTIONS, 256) < 1.07e9
    # embeddings count once, not per layer; a 16-token vocabulary makes them tiny
    assert shape.lora_params(("embed_tokens", "lm_head"), 256) == 2 * 256 * (16 + 2560)


def test_the_estimate_is_the_size_peft_writes(tiny_model, tmp_path):
    """A rank-8 adapter trained by PEFT on the tiny model: its weights file is the estimate, to the header."""
    from submission.arc.data import parse_task
    from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset
    from submission.engines.api import TrainExample
    from submission.engines.config import TrainConfig
    from submission.engines.factory import make_trainer
    from submission.pipeline.presets import preset_format

    cfg = TrainConfig(lora_rank=8, epochs=1, max_steps=1)
    fmt = preset_format("compact", "</s>")
    exs = [TrainExample(e.text, e.loss_spans("all_but_first"))
           for e in build_ttt_dataset(parse_task("flip", SMALL_TASKS["flip"]), TTTDataConfig(max_examples=2), fmt, 0)]
    result = make_trainer("peft", str(tiny_model), cfg, "auto").train(exs, tmp_path / "a", cfg, 0)
    weights = (Path(result.adapter) / "adapter_model.safetensors").stat().st_size
    tensors = model_shape(tiny_model).lora_params(cfg.targets, 8) * 4
    assert tensors < weights < tensors + 16_384  # the safetensors header is all the rest
    assert folder_bytes(result.adapter) <= estimate_bytes(model_shape(tiny_model), cfg.targets, 8)


def test_waves_fill_the_bound_in_task_order_and_measurements_replace_the_estimate():
    disk = AdapterDisk(bound=1000, estimate=300, rank=8)
    assert disk.wave(["a", "b", "c", "d"], {t: 8 for t in "abcd"}, live=0) == ["a", "b", "c"]
    assert disk.wave(["a", "b"], {"a": 8, "b": 2}, live=750) == ["b"]  # a ladder step down is a quarter the size
    disk.measured.append((8, 500))  # the first real adapter is larger than estimated
    assert disk.per_adapter(8) == 500 and disk.wave(["a", "b", "c"], {t: 8 for t in "abc"}, live=0) == ["a", "b"]
    assert plan_waves(240, 2, 60) == (30, 8, 60) and plan_waves(3, 5, 4) == (0, 0, 0) and plan_waves(0, 5, 4)[1] == 0


def test_release_never_deletes_outside_the_runs_adapters(tmp_path):
    out, other = tmp_path / "out", tmp_path / "other" / "adapters" / "t"
    for d in (out / "adapters" / "t", other):
        d.mkdir(parents=True)
        (d / "adapter_model.safetensors").write_bytes(b"x" * 10)
    assert release(str(other), out) == 0 and other.is_dir()  # an --adapters-from source is lent, not ours
    assert release(str(out / "adapters" / "t"), out) == 10 and not (out / "adapters" / "t").exists()


def test_a_disk_that_holds_two_adapters_trains_three_tasks_in_waves(tmp_path, tiny_model):
    """--adapter-disk-gb holds two and a half rank-8 adapters, three tasks: two waves; every task's main
    answers come from its own adapter, each adapter is gone once answered, and a rerun resumes with nothing
    to do."""
    tasks = {**SMALL_TASKS, "flip2": {"train": SMALL_TASKS["flip"]["train"][::-1], "test": [{"input": [[3, 0]]}]}}
    c = write_challenges(tmp_path / "x_challenges.json", tasks)
    out = tmp_path / "out"
    bound_gb = 2.5 * estimate_bytes(model_shape(tiny_model), PROJECTIONS, 8) / 1e9
    args = ["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), "--trainer", "peft",
            "--engine", "hf", *FAST, "--quick-transforms", "0", "--adapter-disk-gb", f"{bound_gb:.6f}"]
    r = run_cli(args, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "wave 1 trains 2 of 3 tasks" in r.stdout, r.stdout
    summary = json.loads((out / "summary.json").read_text())
    disk = summary["adapter_disk"]
    assert disk["waves"] == 2 and disk["released"] == 3 and 0 < disk["peak_gb"] <= bound_gb
    assert summary["adapters"] == summary["adapter_answers_landed"] == 3
    trained = {json.loads(line)["task_id"]: json.loads(line)["adapter"] for line in (out / "train.jsonl").open()}
    assert set(trained) == set(tasks) and not any((out / "adapters").iterdir())
    main = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    main = [m for m in main if m["phase"] == "main"]
    assert {m["task_id"] for m in main} == set(tasks)  # 2 prompts per test input (FAST: 2 transforms x 2 orders)
    assert all(m["adapter"] == trained[m["task_id"]] for m in main)
    before = [(out / f).read_bytes() for f in ("train.jsonl", "predictions.jsonl")]
    again = run_cli(args, cwd=tmp_path)
    assert again.returncode == 0 and "3 with answers from before" in again.stdout
    assert [(out / f).read_bytes() for f in ("train.jsonl", "predictions.jsonl")] == before


def test_plan_for_nvarc_on_4_l4s_stays_inside_the_disk_bound(tmp_path):
    """The Kaggle plan: 240 tasks at NVARC's recipe (rank 256) under a 60 GB bound: the plan says how many
    adapters a wave holds, and its peak is within the bound."""
    r = subprocess.run([sys.executable, "-m", "submission", "plan", "--preset", "nvarc", "--profile", "l4x4",
                        "--challenges", "arc2-eval", "--plan-tasks", "240", "--workers", "4",
                        "--adapter-disk-gb", "60", "--budget", "42600"], capture_output=True, text=True,
                       cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(x for x in r.stdout.splitlines() if "adapters per wave" in x)
    per_wave, peak = int(line.split()[0]), float(line.split("peak ")[1].split()[0])
    assert per_wave == 28 and peak <= 60.0  # 2.12 GB each in float32 (2.11 for the projections, + embeddings)
    assert "2.12 GB per adapter" in r.stdout and "240 tasks" in r.stdout
    assert "LoRA on embed_tokens, lm_head (LoRA layers, not full copies) at rank 256" in r.stdout  # the route shown
    gpu = next(x for x in r.stdout.splitlines() if x.startswith("GPU memory per l4x4"))
    assert "1.06 GB" in gpu and "--max-loras" in gpu and "WARNING" not in r.stdout  # sized to fit an L4
