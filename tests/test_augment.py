import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from submission.arc.augment import (
    D8,
    D8_INVERSE,
    IDENTITY,
    Transform,
    color_permutation,
    invert_order,
    permute,
    transform_task,
)
from submission.arc.data import parse_task

grids = st.tuples(st.integers(1, 30), st.integers(1, 30)).flatmap(
    lambda s: arrays(np.int8, s, elements=st.integers(0, 9)))
transforms = st.builds(Transform, st.integers(0, 7), st.permutations(list(range(10))).map(tuple))


@given(grids, transforms)
def test_inverse_undoes_transform(g, t):
    assert np.array_equal(t.invert(t(g)), g)
    assert np.array_equal(t(t.invert(g)), g)


@given(grids, transforms, transforms)
def test_composition_is_sequential_application(g, a, b):
    assert np.array_equal(a.then(b)(g), b(a(g)))
    assert np.array_equal(a.then(b).inverse()(b(a(g))), g)


@given(grids, transforms)
def test_inverse_of_inverse(g, t):
    assert t.inverse().inverse() == t
    assert t.then(t.inverse()).is_identity


def test_d8_are_eight_distinct_symmetries():
    g = np.arange(12, dtype=np.int8).reshape(3, 4) % 10
    outs = {(D8[i](g).shape, np.ascontiguousarray(D8[i](g)).tobytes()) for i in range(8)}
    assert len(outs) == 8
    assert np.array_equal(Transform(1)(np.array([[1, 2], [3, 4]], np.int8)), [[3, 1], [4, 2]])  # clockwise
    assert sorted(D8_INVERSE) == list(range(8))


def test_color_policies_are_seeded_and_respect_background():
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert color_permutation(rng, "keep0")[0] == 0
    a = color_permutation(np.random.default_rng(7), "all")
    assert a == color_permutation(np.random.default_rng(7), "all")
    assert sorted(a) == list(range(10))
    assert color_permutation(rng, "none") == tuple(range(10))


@given(st.permutations(list(range(6))))
def test_example_order_permutation_inverts(order):
    items = tuple("abcdef")
    assert permute(permute(items, tuple(order)), invert_order(tuple(order))) == items


def test_transform_task_applies_the_same_map_everywhere(task_json):
    task = parse_task("t", task_json)
    t = Transform(1, color_permutation(np.random.default_rng(1), "all"))
    tt = transform_task(t, task)
    for a, b in zip(task.train, tt.train):
        assert np.array_equal(t(a.input), b.input) and np.array_equal(t(a.output), b.output)
    assert np.array_equal(t.invert(tt.test[1].input), task.test[1].input)
    assert transform_task(IDENTITY, task).train[0].output.tolist() == task_json["train"][0]["output"]
