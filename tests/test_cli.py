"""The validate and score contract."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "submission", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


@pytest.fixture
def files(tmp_path, task_json):
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"a": task_json, "b": task_json}))
    s = tmp_path / "sol.json"
    s.write_text(json.dumps({"a": [[[2, 0, 2]], [[0, 2], [2, 2]]], "b": [[[2, 0, 2]], [[0, 2], [2, 2]]]}))
    return c, s, tmp_path


def entry(g1, g2=None):
    return {"attempt_1": g1, "attempt_2": g2 if g2 is not None else g1}


def test_validate_ok_and_problems(files):
    c, _, tmp = files
    good = tmp / "good.json"
    good.write_text(json.dumps({t: [entry([[0]]), entry([[1]])] for t in ("a", "b")}))
    r = cli("validate", "--challenges", str(c), "--submission", str(good))
    assert r.returncode == 0, r.stdout
    bad = tmp / "bad.json"
    bad.write_text(json.dumps({"a": [entry([[0]])], "b": [{"attempt_1": [[1]]}, entry([[1, 2], [3]])]}))
    r = cli("validate", "--challenges", str(c), "--submission", str(bad))
    assert r.returncode == 1
    assert "'a': 1 entries" in r.stdout and "missing attempt_2" in r.stdout and "ragged" in r.stdout
    notjson = tmp / "nj.json"
    notjson.write_text("{")
    r = cli("validate", "--challenges", str(c), "--submission", str(notjson))
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr


def test_score_last_line_and_json(files):
    c, s, tmp = files
    sub = tmp / "s.json"
    sub.write_text(json.dumps({"a": [entry([[2, 0, 2]]), entry([[0]], [[0, 2], [2, 2]])],
                               "b": [entry([[0]]), entry([[0, 2], [2, 2]])]}))
    r = cli("score", "--submission", str(sub), "--solutions", str(s))
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "score: 0.7500"
    r = cli("score", "--submission", str(sub), "--solutions", str(s), "--json")
    assert json.loads(r.stdout[: r.stdout.rindex("}") + 1])["tasks"] == {"a": 1.0, "b": 0.5}


def test_score_bundled_solutions(tmp_path):
    from submission.arc.data import load_solutions

    sol = load_solutions("arc1-eval")
    tid = next(iter(sol))
    sub = tmp_path / "s.json"
    sub.write_text(json.dumps({tid: [entry(g) for g in sol[tid]]}))
    r = cli("score", "--submission", str(sub), "--solutions", "arc1-eval")
    assert r.stdout.strip().splitlines()[-1] == f"score: {1 / 400:.4f}"


def subcommands():
    import argparse

    from submission.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_subcommand_help_shows_every_option_with_its_default(name):
    """--help exits 0 and lists every option; every optional one says its default (help text comes
    from the config fields' metadata, not from parsing source comments: a '%' once crashed it)."""
    parser = subcommands()[name]
    r = cli(name, "--help")
    assert r.returncode == 0, r.stderr[-2000:]
    text = "".join(r.stdout.split())  # argparse re-wraps (and breaks long words): compare without whitespace
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.option_strings[-1] in r.stdout, action.option_strings
        if not action.required:
            shown = parser.formatter_class(prog=name)._expand_help(action)  # what --help prints for it
            assert "default" in shown, f"{name} {action.option_strings}: no default shown"
            assert "".join(shown.split()) in text
