"""Grids: 2-D int8 numpy arrays of colours 0..9, at most 30 per side; checking, keys, conversion."""

from __future__ import annotations

from typing import Any

import numpy as np

Grid = np.ndarray  # 2-D, dtype int8, values 0..9
MAX_SIDE = 30
NUM_COLORS = 10


def grid_problem(obj: Any) -> str | None:
    """Why `obj` is not a valid ARC grid (list of equal-length int rows, 1..30, 0..9), or None."""
    if not isinstance(obj, list) or not obj:
        return "not a non-empty list of rows"
    if len(obj) > MAX_SIDE:
        return f"{len(obj)} rows (max {MAX_SIDE})"
    width = None
    for r, row in enumerate(obj):
        if not isinstance(row, list) or not row:
            return f"row {r} is not a non-empty list"
        if width is None:
            width = len(row)
        elif len(row) != width:
            return f"ragged: row {r} has {len(row)} cells, row 0 has {width}"
        for c, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 9:
                return f"cell ({r},{c}) is {v!r}, not an integer 0..9"
    if width > MAX_SIDE:
        return f"{width} columns (max {MAX_SIDE})"
    return None


def to_grid(obj: Any) -> Grid:
    """A validated list-of-rows as an int8 array; ValueError says what is wrong."""
    problem = grid_problem(obj)
    if problem:
        raise ValueError(problem)
    return np.asarray(obj, dtype=np.int8)


def to_list(g: Grid) -> list[list[int]]:
    """Plain nested lists of ints, as JSON wants them."""
    return np.asarray(g).astype(int).tolist()


def grid_key(g: Grid) -> tuple[int, int, bytes]:
    """A hashable, exact identity for a grid (shape + cell bytes)."""
    g = np.ascontiguousarray(g, dtype=np.int8)
    return (g.shape[0], g.shape[1], g.tobytes())


def grids_equal(a: Any, b: Any) -> bool:
    """Exact equality of two grids given as arrays or nested lists."""
    try:
        a, b = np.asarray(a), np.asarray(b)
    except ValueError:  # ragged lists
        return False
    return a.shape == b.shape and a.ndim == 2 and bool((a == b).all())
