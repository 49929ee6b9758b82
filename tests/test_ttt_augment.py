"""The TTT-data ablations: MARC's TTT-only augmenters (exact arrays, consistency, the 30x30 limit)
and the two TTTDataConfig settings, --ttt-data e2e and --extra-augment-share."""

import hashlib
import re
from dataclasses import replace

import numpy as np
import pytest

from submission.arc.data import Pair, Task, parse_task
from submission.arc.text import TextFormat
from submission.arc.ttt.augment import (
    FIXED,
    augment_pairs,
    random_geometric,
    reflect_concat,
    stretch_cols,
    stretch_rows,
    tile,
    translate,
    upscale,
)
from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset, render_example

from conftest import ROOT_TASK

FMT = TextFormat()
G = np.array([[1, 2], [3, 4]], dtype=np.int8)


def test_each_augmenter_gives_the_expected_array():
    assert upscale(G).tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    assert stretch_rows(G).tolist() == [[1, 2], [1, 2], [3, 4], [3, 4]]
    assert stretch_cols(G).tolist() == [[1, 1, 2, 2], [3, 3, 4, 4]]
    assert reflect_concat(G, axis=1).tolist() == [[1, 2, 2, 1], [3, 4, 4, 3]]
    assert reflect_concat(G, axis=1, mirror_first=True).tolist() == [[2, 1, 1, 2], [4, 3, 3, 4]]
    assert reflect_concat(G, axis=0).tolist() == [[1, 2], [3, 4], [3, 4], [1, 2]]
    assert reflect_concat(G, axis=0, mirror_first=True).tolist() == [[3, 4], [1, 2], [1, 2], [3, 4]]
    assert tile(G, axis=0).tolist() == [[1, 2], [3, 4], [1, 2], [3, 4]]
    assert tile(G, axis=1).tolist() == [[1, 2, 1, 2], [3, 4, 3, 4]]
    assert tile(G, axis=None).tolist() == [[1, 2, 1, 2], [3, 4, 3, 4], [1, 2, 1, 2], [3, 4, 3, 4]]
    g = np.arange(6).reshape(2, 3)
    assert translate(g, 0, 1).tolist() == [[2, 0, 1], [5, 3, 4]]
    assert translate(g, 1, 2).tolist() == [[4, 5, 3], [1, 2, 0]]
    assert all(a(G).dtype == G.dtype for a in FIXED)


def random_task(rng, rule, n=4) -> list[Pair]:
    grids = [rng.integers(0, 4, size=(int(rng.integers(1, 6)), int(rng.integers(1, 6)))).astype(np.int8)
             for _ in range(n)]
    return [Pair(g, rule(g)) for g in grids]


def recolour(g):
    return np.where(g == 1, 2, g).astype(g.dtype)


def test_augmented_tasks_keep_their_rule():
    rng = np.random.default_rng(0)
    flip_task = tuple(random_task(rng, np.fliplr))
    for name in ("upscale2", "stretch_rows2", "stretch_cols2", "tile_both2"):  # these commute with fliplr
        aug = next(a for a in FIXED if a.name == name)
        out = augment_pairs(aug, flip_task)
        assert all(np.array_equal(p.output, np.fliplr(p.input)) for p in out), name
        assert any(not np.array_equal(p.input, q.input) for p, q in zip(out, flip_task)), name
    colour_task = tuple(random_task(rng, recolour))  # a cell-wise rule survives every geometric map
    augs = {a.name: a for a in (random_geometric(np.random.default_rng(s)) for s in range(200))}
    assert len(augs) > len(FIXED)  # translations too
    for aug in augs.values():
        assert all(np.array_equal(p.output, recolour(p.input)) for p in augment_pairs(aug, colour_task)), aug.name


def test_random_geometric_is_seeded_and_covers_the_set():
    names = [random_geometric(np.random.default_rng(s)).name for s in range(300)]
    assert names == [random_geometric(np.random.default_rng(s)).name for s in range(300)]
    assert {a.name for a in FIXED} <= set(names)
    shifts = [n for n in names if n.startswith("translate")]
    assert shifts and "translate0_0" not in shifts


def test_augmenter_over_30_is_skipped():
    up = next(a for a in FIXED if a.name == "upscale2")
    assert augment_pairs(up, (Pair(np.zeros((15, 15), np.int8), np.zeros((15, 15), np.int8)),))[0].input.shape \
        == (30, 30)
    assert augment_pairs(up, (Pair(np.zeros((2, 2), np.int8), np.zeros((16, 3), np.int8)),)) is None


def text_hash(exs) -> str:
    return hashlib.sha256("\x00".join(e.text + repr(e.output_spans) for e in exs).encode()).hexdigest()[:16]


def test_loo_is_unchanged():
    """Hashes of the default (leave-one-out) sets, fixed when the identity copies moved first: the new
    settings at their defaults must not change them."""
    task = parse_task("t", ROOT_TASK)
    for cfg, n, digest in ((TTTDataConfig(augmentations=8), 27, "7e23806e16f3a199"),
                           (TTTDataConfig(augmentations=30, max_examples=5), 5, "e90def9eb5108a3c"),
                           (TTTDataConfig(augmentations=30, max_examples=20, max_total_tokens=2000), 20,
                            "bf871d50552a5f97")):
        exs = build_ttt_dataset(task, cfg, FMT, seed=3)
        assert (len(exs), text_hash(exs)) == (n, digest)
        assert exs == build_ttt_dataset(task, replace(cfg, ttt_data="loo", extra_augment_share=0.0), FMT, seed=3)


def test_e2e_is_one_pair_per_example_covering_every_demo():
    task = parse_task("t", ROOT_TASK)
    exs = build_ttt_dataset(task, TTTDataConfig(ttt_data="e2e", augmentations=8), FMT, seed=1)
    assert len({e.text for e in exs}) == len(exs) > len(task.train)
    assert all(len(e.output_spans) == 1 and e.text.count("I\n") == 1 for e in exs)
    assert {render_example((p,), FMT).text for p in task.train} <= {e.text for e in exs}
    loo = build_ttt_dataset(task, TTTDataConfig(augmentations=8), FMT, seed=1)
    assert all(len(e.output_spans) == 3 for e in loo)


def test_extra_share_makes_that_share_of_the_set():
    task = parse_task("t", ROOT_TASK)
    cfg = TTTDataConfig(augmentations=30, max_examples=20)
    plain_all = {e.text for e in build_ttt_dataset(task, replace(cfg, max_examples=10**6), FMT, seed=5)}
    for mode in ("loo", "e2e"):
        half = build_ttt_dataset(task, replace(cfg, ttt_data=mode, extra_augment_share=0.5), FMT, seed=5)
        first = build_ttt_dataset(task, replace(cfg, ttt_data=mode, max_examples=10), FMT, seed=5)
        assert len(half) == 20 and len({e.text for e in half}) == 20
        assert half[:10] == first  # the plain part: the same draw as a set of 10
        extra = half[10:]
        assert not {e.text for e in extra} & plain_all  # all new: made by the TTT-only augmenters
        assert all(len(e.output_spans) == (3 if mode == "loo" else 1) for e in extra)
        assert half == build_ttt_dataset(task, replace(cfg, ttt_data=mode, extra_augment_share=0.5), FMT, seed=5)
    assert build_ttt_dataset(task, replace(cfg, extra_augment_share=0.5), FMT, seed=6) != half


def grid_blocks(text: str) -> list[list[str]]:
    """The grids of a TextFormat text: runs of digit-only lines."""
    return [b.split("\n")[:-1] for b in re.findall(r"(?:^\d+\n)+", text, re.M)]


def test_no_grid_over_30_is_made():
    rng = np.random.default_rng(0)
    demos = (Pair(rng.integers(0, 4, (10, 10)).astype(np.int8), np.zeros((10, 10), np.int8)),
             Pair(rng.integers(0, 4, (16, 16)).astype(np.int8), np.ones((16, 16), np.int8)))
    cfg = TTTDataConfig(augmentations=2, max_examples=40, extra_augment_share=1.0)
    e2e = build_ttt_dataset(Task("big", demos, ()), replace(cfg, ttt_data="e2e"), FMT)
    sides = [max(len(b), len(b[0])) for e in e2e for b in grid_blocks(e.text)]
    assert len(e2e) > 10 and max(sides) <= 30 and 20 in sides  # the 10x10 demo grew, nothing past 30
    loo = build_ttt_dataset(Task("big", demos, ()), cfg, FMT)  # every example holds a 16x16 grid
    assert len(loo) > 10 and max(max(len(b), len(b[0])) for e in loo for b in grid_blocks(e.text)) == 16


def test_config_validation():
    assert TTTDataConfig(extra_augment_share=0.5, ttt_data="e2e").problems() == []
    assert any("--extra-augment-share" in p for p in TTTDataConfig(extra_augment_share=1.5).problems())
    assert any("--extra-augment-share" in p for p in TTTDataConfig(extra_augment_share=-0.1).problems())
    assert any("--ttt-data" in p for p in TTTDataConfig(ttt_data="both").problems())


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_caps_hold_with_extra_share(share):
    task = parse_task("t", ROOT_TASK)
    exs = build_ttt_dataset(task, TTTDataConfig(augmentations=30, max_examples=8, extra_augment_share=share), FMT)
    assert len(exs) == 8


def test_a_tight_cap_keeps_every_query_once():
    """The untransformed leave-one-out examples come first, so a cap of len(train) keeps exactly them
    (before this fix the first query's augmentations crowded out the other queries)."""
    from submission.arc.ttt.data import leave_one_out, render_example

    task = parse_task("t", ROOT_TASK)
    for ttt_data in ("loo", "e2e"):
        cfg = TTTDataConfig(augmentations=30, max_examples=len(task.train), ttt_data=ttt_data)
        bases = leave_one_out(task) if ttt_data == "loo" else [(p,) for p in task.train]
        assert [e.text for e in build_ttt_dataset(task, cfg, FMT, seed=2)] == [render_example(b, FMT).text
                                                                                for b in bases]
