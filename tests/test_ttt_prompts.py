import numpy as np

from submission.arc.augment import IDENTITY
from submission.arc.data import parse_task
from submission.arc.prompts import build_prompts, demo_orders, inference_transforms
from submission.arc.text import TextFormat, parse_grid
from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset, leave_one_out

FMT = TextFormat()


def test_leave_one_out_makes_each_demo_the_query(task_json):
    task = parse_task("t", task_json)
    loo = leave_one_out(task)
    assert len(loo) == 3
    assert [q[-1] for q in loo] == list(task.train)
    assert all(len(q) == 3 and len({id(p) for p in q}) == 3 for q in loo)


def test_ttt_examples_spans_hold_outputs(task_json):
    task = parse_task("t", task_json)
    exs = build_ttt_dataset(task, TTTDataConfig(augmentations=8), FMT, seed=0)
    assert len({e.text for e in exs}) == len(exs) > 3  # deduplicated, augmented
    for e in exs:
        assert len(e.output_spans) == 3
        for a, b in e.output_spans:
            assert e.text[a:b].endswith("</s>") and parse_grid(e.text[a:b], "</s>") is not None
            assert e.text[:a].endswith("O\n")
        assert e.loss_spans("query") == e.output_spans[-1:]
        assert e.loss_spans("all_but_first") == e.output_spans[1:]
    # identity copies come first: the untransformed leave-one-out tasks are present
    assert exs[0].text.endswith(FMT.example(task.train[0].input, task.train[0].output))


def test_ttt_caps_and_single_demo(task_json):
    task = parse_task("t", task_json)
    capped = build_ttt_dataset(task, TTTDataConfig(augmentations=30, max_examples=5), FMT)
    assert len(capped) == 5
    assert sum(len(e.text) for e in build_ttt_dataset(task, TTTDataConfig(max_total_tokens=200), FMT)) <= 200
    one = parse_task("o", {"train": task_json["train"][:1], "test": task_json["test"]})
    exs = build_ttt_dataset(one, TTTDataConfig(augmentations=6, color_policy="all"), FMT)
    assert len(exs) > 1 and all(len(e.output_spans) == 1 for e in exs)
    assert TTTDataConfig().loss_mode in ("all", "all_but_first", "query")


def test_ttt_drops_context_to_fit_max_tokens(task_json):
    task = parse_task("t", task_json)
    exs = build_ttt_dataset(task, TTTDataConfig(augmentations=0, max_tokens=30), FMT)
    assert exs and all(len(e.text) <= 40 for e in exs)


def test_inference_prompts_carry_inverse(task_json):
    task = parse_task("t", task_json)
    ps = build_prompts(task, n_transforms=8, n_orders=2, fmt=FMT, seed=3)
    assert len(ps) == 2 * 8 * 2
    assert ps[0].transform == IDENTITY and ps[0].order == (0, 1, 2)
    assert ps[0].text == FMT.prompt([(p.input, p.output) for p in task.train], task.test[0].input)
    for p in ps:
        q = p.text.rsplit("I\n", 1)[1][:-2]  # the query grid text in the prompt
        assert np.array_equal(p.transform.invert(parse_grid(q)), task.test[p.test_index].input)


def test_transforms_and_orders_are_distinct():
    ts = inference_transforms(20, np.random.default_rng(0))
    assert len(set(ts)) == 20 and ts[0] == IDENTITY
    assert len(demo_orders(3, 10, np.random.default_rng(0))) == 6  # only 3! orders exist


def test_transform_colors_with_d8_varies_with_the_seed():
    """with_d8: identity, then every D8 symmetry in turn with a seeded colour map, so seeds ask different
    prompts; after_d8 (the default) keeps its first 8 seed-free."""
    a, b = (inference_transforms(12, np.random.default_rng(s), "keep0", "with_d8") for s in (0, 1))
    assert len(a) == 12 and a[0].is_identity and len(set(a)) == 12
    assert [t.d8 for t in a] == [i % 8 for i in range(12)]
    assert all(t.colors[0] == 0 and t.colors != tuple(range(10)) for t in a[1:])  # keep0, a real map
    assert a[1:] != b[1:]
    plain = inference_transforms(8, np.random.default_rng(0))
    assert plain == inference_transforms(8, np.random.default_rng(1))
    assert all(t.colors == tuple(range(10)) for t in plain)
    assert len(inference_transforms(12, np.random.default_rng(0), "none", "with_d8")) == 8  # no maps: D8 only


def test_poe_requests_score_the_top_candidates_under_each_augmentation(task_json):
    """The PoE request builder: for each test input, the top candidates by vote, each under the same
    n augmentations (identity first), one transform applied to demos, query and candidate alike."""
    import numpy as np

    from submission.arc.data import parse_task
    from submission.arc.phases import poe_texts
    from submission.arc.prompts import inference_transforms
    from submission.arc.text import TextFormat
    from submission.arc.vote import Prediction

    task, fmt = parse_task("t", task_json), TextFormat()
    a, b, c = (np.full((1, 3), v, np.int8) for v in (2, 3, 4))
    d = np.full((2, 2), 5, np.int8)
    tests = [[Prediction(a, "identity", True)] * 3 + [Prediction(b, "rot90", False)] * 2
             + [Prediction(c, "flip_lr", False)], [Prediction(d, "identity", True)]]
    reqs = poe_texts(task, tests, n_candidates=2, n_augmentations=3, fmt=fmt, seed=5, max_tokens=4096)
    assert [(ti, g) for ti, g, _, _ in reqs] == ([(0, a.tolist())] * 3 + [(0, b.tolist())] * 3 + [(1, d.tolist())] * 3)
    transforms = inference_transforms(3, np.random.default_rng(5))
    assert transforms[0].is_identity and len({t.name for t in transforms}) == 3
    for k, (ti, g, prompt, target) in enumerate(reqs):
        t = transforms[k % 3]
        demos = [(t(p.input), t(p.output)) for p in task.train]
        assert prompt == fmt.prompt(demos, t(task.test[ti].input))
        assert target == fmt.target(t(np.asarray(g, np.int8)))
        assert np.array_equal(t.invert(fmt.parse(target)), np.asarray(g))  # the candidate, not another grid
