"""A library of grid primitives for the CPU program search (search.py): pure numpy, each a unary
Grid -> Grid | None (None: does not apply to this grid).

A step is a name with optional integer parameters, written `name` or `name{a,b}` (`recolor{1:2,3:4}`
for a colour map); a program is steps joined by " | ". Directional primitives come in one canonical
direction only (gravity falls down, halves split left/right): the search's D8 frames give the other
seven. Background is colour 0 throughout. STATIC maps the parameterless primitives by name, FACTORIES
the parameterised ones (ARITY: their parameter counts); steps.py turns names and text into programs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from submission.arc.augment import D8, D8_NAMES
from submission.arc.grid import MAX_SIDE, Grid
from submission.programs.objects import (
    cell_table,
    color_counts,
    colors_of,
    crop_mask,
    halves,
    labels,
    objects,
    odd_one,
    pad,
    pick,
    shape_of,
    split_cells,
)

Prim = Callable[[Grid], "Grid | None"]
Step = tuple[str, tuple[int, ...]]  # (name, integer parameters); recolor's are pairs flattened

# -- parameterless primitives -------------------------------------------------------------------------

def crop_bbox(g: Grid) -> Grid | None:
    """The bounding box of the non-zero cells."""
    return crop_mask(g, g != 0)


def crop_largest(g: Grid) -> Grid | None:
    """The bounding box of the largest 8-connected object (any colours)."""
    m = pick(objects(g), np.count_nonzero, True)
    return None if m is None else crop_mask(g, m)


def crop_smallest(g: Grid) -> Grid | None:
    """The bounding box of the smallest 8-connected object (any colours)."""
    m = pick(objects(g), np.count_nonzero, False)
    return None if m is None else crop_mask(g, m)


def crop_largest_mono(g: Grid) -> Grid | None:
    """The bounding box of the largest 4-connected one-colour object."""
    m = pick(objects(g, False, True), np.count_nonzero, True)
    return None if m is None else crop_mask(g, m)


def crop_smallest_mono(g: Grid) -> Grid | None:
    """The bounding box of the smallest 4-connected one-colour object."""
    m = pick(objects(g, False, True), np.count_nonzero, False)
    return None if m is None else crop_mask(g, m)


def crop_odd_shape(g: Grid) -> Grid | None:
    """The object (8-connected) whose shape no other object has."""
    m = odd_one(g, objects(g), shape_of)
    return None if m is None else crop_mask(g, m)


def crop_odd_color(g: Grid) -> Grid | None:
    """The object (8-connected) whose set of colours no other object has."""
    m = odd_one(g, objects(g), colors_of)
    return None if m is None else crop_mask(g, m)


def crop_most_colors(g: Grid) -> Grid | None:
    """The object (8-connected) with the most distinct colours."""
    m = pick(objects(g), lambda m: len(set(g[m].tolist())), True)
    return None if m is None else crop_mask(g, m)


def keep_largest(g: Grid) -> Grid | None:
    """Erase everything but the largest 8-connected object."""
    m = pick(objects(g), np.count_nonzero, True)
    return None if m is None else np.where(m, g, 0)


def _erase_small(g: Grid, diagonal: bool, mono: bool, most: int) -> Grid | None:
    """Erase the objects (labels(g, diagonal, mono)) of at most `most` cells."""
    lab, n = labels(g, diagonal, mono)
    if n == 0:
        return None
    sizes = np.bincount(lab[lab >= 0].astype(np.int64), minlength=n)
    return np.where((lab >= 0) & (sizes[np.maximum(lab, 0)] > most), g, 0)


def denoise(g: Grid) -> Grid | None:
    """Erase single-cell objects (8-connected, any colours)."""
    return _erase_small(g, True, False, 1)


def denoise_mono(g: Grid) -> Grid | None:
    """Erase one-colour 4-connected pieces of at most two cells."""
    return _erase_small(g, False, True, 2)


def gravity(g: Grid) -> Grid | None:
    """Non-zero cells fall to the bottom of their column, keeping their order."""
    out = np.zeros_like(g)
    for c in range(g.shape[1]):
        col = g[:, c][g[:, c] != 0]
        if col.size:
            out[-col.size:, c] = col
    return out


def sym_lr(g: Grid) -> Grid | None:
    """Fill zero cells from their left-right mirror image."""
    return np.where(g != 0, g, g[:, ::-1])


def sym_all(g: Grid) -> Grid | None:
    """Fill zero cells from every mirror image (and the transpose when square) until nothing changes."""
    maps = [lambda x: x[:, ::-1], lambda x: x[::-1, :], lambda x: x[::-1, ::-1]]
    if g.shape[0] == g.shape[1]:
        maps += [lambda x: x.T, lambda x: x[::-1, ::-1].T]
    out = g
    for _ in range(4):
        prev = out
        for f in maps:
            out = np.where(out != 0, out, f(out))
        if np.array_equal(prev, out):
            break
    return out


def mirror_cat(g: Grid) -> Grid | None:
    """The grid followed by its left-right mirror."""
    return np.hstack([g, g[:, ::-1]])


def mirror_tile(g: Grid) -> Grid | None:
    """A 2x2 tiling with mirrors: g, flip_lr / flip_ud, rot180."""
    top = np.hstack([g, g[:, ::-1]])
    return np.vstack([top, top[::-1, :]])


def kron_self(g: Grid) -> Grid | None:
    """Each non-zero cell becomes a copy of the grid, each zero cell a zero block."""
    if g.shape[0] ** 2 > MAX_SIDE or g.shape[1] ** 2 > MAX_SIDE:
        return None
    return np.kron((g != 0).astype(np.int8), g)


def extend_down(g: Grid) -> Grid | None:
    """Each non-zero cell paints the zero cells below it, up to the next non-zero cell."""
    out = g.copy()
    for r in range(1, g.shape[0]):
        out[r] = np.where(out[r] == 0, out[r - 1], out[r])
    return out


def connect_h(g: Grid) -> Grid | None:
    """In each row, the zero cells between two cells of one colour take that colour."""
    out = g.copy()
    for r in range(g.shape[0]):
        row = g[r]
        for c in set(row.tolist()) - {0}:
            idx = np.flatnonzero(row == c)
            if idx.size >= 2:
                seg = out[r, idx[0]:idx[-1] + 1]
                seg[seg == 0] = c
    return out


def left_half(g: Grid) -> Grid | None:
    """The left part (split at a middle separator column or the middle)."""
    hv = halves(g)
    return None if hv is None else hv[0]


def _split_op(op: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Prim:
    def f(g: Grid) -> Grid | None:
        hv = halves(g)
        if hv is None or hv[0].shape != hv[1].shape:
            return None
        return op(hv[0] != 0, hv[1] != 0).astype(np.int8)
    return f


split_and = _split_op(np.logical_and)
split_or = _split_op(np.logical_or)
split_xor = _split_op(np.logical_xor)
split_nor = _split_op(lambda a, b: ~(a | b))
split_left_only = _split_op(lambda a, b: a & ~b)
for _f, _d in ((split_and, "both halves"), (split_or, "either half"), (split_xor, "exactly one half"),
               (split_nor, "neither half"), (split_left_only, "the left half but not the right")):
    _f.__doc__ = f"Colour 1 where {_d} (left/right) is non-zero, else 0."


def overlay_halves(g: Grid) -> Grid | None:
    """The left half drawn over the right half."""
    hv = halves(g)
    if hv is None or hv[0].shape != hv[1].shape:
        return None
    return np.where(hv[0] != 0, hv[0], hv[1])


def compress(g: Grid) -> Grid | None:
    """Merge runs of identical adjacent rows, then of identical adjacent columns."""
    keep_r = np.r_[True, (g[1:] != g[:-1]).any(1)]
    g = g[keep_r]
    keep_c = np.r_[True, (g[:, 1:] != g[:, :-1]).any(0)]
    return g[:, keep_c]


def drop_empty(g: Grid) -> Grid | None:
    """Remove all-zero rows and columns."""
    g = g[(g != 0).any(1)]
    return None if g.size == 0 else g[:, (g != 0).any(0)]


def majority_cell(g: Grid) -> Grid | None:
    """A 1x1 grid of the most common non-zero colour."""
    n = color_counts(g)[1:]
    return None if n.max() == 0 else np.array([[int(n.argmax()) + 1]], dtype=np.int8)


def minority_cell(g: Grid) -> Grid | None:
    """A 1x1 grid of the least common non-zero colour that occurs."""
    n = color_counts(g)[1:].astype(float)
    n[n == 0] = np.inf
    return None if np.isinf(n.min()) else np.array([[int(n.argmin()) + 1]], dtype=np.int8)


def invert(g: Grid) -> Grid | None:
    """Swap zero and the only non-zero colour."""
    colors = set(np.unique(g).tolist()) - {0}
    if len(colors) != 1:
        return None
    c = colors.pop()
    return np.where(g == 0, c, 0).astype(np.int8)


def hollow(g: Grid) -> Grid | None:
    """Erase the interior of objects: cells whose four neighbours share their colour."""
    p = pad(g, -1)
    inner = (g != 0) & (p[:-2, 1:-1] == g) & (p[2:, 1:-1] == g) & (p[1:-1, :-2] == g) & (p[1:-1, 2:] == g)
    return np.where(inner, 0, g)


def crop_odd_cell(g: Grid) -> Grid | None:
    """Of the cells between separator lines, the one unlike all the others."""
    cells = split_cells(g)
    if cells is None or len(cells) < 3:
        return None
    keys = [c.tobytes() for c in cells]
    odd = [c for c, k in zip(cells, keys) if keys.count(k) == 1]
    return odd[0] if len(odd) == 1 else None


def crop_fullest_cell(g: Grid) -> Grid | None:
    """Of the cells between separator lines, the one with the most non-zero cells."""
    cells = split_cells(g)
    return None if cells is None else _fullest(cells, True)


def crop_emptiest_cell(g: Grid) -> Grid | None:
    """Of the cells between separator lines, the one with the fewest non-zero cells."""
    cells = split_cells(g)
    return None if cells is None else _fullest(cells, False)


def _fullest(cells: list[Grid], most: bool) -> Grid | None:
    n = [int(np.count_nonzero(c)) for c in cells]
    best = max(n) if most else min(n)
    return cells[n.index(best)] if n.count(best) == 1 else None


def overlay_cells(g: Grid) -> Grid | None:
    """The cells between separator lines drawn over each other, first on top."""
    cells = split_cells(g)
    if cells is None:
        return None
    out = cells[-1].copy()
    for c in reversed(cells[:-1]):
        out = np.where(c != 0, c, out)
    return out


def size_colors(g: Grid) -> Grid | None:
    """Each one-colour 8-connected object takes colour min(size, 9): a final colour map reads sizes as colours."""
    lab, n = labels(g, True, True)
    if n == 0:
        return None
    sizes = np.minimum(np.bincount(lab[lab >= 0].astype(np.int64), minlength=n), 9)
    return np.where(lab >= 0, sizes[np.maximum(lab, 0)], 0).astype(np.int8)


def rank_colors(g: Grid) -> Grid | None:
    """Each one-colour 8-connected object takes colour 1 + its rank by size, largest first (ties: None)."""
    lab, n = labels(g, True, True)
    if n == 0 or n > 9:
        return None
    sizes = np.bincount(lab[lab >= 0].astype(np.int64), minlength=n)
    if len(set(sizes.tolist())) != n:
        return None
    rank = np.empty(n, dtype=np.int8)
    rank[np.argsort(-sizes)] = np.arange(1, n + 1)
    return np.where(lab >= 0, rank[np.maximum(lab, 0)], 0).astype(np.int8)


def extend_diag(g: Grid) -> Grid | None:
    """Each non-zero cell paints the zero cells down and to the right of it on its diagonal."""
    out = g.copy()
    for r in range(1, g.shape[0]):
        prev = np.r_[0, out[r - 1, :-1]].astype(np.int8)
        out[r] = np.where(out[r] == 0, prev, out[r])
    return out


def cell_colors(g: Grid) -> Grid | None:
    """The cells between separator lines as one pixel each: the cell's most common non-zero colour (or 0)."""
    table = cell_table(g)
    if table is None:
        return None
    return np.array([[int(color_counts(c)[1:].argmax()) + 1 if (c != 0).any() else 0 for c in row]
                     for row in table], dtype=np.int8)


def row_lines(g: Grid) -> Grid | None:
    """Each non-zero cell paints the zero cells of its whole row (the leftmost colour wins)."""
    out = g.copy()
    for r in range(g.shape[0]):
        nz = g[r][g[r] != 0]
        if nz.size:
            out[r][g[r] == 0] = nz[0]
    return out


def crop_rare(g: Grid) -> Grid | None:
    """The bounding box of the least common non-zero colour."""
    cell = minority_cell(g)
    return None if cell is None else crop_mask(g, g == cell[0, 0])


def rot_tile(g: Grid) -> Grid | None:
    """A square grid and its three quarter turns as a 2x2 pinwheel."""
    if g.shape[0] != g.shape[1]:
        return None
    return np.vstack([np.hstack([g, np.rot90(g, -1)]), np.hstack([np.rot90(g, 1), np.rot90(g, 2)])])


def kron_inv(g: Grid) -> Grid | None:
    """Each zero cell becomes a copy of the grid, each non-zero cell a zero block."""
    if g.shape[0] ** 2 > MAX_SIDE or g.shape[1] ** 2 > MAX_SIDE:
        return None
    return np.kron((g == 0).astype(np.int8), g)


def swap_bg(g: Grid) -> Grid | None:
    """Swap colour 0 with the most common colour (so the zero-background steps work on any background)."""
    bg = int(color_counts(g).argmax())
    if bg == 0:
        return None
    return np.where(g == bg, 0, np.where(g == 0, bg, g)).astype(np.int8)


def rays(g: Grid) -> Grid | None:
    """Each non-zero cell paints zero cells in the four axis directions, up to the next non-zero cell."""
    out = g.copy()
    for t, inv in ((lambda x: x, lambda x: x), (np.flipud, np.flipud), (np.transpose, np.transpose),
                   (lambda x: np.flipud(x.T), lambda x: np.flipud(x).T)):
        down = extend_down(t(g))
        out = np.where(out == 0, inv(down), out)
    return out


def _transform(i: int) -> Prim:
    f = D8[i]
    return lambda g: f(g)


STATIC: dict[str, Prim] = {name: _transform(i) for i, name in enumerate(D8_NAMES) if i}
STATIC.update({f.__name__: f for f in (
    crop_bbox, crop_largest, crop_smallest, crop_largest_mono, crop_smallest_mono, crop_odd_shape,
    crop_odd_color, crop_most_colors, keep_largest, denoise, denoise_mono, gravity, sym_lr, sym_all,
    mirror_cat, mirror_tile, kron_self, extend_down, connect_h, left_half, overlay_halves, compress,
    drop_empty, majority_cell, minority_cell, invert, hollow, swap_bg, rays,
    crop_odd_cell, crop_fullest_cell, crop_emptiest_cell, overlay_cells, size_colors, rank_colors, extend_diag,
    cell_colors, row_lines, crop_rare, rot_tile, kron_inv)})
STATIC.update(split_and=split_and, split_or=split_or, split_xor=split_xor, split_nor=split_nor,
              split_left_only=split_left_only)
# Steps that do not commute with the D8 symmetries (up to renaming another step): the frames give their
# other directions, so a program in a turned frame is new only if it holds one of these.
DIRECTIONAL = frozenset({"gravity", "sym_lr", "mirror_cat", "mirror_tile", "extend_down", "connect_h", "left_half",
                         "extend_diag", "overlay_cells", "row_lines", "rot_tile",
                         "split_and", "split_or", "split_xor", "split_nor", "split_left_only", "overlay_halves"})


# -- parameterised primitives: factories from integer parameters --------------------------------------

def crop_color(c: int) -> Prim:
    """The bounding box of the cells of colour c."""
    return lambda g: crop_mask(g, g == c)


def remove_color(c: int) -> Prim:
    """Colour c becomes 0."""
    return lambda g: np.where(g == c, 0, g) if (g == c).any() else None


def keep_color(c: int) -> Prim:
    """Every colour but c becomes 0."""
    return lambda g: np.where(g == c, g, 0) if (g == c).any() else None


def fill_enclosed(c: int) -> Prim:
    """Zero cells not 4-connected to the border through zero cells take colour c."""
    def f(g: Grid) -> Grid | None:
        outside = pad(g == 0, True)
        reach = np.zeros_like(outside)
        reach[0, :] = reach[-1, :] = reach[:, 0] = reach[:, -1] = True
        while True:  # flood from the border, one step in each direction per round
            grow = reach.copy()
            grow[1:] |= reach[:-1]
            grow[:-1] |= reach[1:]
            grow[:, 1:] |= reach[:, :-1]
            grow[:, :-1] |= reach[:, 1:]
            grow &= outside
            if np.array_equal(grow, reach):
                break
            reach = grow
        enclosed = (g == 0) & ~reach[1:-1, 1:-1]
        return np.where(enclosed, c, g) if enclosed.any() else None
    return f


def halo(c: int) -> Prim:
    """Zero cells next to (8-neighbours of) a non-zero cell take colour c."""
    def f(g: Grid) -> Grid | None:
        p = pad(g != 0, False)
        h, w = g.shape
        near = np.zeros((h, w), dtype=bool)
        for dr in (0, 1, 2):
            for dc in (0, 1, 2):
                near |= p[dr:dr + h, dc:dc + w]
        ring = near & (g == 0)
        return np.where(ring, c, g) if ring.any() else None
    return f


def scale_up(a: int, b: int) -> Prim:
    """Each cell becomes an a x b block."""
    return lambda g: np.repeat(np.repeat(g, a, 0), b, 1)


def scale_down(a: int, b: int) -> Prim:
    """Each a x b block (which must be one colour) becomes one cell."""
    def f(g: Grid) -> Grid | None:
        h, w = g.shape
        if h % a or w % b:
            return None
        small = g[::a, ::b]
        return small if np.array_equal(np.repeat(np.repeat(small, a, 0), b, 1), g) else None
    return f


def pool_any(a: int, b: int) -> Prim:
    """Each a x b block becomes one cell: its most common non-zero colour, or 0."""
    def f(g: Grid) -> Grid | None:
        h, w = g.shape
        if h % a or w % b:
            return None
        blocks = g.reshape(h // a, a, w // b, b).transpose(0, 2, 1, 3).reshape(h // a, w // b, a * b)
        counts = np.stack([(blocks == c).sum(-1) for c in range(1, 10)], -1)
        return np.where(counts.max(-1) > 0, counts.argmax(-1) + 1, 0).astype(np.int8)
    return f


def tile(a: int, b: int) -> Prim:
    """The grid repeated a times down and b times across."""
    return lambda g: np.tile(g, (a, b))


def recolor(*pairs: int) -> Prim:
    """Apply a colour map given as flattened (from, to) pairs; other colours stay."""
    lut = np.arange(10, dtype=np.int8)
    for src, dst in zip(pairs[::2], pairs[1::2]):
        lut[src] = dst
    return lambda g: lut[g]


FACTORIES: dict[str, Callable[..., Prim]] = {f.__name__: f for f in (
    crop_color, remove_color, keep_color, fill_enclosed, halo, scale_up, scale_down, pool_any, tile, recolor)}
ARITY = {"crop_color": 1, "remove_color": 1, "keep_color": 1, "fill_enclosed": 1, "halo": 1, "scale_up": 2,
         "scale_down": 2, "pool_any": 2, "tile": 2}
