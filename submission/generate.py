"""A small re-arc-like task generator (pure numpy): parameterised families of ARC-style rules on
small grids. Every task draws its own rule parameters, so it can only be solved by inferring the
rule from its own demonstrations. Seeded and fast (thousands of tasks per second).

Held-out split: a family's parameters hash into 'train' or 'heldout' (about 1 in 5 held out), so
a model fine-tuned on `split='train'` never saw the exact rules of `split='heldout'` tasks.

    tasks = generate_tasks(100, seed=0, split="heldout")
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from submission.augment import D8
from submission.data import Pair, Task

SPLITS = ("train", "heldout", "all")
HELDOUT_PERCENT = 20


@dataclass(frozen=True)
class Family:
    name: str
    params: Callable[[np.random.Generator], tuple]  # draws one rule (hashable, part of the held-out key)
    make: Callable[[np.random.Generator, tuple, int], np.ndarray]  # rng, params, max side -> an input grid
    apply: Callable[[tuple, np.ndarray], np.ndarray | None]  # the rule; None if this input does not suit it


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
        rh, rw = int(rng.integers(min_size, max(min_size, h // 2) + 1)), int(rng.integers(min_size, max(min_size, w // 2) + 1))
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
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = g[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
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


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("d8_recolor", lambda r: (int(r.integers(1, 8)), *((lambda c: (c[0], c[1]) if r.random() < 0.5 else (0, 0))(_colors(r, 2)))),
           _sparse, _d8_recolor),
    Family("colormap", _colormap_params, _colormap_make, _colormap),
    Family("gravity", lambda r: (int(r.integers(0, 4)),), _sparse, _gravity),
    Family("recolor_by_size", lambda r: tuple(_colors(r, 2)), _blobs, _recolor_size),
    Family("crop_color", _one, _crop_make, _crop),
    Family("tile", lambda r: _tile_params(r), _small(2, 4), _tile),
    Family("scale", lambda r: _scale_params(r), _small(2, 4), _scale),
    Family("shift", lambda r: ([d for d in [(int(r.integers(-2, 3)), int(r.integers(-2, 3)))] if d != (0, 0)] or [(0, 1)])[0] + (bool(r.integers(0, 2)),),
           _sparse, _shift),
    Family("fill_enclosed", _one, _hollow_make, _fill_inside),
    Family("rays", _rays_params, _dots, _rays),
    Family("background", _one, _sparse, _bg),
    Family("mirror_concat", lambda r: (int(r.integers(0, 2)), bool(r.integers(0, 2)), bool(r.integers(0, 2))),
           _small(2, 6), _mirror_concat),
    Family("outline", _one, _solid_make, _outline),
    Family("border", _one, _sparse, _border),
)}


def _scale_params(rng):
    while True:
        a, b = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if (a, b) != (1, 1):
            return a, b


def _tile_params(rng):
    return (*_scale_params(rng), int(rng.integers(0, 3)))


def is_heldout(family: str, params: tuple) -> bool:
    """Stable assignment of a rule to the held-out split (~HELDOUT_PERCENT %)."""
    digest = hashlib.sha256(f"{family}:{params!r}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % 100 < HELDOUT_PERCENT


def families_for(split: str) -> tuple[str, ...]:
    """Families with at least one rule in `split` (gravity, crop_color and mirror_concat have so few
    rules that none hash into the held-out split: they are training-only)."""
    def has(name: str) -> bool:
        rng = np.random.default_rng(0)
        return any(split == "all" or is_heldout(name, p) == (split == "heldout")
                   for p in (FAMILIES[name].params(rng) for _ in range(1000)))
    return tuple(n for n in sorted(FAMILIES) if has(n))


def _draw_params(rng: np.random.Generator, fam: Family, split: str) -> tuple:
    for _ in range(1000):
        p = fam.params(rng)
        if split == "all" or is_heldout(fam.name, p) == (split == "heldout"):
            return p
    raise ValueError(f"family {fam.name!r} has no parameters in split {split!r}")


def generate_task(rng: np.random.Generator, task_id: str, family: str | None = None, split: str = "train",
                  demos: tuple[int, int] = (2, 4), max_side: int = 10, max_out_side: int = 12) -> Task:
    """One task: a family (random if None), its rule parameters, 2-4 demos and one test pair, all
    with distinct inputs, outputs at most max_out_side, and not every output equal to its input."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    names = sorted(FAMILIES)
    while True:
        fam = FAMILIES[family or names[int(rng.integers(len(names)))]]
        params = _draw_params(rng, fam, split)
        n = int(rng.integers(demos[0], demos[1] + 1)) + 1
        pairs, seen = [], set()
        for _ in range(20 * n):
            g = fam.make(rng, params, max_side).astype(np.int8)
            out = fam.apply(params, g)
            if out is None or g.tobytes() + bytes(g.shape) in seen:
                continue
            out = np.ascontiguousarray(out, dtype=np.int8)
            if max(out.shape) > max_out_side or min(out.shape) < 1:
                continue
            seen.add(g.tobytes() + bytes(g.shape))
            pairs.append(Pair(g, out))
            if len(pairs) == n:
                break
        if len(pairs) == n and not all(p.input.shape == p.output.shape and (p.input == p.output).all() for p in pairs):
            return Task(task_id, tuple(pairs[:-1]), tuple(pairs[-1:]))


def generate_tasks(n: int, seed: int = 0, split: str = "train", families: tuple[str, ...] | None = None,
                   **kwargs) -> list[Task]:
    """n tasks, reproducible from (seed, index): task i is the same however many are generated."""
    names = tuple(families or families_for(split))
    unknown = set(names) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; known: {sorted(FAMILIES)}")
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        fam = names[int(rng.integers(len(names)))]
        out.append(generate_task(rng, f"gen-{split}-{seed}-{i:05d}-{fam}", fam, split, **kwargs))
    return out


def tasks_to_json(tasks: list[Task]) -> tuple[dict, dict]:
    """(challenges, solutions) in the Kaggle file layout."""
    ch = {t.id: {"train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in t.train],
                 "test": [{"input": p.input.tolist()} for p in t.test]} for t in tasks}
    sol = {t.id: [p.output.tolist() for p in t.test] for t in tasks}
    return ch, sol
