# %% [markdown]
# # ARC-AGI test-time training — offline submission
# Built by `python build_submission.py` from the `arc-ttt` pipeline: per-task LoRA test-time
# training, vLLM multi-LoRA inference under augmentations, hierarchical voting. Internet off.
# Every cell is safe to re-run; a valid `/kaggle/working/submission.json` exists from cell 3 on.

# %%
# Settings baked in by build_submission.py (edit here to change a run without rebuilding).
import json, os, sys, time
from pathlib import Path

T0 = time.time()
SETTINGS = json.loads(r'''{{SETTINGS}}''')
INPUT = Path(os.environ.get("ARC_TTT_KAGGLE_INPUT", "/kaggle/input"))
WORKING = Path(os.environ.get("ARC_TTT_KAGGLE_WORKING", "/kaggle/working"))
SRC = Path(os.environ.get("ARC_TTT_SRC", "/tmp/arc_ttt_src"))
print(json.dumps({k: v for k, v in SETTINGS.items() if k != "lock"}, indent=1))

# %%
# The pipeline's code: embedded in this notebook, or found in an attached dataset.
import base64, io, zipfile

PACKAGE_ZIP = "{{PACKAGE_B64}}"
if PACKAGE_ZIP:
    zipfile.ZipFile(io.BytesIO(base64.b64decode(PACKAGE_ZIP))).extractall(SRC)
else:
    found = sorted(INPUT.glob("**/submission/__init__.py"), key=lambda p: len(p.parts))
    if not found:
        raise SystemExit(f"the pipeline package is neither embedded nor attached as a dataset under {INPUT}")
    SRC = found[0].parent.parent
sys.path.insert(0, str(SRC))

# %%
# Safety net first: a valid all-[[0]] submission before anything can fail (numpy only).
from submission.data import load_challenges
from submission.pipeline.kaggle import find_competition_files
from submission.submission_io import build_submission, validate_submission, write_json_atomic

FILES = find_competition_files(INPUT)
if FILES is None:
    raise SystemExit(f"no *test_challenges.json under {INPUT}: attach the competition data")
TASKS = load_challenges(FILES.test)
SUBMISSION = WORKING / "submission.json"
write_json_atomic(SUBMISSION, build_submission(TASKS, {}))
print(f"{len(TASKS.ids)} tasks in {FILES.test}; fallback submission written to {SUBMISSION}")

# %%
# Install the locked wheels from the attached wheelhouse (skipped when they are already there).
import subprocess
from importlib.metadata import PackageNotFoundError, version


def installed(pkg):
    try:
        return version(pkg).split("+")[0]
    except PackageNotFoundError:
        return None


def mismatches():
    return {pkg: (want, installed(pkg)) for pkg, want in SETTINGS["lock"].items() if installed(pkg) != want}


if mismatches():
    wheels = sorted({p.parent for p in INPUT.glob("**/*.whl")}, key=lambda p: -len(list(p.glob("*.whl"))))
    if wheels:
        print(f"installing {len(SETTINGS['lock'])} pinned packages from {wheels[0]} (no index)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels[0]),
                        *[f"{p}=={v}" for p, v in SETTINGS["lock"].items()]], check=False)
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "torchvision", "torchaudio",
                        "torchcodec"], check=False)

# %%
# Self-check, in seconds: locked versions and a GPU. Fails loudly here, not hours later.
bad = mismatches()
if bad:
    raise SystemExit("environment check failed (package: wanted, installed): "
                     + ", ".join(f"{p}: {w}, {i}" for p, (w, i) in bad.items())
                     + " -- attach the wheelhouse dataset built by `build_submission.py wheels`")
if SETTINGS["require_gpu"] and os.environ.get("ARC_TTT_REQUIRE_GPU", "1") != "0":
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no GPU visible: set Accelerator to a GPU in the notebook settings")
    print(f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")
print("environment OK")

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
# The run: finds the competition files itself, tells the placeholder from the scoring rerun,
# keeps the deadline (12 h minus a margin minus what this notebook has used so far).
budget = SETTINGS["budget"] - (time.time() - T0)
cmd = [sys.executable, "-m", "submission", "run", "--challenges", "kaggle", "--model", str(MODEL),
       "--budget", str(int(budget)), *SETTINGS["run_args"]]
print(" ".join(cmd))
proc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(SRC)})
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
print(f"valid submission: {SUBMISSION} ({len(TASKS.ids)} tasks, {time.time() - T0:.0f} s)")
