"""The task generator: valid, seeded, rules as specified, and a split by function: no rule of the
training split (nor of the tuning split) reproduces a held-out task, checked by applying every one."""

import hashlib
from itertools import combinations

import numpy as np
import pytest

from submission.arc.data import Pair, Task
from submission.arc.grid import grid_problem
from submission.arc.synth.generate import (
    COLOR_ONLY,
    FAMILIES,
    canonical,
    draw_params,
    explained_by,
    families_for,
    generate_task,
    generate_tasks,
    is_heldout,
    split_of,
    tasks_to_json,
)

RANK = {"train": 0, "tune": 1, "heldout": 2}


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


def test_draws_stay_in_their_split_and_the_space_lists_every_draw():
    assert len(families_for("heldout")) >= 8 and len(families_for("tune")) >= 4
    assert set(families_for("train")) < set(FAMILIES)  # whole families are held out
    rng = np.random.default_rng(0)
    for name, fam in FAMILIES.items():
        space = {canonical(name, p) for p in fam.space()}
        for split in ("train", "tune", "heldout"):
            if name not in families_for(split):
                continue
            draws = [draw_params(rng, fam, split) for _ in range(300)]
            assert all(split_of(name, p) == split for p in draws), (name, split)
            assert all(canonical(name, p) in space for p in draws), (name, split)
    with pytest.raises(ValueError, match="split"):
        generate_task(rng, "x", split="test")
    with pytest.raises(ValueError, match="unknown families"):
        generate_tasks(1, families=("nope",))


def test_a_random_family_is_drawn_from_the_split():
    """finetune calls generate_task(rng, id, split='train') with no family: never a held-out family."""
    for split in ("train", "tune", "heldout"):
        for i in range(60):
            t = generate_task(np.random.default_rng([8, i]), f"t{i}", split=split, max_side=6)
            assert split == "train" or explained_by(t.train, ("train",)) is None
    with pytest.raises(ValueError, match="no parameters in split"):
        generate_task(np.random.default_rng(0), "x", "outline", split="train")


def _probe_grids() -> list[np.ndarray]:
    """Inputs that tell rules apart: each family's own inputs plus dense many-coloured grids."""
    rng = np.random.default_rng(123)
    out = []
    for name, fam in FAMILIES.items():
        space = list(fam.space())
        out += [fam.make(rng, space[int(rng.integers(len(space)))], 6).astype(np.int8) for _ in range(6)]
    out += [rng.integers(0, 10, (int(rng.integers(3, 7)), int(rng.integers(3, 7)))).astype(np.int8) for _ in range(12)]
    return out


def test_canonical_form_is_the_function():
    """Two rules have the same canonical form exactly when they compute the same outputs on every
    probe grid: nothing that maps alike is split apart (the old leak), nothing different is merged."""
    probes = _probe_grids()
    by_print: dict[tuple, set] = {}
    for name, fam in FAMILIES.items():
        if name == "colormap":
            continue  # a table per map, checked below
        for p in fam.space():
            outs = tuple(None if o is None else (o.shape, o.tobytes()) for o in (fam.apply(p, g) for g in probes))
            by_print.setdefault(outs, set()).add(canonical(name, p))
    assert all(len(forms) == 1 for forms in by_print.values()), [f for f in by_print.values() if len(f) > 1][:3]
    assert len(by_print) == len(set().union(*by_print.values()))
    assert canonical("mirror_concat", (1, False, True)) == ("tile", (1, 2, 1))  # found by this test
    rng = np.random.default_rng(1)
    lut = {}
    for _ in range(3000):
        p = FAMILIES["colormap"].params(rng)
        table = FAMILIES["colormap"].apply(p, np.arange(10, dtype=np.int8)).tobytes()
        assert lut.setdefault(canonical("colormap", p), table) == table
    assert len(set(lut.values())) == len(lut)


def _lut(pairs) -> np.ndarray:
    t = np.arange(10, dtype=np.int8)
    for a, b in pairs:
        t[a] = b
    return t


def _rules(splits: tuple[str, ...]) -> tuple[list, np.ndarray]:
    """Every rule of `splits`, from each family's enumerated space plus 3,000 draws of the kind
    finetune makes (independently of the generator's own check)."""
    rng = np.random.default_rng(99)
    rules = set()
    for name, fam in FAMILIES.items():
        for split in splits:
            if name in families_for(split):
                rules |= {canonical(name, draw_params(rng, fam, split)) for _ in range(3000)}
        rules |= {canonical(name, p) for p in fam.space() if split_of(name, p) in splits}
    maps = [r for r in rules if r[0] == "colormap"]
    return [r for r in rules if r[0] != "colormap"], np.stack([_lut(p) for _, p in maps])


@pytest.mark.parametrize("split,earlier,n", [("heldout", ("train", "tune"), 240), ("tune", ("train",), 120)])
def test_no_earlier_split_rule_reproduces_a_task(split, earlier, n):
    """Apply every training (and tuning) rule to the demos of n drawn tasks: none fits them all, so
    none reproduces a task (demos and test answer) either."""
    generic, luts = _rules(earlier)
    assert len(generic) > 300 and len(luts) > 20000  # the training split alone has 547 rules and 27,297 maps
    tasks = generate_tasks(n // 2, seed=21, split=split, max_side=6) + generate_tasks(n // 2, seed=22, split=split)
    assert len({t.id.rsplit("-", 1)[1] for t in tasks}) == len(families_for(split))
    for task in tasks:
        ok = np.ones(len(luts), dtype=bool)
        for p in task.train:
            same = p.input.shape == p.output.shape
            ok &= same and (luts[:, p.input.ravel().astype(np.intp)] == p.output.ravel()).all(axis=1)
        assert not ok.any(), (task.id, luts[ok][0])
        for fam, params in generic:
            outs = [FAMILIES[fam].apply(params, p.input) for p in task.train]
            assert not all(o is not None and o.shape == p.output.shape and (o == p.output).all()
                           for o, p in zip(outs, task.train)), (task.id, fam, params)


def _legacy_is_heldout(family: str, params: tuple) -> bool:
    """The split before SPLIT_VERSION 2: a hash of the parameters as drawn."""
    return int.from_bytes(hashlib.sha256(f"{family}:{params!r}".encode()).digest()[:4], "little") % 100 < 20


def test_the_old_colour_map_leak_is_gone():
    rng = np.random.default_rng(5)
    maps = [FAMILIES["colormap"].params(rng) for _ in range(2000)]
    leaked = [p for p in maps if _legacy_is_heldout("colormap", p) != _legacy_is_heldout("colormap", p[::-1])]
    assert leaked  # the old split put the same mapping in both splits, by drawn order
    assert all(split_of("colormap", p) == split_of("colormap", p[::-1]) for p in leaked)
    # a held-out swap 3<->5 whose 5 never shows in the demos is the training map 3->5: redrawn
    g = np.array([[3, 0], [0, 3]], dtype=np.int8)
    demos = [Pair(g, np.where(g == 3, 5, g).astype(np.int8)), Pair(g[:1], np.array([[5, 0]], dtype=np.int8))]
    assert is_heldout("colormap", ((3, 5), (5, 3))) and explained_by(demos, ("train",)) == ("colormap", ((3, 5),))
    # a d8_recolor whose source colour never shows is the plain symmetry: now in the same split
    for t in range(1, 8):
        assert len({split_of("d8_recolor", (t, a, b)) for a, b in [(0, 0), (3, 4), (9, 1)]}) == 1


def test_colour_map_splits_are_closed_under_restriction():
    """A task shows only some colours, so a map restricted to them is what it demonstrates: a sub-map
    of any map is in the same or an earlier split (else its tasks could never be drawn cleanly)."""
    for p in FAMILIES["colormap"].space():
        rank = RANK[split_of("colormap", p)]
        for k in range(1, len(p)):
            assert all(RANK[split_of("colormap", sub)] <= rank for sub in combinations(p, k)), p


def test_colour_only_families_go_whole():
    for name in COLOR_ONLY:
        assert len({split_of(name, p) for p in FAMILIES[name].space()}) == 1, name
    assert split_of("shift", (1, 1, True)) == split_of("shift", (1, 1, False))
    task = Task("x", (Pair(np.zeros((2, 2), np.int8), np.ones((2, 2), np.int8)),), ())
    assert explained_by(task.train, ("train",)) == ("background", (1,))


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
