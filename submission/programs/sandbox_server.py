"""The fork server behind `submission.programs.sandbox`: one long-lived process that imports numpy and scipy once,
then forks one fresh child per program, confines it at the OS level and runs the program there.

Started only by `Sandbox` as `python -I sandbox_server.py [--library PATH] [--skip LAYER]...`; it imports nothing
from the project but its sibling sandbox_layers.py (so `-I` keeps the caller's PYTHONPATH and environment out). It
talks to the Sandbox over stdin/stdout: 4-byte big-endian length + JSON, one request at a time. A child talks to the
server over one pipe: one JSON line per input, read with a size cap and parsed here (never unpickled).

What a child does before the program's code runs (`confine`): its own process group; fds 0-2 on /dev/null, the
report pipe on fd 3, every other fd closed; an empty temporary folder as cwd; an empty environment; rlimits (AS,
CPU, NPROC 0, FSIZE 0, NOFILE, CORE 0); Landlock (read-only access beneath the interpreter's folders, nothing
else); seccomp (kills exec, fork, clone (threads too), sockets, ptrace, io_uring, mount...; EPERM for opening a file
for writing, for changing the file system, for sending signals and for raising rlimits). Then the `ast` check of
the syntax tree (sandbox_ast.py) and the `audit` hook (sandbox_audit.py). The check runs in the child, not here:
hostile text (deep nesting, huge literals) is parsed under the rlimits and seccomp, where a crash costs that
program only, and the tree it checks is the one compiled (no second parse).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # no BLAS threads: clone is denied
    os.environ[_var] = "1"

import ast  # noqa: E402
import builtins  # noqa: E402
import errno  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import selectors  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402, F401  (imported once here, shared by every child)

# what programs commonly import: already in sys.modules, so the child never reads the disk for them
PREIMPORTED = ("collections", "copy", "dataclasses", "enum", "functools", "heapq", "itertools", "math", "re",
               "typing", "ctypes", "subprocess")
for _name in PREIMPORTED:
    importlib.import_module(_name)


def load_sibling(name: str) -> types.ModuleType:
    """A module file beside this one, loaded by path (under -I this folder is not on sys.path, and stays off)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                     name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


layers_module = load_sibling("sandbox_layers")
ast_module = load_sibling("sandbox_ast")
audit_module = load_sibling("sandbox_audit")
REPORT_FD, short, write_all, read_capped = (layers_module.REPORT_FD, layers_module.short, layers_module.write_all,
                                            layers_module.read_capped)

MAX_SIDE = 30
CHILD_STATUSES = {"ok", "exception", "memory", "syntax", "no_entry", "import_error", "forbidden", "bad_output",
                  "crashed"}
DETAIL_CHARS = layers_module.DETAIL_CHARS
RECURSION_LIMIT = 10_000  # BARC's recursive flood fill on a 30x30 grid goes 900 deep
STACK_BYTES = 512 << 20    # main-thread stack for that recursion (set on the server, inherited)


# ---- the child ---------------------------------------------------------------------------------------------------

def classify(e: BaseException) -> tuple[str, str]:
    """A program's exception as (status, detail)."""
    if isinstance(e, MemoryError):
        return "memory", short(e)
    if isinstance(e, ImportError):
        return "import_error", short(e)
    if isinstance(e, OSError) and e.errno in (errno.EPERM, errno.EACCES):
        return "forbidden", short(e)
    return "exception", short(e)


def as_cells(out) -> tuple[list | None, str]:
    """The program's answer as a list of int rows, or why it is not a grid (cheap checks first: it may be huge)."""
    if isinstance(out, np.ndarray):
        if out.ndim != 2 or out.shape[0] > MAX_SIDE or out.shape[1] > MAX_SIDE or 0 in out.shape:
            return None, f"an array of shape {out.shape}, not 1..30 x 1..30"
        if out.dtype.kind not in "iu":
            return None, f"an array of dtype {out.dtype}, not integers"
        out = out.tolist()
    if not isinstance(out, (list, tuple)):
        return None, f"a {type(out).__name__}, not a grid"
    if not 1 <= len(out) <= MAX_SIDE:
        return None, f"{len(out)} rows, not 1..30"
    rows = []
    for r, row in enumerate(out):
        if isinstance(row, np.ndarray):
            row = row.tolist() if row.ndim == 1 and row.size <= MAX_SIDE else None
        if not isinstance(row, (list, tuple)) or not 1 <= len(row) <= MAX_SIDE:
            return None, f"row {r} is not a list of 1..30 cells"
        if len(row) != len(out[0]):
            return None, f"ragged: row {r} has {len(row)} cells, row 0 has {len(out[0])}"
        cells = []
        for v in row:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 9:
                return None, f"row {r} holds {str(v)[:20]!r}, not an integer 0..9"
            cells.append(int(v))
        rows.append(cells)
    return rows, ""


def run_program(source: str, inputs: list, library: str | None, layers: dict) -> None:
    """In the confined child: check and exec the source, call its entry on each input, one report line per
    input."""
    answered = [0]  # inputs reported so far

    def send(i: int, status: str, detail: str = "", grid=None) -> None:
        write_all(REPORT_FD, (json.dumps({"i": i, "status": status, "grid": grid, "detail": detail}) + "\n").encode())
        answered[0] = i + 1

    def send_all(status: str, detail: str) -> None:
        for i in range(len(inputs)):
            send(i, status, detail)

    sys.setrecursionlimit(RECURSION_LIMIT)
    sys.dont_write_bytecode = True
    random.seed(0)  # every child starts from the same state: a program's answers do not depend on the run
    np.random.seed(0)
    sys.modules["common"] = None  # `import common` fails unless a library was given
    if library is not None:
        module = types.ModuleType("common")
        module.__file__ = "common.py"
        try:
            exec(compile(library, "common.py", "exec"), module.__dict__)
        except BaseException as e:
            return send_all("import_error", "the library common.py failed: " + short(e))
        sys.modules["common"] = module
    try:
        tree = ast.parse(source, "program.py") if layers.get("ast") == "active" else None
        code = compile(source if tree is None else tree, "program.py", "exec")
    except (SyntaxError, ValueError) as e:
        return send_all("syntax", short(e))
    except (RecursionError, MemoryError) as e:
        return send_all(*classify(e))
    if tree is not None and (problems := ast_module.problems(tree)):
        return send_all("forbidden", ("syntax check: " + "; ".join(problems[:3]))[:DETAIL_CHARS])
    if layers.get("audit") == "active":
        audit_module.install(frozenset(ast_module.ALLOWED_MODULES), layers_module.library_roots(),
                             audit_module.ender(REPORT_FD, len(inputs), answered, DETAIL_CHARS))
    module = types.ModuleType("program")  # in sys.modules: dataclasses and enum look their class's module up there
    module.__builtins__ = builtins
    sys.modules["program"], namespace = module, module.__dict__
    try:
        exec(code, namespace)
    except BaseException as e:
        return send_all(*classify(e))
    entry = namespace.get("main") if callable(namespace.get("main")) else namespace.get("transform")
    if not callable(entry):
        return send_all("no_entry", "defines neither main(input_grid) nor transform(grid)")
    for i, grid in enumerate(inputs):
        try:
            cells, problem = as_cells(entry(np.array(grid, dtype=int)))
        except BaseException as e:
            send(i, *classify(e))
            continue
        send(i, "ok" if cells is not None else "bad_output", problem, cells)


def child(report_fd: int, folder: str, job: dict, server: dict) -> None:
    """After fork: confine, run, exit. Never returns into the server's code."""
    try:
        try:
            layers_module.confine(report_fd, folder, job["limits"], len(job["inputs"]), server["layers"],
                                  server["filter"], server["pid"])
        except BaseException as e:
            detail = "sandbox: confining the child failed, the program did not run: " + short(e)
            for i in range(len(job["inputs"])):
                write_all(REPORT_FD, (json.dumps({"i": i, "status": "crashed", "detail": detail}) + "\n").encode())
            return
        run_program(job["source"], job["inputs"], server["library"], server["layers"])
    finally:
        os._exit(0)


# ---- the server side of one child --------------------------------------------------------------------------------

class Running:
    """One child: its pipe, its deadline (per input: reset by each report) and what it has said so far."""

    def __init__(self, index: int, job: dict, server: dict):
        self.index, self.n, self.limits = index, len(job["inputs"]), job["limits"]
        self.cap = self.limits["output_bytes"] * (self.n + 1)
        self.buffer, self.received, self.reports = b"", 0, []
        self.killed_for = ""
        self.folder = tempfile.mkdtemp(prefix="arc-sandbox-")
        r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(r)
            child(w, self.folder, job, server)
        os.close(w)
        try:
            os.setpgid(self.pid, self.pid)
        except OSError:  # it did so itself already, or is gone
            pass
        self.fd = r
        os.set_blocking(r, False)
        self.pidfd = os.pidfd_open(self.pid)
        self.deadline = time.monotonic() + self.limits["timeout_s"]

    def kill(self, why: str) -> None:
        if not self.killed_for:
            self.killed_for = why
        self.deadline = time.monotonic() + 1.0  # SIGKILL again then, should it still be there
        for send in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                send()
            except OSError:
                pass

    def read(self) -> None:
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        self.received += len(chunk)
        if self.received > self.cap:
            return self.kill("bad_output:a report over the output cap")
        self.buffer += chunk
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.accept(line)
        if len(self.buffer) > self.limits["output_bytes"]:
            self.kill("bad_output:a report over the output cap")

    def accept(self, line: bytes) -> None:
        if self.killed_for:
            return
        try:
            rep = json.loads(line) if len(line) <= self.limits["output_bytes"] else None
        except (ValueError, RecursionError):
            rep = None
        ok = (isinstance(rep, dict) and rep.get("i") == len(self.reports) and rep.get("status") in CHILD_STATUSES
              and isinstance(rep.get("detail", ""), str) and (rep.get("grid") is None or isinstance(rep["grid"], list)))
        if not ok or len(self.reports) >= self.n:
            return self.kill("bad_output:an unreadable report")
        self.reports.append({"status": rep["status"], "grid": rep.get("grid"),
                             "detail": rep.get("detail", "")[:DETAIL_CHARS]})
        self.deadline = time.monotonic() + self.limits["timeout_s"]

    def finish(self) -> list[dict]:
        _, status = os.waitpid(self.pid, 0)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # anything left in its group (nothing can be: fork is denied)
        except OSError:
            pass
        if not self.killed_for:
            try:
                tail = read_capped(self.fd, max(0, self.cap - self.received))
            except BlockingIOError:  # cannot happen once the writer is gone; never block on it
                tail = b""
            self.received += len(tail)
            self.buffer += tail
            if self.received > self.cap:
                self.killed_for = "bad_output:a report over the output cap"
            for line in self.buffer.split(b"\n")[:self.n]:
                if line:
                    self.accept(line)
        os.close(self.fd)
        os.close(self.pidfd)
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.reports + self.missing(status)

    def missing(self, status: int) -> list[dict]:
        """Verdicts for the inputs it never answered: why it stopped."""
        first = len(self.reports)
        if first >= self.n:
            return []
        if self.killed_for:
            kind, why = self.killed_for.split(":", 1)
        elif os.WIFSIGNALED(status):
            kind, why = signal_verdict(os.WTERMSIG(status))
        else:
            kind, why = "crashed", f"exited with code {os.WEXITSTATUS(status)} without answering"
        rest = f"not run: the program stopped on input {first} ({kind})"
        return [{"status": kind, "grid": None, "detail": why if i == first else rest} for i in range(first, self.n)]


def signal_verdict(sig: int) -> tuple[str, str]:
    name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
    if sig == signal.SIGSYS:
        return "forbidden", "killed by seccomp: a blocked system call (exec, fork, thread, socket, ptrace ...)"
    if sig in (signal.SIGXCPU, signal.SIGKILL):
        return "timeout", f"killed by {name}: the CPU-time limit"
    if sig == signal.SIGXFSZ:
        return "forbidden", "killed by SIGXFSZ: wrote to a file"
    return "crashed", f"killed by {name}"


def run_batch(request: dict, server: dict) -> list[list[dict]]:
    """Every program of the request, at most `workers` children at once."""
    jobs = [{"source": s, "inputs": request["inputs"], "limits": request["limits"]} for s in request["sources"]]
    results: list = [None] * len(jobs)
    todo = list(range(len(jobs)))[::-1]
    running: dict[int, Running] = {}
    sel = selectors.DefaultSelector()
    try:
        while todo or running:
            while todo and len(running) < max(1, request["workers"]):
                c = Running(todo[-1], jobs[todo.pop()], server)
                running[c.pid] = c
                sel.register(c.fd, selectors.EVENT_READ, (c, "pipe"))
                sel.register(c.pidfd, selectors.EVENT_READ, (c, "exit"))
            wait = max(0.0, min(c.deadline for c in running.values()) - time.monotonic())
            for key, _ in sel.select(wait):
                c, what = key.data
                if c.pid not in running:
                    continue
                if what == "pipe":
                    c.read()
                else:
                    sel.unregister(c.fd)
                    sel.unregister(c.pidfd)
                    del running[c.pid]
                    results[c.index] = c.finish()
            now = time.monotonic()
            for c in running.values():
                if now >= c.deadline:
                    c.kill(f"timeout:no answer within {c.limits['timeout_s']} s (killed)")
    finally:
        for c in running.values():
            c.kill("crashed:the server stopped")
            c.finish()
        sel.close()
    return results


# ---- the conversation with the Sandbox ---------------------------------------------------------------------------

def receive() -> dict | None:
    head = read_exact(0, 4)
    if head is None:
        return None
    body = read_exact(0, struct.unpack(">I", head)[0])
    return None if body is None else json.loads(body)


def read_exact(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def reply(obj) -> None:
    body = json.dumps(obj).encode()
    write_all(1, struct.pack(">I", len(body)) + body)


def main(argv: list[str]) -> int:
    """argv: [--library PATH] [--skip LAYER]... (--skip: leave out seccomp, landlock, ast or audit: tests only)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = STACK_BYTES if hard == resource.RLIM_INFINITY else min(STACK_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_STACK, (max(soft, want) if soft != resource.RLIM_INFINITY else soft, hard))
    options = dict(zip(argv[::2], argv[1::2]))
    skip = {value for flag, value in zip(argv[::2], argv[1::2]) if flag == "--skip"}
    library = None
    if "--library" in options:  # read before any fork
        with open(options["--library"], encoding="utf-8") as f:
            library = f.read()
    flt, problem = None, "skipped on request" if "seccomp" in skip else None
    if problem is None:
        try:
            flt = layers_module.build_seccomp()
        except Exception as e:
            problem = f"{type(e).__name__}: {e}".splitlines()[0]
    allowed, roots = frozenset(ast_module.ALLOWED_MODULES), layers_module.library_roots()
    layers = layers_module.probe(flt, problem, skip, {"ast": ast_module.self_test,
                                                      "audit": lambda: audit_module.self_test(allowed, roots)})
    server = {"library": library, "filter": flt, "layers": layers, "pid": os.getpid()}
    reply({"layers": server["layers"], "pid": os.getpid()})
    while (request := receive()) is not None:
        reply({"results": run_batch(request, server)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
