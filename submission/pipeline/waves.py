"""The run's adapters on disk, wave by wave: how much they take now, the bound at the start, which tasks the
next wave trains, and deleting a wave's adapters once its tasks are answered (adapter_disk.py: the sizes)."""

from __future__ import annotations

from pathlib import Path

from submission.engines.model_folder import model_shape
from submission.pipeline.adapter_disk import (
    FREE_SHARE,
    GB,
    AdapterDisk,
    estimate_bytes,
    folder_bytes,
    free_bytes,
    human,
    release,
)
from submission.pipeline.context import Run


def live_bytes(run: Run) -> int:
    """Disk taken by this run's adapters that still exist (borrowed ones live in another run's folder)."""
    mine = (run.out / "adapters").resolve()
    return sum(folder_bytes(a) for t in run.ids if (a := run.state.adapter(t)) and mine in Path(a).resolve().parents)


def size_disk(run: Run) -> AdapterDisk:
    """The bound on live adapters: --adapter-disk-gb, or the free space now (plus what this run's adapters
    already take, on resume), less FREE_SHARE's margin; the size of one from the model's shape."""
    cfg, train = run.cfg, run.settings.train
    bound = cfg.adapter_disk_gb * GB if cfg.adapter_disk_gb else FREE_SHARE * free_bytes(run.out) + live_bytes(run)
    return AdapterDisk(bound, estimate_bytes(model_shape(cfg.model), train.targets, train.lora_rank), train.lora_rank)


def next_wave(run: Run, todo: list[str]) -> list[str]:
    """The tasks whose adapters fit the disk next to the live ones (all of them under --adapter shared)."""
    if run.cfg.adapter == "shared" or run.disk is None:
        return todo
    from submission.pipeline.pool.workers import ladder_configs

    ranks = {t: ladder_configs(run.state.next_level(t), run.settings.ttt, run.settings.train)[1].lora_rank
             for t in todo}
    live = live_bytes(run)
    wave = run.disk.wave(todo, ranks, live)
    size = human(run.disk.per_adapter(run.disk.rank))
    if not wave:
        run.log(f"adapter disk: no room for one more adapter (~{size}; {human(live)} live of a "
                f"{human(run.disk.bound)} bound): {len(todo)} tasks not trained; raise --adapter-disk-gb"
                + ("" if run.cfg.keep_adapters else " or free the disk"))
    elif len(wave) < len(todo):
        run.log(f"adapter disk: wave {run.disk.waves + 1} trains {len(wave)} of {len(todo)} tasks (~{size} "
                f"per adapter, {human(run.disk.bound)} bound, {human(live)} live)")
    return wave


def release_wave(run: Run, tids: list[str]) -> None:
    """Delete the adapters of the wave's tasks whose answers landed (a task without any keeps its own)."""
    if run.cfg.keep_adapters or run.cfg.adapter == "shared" or run.disk is None:
        return
    freed = [release(a, run.out) for t in tids if run.state.has(t, "main") and (a := run.state.adapter(t))]
    if any(freed):
        run.disk.released += sum(1 for f in freed if f)
        run.log(f"adapter disk: deleted {sum(1 for f in freed if f)} adapters ({human(sum(freed))}) after "
                f"their answers")
