"""What a local model folder says about itself, read from its files alone (config.json, the tokenizer
files, the safetensors headers): no transformers, no torch, no weights. Every reader of a model
folder's facts is here, so the engines, the presets' detector and the budget read them one way."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path


def read_json_object(path: Path) -> dict:
    """A JSON object from `path`, or {} if it is absent or not a JSON object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def text_config(model_dir: str | Path) -> dict:
    """config.json (its text_config for multimodal wrappers); {} if absent."""
    cfg = read_json_object(Path(model_dir) / "config.json")
    return cfg.get("text_config", cfg)


def model_max_len(model_dir: str | Path) -> int:
    """max_position_embeddings from the model's config.json (8192 if absent)."""
    return int(text_config(model_dir).get("max_position_embeddings") or 8192)


def model_params(model_dir: str | Path) -> int:
    """Parameter count from the safetensors headers (no weights read); 0 if unknown."""
    total = 0
    for f in Path(model_dir).glob("model*.safetensors"):  # not optimizer.safetensors of a checkpoint
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        total += sum(prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def tokenizer_facts(model_dir: str | Path) -> tuple[set[str], set[str], int]:
    """(special tokens, plain vocabulary, vocab size) from tokenizer.json / tokenizer_config.json /
    config.json alone."""
    d = Path(model_dir)
    tok, tcfg = read_json_object(d / "tokenizer.json"), read_json_object(d / "tokenizer_config.json")
    specials = {t.get("content", "") for t in tok.get("added_tokens", []) if isinstance(t, dict)}
    specials |= {t.get("content", "") for t in tcfg.get("added_tokens_decoder", {}).values() if isinstance(t, dict)}
    vocab = (tok.get("model") or {}).get("vocab") or {}
    plain = {v if isinstance(v, str) else v[0] for v in vocab} - specials  # BPE/WordLevel dict, Unigram list
    size = int(text_config(d).get("vocab_size") or len(plain) + len(specials))
    return specials, plain, size


@dataclass(frozen=True)
class Shape:
    """A decoder's matrix sizes: enough to size its LoRA adapters and their disk without the weights."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool  # input and output embeddings are one matrix (Qwen3-4B)

    def dims(self, module: str) -> tuple[int, int]:
        """(in, out) features of a projection or embedding by its PEFT target name."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {"q_proj": (self.hidden, q), "k_proj": (self.hidden, kv), "v_proj": (self.hidden, kv),
                "o_proj": (q, self.hidden), "gate_proj": (self.hidden, self.intermediate),
                "up_proj": (self.hidden, self.intermediate), "down_proj": (self.intermediate, self.hidden),
                "embed_tokens": (self.vocab, self.hidden), "lm_head": (self.hidden, self.vocab)}[module]

    def lora_params(self, targets: tuple[str, ...], rank: int) -> int:
        """Parameters of a rank-r LoRA on these targets: r x (in + out) per matrix, per layer for the
        projections, once for the embeddings."""
        per_layer = sum(rank * sum(self.dims(t)) for t in targets if t.endswith("_proj"))
        once = sum(rank * sum(self.dims(t)) for t in targets if t in ("embed_tokens", "lm_head"))
        return self.layers * per_layer + once


def model_shape(model_dir: str | Path) -> Shape | None:
    """The Shape config.json describes (None if it lacks the sizes)."""
    c = text_config(model_dir)
    try:
        heads = int(c["num_attention_heads"])
        return Shape(int(c["num_hidden_layers"]), int(c["hidden_size"]), int(c["intermediate_size"]), heads,
                     int(c.get("num_key_value_heads") or heads),
                     int(c.get("head_dim") or int(c["hidden_size"]) // heads), int(c["vocab_size"]),
                     bool(c.get("tie_word_embeddings", False)))
    except (KeyError, TypeError, ValueError):
        return None
