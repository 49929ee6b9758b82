"""Compact text format: one digit per cell, each row ends with a newline, markers for input and
output, and an end marker after every output (the tokenizer's end-of-sequence text at run time,
so the model learns to stop). Prompt builder, target text, a forgiving parser, tokenizer check.
The other formats (the public checkpoints' own) live in submission/arc/formats.py; this one is `compact`.

    I            <- input marker, newline
    012          <- rows
    340
    O            <- output marker, newline
    21           <- rows
    </s>         <- end marker (no newline)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from submission.arc.grid import MAX_SIDE, Grid

_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
DIGITS = tuple("0123456789")  # the cell symbols of every digit-based format, colour c is DIGITS[c]
ANSWER_ROOM = 30 * 31 + 1  # compact tokens of the largest possible answer (30 rows of 30 + newline, end)
Span = tuple[int, int]  # [start, end) character offsets


@dataclass(frozen=True)
class AnswerSymbols:
    """What a grid answer may be written with: for constrained decoding and tokenizer checks."""

    cells: tuple[str, ...]  # cells[c] is the text of colour c
    separators: tuple[str, ...]  # row separators, brackets, spaces, footers
    end: str  # the token that closes every answer (the stop token)

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.cells, *self.separators, self.end)


def join_parts(parts: Sequence[tuple[str, bool]]) -> tuple[str, tuple[Span, ...]]:
    """Concatenate text parts; the spans of those flagged True (the outputs, for loss masks)."""
    spans, pos = [], 0
    for text, is_output in parts:
        if is_output:
            spans.append((pos, pos + len(text)))
        pos += len(text)
    return "".join(t for t, _ in parts), tuple(spans)


@dataclass(frozen=True)
class TextFormat:
    """The `compact` format (this repository's own): one digit per cell, rows end with a newline,
    I/O markers, the tokenizer's eos after every output. Cheapest in tokens; needs a tokenizer
    that keeps digits apart (Qwen, Mistral, Llama-2, the tiny char models)."""

    name: ClassVar[str] = "compact"
    input_marker: str = "I"  # starts an input grid (followed by a newline)
    output_marker: str = "O"  # starts an output grid (followed by a newline)
    end_marker: str = "</s>"  # ends every output; set to the tokenizer's eos text for a real model

    @property
    def end(self) -> str:
        """The end token text after every answer."""
        return self.end_marker

    def grid(self, g: Grid) -> str:
        """Rows of digits, each ending with a newline."""
        g = np.asarray(g)
        cells = np.empty((g.shape[0], g.shape[1] + 1), dtype=np.uint8)
        cells[:, :-1] = _DIGITS[g]
        cells[:, -1] = ord("\n")
        return cells.tobytes().decode("ascii")

    def query(self, g: Grid) -> str:
        """An input grid and the output marker: what precedes a model's answer."""
        return f"{self.input_marker}\n{self.grid(g)}{self.output_marker}\n"

    def target(self, g: Grid) -> str:
        """The text a model should produce for output grid g."""
        return self.grid(g) + self.end_marker

    def example(self, inp: Grid, out: Grid) -> str:
        """One demonstration pair."""
        return self.query(inp) + self.target(out)

    def prompt(self, demos: Sequence[tuple[Grid, Grid]], query: Grid) -> str:
        """Demonstrations, then the query input, ending where the answer starts."""
        return "".join(self.example(i, o) for i, o in demos) + self.query(query)

    def render(self, pairs: Sequence[tuple[Grid, Grid]]) -> tuple[str, tuple[Span, ...]]:
        """A training text of solved pairs (the last is the query) and the span of every output."""
        return join_parts([x for i, o in pairs for x in ((self.query(i), False), (self.target(o), True))])

    def parse(self, text: str) -> Grid | None:
        """The grid in a model's answer, or None."""
        return parse_grid(text, self.end_marker)

    def symbols(self) -> AnswerSymbols:
        """Digits, the newline and the end marker."""
        return AnswerSymbols(DIGITS, ("\n",), self.end_marker)

    def cost(self, demos: Sequence[tuple[Grid, Grid]], query: Grid, answer: Grid | None = None) -> int:
        """Estimated tokens of prompt + answer (room for the largest answer if None): one per cell
        and row, a margin of 8 per pair; the estimate `fit_demos`/`fit_context` always used."""
        def chars(g: Grid) -> int:
            return g.shape[0] * (g.shape[1] + 1)

        n = sum(chars(i) + chars(o) + 8 for i, o in demos) + chars(query)
        return n + (ANSWER_ROOM if answer is None else chars(answer) + 8)


def parse_grid(text: str, end_marker: str | None = None) -> Grid | None:
    """The grid in a model's answer, or None if it is not one (ragged, non-digit, empty, > 30)."""
    if end_marker and end_marker in text:
        text = text[: text.index(end_marker)]
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    if not rows or len(rows) > MAX_SIDE:
        return None
    width = len(rows[0])
    if not 1 <= width <= MAX_SIDE or any(len(r) != width or not r.isdigit() or not r.isascii() for r in rows):
        return None
    return (np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8) - ord("0")).astype(np.int8).reshape(
        len(rows), width)


class TokenizerError(ValueError):
    """The tokenizer cannot represent the grid format one symbol per token."""


def check_tokenizer(tokenizer: Any, fmt: TextFormat | None = None) -> dict[str, int]:
    """Assert every digit and the newline is exactly one token, alone and inside a row (so a
    BPE that merges '000' into one token is caught). Returns {symbol: token id}."""
    ids: dict[str, int] = {}
    for sym in [*"0123456789", "\n"]:
        enc = tokenizer.encode(sym, add_special_tokens=False)
        if len(enc) != 1:
            raise TokenizerError(f"tokenizer encodes {sym!r} as {len(enc)} tokens {enc}; the grid format "
                                 "needs exactly one token per digit and per newline")
        ids[sym] = enc[0]
    for row in ("0000000000\n", "0123456789\n", "9988776655\n\n"):
        enc = tokenizer.encode(row, add_special_tokens=False)
        if enc != [ids[c] for c in row]:
            raise TokenizerError(f"tokenizer merges digits: {row!r} -> {enc}; the compact format needs one token "
                                 "per cell. For a Llama-3 style tokenizer use --preset marc (cells apart by "
                                 "spaces); or pick a model whose tokenizer splits digits (Qwen, Mistral, Llama-2)")
    if fmt is not None and fmt.end_marker:
        enc = tokenizer.encode(fmt.end_marker, add_special_tokens=False)
        if len(enc) != 1:
            raise TokenizerError(f"end marker {fmt.end_marker!r} is {len(enc)} tokens; it must be one "
                                 "(normally the tokenizer's eos token)")
    return ids
