"""A pool of worker processes fed one item at a time over pipes, under deadlines.

The supervisor never imports an engine. Each worker builds its engine once (a trainer or a
generator), then handles items it receives; an item that raises returns an error record. An
item that outlives its cap (a hung generate, a stuck step) or a worker that dies (OOM kill,
segfault) costs that item only: the worker is killed and replaced, the other items go on.
Killing never corrupts shared state: every worker has its own pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable


@dataclass
class Slot:
    index: int  # worker number; with GPUs, the GPU it is pinned to
    proc: Any = None
    conn: Connection | None = None
    item: Any = None  # in flight
    started: float = 0.0
    cap: float = 0.0
    starts: int = 0
    ready: bool = False  # engine loaded, waiting for items


def _worker_entry(make_handler: Callable, init: Any, conn: Connection, gpu: str | None) -> None:
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    handle = make_handler(init)
    conn.send(("ready", None))
    while True:
        item = conn.recv()
        if item is None:
            return
        try:
            result = handle(item)
        except Exception as e:  # the item fails, the worker (and its loaded engine) lives on
            result = {"error": f"{type(e).__name__}: {e}"[:2000]}
        conn.send(("done", result))


@dataclass
class Pool:
    """Run `make_handler(init)` in `workers` processes; `run(items)` yields (item, result)."""

    make_handler: Callable[[Any], Callable[[Any], dict]]
    init: Any
    workers: int = 1
    gpus: list[str] | None = None  # one entry per worker: its CUDA_VISIBLE_DEVICES
    start_timeout: float = 900.0  # seconds a worker may take to load its engine
    slots: list[Slot] = field(default_factory=list)

    def _start(self, slot: Slot) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        gpu = self.gpus[slot.index] if self.gpus else None
        slot.proc = ctx.Process(target=_worker_entry, args=(self.make_handler, self.init, child, gpu), daemon=True)
        slot.proc.start()
        child.close()
        slot.conn, slot.item, slot.starts, slot.ready = parent, None, slot.starts + 1, False
        slot.started = time.monotonic()

    def _kill(self, slot: Slot) -> None:
        if slot.proc is not None and slot.proc.is_alive():
            slot.proc.kill()
        if slot.proc is not None:
            slot.proc.join(5)
        slot.proc, slot.conn, slot.item = None, None, None

    def run(self, items: Iterable[Any], cap: Callable[[Any], float],
            deadline: float | Callable[[], float]) -> Iterable[tuple[Any, dict]]:
        """Yield (item, result) as items finish. result has "error" for raised/timeout/crash/not-run.
        `cap(item)` is the item's own time limit; nothing runs past `deadline` (time.monotonic), which
        may be a callable re-evaluated as the run goes (a cost model that re-plans)."""
        todo = list(items)
        limit = deadline if callable(deadline) else (lambda: deadline)
        if not self.slots:
            self.slots = [Slot(i) for i in range(max(1, min(self.workers, len(todo) or 1)))]
        while todo or any(s.item is not None for s in self.slots):
            now = time.monotonic()
            if now >= limit():
                for s in self.slots:
                    if s.item is not None:
                        yield s.item, {"error": "deadline: the run's budget ran out while this item was running",
                                       "interrupted": True}
                    self._kill(s)
                for item in todo:
                    yield item, {"error": "deadline: not started before the run's budget ran out", "not_run": True}
                return
            for s in self.slots:  # start workers, hand out items
                if s.proc is None and todo:
                    self._start(s)
                if s.proc is not None and s.ready and s.item is None and todo:
                    s.item = todo.pop(0)
                    s.started, s.cap = now, cap(s.item)
                    s.conn.send(s.item)
            busy = [s for s in self.slots if s.proc is not None]
            if not busy:
                break
            got = wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=0.2)
            for s in busy:
                kind = None
                if s.conn in got:
                    try:
                        kind, payload = s.conn.recv()
                    except (EOFError, OSError):
                        kind = "dead"
                    if kind == "ready":
                        s.ready = True
                        continue
                    if kind == "done":
                        item, s.item = s.item, None
                        yield item, payload
                        continue
                if kind == "dead" or not s.proc.is_alive():
                    code, item, was_ready = s.proc.exitcode, s.item, s.ready
                    self._kill(s)
                    if item is not None:
                        yield item, {"error": f"crash: the worker died (exit code {code}) while on this item"}
                    elif not was_ready and todo:  # the engine failed to load: charge one item, so this ends
                        yield todo.pop(0), {"error": f"crash: the worker died loading its engine (exit code {code})"}
                    continue
                elapsed = time.monotonic() - s.started
                if s.item is not None and elapsed > s.cap:
                    item = s.item
                    self._kill(s)
                    yield item, {"error": f"timeout: over its cap of {s.cap:.0f} s"}
                elif s.item is None and not s.ready and elapsed > self.start_timeout and todo:
                    self._kill(s)
                    yield todo.pop(0), {"error": "timeout: the worker did not load its engine in time"}

    def close(self) -> None:
        for s in self.slots:
            if s.proc is not None and s.proc.is_alive() and s.item is None:
                try:
                    s.conn.send(None)
                    s.proc.join(30)
                except (OSError, BrokenPipeError):
                    pass
            self._kill(s)
        self.slots = []
