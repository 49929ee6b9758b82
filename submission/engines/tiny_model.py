"""A tiny random causal LM (Llama, or Qwen2/Qwen3/Mistral) with a character-level tokenizer covering the
grid format, written in standard HF format (safetensors), no downloads: the test fixture
(`python -m submission tiny-model OUT`) and the starting point of the trained default model
(`python -m submission finetune`, see models/arc-tiny/finetune.json).
"""

from __future__ import annotations

import os
from pathlib import Path

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
SYMBOLS = [*"0123456789", "\n", "I", "O", " "]
VERSION = 1  # bump when the recipe changes so cached copies are rebuilt


def default_cache_dir() -> Path:
    """Where the embedded default model is built once ($ARC_TTT_CACHE or ~/.cache/arc-ttt)."""
    return Path(os.environ.get("ARC_TTT_CACHE", Path.home() / ".cache" / "arc-ttt"))


def build_tokenizer():
    """A WordLevel tokenizer: one token per character, </s> as one special token, BOS prepended."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + SYMBOLS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    tok.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", padding_side="left")


ARCHS = ("llama", "qwen2", "qwen3", "mistral")


def write_tiny_model(out: str | Path, hidden: int = 128, layers: int = 2, heads: int = 4, seed: int = 0,
                     max_positions: int = 16384, arch: str = "llama",
                     init_std: float | None = 0.08) -> Path:
    """Write a random tiny causal LM + tokenizer to `out` (safetensors) and return the path.
    arch: llama | qwen2 | qwen3 | mistral (head_dim = hidden/heads must be >= 32 for vLLM-CPU).
    init_std: matrices ~ N(0, init_std) (a little larger than HF's init so greedy outputs of a random
    model vary between prompts and adapters); None keeps HF's init (training from scratch)."""
    import torch
    import transformers

    out = Path(out)
    tokenizer = build_tokenizer()
    config_cls, model_cls = {
        "llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
        "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"), "mistral": ("MistralConfig", "MistralForCausalLM"),
    }[arch]
    config = getattr(transformers, config_cls)(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads // 2, max_position_embeddings=max_positions,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False, dtype="float32",
        **({"head_dim": hidden // heads} if arch == "qwen3" else {}))
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config)
    if init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0, init_std)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


TRAINED = Path(__file__).resolve().parents[2] / "models" / "arc-tiny"  # committed; see its finetune.json


def default_model() -> Path:
    """The default `--model`: the tiny ARC model trained by this project (models/arc-tiny), or,
    where a copy of the package lacks it, the random tiny model built into the cache dir."""
    if (TRAINED / "model.safetensors").is_file():
        return TRAINED
    return random_tiny_model()


def random_tiny_model() -> Path:
    """The random tiny model (the test fixture's recipe), built into the cache dir on first use."""
    path = default_cache_dir() / f"tiny-random-v{VERSION}"
    if not (path / "model.safetensors").is_file():
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        write_tiny_model(tmp)
        tmp.replace(path) if not path.exists() else None
    return path
