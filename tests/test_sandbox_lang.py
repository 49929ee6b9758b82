"""The sandbox's two language-level layers, each alone: the `ast` check of the program's syntax tree and the `audit`
hook. Every escape below ends "forbidden" with the layer named in its detail, and the same sandbox then still runs
a normal program; a marker file shows whether an escape ran. The OS layers are left out (seccomp and Landlock:
require_seccomp=False), so nothing else stands between these programs and the machine but the layer under test."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from submission.pipeline.doctor import Checkup, check_sandbox
from submission.pipeline.induction_standin import PROGRAMS
from submission.programs import barc, sandbox_ast
from submission.programs.sandbox import Limits, Sandbox

ROOT = Path(__file__).resolve().parents[1]
GRID = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int8)
IDENTITY = "def transform(grid):\n    return grid\n"
OS_LAYERS = ("seccomp", "landlock")
BARC_STYLE = textwrap.dedent('''\
    from common import *
    import numpy as np
    from typing import *
    from scipy import ndimage

    # concepts:
    # connectivity, color change

    def transform(input_grid):
        output_grid = np.copy(input_grid)
        labels, n = ndimage.label(input_grid != Color.BLACK)
        for obj in find_connected_components(input_grid, background=Color.BLACK, connectivity=4):
            output_grid[obj != Color.BLACK] = Color.RED
        return output_grid[:, ::-1]
    ''')


def alone(layer: str) -> Sandbox:
    """A started Sandbox whose only language-level layer is `layer`, without seccomp and Landlock."""
    other = {"ast": "audit", "audit": "ast"}[layer]
    sandbox = Sandbox(Limits(timeout_s=2.0), require_seccomp=False, skip_layers=OS_LAYERS + (other,))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "sandbox layer .* is missing: skipped on request")
        sandbox.start()
    layers = sandbox.layers()
    assert layers[layer] == "active" and all(layers[k].startswith("missing: skipped") for k in OS_LAYERS + (other,))
    return sandbox


@pytest.fixture(scope="module")
def ast_box():
    with alone("ast") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def audit_box():
    with alone("audit") as sandbox:
        yield sandbox


def forbidden_by(box: Sandbox, source: str, layer_says: str) -> str:
    """The program is forbidden, by the layer (its detail starts with `layer_says`), and a normal one runs after."""
    verdicts = box.run(textwrap.dedent(source).strip() + "\n", [GRID, GRID])
    assert [v.status for v in verdicts] == ["forbidden"] * 2, verdicts
    assert verdicts[0].detail.startswith(layer_says), verdicts[0].detail
    after = box.run(IDENTITY, [GRID])
    assert after[0].status == "ok" and (after[0].grid == GRID).all(), after
    return verdicts[0].detail


def escapes(marker: Path) -> dict[str, str]:
    """The escape tests of test_sandbox.py, each of which would leave `marker` behind if it worked."""
    return {
        "fork": f"import os\ndef main(g):\n    if os.fork() == 0:\n        open({str(marker)!r}, 'w')\n    return g",
        "subprocess": f"import subprocess\ndef main(g):\n    subprocess.run(['touch', {str(marker)!r}])\n    return g",
        "multiprocessing": "import multiprocessing\ndef main(g):\n    p = multiprocessing.Process(target=print)\n"
                           "    p.start()\n    return g",
        "os.system": f"import os\ndef main(g):\n    os.system('touch {marker}')\n    return g",
        "os.execv": f"import os\ndef main(g):\n    os.execv('/usr/bin/touch', ['touch', {str(marker)!r}])",
        "socket": "import socket\ndef main(g):\n    socket.socket().connect(('127.0.0.1', 9))\n    return g",
        "socketpair": "import socket\ndef main(g):\n    socket.socketpair()\n    return g",
        "ctypes": f"import ctypes\ndef main(g):\n    ctypes.CDLL(None).system(b'touch {marker}')\n    return g",
        "np.ctypeslib": "import numpy as np\ndef main(g):\n"
                        f"    np.ctypeslib.ctypes.CDLL('libc.so.6').system(b'touch {marker}')\n    return g",
        "walk to os.system": f"""
            def main(g):
                for c in ().__class__.__base__.__subclasses__():
                    if c.__name__ == '_wrap_close':
                        c.__init__.__globals__['system']('touch {marker}')
                return g""",
        "walk to Popen": f"""
            def main(g):
                popen = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen']
                popen[0](['touch', {str(marker)!r}]).wait()
                return g""",
        "open for writing": f"def main(g):\n    open({str(marker)!r}, 'w').write('x')\n    return g",
        "os.open for writing": "import os\ndef main(g):\n"
                               f"    os.close(os.open({str(marker)!r}, os.O_RDWR | os.O_CREAT))\n    return g",
        "np.save": f"import numpy as np\ndef main(g):\n    np.save({str(marker)!r}, g)\n    return g",
        "tofile": f"import numpy as np\ndef main(g):\n    g.tofile({str(marker)!r})\n    return g",
        "/proc/self/mem": "def main(g):\n    with open('/proc/self/mem', 'r+b') as f:\n        f.write(b'x')\n"
                          "    return g",
        "os.kill": "import os, signal\ndef main(g):\n    os.kill(os.getppid(), signal.SIGCONT)\n    return g",
        "shmget": "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\ndef main(g):\n"
                  "    libc.shmget(0, 4096, 0o1000 | 0o600)\n    return g",
    }


# what only the syntax check can see: reading files and the environment (reads raise no audit denial), threads
AST_ONLY = {
    "np.fromfile": "import numpy as np\ndef main(g):\n    raise ValueError(np.fromfile('/etc/hostname', dtype=int))",
    "np.memmap": "import numpy as np\ndef main(g):\n    raise ValueError(bytes(np.memmap('/etc/hostname', mode='r')))",
    "open for reading": "def main(g):\n    raise ValueError(open('/etc/hostname').read())",
    "environment": "import os\ndef main(g):\n    raise ValueError(dict(os.environ))",
    "thread": "import threading\ndef main(g):\n    threading.Thread(target=print).start()\n    return g",
    "eval": "def main(g):\n    return eval('g')",
    "getattr by a built name": "def main(g):\n    return getattr(g, '__cla' + 'ss__')",
    "format string": "def main(g):\n    return '{0.__class__}'.format(g)",
    "attrgetter of a frame": "import operator\ndef gen():\n    yield 1\n"
                             "def main(g):\n    return operator.attrgetter('gi_frame.f_back')(gen())",
    "np.f2py": "import numpy as np\ndef main(g):\n    np.f2py.compile('', 'x')\n    return g",
}


@pytest.mark.parametrize("name", list(escapes(Path("m"))))
def test_the_ast_layer_alone_stops_each_escape(ast_box, tmp_path, name):
    detail = forbidden_by(ast_box, escapes(tmp_path / "marker")[name], "syntax check: line ")
    assert not (tmp_path / "marker").exists() and not (tmp_path / "marker.npy").exists(), detail


@pytest.mark.parametrize("name", list(AST_ONLY))
def test_the_ast_layer_alone_stops_reads_threads_and_names_built_at_run_time(ast_box, name):
    forbidden_by(ast_box, AST_ONLY[name], "syntax check: line ")


@pytest.mark.parametrize("name", list(escapes(Path("m"))))
def test_the_audit_hook_alone_stops_each_escape(audit_box, tmp_path, name):
    detail = forbidden_by(audit_box, escapes(tmp_path / "marker")[name], "audit hook: ")
    assert not (tmp_path / "marker").exists() and not (tmp_path / "marker.npy").exists(), detail


@pytest.mark.parametrize("source, event", [
    ("import os\ndef main(g):\n    os.system('true')\n    return g", "os.system"),
    ("import subprocess\ndef main(g):\n    subprocess.run(['true'])\n    return g", "subprocess.Popen"),
    ("import os\ndef main(g):\n    os.fork()\n    return g", "os.fork"),
    ("import multiprocessing\ndef main(g):\n    return g", "import"),  # not preloaded: its import is an event
    ("import ctypes\ndef main(g):\n    ctypes.CDLL(None)\n    return g", "ctypes.dlopen"),
    ("import ctypes\ndef main(g):\n    ctypes.addressof(ctypes.c_int(1))\n    return g", "ctypes.addressof"),
    ("import socket\ndef main(g):\n    socket.socket()\n    return g", "socket.__new__"),
    ("def main(g):\n    open('x', 'a')\n    return g", "open"),
    ("import sys\ndef main(g):\n    return sys._getframe().f_back.f_globals", "sys._getframe"),
    ("def gen():\n    yield 1\ndef main(g):\n    return gen().gi_frame.f_back", "object.__getattr__"),
    ("def main(g):\n    return main.__code__.replace(co_name='x')", "object.__getattr__"),
    ("import gc\ndef main(g):\n    gc.get_objects()\n    return g", "gc.get_objects"),
    ("import importlib\ndef main(g):\n    importlib.import_module('tomllib')\n    return g", "import"),
    ("import os\nos.remove('/nonexistent')\ndef main(g):\n    return g", "os.remove"),
])
def test_the_audit_hook_names_the_denied_event(audit_box, source, event):
    detail = forbidden_by(audit_box, source, f"audit hook: {event} denied")
    assert "not run" not in detail


def test_a_denial_cannot_be_caught_and_ends_the_program(audit_box, tmp_path):
    """The hook answers for the program: a program that catches the exception is still over."""
    src = f"""
        import os
        def main(g):
            try:
                open({str(tmp_path / 'caught')!r}, 'w')
            except BaseException:
                pass
            return g
        """
    [first, second] = audit_box.run(textwrap.dedent(src), [GRID, GRID])
    assert first.status == second.status == "forbidden" and "open" in first.detail
    assert second.detail == "not run: the program stopped on input 0 (forbidden)"
    assert not (tmp_path / "caught").exists()


def test_rebinding_builtins_or_the_hooks_module_changes_nothing(audit_box, tmp_path):
    """The hook binds every name it uses when it is installed."""
    src = f"""
        import builtins, sys
        builtins.isinstance = lambda *a: False
        builtins.len = lambda x: 0
        for name in ('sandbox_audit', '__main__'):
            module = sys.modules.get(name)
            for attr in ('DENIED', 'DENIED_PREFIXES', 'WRITE_FLAGS', 'make_judge', 'audit_module'):
                if hasattr(module, attr):
                    setattr(module, attr, None)
        def main(g):
            open({str(tmp_path / 'rebound')!r}, 'w')
            return g
        """
    forbidden_by(audit_box, src, "audit hook: open denied: opening")
    assert not (tmp_path / "rebound").exists()


def test_the_audit_hook_lets_numpy_and_scipy_import_their_internals(audit_box):
    """scipy's submodules load at call time, with the stdlib modules they need: all theirs, all allowed."""
    src = """
        import numpy as np
        from dataclasses import dataclass
        from scipy import ndimage, signal, spatial, stats
        import statistics, fractions
        @dataclass(frozen=True)
        class Box:
            color: int
        def main(g):
            labels, n = ndimage.label(g > 0)
            c = signal.convolve2d(g, np.ones((2, 2)), mode='same')
            d = spatial.distance.cdist(np.argwhere(g), np.argwhere(g))
            m = stats.mode(g, axis=None).mode + statistics.median([1, 2, 3]) + Box(1).color
            return (labels + int(c.sum() + d.sum() + m) + int(np.mean(np.array([])) == 0)) % 10
        """
    [v] = audit_box.run(textwrap.dedent(src), [GRID])
    assert v.status == "ok", v


def test_the_ast_detail_names_the_construct_and_the_line(ast_box):
    detail = forbidden_by(ast_box, "import numpy as np\n\ndef main(g):\n    return g.__class__", "syntax check: ")
    assert detail == "syntax check: line 4: attribute .__class__: dunder attributes reach the interpreter's internals"
    problems = sandbox_ast.check_source("import os\nx = getattr(1, 'real')\ny = getattr(1, name)\nf = getattr\n"
                                        "class A:\n    def __eq__(self, o):\n        return True\n"
                                        "def __eq__(a, b):\n    pass\n")
    assert problems == ["line 1: import os: not on the allow-list (numpy, scipy, common, math, itertools, "
                        "collections ...)",
                        "line 3: getattr(): the attribute name is not a string literal",
                        "line 4: getattr not called directly: attribute access by name only with a literal name",
                        "line 8: def __eq__: only comparison/container dunders may be defined, inside a class"]


def test_the_ast_layer_lets_ordinary_code_through():
    """What ARC programs write and must keep writing: classes with comparison dunders, `__name__ == '__main__'`,
    a variable called input, getattr with a literal, lines of underscores, re.compile, scipy submodules."""
    src = textwrap.dedent('''\
        from __future__ import annotations
        import re
        from dataclasses import dataclass, field
        from scipy.ndimage import label
        import numpy.linalg

        @dataclass(order=True)
        class Obj:
            color: int
            cells: list = field(default_factory=list)

            def __post_init__(self):
                self.name = type(self).__name__

            def __hash__(self):
                return hash(self.color)

        PATTERN = re.compile(r"[0-9]+")
        RULE = "_____"

        def main(input_grid):
            for input, output in [(1, 2)]:
                pass
            shape = getattr(input_grid, "shape")
            return input_grid if shape else None

        if __name__ == "__main__":
            pass
        ''')
    assert sandbox_ast.check_source(src) == []


def test_every_fixture_program_passes_the_ast_layer():
    """The stand-in's programs (tests/fixtures/induction-tiny), a BARC-style program, the transposed wrapper, and
    the DSL's own sources (their imports of this package aside: those never run in the sandbox)."""
    programs = {f"stand-in {tid}": src for tid, (src, _) in PROGRAMS.items()}
    programs["BARC-style"] = BARC_STYLE
    programs["wrap_transposed"] = barc.wrap_transposed(PROGRAMS["6150a2bd"][0])
    for name, src in programs.items():
        assert sandbox_ast.check_source(src) == [], name
    for path in ("submission/programs/dsl.py", "submission/programs/objects.py"):
        found = sandbox_ast.check_source((ROOT / path).read_text())
        assert found and all(": import submission." in p for p in found), (path, found)


def test_the_fixture_programs_run_under_every_layer(tmp_path):
    lib = tmp_path / "common.py"
    lib.write_text("import numpy as np\nfrom scipy import ndimage\n\nclass Color:\n    BLACK, RED = 0, 2\n\n\n"
                   "def find_connected_components(grid, background=0, connectivity=4):\n"
                   "    labels, n = ndimage.label(grid != background)\n"
                   "    return [np.where(labels == k, grid, background) for k in range(1, n + 1)]\n")
    with Sandbox(Limits(timeout_s=2.0), library=lib) as box:
        assert set(box.layers().values()) == {"active"} and {"ast", "audit"} <= set(box.layers())
        out = box.run_many([src for src, _ in PROGRAMS.values()] + [BARC_STYLE], [GRID])
    assert [vs[0].status for vs in out] == ["ok"] * (len(PROGRAMS) + 1), out
    assert (out[-1][0].grid == np.where(GRID > 0, 2, 0)[:, ::-1]).all()


def test_skip_layers_knows_the_new_layers_and_refuses_others():
    with pytest.raises(ValueError, match="only seccomp, landlock, ast, audit"):
        Sandbox(skip_layers=("ast", "parser"))


def test_the_doctor_counts_every_layer():
    c = Checkup([], [], {})
    check_sandbox(c)
    assert c.lines == ["program sandbox: 8 of 8 layers active; a test program: ok"] and not c.problems


def test_a_program_that_does_not_parse_is_still_a_syntax_error(ast_box):
    [v] = ast_box.run("def main(g)\n    return g\n", [GRID])
    assert v.status == "syntax"
    deep = "def main(g):\n    return " + "(" * 300 + "g" + ")" * 300 + "\n"  # over the parser's nesting cap
    [v] = ast_box.run(deep, [GRID])
    assert v.status == "syntax" and "too many nested parentheses" in v.detail, v
