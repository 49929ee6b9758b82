"""The engine contract: what a trainer and a generator promise, and the types they exchange.

Engines see token ids, texts with character spans and adapter folders — never grids, tasks or
transforms. The pipeline turns ARC work into these requests and the results back into ARC
answers. Implementations (train_peft, train_unsloth, gen_vllm, gen_hf) each define every method
in their own class; nothing is shared by inheritance. Pure: importable without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence

from submission.engines.config import TrainConfig


@dataclass(frozen=True)
class TrainExample:
    text: str
    loss_spans: tuple[tuple[int, int], ...]  # character spans that carry loss


@dataclass(frozen=True)
class TrainResult:
    adapter: str  # folder with adapter_config.json + adapter_model.safetensors (PEFT format)
    steps: int
    examples: int
    tokens: int  # tokens trained on, all epochs (the cost model's unit)
    first_loss: float
    last_loss: float
    train_s: float
    lora_rank: int


@dataclass(frozen=True)
class GenRequest:
    prompt_ids: tuple[int, ...]
    adapter: str | None  # a PEFT adapter folder, or None for the base model
    max_tokens: int


@dataclass(frozen=True)
class ScoreRequest:
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]  # scored: the sum of their log-probabilities given the prompt
    adapter: str | None


@dataclass(frozen=True)
class SearchRequest:
    prompt_ids: tuple[int, ...]
    adapter: str | None
    max_tokens: int
    min_prob: float  # keep every completion whose probability is at least this
    max_candidates: int  # and at most this many (the most probable), so a flat distribution cannot explode


@dataclass(frozen=True)
class Completion:
    token_ids: tuple[int, ...]  # generated ids, the stop token excluded
    logprob: float  # sum of the raw (unconstrained) log-probabilities of the ids and the stop token; nan if not stopped
    stopped: bool = True  # False: the answer ran into its token limit before a stop token (not an answer)


@dataclass(frozen=True)
class Decoding:
    """What every generator of a run is told once: which tokens an answer may use and which ends it."""

    allowed_ids: tuple[int, ...]  # constrained decoding: the answer vocabulary (stop ids included)
    stop_ids: tuple[int, ...]  # ids that end an answer


class Trainer(Protocol):
    name: str

    def train(self, examples: Sequence[TrainExample], out_dir: Path, cfg: TrainConfig, seed: int) -> TrainResult:
        """Fresh LoRA weights, train on the examples under `cfg` (the ladder-adjusted config of this
        task), save the adapter to out_dir. The base weights never change."""
        ...


class Generator(Protocol):
    name: str

    def generate(self, requests: Sequence[GenRequest],
                 until: float = math.inf) -> Iterator[tuple[int, list[Completion]]]:
        """(request index, its completions) as each request finishes, in any order. Streaming lets
        the caller persist finished work before a deadline kills the process. At `until`
        (time.monotonic()) the call ends: what finished is yielded, the rest is dropped, and
        nothing of the call is left running in the engine."""
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Sum of completion log-probabilities per request (teacher-forced), in request order."""
        ...

    def search(self, requests: Sequence[SearchRequest],
               until: float = math.inf) -> Iterator[tuple[int, list[Completion]]]:
        """(request index, every completion with raw probability >= its min_prob, most probable
        first, at most max_candidates) as each request's search finishes, in any order; exact, not
        sampled: see engines/search.py. `until`: as for generate."""
        ...
