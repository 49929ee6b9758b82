"""How the DSL's primitives (dsl.py) see a grid's parts: bounding boxes, connected components (memoised,
pure Python: scipy is not in the environment), objects picked by a unique extreme or odd feature, halves
and the cells between separator lines. Background is colour 0."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from submission.arc.grid import MAX_SIDE, Grid

_CC_CACHE: dict[tuple, tuple[np.ndarray, int]] = {}


def valid(g: Grid | None) -> Grid | None:
    """g as a contiguous int8 grid if it is a legal ARC grid (1..30 per side), else None."""
    if g is None or g.ndim != 2 or not (1 <= g.shape[0] <= MAX_SIDE and 1 <= g.shape[1] <= MAX_SIDE):
        return None
    return np.ascontiguousarray(g, dtype=np.int8)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1), end-exclusive, of the True cells; None if there are none."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_mask(g: Grid, mask: np.ndarray) -> Grid | None:
    box = bbox(mask)
    return None if box is None else g[box[0]:box[1], box[2]:box[3]]


def labels(g: Grid, diag: bool, by_color: bool) -> tuple[np.ndarray, int]:
    """Connected components of non-zero cells: (label per cell, -1 on background; count). `by_color`:
    a component holds one colour; `diag`: 8-connectivity. Memoised: many steps read the same grid."""
    key = (g.shape, g.tobytes(), diag, by_color)
    hit = _CC_CACHE.get(key)
    if hit is not None:
        return hit
    h, w = g.shape
    flat = g.ravel().tolist()
    lab = [-1] * (h * w)
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)] + ([(-1, -1), (-1, 1), (1, -1), (1, 1)] if diag else [])
    n = 0
    for start in range(h * w):
        if flat[start] == 0 or lab[start] >= 0:
            continue
        lab[start], stack = n, [start]
        while stack:
            i = stack.pop()
            r, c = divmod(i, w)
            for dr, dc in steps:
                rr, cc = r + dr, c + dc
                if 0 <= rr < h and 0 <= cc < w:
                    j = rr * w + cc
                    if lab[j] < 0 and flat[j] != 0 and (not by_color or flat[j] == flat[i]):
                        lab[j] = n
                        stack.append(j)
        n += 1
    if len(_CC_CACHE) > 20000:
        _CC_CACHE.clear()
    out = (np.asarray(lab, dtype=np.int16).reshape(h, w), n)
    _CC_CACHE[key] = out
    return out


def objects(g: Grid, diag: bool = True, by_color: bool = False) -> list[np.ndarray]:
    """The masks of the connected components of non-zero cells, in reading order of their first cell."""
    lab, n = labels(g, diag, by_color)
    return [lab == k for k in range(n)]


def pick(masks: list[np.ndarray], key: Callable[[np.ndarray], float], largest: bool) -> np.ndarray | None:
    """The mask with the unique extreme key (a tie is ambiguous: None)."""
    if not masks:
        return None
    keys = [key(m) for m in masks]
    best = max(keys) if largest else min(keys)
    return masks[keys.index(best)] if keys.count(best) == 1 else None


def shape_of(g: Grid, m: np.ndarray) -> bytes:
    box = bbox(m)
    sub = np.where(m, g, 0)[box[0]:box[1], box[2]:box[3]]
    return bytes(sub.shape) + (sub != 0).tobytes()


def colors_of(g: Grid, m: np.ndarray) -> tuple[int, ...]:
    return tuple(sorted(set(g[m].tolist())))


def odd_one(g: Grid, masks: list[np.ndarray], feature: Callable[[Grid, np.ndarray], object]) -> np.ndarray | None:
    """The one mask whose feature no other mask shares (needs at least three masks)."""
    if len(masks) < 3:
        return None
    feats = [feature(g, m) for m in masks]
    odd = [m for m, f in zip(masks, feats) if feats.count(f) == 1]
    return odd[0] if len(odd) == 1 else None


def halves(g: Grid) -> tuple[Grid, Grid] | None:
    """Left and right parts: split at a full one-colour column in the middle, or at the middle of an even width."""
    h, w = g.shape
    mid = w // 2
    if w % 2 == 1 and w >= 3 and (g[:, mid] == g[0, mid]).all():
        return g[:, :mid], g[:, mid + 1:]
    if w % 2 == 0 and w >= 2:
        return g[:, :mid], g[:, mid:]
    return None


def pad(a: np.ndarray, value) -> np.ndarray:
    """a with a one-cell border of `value` (np.pad is slow for this)."""
    out = np.full((a.shape[0] + 2, a.shape[1] + 2), value, dtype=a.dtype)
    out[1:-1, 1:-1] = a
    return out


def split_cells(g: Grid) -> list[Grid] | None:
    """The equal-sized cells of a grid cut by full rows and columns of one non-zero colour (at least two
    cells), in reading order."""
    table = cell_table(g)
    return None if table is None else [c for row in table for c in row]


def cell_table(g: Grid) -> list[list[Grid]] | None:
    """cells as rows of cells."""
    line_r = [r for r in range(g.shape[0]) if g[r, 0] != 0 and (g[r] == g[r, 0]).all()]
    line_c = [c for c in range(g.shape[1]) if g[0, c] != 0 and (g[:, c] == g[0, c]).all()]
    if not line_r and not line_c:
        return None

    def spans(lines: list[int], n: int) -> list[tuple[int, int]]:
        cuts, out = [-1, *lines, n], []
        for a, b in zip(cuts, cuts[1:]):
            if b - a > 1:
                out.append((a + 1, b))
        return out

    rows, cols = spans(line_r, g.shape[0]), spans(line_c, g.shape[1])
    table = [[g[r0:r1, c0:c1] for c0, c1 in cols] for r0, r1 in rows]
    if len(rows) * len(cols) < 2 or len({c.shape for row in table for c in row}) != 1:
        return None
    return table


def color_counts(g: Grid) -> np.ndarray:
    return np.bincount(g.ravel().astype(np.int64), minlength=10)
