"""Invertible augmentations: the 8 symmetries of the square (D8), colour permutations, and their
compositions, applied consistently to every grid of a task; plus example-order permutations.

A Transform is (d8 index, colour map). Colour maps act on values and D8 on positions, so the two
commute and composition is component-wise: exact inverses come for free.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from submission.arc.data import Pair, Task
from submission.arc.grid import NUM_COLORS, Grid


def identity(g: Grid) -> Grid:
    """No change."""
    return g


def rot90(g: Grid) -> Grid:
    """Quarter turn clockwise."""
    return np.rot90(g, -1)


def rot180(g: Grid) -> Grid:
    """Half turn."""
    return np.rot90(g, 2)


def rot270(g: Grid) -> Grid:
    """Quarter turn anticlockwise."""
    return np.rot90(g, 1)


def flip_lr(g: Grid) -> Grid:
    """Mirror left-right."""
    return g[:, ::-1]


def flip_ud(g: Grid) -> Grid:
    """Mirror top-bottom."""
    return g[::-1, :]


def transpose(g: Grid) -> Grid:
    """Mirror in the main diagonal."""
    return g.T


def antitranspose(g: Grid) -> Grid:
    """Mirror in the anti-diagonal."""
    return np.rot90(g, 2).T


D8 = (identity, rot90, rot180, rot270, flip_lr, flip_ud, transpose, antitranspose)
D8_NAMES = tuple(f.__name__ for f in D8)


def _d8_tables() -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """Inverse and composition tables of D8, derived by applying each map to a marked grid."""
    probe = np.arange(6).reshape(2, 3)
    keys = [(f(probe).shape, f(probe).tobytes()) for f in D8]

    def index_of(g: Grid) -> int:
        return keys.index((g.shape, np.ascontiguousarray(g).tobytes()))

    inverse = tuple(next(j for j in range(8) if index_of(D8[j](D8[i](probe))) == 0) for i in range(8))
    compose = tuple(tuple(index_of(D8[b](D8[a](probe))) for b in range(8)) for a in range(8))
    return inverse, compose


D8_INVERSE, D8_THEN = _d8_tables()  # D8_THEN[a][b]: apply a, then b


@dataclass(frozen=True)
class Transform:
    """A D8 symmetry followed by a colour map (`colors[c]` is the new colour of c)."""

    d8: int = 0
    colors: tuple[int, ...] = tuple(range(NUM_COLORS))

    def __post_init__(self):
        if not 0 <= self.d8 < 8 or sorted(self.colors) != list(range(NUM_COLORS)):
            raise ValueError(f"bad transform d8={self.d8} colors={self.colors}")

    @property
    def is_identity(self) -> bool:
        return self.d8 == 0 and self.colors == tuple(range(NUM_COLORS))

    @property
    def name(self) -> str:
        """Short readable id, e.g. 'rot90' or 'flip_lr+c0213456789'."""
        if self.colors == tuple(range(NUM_COLORS)):
            return D8_NAMES[self.d8]
        return f"{D8_NAMES[self.d8]}+c{''.join(map(str, self.colors))}"

    def __call__(self, g: Grid) -> Grid:
        """Apply to one grid."""
        return np.ascontiguousarray(np.asarray(self.colors, dtype=np.int8)[D8[self.d8](g)])

    def inverse(self) -> Transform:
        """The transform that undoes this one."""
        inv = [0] * NUM_COLORS
        for c, new in enumerate(self.colors):
            inv[new] = c
        return Transform(D8_INVERSE[self.d8], tuple(inv))

    def then(self, other: Transform) -> Transform:
        """Apply self, then other, as one transform."""
        return Transform(D8_THEN[self.d8][other.d8], tuple(other.colors[c] for c in self.colors))

    def invert(self, g: Grid) -> Grid:
        """Map a grid from the transformed frame back to the original."""
        return self.inverse()(g)


IDENTITY = Transform()


def color_permutation(rng: np.random.Generator, policy: str) -> tuple[int, ...]:
    """A random colour map. policy: 'none', 'keep0' (background 0 stays), 'all' (permute all 10)."""
    if policy == "none":
        return tuple(range(NUM_COLORS))
    if policy == "keep0":
        return (0, *(int(c) + 1 for c in rng.permutation(NUM_COLORS - 1)))
    if policy == "all":
        return tuple(int(c) for c in rng.permutation(NUM_COLORS))
    raise ValueError(f"colour policy must be none|keep0|all, got {policy!r}")


def random_transform(rng: np.random.Generator, color_policy: str = "keep0") -> Transform:
    """A uniformly random D8 symmetry with a random colour map under `color_policy`."""
    return Transform(int(rng.integers(8)), color_permutation(rng, color_policy))


def transform_pair(t: Transform, pair: Pair) -> Pair:
    """Apply t to both grids of a pair."""
    return Pair(t(pair.input), None if pair.output is None else t(pair.output))


def transform_task(t: Transform, task: Task) -> Task:
    """Apply t to every grid of a task (the same map everywhere, so the rule stays consistent)."""
    return replace(task, train=tuple(transform_pair(t, p) for p in task.train),
                   test=tuple(transform_pair(t, p) for p in task.test))


def permute(items: tuple | list, order: tuple[int, ...]) -> tuple:
    """Reorder examples: item order[i] goes to position i."""
    if sorted(order) != list(range(len(items))):
        raise ValueError(f"{order} is not a permutation of {len(items)} items")
    return tuple(items[i] for i in order)


def invert_order(order: tuple[int, ...]) -> tuple[int, ...]:
    """The permutation that undoes `order`."""
    inv = [0] * len(order)
    for pos, i in enumerate(order):
        inv[i] = pos
    return tuple(inv)
