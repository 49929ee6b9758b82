# ruff: noqa: E402  (a notebook: each cell imports what it needs)
# %% [markdown]
# # ARC-AGI test-time training — offline submission
# Built by `python build_submission.py` from the `arc-ttt` pipeline: per-task LoRA test-time
# training, vLLM multi-LoRA inference under augmentations, hierarchical voting. Internet off.
# A valid `/kaggle/working/submission.json` exists from cell 3 on; the environment is checked in
# the first minute (Python, the locked wheels, torch's CUDA vs the driver, the GPUs); the committed
# run is a smoke run of a few tasks, the scoring rerun (`KAGGLE_IS_COMPETITION_RERUN`) the full run.

# %%
# Settings baked in by build_submission.py (edit here to change a run without rebuilding).
import json
import os
import sys
import time
from pathlib import Path

T0 = time.time()
SETTINGS = json.loads(r'''{{SETTINGS}}''')
INPUT = Path(os.environ.get("ARC_TTT_KAGGLE_INPUT", "/kaggle/input"))
WORKING = Path(os.environ.get("ARC_TTT_KAGGLE_WORKING", "/kaggle/working"))
SRC = Path(os.environ.get("ARC_TTT_SRC", "/tmp/arc_ttt_src"))
os.environ["ARC_TTT_COMPETITION"] = SETTINGS["competition"]  # picks the test file when several are mounted
os.environ["ARC_TTT_SMOKE_TASKS"] = str(SETTINGS["smoke_tasks"])  # the committed run's size
print(json.dumps({k: v for k, v in SETTINGS.items() if k not in ("lock", "hashes")}, indent=1))

# %%
# The pipeline's code: embedded in this notebook, or found in an attached dataset.
import base64
import io
import tarfile
import zipfile

PACKAGE_ZIP = "{{PACKAGE_B64}}"
if PACKAGE_ZIP:
    zipfile.ZipFile(io.BytesIO(base64.b64decode(PACKAGE_ZIP))).extractall(SRC)
else:
    found = sorted(INPUT.glob("**/submission/__init__.py"), key=lambda p: len(p.parts))
    archives = sorted([*INPUT.glob("**/submission.zip"), *INPUT.glob("**/submission.tar")], key=lambda p: len(p.parts))
    if found:
        SRC = found[0].parent.parent
    elif archives:  # a dataset uploaded with --dir-mode zip/tar that Kaggle kept as an archive
        (zipfile.ZipFile if archives[0].suffix == ".zip" else tarfile.open)(archives[0]).extractall(SRC)
    else:
        raise SystemExit(f"the pipeline package is neither embedded nor attached as a dataset under {INPUT}")
sys.path.insert(0, str(SRC))

# %%
# Safety net first: a valid all-[[0]] submission before anything can fail (numpy only).
from submission.arc.data import load_challenges
from submission.arc.submission_io import build_submission, validate_submission, write_json_atomic
from submission.pipeline.kaggle import find_competition_files

FILES = find_competition_files(INPUT, slug=SETTINGS["competition"])
if FILES is None:
    raise SystemExit(f"no *test_challenges.json under {INPUT}: attach the competition data")
TASKS = load_challenges(FILES.test)
SUBMISSION = WORKING / "submission.json"
write_json_atomic(SUBMISSION, build_submission(TASKS, {}))
print(f"{len(TASKS.ids)} tasks in {FILES.test}; fallback submission written to {SUBMISSION}")

# %%
# Install the locked wheels from the attached wheelhouse: no index, every wheel's sha256 checked,
# pip's output shown when it refuses. Skipped when the lock is already installed.
import subprocess
import tempfile
from importlib.metadata import PackageNotFoundError, version

PROBLEMS = []  # collected here and in the next cell, raised together
TARGET = SETTINGS["target"]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
PIP_TARGET = os.environ.get("ARC_TTT_PIP_TARGET", "")  # tests: install into a fresh folder, not the image
if PIP_TARGET:
    sys.path.insert(0, PIP_TARGET)


def installed(pkg, local=False):
    try:
        v = version(pkg)
    except PackageNotFoundError:
        return None
    return v if local else v.split("+")[0]


def mismatches():
    # a pin with a local part (torch==2.13.0+cpu in the CPU lock) is compared whole; others without it
    return {pkg: (want, have) for pkg, want in SETTINGS["lock"].items()
            if (have := installed(pkg, local="+" in want)) != want}


def find_wheelhouse():
    marked = sorted(INPUT.glob("**/arc-ttt-wheels.json"), key=lambda p: len(p.parts))
    if marked:  # each says which lock it holds: the chosen lock's, or none (a mark naming no lock fits any)
        mine = [m for m in marked if json.loads(m.read_text()).get("target", TARGET["name"]) == TARGET["name"]]
        return mine[0].parent if mine else None
    dirs = sorted({p.parent for p in INPUT.glob("**/*.whl")}, key=lambda d: -len(list(d.glob("*.whl"))))
    return dirs[0] if dirs else None


def pip_install(wheelhouse):
    hashes = SETTINGS["hashes"]
    req = Path(tempfile.mkdtemp()) / "lock.txt"
    req.write_text("".join(f"{p}=={v}" + (f" --hash=sha256:{hashes[p]}" if p in hashes else "") + "\n"
                           for p, v in SETTINGS["lock"].items()))
    cmd = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "install", "--no-index",
           "--find-links", str(wheelhouse), "--no-input", "-r", str(req)]
    cmd += ["--target", PIP_TARGET] if PIP_TARGET else []
    print(f"installing {len(SETTINGS['lock'])} locked wheels from {wheelhouse} (no index"
          + (", sha256 checked)" if hashes else ")"))
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    if r.returncode:
        print(r.stdout[-8000:], r.stderr[-8000:], sep="\n")
        if "DO NOT MATCH THE HASHES" in r.stderr.upper():
            raise SystemExit(f"offline install refused: a wheel in {wheelhouse} does not match the lock's sha256 "
                             "(pip's output above) -- rebuild the wheelhouse dataset with `build_submission.py "
                             "wheels` for this kernel's lock")
        raise SystemExit(f"offline install from {wheelhouse} failed (pip exit {r.returncode}): see pip's output "
                         "above")
    print(f"installed in {time.time() - t:.0f} s")


# the driver first, in seconds: it picks the lock (CUDA 13 needs a driver >= 580; the fallback lock's CUDA 12.8
# runs on older ones), and a lock whose CUDA needs a newer driver is not installed (4 GB for nothing)
from submission.pipeline.kaggle import driver_problem, pick_lock, read_gpus

GPU_CHECK = SETTINGS["require_gpu"] and os.environ.get("ARC_TTT_REQUIRE_GPU", "1") != "0"
CHOICES = [{k: SETTINGS[k] for k in ("lock", "hashes", "target")}, *SETTINGS["fallbacks"]]
if GPU_CHECK and len(CHOICES) > 1:
    SEEN = read_gpus()
    SETTINGS.update(CHOICES[pick_lock([c["target"] for c in CHOICES], SEEN)])
    TARGET = SETTINGS["target"]
    print(f"driver {SEEN[0][1] if SEEN else '(no GPU seen)'}: lock {TARGET['name']} (CUDA {TARGET.get('cuda')}, driver "
          f">= {TARGET.get('min_driver')}), of {', '.join(c['target']['name'] for c in CHOICES)}")
DRIVER = driver_problem(TARGET, read_gpus()) if GPU_CHECK else None
if DRIVER:
    PROBLEMS.append(DRIVER)
    print(f"driver check (before the install, which is skipped): {DRIVER}")
if TARGET.get("python") and PY != TARGET["python"]:
    PROBLEMS.append(f"Python {PY} here, the lock's wheels are for Python {TARGET['python']}: use the image whose "
                    f"Python is {TARGET['python']} (Kaggle's current one), or regenerate the lock for {PY}")
elif not DRIVER and mismatches():
    WHEELHOUSE = find_wheelhouse()
    if WHEELHOUSE is None:
        PROBLEMS.append(f"no wheelhouse for lock {TARGET.get('name', '')} under {INPUT}: attach the dataset built by "
                        f"`build_submission.py wheels --lock {TARGET.get('file', 'LOCK')}`")
    else:
        pip_install(WHEELHOUSE)
CUDA_ONLY = [p for p in ("torchvision", "torchaudio", "torchcodec") if installed(p)]
if (installed("torch", local=True) or "").endswith("+cpu") and CUDA_ONLY:
    # only next to a CPU torch (a CPU dry run): PyPI's builds of these are CUDA builds and break imports
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", *CUDA_ONLY], check=False)

# %%
# Self-check, in seconds: Python, locked versions, torch's CUDA build vs the driver, the GPUs vs
# the machine shape. Every problem is listed at once, here, not hours later.
from submission.pipeline.kaggle import accelerator_notes, environment_problems, read_gpus

bad = mismatches()
if bad:
    shown = ", ".join(f"{p}: {w}, {i}" for p, (w, i) in list(bad.items())[:12])
    PROBLEMS.append(f"{len(bad)} package(s) differ from the lock (package: wanted, installed): {shown}"
                    + (" ..." if len(bad) > 12 else ""))
if GPU_CHECK:
    try:
        import torch

        torch_version, torch_cuda = torch.__version__, torch.version.cuda
    except Exception as e:  # a broken install must still reach the message below
        torch_version, torch_cuda = f"(import failed: {type(e).__name__}: {e})", None
    GPUS = read_gpus()
    PROBLEMS += [p for p in environment_problems(TARGET, torch_version, torch_cuda, GPUS, SETTINGS["machine"])
                 if p not in PROBLEMS]  # the driver, when it was already found before the install
    shown = ", ".join(f"{GPUS.count(g)} x {g[0]} (driver {g[1]})" for g in sorted(set(GPUS))) or "none"
    print(f"torch {torch_version} (CUDA {torch_cuda}); GPUs: {shown}")
    for note in accelerator_notes(GPUS):
        print("note:", note)
# the whole stack imported, each package in a fresh process, before any task starts
import shutil

from submission.pipeline.kaggle import import_check

if os.environ.get("ARC_TTT_IMPORT_CHECK", "1") != "0":  # tests of other cells skip its minute
    t = time.time()
    IMPORTED, IMPORT_PROBLEMS = import_check(
        {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (PIP_TARGET, str(SRC))))})
    print("imports (%.0f s): " % (time.time() - t) + "; ".join(IMPORTED))
    PROBLEMS += IMPORT_PROBLEMS
SCRATCH = Path(os.environ.get("ARC_TTT_KAGGLE_TEMP", "/kaggle/temp"))
SCRATCH = SCRATCH if SCRATCH.is_dir() else WORKING
print(f"free disk for adapters in {SCRATCH}: {shutil.disk_usage(SCRATCH).free / 1e9:.1f} GB (the run trains in "
      "waves that fit it and deletes each adapter once its task is answered)")
if PROBLEMS:
    raise SystemExit("environment check failed:\n- " + "\n- ".join(PROBLEMS)
                     + f"\n(the fallback {SUBMISSION} is in place)")
print(f"environment OK (Python {PY}, {len(SETTINGS['lock'])} locked packages)")

# %%
# The model: a folder with config.json and safetensors weights under the inputs.
def find_model():
    if SETTINGS.get("model_path"):
        return Path(SETTINGS["model_path"])
    cands = [p.parent for p in INPUT.glob("**/config.json") if list(p.parent.glob("*.safetensors"))]
    if not cands:
        raise SystemExit(f"no model folder (config.json + *.safetensors) under {INPUT}: attach the model")
    return sorted(cands, key=lambda p: len(p.parts))[0]


MODEL = find_model()
print(f"model: {MODEL}")

# %%
# doctor, on the committed run only (the rerun's hours are the run's): one adapter trained and served on this
# machine by the run's own code, its speeds and memory measured, and the plan for a test set of this size at
# those speeds: FITS, does NOT fit (what to cut) or BROKEN. A verdict to read, never a stop: the run goes on.
from submission.pipeline.kaggle import is_rerun

if not is_rerun() and os.environ.get("ARC_TTT_DOCTOR", "1") != "0":
    t = time.time()
    doc = subprocess.run([sys.executable, "-m", "submission", "doctor", "--challenges", "kaggle", "--model", str(MODEL),
                          "--out", str(SCRATCH / "arc-ttt-doctor"), "--plan-tasks", str(len(TASKS.ids)),
                          *SETTINGS["run_args"]], capture_output=True, text=True, timeout=1800,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (PIP_TARGET, str(SRC))))})
    print(doc.stdout[-8000:] + (doc.stderr[-3000:] if doc.returncode and "verdict" not in doc.stdout else ""))
    print(f"doctor: exit code {doc.returncode} in {time.time() - t:.0f} s")

# %%
# The run. The pipeline finds the competition files, tells the committed run (smoke run) from the
# scoring rerun (full run) and keeps its own deadline; this cell adds the outer one: at the
# notebook's budget the whole process group is killed, whatever it is doing.
import signal
import threading

remaining = SETTINGS["budget"] - (time.time() - T0)
grace = min(300.0, 0.1 * remaining)  # for the pipeline to stop and write its outputs after its own deadline
entry = [os.environ["ARC_TTT_PIPELINE"]] if os.environ.get("ARC_TTT_PIPELINE") else ["-m", "submission"]  # tests
cmd = [sys.executable, *entry, "run", "--challenges", "kaggle", "--model", str(MODEL),
       "--budget", str(max(1, int(remaining - grace))), *SETTINGS["run_args"]]
print(" ".join(cmd))
proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (PIP_TARGET, str(SRC))))},
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
echo = threading.Thread(target=lambda: [print(line, end="", flush=True) for line in proc.stdout], daemon=True)
echo.start()
try:
    proc.wait(timeout=max(1.0, remaining))
except subprocess.TimeoutExpired:
    print(f"outer deadline: the run is still going after {remaining:.0f} s; killing its process group")
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
try:
    os.killpg(proc.pid, signal.SIGKILL)  # stragglers (engine workers) of a finished or killed run
except ProcessLookupError:
    pass
echo.join(timeout=5)
print(f"run exited with code {proc.returncode}")

# %%
# Whatever happened above: leave a valid submission.json.
try:
    problems = validate_submission(json.loads(SUBMISSION.read_text()), TASKS)
except Exception as e:
    problems = [f"unreadable: {e}"]
if problems:
    print("submission invalid, writing the fallback:", problems[:5])
    write_json_atomic(SUBMISSION, build_submission(TASKS, {}))
# the engine log (tracebacks of workers that died) where Kaggle keeps files: the run folder is in
# /kaggle/temp, which Kaggle deletes. Its last 5 MB, beside submission.json.
from submission.pipeline.kaggle import KAGGLE_TEMP, KAGGLE_WORKING

ENGINE_LOG = KAGGLE_TEMP / "arc-ttt-run" / "engines.log"
if ENGINE_LOG.is_file() and not ENGINE_LOG.is_relative_to(KAGGLE_WORKING):
    with open(ENGINE_LOG, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - (5 << 20)))
        (KAGGLE_WORKING / "engines.log").write_bytes(f.read())
    print(f"engine log: {KAGGLE_WORKING / 'engines.log'}")
print(f"valid submission: {SUBMISSION} ({len(TASKS.ids)} tasks, {time.time() - T0:.0f} s)")
