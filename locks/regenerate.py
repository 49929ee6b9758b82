"""Regenerate the project's locks, one per environment, all the same way (needs PyPI and `pip install uv`):

    python locks/regenerate.py                 # every target
    python locks/regenerate.py --target cpu    # one: cpu | cpu-vllm019 | kaggle-cu13 | kaggle-cu128

| target | input | lock | for |
|---|---|---|---|
| cpu | requirements.in | locks/cpu-cp311.txt (in requirements.txt) | this machine, CI: CPython 3.11, torch +cpu |
| cpu-vllm019 | locks/cpu-vllm019.in | locks/cpu-cp311-vllm019.txt | CI's second environment: vLLM 0.19.1 |
| kaggle-cu13 | locks/kaggle-gpu.in | locks/kaggle-gpu-cp312.txt | Kaggle's GPU image: CPython 3.12, CUDA 13 |
| kaggle-cu128 | locks/kaggle-gpu-cu128.in | locks/kaggle-gpu-cu128-cp312.txt | the same, driver < 580: CUDA 12.8 |

For each target:
1. uv resolves the input for the target (CPython version, x86_64 manylinux at the target's glibc)
   against PyPI only, every local uv/pip setting ignored, with files uploaded after the target's
   date cut-off excluded (`--exclude-newer`), so the same command gives the same pins.
2. For each pinned release the index's JSON page (PEP 691) lists the files; the wheel pip would
   choose on the target (the best tag it accepts) goes into the lock with its sha256.
3. Wheels that are not on PyPI (torch's +cpu build, from PyTorch's CPU index) come only from
   OFF_PYPI below: a file name and the sha256 that index publishes. The resolver sees them through
   a folder this script makes, holding a copy checked against that sha256 (`--wheel PATH` gives a
   local copy where PyTorch's index cannot be reached).

Writes the lock (pip requirements, exactly one hash each: `pip install --no-deps --require-hashes`)
and its manifest (same name, .json: the target, the cut-off, every wheel's file name, size, URL and
sha256). `build_submission.py check-lock [--lock L]` checks them without downloading.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_version, parse_wheel_filename

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
import build_submission as bs  # noqa: E402
from submission.pipeline.kaggle import MIN_DRIVER  # noqa: E402

INDEX = "https://pypi.org/simple"
PYTORCH_CPU_INDEX = bs.PYTORCH_CPU_INDEX
OFF_PYPI = bs.OFF_PYPI
TORCH_FILE = "locks/cpu-cp311-torch.txt"  # installs the off-PyPI wheels of the cpu target, before its lock


@dataclass(frozen=True)
class Target:
    """One environment: what it needs, for which interpreter and platform, written where."""
    name: str
    input: str           # direct requirements, relative to the repo root
    lock: str            # the lock written, relative to the repo root (its manifest: .json beside it)
    python: str
    glibc: str           # the oldest glibc the chosen wheels may need
    exclude_newer: str   # the date cut-off: files uploaded later do not exist for the resolver
    title: str
    # resolved but not installed, with why (pip's --no-deps install leaves them out)
    drop: dict[str, str] = field(default_factory=dict)
    off_pypi: tuple[str, ...] = ()  # OFF_PYPI file names this target may use
    overrides: tuple[str, ...] = ()  # requirements that replace what a package pins (uv --override)


CPU_DROP = ("PyPI's CUDA builds: they break `import vllm` and `import unsloth` next to torch +cpu, "
            "and nothing here uses them")
TARGETS = {
    "cpu": Target(
        "cpu", "requirements.in", "locks/cpu-cp311.txt", "3.11", "2.31", "2026-12-01T00:00:00Z",
        "CPU lock (this machine, CI, a newcomer): CPython 3.11, x86_64 Linux",
        drop={p: CPU_DROP for p in ("torchvision", "torchaudio", "torchcodec", "triton")},
        off_pypi=("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",)),
    "cpu-vllm019": Target(
        "cpu-vllm019", "locks/cpu-vllm019.in", "locks/cpu-cp311-vllm019.txt", "3.11", "2.31", "2026-12-01T00:00:00Z",
        "vLLM 0.19.1 on the CPU (CI's second environment, the engine tests): CPython 3.11, x86_64 Linux, torch "
        "2.10.0 from PyPI (a CUDA build, run on the CPU)",
        drop={p: "their newest builds want a newer torch than 2.10.0 and fail to import beside it; the engine "
                 "tests do not use them" for p in ("torchvision", "torchaudio")}, overrides=("torch==2.10.0",)),
    "kaggle-cu128": Target(
        "kaggle-cu128", "locks/kaggle-gpu-cu128.in", "locks/kaggle-gpu-cu128-cp312.txt", "3.12", "2.35",
        "2026-12-01T00:00:00Z", "Kaggle GPU lock for a driver older than 580: CPython 3.12, x86_64 Linux, CUDA 12.8, "
        "vLLM 0.19.1"),
    "kaggle-cu13": Target(
        "kaggle-cu13", "locks/kaggle-gpu.in", "locks/kaggle-gpu-cp312.txt", "3.12", "2.35", "2026-12-01T00:00:00Z",
        "Kaggle GPU lock: CPython 3.12, x86_64 Linux (the Colab base image Kaggle's is built on)"),
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def off_pypi_folder(target: Target, given: list[Path], folder: Path) -> list[dict]:
    """Copy (or download) each off-PyPI wheel of the target into folder, checked against OFF_PYPI."""
    entries = []
    for name in target.off_pypi:
        want, dest = OFF_PYPI[name], folder / name
        local = next((p for p in given if p.name == name), None)
        url = f"{PYTORCH_CPU_INDEX}/{name.replace('+', '%2B')}"
        if local:
            shutil.copyfile(local, dest)
        else:
            urllib.request.urlretrieve(url, dest)
        if sha256(dest) != want:
            raise SystemExit(f"{local or url}: sha256 {sha256(dest)} is not PyTorch's {want}; refused")
        wname, version, _, _ = parse_wheel_filename(name)
        entries.append({"name": bs.canonical(wname), "version": str(version), "filename": name, "sha256": want,
                        "size": dest.stat().st_size, "url": url})
    return entries


def resolve(target: Target, find_links: Path) -> tuple[list[tuple[str, str]], str]:
    """[(name, version)] of the closure, by uv for the target; and uv's version."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    out = find_links / "closure.txt"
    cmd = ["uv", "pip", "compile", str(ROOT / target.input), "--python-version", target.python,
           "--python-platform", f"x86_64-manylinux_{target.glibc.replace('.', '_')}", "--only-binary", ":all:",
           "--no-config", "--index-url", INDEX, "--exclude-newer", target.exclude_newer,
           "--no-header", "--no-annotate", "--quiet", "-o", str(out)]
    if target.off_pypi:
        cmd += ["--find-links", str(find_links)]
    if target.overrides:
        (find_links / "overrides.txt").write_text("\n".join(target.overrides) + "\n")
        cmd += ["--override", str(find_links / "overrides.txt")]
    subprocess.run(cmd, check=True, env=env)
    pins = [(m.group(1), m.group(2)) for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)==(\S+)", out.read_text(), re.M)]
    uv = subprocess.run(["uv", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return pins, uv


def best_wheel(name: str, version: str, accepted: list, cutoff: str) -> dict:
    """The file pip would install on the target for name==version, from the index's JSON pages (PEP 691),
    among the files uploaded before the cut-off (PEP 700's upload-time)."""
    req = urllib.request.Request(f"{INDEX}/{bs.canonical(name)}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        files = json.load(r)["files"]
    rank = {tag: i for i, tag in enumerate(accepted)}
    best = None
    for f in files:
        if not f["filename"].endswith(".whl") or f.get("yanked") or f.get("upload-time", "") > cutoff:
            continue
        try:
            _, wversion, _, wtags = parse_wheel_filename(f["filename"])
        except ValueError:  # old files with tags no installer reads
            continue
        if canonicalize_version(wversion) != canonicalize_version(version):
            continue
        score = min((rank[t] for t in wtags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, f)
    if best is None:
        raise SystemExit(f"{name}=={version}: no wheel for the target on {INDEX}")
    f = best[1]
    return {"name": bs.canonical(name), "version": version, "filename": f["filename"],
            "sha256": f["hashes"]["sha256"], "size": f["size"], "url": f["url"]}


def cuda_of(wheels: list[dict]) -> tuple[str | None, int | None]:
    """The CUDA runtime the closure ships and the driver it needs (None, None for a CPU stack)."""
    runtime = next((w["version"] for w in wheels if w["name"].startswith("nvidia-cuda-runtime")), None)
    if runtime is None:
        return None, None
    cuda = ".".join(runtime.split(".")[:2])
    return cuda, MIN_DRIVER[int(cuda.split(".")[0])]


def write(target: Target, wheels: list[dict], uv: str) -> Path:
    """The lock and its manifest, from the chosen wheels."""
    cuda, driver = cuda_of(wheels)
    manifest = {
        "target": target.name, "python": target.python, "implementation": "cp", "platform": "manylinux x86_64",
        "glibc": target.glibc, "cuda": cuda, "min_driver": driver, "exclude_newer": target.exclude_newer,
        "index_url": INDEX, "input": target.input, "resolver": uv, "dropped": target.drop,
        "overrides": list(target.overrides),
        "regenerate": f"python locks/regenerate.py --target {target.name}",
        "total_bytes": sum(w["size"] for w in wheels), "wheels": sorted(wheels, key=lambda w: w["name"]),
    }
    lock = ROOT / target.lock
    gpu = f"CUDA {cuda} (NVIDIA driver >= {driver})" if cuda else "no GPU"
    lines = [f"# {target.title}, glibc >= {target.glibc}, {gpu}.",
             f"# The closure of {target.input} as of {target.exclude_newer}, one wheel per package, "
             "every package pinned",
             f"# and hashed (manifest: {Path(target.lock).with_suffix('.json').name}). "
             "Install with pip install --no-deps --require-hashes -r THIS.",
             f"# Generated, do not edit: python locks/regenerate.py --target {target.name}"]
    lines += [f"# not installed: {', '.join(sorted(target.drop))}: {reason}"
              for reason in sorted(set(target.drop.values()))]
    lines += [f"# overridden: {o} (in place of what a package pins)" for o in target.overrides]
    if target.off_pypi:
        lines.append(f"# not on PyPI: {', '.join(target.off_pypi)}, from {PYTORCH_CPU_INDEX} ({TORCH_FILE} "
                     f"installs it first)")
    lines += [f"{w['name']}=={w['version']} \\\n    --hash=sha256:{w['sha256']}" for w in manifest["wheels"]]
    lock.write_text("\n".join(lines) + "\n")
    lock.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
    if target.off_pypi:  # the small file that fetches the off-PyPI wheels from their own index
        src = [w for w in wheels if w["filename"] in target.off_pypi]
        (ROOT / TORCH_FILE).write_text(
            "# torch's CPU build is not on PyPI: pip takes it from PyTorch's CPU index, checked against the "
            f"sha256 that\n# index publishes (the same pin and hash as in {target.lock}). "
            f"Generated: python locks/regenerate.py --target {target.name}\n--index-url {PYTORCH_CPU_INDEX}\n"
            + "".join(f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}\n" for w in src))
    return lock


def regenerate(target: Target, given: list[Path]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extra = off_pypi_folder(target, given, folder)
        pins, uv = resolve(target, folder)
    accepted = bs.target_tags({"python": target.python, "glibc": target.glibc})
    keep = [(n, v) for n, v in pins if bs.canonical(n) not in target.drop
            and bs.canonical(n) not in {e["name"] for e in extra}]
    with ThreadPoolExecutor(8) as pool:
        wheels = list(pool.map(lambda p: best_wheel(*p, accepted, target.exclude_newer), keep)) + extra
    lock = write(target, wheels, uv)
    problems = bs.lock_problems(lock)
    print(f"{target.name}: {len(wheels)} wheels, {sum(w['size'] for w in wheels) / 2**30:.2f} GiB -> {lock}")
    print("\n".join(problems) or "lock OK")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", choices=sorted(TARGETS), action="append", help="default: every target")
    ap.add_argument("--wheel", type=Path, action="append", default=[],
                    help="a local copy of an off-PyPI wheel (checked against its published sha256)")
    args = ap.parse_args(argv)
    return max(regenerate(TARGETS[name], args.wheel) for name in (args.target or sorted(TARGETS)))


if __name__ == "__main__":
    raise SystemExit(main())
