"""Regenerate the Kaggle GPU lock (needs PyPI and `pip install uv`):

    python locks/regenerate.py

1. uv resolves locks/kaggle-gpu.in for Kaggle's GPU image (CPython 3.12, x86_64 manylinux,
   glibc 2.35: the Colab base image the Kaggle image is built on), against PyPI only, with every
   local uv/pip setting ignored.
2. For each pinned release the index's JSON page (PEP 691) lists the files; the wheel pip would
   choose on the image (the best tag the target accepts) goes into the lock, with its sha256.

Writes locks/kaggle-gpu-cp312.txt (pip requirements, exactly one hash each: `pip install
--require-hashes`) and locks/kaggle-gpu-cp312.json (the target, the CUDA runtime and the driver
it needs, and every wheel's file name, size, URL and sha256). `build_submission.py check-lock`
checks both without downloading; `build_submission.py wheels` downloads exactly these files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import build_submission as bs  # noqa: E402
from submission.pipeline.kaggle import MIN_DRIVER  # noqa: E402

INPUT = HERE / "kaggle-gpu.in"
INDEX = "https://pypi.org/simple"
TARGET = {"python": "3.12", "glibc": "2.35", "uv_platform": "x86_64-manylinux_2_35"}


def resolve() -> tuple[list[tuple[str, str]], str]:
    """[(name, version)] of the closure, by uv for the target; and uv's version."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "closure.txt"
        cmd = ["uv", "pip", "compile", str(INPUT), "--python-version", TARGET["python"], "--python-platform",
               TARGET["uv_platform"], "--only-binary", ":all:", "--no-config", "--index-url", INDEX,
               "--no-header", "--no-annotate", "--quiet", "-o", str(out)]
        subprocess.run(cmd, check=True, env=env)
        pins = [(m.group(1), m.group(2)) for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)==(\S+)", out.read_text(), re.M)]
    uv = subprocess.run(["uv", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return pins, uv


def best_wheel(name: str, version: str, accepted: list) -> dict:
    """The file pip would install on the target for name==version, from the index's JSON pages (PEP 691)."""
    from packaging.utils import canonicalize_version, parse_wheel_filename

    req = urllib.request.Request(f"{INDEX}/{bs.canonical(name)}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        files = json.load(r)["files"]
    rank = {tag: i for i, tag in enumerate(accepted)}
    best = None
    for f in files:
        if not f["filename"].endswith(".whl") or f.get("yanked"):
            continue
        _, wversion, _, wtags = parse_wheel_filename(f["filename"])
        if canonicalize_version(wversion) != canonicalize_version(version):
            continue
        score = min((rank[t] for t in wtags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, f)
    if best is None:
        raise SystemExit(f"{name}=={version}: no wheel for CPython {TARGET['python']} manylinux x86_64 on {INDEX}")
    f = best[1]
    return {"name": bs.canonical(name), "version": version, "filename": f["filename"],
            "sha256": f["hashes"]["sha256"], "size": f["size"], "url": f["url"]}


def main() -> int:
    pins, uv = resolve()
    accepted = bs.target_tags(TARGET)
    with ThreadPoolExecutor(8) as pool:
        wheels = list(pool.map(lambda p: best_wheel(*p, accepted), pins))
    runtime = next(w["version"] for w in wheels if w["name"].startswith("nvidia-cuda-runtime"))
    cuda = ".".join(runtime.split(".")[:2])
    manifest = {
        "python": TARGET["python"], "implementation": "cp", "platform": "manylinux x86_64",
        "glibc": TARGET["glibc"], "cuda": cuda, "min_driver": MIN_DRIVER[int(cuda.split(".")[0])],
        "index_url": INDEX, "input": "locks/kaggle-gpu.in", "resolver": uv,
        "regenerate": "python locks/regenerate.py", "total_bytes": sum(w["size"] for w in wheels),
        "wheels": sorted(wheels, key=lambda w: w["name"]),
    }
    lock = HERE / "kaggle-gpu-cp312.txt"
    lines = [f"# Kaggle GPU lock: CPython {TARGET['python']}, manylinux x86_64 (glibc >= {TARGET['glibc']}), "
             f"CUDA {cuda} (NVIDIA driver >= {manifest['min_driver']}).",
             "# The closure of locks/kaggle-gpu.in, one wheel per package (see kaggle-gpu-cp312.json).",
             "# Generated, do not edit: python locks/regenerate.py"]
    lines += [f"{w['name']}=={w['version']} \\\n    --hash=sha256:{w['sha256']}" for w in manifest["wheels"]]
    lock.write_text("\n".join(lines) + "\n")
    lock.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
    problems = bs.lock_problems(lock)
    print(f"{len(wheels)} wheels, {manifest['total_bytes'] / 2**30:.1f} GiB, CUDA {cuda} -> {lock}")
    print("\n".join(problems) or "lock OK")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
