"""Compact text format: one digit per cell, each row ends with a newline, markers for input and
output, and an end marker after every output (the tokenizer's end-of-sequence text at run time,
so the model learns to stop). Prompt builder, target text, a forgiving parser, tokenizer check.

    I            <- input marker, newline
    012          <- rows
    340
    O            <- output marker, newline
    21           <- rows
    </s>         <- end marker (no newline)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from submission.grid import MAX_SIDE, Grid

_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


@dataclass(frozen=True)
class TextFormat:
    input_marker: str = "I"  # starts an input grid (followed by a newline)
    output_marker: str = "O"  # starts an output grid (followed by a newline)
    end_marker: str = "</s>"  # ends every output; set to the tokenizer's eos text for a real model

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
            raise TokenizerError(f"tokenizer merges digits: {row!r} -> {enc}; pick a model whose tokenizer "
                                 "splits digits (Qwen, Mistral, Llama-2) or a reduced-vocabulary model")
    if fmt is not None and fmt.end_marker:
        enc = tokenizer.encode(fmt.end_marker, add_special_tokens=False)
        if len(enc) != 1:
            raise TokenizerError(f"end marker {fmt.end_marker!r} is {len(enc)} tokens; it must be one "
                                 "(normally the tokenizer's eos token)")
    return ids
