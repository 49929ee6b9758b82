"""Kaggle awareness: find the competition files under /kaggle/input by search (the 2024, 2025
and 2026 mounts differ; the competition slug wins when several are attached), tell the committed
run from the scoring rerun by the documented signal (KAGGLE_IS_COMPETITION_RERUN), and check the
notebook's environment (Python, torch's CUDA build, the driver, the GPUs) against the lock.

Standard library only: the notebook imports this before the locked wheels are installed."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

KAGGLE_INPUT = Path(os.environ.get("ARC_TTT_KAGGLE_INPUT", "/kaggle/input"))
KAGGLE_WORKING = Path(os.environ.get("ARC_TTT_KAGGLE_WORKING", "/kaggle/working"))  # kept, <= 20 GB
KAGGLE_TEMP = Path(os.environ.get("ARC_TTT_KAGGLE_TEMP", "/kaggle/temp"))  # scratch: adapters go here
BUDGET_MARGIN_S = 600  # 12 h minus this: time to write outputs and shut down
KAGGLE_LIMIT_S = 12 * 3600
SMOKE_TASKS = 4  # tasks the committed run processes: proves the stack end to end in minutes, not hours
# set by the notebook from its build settings (stopgaps until RunConfig has these fields)
COMPETITION_ENV = "ARC_TTT_COMPETITION"  # the slug the notebook was built for
SMOKE_ENV = "ARC_TTT_SMOKE_TASKS"  # the committed run's task count (build_submission.py --smoke-tasks)

# machine_shape -> (GPU name as nvidia-smi shows it, count). 2024's GPU T4 x2, 2025/2026's 4 x L4.
MACHINES = {"NvidiaL4": ("L4", 4), "NvidiaTeslaT4": ("T4", 2), "NvidiaTeslaP100": ("P100", 1)}
# minimum NVIDIA driver per CUDA major version (CUDA minor-version compatibility)
MIN_DRIVER = {13: 580, 12: 525, 11: 450}


@dataclass(frozen=True)
class CompetitionFiles:
    test: Path  # *_test_challenges.json
    training: Path | None  # *_training_challenges.json beside it
    training_solutions: Path | None
    evaluation: Path | None = None  # *_evaluation_challenges.json beside it
    evaluation_solutions: Path | None = None


def on_kaggle() -> bool:
    return KAGGLE_WORKING.is_dir() or "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def is_rerun() -> bool:
    """True in the scoring rerun on the hidden test file."""
    return bool(os.environ.get("KAGGLE_IS_COMPETITION_RERUN"))


def find_competition_files(root: Path = KAGGLE_INPUT, max_depth: int = 4,
                           slug: str | None = None) -> CompetitionFiles | None:
    """The *test_challenges.json under root (in a folder named like the competition slug when
    several are mounted, else the shallowest), with the training/evaluation files beside it."""
    slug = slug if slug is not None else os.environ.get(COMPETITION_ENV, "")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= max_depth:
            dirnames[:] = []
        for f in filenames:
            if f.endswith("test_challenges.json"):
                path = Path(dirpath) / f
                found.append((slug not in path.relative_to(root).parts, depth, str(path)))
    if not found:
        return None
    test = Path(sorted(found)[0][2])
    prefix = test.name[: -len("test_challenges.json")]

    def beside(name: str) -> Path | None:
        p = test.with_name(f"{prefix}{name}.json")
        return p if p.is_file() else None

    return CompetitionFiles(test, beside("training_challenges"), beside("training_solutions"),
                            beside("evaluation_challenges"), beside("evaluation_solutions"))


def _ids(path: Path) -> set[str]:
    with open(path, encoding="utf-8") as f:
        return set(json.load(f))


def known_solutions(files: CompetitionFiles) -> Path | None:
    """The solutions file (training or evaluation) whose challenges hold every test task id."""
    test_ids = _ids(files.test)
    for challenges, solutions in ((files.training, files.training_solutions),
                                  (files.evaluation, files.evaluation_solutions)):
        if test_ids and challenges and solutions and test_ids <= _ids(challenges):
            return solutions
    return None


def is_placeholder(files: CompetitionFiles) -> bool:
    """Not the rerun, and the test ids are shipped training or evaluation tasks (informational:
    the run mode is decided by the rerun signal alone, see resolve)."""
    return not is_rerun() and known_solutions(files) is not None


def resolve(cfg):
    """For --challenges kaggle: the competition files; the committed run (anything but the
    scoring rerun) is a smoke run of a few tasks, scored when a shipped solutions file holds its
    ids; the scoring rerun is the full run. Output to /kaggle/working, scratch to /kaggle/temp."""
    from dataclasses import replace

    from submission.arc.data import DataError

    files = find_competition_files(KAGGLE_INPUT)
    if files is None:
        raise DataError(f"--challenges kaggle: no *test_challenges.json under {KAGGLE_INPUT}; attach the competition")
    # adapters (GBs for 8B models) go to scratch; only submission.json goes to /kaggle/working
    out = cfg.out or str((KAGGLE_TEMP if KAGGLE_TEMP.is_dir() else KAGGLE_WORKING) / "arc-ttt-run")
    cfg = replace(cfg, challenges=str(files.test), out=out,
                  submission=cfg.submission or str(KAGGLE_WORKING / "submission.json"))
    if is_rerun():
        print(f"scoring rerun (KAGGLE_IS_COMPETITION_RERUN): {files.test}: full run")
        return cfg
    solutions = known_solutions(files)
    limit = cfg.limit or int(os.environ.get(SMOKE_ENV) or SMOKE_TASKS)
    scored = f"scored against {solutions}" if solutions else "unscored (its task ids are in no solutions file)"
    print(f"placeholder test file {files.test} (committed run, not the scoring rerun): smoke run on {limit} "
          f"tasks, {scored}")
    return replace(cfg, limit=limit, solutions=str(solutions) if solutions else cfg.solutions)


def read_gpus(timeout: float = 60) -> list[tuple[str, str]]:
    """[(GPU name, driver version)] from nvidia-smi; [] without a driver."""
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = [line.rsplit(",", 1) for line in r.stdout.splitlines() if "," in line] if r.returncode == 0 else []
    return [(name.strip(), driver.strip()) for name, driver in rows]


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return -1


def driver_problem(target: dict, gpus: list[tuple[str, str]], torch_cuda: str | None = None) -> str | None:
    """The driver against what the lock's CUDA needs (None when it suffices or no GPU is seen): checked in
    seconds, before a multi-GB install that could not run anyway."""
    need_cuda = target.get("cuda") or torch_cuda
    need = int(target.get("min_driver") or MIN_DRIVER.get(_major(need_cuda or ""), 0))
    if not gpus or not need or _major(gpus[0][1]) >= need:
        return None
    driver = gpus[0][1]
    return (f"NVIDIA driver {driver} is older than {need}, which CUDA {need_cuda} needs: rebuild the lock for a "
            f"CUDA that driver {driver} runs, or run on an image with a newer driver")


def pick_lock(targets: list[dict], gpus: list[tuple[str, str]]) -> int:
    """Which lock to install, by the driver nvidia-smi shows: the first of `targets` (in preference order, the
    newest CUDA first) whose min_driver it meets; the first when no GPU is seen or none is met (the driver check
    then says why)."""
    if not gpus:
        return 0
    have = _major(gpus[0][1])
    return next((i for i, t in enumerate(targets) if have >= int(t.get("min_driver") or 0)), 0)


def environment_problems(target: dict, torch_version: str, torch_cuda: str | None,
                         gpus: list[tuple[str, str]], machine: str) -> list[str]:
    """What stops the GPU stack on this machine: torch's CUDA build vs the lock's, the driver vs
    what that CUDA needs, the GPUs vs the machine shape. Each message names both numbers."""
    problems = []
    cuda = target.get("cuda")
    if torch_cuda is None:
        problems.append(f"torch {torch_version} is a CPU build (torch.version.cuda is None); the lock's torch "
                        f"is a CUDA {cuda or '?'} build: install the wheelhouse built by `build_submission.py wheels`")
    elif cuda and torch_cuda.split(".")[:2] != str(cuda).split(".")[:2]:
        problems.append(f"torch.version.cuda is {torch_cuda}, the lock's torch is built for CUDA {cuda}")
    if not gpus:
        problems.append("nvidia-smi shows no GPU: set the notebook's accelerator to a GPU (L4), or build with "
                        "--no-gpu-check for a CPU dry run")
        return problems
    if p := driver_problem(target, gpus, torch_cuda):
        problems.append(p)
    names = sorted({name for name, _ in gpus})
    want = MACHINES.get(machine)
    if want and (not all(want[0] in n for n in names) or len(gpus) < want[1]):
        problems.append(f"--machine {machine} means {want[1]} x {want[0]}, nvidia-smi shows {len(gpus)} x "
                        f"{', '.join(names)}: rebuild with the --machine of this accelerator")
    if machine == "NvidiaTeslaP100" or any("P100" in n for n in names):
        problems.append("P100 (sm60) cannot run this torch: use the L4 (or T4 with fp16)")
    return problems


def accelerator_notes(gpus: list[tuple[str, str]]) -> list[str]:
    """Warnings that do not stop the run."""
    if any("T4" in name for name, _ in gpus):
        return ["T4 (sm75): fp16 only (no bf16), run with --dtype float16; vLLM's V1 engine and its LoRA kernels "
                "have open issues there; the L4 is the supported target"]
    return []


# The stack imported before any task starts, each package in its own process (one that dies -- SIGILL, a
# missing libcudart -- cannot hide the others), with its version and the remedy when it fails.
IMPORTS = {
    "torch": "import torch; print(torch.__version__, 'CUDA', torch.version.cuda)",
    "transformers": "import transformers; print(transformers.__version__)",
    # PEFT refuses torchao < 0.16 at import ("Found an incompatible version of torchao"); the image has 0.10
    "peft": "import peft; print(peft.__version__)",
    "vllm": "import vllm; print(vllm.__version__)",
    "unsloth": "from submission.engines.train_unsloth import import_unsloth; import_unsloth(); "
               "from importlib.metadata import version; print(version('unsloth'))",
}
REMEDIES = {
    "peft": "if the error names torchao: the image's torchao is older than PEFT accepts; the lock pins a newer one "
            "(is the wheelhouse attached and installed?), or `pip uninstall -y torchao`",
    "torch": "torch must be the lock's CUDA build: install the wheelhouse built by `build_submission.py wheels`",
    "vllm": "vLLM's CUDA build needs the lock's torch and a driver for its CUDA (see the driver check above)",
    "unsloth": "without Unsloth, --trainer auto falls back to PEFT (slower TTT); --trainer peft says so explicitly",
}


def import_check(env: dict | None = None, timeout: float = 300,
                 names: tuple[str, ...] = tuple(IMPORTS)) -> tuple[list[str], list[str]]:
    """(one line per package: its version or why it failed, problems that stop the run). Unsloth failing
    is a note, not a problem: PEFT trains in its place."""
    import sys

    lines, problems = [], []
    for name in names:
        code = IMPORTS[name]
        try:
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
            ok, said = r.returncode == 0, (r.stdout.strip().splitlines() or [""])[-1]
            why = said if ok else ((r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1])
        except subprocess.TimeoutExpired:
            ok, why = False, f"import took over {timeout:.0f} s"
        lines.append(f"{name} {why}" if ok else f"{name}: import FAILED: {why[:300]}")
        if not ok:
            (lines if name == "unsloth" else problems).append(f"{name}: {why[:300]} -- {REMEDIES.get(name, '')}")
    return lines, problems
