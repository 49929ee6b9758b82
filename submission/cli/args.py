"""argparse flags generated from config dataclasses: one --flag per field, help and choices from the
field's metadata (submission/knobs.py), the default printed beside it."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from submission.knobs import choices_of, default_of, help_of


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """The flags of `run` and `plan`: one per field of every stage's config (shared fields once)."""
    from submission.pipeline.config import SHARED, STAGES, RunConfig

    for cls in STAGES:
        add_config_args(parser, cls, frozenset() if cls is RunConfig else frozenset(SHARED))


def _tuple(text: str) -> tuple[str, ...]:
    return tuple(x for x in text.split(",") if x)


def add_config_args(parser: argparse.ArgumentParser, cls: type, skip: frozenset[str] = frozenset()) -> None:
    """One --flag per field of `cls`; an unset flag is None, so the caller knows what the user gave."""
    group = parser.add_argument_group(cls.__name__)
    for f in fields(cls):
        if f.name in skip:
            continue
        default = default_of(f)
        shown = ",".join(default) if isinstance(default, tuple) else default
        text = f"{help_of(f)} (default: {shown})".replace("%", "%%")
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif isinstance(default, tuple):
            group.add_argument(flag, type=_tuple, default=None, help=text + " (comma-separated)")
        else:
            kind = type(default) if default is not None else str
            group.add_argument(flag, type=kind, default=None, choices=choices_of(f), help=text)


def given(args: argparse.Namespace, classes: tuple[type, ...]) -> dict[str, Any]:
    """{field: value} for every flag of these configs the user gave."""
    names = {f.name for cls in classes for f in fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
