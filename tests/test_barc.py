"""BARC's induction format: the prompts match the ones BARC's own code builds (golden files produced at the
pinned commit), programs are parsed and deduplicated as BARC's inference does, a BARC-style program runs in
the sandbox with a user's common.py and fails with a named verdict without it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from submission.arc.data import load_challenges
from submission.programs import barc
from submission.programs.sandbox import Limits, Sandbox

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "barc"
GOLDEN = sorted(FIXTURES.glob("*.json"))


def test_the_golden_files_are_there():
    assert [p.stem for p in GOLDEN] == ["6ea4a07e", "e133d23d"]
    assert barc.BARC_COMMIT in (FIXTURES / "README.md").read_text()


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_messages_are_byte_identical_to_barc(path):
    golden = json.loads(path.read_text(encoding="utf-8"))
    task = load_challenges("arc1-eval").tasks[golden["uid"]]
    assert barc.induction_messages(task) == golden["messages"]


def test_grids_are_shown_row_by_row_in_colour_words():
    task = load_challenges("arc1-eval").tasks["e133d23d"]  # 3x7 inputs: a transposed print would show 7 lines
    first = task.train[0].input
    text = barc.induction_messages(task)[1]["content"]
    block = text.split("Example 1\nInput:\n")[1].split("\n\nOutput:")[0]
    assert block.splitlines() == [" ".join(barc.COLOUR_WORDS[c] for c in row) for row in first]
    assert barc.TRANSPOSED is False


def test_colour_names_are_barcs():
    assert barc.COLOUR_WORDS == ("Black", "Blue", "Red", "Green", "Yellow", "Gray", "Pink", "Orange", "Purple",
                                 "Brown")
    assert [barc.COMMON_COLORS[n] for n in ("BLACK", "BLUE", "RED", "GREEN", "YELLOW", "GREY", "PINK", "ORANGE",
                                             "TEAL", "MAROON")] == list(range(10))


def test_prompt_goes_through_the_chat_template():
    task = load_challenges("arc1-eval").tasks["6ea4a07e"]
    seen = {}

    def template(messages, tokenize, add_generation_prompt):
        seen.update(tokenize=tokenize, add_generation_prompt=add_generation_prompt)
        return "|".join(m["role"] + ":" + m["content"] for m in messages) + "|assistant:"

    text = barc.induction_prompt(task, template)
    assert seen == {"tokenize": False, "add_generation_prompt": True}
    assert text.startswith("system:" + barc.SYSTEM_PROMPT + "|user:Given input-output") and text.endswith(
        "reference examples.|assistant:")


PROGRAM = "import numpy as np\n\ndef transform(input_grid):\n    return input_grid.T"
ANSWER_ONE = barc.ANSWER_PREFIX + "```python\n" + PROGRAM + "\n```"


def test_extract_programs_like_barc():
    assert barc.extract_programs(ANSWER_ONE) == [PROGRAM]
    two = "first\n```python\ndef main(g):\n    return g\n```\nthen\n```python\ndef main(g):\n    return g.T\n```\n"
    assert barc.extract_programs(two) == ["def main(g):\n    return g", "def main(g):\n    return g.T"]
    assert barc.extract_programs("no code at all, sorry") == []
    assert barc.extract_programs("```\ndef main(g):\n    return g\n```") == ["def main(g):\n    return g"]
    assert barc.extract_programs("```python\ndef main(g):\n    return g") == []  # cut off before the fence closes


def test_normalise_dedupes_comments_docstrings_and_layout():
    a = "import numpy as np\n\n# concepts:\n# flip\n\ndef transform(input_grid):\n    return input_grid[::-1]\n"
    b = 'import numpy as np\ndef transform( input_grid ):\n    """Flip it."""\n    return input_grid[ ::-1 ]  # up\n'
    c = "import numpy as np\ndef transform(input_grid):\n    return input_grid[:, ::-1]\n"
    assert barc.normalise(a) == barc.normalise(b) != barc.normalise(c)
    assert barc.dedupe([a, b, c, a]) == [a, c]
    assert barc.normalise("def f(:\n  x") == barc.normalise("def f( :\n x") == "deff(:x"  # not Python: text


GRID = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int8)


@pytest.fixture(scope="module")
def box():
    with Sandbox(Limits(timeout_s=2.0)) as sandbox:
        yield sandbox


def test_wrap_transposed_runs_main_on_the_transpose(box):
    shift_rows = "import numpy as np\ndef transform(input_grid):\n    return np.roll(input_grid, 1, axis=0)\n"
    [plain] = box.run(barc.runnable(shift_rows), [GRID])
    [wrapped] = box.run(barc.wrap_transposed(shift_rows), [GRID])
    assert plain.status == wrapped.status == "ok"
    assert (plain.grid == np.roll(GRID, 1, axis=0)).all()
    assert (wrapped.grid == np.roll(GRID.T, 1, axis=0).T).all() and (wrapped.grid == np.roll(GRID, 1, axis=1)).all()
    [main_too] = box.run(barc.wrap_transposed("def main(g):\n    return g[:1]\n"), [GRID])
    assert main_too.status == "ok" and (main_too.grid == GRID[:, :1]).all()


# A BARC-style program, written here (BARC's repository has no licence file, so none of its seeds is copied).
BARC_STYLE = textwrap.dedent('''\
    from common import *

    import numpy as np

    # concepts:
    # connectivity, color change

    # description:
    # Every object of the input turns red, then the grid is mirrored left to right.

    def transform(input_grid):
        output_grid = np.copy(input_grid)
        for obj in find_connected_components(input_grid, background=Color.BLACK, connectivity=4):
            output_grid[obj != Color.BLACK] = Color.RED
        return output_grid[:, ::-1]
    ''')
STAND_IN_COMMON = textwrap.dedent('''\
    """A few of BARC's common.py names, re-implemented for this test."""
    import numpy as np
    from scipy import ndimage


    class Color:
        BLACK, BLUE, RED, GREEN, YELLOW, GREY, PINK, ORANGE, TEAL, MAROON = range(10)
        GRAY, PURPLE, BROWN = 5, 8, 9


    def find_connected_components(grid, background=Color.BLACK, connectivity=4):
        structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
        labels, n = ndimage.label(grid != background, structure=structure)
        return [np.where(labels == k, grid, background) for k in range(1, n + 1)]
    ''')


def test_a_barc_program_runs_with_the_users_library(tmp_path):
    lib = tmp_path / "common.py"
    lib.write_text(STAND_IN_COMMON)
    assert barc.check_library(lib) is None
    grid = np.array([[0, 3, 0], [4, 0, 0]], dtype=np.int8)
    with Sandbox(Limits(timeout_s=2.0), library=lib) as sandbox:
        [v] = sandbox.run(BARC_STYLE, [grid])
    assert v.status == "ok" and v.grid.tolist() == [[0, 2, 0], [0, 0, 2]]


def test_without_the_library_it_is_an_import_error_and_nothing_else_breaks(box):
    verdicts = box.run_many([BARC_STYLE, "def transform(g):\n    return g.T\n"], [GRID, GRID[::-1]])
    assert [v.status for v in verdicts[0]] == ["import_error", "import_error"]
    assert "common" in verdicts[0][0].detail
    assert [v.status for v in verdicts[1]] == ["ok", "ok"] and (verdicts[1][0].grid == GRID.T).all()


def test_check_library_names_what_is_wrong(tmp_path):
    assert "no such file" in barc.check_library(tmp_path / "common.py")
    assert "not a file" in barc.check_library(tmp_path)
    big = tmp_path / "big.py"
    big.write_text("x = 1\n" * (barc.LIBRARY_MAX_BYTES // 6 + 1))
    assert "bytes, over" in barc.check_library(big)
    bad = tmp_path / "bad.py"
    bad.write_text("def flood_fill(grid:\n    pass\n")
    assert "not valid Python (line 1)" in barc.check_library(bad)
    binary = tmp_path / "bin.py"
    binary.write_bytes(b"\xff\xfe\x00")
    assert "UTF-8" in barc.check_library(binary)
