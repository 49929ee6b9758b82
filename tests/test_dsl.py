"""The CPU DSL search: hand-made tasks whose composition is known, the D8-frame and colour-map tricks,
pruning, the time cap, worker processes under a memory cap, and real ARC-AGI-1 training tasks."""

import math
import os
import signal
import time

import numpy as np
import pytest

from submission.arc.data import Pair, Task, load_challenges, load_solutions
from submission.programs.search import search, search_tasks
from submission.programs.steps import parse, program_text, run_program


def grid(rows) -> np.ndarray:
    return np.asarray(rows, dtype=np.int8)


def make_task(task_id: str, fn, inputs: list, tests: list) -> Task:
    """A task whose outputs are fn(input); test pairs carry the true output."""
    return Task(task_id, tuple(Pair(grid(x), grid(fn(grid(x)))) for x in inputs),
                tuple(Pair(grid(x), grid(fn(grid(x)))) for x in tests))


def random_inputs(seed: int, n: int, h: int = 6, w: int = 7, density: float = 0.3) -> list:
    rng = np.random.default_rng(seed)
    return [np.where(rng.random((h + i, w - i)) < density, rng.integers(1, 10, (h + i, w - i)), 0) for i in range(n)]


def assert_solves(task: Task, depth: int, time_s: float = 30.0):
    """A program is found, reproduces every demo when re-run from its text, and its test output is right."""
    out = search(task, depth=depth, time_s=time_s)
    assert out.programs, f"{task.id}: nothing found in {out.tried} tries"
    best = out.programs[0]
    assert best.verified and best.origin == "dsl"
    for p in task.train:
        assert np.array_equal(run_program(best.source, p.input), p.output), best.source
    for p, got in zip(task.test, best.test_outputs):
        assert np.array_equal(got, p.output), best.source
        assert np.array_equal(run_program(best.source, p.input), p.output), best.source
    return out


def object_grid(seed: int, h: int = 8, w: int = 9) -> np.ndarray:
    """One asymmetric object somewhere in a zero grid."""
    rng = np.random.default_rng(seed)
    g = np.zeros((h, w), dtype=np.int8)
    r, c = rng.integers(0, h - 3), rng.integers(0, w - 3)
    g[r:r + 3, c:c + 3] = [[1, 2, 0], [0, 3, 0], [0, 3, 3]]
    return g


def flip_crop(g: np.ndarray) -> np.ndarray:
    f = g[:, ::-1]
    return f[(f != 0).any(1)][:, (f != 0).any(0)]


def test_flip_then_crop_found_at_depth_2():
    task = make_task("flipcrop", flip_crop, [object_grid(s) for s in range(3)], [object_grid(9)])
    out = assert_solves(task, depth=2)
    assert len(parse(out.programs[0].source)) == 2


def test_scale_up_factor_read_from_the_demos():
    task = make_task("scale2", lambda g: np.repeat(np.repeat(g, 2, 0), 2, 1), random_inputs(1, 3, 4, 5),
                     random_inputs(2, 1, 3, 6))
    out = assert_solves(task, depth=1)
    assert out.programs[0].source == "scale_up{2,2}"


def test_colour_map_is_the_last_step():
    lut = np.array([0, 2, 1, 4, 3, 5, 6, 7, 8, 9], dtype=np.int8)
    inputs = [np.array([[1, 2, 3], [4, 0, 1]]), np.array([[2, 2], [3, 4]]), np.array([[4, 3, 2, 1]])]
    task = make_task("remap", lambda g: lut[g], inputs, [np.array([[3, 1], [0, 2]])])
    out = assert_solves(task, depth=1)
    assert out.programs[0].source == "recolor{1:2,2:1,3:4,4:3}"
    assert out.tried == 0  # the colour map alone fits: no step was needed


def test_a_colour_never_seen_in_the_demos_vetoes_the_colour_map():
    task = make_task("unseen", lambda g: np.where(g == 1, 2, g), [[[1, 0], [0, 1]], [[1, 1, 0]]], [[[1, 5]]])
    sources = [p.source for p in search(task, depth=1, time_s=30).programs]
    assert sources and "recolor{1:2}" not in sources  # others fit (keep_color{1} | recolor{1:2}), not the bare map
    seen = make_task("seen", lambda g: np.where(g == 1, 2, g), [[[1, 0], [0, 1]], [[1, 5, 0]]], [[[1, 5]]])
    assert search(seen, depth=1, time_s=30).programs[0].source == "recolor{1:2}"


def test_d8_frame_finds_what_only_a_turned_frame_expresses():
    # cells fall to the left: the library only has gravity downwards, so depth 1 needs a turned frame
    def fall_left(g):
        return np.array([np.r_[row[row != 0], np.zeros(np.count_nonzero(row == 0), dtype=np.int8)] for row in g],
                        dtype=np.int8)
    task = make_task("left", fall_left, random_inputs(3, 3), random_inputs(4, 1))
    out = assert_solves(task, depth=1)
    steps = [name for name, _ in parse(out.programs[0].source)]
    assert len(steps) == 3 and steps[1] == "gravity" and steps[0] != "identity"


def test_pruning_skips_duplicate_intermediate_states():
    rng = np.random.default_rng(5)  # outputs unrelated to inputs: nothing is found, both searches run to the end
    task = Task("noise", tuple(Pair(grid(rng.integers(0, 3, (4, 4))), grid(rng.integers(0, 3, (3, 5))))
                               for _ in range(2)), (Pair(grid(rng.integers(0, 3, (4, 4)))),))
    pruned, full = search(task, depth=2, time_s=120), search(task, depth=2, time_s=120, prune=False)
    assert pruned.complete and full.complete
    assert not pruned.programs and not full.programs
    assert pruned.tried < full.tried, (pruned.tried, full.tried)
    solvable = make_task("flipcrop", flip_crop, [object_grid(s) for s in range(3)], [object_grid(9)])
    pruned, full = search(solvable, depth=2, time_s=120), search(solvable, depth=2, time_s=120, prune=False)
    assert pruned.tried < full.tried and pruned.programs[0].source == full.programs[0].source


def test_time_cap_cuts_the_search_and_says_so():
    rng = np.random.default_rng(6)
    task = Task("big", tuple(Pair(grid(rng.integers(0, 10, (30, 30))), grid(rng.integers(0, 10, (29, 30))))
                             for _ in range(4)), (Pair(grid(rng.integers(0, 10, (30, 30)))),))
    out = search(task, depth=3, time_s=0.5)
    assert not out.complete and not out.programs and out.tried > 0


def test_program_text_round_trips():
    for text in ("rot90 | crop_bbox | recolor{1:2,3:0}", "scale_up{2,3}", "identity"):
        assert program_text(parse(text)) == text
    with pytest.raises(KeyError, match="no_such_step"):
        run_program("rot90 | no_such_step", grid([[1]]))
    with pytest.raises(ValueError, match="takes 2 parameters"):
        run_program("tile{2}", grid([[1]]))


# -- worker processes -------------------------------------------------------------------------------

def hungry_search(task, depth, time_s):
    """A fake searcher for the workers: 'hog' asks for 4 GiB (fine without a cap on this machine, a
    MemoryError under one), 'die' is killed outright, anything else is the real search."""
    if task.id == "hog":
        block = bytearray(4 << 30)
        block[::4096] = b"x" * len(block[::4096])
    if task.id == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return search(task, depth, time_s)


def scale_task(task_id: str) -> Task:
    return make_task(task_id, lambda g: np.repeat(np.repeat(g, 2, 0), 2, 1), random_inputs(1, 3, 4, 5),
                     random_inputs(2, 1, 3, 6))


def test_workers_survive_a_memory_cap_and_a_killed_worker():
    tasks = [scale_task("hog"), scale_task("ok1"), scale_task("die"), scale_task("ok2")]
    got = dict(search_tasks(tasks, depth=1, time_s=10, memory_mb=1024, workers=1,
                            searcher="test_dsl:hungry_search"))
    assert set(got) == {"hog", "ok1", "die", "ok2"}
    for bad in ("hog", "die"):
        assert not got[bad].programs and not got[bad].complete, bad
    for ok in ("ok1", "ok2"):
        assert got[ok].complete and got[ok].programs[0].source == "scale_up{2,2}", ok
        assert np.array_equal(got[ok].programs[0].test_outputs[0], tasks[1].test[0].output)
        assert got[ok].peak_rss_mb > 0


def test_workers_match_the_in_process_search_and_respect_until():
    task = scale_task("s")
    (tid, remote), = list(search_tasks([task], depth=1, time_s=10, workers=2))
    local = search(task, depth=1, time_s=10)
    assert tid == "s" and [p.source for p in remote.programs] == [p.source for p in local.programs]
    assert list(search_tasks([task, scale_task("t")], until=time.monotonic() - 1)) == []
    asked = []  # a function is asked before each start: here it stops the search after the first task started

    def stop_after_one() -> float:
        asked.append(1)
        return math.inf if len(asked) == 1 else -math.inf
    assert [tid for tid, _ in search_tasks([task, scale_task("t"), scale_task("u")], depth=1,
                                           until=stop_after_one)] == ["s"]


# -- real ARC-AGI-1 training tasks (the design set) -----------------------------------------------------

KNOWN = ("3c9b0459", "1e0a9b12", "007bbfb7", "3906de3d", "08ed6ac7", "4258a5f9", "c8f0f002")


def test_real_training_tasks_are_solved():
    ts, sol = load_challenges("arc1-train"), load_solutions("arc1-train")
    for task_id in KNOWN:
        out = search(ts.tasks[task_id], depth=2, time_s=60)
        assert out.programs, task_id
        for i, truth in enumerate(sol[task_id]):
            firsts = [p.test_outputs[i] for p in out.programs[:2]]
            assert any(np.array_equal(g, np.array(truth)) for g in firsts), (task_id, out.programs[0].source)
            assert np.array_equal(run_program(out.programs[0].source, ts.tasks[task_id].test[i].input),
                                  out.programs[0].test_outputs[i])
