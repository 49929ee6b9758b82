"""Adapter disk: what one task's LoRA takes, how much the run may hold at once, and deleting an
adapter once its task's answers are durable.

At NVARC's recipe (rank 256 on the seven projections of Qwen3-4B) one adapter is ~2 GB in float32;
240 tasks kept to the end would need ~500 GB. So the run trains in waves: as many tasks as the disk
bound holds, then their main inference, PoE scoring and extra rounds (batched across the wave), then
their adapters are deleted and the next wave trains. One wave, when everything fits, is the old
"all TTT, then all inference" run with no extra engine starts.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from submission.engines.model_folder import Shape

GB = 1e9
FREE_SHARE = 0.9  # the bound from free space leaves 10% for predictions, logs and the engines' caches
BYTES_PER_PARAM = 4  # PEFT saves LoRA weights in float32 (autocast_adapter_dtype) whatever the base dtype
HEADER_BYTES = 64 << 10  # safetensors header, adapter_config.json, README.md


def human(n: float) -> str:
    """Bytes as a short figure: GB from 0.1 GB up, else MB."""
    return f"{n / GB:.2f} GB" if n >= 0.1 * GB else f"{n / 1e6:.2f} MB"


def estimate_bytes(shape: Shape | None, targets: tuple[str, ...], rank: int) -> int:
    """One adapter's disk before any is measured (0: unknown shape)."""
    return shape.lora_params(targets, rank) * BYTES_PER_PARAM + HEADER_BYTES if shape else 0


def folder_bytes(path: str | Path) -> int:
    """Bytes of the files directly in an adapter folder (0 if it is gone)."""
    try:
        return sum(e.stat().st_size for e in os.scandir(path) if e.is_file())
    except OSError:
        return 0


def free_bytes(path: Path) -> int:
    """Free space of the disk `path` is on (its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


@dataclass
class AdapterDisk:
    """The bound on this run's live adapters and what it has measured of them."""

    bound: float  # bytes the run's adapters may take at once
    estimate: int  # bytes of one adapter at the configured rank, before one is measured
    rank: int  # the configured rank the estimate is for
    measured: list[tuple[int, int]] = field(default_factory=list)  # (rank, bytes) per trained adapter
    peak: int = 0  # the most bytes live at once, measured after each wave's training
    waves: int = 0
    released: int = 0  # adapters deleted after their answers

    def per_adapter(self, rank: int) -> int:
        """Bytes of an adapter of this rank: the largest measured per rank unit, else the estimate
        (LoRA's size is linear in its rank)."""
        if self.measured:
            return int(max(b / r for r, b in self.measured) * rank)
        return int(self.estimate * rank / self.rank)

    def observe(self, rank: int, path: str) -> None:
        if size := folder_bytes(path):
            self.measured.append((rank, size))

    def wave(self, todo: list[str], ranks: dict[str, int], live: int) -> list[str]:
        """The tasks of `todo` (in order) whose adapters fit next to the live ones."""
        room, out = self.bound - live, []
        for t in todo:
            if (size := self.per_adapter(ranks[t])) <= room:
                out.append(t)
                room -= size
        return out

    def describe(self, source: str, keep: bool) -> str:
        each = human(self.per_adapter(self.rank))
        return (f"adapter disk: bound {human(self.bound)} ({source}), ~{each} per adapter (estimate), "
                + ("kept after their answers" if keep else "each deleted once its task is answered"))

    def summary(self) -> dict:
        return {"bound_gb": round(self.bound / GB, 3), "per_adapter_gb": round(self.per_adapter(self.rank) / GB, 4),
                "peak_gb": round(self.peak / GB, 4), "waves": self.waves, "released": self.released}


def release(path: str, out: Path) -> int:
    """Delete an adapter folder of this run (never one outside OUT/adapters: --adapters-from lends
    another run's); returns the bytes freed."""
    p = Path(path).resolve()
    if (out / "adapters").resolve() not in p.parents:
        return 0
    size = folder_bytes(p)
    shutil.rmtree(p, ignore_errors=True)
    return size


def plan_waves(n_tasks: int, per_adapter: int, bound: float) -> tuple[int, int, int]:
    """(tasks per wave, waves, peak bytes) for n tasks' adapters under a bound (0 per wave: none fits)."""
    if n_tasks <= 0 or per_adapter <= 0:
        return n_tasks, 1 if n_tasks else 0, 0
    per_wave = min(n_tasks, int(bound // per_adapter))
    if per_wave == 0:
        return 0, 0, 0
    return per_wave, -(-n_tasks // per_wave), per_wave * per_adapter


def format_disk(n_tasks: int, per_adapter: int, bound: float, source: str, wave_start_s: float) -> str:
    """The plan's adapter-disk lines: size, bound, waves and their cost in engine starts."""
    if per_adapter <= 0:
        return "adapter disk: unknown (the model folder has no config.json sizes)"
    per_wave, waves, peak = plan_waves(n_tasks, per_adapter, bound)
    head = (f"adapter disk: ~{human(per_adapter)} per adapter (float32), {n_tasks} tasks = "
            f"{human(n_tasks * per_adapter)}; bound {human(bound)} ({source})")
    if per_wave == 0:
        return head + "\n  does NOT fit: one adapter exceeds the bound; no task would train (raise --adapter-disk-gb)"
    return head + (f"\n  {per_wave} adapters per wave, {waves} wave(s), peak {human(peak)}"
                   + (f"; each wave after the first adds a trainer and an engine start per worker "
                      f"(+{(waves - 1) * wave_start_s / 60:.1f} min)" if waves > 1 else ""))

