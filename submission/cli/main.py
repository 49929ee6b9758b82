"""The command line: `python -m submission COMMAND`, one of run, plan, validate, score, finetune, ablate, report,
tiny-model, prompt, sweep, program-check (`--help` on each lists its flags).

Heavy engines are imported inside the commands that need them, so --help, validate and score
stay instant and work without torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from submission.arc.data import BUNDLED, DataError, load_challenges, load_solutions, read_json
from submission.arc.text import TokenizerError
from submission.cli.commands import register_commands

SOURCE_HELP = f"a JSON file or a bundled set: {', '.join(BUNDLED)}"


def cmd_validate(args: argparse.Namespace) -> int:
    from submission.arc.submission_io import validate_submission

    tasks = load_challenges(args.challenges)
    problems = validate_submission(read_json(args.submission), tasks)
    for p in problems:
        print(f"{args.submission}: {p}")
    print(f"{'INVALID' if problems else 'valid'}: {len(tasks.ids)} tasks, {len(problems)} problems")
    return 1 if problems else 0


def cmd_score(args: argparse.Namespace) -> int:
    from submission.arc.score import score_submission

    sub = read_json(args.submission)
    if not isinstance(sub, dict):
        raise DataError(f"{args.submission}: expected a JSON object {{task_id: [...]}}")
    overall, per_task = score_submission(sub, load_solutions(args.solutions))
    if args.json:
        print(json.dumps({"score": overall, "tasks": per_task}, indent=1))
    else:
        solved = sum(v == 1.0 for v in per_task.values())
        print(f"tasks: {len(per_task)}  fully solved: {solved}  missing from submission: "
              f"{sum(t not in sub for t in per_task)}")
    print(f"score: {overall:.4f}")
    return 0


class DefaultsShown(argparse.HelpFormatter):
    """Hand-written subcommands: '(default: X)' after every optional option's help (the generated
    config flags already carry theirs)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and not action.required and "default" not in text and action.dest != "help":
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m submission", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a submission.json against a challenges file")
    p.add_argument("--challenges", required=True, help=SOURCE_HELP)
    p.add_argument("--submission", required=True, type=Path)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("score", help="score a submission.json with the leaderboard rule")
    p.add_argument("--submission", required=True, type=Path)
    p.add_argument("--solutions", required=True, help=SOURCE_HELP)
    p.add_argument("--json", action="store_true", help="print the per-task breakdown as JSON")
    p.set_defaults(func=cmd_score)

    register_commands(sub)
    for p in sub.choices.values():
        p.formatter_class = DefaultsShown
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TokenizerError as e:
        print(f"error: --model: {e}", file=sys.stderr)
        return 2
