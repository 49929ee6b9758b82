"""What every source of programs (the DSL search, an LLM writing code, a user's file) hands to the merge and
the report: one record per program, tagged with where it came from."""

from __future__ import annotations

from dataclasses import dataclass

from submission.arc.grid import Grid


@dataclass(frozen=True)
class ProgramResult:
    origin: str                            # "dsl" | "induction" | "file"
    source: str                            # Python source, or the DSL composition in words ("rot90 | crop_bbox")
    demo_fits: tuple[bool, ...]            # per demo pair: the program's output equals the demo output
    test_outputs: tuple[Grid | None, ...]  # per test input: the program's output (None: it failed there)
    weight: float = 1.0                    # its vote's weight; checks below lower it
    checks: tuple[str, ...] = ()           # the checks it failed: "not_d8_invariant", "branches_on_size", "identity"

    @property
    def verified(self) -> bool:
        """It reproduces every demo output."""
        return bool(self.demo_fits) and all(self.demo_fits)
