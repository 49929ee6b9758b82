"""Grid text formats as a plug-in: how a task becomes model text, and how an answer becomes a grid
again, in the format each public ARC checkpoint was trained on. Pure (numpy + stdlib).

Every format renders a prompt (demos + query, ending where the answer starts), a target (the
answer with its end token), a training text with the span of every output grid (loss masks), and
parses answers back (None, never an exception, for malformed text). Rendered text never holds the
BOS: the tokenizer's own post-processor adds it (`add_special_tokens=True`), as for every model.

    fmt = make_format("nvarc")
    fmt.prompt([(inp, out)], query)   # '<|im_start|>user\\n12<|im_end|><|im_start|>assistant\\n3...'
    check_format_tokenizer(tokenizer, fmt).allowed_ids   # constrained decoding
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from submission.arc.grid import MAX_SIDE, Grid
from submission.arc.text import DIGITS, AnswerSymbols, Span, TextFormat, TokenizerError, join_parts, parse_grid

Demos = Sequence[tuple[Grid, Grid]]


class GridFormat(Protocol):
    """What the core needs from a format. Implementations are frozen dataclasses; no base class."""

    name: ClassVar[str]

    @property
    def end(self) -> str: ...  # the end token text closing every answer (the stop token)

    def prompt(self, demos: Demos, query: Grid) -> str: ...

    def target(self, output: Grid) -> str: ...

    def render(self, pairs: Demos) -> tuple[str, tuple[Span, ...]]: ...

    def parse(self, text: str) -> Grid | None: ...

    def symbols(self) -> AnswerSymbols: ...

    def cost(self, demos: Demos, query: Grid, answer: Grid | None = None) -> int: ...


_SPECIAL = re.compile(r"<\|?[^<>\s|]{1,40}\|?>")  # '<s>', '</s>', '<|im_end|>': one token each
_LARGEST = np.zeros((MAX_SIDE, MAX_SIDE), dtype=np.int8)


def estimate_tokens(text: str) -> int:
    """Tokens of a rendered text, about: one per character, one per special token, plus a BOS."""
    return len(text) - sum(len(m) - 1 for m in _SPECIAL.findall(text)) + 1


def rendered_cost(fmt: GridFormat, demos: Demos, query: Grid, answer: Grid | None) -> int:
    """Estimated tokens of a prompt plus its answer (the largest possible answer if None)."""
    return estimate_tokens(fmt.prompt(demos, query)) + estimate_tokens(fmt.target(_LARGEST if answer is None
                                                                                  else answer)) - 1


def digit_rows(g: Grid, trailing_newline: bool) -> str:
    """Rows of digits joined by newlines, with or without a newline after the last row."""
    text = TextFormat().grid(g)
    return text if trailing_newline else text[:-1]


def before(text: str, end: str) -> str:
    """The text before the first `end` (all of it if `end` is absent)."""
    i = text.find(end) if end else -1
    return text if i < 0 else text[:i]


@dataclass(frozen=True)
class NvarcFormat:
    """NVARC (ARC Prize 2025, github 1ytic/NVARC): every grid is one chat turn of a Qwen3 model cut
    to a 16-token vocabulary. Follows ARC-AGI1/002_ivan_arc1.ipynb (arc_loader.py: QwenFormatter,
    convert_grid_to_string strips the last newline) and ARChitects/qwen3_configs/chat_template.j2
    (no newline after <|im_end|>). Answers use the 10 digits, newline and <|im_end|> only
    (arc_solver.py: ARC_VOCAB)."""

    name: ClassVar[str] = "nvarc"
    end: str = "<|im_end|>"

    def turn(self, role: str, content: str) -> str:
        """One chat turn as the template writes it."""
        return f"<|im_start|>{role}\n{content}{self.end}"

    def prompt(self, demos: Demos, query: Grid) -> str:
        """Demo turns, the query's user turn, the assistant header."""
        return self.render([*demos, (query, None)])[0]

    def target(self, output: Grid) -> str:
        """Digit rows (no final newline), then <|im_end|>."""
        return digit_rows(output, False) + self.end

    def render(self, pairs: Demos) -> tuple[str, tuple[Span, ...]]:
        """User/assistant turns per pair; loss spans cover each answer and its <|im_end|>
        (arc_solver.py masks from after 'assistant\\n' through <|im_end|>)."""
        parts: list[tuple[str, bool]] = []
        for inp, out in pairs:
            parts.append((self.turn("user", digit_rows(inp, False)) + "<|im_start|>assistant\n", False))
            if out is not None:
                parts.append((self.target(out), True))
        return join_parts(parts)

    def parse(self, text: str) -> Grid | None:
        return parse_grid(before(text, self.end), None)

    def symbols(self) -> AnswerSymbols:
        return AnswerSymbols(DIGITS, ("\n",), self.end)

    def cost(self, demos: Demos, query: Grid, answer: Grid | None = None) -> int:
        return rendered_cost(self, demos, query, answer)


@dataclass(frozen=True)
class ArchitectsFormat:
    """The ARChitects (ARC Prize 2024, github da-fr/arc-prize-2024 and da-fr/Product-of-Experts-ARC-
    Paper): a Mistral-NeMo-Minitron-8B cut to single-character tokens. Follows finetune_NemoReArc1200.py
    fmt_opts (preprompt, query_beg 'I', reply_beg '\\n+/-=O', reply_end '\\n'+eos, lines_sep '\\n') and
    arc_loader.py fmt_array/fmt_input/fmt_output/fmt_train. The preprompt skips I, O, i, o so the
    markers stay unique."""

    name: ClassVar[str] = "architects"
    end: str = "</s>"  # the tokenizer's eos text; Mistral-NeMo's is '</s>'
    preprompt: str = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjklmnpqrstuvwxyz"
    query_beg: str = "I"
    reply_beg: str = "\n+/-=O"

    def prompt(self, demos: Demos, query: Grid) -> str:
        """Preprompt, demo pairs, 'I' + query rows + '\\n+/-=O'."""
        return self.render([*demos, (query, None)])[0]

    def target(self, output: Grid) -> str:
        """Digit rows, a final newline, the eos."""
        return digit_rows(output, True) + self.end

    def render(self, pairs: Demos) -> tuple[str, tuple[Span, ...]]:
        """Preprompt then each pair; loss spans cover each reply (after '\\n+/-=O', through the eos)."""
        parts: list[tuple[str, bool]] = [(self.preprompt, False)]
        for inp, out in pairs:
            parts.append((self.query_beg + digit_rows(inp, False) + self.reply_beg, False))
            if out is not None:
                parts.append((self.target(out), True))
        return join_parts(parts)

    def parse(self, text: str) -> Grid | None:
        return parse_grid(before(text, self.end), None)

    def symbols(self) -> AnswerSymbols:
        return AnswerSymbols(DIGITS, ("\n",), self.end)

    def cost(self, demos: Demos, query: Grid, answer: Grid | None = None) -> int:
        return rendered_cost(self, demos, query, answer)


MARC_INSTRUCTION = ("Figure out the underlying transformation in the following examples and apply it to the test "
                    "case. Here are some examples from this transformation, your answer must follow the format.\n"
                    "The input-output grids are provided as python arrays:\n")
_MARC_GRID = re.compile(r"\[(\[[0-9](?: [0-9])*\](?:\n \[[0-9](?: [0-9])*\])*)\]")


def numpy_str(g: Grid) -> str:
    """str() of a 2-D array of 0..9 under numpy's default print options: '[[0 1]\\n [2 3]]'
    (rows of at most 30 cells never reach numpy's 75-character line wrap)."""
    rows = TextFormat().grid(g).split("\n")[:-1]
    return "[" + "\n ".join("[" + " ".join(r) + "]" for r in rows) + "]"


@dataclass(frozen=True)
class MarcFormat:
    """MARC (the TTT paper, github ekinakyurek/marc), `--new_format`: numpy-style grids, ' -> ', each
    output ends with '#'; demos sit in the system message of a Llama-3 chat, the query in the user
    message. Follows test_time_train.py (TextExampleRepresenter io_sep=' -> ', output_footer='#',
    PythonListGridRepresenter = str(grid)), arclib/messagers.py GPTTextMessageRepresenterV2 (the
    instruction, demos joined by '\\n'), and the chat bytes of the torchtune fork's
    models/llama3/_tokenizer.py (header, content.strip(), <|eot_id|>; <|end_of_text|> after a
    training text) = the Llama-3 chat_template used by inference/preprocess.py."""

    name: ClassVar[str] = "marc"
    end: str = "<|eot_id|>"
    instruction: str = MARC_INSTRUCTION
    io_sep: str = " -> "
    footer: str = "#"
    train_end: str = "<|end_of_text|>"  # torchtune appends the eos after a training text (no loss)

    def message(self, role: str, content: str) -> str:
        """One Llama-3 chat message; the content is stripped as the template's `| trim` does."""
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n{content.strip()}{self.end}"

    def prompt(self, demos: Demos, query: Grid) -> str:
        """System (instruction + demos), user (query + ' ->'), assistant header."""
        return self._parts(demos, query, None)[0]

    def target(self, output: Grid) -> str:
        """The numpy-style grid, '#', <|eot_id|>."""
        return numpy_str(output) + self.footer + self.end

    def render(self, pairs: Demos) -> tuple[str, tuple[Span, ...]]:
        """Spans cover every demo output in the system message (with its '#') and the answer."""
        (*demos, (query, answer)) = pairs
        return self._parts(demos, query, answer)

    def _parts(self, demos: Demos, query: Grid, answer: Grid | None) -> tuple[str, tuple[Span, ...]]:
        # the system message, cut where each demo output starts and ends; its content's strip
        # only removes the last demo's newline (the instruction starts with a letter)
        parts: list[tuple[str, bool]] = []
        lead = "<|start_header_id|>system<|end_header_id|>\n\n" + self.instruction
        sep = self.io_sep.rstrip()  # ' ->' closes the input; the space opens the output's ' [[' token
        for i, o in demos:
            parts += [(lead + numpy_str(i) + sep, False), (self.io_sep[len(sep):] + numpy_str(o) + self.footer, True)]
            lead = "\n"
        parts.append((self.end, False) if demos else (self.message("system", self.instruction), False))
        parts.append((self.message("user", numpy_str(query) + self.io_sep)
                      + "<|start_header_id|>assistant<|end_header_id|>\n\n", False))
        if answer is not None:
            parts += [(self.target(answer), True), (self.train_end, False)]
        return join_parts(parts)

    def parse(self, text: str) -> Grid | None:
        body = before(before(text, self.end), self.footer).strip()
        m = _MARC_GRID.fullmatch(body)
        if m is None:
            return None
        rows = [r.strip(" []").split(" ") for r in m.group(1).split("\n")]
        if len(rows) > MAX_SIDE or len({len(r) for r in rows}) != 1 or len(rows[0]) > MAX_SIDE:
            return None
        return np.array([[int(c) for c in r] for r in rows], dtype=np.int8)

    def symbols(self) -> AnswerSymbols:
        return AnswerSymbols(DIGITS, (" ", "[", "]", "\n", self.footer), self.end)

    def cost(self, demos: Demos, query: Grid, answer: Grid | None = None) -> int:
        return rendered_cost(self, demos, query, answer)


FORMATS: dict[str, type] = {"compact": TextFormat, "nvarc": NvarcFormat, "architects": ArchitectsFormat,
                            "marc": MarcFormat}


def make_format(name: str, eos: str | None = None) -> GridFormat:
    """The format called `name`; `eos` (the tokenizer's eos text) ends answers in the formats that
    use the model's eos (compact, architects); the chat formats have their own end token."""
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    if eos and name == "compact":
        return TextFormat(end_marker=eos)
    if eos and name == "architects":
        return ArchitectsFormat(end=eos)
    return FORMATS[name]()


@dataclass(frozen=True)
class FormatTokens:
    """A tokenizer checked against a format: what constrained decoding needs."""

    allowed_ids: tuple[int, ...]  # every id a well-formed answer uses, stop id included
    stop_ids: tuple[int, ...]  # the end token's id
    cell_ids: tuple[int, ...]  # cell_ids[c]: the token of colour c


_PROBES = (np.zeros((1, 10), np.int8), np.arange(10, dtype=np.int8).reshape(1, 10),
           np.array([[9, 9, 8, 8, 7], [7, 6, 6, 5, 5]], np.int8), np.arange(9, dtype=np.int8).reshape(3, 3),
           np.array([[1], [2], [3]], np.int8), np.full((30, 30), 5, np.int8))


def _encode(tokenizer: Any, text: str) -> list[int]:
    try:
        return list(tokenizer.encode(text, add_special_tokens=False))
    except Exception as e:  # noqa: BLE001 - tokenizers raise a bare Exception for unknown symbols
        raise TokenizerError(f"this tokenizer cannot encode {text[:40]!r}: {e}") from None


def _single(tokenizer: Any, fmt: GridFormat, sym: str, what: str) -> int:
    ids = _encode(tokenizer, sym)
    if len(ids) != 1:
        raise TokenizerError(f"the {fmt.name} format needs {what} {sym!r} to be one token; this tokenizer makes "
                             f"it {len(ids)}: {ids}")
    return ids[0]


def _suggest(tokenizer: Any, failed: str) -> str:
    """'; formats this tokenizer can serve: ...' (the presets to use instead), or ''."""
    fits = []
    for name in FORMATS:
        if name != failed:
            try:
                _check_symbols(tokenizer, make_format(name), suggest=False)
                fits.append(name)
            except TokenizerError:
                pass
    return f"; this tokenizer fits --preset {' or '.join(fits)}" if fits else ""


def _check_symbols(tokenizer: Any, fmt: GridFormat, suggest: bool = True) -> FormatTokens:
    syms = fmt.symbols()
    cells = tuple(_single(tokenizer, fmt, c, "cell") for c in syms.cells)
    stop = _single(tokenizer, fmt, syms.end, "the end token")
    allowed = {*cells, stop, *(i for s in syms.separators for i in _encode(tokenizer, s))}
    for g in _PROBES:
        text = fmt.target(g)
        ids = _encode(tokenizer, text)
        if [i for i in ids if i in cells] != [cells[c] for c in g.ravel()] or ids[-1:] != [stop]:
            hint = _suggest(tokenizer, fmt.name) if suggest else ""
            raise TokenizerError(f"this tokenizer merges grid cells: the {fmt.name} answer {text[:24]!r}... "
                                 f"({g.size} cells) encodes as {len(ids)} tokens; the format needs one token per "
                                 f"cell{hint}")
        allowed.update(ids)
    return FormatTokens(tuple(sorted(allowed)), (stop,), cells)


def check_format_tokenizer(tokenizer: Any, fmt: GridFormat) -> FormatTokens:
    """Check a tokenizer (anything with `encode`/`decode`, e.g. a transformers tokenizer) against a
    format: every cell symbol and the end token are one token alone and in context, and a rendered
    prompt and answer decode back to their text. Returns the ids constrained decoding allows.
    Raises TokenizerError saying what fails (and which preset fits instead)."""
    found = _check_symbols(tokenizer, fmt)
    g = _PROBES[3]
    text, _ = fmt.render([(g, g.T), (g, g)])
    back = tokenizer.decode(_encode(tokenizer, text), skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if back != text:
        raise TokenizerError(f"the {fmt.name} text does not survive encode -> decode with this tokenizer: "
                             f"{text[:60]!r}... came back as {back[:60]!r}...")
    return found
