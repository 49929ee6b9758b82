"""Slim the wheels benchmarks/gpu_check.sh carries to the lent GPU machine (64 MiB a call): Unsloth
without its web UI (`studio/`, 26 MB of JavaScript and a server no TTT step imports), bitsandbytes
with only its CUDA 13.0 and CPU libraries (the device's torch is cu130; the others are ~110 MB).
Rewrites the wheels in place; only for that device check, never for a Kaggle wheelhouse.

    python benchmarks/slim_wheels.py shared_wheels
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

DROP = {
    "unsloth-": lambda name: name.startswith("studio/"),
    "bitsandbytes-": lambda name: "libbitsandbytes_" in name and not ("cuda130" in name or "_cpu" in name),
}


def slim(wheel: Path) -> int:
    """Rewrite one wheel without the dropped members; the bytes saved."""
    drop = next((f for prefix, f in DROP.items() if wheel.name.startswith(prefix)), None)
    if drop is None:
        return 0
    before, tmp = wheel.stat().st_size, wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if not drop(info.filename):
                out.writestr(info, src.read(info.filename))
    tmp.replace(wheel)
    return before - wheel.stat().st_size


if __name__ == "__main__":
    for w in sorted(Path(sys.argv[1]).glob("*.whl")):
        if saved := slim(w):
            print(f"{w.name}: -{saved / 2**20:.1f} MiB")
