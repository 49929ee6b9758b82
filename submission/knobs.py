"""Config fields that carry their own help: `knob(default, "why")`. The CLI is generated from this
metadata (pipeline/cli_args.py); nothing parses source comments. Pure: stdlib only."""

from __future__ import annotations

from dataclasses import MISSING, Field, field, fields
from typing import Any


def knob(default: Any, help: str, choices: tuple | None = None, *, answers: bool = True) -> Any:
    """A dataclass field with help text (and allowed values) for the generated CLI. `answers`: does the
    setting change what a run answers? A run folder belongs to one value of every such setting
    (pipeline/fingerprint.py); the default is yes, so a new setting fails closed until someone says
    `answers=False` (a budget, a worker count, a chunk size: they change when, not what)."""
    meta = {"help": help, "choices": choices, "answers": answers}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults: use a tuple")
    return field(default=default, metadata=meta)


def help_of(f: Field) -> str:
    return f.metadata.get("help", "")


def answers_of(f: Field) -> bool:
    return f.metadata.get("answers", True)


def choices_of(f: Field) -> tuple | None:
    return f.metadata.get("choices")


def check_choices(obj: Any) -> list[str]:
    """Problems with fields whose value is not one of their declared choices."""
    return [f"--{f.name.replace('_', '-')} {getattr(obj, f.name)!r}: must be one of {', '.join(map(str, c))}"
            for f in fields(obj) if (c := choices_of(f)) and getattr(obj, f.name) not in c]


def default_of(f: Field) -> Any:
    return None if f.default is MISSING else f.default
