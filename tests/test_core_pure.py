"""The core imports and works with every heavy engine blocked, and the folders import each other only in
the directions the layout promises (README, "Where things are"), with no circle."""

import ast
import subprocess
import sys
from pathlib import Path

CODE = r"""
import sys
for m in ("torch", "vllm", "unsloth", "transformers", "peft"):
    sys.modules[m] = None
from submission.arc import augment, data, grid, prompts, score, submission_io, text, vote
from submission.arc.ttt import data as ttt_data
ts = data.load_challenges("arc1-eval")
task = ts.tasks[ts.ids[0]]
fmt = text.TextFormat()
ex = ttt_data.build_ttt_dataset(task, ttt_data.TTTDataConfig(augmentations=2), fmt)
ps = prompts.build_prompts(task, 4, 2, fmt)
preds = [vote.Prediction(p.transform.invert(task.test[p.test_index].input), p.transform.name, p.transform.is_identity)
         for p in ps]
ranked = vote.hierarchical_vote(preds)
sub = submission_io.build_submission(ts, {task.id: [vote.top2(ranked)]})
assert not submission_io.validate_submission(sub, ts)
print("ok", len(ex), len(ps))
"""


def test_core_works_without_engines():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")


ROOT = Path(__file__).parents[1]
# who may import whom, by folder: the ARC core and the engines never import each other; only the pipeline
# and the command line join them; knobs (field metadata both sides use) imports nothing of the package
ALLOWED = {
    "submission.knobs": set(),
    "submission.arc": {"submission.arc", "submission.knobs"},
    "submission.engines": {"submission.engines", "submission.knobs"},
    "submission.programs": {"submission.programs", "submission.arc", "submission.knobs"},
    "submission.pipeline": {"submission.pipeline", "submission.arc", "submission.engines", "submission.programs",
                            "submission.knobs"},
    "submission.cli": {"submission.cli", "submission.pipeline", "submission.arc", "submission.engines",
                       "submission.programs", "submission.knobs"},
    "submission.__main__": {"submission.cli"},
    "submission": set(),  # the package's __init__
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the package's modules it imports}, at module level and inside functions alike."""
    paths = {module_name(p): p for p in (ROOT / "submission").rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("submission"):
                out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in paths else node.module
                        for a in node.names}
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names if a.name.startswith("submission")}
        graph[name] = {m for m in out if m != name}
    return graph


def folder(module: str) -> str:
    return max((f for f in ALLOWED if module == f or module.startswith(f + ".")), key=len)


def test_folders_import_only_in_their_direction():
    graph = import_graph()
    assert {"submission.arc.grid", "submission.engines.gen_vllm", "submission.pipeline.run",
            "submission.cli.main", "submission.knobs"} <= set(graph)
    wrong = [f"{m} imports {t}" for m, targets in sorted(graph.items()) for t in sorted(targets)
             if folder(t) not in ALLOWED[folder(m)]]
    assert not wrong, "\n".join(wrong)


def test_the_rule_catches_an_engine_importing_the_core():
    assert folder("submission.arc.grid") not in ALLOWED[folder("submission.engines.gen_hf")]
    assert folder("submission.engines.api") not in ALLOWED[folder("submission.arc.ttt.data")]
    assert folder("submission.pipeline.run") not in ALLOWED[folder("submission.knobs")]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == "open":
                found.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for u in sorted(graph):
        if u not in state:
            visit(u)
    return found


def test_the_import_graph_has_no_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles(import_graph()) == []
