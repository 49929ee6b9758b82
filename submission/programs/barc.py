"""BARC's induction format (Li et al. 2024, "Combining Induction and Transduction for Abstract Reasoning"):
the chat messages its induction models read, the program blocks they write, and the helpers around running
those programs here (dedupe by normalised source, the transposition rule, the user's copy of its library).

Pinned to xu3kev/BARC commit edf88971d0ed7f567e2f3bbda9d16103263185c5 (2024-10-22): the last commit where
`finetune/alignment-handbook/gen_test_prompt.py` and the `gen_dataset` module it imports (make_input_prompt,
convert_chat_format) exist together; the next one (f8c8e63, "clean up v1") deleted gen_dataset.py. The prompt
text has been the same since 81e9413 (2024-09-19, "update prompt format") and is the one the Potpourri
checkpoint (barc0/Llama-3.1-ARC-Potpourri-Induction-8B) was trained on: its recipe
(recipes/barc/config_fft_llama3_induction_all_data_mixed.yaml) mixes the `*_messages_format_0.3` datasets
that gen_dataset_both.py's make_input_prompt_induction wrote, character for character the same text and
system prompt, with TRANSPOSE = False and EXTRA_NEWLINE = "\\n"; finetune/inference/vllm_inference.py at HEAD
samples it from the `..._extra_newline_v2.jsonl` file that gen_test_prompt.py writes.

Orientation: gen_test_prompt.py loads a task transposed (Problem(...) stores pair.x.T) and then prints it with
transpose=True, so the prompt shows each grid row on its own line, as in the JSON; BARC's eval_code_samples.py
runs `transform` on the row-major grid (its TRANSPOSE = False). So a program's `input_grid[i]` is the prompt's
line i and programs run as written: TRANSPOSED is False and `wrap_transposed` is only for formats that print
grids transposed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from submission.arc.data import Task
from submission.arc.grid import Grid

BARC_REPO = "xu3kev/BARC"
BARC_COMMIT = "edf88971d0ed7f567e2f3bbda9d16103263185c5"
TRANSPOSED = False  # the pinned prompts show grids as stored (rows as lines): run main(x), not main(x.T).T

# gen_dataset.COLOR_MAPPING after its COLOR_REPLACEMENTS (Grey -> Gray, Teal -> Purple, Maroon -> Brown): the
# words in the prompt. The same replacements were applied to the training answers' code, so the models write
# Color.GRAY / Color.PURPLE / Color.BROWN as well as seeds/common.py's own names (COMMON_COLORS).
COLOUR_WORDS = ("Black", "Blue", "Red", "Green", "Yellow", "Gray", "Pink", "Orange", "Purple", "Brown")
# seeds/common.py's `class Color` at the pinned commit (GRAY is an alias of GREY there; PURPLE and BROWN are not
# defined, so a user's library should add PURPLE = 8 and BROWN = 9 for programs that use them to run).
COMMON_COLORS = {"BLACK": 0, "BLUE": 1, "RED": 2, "GREEN": 3, "YELLOW": 4, "GREY": 5, "GRAY": 5, "PINK": 6,
                 "ORANGE": 7, "TEAL": 8, "MAROON": 9}

SYSTEM_PROMPT = ("You are a world-class puzzle solver with exceptional pattern recognition skills and expertise "
                 "in Python programming. Your task is to analyze puzzles and provide Python solutions.")
INTRO = ("Given input-output grid pairs as reference examples, carefully observe the patterns to predict the output "
         "grid for new test input. Each pair follows the same transformation rule. Grids are 2D arrays represented "
         "as strings, with cells (colors) separated by spaces and rows by newlines.")
ASK = ("Write a Python function `transform` that can convert any given input grid to its corresponding output grid "
       "based on the pattern observed in the reference examples.")
EXTRA_NEWLINE = "\n"  # gen_dataset.EXTRA_NEWLINE: every grid ends with one more newline
# The sentence BARC's training answers start with (gen_dataset.py main()); the models repeat it before the code.
ANSWER_PREFIX = ("Let's solve this puzzle using Python code with the common library functions. We'll first reason "
                 "about the problem and then write the code to solve it. The `transform` function will take the "
                 "input grid and return the output grid. Here is the Python code with the comments describing how "
                 "to solve the problem:\n")
LIBRARY_MAX_BYTES = 1 << 20  # BARC's seeds/common.py is ~53 kB; a megabyte leaves room and refuses mistakes


def grid_text(g: Grid) -> str:
    """gen_dataset.grid_to_input: colour words joined by spaces, rows by newlines, one extra newline."""
    return "\n".join(" ".join(COLOUR_WORDS[int(c)] for c in row) for row in g) + EXTRA_NEWLINE


def induction_question(task: Task) -> str:
    """gen_dataset.make_input_prompt: the demos, every test input (joined as BARC joins them), the request."""
    text = INTRO + "\nHere are the input and output grids for the reference examples:\n"
    for i, pair in enumerate(task.train):
        text += f"Example {i + 1}\nInput:\n{grid_text(pair.input)}\nOutput:\n{grid_text(pair.output)}\n\n"
    text += "Here is the input grid for the test example:\n"
    text += "Input:\n" + "\n".join(grid_text(pair.input) for pair in task.test)
    return text + "\n" + ASK


def induction_messages(task: Task) -> list[dict]:
    """gen_dataset.convert_chat_format(question, None)["messages"]: the system prompt and the question."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": induction_question(task)}]


def induction_prompt(task: Task, apply_chat_template) -> str:
    """The text the model continues, as vllm_inference.py builds it: `apply_chat_template` is the tokenizer's
    (e.g. `tokenizer.apply_chat_template`), called with tokenize=False, add_generation_prompt=True."""
    return apply_chat_template(induction_messages(task), tokenize=False, add_generation_prompt=True)


_FENCED_PYTHON = re.compile(r"```python(.*?)```", re.DOTALL)
_FENCED_ANY = re.compile(r"```(.*?)```", re.DOTALL)


def extract_programs(text: str) -> list[str]:
    """BARC's utils.parse_code: every ```python block, stripped; failing that, every ``` block."""
    blocks = [m.strip() for m in _FENCED_PYTHON.findall(text)]
    return blocks or [m.strip() for m in _FENCED_ANY.findall(text)]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalise(source: str) -> str:
    """A dedupe key: the syntax tree without docstrings (comments and layout never reach it); for text that
    does not parse, the text without any whitespace."""
    try:
        return ast.dump(_strip_docstrings(ast.parse(source)))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "".join(source.split())


def dedupe(sources: list[str]) -> list[str]:
    """The first of each group of sources with the same normalised form, in order."""
    seen: set[str] = set()
    out = []
    for s in sources:
        if (key := normalise(s)) not in seen:
            seen.add(key)
            out.append(s)
    return out


def wrap_transposed(source: str) -> str:
    """For prompts that print grids transposed: the program then reads and writes x-major arrays, so it runs
    as main(x.T).T. The pinned format does not need this (TRANSPOSED is False)."""
    return (source + "\n\n\nimport numpy as _barc_np\n"
            "try:\n    _barc_entry = main\nexcept NameError:\n    _barc_entry = transform\n\n\n"
            "def main(input_grid):\n"
            "    return _barc_np.asarray(_barc_entry(_barc_np.asarray(input_grid).T)).T\n")


def runnable(source: str) -> str:
    """The source as the sandbox should run it under the pinned format."""
    return wrap_transposed(source) if TRANSPOSED else source


def check_library(path: str | Path) -> str | None:
    """What is wrong with a user's copy of BARC's common.py (None: usable): missing, not a file, too big,
    not UTF-8, not valid Python."""
    path = Path(path)
    if not path.exists():
        return f"{path}: no such file (BARC's seeds/common.py, which its programs import as `common`)"
    if not path.is_file():
        return f"{path}: not a file (give the path of common.py itself)"
    size = path.stat().st_size
    if size > LIBRARY_MAX_BYTES:
        return f"{path}: {size} bytes, over the {LIBRARY_MAX_BYTES} allowed for a helper library"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return f"{path}: cannot be read as UTF-8 text ({e})"
    try:
        compile(text, str(path), "exec")
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        return f"{path}: not valid Python{f' (line {line})' if line else ''}: {getattr(e, 'msg', e)}"
    return None
