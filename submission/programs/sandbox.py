"""Run untrusted Python programs (model-written or a user's file) on ARC grids, isolated at the OS level.

    with Sandbox(Limits(timeout_s=2.0)) as box:
        print(box.layers())                       # {"seccomp": "active", "landlock": "active", "ast": ...}
        verdicts = box.run(source, [grid, ...])   # one Verdict per input grid
        result = verify(box, source, task, "induction")   # a ProgramResult: demo_fits, test_outputs

A program defines `main(input_grid)` (BARC's convention) or `transform(grid)`: a numpy int array in, a grid out.
`Sandbox(library=path)` makes `import common` / `from common import *` load that file.

Why OS-level: a language-level allow-list is no boundary (numpy alone reads and writes files and reaches ctypes;
`().__class__.__base__.__subclasses__()` reaches os.system without an import). The fork server
(sandbox_server.py, its own interpreter started with `python -I`) imports numpy and scipy once and forks one fresh
child per program; the child takes every layer (rlimits, closed fds, empty cwd and environment, Landlock read-only
file system, seccomp) before the program's code runs, and is SIGKILLed at its deadline. The grids travel as JSON,
the answers come back as JSON lines read with a size cap, and this side re-validates every grid.

Two language-level layers sit on top, as defence in depth, never instead: `ast` (sandbox_ast.py: imports off an
allow-list, dunders, eval/exec/open..., getattr with a built name are "forbidden" before the program runs) and
`audit` (sandbox_audit.py: a sys.addaudithook hook that ends the program "forbidden" on a write, exec, fork,
socket, ctypes, frame access ...). Every layer is probed at start and reported by layers(); one that is missing
or skipped is named (a warning here, the doctor's line, summary.json) and the others still apply.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from submission.arc.data import Task
from submission.arc.grid import Grid, grid_problem, grids_equal, to_grid, to_list
from submission.programs.record import ProgramResult

SERVER = Path(__file__).with_name("sandbox_server.py")
STATUSES = ("ok", "timeout", "memory", "exception", "syntax", "no_entry", "import_error", "forbidden", "bad_output",
            "crashed")
SKIPPABLE = ("seccomp", "landlock", "ast", "audit")


class SandboxError(RuntimeError):
    """The sandbox cannot run programs safely (a missing seccomp, a dead server); the message says what to do."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 2.0    # wall clock per input (the deadline resets with each answer); then SIGKILL
    memory_mb: int = 1024     # RLIMIT_AS of the child (numpy + scipy already take ~190 MB of it)
    cpu_s: int = 4            # RLIMIT_CPU per input (x inputs for the child): a backstop behind the wall clock
    output_bytes: int = 16384  # the most one input's answer may take on the pipe (a 30x30 grid is ~2.7 kB)

    def problems(self) -> list[str]:
        """Every bad field, named."""
        out = []
        if not self.timeout_s > 0:
            out.append(f"timeout_s={self.timeout_s}: must be > 0")
        if self.memory_mb < 256:
            out.append(f"memory_mb={self.memory_mb}: must be >= 256 (numpy and scipy alone take ~190 MB)")
        if self.cpu_s < 1:
            out.append(f"cpu_s={self.cpu_s}: must be >= 1")
        if self.output_bytes < 4096:
            out.append(f"output_bytes={self.output_bytes}: must be >= 4096 (a 30x30 grid takes ~2.7 kB)")
        return out


@dataclass(frozen=True)
class Verdict:
    status: str               # one of STATUSES
    grid: Grid | None = None  # the answer when status == "ok"
    detail: str = ""          # the exception, the signal, what is wrong with the output


class Sandbox:
    """A fork server and the conversation with it; a context manager (start on enter, stop on exit)."""

    def __init__(self, limits: Limits = Limits(), library: Path | None = None, require_seccomp: bool = True,
                 skip_layers: tuple[str, ...] = ()):
        """`require_seccomp=False` runs (with a warning) where seccomp is missing; `skip_layers` ("seccomp",
        "landlock", "ast", "audit") leaves layers out on purpose: for tests that each layer holds alone."""
        if problems := limits.problems():
            raise ValueError("bad sandbox limits: " + "; ".join(problems))
        if library is not None and not Path(library).is_file():
            raise SandboxError(f"library {library}: no such file (it is what `import common` loads)")
        if unknown := set(skip_layers) - set(SKIPPABLE):
            raise ValueError(f"skip_layers: {sorted(unknown)} (only {', '.join(SKIPPABLE)} can be left out)")
        self.limits, self.library, self.require_seccomp = limits, library, require_seccomp
        self.skip_layers = tuple(skip_layers)
        self._proc: subprocess.Popen | None = None
        self._layers: dict[str, str] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start the server and read which layers it found; refuses to go on without seccomp unless told to."""
        if self._proc is not None:
            return
        cmd = [sys.executable, "-I", str(SERVER)] + [a for name in self.skip_layers for a in ("--skip", name)]
        if self.library is not None:
            cmd += ["--library", str(Path(self.library).resolve())]
        env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
                                      start_new_session=True, cwd="/")
        hello = self._receive()
        self._layers = dict(hello["layers"])
        missing = {k: v for k, v in self._layers.items() if v != "active"}
        if "seccomp" in missing and self.require_seccomp:
            self.close()
            raise SandboxError(f"seccomp is {missing['seccomp']}: programs could exec, fork and open sockets. "
                               "Install pyseccomp and libseccomp.so.2, or pass require_seccomp=False to run "
                               "without it (unsafe)")
        for name, why in missing.items():
            warnings.warn(f"sandbox layer {name} is {why}; the other layers still apply", stacklevel=2)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def layers(self) -> dict[str, str]:
        """{layer: "active" | "missing: <why>"} as the server probed them at start."""
        self.start()
        return dict(self._layers)

    def run(self, source: str, inputs: list[Grid]) -> list[Verdict]:
        """One fresh child runs the program on every input, in order; one Verdict per input."""
        return self.run_many([source], inputs, workers=1)[0]

    def run_many(self, sources: list[str], inputs: list[Grid], workers: int = 2) -> list[list[Verdict]]:
        """Each program in its own fresh child, at most `workers` children at once."""
        grids = []
        for k, g in enumerate(inputs):
            cells = to_list(g) if isinstance(g, np.ndarray) else g
            if problem := grid_problem(cells):
                raise ValueError(f"input grid {k}: {problem}")
            grids.append(cells)
        for k, s in enumerate(sources):
            if not isinstance(s, str):
                raise TypeError(f"source {k}: a {type(s).__name__}, not a str")
        if not sources:
            return []
        self.start()
        request = {"sources": sources, "inputs": grids, "limits": asdict(self.limits), "workers": int(workers)}
        with self._lock:
            self._send(request)
            answer = self._receive()
        return [[verdict(r) for r in results] for results in answer["results"]]

    def _send(self, obj) -> None:
        body = json.dumps(obj).encode()
        try:
            self._proc.stdin.write(struct.pack(">I", len(body)) + body)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise SandboxError(f"the sandbox server is gone ({e}); start a new Sandbox") from e

    def _receive(self) -> dict:
        head = self._proc.stdout.read(4)
        body = self._proc.stdout.read(struct.unpack(">I", head)[0]) if len(head) == 4 else b""
        if not body:
            code = self._proc.poll()
            raise SandboxError(f"the sandbox server stopped (exit code {code}); its error is on stderr above")
        return json.loads(body)


def verdict(report: dict) -> Verdict:
    """A server report as a Verdict; the grid is validated here again (the child is not trusted)."""
    status, detail = report.get("status"), str(report.get("detail", ""))
    if status not in STATUSES:
        return Verdict("bad_output", None, f"unknown status {str(status)[:40]!r}")
    if status != "ok":
        return Verdict(status, None, detail)
    if problem := grid_problem(report.get("grid")):
        return Verdict("bad_output", None, problem)
    return Verdict("ok", to_grid(report["grid"]), detail)


def verify(sandbox: Sandbox, source: str, task: Task, origin: str) -> ProgramResult:
    """Run the program on the task's demos and test inputs: does it fit every demo, and what does it answer?"""
    return verify_many(sandbox, [source], task, origin)[0]


def verify_many(sandbox: Sandbox, sources: list[str], task: Task, origin: str, workers: int = 1) -> list[ProgramResult]:
    """`verify` for many programs of one task, `workers` children at once (one fresh child per program)."""
    runs = sandbox.run_many(sources, [p.input for p in task.train] + [p.input for p in task.test], workers)
    return [ProgramResult(
        origin=origin, source=source,
        demo_fits=tuple(v.status == "ok" and grids_equal(v.grid, p.output)
                        for v, p in zip(verdicts[:len(task.train)], task.train)),
        test_outputs=tuple(v.grid if v.status == "ok" else None for v in verdicts[len(task.train):]))
        for source, verdicts in zip(sources, runs)]


def describe(v: Verdict, expected: Grid | None) -> str:
    """One line for a person: fits / wrong (how) / the named failure."""
    if v.status != "ok":
        return f"{v.status}: {v.detail}" if v.detail else v.status
    (h, w) = v.grid.shape
    if expected is None:
        return f"answered {h}x{w}"
    expected = np.asarray(expected)
    if v.grid.shape != expected.shape:
        return f"wrong: shape {h}x{w}, expected {expected.shape[0]}x{expected.shape[1]}"
    wrong = int((v.grid != expected).sum())
    return "fits" if wrong == 0 else f"wrong: {wrong} of {v.grid.size} cells differ"
