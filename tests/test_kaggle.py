"""The notebook's first-minute checks that need no notebook: the stack imported before any task starts."""

import os
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_a_peft_that_refuses_the_images_torchao_stops_the_run_with_the_remedy(tmp_path):
    """Kaggle's image has torchao 0.10; PEFT refuses torchao < 0.16 at import. The first-minute check imports
    each package in its own process and names the remedy (here a stand-in peft that fails the same way)."""
    from submission.pipeline.kaggle import import_check

    fake = tmp_path / "peft"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('Found an incompatible version of torchao. Found version "
                                      "0.10.0, but only versions above 0.16.0 are supported')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    lines, problems = import_check(env, names=("transformers", "peft"))
    assert lines[0].startswith("transformers ") and "FAILED" not in lines[0]
    assert "peft: import FAILED" in lines[1] and "torchao" in lines[1]
    (problem,) = problems
    assert problem.startswith("peft: ImportError: Found an incompatible version of torchao") and "uninstall" in problem


def test_the_driver_picks_the_lock():
    """CUDA 13 first where the driver runs it (>= 580), the CUDA 12.8 lock on an older driver, the first when no
    GPU is seen or none fits (the driver check then names both numbers)."""
    from submission.pipeline.kaggle import pick_lock

    cu13, cu128 = {"name": "kaggle-cu13", "min_driver": 580}, {"name": "kaggle-cu128", "min_driver": 525}
    l4 = "NVIDIA L4"
    assert pick_lock([cu13, cu128], [(l4, "580.95.05")] * 4) == 0
    assert pick_lock([cu13, cu128], [(l4, "575.57.08")] * 4) == 1
    assert pick_lock([cu13, cu128], [(l4, "550.54.15")] * 4) == 1
    assert pick_lock([cu13, cu128], [(l4, "470.82.01")]) == 0
    assert pick_lock([cu13, cu128], []) == 0 and pick_lock([cu13], [(l4, "550.54.15")]) == 0


def test_the_default_kernel_carries_both_kaggle_locks(tmp_path):
    """With the default --lock (CUDA 13), the notebook also carries the CUDA 12.8 lock (vLLM 0.19.1) and a
    torchao that PEFT accepts is in each."""
    import sys

    sys.path.insert(0, str(ROOT))
    import build_submission as bs

    args = bs.main.__globals__["argparse"].Namespace(lock=str(bs.LOCK), fallback_lock=None)
    assert bs.fallback_locks(args) == [bs.FALLBACK_LOCK]
    args.fallback_lock = [""]
    assert bs.fallback_locks(args) == []
    for lock in (bs.LOCK, bs.FALLBACK_LOCK):
        pins = bs.read_lock(lock)
        assert tuple(int(x) for x in pins["torchao"].split(".")[:2]) >= (0, 16), lock
        assert bs.lock_problems(lock, bs.required_for(lock)) == [] and bs.required_for(lock), lock
    assert bs.read_lock(bs.FALLBACK_LOCK)["vllm"] == "0.19.1" and bs.read_manifest(bs.FALLBACK_LOCK)["cuda"] == "12.8"
    settings = bs.lock_settings(bs.FALLBACK_LOCK)
    assert settings["target"]["name"] == "kaggle-cu128" and settings["target"]["file"] == \
        "locks/kaggle-gpu-cu128-cp312.txt"
