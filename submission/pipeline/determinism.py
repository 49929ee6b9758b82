"""--deterministic: the same submission.json whatever the worker count, the chunking and the order of the
tasks in the file, so that an A/B of two settings measures the settings, not noise (identical reruns of
NVARC's public notebook scored 26.9 to 32.2 on Kaggle's board).

What it fixes: each task's seed comes from its id (not its place in the file); each engine call holds one
task's prompts in their own order (batch composition no longer depends on --chunk-* or on what other tasks
are in flight); workers get PYTHONHASHSEED, torch's deterministic algorithms and cuBLAS's fixed workspace;
on GPUs, vLLM's batch-invariant mode (documented for GPUs only, and not verified here with LoRA). What it
cannot fix: a --budget's deadline still decides what runs, by the clock (each cut is logged).
"""

from __future__ import annotations

import hashlib
import os

ENV = {"PYTHONHASHSEED": "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "ARC_TTT_DETERMINISTIC": "1"}


def stable_seed(seed: int, task_id: str) -> int:
    """A task's seed from the run's seed and the task's id alone (31 bits)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:4], "little") >> 1


def task_seeds(ids: list[str], seed: int, by_id: bool) -> dict[str, int]:
    """Per task: seed + its place in the file (the default), or from its id (--deterministic)."""
    return {tid: stable_seed(seed, tid) if by_id else seed + i for i, tid in enumerate(ids)}


def enter(gpus: bool, budget: float) -> str:
    """Set what the workers inherit (they are spawned with this environment); the line the run prints."""
    os.environ.update(ENV)
    if gpus:
        os.environ.setdefault("VLLM_BATCH_INVARIANT", "1")
    return ("deterministic: seeds by task id, one engine call per task, deterministic torch in the workers"
            + ("; vLLM batch-invariant mode on (unverified with LoRA)" if gpus else "")
            + ("; the budget's deadline still cuts by the clock" if budget else ""))


def in_worker() -> None:
    """In a worker process, before its engine loads."""
    if os.environ.get("ARC_TTT_DETERMINISTIC"):
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
