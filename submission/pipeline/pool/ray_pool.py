"""Pool's interface on Ray actors: the same run across the nodes of a Ray cluster (--executor ray).

One actor per GPU of the cluster (one per --workers slot on a CPU-only cluster) builds its handler
once, as a local worker process does, and handles one item at a time. Parts stream back through a
Ray generator method, so an actor lost with its node costs only the parts it had not sent. The
driver keeps everything durable (the run folder); actors only compute.

  - an actor that dies under an item (node lost, OOM kill) has the item retried once on another
    actor (a lost node is not the task's own failure); a second death is the item's FAILED
  - a generate item retried after streaming some answers skips the requests already answered
  - an item over its hang cap is killed and FAILED; the deadline kills every actor, as in Pool
  - adapters: an actor on the driver's node reads and writes the run folder directly; an actor on
    another node gets each adapter it serves as bytes through the object store, and a trained
    adapter comes back as bytes that the driver writes into OUT/adapters (no shared disk needed)

    with RayPool(make_handler, init, workers=2, address="127.0.0.1:6379") as pool:
        for item, result in pool.run(items, cap, deadline):
            ...
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from submission.arc.data import DataError
from submission.pipeline.pool.supervisor import PART_FLUSH_S, POLL_S, Result, Status, admitted
from submission.pipeline.pool.workers import GenItem, Trained, TrainInit

try:
    import ray
except ImportError:  # an optional dependency: only --executor ray needs it
    raise DataError("--executor ray needs Ray: pip install -r requirements-ray.txt") from None

RETRIES_AFTER_DEATH = 1  # a node loss is retried elsewhere once; dying twice is the item's own failure
SHIP_ENV = "ARC_TTT_RAY_SHIP"  # "always": ship adapters as bytes even on the driver's node (tests)
ACTORS_ENV = "ARC_TTT_RAY_ACTORS"  # actors per pool, overriding one per GPU (sweep splits a cluster)
ENV_PREFIXES = ("ARC_TTT_", "HF_", "VLLM_", "TRANSFORMERS_", "TOKENIZERS_", "PYTORCH_", "UNSLOTH_", "OMP_", "MKL_")

PACKAGE = Path(__file__).resolve().parents[2]  # the submission package, shipped to every Ray node


def _describe(item: Any) -> str:
    if isinstance(item, GenItem):
        return f"engine call {item.key}"
    task = getattr(item, "task", None)
    return f"TTT of task {task.id!r}" if task is not None else repr(item)[:80]


def read_folder(path: str) -> dict[str, bytes]:
    """A flat folder's files (an adapter: config, weights, tokenizer files) as bytes."""
    return {p.name: p.read_bytes() for p in sorted(Path(path).iterdir()) if p.is_file()}


def write_folder(path: Path, files: dict[str, bytes]) -> None:
    """Replace a folder with these files, atomically: readers see the old folder or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


class ArcWorker:
    """One engine per actor, as in a local worker process; `work` streams one item's outcome:
    ("part", [...]) while it runs, then ("done", value) or ("error", message)."""

    def __init__(self, make_handler: Callable, init: Any, log: str | None, driver_node: str, ship: bool):
        local = ray.get_runtime_context().get_node_id() == driver_node
        self.ship = ship or not local
        if log and local:  # engine output to the run's log, as local workers do (elsewhere: Ray's worker logs)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        if self.ship and isinstance(init, TrainInit):  # the run folder is not on this node: train here
            init = replace(init, out=tempfile.mkdtemp(prefix="arc_ttt_run_"))
        self.cache = Path(tempfile.gettempdir()) / "arc_ttt_adapters"
        self.handle = make_handler(init)

    def ready(self) -> tuple[int, bool]:
        return os.getpid(), self.ship

    def work(self, item: Any, skip: frozenset, adapters: dict) -> Iterator[tuple[str, Any]]:
        try:
            item, index = self._localize(item, skip, adapters)
            value = self.handle(item)
            if isinstance(value, Iterator):
                buf, last = [], time.monotonic()
                for part in value:  # a generate item's parts carry request indices: back to the original ones
                    buf.append(part if index is None else (index[part[0]], part[1]))
                    if time.monotonic() - last >= PART_FLUSH_S:
                        yield "part", buf
                        buf, last = [], time.monotonic()
                if buf:
                    yield "part", buf
                value = None
            if self.ship and isinstance(value, Trained):
                value = (value, read_folder(value.result.adapter))
            yield "done", value
        except Exception as e:  # the item fails, the actor (and its loaded engine) lives on
            yield "error", f"{type(e).__name__}: {e}"[:2000]

    def _localize(self, item: Any, skip: frozenset, adapters: dict) -> tuple[Any, list[int] | None]:
        """The item as this actor runs it: without the requests already answered, reading shipped
        adapters from a local copy; and the original index of each request it keeps."""
        if not isinstance(item, GenItem):
            return item, None
        keep = [i for i in range(len(item.requests)) if i not in skip]
        local = {path: self._materialize(digest, ref) for path, (digest, ref) in adapters.items()}
        reqs = tuple(replace(item.requests[i], adapter=local.get(item.requests[i].adapter,
                                                                 item.requests[i].adapter)) for i in keep)
        return replace(item, requests=reqs), keep

    def _materialize(self, digest: str, ref: Any) -> str:
        """A shipped adapter's local folder, fetched once per content (a retrained task's adapter has
        another digest, so an engine never serves a stale copy)."""
        path = self.cache / digest
        if not path.is_dir():
            write_folder(path, ray.get(ref))
        return str(path)


@dataclass
class Slot:
    index: int
    actor: Any = None
    ready_ref: Any = None  # resolves once the actor has built its handler
    ready: bool = False
    ship: bool = False  # the actor is not on the driver's node: adapters travel as bytes
    item: Any = None  # in flight
    stream: Any = None  # the item's ObjectRefGenerator
    created: float = 0.0
    started: float = 0.0  # the item's start or its last part: caps measure from here
    handed: float = 0.0
    cap: float = 0.0


@dataclass
class RayPool:
    """Pool on Ray actors: `run(items)` yields (item, Result) exactly as Pool.run does."""

    make_handler: Callable[[Any], Callable[[Any], Any]]
    init: Any
    workers: int = 1
    address: str = ""  # HOST:PORT of a running cluster; empty: a local one for this process
    log: str | None = None
    start_timeout: float = 900.0
    on_start: Callable[[float], None] | None = None  # told each engine start's seconds, as Pool does
    slots: list[Slot] = field(default_factory=list)
    _tries: dict = field(default_factory=dict)  # id(item) -> deaths so far
    _answered: dict = field(default_factory=dict)  # id(item) -> request indices already streamed back
    _shipped: dict = field(default_factory=dict)  # adapter path -> (mtime, digest, ObjectRef)

    def __enter__(self) -> "RayPool":
        connect(self.address, self.log is None)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _n_actors(self, n_items: int) -> int:
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
        want = int(os.environ.get(ACTORS_ENV) or 0) or self.workers or gpus or 1  # --workers 0: one per GPU
        if not gpus and want > cpus:
            print(f"ray: {want} workers asked for, the cluster has {cpus} CPUs: using {cpus} actors")
            want = cpus
        return max(1, min(want, n_items or 1))

    def _start(self, s: Slot) -> None:
        res = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) else {"num_cpus": 1}
        cls = _remote_worker().options(max_restarts=0, **res)  # restarts are ours: the item moves on
        node = ray.get_runtime_context().get_node_id()
        s.actor = cls.remote(self.make_handler, self.init, self.log, node, os.environ.get(SHIP_ENV) == "always")
        s.ready_ref, s.ready, s.item, s.stream, s.created = s.actor.ready.remote(), False, None, None, time.monotonic()

    def _kill(self, s: Slot) -> None:
        if s.actor is not None:
            ray.kill(s.actor, no_restart=True)
        s.actor, s.ready_ref, s.ready, s.item, s.stream = None, None, False, None, None

    def run(self, items: Iterable[Any], cap: Callable[[Any], float], deadline: float | Callable[[], float],
            admit: Callable[[Any], Any] | None = None) -> Iterator[tuple[Any, Result]]:
        """As Pool.run: PART results while an item streams, then one final result per item."""
        for item, res in self._run(list(items), cap, deadline, admit):
            if res.status is not Status.PART:  # ids are reused once an item is gone: forget its history
                self._tries.pop(id(item), None)
                self._answered.pop(id(item), None)
            yield item, res

    def _run(self, todo: list, cap: Callable, deadline: float | Callable[[], float],
             admit: Callable | None) -> Iterator[tuple[Any, Result]]:
        limit = deadline if callable(deadline) else (lambda: deadline)
        if not self.slots:
            self.slots = [Slot(i) for i in range(self._n_actors(len(todo)))]
        while todo or any(s.item is not None for s in self.slots):
            if time.monotonic() >= limit():
                yield from self._stop_all(todo)
                return
            yield from self._hand_out(todo, cap, admit)
            waiting = [s.stream if s.item is not None else s.ready_ref for s in self.slots
                       if s.actor is not None and (s.item is not None or not s.ready)]
            if not waiting and not any(s.actor is not None for s in self.slots):
                break
            if waiting:  # block until one is ready, then take every one that is (one alone could starve others)
                ray.wait(waiting, num_returns=1, timeout=POLL_S)
                ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
            else:
                ready = []
            for s in self.slots:
                if s.actor is not None:
                    yield from self._check(s, ready, todo)

    def _stop_all(self, todo: list) -> Iterator[tuple[Any, Result]]:
        for s in self.slots:
            if s.item is not None:
                yield s.item, Result(Status.INTERRUPTED, error="deadline: the run's budget ran out while it ran")
            self._kill(s)
        for item in todo:  # an item waiting for its retry did run: its streamed parts were kept
            yield item, (Result(Status.INTERRUPTED, error="deadline: the run's budget ran out before its retry")
                         if id(item) in self._tries else
                         Result(Status.NOT_RUN, error="deadline: not started before the run's budget ran out"))
        todo.clear()

    def _hand_out(self, todo: list, cap: Callable, admit: Callable | None) -> Iterator[tuple[Any, Result]]:
        for s in self.slots:
            if s.actor is None and todo:
                self._start(s)
            while s.actor is not None and s.ready and s.item is None and todo:
                item = todo.pop(0)
                if (run := admitted(admit, item)) is None:
                    yield item, Result(Status.NOT_RUN, error="not started: it would not finish in the time left")
                    continue
                if run is not item:  # a trimmed item: its history moves with it
                    self._tries[id(run)] = self._tries.pop(id(item), 0)
                    self._answered[id(run)] = self._answered.pop(id(item), set())
                item = run
                s.item, s.started, s.cap = item, time.monotonic(), cap(item)
                s.handed = s.started
                skip = frozenset(self._answered.get(id(item), ()))
                s.stream = s.actor.work.options(num_returns="streaming").remote(item, skip, self._ship(s, item))

    def _ship(self, s: Slot, item: Any) -> dict:
        """{adapter path: (content digest, ObjectRef of its files)} for an actor off the driver's node;
        each adapter is put in the object store once per content."""
        if not s.ship or not isinstance(item, GenItem):
            return {}
        out = {}
        for path in {r.adapter for r in item.requests if r.adapter}:
            mtime = Path(path, "adapter_model.safetensors").stat().st_mtime_ns
            if self._shipped.get(path, (None,))[0] != mtime:
                files = read_folder(path)
                digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()[:24]
                self._shipped[path] = (mtime, digest, ray.put(files))
            out[path] = self._shipped[path][1:]
        return out

    def _check(self, s: Slot, ready: list, todo: list) -> Iterator[tuple[Any, Result]]:
        """One actor's news: built, a message, its death, or its item over the cap."""
        if s.item is None:
            yield from self._check_start(s, ready, todo)
            return
        if s.stream in ready:
            try:
                kind, payload = ray.get(next(s.stream))
            except (ray.exceptions.RayActorError, StopIteration) as e:
                yield from self._died(s, todo, e)
                return
            except ray.exceptions.RayTaskError as e:  # outside the handler (e.g. an argument that will not
                kind, payload = "error", f"{type(e).__name__}: {e}"[:2000]  # unpickle): the actor lives on
            took = time.monotonic() - s.handed
            if kind == "part":
                s.started = time.monotonic()  # progress: the hang clock restarts
                self._answered.setdefault(id(s.item), set()).update(i for i, _ in payload)
                yield s.item, Result(Status.PART, payload, seconds=took)
                return
            item, s.item, s.stream = s.item, None, None
            yield item, (Result(Status.OK, self._landed(payload), seconds=took) if kind == "done"
                         else Result(Status.FAILED, error=payload, seconds=took))
            return
        if time.monotonic() - s.started > s.cap:
            item = s.item
            self._kill(s)
            yield item, Result(Status.FAILED, error=f"timeout: no progress within its cap of {s.cap:.0f} s")

    def _check_start(self, s: Slot, ready: list, todo: list) -> Iterator[tuple[Any, Result]]:
        if s.ready_ref in ready:
            try:
                _, s.ship = ray.get(s.ready_ref)
                s.ready = True
                if self.on_start is not None:
                    self.on_start(time.monotonic() - s.created)
            except ray.exceptions.RayError as e:  # the engine failed to load: charge one item, so this ends
                self._kill(s)
                if todo:
                    yield todo.pop(0), Result(Status.FAILED, error=f"crash: the actor died loading its engine "
                                                                   f"({type(e).__name__}: {str(e)[:500]})")
        elif not s.ready and time.monotonic() - s.created > self.start_timeout and todo:
            self._kill(s)
            yield todo.pop(0), Result(Status.FAILED, error="timeout: the actor did not load its engine in time "
                                                           "(or the cluster had no free slot for it)")

    def _died(self, s: Slot, todo: list, e: Exception) -> Iterator[tuple[Any, Result]]:
        """The actor is gone under an item: retry it elsewhere once, then it is the item's failure."""
        item = s.item
        self._kill(s)
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        self._tries[id(item)] = tries = self._tries.get(id(item), 0) + 1
        if tries <= RETRIES_AFTER_DEATH:
            print(f"ray: the actor died on {_describe(item)} ({why}); retrying it on another actor")
            todo.insert(0, item)
            return
        yield item, Result(Status.FAILED, error=f"crash: its actor died {tries} times ({why})")

    def _landed(self, value: Any) -> Any:
        """A result as the driver stores it: a trained adapter shipped as bytes is written into OUT/adapters."""
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Trained)):
            return value
        trained, files = value
        dest = Path(self.init.out) / "adapters" / Path(trained.result.adapter).name
        write_folder(dest, files)
        return replace(trained, result=replace(trained.result, adapter=str(dest)))

    def close(self) -> None:
        for s in self.slots:
            self._kill(s)
        self.slots = []


@functools.cache
def _remote_worker():
    return ray.remote(ArcWorker)


def connect(address: str, to_console: bool) -> None:
    """Join the cluster once per process (every pool of a run shares the connection), shipping this
    code and the environment the engines and fault hooks read."""
    if ray.is_initialized():
        return
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    env.setdefault("HF_HUB_OFFLINE", "1")
    runtime_env = {"py_modules": [str(PACKAGE)], "env_vars": env}
    try:
        ray.init(address=address or None, runtime_env=runtime_env, log_to_driver=to_console,
                 include_dashboard=False if not address else None, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        auth = "" if os.environ.get("RAY_AUTH_MODE") else "; a cluster with token auth (Ray's default) needs " \
            "RAY_AUTH_MODE=token and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        raise DataError(f"--ray-address {address!r}: could not join the Ray cluster ({e}){auth}; start one with "
                        f"`ray start --head --port PORT` or leave --ray-address empty for a local one") from None
