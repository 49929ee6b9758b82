"""The one place that picks engines, for `run` and `finetune` alike (heavy imports inside)."""

from __future__ import annotations

from importlib.util import find_spec

from submission.engines.api import Decoding, Generator, Trainer
from submission.engines.config import GenerateConfig, TrainConfig


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def pick_trainer(name: str) -> str:
    """auto: Unsloth on a GPU when installed, otherwise PEFT (Unsloth's CPU path is plain HF anyway)."""
    if name != "auto":
        return name
    return "unsloth" if find_spec("unsloth") and has_cuda() else "peft"


def make_trainer(name: str, model: str, cfg: TrainConfig, dtype: str) -> Trainer:
    """A loaded trainer: `name` is auto | unsloth | peft (see pick_trainer)."""
    name = pick_trainer(name)
    if name == "unsloth":
        from submission.engines.train_unsloth import UnslothTrainer

        return UnslothTrainer(model, cfg, dtype)
    if name != "peft":
        raise ValueError(f"unknown trainer {name!r}: auto | unsloth | peft")
    from submission.engines.train_peft import PeftTrainer

    return PeftTrainer(model, cfg, dtype)


def make_generator(engine: str, model: str, cfg: GenerateConfig, decoding: Decoding, max_lora_rank: int) -> Generator:
    """vLLM when available (auto), else the HF engine; a vLLM start-up failure under auto falls back to HF."""
    if engine in ("auto", "vllm") and find_spec("vllm"):
        try:
            from submission.engines.gen_vllm import VllmGenerator

            return VllmGenerator(model, cfg, decoding, max_lora_rank)
        except Exception as e:
            if engine == "vllm":
                raise
            print(f"warning: vLLM failed to start ({type(e).__name__}: {e}); using the HF engine")
    elif engine == "vllm":
        raise RuntimeError("--engine vllm: vLLM is not installed")
    from submission.engines.gen_hf import HfGenerator

    return HfGenerator(model, cfg, decoding)
