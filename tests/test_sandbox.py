"""The program sandbox: every test is an escape or a failure that must end in its named verdict, after which the
same sandbox still runs a normal program (ok). A test fails if the escape works (a marker file appears, a secret
shows up, a write lands). These tests run the OS layers alone (the `ast` and `audit` layers left out: they would
stop most of these programs before the OS is reached); test_sandbox_lang.py shows those two layers each alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from submission.arc.data import load_challenges, load_solutions
from submission.programs.sandbox import Limits, Sandbox, SandboxError, Verdict, verify

ROOT = Path(__file__).resolve().parents[1]
GRID = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int8)
IDENTITY = "def transform(grid):\n    return grid\n"
LANGUAGE_LAYERS = ("ast", "audit")


def os_layers(limits: Limits = Limits()) -> Sandbox:
    """A started Sandbox with the OS layers alone (its warnings about the two left out are expected)."""
    sandbox = Sandbox(limits, skip_layers=LANGUAGE_LAYERS)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "sandbox layer (ast|audit) is missing: skipped on request")
        sandbox.start()
    return sandbox


@pytest.fixture(scope="module")
def box():
    with os_layers(Limits(timeout_s=1.5, memory_mb=768, cpu_s=3)) as sandbox:
        yield sandbox


def program(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


def expect(box: Sandbox, source: str, status: str, inputs=(GRID,)) -> list[Verdict]:
    """The program gets `status` on every input, and the sandbox then still runs a normal program."""
    verdicts = box.run(program(source), list(inputs))
    assert [v.status for v in verdicts] == [status] * len(inputs), verdicts
    after = box.run(IDENTITY, [GRID])
    assert after[0].status == "ok" and (after[0].grid == GRID).all(), after
    return verdicts


def test_layers_report_seccomp_and_landlock_active(box):
    layers = box.layers()
    assert layers["seccomp"] == "active", layers
    assert layers["landlock"] == "active", layers  # kernel 6.18 here
    assert all(v == "active" or v.startswith("missing: ") for v in layers.values())


def test_a_right_program_answers(box):
    [v] = box.run("def main(input_grid):\n    return input_grid[::-1]\n", [GRID])
    assert v.status == "ok" and v.grid.dtype == np.int8 and (v.grid == GRID[::-1]).all()


def test_main_and_transform_both_accepted_and_lists_too(box):
    for src in ("def main(input_grid):\n    return input_grid.T\n",
                "def transform(grid):\n    return [list(r) for r in grid.T]\n"):
        [v] = box.run(src, [GRID])
        assert v.status == "ok" and (v.grid == GRID.T).all()


# ---- time, memory, processes -------------------------------------------------------------------------------------

def test_infinite_loop_is_a_timeout(box):
    v = expect(box, "def main(g):\n    while True:\n        pass", "timeout", [GRID, GRID])
    assert "within" in v[0].detail and "not run" in v[1].detail


def test_a_loop_ignoring_sigterm_and_sigalrm_still_ends(box):
    expect(box, """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM, signal.SIGINT})
        def main(g):
            while True:
                try:
                    pass
                except BaseException:
                    pass
        """, "timeout")


def test_memory_bomb(box):
    expect(box, "import numpy as np\ndef main(g):\n    return np.ones((100000, 100000))", "memory")
    expect(box, "import numpy as np\ndef main(g):\n    x = [g]\n    while True:\n        x.append(np.empty(50 << 20))",
           "memory")


@pytest.mark.parametrize("body", [
    "import os\ndef main(g):\n    os.fork()\n    return g",
    "import os\ndef main(g):\n    while True:\n        os.fork()",
    "import subprocess\ndef main(g):\n    subprocess.run(['true'])\n    return g",
    "import multiprocessing\ndef main(g):\n    p = multiprocessing.Process(target=print)\n    p.start()\n    return g",
])
def test_fork_bombs_and_child_processes_are_forbidden(box, body):
    expect(box, body, "forbidden")


def test_deep_recursion_is_an_exception_not_a_crash(box):
    [v] = expect(box, "def f(n):\n    return f(n + 1)\ndef main(g):\n    return f(0)", "exception")
    assert "RecursionError" in v.detail


def test_barc_recursive_flood_fill_900_deep_fits(box):
    src = program("""
        import numpy as np
        def flood(grid, x, y, color):
            if x < 0 or y < 0 or x >= grid.shape[0] or y >= grid.shape[1] or grid[x, y] != 0:
                return
            grid[x, y] = color
            flood(grid, x + 1, y, color)
            flood(grid, x, y + 1, color)
            flood(grid, x - 1, y, color)
            flood(grid, x, y - 1, color)
        def main(input_grid):
            out = input_grid.copy()
            flood(out, 0, 0, 3)
            return out
        """)
    [v] = box.run(src, [np.zeros((30, 30), dtype=np.int8)])
    assert v.status == "ok" and (v.grid == 3).all(), v
    deep = ("def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
            "def main(g):\n    return [[depth(9000) % 10]]\n")
    [v] = box.run(deep, [GRID])
    assert v.status == "ok" and v.grid.tolist() == [[0]], v


def test_a_leftover_thread_is_forbidden_and_poisons_nothing(box):
    expect(box, """
        import threading, time
        def spin():
            while True:
                time.sleep(0.01)
        def main(g):
            threading.Thread(target=spin, daemon=True).start()
            return g
        """, "forbidden")


# ---- outputs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ret, why", [
    ("np.zeros((5000, 5000), dtype=int)", "shape"),
    ("np.zeros((3, 3, 3), dtype=int)", "shape"),
    ("[[1, 2], [3]]", "ragged"),
    ("[[1, 10]]", "not an integer 0..9"),
    ("[[-1]]", "not an integer 0..9"),
    ("np.full((2, 2), 1.0)", "dtype"),
    ("[[True]]", "not an integer 0..9"),
    ("'3'", "str"),
    ("[]", "rows"),
])
def test_bad_outputs_are_named(box, ret, why):
    [v] = expect(box, f"import numpy as np\ndef main(g):\n    return {ret}", "bad_output")
    assert why in v.detail, v


def test_a_flood_straight_into_the_report_pipe_is_capped(box):
    expect(box, """
        import os
        def main(g):
            for fd in range(3, 16):
                try:
                    os.write(fd, b'[' * 100000)
                except OSError:
                    pass
            while True:
                pass
        """, "bad_output")


def test_an_exception_names_its_type_and_message(box):
    [v] = expect(box, "def main(g):\n    raise ValueError('boom 42')", "exception")
    assert v.detail == "ValueError: boom 42"


def test_syntax_error_and_no_entry_and_missing_library(box):
    expect(box, "def main(g)\n    return g", "syntax")
    expect(box, "def solve(g):\n    return g", "no_entry")
    expect(box, "from common import *\ndef main(g):\n    return g", "import_error")


# ---- the file system ---------------------------------------------------------------------------------------------

def test_writes_through_numpy_fail_and_leave_nothing(box, tmp_path):
    target = tmp_path / "out.bin"
    expect(box, f"import numpy as np\ndef main(g):\n    np.save({str(tmp_path / 'x.npy')!r}, g)\n    return g",
           "forbidden")
    expect(box, f"import numpy as np\ndef main(g):\n    g.tofile({str(target)!r})\n    return g", "forbidden")
    expect(box, "import numpy as np\ndef main(g):\n    np.save('here.npy', g)\n    return g", "forbidden")
    assert not list(tmp_path.iterdir())


def test_writing_proc_self_mem_is_forbidden(box):
    expect(box, "def main(g):\n    with open('/proc/self/mem', 'r+b') as f:\n        f.write(b'x')\n    return g",
           "forbidden")


def test_writing_a_file_in_cwd_is_forbidden(box):
    expect(box, "def main(g):\n    open('out.txt', 'w').write('x')\n    return g", "forbidden")
    expect(box, "import os\ndef main(g):\n    os.close(os.open('out.txt', os.O_RDWR | os.O_CREAT))\n    return g",
           "forbidden")


def test_reading_a_secret_outside_the_sandbox_fails_and_never_leaks(box, tmp_path):
    secret = "TOPSECRET-7f3a9c"
    path = tmp_path / "secret.txt"
    path.write_text(secret)
    for body in (f"import numpy as np\ndef main(g):\n    raise ValueError(np.fromfile({str(path)!r}, dtype=np.uint8)"
                 ".tobytes().decode())",
                 f"import numpy as np\ndef main(g):\n    raise ValueError(bytes(np.memmap({str(path)!r}, mode='r')))",
                 f"def main(g):\n    raise ValueError(open({str(path)!r}).read())"):
        verdicts = expect(box, body, "forbidden")
        assert all(secret not in v.detail and v.grid is None for v in verdicts)
    # the answer itself cannot carry it either: the grid would encode it as digits
    [v] = box.run(f"def main(g):\n    return [[int(c) % 10 for c in open({str(path)!r}, 'rb').read()]]", [GRID])
    assert v.status == "forbidden" and v.grid is None


# ---- ctypes, the object graph, exec, sockets, the environment ----------------------------------------------------

def test_ctypes_and_numpy_ctypeslib_reach_nothing(box, tmp_path):
    marker = tmp_path / "ctypes-marker"
    for body in (f"import ctypes\ndef main(g):\n    ctypes.CDLL(None).system(b'touch {marker}')\n    return g",
                 "import numpy as np\ndef main(g):\n    libc = np.ctypeslib.ctypes.CDLL('libc.so.6')\n"
                 f"    libc.system(b'touch {marker}')\n    return g"):
        expect(box, body, "forbidden")
    assert not marker.exists()


def test_object_graph_walk_to_os_system_and_popen(box, tmp_path):
    marker = tmp_path / "graph-marker"
    walk_system = f"""
        def main(g):
            for c in ().__class__.__base__.__subclasses__():
                if c.__name__ == '_wrap_close':
                    c.__init__.__globals__['system']('touch {marker}')
            return g
        """
    walk_popen = f"""
        def main(g):
            popen = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen']
            if not popen:
                raise LookupError('no Popen among the subclasses')
            popen[0](['touch', '{marker}']).wait()
            return g
        """
    expect(box, walk_system, "forbidden")
    expect(box, walk_popen, "forbidden")  # the server imports subprocess: Popen is among the subclasses
    assert not marker.exists()


def test_os_system_and_exec_are_forbidden(box, tmp_path):
    marker = tmp_path / "system-marker"
    expect(box, f"import os\ndef main(g):\n    os.system('touch {marker}')\n    return g", "forbidden")
    expect(box, f"import os\ndef main(g):\n    os.execv('/usr/bin/touch', ['touch', '{marker}'])", "forbidden")
    expect(box, f"import os\ndef main(g):\n    os.execve('/usr/bin/touch', ['touch', '{marker}'], {{}})",
           "forbidden")
    assert not marker.exists()


def test_sockets_are_forbidden(box):
    expect(box, "import socket\ndef main(g):\n    socket.socket().connect(('127.0.0.1', 9))\n    return g",
           "forbidden")
    expect(box, "import socket\ndef main(g):\n    socket.socketpair()\n    return g", "forbidden")


def test_the_environment_does_not_leak(monkeypatch):
    secret = "ENVSECRET-51c2"
    monkeypatch.setenv("ARC_SANDBOX_SECRET", secret)
    with os_layers(Limits(timeout_s=2.0)) as sandbox:  # started while the secret is set
        src = "import os\ndef main(g):\n    raise ValueError(repr(dict(os.environ)) + str(len(os.environ)))"
        [v] = sandbox.run(src, [GRID])
        assert v.status == "exception" and secret not in v.detail and v.detail == "ValueError: {}0"
        [v] = sandbox.run("def main(g):\n    raise ValueError(open('/proc/self/environ', 'rb').read())", [GRID])
        assert v.status == "forbidden" and secret not in v.detail
        assert sandbox.run(IDENTITY, [GRID])[0].status == "ok"


def test_signals_to_other_processes_are_refused(box):
    expect(box, "import os, signal\ndef main(g):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return g",
           "forbidden")
    expect(box, "import os, signal\ndef main(g):\n    os.kill(-1, signal.SIGKILL)\n    return g", "forbidden")


# ---- the library, run_many, verify -------------------------------------------------------------------------------

def test_barc_program_with_the_user_library(tmp_path):
    lib = tmp_path / "common.py"
    lib.write_text("import numpy as np\nBlack = 0\ndef flip_x(grid):\n    return np.fliplr(grid)\n")
    src = program("""
        from common import *
        import numpy as np
        def main(input_grid):
            out = flip_x(input_grid)
            out[out == Black] = Black
            return out
        """)
    with Sandbox(Limits(timeout_s=2.0), library=lib) as sandbox:
        [v] = sandbox.run(src, [GRID])
        assert v.status == "ok" and (v.grid == GRID[:, ::-1]).all(), v
    with pytest.raises(SandboxError, match="no such file"):
        Sandbox(library=tmp_path / "missing.py")


def test_run_many_keeps_order_and_isolates_programs(box):
    sources = [IDENTITY, "def main(g):\n    while True:\n        pass", "def main(g):\n    return g.T",
               "import os\ndef main(g):\n    os.fork()", "def main(g):\n    return g * 0"]
    out = box.run_many(sources, [GRID, GRID[::-1]], workers=2)
    assert [[v.status for v in vs] for vs in out] == [["ok"] * 2, ["timeout"] * 2, ["ok"] * 2, ["forbidden"] * 2,
                                                      ["ok"] * 2]
    assert (out[2][1].grid == GRID[::-1].T).all() and (out[4][0].grid == 0).all()


def test_state_does_not_survive_between_programs(box):
    box.run("import numpy as np\nnp.poisoned = True\ndef main(g):\n    return g", [GRID])
    [v] = box.run("import numpy as np\ndef main(g):\n    return g * 0 + int(hasattr(np, 'poisoned'))", [GRID])
    assert v.status == "ok" and (v.grid == 0).all()


def test_verify_on_a_real_task():
    task = load_challenges("arc1-train").tasks["68b16354"]  # flip upside down
    truth = np.array(load_solutions("arc1-train")["68b16354"][0])
    with Sandbox() as sandbox:
        good = verify(sandbox, "def main(input_grid):\n    return input_grid[::-1]\n", task, "file")
        bad = verify(sandbox, "def main(input_grid):\n    return input_grid[:, ::-1]\n", task, "file")
    assert good.verified and good.origin == "file" and len(good.demo_fits) == len(task.train)
    assert len(good.test_outputs) == 1 and (good.test_outputs[0] == truth).all()
    assert not bad.verified


def test_limits_are_validated_all_at_once():
    with pytest.raises(ValueError, match="timeout_s=0.*memory_mb=10"):
        Sandbox(Limits(timeout_s=0, memory_mb=10))


# ---- the command -------------------------------------------------------------------------------------------------

def test_program_check_command(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("def main(input_grid):\n    return input_grid[::-1]\n")
    bad.write_text("def main(input_grid):\n    return input_grid[:, ::-1]\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def check(path: Path, task: str = "68b16354") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "submission", "program-check", "--program", str(path),
                               "--challenges", "arc1-train", "--task", task], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=120)

    ok = check(good)
    assert ok.returncode == 0, ok.stderr
    assert "seccomp: active" in ok.stdout and "demo 0: fits" in ok.stdout and "verified: yes" in ok.stdout
    assert "ast: active" in ok.stdout and "audit: active" in ok.stdout
    assert "test 0: answered 7x7, matches the known output" in ok.stdout
    wrong = check(bad)
    assert wrong.returncode == 1 and "cells differ" in wrong.stdout and "verified: no" in wrong.stdout
    missing = check(tmp_path / "nope.py")
    assert missing.returncode == 2 and "nope.py" in missing.stderr
    unknown = check(good, task="../../etc")
    assert unknown.returncode == 2 and "../../etc" in unknown.stderr


# ---- a missing layer is loud and weakens no other ----------------------------------------------------------------

def test_missing_seccomp_refuses_to_start():
    with pytest.raises(SandboxError, match="seccomp is missing: skipped on request"):
        Sandbox(skip_layers=("seccomp",)).start()


def test_each_file_system_layer_holds_alone(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("LAYERSECRET-99")
    reader = f"def main(g):\n    raise ValueError(open({str(secret)!r}).read())"
    writer = f"import numpy as np\ndef main(g):\n    np.save({str(tmp_path / 'x.npy')!r}, g)\n    return g"
    with pytest.warns(UserWarning, match="seccomp is missing"):
        alone = Sandbox(Limits(timeout_s=2.0), require_seccomp=False, skip_layers=("seccomp",) + LANGUAGE_LAYERS)
        alone.start()
    with alone:  # Landlock alone: no read outside, no write anywhere
        assert alone.layers()["seccomp"] == "missing: skipped on request"
        [v] = expect(alone, reader, "forbidden")
        assert "LAYERSECRET" not in v.detail
        expect(alone, writer, "forbidden")
    with pytest.warns(UserWarning, match="landlock is missing"):
        alone = Sandbox(Limits(timeout_s=2.0), skip_layers=("landlock",) + LANGUAGE_LAYERS)
        alone.start()
    with alone:  # seccomp alone: no write anywhere
        assert alone.layers()["landlock"] == "missing: skipped on request"
        expect(alone, writer, "forbidden")
        expect(alone, "import os\ndef main(g):\n    os.fork()\n    return g", "forbidden")
    assert not (tmp_path / "x.npy").exists()


def test_ipc_objects_that_outlive_the_child_are_refused(box):
    expect(box, """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def main(g):
            if libc.shmget(0, 4096, 0o1000 | 0o600) == -1 and ctypes.get_errno() == 1:
                raise PermissionError(1, 'shmget refused')
            return g
        """, "forbidden")


def test_the_child_starts_bare(box):
    """No fd but 0-2 (/dev/null) and the report pipe, an empty environment, an empty temporary cwd, the rlimits."""
    [v] = box.run(program("""
        import os, resource
        def is_open(fd):
            try:
                os.fstat(fd)
                return 1
            except OSError:
                return 0
        def main(g):
            return [[sum(is_open(fd) for fd in range(4, 1024)), len(os.environ),
                     int(os.path.basename(os.getcwd()).startswith('arc-sandbox-')),
                     int(resource.getrlimit(resource.RLIMIT_NPROC) == (0, 0)),
                     int(resource.getrlimit(resource.RLIMIT_FSIZE) == (0, 0)),
                     int(resource.getrlimit(resource.RLIMIT_NOFILE)[1] <= 16)]]
        """), [GRID])
    assert v.status == "ok" and v.grid.tolist() == [[0, 0, 1, 1, 1, 1]], v
    # raising a limit back (root could) is refused: Python turns the EPERM into a ValueError
    [v] = expect(box, "import resource\ndef main(g):\n    resource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n"
                 "    return g", "exception")
    assert "not allowed" in v.detail


def test_a_sleeping_child_dies_with_its_server():
    """No CPU limit reaches a program that sleeps: when the server dies, its children die with it."""
    sandbox = os_layers(Limits(timeout_s=60.0))  # `import time` is off the syntax check's allow-list
    server = sandbox._proc
    errors = []

    def run() -> None:
        try:
            sandbox.run("import time\ndef main(g):\n    time.sleep(600)", [GRID])
        except SandboxError as e:
            errors.append(e)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    children = wait_for(lambda: Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split())
    assert len(children) == 1, children
    server.kill()
    server.wait()
    assert wait_for(lambda: not Path(f"/proc/{children[0]}").exists()), f"child {children[0]} outlived its server"
    runner.join(timeout=30)
    assert errors and "server stopped" in str(errors[0])


def wait_for(check, seconds: float = 20.0):
    """check()'s first true value, polled, or its last value after `seconds`."""
    end = time.monotonic() + seconds
    while not (value := check()) and time.monotonic() < end:
        time.sleep(0.05)
    return value
