"""A pool of worker processes fed one item at a time over pipes, under deadlines.

The supervisor never imports an engine. Each worker builds its handler once (a trainer or a
generator), then handles the items it receives. A handler may return a value, or yield parts of
it as they finish (a generator streams finished requests): every part reaches the caller at
once, so work done before a kill is never lost. An item that raises returns a failure; an item
that outlives its cap (a hung step) or a worker that dies (OOM kill, segfault) costs that item
only: the worker is killed and replaced, the other items go on. Every worker has its own pipe,
so killing one never corrupts shared state.

    with Pool(make_handler, init, workers=2) as pool:
        for item, result in pool.run(items, cap, deadline):
            ...
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from enum import Enum
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator

POLL_S = 0.2  # how often the supervisor looks at deadlines and caps while waiting
PART_FLUSH_S = 0.5  # a streaming worker sends what finished at most this often (one pipe message)
CLOSE_WAIT_S = 30  # a worker told to stop gets this long to exit cleanly before it is killed
TERM_GRACE_S = 2.0  # a worker being killed gets SIGTERM and this long to release its resources, then SIGKILL
DEATH_LINES = 25  # lines of the engine log shown when a worker dies
STAGGER_S = 5.0  # GPU worker i loads its engine i x this late: four loads of one checkpoint at once compete
# for disk and host memory (a lesson of Kaggle's 4 x L4)


def log_tail(path: str, lines: int, max_bytes: int = 64 << 10) -> str:
    """The last `lines` lines of a log file (at most max_bytes read); '' if it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _release_and_exit(signum, frame) -> None:
    """SIGTERM in a worker: run multiprocessing's exit finalizers (they unlink the named semaphores that
    tqdm and vLLM create, which a SIGKILL would leave to the resource tracker's 'leaked semaphore'
    cleanup), then leave at once without unwinding whatever the engine was doing."""
    import multiprocessing.util

    try:
        multiprocessing.util._run_finalizers(0)
    finally:
        os._exit(128 + signum)


class Status(str, Enum):
    PART = "part"  # some of the item's results; the item goes on
    OK = "ok"  # the item finished (its value: the handler's return, or None after parts)
    FAILED = "failed"  # raised, timed out, or its worker died: the item's own failure
    INTERRUPTED = "interrupted"  # the run's deadline stopped it while it ran
    NOT_RUN = "not_run"  # never started: the deadline came first, or `admit` refused it


def admitted(admit: Callable[[Any], Any] | None, item: Any) -> Any:
    """What runs in an item's place, asked just before it starts: the item (no `admit`, or admit says
    True), another item admit returns instead (the same work, trimmed to fit), or None (refused)."""
    if admit is None:
        return item
    verdict = admit(item)
    if verdict is None or verdict is False:
        return None
    return item if verdict is True else verdict


@dataclass(frozen=True)
class Result:
    status: Status
    value: Any = None
    error: str = ""
    seconds: float = 0.0  # since the item was handed to its worker

    @property
    def own_failure(self) -> bool:
        """The one rule for what counts against the item itself (the fallback ladder's trigger):
        its own exception, timeout or crash; never a deadline or a refusal."""
        return self.status is Status.FAILED


@dataclass
class Slot:
    index: int  # worker number; with GPUs, the GPU it is pinned to
    proc: Any = None
    conn: Connection | None = None
    item: Any = None  # in flight
    started: float = 0.0  # when the item (or its last part) started: caps measure from here
    handed: float = 0.0  # when the item was handed to the worker
    cap: float = 0.0
    ready: bool = False  # handler built, waiting for items


def gpu_worker_environment(index: int, workers: int) -> None:
    """What a GPU worker sets before its engine loads (each where the user has not set it)."""
    # torch's default, one thread per core in every process, oversubscribes the host N workers share
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, workers))))
    time.sleep(index * float(os.environ.get("ARC_TTT_STAGGER_S", STAGGER_S)))


def _worker_entry(make_handler: Callable, init: Any, conn: Connection, gpu: str | None, log: str | None,
                  index: int = 0, workers: int = 1) -> None:
    signal.signal(signal.SIGTERM, _release_and_exit)
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")  # offline: its download of a README only waits
    # Unsloth's compile cache defaults to the working directory, which on Kaggle is the output folder
    os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", os.path.join(tempfile.gettempdir(), "unsloth_compiled_cache"))
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        gpu_worker_environment(index, workers)
    if log:  # engine and library output go to the run's log file, not the console
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    handle = make_handler(init)
    conn.send(("ready", None))
    while (item := conn.recv()) is not None:
        try:
            value = handle(item)
            if isinstance(value, Iterator):
                buf, last = [], time.monotonic()
                for part in value:
                    buf.append(part)
                    if time.monotonic() - last >= PART_FLUSH_S:
                        conn.send(("part", buf))
                        buf, last = [], time.monotonic()
                if buf:
                    conn.send(("part", buf))
                value = None
            conn.send(("done", value))
        except Exception as e:  # the item fails, the worker (and its loaded engine) lives on
            conn.send(("error", f"{type(e).__name__}: {e}"[:2000]))


@dataclass
class Pool:
    """Run `make_handler(init)` in `workers` processes; `run(items)` yields (item, Result)."""

    make_handler: Callable[[Any], Callable[[Any], Any]]
    init: Any
    workers: int = 1
    gpus: list[str] | None = None  # one entry per worker: its CUDA_VISIBLE_DEVICES
    log: str | None = None  # file for the workers' stdout/stderr (None: inherit the console)
    start_timeout: float = 900.0  # seconds a worker may take to build its handler (load an engine)
    on_start: Callable[[float], None] | None = None  # told each engine start's seconds (a lower bound if cut)
    slots: list[Slot] = field(default_factory=list)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self, slot: Slot) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        gpu = self.gpus[slot.index] if self.gpus else None
        slot.proc = ctx.Process(target=_worker_entry, args=(self.make_handler, self.init, child, gpu, self.log,
                                                            slot.index, self.workers), daemon=True)
        slot.proc.start()
        child.close()
        slot.conn, slot.item, slot.ready, slot.started = parent, None, False, time.monotonic()

    def _kill(self, slot: Slot) -> None:
        self._kill_all([slot])

    def _kill_all(self, slots: list[Slot]) -> None:
        """Stop these workers: SIGTERM (each releases its resources and exits), SIGKILL for any still alive
        after TERM_GRACE_S (one hung inside a C call)."""
        alive = [s for s in slots if s.proc is not None and s.proc.is_alive()]
        for s in alive:
            s.proc.terminate()
        end = time.monotonic() + TERM_GRACE_S
        for s in alive:
            s.proc.join(max(0.0, end - time.monotonic()))
            if s.proc.is_alive():
                s.proc.kill()
        for s in slots:
            if s.proc is not None:
                s.proc.join(5)
            s.proc, s.conn, s.item = None, None, None

    def run(self, items: Iterable[Any], cap: Callable[[Any], float], deadline: float | Callable[[], float],
            admit: Callable[[Any], Any] | None = None) -> Iterator[tuple[Any, Result]]:
        """Yield (item, Result) as work lands: PART results while an item streams, then one final
        result per item. `cap(item)`: the item's hang limit (from its start or its last part);
        nothing runs past `deadline` (time.monotonic, or a callable re-evaluated as the run goes);
        `admit(item)`, asked just before an item starts, may refuse it (NOT_RUN) or return a trimmed
        item to run in its place (`admitted`); results then carry the item that ran."""
        todo = list(items)
        limit = deadline if callable(deadline) else (lambda: deadline)
        if not self.slots:
            self.slots = [Slot(i) for i in range(max(1, min(self.workers, len(todo) or 1)))]
        while todo or any(s.item is not None for s in self.slots):
            if time.monotonic() >= limit():
                yield from self._stop_all(todo)
                return
            yield from self._hand_out(todo, cap, admit)
            busy = [s for s in self.slots if s.proc is not None]
            if not busy:
                break
            got = wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=POLL_S)
            for s in busy:
                yield from self._check(s, got, todo)

    def _started(self, seconds: float) -> None:
        if self.on_start is not None:
            self.on_start(seconds)

    def _stop_all(self, todo: list) -> Iterator[tuple[Any, Result]]:
        for s in self.slots:  # a start the deadline cut took at least this long: evidence for the next one
            if s.proc is not None and not s.ready:
                self._started(time.monotonic() - s.started)
        running = [s.item for s in self.slots if s.item is not None]
        self._kill_all(self.slots)
        for item in running:
            yield item, Result(Status.INTERRUPTED, error="deadline: the run's budget ran out while it ran")
        for item in todo:
            yield item, Result(Status.NOT_RUN, error="deadline: not started before the run's budget ran out")
        todo.clear()

    def _hand_out(self, todo: list, cap: Callable, admit: Callable | None) -> Iterator[tuple[Any, Result]]:
        for s in self.slots:
            if s.proc is None and todo:
                self._start(s)
            while s.proc is not None and s.ready and s.item is None and todo:
                item = todo.pop(0)
                if (run := admitted(admit, item)) is None:
                    yield item, Result(Status.NOT_RUN, error="not started: it would not finish in the time left")
                    continue
                s.item, s.started, s.cap = run, time.monotonic(), cap(run)
                s.handed = s.started
                s.conn.send(run)

    def _check(self, s: Slot, got: list, todo: list) -> Iterator[tuple[Any, Result]]:
        """One worker's news: a message, its death, or its item over the cap."""
        kind = None
        if s.conn in got:
            try:
                kind, payload = s.conn.recv()
            except (EOFError, OSError):
                kind = "dead"
            if kind == "ready":
                s.ready = True
                self._started(time.monotonic() - s.started)
                return
            took = time.monotonic() - s.handed
            if kind == "part":
                s.started = time.monotonic()  # progress: the hang clock restarts
                yield s.item, Result(Status.PART, payload, seconds=took)
                return
            if kind in ("done", "error"):
                item, s.item = s.item, None
                yield item, (Result(Status.OK, payload, seconds=took) if kind == "done"
                             else Result(Status.FAILED, error=payload, seconds=took))
                return
        if kind == "dead" or not s.proc.is_alive():
            s.proc.join(5)  # its pipe closed: it is exiting; wait for its exit code
            code, item, was_ready = s.proc.exitcode, s.item, s.ready
            self._kill(s)
            self._show_death(s.index, code)
            if item is not None:
                yield item, Result(Status.FAILED, error=f"crash: the worker died (exit code {code}) while on it")
            elif not was_ready and todo:  # the engine failed to load: charge one item, so this ends
                yield todo.pop(0), Result(Status.FAILED, error=f"crash: the worker died loading its engine "
                                                                f"(exit code {code})")
            return
        elapsed = time.monotonic() - s.started
        if s.item is not None and elapsed > s.cap:
            item = s.item
            self._kill(s)
            yield item, Result(Status.FAILED, error=f"timeout: no progress within its cap of {s.cap:.0f} s")
        elif s.item is None and not s.ready and elapsed > self.start_timeout and todo:
            self._kill(s)
            yield todo.pop(0), Result(Status.FAILED, error="timeout: the worker did not load its engine in time")

    def _show_death(self, index: int, code: int | None) -> None:
        """A worker died: its last words (the traceback in the engine log) on the console, where a notebook's
        output keeps them (the log itself may sit in a scratch folder that is deleted)."""
        tail = log_tail(self.log, DEATH_LINES) if self.log else ""
        print(f"worker {index} died (exit code {code})"
              + (f"; the last {DEATH_LINES} lines of {self.log}:\n{tail}" if tail else ""), flush=True)

    def close(self) -> None:
        for s in self.slots:
            if s.proc is not None and s.proc.is_alive() and s.item is None:
                try:
                    s.conn.send(None)
                    s.proc.join(CLOSE_WAIT_S)
                except (OSError, BrokenPipeError):
                    pass
            self._kill(s)
        self.slots = []
