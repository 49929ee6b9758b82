"""DSL programs as steps and text (the primitives are dsl.py's): `make(step)` is a step's function,
`parse`/`program_text` read and write a program (`rot90 | crop_bbox`, `recolor{1:2,3:4}`), `run_program` re-applies
one to a grid, and `candidates(train)` lists the steps worth trying on a task, with parameters read off its demos
(scale factors from shape ratios, colours that occur).

    python -c "from submission.programs.steps import run_program; import numpy as np; \
print(run_program('rot90 | crop_bbox', np.eye(3, dtype=np.int8)))"
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from submission.arc.grid import Grid
from submission.programs.dsl import ARITY, FACTORIES, STATIC, Prim, Step
from submission.programs.objects import valid


def make(step: Step) -> Prim:
    """The function behind a step; KeyError/ValueError name an unknown step or a wrong parameter count."""
    name, args = step
    if name in STATIC:
        if args:
            raise ValueError(f"DSL step {name!r} takes no parameters, got {args}")
        return STATIC[name]
    if name not in FACTORIES:
        raise KeyError(f"unknown DSL step {name!r}")
    if name == "recolor":
        if len(args) % 2 or not all(0 <= a <= 9 for a in args):
            raise ValueError(f"recolor needs colour pairs 0..9, got {args}")
    elif len(args) != ARITY[name]:
        raise ValueError(f"DSL step {name!r} takes {ARITY[name]} parameters, got {args}")
    return FACTORIES[name](*args)


def step_text(step: Step) -> str:
    """`name`, `name{a,b}`, or `recolor{1:2,3:4}`."""
    name, args = step
    if not args:
        return name
    if name == "recolor":
        return "recolor{" + ",".join(f"{a}:{b}" for a, b in zip(args[::2], args[1::2])) + "}"
    return name + "{" + ",".join(map(str, args)) + "}"


_STEP = re.compile(r"^([a-z_0-9]+)(?:\{([0-9:,]*)\})?$")


def parse(source: str) -> list[Step]:
    """The steps of a program's text; ValueError says which step is malformed."""
    steps: list[Step] = []
    for part in source.split("|"):
        m = _STEP.match(part.strip())
        if not m:
            raise ValueError(f"DSL program {source!r}: cannot read step {part.strip()!r}")
        args = tuple(int(x) for x in re.split(r"[:,]", m.group(2))) if m.group(2) else ()
        steps.append((m.group(1), args))
    return steps


def program_text(steps: Sequence[Step]) -> str:
    """Steps joined by ' | ' ('identity' for none)."""
    return " | ".join(step_text(s) for s in steps) or "identity"


def apply_step(f: Prim, g: Grid) -> Grid | None:
    """f(g) as a legal grid, or None where f does not apply or fails on this grid."""
    try:
        return valid(f(g))
    except (ValueError, IndexError):
        return None


def run_program(source: str, grid: Grid) -> Grid | None:
    """Re-apply a DSL program's text to a grid; None where a step does not apply."""
    g = valid(np.asarray(grid, dtype=np.int8))
    for name, args in parse(source):
        if g is None:
            return None
        if name == "identity":
            continue
        g = apply_step(make((name, args)), g)
    return g


def candidates(pairs: Sequence[tuple[Grid, Grid]], extra_inputs: Sequence[Grid] = ()) -> list[Step]:
    """The steps worth trying on a task: every parameterless one, colour steps for the colours that
    occur, and scale/tile steps whose factors every demo's shape ratio agrees on."""
    steps: list[Step] = [(n, ()) for n in STATIC]
    in_colors = set().union(*(set(np.unique(x).tolist()) for x, _ in pairs), *(set(np.unique(x).tolist())
                                                                                   for x in extra_inputs)) - {0}
    out_colors = set().union(*(set(np.unique(y).tolist()) for _, y in pairs)) - {0}
    for c in sorted(in_colors):
        steps += [("crop_color", (c,)), ("remove_color", (c,)), ("keep_color", (c,))]
    steps += [(name, (c,)) for c in sorted(out_colors) for name in ("fill_enclosed", "halo")]
    up = {(y.shape[0] // x.shape[0], y.shape[1] // x.shape[1]) if y.shape[0] % x.shape[0] == 0
          and y.shape[1] % x.shape[1] == 0 else None for x, y in pairs}
    down = {(x.shape[0] // y.shape[0], x.shape[1] // y.shape[1]) if x.shape[0] % y.shape[0] == 0
            and x.shape[1] % y.shape[1] == 0 else None for x, y in pairs}
    if len(up) == 1 and None not in up and up != {(1, 1)}:
        a, b = up.pop()
        steps += [("scale_up", (a, b)), ("tile", (a, b))]
    if len(down) == 1 and None not in down and down != {(1, 1)}:
        ab = down.pop()
        steps += [("scale_down", ab), ("pool_any", ab)]
    return steps
