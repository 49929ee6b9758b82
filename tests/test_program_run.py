"""The program phase in a real run on the tiny model, with the real DSL search: a task the search solves gets
its program's answer into submission.json under --program-policy fill where transduction's attempt 2 repeats
attempt 1 (one prompt per test input), programs.jsonl is read back on resume (no task searched twice), and
`ablate` prints each policy's tasks gained and lost against transduction alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

from submission.arc.data import load_challenges
from submission.arc.submission_io import validate_submission

from conftest import SMALL_TASKS
from test_run import run_cli, write_challenges

RIGHT = {"flip": [[[0, 1], [2, 0]]], "recolor": [[[2, 0, 2]], [[0, 2], [2, 2]]]}
ONE_PROMPT = ["--trainer", "none", "--engine", "hf", "--transforms", "1", "--permutations", "1",
              "--quick-transforms", "0", "--extra-rounds", "0", "--score-augmentations", "0",
              "--max-new-tokens", "40", "--max-model-len", "2048", "--dsl-seconds", "5"]


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def rendered(page, tmp_path) -> str:
    """The report's DOM after its scripts ran, in headless Chromium."""
    from test_report_ablate import browser

    r = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    return r.stdout


def test_programs_fill_a_repeated_attempt_and_are_searched_once(tmp_path, tiny_model):
    c = write_challenges(tmp_path / "x_challenges.json", SMALL_TASKS, RIGHT)
    out = tmp_path / "out"
    args = ["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), *ONE_PROMPT,
            "--program-policy", "fill"]
    r = run_cli(args, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "programs: DSL search (depth 2, 5 s per task) over 2 tasks" in r.stdout
    searched = lines(out / "programs.jsonl")
    assert sorted(x["task_id"] for x in searched) == ["flip", "recolor"]
    flip = next(x for x in searched if x["task_id"] == "flip")
    assert flip["programs"] and flip["tried"] > 0
    assert all(all(p["demo_fits"]) and p["origin"] == "dsl" for p in flip["programs"])
    assert flip["programs"][0]["test_outputs"] == RIGHT["flip"]

    sub = json.loads((out / "submission.json").read_text())
    assert validate_submission(sub, load_challenges(c)) == []
    results = {x["task_id"]: x for x in lines(out / "results.jsonl")}
    for tid, want in RIGHT.items():
        for i, (entry, test) in enumerate(zip(sub[tid], results[tid]["tests"])):
            model = test["candidates"][0]["grid"] if test["candidates"] else None
            assert model != want[i]  # the random tiny model is wrong: a right answer came from a program
            assert entry["attempt_2"] == want[i] and test["program"]["chosen"]
            assert entry["attempt_1"] == (model or want[i])  # transduction keeps attempt 1 when it has one
    summary = json.loads((out / "summary.json").read_text())
    assert summary["score"] == 1.0 and summary["config"]["run"]["program_policy"] == "fill"
    p = summary["programs"]
    assert p["search"] == "before"  # auto on a CPU-only machine: the engines need every core
    assert p["searched"] == 2 and p["verified"] == 2 and p["chosen"] == 3 and p["tried"] > 0
    assert p["per_origin"] == {"dsl": {"verified": 2, "chosen": 3}}
    dom = rendered(out / "report.html", tmp_path)  # the first task (flip) opens with its winning program
    assert "<pre>flip_lr</pre>" in dom and "fits demos: 1 ✓ 2 ✓ 3 ✓" in dom and "its answer is in the attempts" in dom

    again = run_cli(args, cwd=tmp_path)  # resume: programs read back, nothing searched again
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "DSL search" not in again.stdout
    assert lines(out / "programs.jsonl") == searched
    assert json.loads((out / "submission.json").read_text()) == sub

    a = subprocess.run([sys.executable, "-m", "submission", "ablate", str(out)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300, env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])})
    assert a.returncode == 0, a.stderr[-2000:]
    from submission.pipeline.ablate import ablate

    assert ablate(out)["vote"] == 1.0 and ablate(out, policy="off")["vote"] == 0.0  # the run's policy by default
    table = a.stdout[a.stdout.index("programs (2 tasks searched)"):]
    assert "off  0.0000\n" in table
    assert "fill  1.0000  +2 flip recolor  -0   <- the run's policy (run printed 1.0000)" in table
    assert "induction-first  1.0000  +2 flip recolor  -0 " in table
    assert "dsl alone  1.0000  +2 flip recolor  -0 " in table  # the search alone solves both


def test_search_beside_the_model_phases_lands_its_programs(tmp_path, tiny_model):
    """--program-search beside: the search runs in a thread feeding a CPU worker while the model answers, and
    its programs reach submission.json (the thread is waited for at the end of a run without a budget)."""
    c = write_challenges(tmp_path / "x_challenges.json", SMALL_TASKS, RIGHT)
    out = tmp_path / "out"
    r = run_cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), *ONE_PROMPT,
                 "--program-policy", "fill", "--program-search", "beside"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "over 2 tasks on 1 CPU worker(s), beside the GPU phases" in r.stdout
    assert "programs: 2 of 2 tasks searched, 2 with a verified program" in r.stdout
    assert sorted(x["task_id"] for x in lines(out / "programs.jsonl")) == ["flip", "recolor"]
    sub = json.loads((out / "submission.json").read_text())
    assert [e["attempt_2"] for e in sub["flip"]] == RIGHT["flip"]
    assert [e["attempt_2"] for e in sub["recolor"]] == RIGHT["recolor"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["programs"]["search"] == "beside" and summary["programs"]["searched"] == 2
    assert summary["times_s"]["programs_beside"] > 0


def test_auto_searches_beside_only_where_the_gpu_workers_leave_a_core(monkeypatch):
    from submission.pipeline import programs

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    gb = 1 << 30
    monkeypatch.setattr(os, "sysconf", lambda k: {"SC_PHYS_PAGES": 64 * gb // 4096, "SC_PAGE_SIZE": 4096}[k])
    assert programs.search_mode("auto", ["0", "1", "2", "3"]) == "beside"  # 16 - 1 - 2 x 4 = 7 spare
    assert programs.spare_cores(["0", "1", "2", "3"]) == 7 == programs.beside_workers(50, ["0", "1", "2", "3"])
    monkeypatch.setattr(os, "sysconf", lambda k: {"SC_PHYS_PAGES": 8 * gb // 4096, "SC_PAGE_SIZE": 4096}[k])
    assert programs.beside_workers(50, ["0", "1", "2", "3"]) == 3  # 10 % of 8 GB at 256 MB a worker
    monkeypatch.setattr(os, "sysconf", lambda k: {"SC_PHYS_PAGES": 64 * gb // 4096, "SC_PAGE_SIZE": 4096}[k])
    assert "on 7 CPU worker(s): at most 4 s beside the GPU phases" in programs.describe(
        50, 2, 0.5, 3600, "auto", ["0", "1", "2", "3"])
    assert programs.search_mode("auto", None) == "before"  # CPU-only: the engines take every core
    assert programs.search_mode("beside", None) == "beside" and programs.search_mode("before", ["0"]) == "before"
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert programs.search_mode("auto", ["0", "1"]) == "before"  # 4 - 1 - 2 x 2 < 1
    assert "before any model starts, cut at 10% of the budget (360 s)" in programs.describe(
        50, 2, 0.5, 3600, "auto", ["0", "1"])


def test_program_knobs_are_checked_with_the_others(tmp_path):
    r = run_cli(["--dsl-depth", "0", "--dsl-seconds", "0", "--transforms", "0"], cwd=tmp_path)
    assert r.returncode == 2
    assert "--dsl-depth must be >= 1" in r.stderr and "--dsl-seconds must be > 0" in r.stderr
    assert "--transforms" in r.stderr
    r = run_cli(["--program-policy", "always"], cwd=tmp_path)
    assert r.returncode == 2 and "'fill', 'vote', 'induction-first', 'off'" in r.stderr


def test_ablate_names_the_tasks_each_policy_gains_and_loses(tmp_path):
    """A hand-made run folder: on 'flip' transduction is right in attempt 2 and a wrong verified program
    pushes it out under vote and induction-first; on 'recolor' transduction repeats a wrong answer and a right
    program fills attempt 2 under every policy."""
    import numpy as np

    from submission.arc.vote import Prediction
    from submission.pipeline.ablate import ablate_programs, format_programs
    from submission.pipeline.state import Answer, RunState
    from submission.programs.record import ProgramResult

    c = write_challenges(tmp_path / "x_challenges.json", SMALL_TASKS, RIGHT)
    out = tmp_path / "run"
    out.mkdir()
    state, wrong = RunState(out), [[9, 9], [9, 9]]
    preds = {"flip": [(wrong, 3), (RIGHT["flip"][0], 2)], "recolor": [([[5]], 4)]}
    for tid, found in preds.items():
        for i in range(len(SMALL_TASKS[tid]["test"])):
            ps = [Prediction(np.array(g, dtype=np.int8), f"t{k}") for g, n in found for k in range(n)]
            state.add_answers([Answer(tid, "main", f"{i}|{p.transform}|{k}", i, p.transform, False,
                                      (p.grid.tolist(),), (None,), 1, 0.1) for k, p in enumerate(ps)])
    grid = lambda g: np.array(g, dtype=np.int8)  # noqa: E731
    state.add_programs("flip", [ProgramResult("dsl", "rot90", (True,) * 3, (grid([[7]]),))], tried=9, seconds=0.1,
                       complete=True)
    state.add_programs("recolor", [ProgramResult("dsl", "recolor{1:2}", (True,) * 3,
                                                 tuple(grid(g) for g in RIGHT["recolor"]))], tried=9, seconds=0.1,
                       complete=True)
    (out / "results.jsonl").write_text("".join(json.dumps({"task_id": t}) + "\n" for t in SMALL_TASKS))
    (out / "summary.json").write_text(json.dumps({"config": {"run": {"challenges": str(c), "solutions": None,
                                                                     "select": "vote", "program_policy": "fill"}}}))
    got = ablate_programs(out)
    assert {p: (r["score"], r["gained"], r["lost"]) for p, r in got.items()} == {
        "off": (0.5, [], []), "fill": (1.0, ["recolor"], []), "vote": (0.5, ["recolor"], ["flip"]),
        "induction-first": (0.5, ["recolor"], ["flip"]), "dsl alone": (0.5, ["recolor"], ["flip"])}
    table = format_programs(got, "fill", 2)
    assert "vote  0.5000  +1 recolor  -1 flip" in table
    assert "fill  1.0000  +1 recolor  -0   <- the run's policy" in table


def test_a_search_beside_stops_when_the_run_ends_and_keeps_what_it_found(tmp_path):
    """Beside.stop(wait=False), as when a phase raised or the deadline came: no task starts after it, the task in
    flight finishes, every finished task is in programs.jsonl and the log says a resumed run searches the rest."""
    import time
    from types import SimpleNamespace

    from submission.pipeline.programs import Beside
    from submission.pipeline.state import RunState

    tasks = load_challenges("arc2-eval")  # hard: each search runs to its cap
    ids = tasks.ids[:10]
    events = []
    run = SimpleNamespace(cfg=SimpleNamespace(dsl_depth=2, dsl_seconds=0.5), tasks=tasks, deadline=float("inf"),
                          state=RunState(tmp_path), times={}, refresh=lambda: None, log=events.append,
                          left=lambda: float("inf"))
    beside = Beside(run, ids, workers=1)
    t = time.monotonic()
    while not run.state.searches and time.monotonic() - t < 120:
        time.sleep(0.05)
    beside.stop(wait=False)
    assert 1 <= beside.done <= 3, beside.done  # the first, the one in flight (and one that raced the stop)
    assert sorted(x["task_id"] for x in lines(tmp_path / "programs.jsonl")) == sorted(run.state.searches)
    assert events == [f"programs: {beside.done} of 10 tasks searched, 0 with a verified program (the run ended "
                      "first: a resumed run searches the rest)"]
    assert run.times["programs_beside"] > 0
    beside.stop()  # once: a second stop does nothing
    assert len(events) == 1
