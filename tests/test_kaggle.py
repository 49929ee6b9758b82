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
