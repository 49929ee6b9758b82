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
