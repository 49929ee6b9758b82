import json

import numpy as np
import pytest

ROOT_TASK = {  # a tiny task: recolour 1 -> 2, with two test inputs
    "train": [
        {"input": [[1, 0], [0, 1]], "output": [[2, 0], [0, 2]]},
        {"input": [[1, 1, 0]], "output": [[2, 2, 0]]},
        {"input": [[0], [1]], "output": [[0], [2]]},
    ],
    "test": [{"input": [[1, 0, 1]]}, {"input": [[0, 1], [1, 1]]}],
}


@pytest.fixture
def task_json():
    return json.loads(json.dumps(ROOT_TASK))


def random_grid(rng: np.random.Generator, h: int | None = None, w: int | None = None) -> np.ndarray:
    h = h or int(rng.integers(1, 31))
    w = w or int(rng.integers(1, 31))
    return rng.integers(0, 10, size=(h, w)).astype(np.int8)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random Llama + char tokenizer, built once per test session (no downloads)."""
    from submission.engines.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


SMALL_TASKS = {  # small grids keep TTT and generation fast on the tiny model
    "flip": {"train": [{"input": [[1, 2], [3, 4]], "output": [[2, 1], [4, 3]]},
                       {"input": [[5, 0, 0]], "output": [[0, 0, 5]]},
                       {"input": [[7], [8]], "output": [[7], [8]]}],
             "test": [{"input": [[1, 0], [0, 2]]}]},
    "recolor": ROOT_TASK,
}


def parsed_answers(out) -> int:
    """Answers in a run folder's predictions.jsonl that parsed as grids: two runs that both answered
    nothing but [[0]] would have equal submissions and prove nothing."""
    from pathlib import Path

    path = Path(out) / "predictions.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return sum(g is not None for rec in recs for g in rec["grids"])
