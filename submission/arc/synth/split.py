"""Canonical rules and the split by function, not by parameter spelling (pure numpy).

Each drawn rule is first made canonical (two parameterisations that compute the same mapping are
one rule: colour maps are sorted, no-op pairs dropped, mirror_concat copies that are tiles become
tiles). Its *split key* is the canonical rule with the colour constants left out (a colour is read
off the demos, it is not a new rule), so a family that only varies a colour is assigned whole. Keys
go to 'train', 'tune' or 'heldout' by the OVERRIDES table, else by hash (HELDOUT_PERCENT /
TUNE_PERCENT). `explained_by` then finds a rule of earlier splits that also explains a task's demos
(a colour map whose source colour never shows, a D8 on a symmetric grid), so submission/arc/synth/generate.py
can redraw it: a model fine-tuned on `split='train'` never saw a rule that reproduces a held-out
task, and settings tuned on 'tune' did not see one either (tests/test_generate.py tries every rule).

    split_of("gravity", (1,))  # 'heldout'
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Iterable

import numpy as np

from submission.arc.data import Pair
from submission.arc.synth.rules import FAMILIES, Family

SPLITS = ("train", "tune", "heldout", "all")
SPLIT_VERSION = 2  # 1: hash of the drawn parameters (leaked); 2: canonical rules, colour-free keys, task checks
HELDOUT_PERCENT = 20
TUNE_PERCENT = 10
Rule = tuple[str, tuple]  # (family, canonical parameters)


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
                luts.append(FAMILIES["colormap"].apply(rule[1], np.arange(10, dtype=np.int8)))
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


def draw_params(rng: np.random.Generator, fam: Family, split: str) -> tuple:
    """Parameters of one `fam` rule that belongs to `split` (redrawn until one does)."""
    for _ in range(2000):
        p = fam.params(rng)
        if split == "all" or split_of(fam.name, p) == split:
            return p
    raise ValueError(f"family {fam.name!r} has no parameters in split {split!r}")


def earlier_splits(split: str) -> tuple[str, ...]:
    """Splits whose rules may not explain a task of `split`: tune tasks need a rule training never
    had, held-out tasks one that neither training nor tuning had. (Not the other way round: a
    training colour map a->b is also 'explained' by a held-out swap a<->b whose b never shows.)"""
    return {"tune": ("train",), "heldout": ("train", "tune")}.get(split, ())
