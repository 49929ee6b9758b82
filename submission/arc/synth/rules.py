"""The rule families of the task generator (pure numpy): each family draws a rule's parameters, makes
an input grid that suits the rule, applies it, and lists every parameter tuple it can draw (for the
split checks in submission/arc/synth/split.py). Tasks are built from these in submission/arc/synth/generate.py.

    out = FAMILIES["gravity"].apply((1,), grid)
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, permutations
from typing import Callable, Iterable

import numpy as np

from submission.arc.augment import D8


@dataclass(frozen=True)
class Family:
    name: str
    params: Callable[[np.random.Generator], tuple]  # draws one rule's parameters
    make: Callable[[np.random.Generator, tuple, int], np.ndarray]  # rng, params, max side -> an input grid
    apply: Callable[[tuple, np.ndarray], np.ndarray | None]  # the rule; None if this input does not suit it
    space: Callable[[], Iterable[tuple]]  # every parameter tuple `params` can draw, canonical (for the checks)


# -- input makers -------------------------------------------------------------------------------------


def _side(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int]:
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def noise(rng: np.random.Generator, h: int, w: int, density: float, colors: list[int] | np.ndarray) -> np.ndarray:
    """Background 0 with a fraction `density` of cells in random `colors`."""
    g = np.zeros((h, w), dtype=np.int8)
    mask = rng.random((h, w)) < density
    g[mask] = rng.choice(np.asarray(colors, dtype=np.int8), int(mask.sum()))
    return g


def _colors(rng: np.random.Generator, k: int, exclude: tuple[int, ...] = (0,)) -> list[int]:
    pool = [c for c in range(10) if c not in exclude]
    return [int(c) for c in rng.choice(pool, k, replace=False)]


def _sparse(rng, p, side):
    h, w = _side(rng, 3, side)
    return noise(rng, h, w, rng.uniform(0.15, 0.5), _colors(rng, int(rng.integers(1, 4))))


def _rects(rng: np.random.Generator, side: int, color: int | None, hollow: bool, min_size: int = 1) -> np.ndarray:
    """A few non-touching rectangles on background 0 (one colour, or random colours)."""
    h, w = _side(rng, max(5, min_size + 2), side)
    g = np.zeros((h, w), dtype=np.int8)
    for _ in range(int(rng.integers(1, 4))):
        rh = int(rng.integers(min_size, max(min_size, h // 2) + 1))
        rw = int(rng.integers(min_size, max(min_size, w // 2) + 1))
        y, x = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
        y0, x0, y1, x1 = max(0, y - 1), max(0, x - 1), min(h, y + rh + 1), min(w, x + rw + 1)
        if g[y0:y1, x0:x1].any():
            continue
        g[y:y + rh, x:x + rw] = color if color is not None else _colors(rng, 1)[0]
        if hollow:
            g[y + 1:y + rh - 1, x + 1:x + rw - 1] = 0
    return g


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, as arrays of (row, col)."""
    seen = np.zeros_like(mask, dtype=bool)
    out = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        stack, cells = [start], []
        seen[start] = True
        while stack:
            y, x = stack.pop()
            cells.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        out.append(np.array(cells))
    return out


# -- rules -------------------------------------------------------------------------------------------------


def _d8_recolor(p, g):
    t, a, b = p
    g = D8[t](g).copy()
    if a:
        g[g == a] = b
    return g


def _colormap(p, g):
    lut = np.arange(10, dtype=np.int8)
    for a, b in p:
        lut[a] = b
    return lut[g]


def _colormap_params(rng):
    k = int(rng.integers(1, 4))
    src, dst = _colors(rng, k), _colors(rng, k)
    return tuple((a, b) for a, b in zip(src, dst) if a != b) or ((src[0], 0 if src[0] != 0 else 1),)


def _colormap_make(rng, p, side):
    h, w = _side(rng, 3, side)
    cols = [a for a, _ in p] + _colors(rng, 1)
    return noise(rng, h, w, rng.uniform(0.3, 0.8), cols)


def _gravity(p, g):
    (d,) = p
    r = np.rot90(g, d)  # rotate so the fall direction is 'down'
    out = np.zeros_like(r)
    for x in range(r.shape[1]):
        col = r[:, x][r[:, x] != 0]
        if len(col):
            out[-len(col):, x] = col
    return np.rot90(out, -d)


def _recolor_size(p, g):
    big, small = p
    comps = components(g != 0)
    if len(comps) < 2:
        return None
    sizes = [len(c) for c in comps]
    if sizes.count(max(sizes)) > 1:
        return None
    out = g.copy()
    for c, n in zip(comps, sizes):
        out[c[:, 0], c[:, 1]] = big if n == max(sizes) else small
    return out


def _blobs(rng, p, side):
    h, w = _side(rng, 5, side)
    color = _colors(rng, 1, exclude=(0, *p))[0]
    return noise(rng, h, w, rng.uniform(0.2, 0.4), [color])


def _crop(p, g):
    (c,) = p
    ys, xs = np.nonzero(g == c)
    if len(ys) == 0:
        return None
    return g[ys.min():ys.max() + 1, xs.min():xs.max() + 1].copy()


def _crop_make(rng, p, side):
    (c,) = p
    h, w = _side(rng, 5, side)
    g = noise(rng, h, w, rng.uniform(0.05, 0.2), _colors(rng, 2, exclude=(0, c)))
    rh, rw = int(rng.integers(2, max(2, h // 2) + 1)), int(rng.integers(2, max(2, w // 2) + 1))
    y, x = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
    patch = noise(rng, rh, rw, 0.6, [c])
    patch[0, 0] = patch[-1, -1] = c  # the bounding box is the patch
    g[y:y + rh, x:x + rw] = patch
    return g


def _tile(p, g):
    ry, rx, mirror = p
    if not mirror:
        return np.tile(g, (ry, rx))
    rows = [np.concatenate([g if (i + j) % 2 == 0 else g[:, ::-1] if mirror == 1 else g[::-1, ::-1]
                            for j in range(rx)], axis=1) for i in range(ry)]
    return np.concatenate(rows, axis=0)


def _small(lo, hi):
    def make(rng, p, side):
        h, w = _side(rng, lo, min(hi, side))
        return noise(rng, h, w, rng.uniform(0.3, 0.7), _colors(rng, int(rng.integers(1, 4))))
    return make


def _scale(p, g):
    ky, kx = p
    return np.repeat(np.repeat(g, ky, axis=0), kx, axis=1)


def _shift(p, g):
    dy, dx, wrap = p
    if wrap:
        return np.roll(g, (dy, dx), axis=(0, 1))
    out = np.zeros_like(g)
    h, w = g.shape
    src = g[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = src
    return out


def _fill_inside(p, g):
    (f,) = p
    out = g.copy()
    for comp in components(g == 0):  # background regions not touching the border are enclosed
        ys, xs = comp[:, 0], comp[:, 1]
        if ys.min() > 0 and xs.min() > 0 and ys.max() < g.shape[0] - 1 and xs.max() < g.shape[1] - 1:
            out[ys, xs] = f
    return None if (out == g).all() else out


def _hollow_make(rng, p, side):
    return _rects(rng, side, _colors(rng, 1, exclude=(0, *p))[0], hollow=True, min_size=3)


_DIRS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def _rays(p, g):
    out = g.copy()
    h, w = g.shape
    for y, x in zip(*np.nonzero(g)):
        for d in p:
            dy, dx = _DIRS[d]
            ny, nx = y + dy, x + dx
            while 0 <= ny < h and 0 <= nx < w and g[ny, nx] == 0:
                out[ny, nx] = g[y, x]
                ny, nx = ny + dy, nx + dx
    return out


def _rays_params(rng):
    return tuple(sorted(int(d) for d in rng.choice(8, int(rng.integers(1, 3)), replace=False)))


def _dots(rng, p, side):
    h, w = _side(rng, 4, side)
    g = np.zeros((h, w), dtype=np.int8)
    for _ in range(int(rng.integers(1, 3))):
        g[rng.integers(0, h), rng.integers(0, w)] = _colors(rng, 1)[0]
    return g


def _bg(p, g):
    (c,) = p
    out = g.copy()
    out[g == 0] = c
    return out


def _mirror_concat(p, g):
    axis, before, flip = p
    m = np.flip(g, axis=axis) if flip else g
    parts = (m, g) if before else (g, m)
    return np.concatenate(parts, axis=axis)


def _outline(p, g):
    (b,) = p
    out = g.copy()
    for comp in components(g != 0):
        ys, xs = comp[:, 0], comp[:, 1]
        edge = (ys == ys.min()) | (ys == ys.max()) | (xs == xs.min()) | (xs == xs.max())
        out[ys[edge], xs[edge]] = b
    return out


def _solid_make(rng, p, side):
    return _rects(rng, side, None, hollow=False, min_size=3)


def _border(p, g):
    (c,) = p
    out = g.copy()
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = c
    return out


def _one(rng) -> tuple:
    return (_colors(rng, 1)[0],)


# -- families -------------------------------------------------------------------------------------------

COLORS = tuple(range(1, 10))


def _d8_recolor_params(rng):
    t, (a, b) = int(rng.integers(1, 8)), _colors(rng, 2)
    return (t, a, b) if rng.random() < 0.5 else (t, 0, 0)


def _shift_params(rng):
    d = (int(rng.integers(-2, 3)), int(rng.integers(-2, 3)))
    return (d if d != (0, 0) else (0, 1)) + (bool(rng.integers(0, 2)),)


def _scale_params(rng):
    while True:
        a, b = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if (a, b) != (1, 1):
            return a, b


def _tile_params(rng):
    return (*_scale_params(rng), int(rng.integers(0, 3)))


def _colormap_space() -> list[tuple]:
    """Every canonical colour map the family draws: 1-3 pairs a->b (a != b) with distinct sources and
    distinct targets among colours 1-9, or one colour to 0 (the draw's fallback)."""
    out = [((a, 0),) for a in COLORS]
    for k in (1, 2, 3):
        for src in combinations(COLORS, k):
            out += [tuple(zip(src, dst)) for dst in permutations(COLORS, k) if all(a != b for a, b in zip(src, dst))]
    return out


def _one_color_space():
    return [(c,) for c in COLORS]


_SCALES = [(a, b) for a in (1, 2, 3) for b in (1, 2, 3) if (a, b) != (1, 1)]


def _d8_recolor_space():
    return [(t, 0, 0) for t in range(1, 8)] + [(t, a, b) for t in range(1, 8) for a, b in permutations(COLORS, 2)]


def _shift_space():
    return [(dy, dx, w) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0) for w in (False, True)]


def _mirror_params(rng):
    return int(rng.integers(0, 2)), bool(rng.integers(0, 2)), bool(rng.integers(0, 2))


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("d8_recolor", _d8_recolor_params, _sparse, _d8_recolor, _d8_recolor_space),
    Family("colormap", _colormap_params, _colormap_make, _colormap, _colormap_space),
    Family("gravity", lambda r: (int(r.integers(0, 4)),), _sparse, _gravity, lambda: [(d,) for d in range(4)]),
    Family("recolor_by_size", lambda r: tuple(_colors(r, 2)), _blobs, _recolor_size,
           lambda: list(permutations(COLORS, 2))),
    Family("crop_color", _one, _crop_make, _crop, _one_color_space),
    Family("tile", _tile_params, _small(2, 4), _tile, lambda: [(*s, m) for s in _SCALES for m in range(3)]),
    Family("scale", _scale_params, _small(2, 4), _scale, lambda: list(_SCALES)),
    Family("shift", _shift_params, _sparse, _shift, _shift_space),
    Family("fill_enclosed", _one, _hollow_make, _fill_inside, _one_color_space),
    Family("rays", _rays_params, _dots, _rays, lambda: [(d,) for d in range(8)] + list(combinations(range(8), 2))),
    Family("background", _one, _sparse, _bg, _one_color_space),
    Family("mirror_concat", _mirror_params, _small(2, 6), _mirror_concat,
           lambda: [(a, b, f) for a in (0, 1) for b in (False, True) for f in (False, True)]),
    Family("outline", _one, _solid_make, _outline, _one_color_space),
    Family("border", _one, _sparse, _border, _one_color_space),
)}
