"""build_submission.py: the kernel folder, the wheelhouse command, and the built notebook executed
offline with nbclient against a fake /kaggle layout (tiny model, CPU)."""

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from submission.data import load_challenges
from submission.submission_io import validate_submission

from conftest import SMALL_TASKS

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
import build_submission  # noqa: E402

FAST_RUN = ("--transforms 2 --permutations 1 --augmentations 1 --max-examples 4 --epochs 1 --lora-rank 8 "
            "--max-new-tokens 24 --max-model-len 2048 --quick-transforms 1 --extra-rounds 0 --engine hf")


def build(tmp_path, *extra):
    out = tmp_path / "kernel"
    build_submission.main(["--out", str(out), "--owner", "me", "--model-source", "me/m/transformers/default/1",
                           "--wheels-dataset", "me/wheels", "--machine", "NvidiaL4", *extra])
    (nb_file,) = out.glob("*.ipynb")
    return out, nb_file


def test_kernel_metadata_and_valid_notebook(tmp_path):
    out, nb_file = build(tmp_path, "--competition", "arc-prize-2024", "--machine", "NvidiaTeslaT4")
    meta = json.loads((out / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["machine_shape"] == "NvidiaTeslaT4" and meta["kernel_type"] == "notebook"
    assert meta["competition_sources"] == ["arc-prize-2024"] and meta["dataset_sources"] == ["me/wheels"]
    assert meta["model_sources"] == ["me/m/transformers/default/1"] and meta["code_file"] == nb_file.name
    nb = nbformat.read(nb_file, as_version=4)
    nbformat.validate(nb)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "--no-index" in code and "find_competition_files" in code
    settings = json.loads(code.split("r'''")[1].split("'''")[0])
    assert settings["lock"]["vllm"] == "0.32.0" and settings["lock"]["transformers"] == "5.17.0"


def test_package_as_dataset(tmp_path):
    out, nb_file = build(tmp_path, "--package", "dataset")
    assert (out / "package" / "submission" / "__init__.py").is_file()
    assert "me/arc-ttt-arc-prize-2025-code" in json.loads((out / "kernel-metadata.json").read_text())["dataset_sources"]
    assert 'PACKAGE_ZIP = ""' in nb_file.read_text().replace('\\"', '"')


def test_wheels_command(capsys):
    assert build_submission.main(["wheels", "--dry-run", "--out", "/tmp/wh"]) == 0
    cmd = capsys.readouterr().out
    for part in ("pip download", "--only-binary=:all:", "--python-version 3.11", "manylinux", "requirements-gpu.txt"):
        assert part in cmd


@pytest.fixture
def fake_kaggle(tmp_path, tiny_model, monkeypatch):
    comp = tmp_path / "input" / "arc-prize-2025"
    comp.mkdir(parents=True)
    (comp / "arc-agi_training_challenges.json").write_text(json.dumps(SMALL_TASKS))
    (comp / "arc-agi_training_solutions.json").write_text(json.dumps(
        {"flip": [[[0, 1], [2, 0]]], "recolor": [[[2, 0, 2]], [[0, 2], [2, 2]]]}))
    (comp / "arc-agi_test_challenges.json").write_text(json.dumps(SMALL_TASKS))  # the placeholder
    shutil.copytree(tiny_model, tmp_path / "input" / "tiny-arc" / "transformers" / "default" / "1")
    working = tmp_path / "working"
    working.mkdir()
    for k, v in {"ARC_TTT_KAGGLE_INPUT": tmp_path / "input", "ARC_TTT_KAGGLE_WORKING": working,
                 "ARC_TTT_KAGGLE_TEMP": tmp_path / "temp", "ARC_TTT_SRC": tmp_path / "src"}.items():
        monkeypatch.setenv(k, str(v))
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    return comp, working


def execute(nb_file, cwd):
    nb = nbformat.read(nb_file, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def test_built_notebook_runs_offline_and_leaves_a_valid_submission(tmp_path, fake_kaggle):
    comp, working = fake_kaggle
    _, nb_file = build(tmp_path, "--lock", str(ROOT / "requirements.txt"), "--no-gpu-check", "--run-args", FAST_RUN)
    nb = execute(nb_file, tmp_path)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "environment OK" in text and "valid submission" in text
    sub = json.loads((working / "submission.json").read_text())
    assert validate_submission(sub, load_challenges(comp / "arc-agi_test_challenges.json")) == []
    assert (working / "arc-ttt-run" / "summary.json").is_file() or (tmp_path / "temp" / "arc-ttt-run").exists()


def test_version_mismatch_fails_fast_with_the_fallback_in_place(tmp_path, fake_kaggle):
    comp, working = fake_kaggle
    lock = tmp_path / "lock.txt"
    lock.write_text("transformers==0.0.1\nnumpy==" + __import__("numpy").__version__ + "\n")
    _, nb_file = build(tmp_path, "--lock", str(lock), "--no-gpu-check")
    with pytest.raises(CellExecutionError) as e:
        execute(nb_file, tmp_path)
    assert "environment check failed" in str(e.value) and "transformers: 0.0.1" in str(e.value)
    sub = json.loads((working / "submission.json").read_text())
    assert validate_submission(sub, load_challenges(comp / "arc-agi_test_challenges.json")) == []
