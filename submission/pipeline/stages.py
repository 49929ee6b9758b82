"""Engine choice: which trainer and which generator a worker builds (heavy imports inside)."""

from __future__ import annotations

from importlib.util import find_spec

from submission.engines.config import GenerateConfig, TrainConfig


def pick_trainer(name: str) -> str:
    """auto: Unsloth on a GPU when installed, otherwise PEFT (Unsloth's CPU path is plain HF anyway)."""
    if name != "auto":
        return name
    import torch

    return "unsloth" if torch.cuda.is_available() and find_spec("unsloth") else "peft"


def make_trainer(name: str, model: str, cfg: TrainConfig, dtype: str):
    if name == "unsloth":
        from submission.engines.train_unsloth import UnslothTrainer

        return UnslothTrainer(model, cfg, dtype)
    from submission.engines.train_peft import PeftTrainer

    return PeftTrainer(model, cfg, dtype)


def make_generator(engine: str, model: str, cfg: GenerateConfig, max_lora_rank: int):
    """vLLM when available (auto), else the HF engine; a vLLM start-up failure falls back to HF."""
    if engine in ("auto", "vllm") and find_spec("vllm"):
        try:
            from submission.engines.gen_vllm import VllmGenerator

            return VllmGenerator(model, cfg, max_lora_rank)
        except Exception as e:
            if engine == "vllm":
                raise
            print(f"warning: vLLM failed to start ({type(e).__name__}: {e}); using the HF engine")
    elif engine == "vllm":
        raise RuntimeError("--engine vllm: vLLM is not installed")
    from submission.engines.gen_hf import HfGenerator

    return HfGenerator(model, cfg)
