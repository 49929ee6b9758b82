"""The committed Kaggle GPU lock, checked statically (no wheel is downloaded): pinned and hashed,
tags that install on CPython 3.12 manylinux x86_64, no local (+cpu) builds, the GPU closure
complete, in step with requirements-gpu.txt; and lock_problems catches each kind of bad entry."""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
import build_submission as bs  # noqa: E402
from submission.pipeline.kaggle import MIN_DRIVER  # noqa: E402

MANIFEST = json.loads(bs.LOCK.with_suffix(".json").read_text())


def test_the_committed_lock_checks_out():
    assert bs.lock_problems(bs.LOCK, bs.REQUIRED) == []
    assert bs.main(["check-lock"]) == 0


def test_manifest_records_the_target():
    assert (MANIFEST["python"], MANIFEST["implementation"]) == ("3.12", "cp")
    assert MANIFEST["cuda"] == "13.0" and MANIFEST["min_driver"] == MIN_DRIVER[13] == 580
    assert tuple(int(x) for x in MANIFEST["glibc"].split(".")) >= (2, 31)  # llguidance needs 2_31
    assert MANIFEST["regenerate"] == "python locks/regenerate.py --target kaggle-cu13"
    assert MANIFEST["index_url"].startswith("https://") and MANIFEST["exclude_newer"].startswith("2026-")
    assert 3 * 2**30 < MANIFEST["total_bytes"] < 6 * 2**30  # the GPU stack, not a CPU one


def test_every_entry_is_pinned_hashed_and_installs_on_cp312_manylinux_x86_64():
    pins, hashes = bs.read_lock(bs.LOCK), bs.read_lock_hashes(bs.LOCK)
    assert len(pins) == len(MANIFEST["wheels"]) > 150
    glibc = tuple(int(x) for x in MANIFEST["glibc"].split("."))
    for w in MANIFEST["wheels"]:
        assert pins[w["name"]] == w["version"] and hashes[w["name"]] == [w["sha256"]], w["name"]
        assert "+" not in w["filename"] and "+" not in w["version"], w["filename"]
        name, version, _, tags = parse_wheel_filename(w["filename"])
        assert bs.canonical(name) == w["name"] and str(version) == w["version"]
        assert w["url"].startswith("https://") and w["url"].endswith(w["filename"])
        ok = False
        for t in tags:  # an independent reading of the tags, not lock_problems' own
            m = re.fullmatch(r"(py|cp)3(\d*)", t.interpreter)
            minor = int(m.group(2) or 0) if m else 99
            cp_ok = minor == 12 or (t.abi == "abi3" and minor <= 12)
            py_ok = bool(m) and (minor <= 12 if m.group(1) == "py" else cp_ok)
            abi_ok = t.abi in ("cp312", "abi3", "none")
            plat = t.platform
            if plat.startswith("manylinux_"):
                _, major, minor, arch = plat.split("_", 3)
                plat_ok = arch == "x86_64" and (int(major), int(minor)) <= glibc
            else:
                plat_ok = plat in ("any", "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")
            ok |= py_ok and abi_ok and plat_ok
        assert ok, f"{w['filename']} does not install on CPython 3.12 manylinux x86_64"


def test_closure_holds_the_gpu_stack_and_the_cuda_runtime():
    names = {w["name"]: w for w in MANIFEST["wheels"]}
    for pkg in ("torch", "vllm", "unsloth", "unsloth-zoo", "bitsandbytes", "transformers", "peft", "trl",
                "triton", "xgrammar", "nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cudnn-cu13",
                "nvidia-nccl-cu13", "nvidia-cuda-nvrtc", "nvidia-cusparse", "nvidia-nvjitlink"):
        assert pkg in names, pkg
    assert names["nvidia-cuda-runtime"]["version"].startswith(MANIFEST["cuda"] + ".")
    assert "cp312" in names["torch"]["filename"] and names["torch"]["size"] > 300 * 2**20  # the CUDA build
    # vLLM pins these next to torch; on GPU they stay (the notebook removes them only next to +cpu torch)
    assert {"torchvision", "torchaudio", "torchcodec"} <= set(names)


def test_lock_follows_requirements_gpu():
    gpu = bs.read_lock(ROOT / "requirements-gpu.txt")
    pins = bs.read_lock(bs.LOCK)
    for pkg in ("torch", "transformers", "peft", "trl", "vllm", "unsloth", "unsloth-zoo", "bitsandbytes"):
        assert pins[pkg] == gpu[pkg], pkg


def test_manylinux_platforms_name_every_tag_the_stack_uses():
    plats = bs.manylinux_platforms("2.35")
    for n in (17, 18, 24, 25, 27, 28, 31, 35):
        assert f"manylinux_2_{n}_x86_64" in plats
    assert "manylinux2014_x86_64" in plats and "manylinux_2_36_x86_64" not in plats
    accepted = set(bs.target_tags({"python": "3.12", "glibc": "2.35"}))
    assert Tag("cp312", "cp312", "manylinux_2_31_x86_64") in accepted
    assert Tag("cp311", "cp311", "manylinux_2_28_x86_64") not in accepted


def bad_copy(tmp_path, edit_wheel=None, edit_lock=None):
    """A copy of the committed lock with one wheel entry (and/or the lock text) changed."""
    lock = tmp_path / "lock.txt"
    shutil.copy(bs.LOCK, lock)
    manifest = json.loads(json.dumps(MANIFEST))
    if edit_wheel:
        edit_wheel(next(w for w in manifest["wheels"] if w["name"] == "six"))
    lock.with_suffix(".json").write_text(json.dumps(manifest))
    if edit_lock:
        lock.write_text(edit_lock(lock.read_text()))
    return lock


@pytest.mark.parametrize("edit_wheel, edit_lock, expect", [
    (lambda w: w.update(filename=w["filename"].replace("py2.py3-none-any", "cp311-cp311-manylinux_2_17_x86_64")),
     None, "does not install on CPython 3.12"),
    (lambda w: w.update(filename=w["filename"].replace("py2.py3-none-any", "cp312-cp312-manylinux_2_39_x86_64")),
     None, "glibc 2.35"),
    (lambda w: w.update(version="1.17.0+cpu", filename="six-1.17.0+cpu-py2.py3-none-any.whl"), None, "local build"),
    (None, lambda text: text.replace("six==1.17.0 \\\n    --hash", "six==1.17.0 \\\n    --nohash"), "sha256"),
    (None, lambda text: text + "numpy-extra==1.0\n", "no wheel in the manifest"),
])
def test_lock_problems_catches_bad_entries(tmp_path, edit_wheel, edit_lock, expect):
    problems = bs.lock_problems(bad_copy(tmp_path, edit_wheel, edit_lock))
    assert any(expect in p for p in problems), problems


def test_lock_problems_wants_the_closure(tmp_path):
    lock = tmp_path / "lock.txt"
    manifest = {**MANIFEST, "wheels": [w for w in MANIFEST["wheels"] if w["name"] != "bitsandbytes"]}
    lock.with_suffix(".json").write_text(json.dumps(manifest))
    lock.write_text(bs.LOCK.read_text().replace("bitsandbytes==", "# bitsandbytes=="))
    problems = bs.lock_problems(lock, bs.REQUIRED)
    assert problems == [f"{lock}: the closure has no bitsandbytes"]


@pytest.mark.parametrize("lock", ["locks/cpu-cp311.txt", "locks/kaggle-gpu-cp312.txt"])
def test_every_lock_with_peft_pins_a_torchao_peft_accepts(lock):
    """PEFT refuses to import next to torchao < 0.16 ("Found an incompatible version of torchao"), and Kaggle's
    image ships 0.10: a lock that installs PEFT must install a torchao that replaces the image's."""
    from packaging.version import Version

    pins = bs.read_lock(ROOT / lock)
    assert "peft" in pins and Version(pins["torchao"]) >= Version("0.16"), pins.get("torchao")
