"""The task generator: valid, seeded, rules as specified, held-out split disjoint from training."""

import numpy as np
import pytest

from submission.generate import (FAMILIES, _draw_params, families_for, generate_task, generate_tasks, is_heldout,
                                 tasks_to_json)
from submission.grid import grid_problem


def test_every_family_gives_valid_solvable_looking_tasks():
    for name in FAMILIES:
        for i in range(20):
            t = generate_task(np.random.default_rng([7, i]), f"t{i}", name, split="all", max_side=10, max_out_side=12)
            pairs = t.train + t.test
            assert 3 <= len(pairs) <= 5 and len(t.test) == 1
            for p in pairs:
                for g in (p.input, p.output):
                    assert grid_problem(g.tolist()) is None and max(g.shape) <= 12
            assert len({p.input.tobytes() + bytes(p.input.shape) for p in pairs}) == len(pairs), name
            assert not all(p.input.shape == p.output.shape and (p.input == p.output).all() for p in pairs), name


def test_seeded_and_independent_of_count():
    a, b = generate_tasks(30, seed=3), generate_tasks(10, seed=3)
    assert [t.id for t in a[:10]] == [t.id for t in b]
    assert all((x.test[0].output == y.test[0].output).all() for x, y in zip(a, b))
    c = generate_tasks(10, seed=4)
    assert [t.id for t in c] != [t.id for t in b]
    ch, sol = tasks_to_json(a)
    assert set(ch) == set(sol) and all("output" not in x for t in ch.values() for x in t["test"])


def test_heldout_rules_never_appear_in_training_draws():
    held = families_for("heldout")
    assert len(held) >= 8 and set(held) < set(FAMILIES)
    rng = np.random.default_rng(0)
    for name in held:
        fam = FAMILIES[name]
        assert all(is_heldout(name, _draw_params(rng, fam, "heldout")) for _ in range(30))
        assert not any(is_heldout(name, _draw_params(rng, fam, "train")) for _ in range(30))
    with pytest.raises(ValueError, match="split"):
        generate_task(rng, "x", split="test")
    with pytest.raises(ValueError, match="unknown families"):
        generate_tasks(1, families=("nope",))


def test_rules_on_known_grids():
    g = np.array([[1, 0, 0], [0, 0, 2], [0, 0, 0]], dtype=np.int8)
    assert FAMILIES["gravity"].apply((0,), g).tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 2]]  # down
    assert FAMILIES["gravity"].apply((2,), g).tolist() == [[1, 0, 2], [0, 0, 0], [0, 0, 0]]  # up
    assert FAMILIES["shift"].apply((1, 1, False), g).tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert FAMILIES["shift"].apply((1, 1, True), g).tolist() == [[0, 0, 0], [0, 1, 0], [2, 0, 0]]
    assert FAMILIES["rays"].apply((3,), g).tolist() == [[1, 1, 1], [0, 0, 2], [0, 0, 0]]  # right
    assert FAMILIES["scale"].apply((2, 1), g[:1]).tolist() == [[1, 0, 0], [1, 0, 0]]
    assert FAMILIES["tile"].apply((1, 2, 1), g[:1]).tolist() == [[1, 0, 0, 0, 0, 1]]  # mirrored copy
    box = np.array([[3, 3, 3, 0], [3, 0, 3, 0], [3, 3, 3, 0]], dtype=np.int8)
    assert FAMILIES["fill_enclosed"].apply((5,), box)[1].tolist() == [3, 5, 3, 0]
    assert FAMILIES["crop_color"].apply((2,), g).tolist() == [[2]]
    assert FAMILIES["recolor_by_size"].apply((4, 6), np.array([[1, 1, 0, 1]], dtype=np.int8)).tolist() == [[4, 4, 0, 6]]
    assert FAMILIES["outline"].apply((9,), np.full((3, 3), 2, dtype=np.int8))[1].tolist() == [9, 2, 9]
