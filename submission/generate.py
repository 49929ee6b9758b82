"""A small re-arc-like task generator (pure numpy): parameterised families of ARC-style rules on
small grids. Every task draws its own rule parameters, so it can only be solved by inferring the
rule from its own demonstrations. Seeded and fast (hundreds of tasks per second).

Splits by function, not by parameter spelling. Each drawn rule is first made canonical (two
parameterisations that compute the same mapping are one rule: colour maps are sorted, no-op pairs
dropped, mirror_concat copies that are tiles become tiles). Its *split key* is the canonical rule
with the colour constants left out (a colour is read off the demos, it is not a new rule), so a
family that only varies a colour is assigned whole. Keys go to 'train', 'tune' or 'heldout' by the
OVERRIDES table, else by hash (HELDOUT_PERCENT / TUNE_PERCENT). Then every 'tune' task is checked
against every training rule, and every 'heldout' task against every training and tuning rule: a task whose
demos such a rule also explains (a colour map whose source colour never shows, a D8 on a symmetric
grid) is redrawn. So a model fine-tuned on `split='train'` never saw a rule that reproduces a
held-out task, and settings tuned on 'tune' did not see one either (tests/test_generate.py tries
every rule).

    tasks = generate_tasks(100, seed=0, split="heldout")
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations, permutations
from typing import Callable, Iterable

import numpy as np

from submission.augment import D8
from submission.data import Pair, Task

SPLITS = ("train", "tune", "heldout", "all")
SPLIT_VERSION = 2  # 1: hash of the drawn parameters (leaked); 2: canonical rules, colour-free keys, task checks
HELDOUT_PERCENT = 20
TUNE_PERCENT = 10
Rule = tuple[str, tuple]  # (family, canonical parameters)


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


# -- canonical rules and the split -------------------------------------------------------------------------

COLOR_ONLY = ("background", "border", "crop_color", "fill_enclosed", "outline", "recolor_by_size")

# Split keys assigned by hand: a family that only varies a colour goes whole; the colour-map
# structures are nested (a map restricted to the colours a task shows is a smaller map), so a held-out
# structure may not be part of any training structure: swaps and cycles are held out, the 3-chain is
# for tuning; d8_recolor holds out whole symmetries (the recolour is a colour constant).
_P1, _C2, _C3 = ((1,), (), False), ((), (2,), False), ((), (3,), False)
OVERRIDES: dict[Rule, str] = {
    ("outline", ()): "heldout", ("fill_enclosed", ()): "heldout", ("border", ()): "tune",
    ("background", ()): "train", ("crop_color", ()): "train", ("recolor_by_size", ()): "train",
    **{("d8_recolor", (t,)): "heldout" if t == 6 else "tune" if t == 7 else "train" for t in range(1, 8)},
    **{("gravity", (d,)): "heldout" if d == 1 else "train" for d in range(4)},
    ("colormap", _C2): "heldout", ("colormap", ((1,), (2,), False)): "heldout", ("colormap", _C3): "heldout",
    ("colormap", ((3,), (), False)): "tune",
    **{("colormap", s): "train" for s in (_P1, ((1,), (), True), ((1, 1), (), False), ((2,), (), False),
                                           ((1, 1, 1), (), False), ((1, 2), (), False))},
}


def canonical(family: str, params: tuple) -> Rule:
    """The one spelling of a rule: parameterisations that compute the same mapping get the same form."""
    if family == "colormap":
        return family, tuple(sorted((int(a), int(b)) for a, b in params if a != b))
    if family == "mirror_concat":
        axis, before, flip = params
        if not flip:  # g beside g: `before` changes nothing, and it is a plain 2-tile
            return "tile", ((2, 1, 0) if axis == 0 else (1, 2, 0))
        if axis == 1 and not before:  # g, then g mirrored left-right: tile's mirrored 1x2
            return "tile", (1, 2, 1)
        return family, (int(axis), bool(before), True)
    return family, tuple(params)


def _map_structure(pairs: tuple) -> tuple:
    """An injective colour map up to renaming colours 1-9: (path lengths, cycle lengths, maps to 0)."""
    m = dict(pairs)
    seen: set[int] = set()
    paths, cycles = [], []
    for start in [a for a in m if a not in m.values()]:
        n, x = 0, start
        while x in m:
            seen.add(x)
            x, n = m[x], n + 1
        paths.append(n)
    for start in m:
        n, x = 0, start
        while x not in seen:
            seen.add(x)
            x, n = m[x], n + 1
        if n:
            cycles.append(n)
    return tuple(sorted(paths)), tuple(sorted(cycles)), 0 in m.values()


def split_key(family: str, params: tuple) -> Rule:
    """The unit a split assigns: the canonical rule with its colour constants left out."""
    fam, p = canonical(family, params)
    if fam in COLOR_ONLY:
        return fam, ()
    if fam == "colormap":
        return fam, _map_structure(p)
    if fam == "d8_recolor":
        return fam, p[:1]
    if fam == "shift":  # wrapping or not only shows where content leaves the grid: one rule
        return fam, p[:2]
    return fam, p


def split_of(family: str, params: tuple) -> str:
    """'train', 'tune' or 'heldout' for a rule (stable: OVERRIDES, else a hash of its split key)."""
    key = split_key(family, params)
    if key in OVERRIDES:
        return OVERRIDES[key]
    bucket = int.from_bytes(hashlib.sha256(f"v2:{key[0]}:{key[1]!r}".encode()).digest()[:4], "little") % 100
    return "heldout" if bucket < HELDOUT_PERCENT else "tune" if bucket < HELDOUT_PERCENT + TUNE_PERCENT else "train"


def is_heldout(family: str, params: tuple) -> bool:
    """Whether a rule belongs to the held-out split."""
    return split_of(family, params) == "heldout"


@lru_cache(maxsize=None)
def rules_of(split: str) -> tuple[tuple[Rule, ...], np.ndarray]:
    """Every canonical rule of `split`: the non-colour-map rules, and the colour maps as lookup tables."""
    generic: dict[Rule, None] = {}
    luts = []
    for name, fam in FAMILIES.items():
        for p in fam.space():
            rule = canonical(name, p)
            if split_of(*rule) != split:
                continue
            if rule[0] == "colormap":
                luts.append(_colormap(rule[1], np.arange(10, dtype=np.int8)))
            else:
                generic[rule] = None
    return tuple(generic), np.array(luts, dtype=np.int8).reshape(-1, 10)


def explained_by(demos: Iterable[Pair], splits: Iterable[str]) -> Rule | None:
    """A rule of `splits` that maps every demo input to its output, or None if there is none."""
    demos = list(demos)
    for split in splits:
        generic, luts = rules_of(split)
        ok = np.ones(len(luts), dtype=bool)
        for p in demos:  # colour maps: all tables at once
            if p.input.shape != p.output.shape:
                ok[:] = False
                break
            ok &= (luts[:, p.input.ravel().astype(np.intp)] == p.output.ravel()).all(axis=1)
        if ok.any():
            lut = luts[int(np.argmax(ok))]
            return "colormap", tuple((a, int(lut[a])) for a in range(10) if lut[a] != a)
        for rule in generic:
            if all(_maps(rule, p) for p in demos):
                return rule
    return None


def _maps(rule: Rule, p: Pair) -> bool:
    out = FAMILIES[rule[0]].apply(rule[1], p.input)
    return out is not None and out.shape == p.output.shape and bool((out == p.output).all())


@lru_cache(maxsize=None)
def families_for(split: str) -> tuple[str, ...]:
    """Families that can draw a rule of `split`."""
    return tuple(n for n in sorted(FAMILIES)
                 if split == "all" or any(split_of(n, p) == split for p in FAMILIES[n].space()))


def _draw_params(rng: np.random.Generator, fam: Family, split: str) -> tuple:
    for _ in range(2000):
        p = fam.params(rng)
        if split == "all" or split_of(fam.name, p) == split:
            return p
    raise ValueError(f"family {fam.name!r} has no parameters in split {split!r}")


def _earlier_splits(split: str) -> tuple[str, ...]:
    """Splits whose rules may not explain a task of `split`: tune tasks need a rule training never
    had, held-out tasks one that neither training nor tuning had. (Not the other way round: a
    training colour map a->b is also 'explained' by a held-out swap a<->b whose b never shows.)"""
    return {"tune": ("train",), "heldout": ("train", "tune")}.get(split, ())


def generate_task(rng: np.random.Generator, task_id: str, family: str | None = None, split: str = "train",
                  demos: tuple[int, int] = (2, 4), max_side: int = 10, max_out_side: int = 12) -> Task:
    """One task: a family (random if None), its rule parameters, 2-4 demos and one test pair, all
    with distinct inputs, outputs at most max_out_side, not every output equal to its input, and
    demos that no rule of an earlier split explains (tune: train; heldout: train and tune)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    names = families_for(split)  # a family held out whole has no rule in the other splits
    for _ in range(1000):
        fam = FAMILIES[family or names[int(rng.integers(len(names)))]]
        params = _draw_params(rng, fam, split)
        pairs = _draw_pairs(rng, fam, params, int(rng.integers(demos[0], demos[1] + 1)) + 1, max_side, max_out_side)
        if pairs is None or all(p.input.shape == p.output.shape and (p.input == p.output).all() for p in pairs):
            continue
        if explained_by(pairs[:-1], _earlier_splits(split)) is None:
            return Task(task_id, tuple(pairs[:-1]), tuple(pairs[-1:]))
    raise ValueError(f"no {split!r} task of family {family!r} after 1000 tries (max_side {max_side})")


def _draw_pairs(rng, fam: Family, params: tuple, n: int, max_side: int, max_out_side: int) -> list[Pair] | None:
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
            return pairs
    return None


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
