"""What the plan says the induction phase costs (tokens at the profile, sandbox runs on the cores left), and the
sandbox judging many programs of a task at once exactly as one at a time."""

import numpy as np

from submission.arc.data import load_challenges
from submission.pipeline import induction
from submission.pipeline.budget import Profile
from submission.pipeline.config import RunConfig
from submission.programs.sandbox import Limits, Sandbox, verify, verify_many

PROFILE = Profile(ttt_tok_s=1000, prefill_tok_s=10_000, decode_tok_s=1_000, engine_start_s=60)


def test_the_plan_counts_prompt_tokens_once_and_every_sample():
    tasks = [load_challenges("arc1-train").tasks[t] for t in ("6150a2bd", "74dd1130")]
    p = induction.plan_induction(tasks, samples=64, profile=PROFILE, workers=2, cores=4)
    prompt = sum(induction.prompt_tokens(t) for t in tasks)
    assert 200 < prompt / len(tasks) < 1000  # 3x3 grids: the system prompt and the request dominate
    assert p["prefill_tokens"] == prompt and p["decode_tokens"] == 2 * 64 * induction.SAMPLE_TOKENS
    assert np.isclose(p["gen_s"], (prompt / 10_000 + 2 * 64 * 600 / 1_000) / 2)
    runs = 64 * sum(len(t.train) + len(t.test) for t in tasks)
    assert np.isclose(p["sandbox_s"], runs / (induction.SANDBOX_RUNS_PER_CORE_S * 4))
    assert np.isclose(p["total_s"], 60 + max(p["gen_s"], p["sandbox_s"]))
    cfg = RunConfig(induction_model="m", induction_samples=64, induction_share=0.25)
    fits = induction.describe(cfg, tasks, PROFILE, ["0", "1"], budget=3600, ttt_s=p["total_s"] * 2)
    assert "cut at 25% of the budget (15.0 min): it fits" in fits and "(induction costs 0.50x TTT)" in fits
    cut = induction.describe(cfg, tasks, PROFILE, ["0", "1"], budget=p["total_s"] * 2)  # a quarter: half of it
    assert "about 50% of the tasks get their samples" in cut


def test_many_programs_judged_at_once_equal_one_at_a_time():
    task = load_challenges("arc1-train").tasks["6150a2bd"]  # rot180
    sources = ["def transform(g):\n    return g[::-1, ::-1]\n", "def transform(g):\n    return g\n",
               "def transform(g):\n    while True:\n        pass\n", "def main(g):\n    return g.T\n"]
    with Sandbox(Limits(timeout_s=1.0)) as box:
        alone = [verify(box, s, task, "t") for s in sources]
        together = verify_many(box, sources, task, "t", workers=3)
    assert [r.demo_fits for r in together] == [r.demo_fits for r in alone]
    assert [r.verified for r in together] == [True, False, False, False]
    for a, b in zip(alone, together):
        assert all((x is None and y is None) or np.array_equal(x, y) for x, y in zip(a.test_outputs, b.test_outputs))
