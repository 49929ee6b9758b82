"""MARC's TTT-only augmenters (Akyürek et al. 2024; ekinakyurek/marc arclib/augmenters.py, the set
ttt/preprocess.py get_augmenters uses): geometric maps that change a grid's size or layout — size
scaling, reflect-concatenate, translate, repeat.

Applied to every grid of an example (inputs and outputs alike), each makes a new task that is still
consistent: the new output is a fixed function of the new input. They have no inverse and need none,
because they only make training data, never prompts whose answers must be mapped back. MARC's
rotations, flips and transposes are D8 (submission.arc.augment), and its "chain" augmenters (a D8 map then
upscale) come from composing these with a random invertible transform, as ttt_data does.
Pure: numpy + standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from submission.arc.data import Pair
from submission.arc.grid import MAX_SIDE, Grid


def upscale(g: Grid, k: int = 2) -> Grid:
    """Each cell becomes a k x k block (MARC's IncreaseResolution)."""
    return np.repeat(np.repeat(g, k, axis=0), k, axis=1)


def stretch_rows(g: Grid, k: int = 2) -> Grid:
    """Each row repeated k times (MARC's IncreaseHeight)."""
    return np.repeat(g, k, axis=0)


def stretch_cols(g: Grid, k: int = 2) -> Grid:
    """Each column repeated k times (MARC's IncreaseWidth)."""
    return np.repeat(g, k, axis=1)


def reflect_concat(g: Grid, axis: int, mirror_first: bool = False) -> Grid:
    """The grid and its mirror image side by side: below it (axis 0) or right of it (axis 1); the mirror
    comes first with `mirror_first` (MARC's Reflect(axis, reverse))."""
    mirror = np.flip(g, axis=axis)
    return np.concatenate((mirror, g) if mirror_first else (g, mirror), axis=axis)


def tile(g: Grid, axis: int | None, n: int = 2) -> Grid:
    """n copies of the grid along rows (axis 0), columns (axis 1) or both (None): MARC's Repeat."""
    reps = {0: (n, 1), 1: (1, n), None: (n, n)}[axis]
    return np.tile(g, reps)


def translate(g: Grid, dy: int, dx: int) -> Grid:
    """Shift down by dy and right by dx, wrapping around (MARC's RandomTranslateXY is np.roll)."""
    return np.roll(g, (dy, dx), axis=(0, 1))


@dataclass(frozen=True)
class Geometric:
    """One TTT-only augmenter with its parameters fixed, applied the same way to every grid."""

    name: str
    fn: Callable[[Grid], Grid]

    def __call__(self, g: Grid) -> Grid:
        return np.ascontiguousarray(self.fn(g))


FIXED = (  # MARC's TTT set minus its D8 maps and chains, which ttt_data's random transform supplies
    Geometric("upscale2", partial(upscale, k=2)),
    Geometric("stretch_rows2", partial(stretch_rows, k=2)),
    Geometric("stretch_cols2", partial(stretch_cols, k=2)),
    Geometric("reflect_down", partial(reflect_concat, axis=0)),
    Geometric("reflect_up", partial(reflect_concat, axis=0, mirror_first=True)),
    Geometric("reflect_right", partial(reflect_concat, axis=1)),
    Geometric("reflect_left", partial(reflect_concat, axis=1, mirror_first=True)),
    Geometric("tile_rows2", partial(tile, axis=0)),
    Geometric("tile_cols2", partial(tile, axis=1)),
    Geometric("tile_both2", partial(tile, axis=None)),
)
MAX_SHIFT = 3  # MARC draws each shift from 0..min(3, side - 1)


def random_translation(rng: np.random.Generator) -> Geometric:
    """A wrap-around shift by (dy, dx) in 0..MAX_SHIFT, not both zero. MARC draws the input's and the
    output's shifts apart (the same for every example); one shift for all grids is as consistent."""
    flat = int(rng.integers(1, (MAX_SHIFT + 1) ** 2))
    dy, dx = divmod(flat, MAX_SHIFT + 1)
    return Geometric(f"translate{dy}_{dx}", partial(translate, dy=dy, dx=dx))


def random_geometric(rng: np.random.Generator) -> Geometric:
    """One of MARC's TTT-only augmenters, uniformly (translate counts as one, with a random shift)."""
    i = int(rng.integers(len(FIXED) + 1))
    return random_translation(rng) if i == len(FIXED) else FIXED[i]


def augment_pairs(aug: Geometric, pairs: tuple[Pair, ...]) -> tuple[Pair, ...] | None:
    """Apply `aug` to every grid of an example; None if any grid would exceed ARC's MAX_SIDE."""
    out = tuple(Pair(aug(p.input), None if p.output is None else aug(p.output)) for p in pairs)
    grids = [g for p in out for g in (p.input, p.output) if g is not None]
    return out if all(max(g.shape) <= MAX_SIDE for g in grids) else None
