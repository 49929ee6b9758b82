"""A tiny random causal LM (Llama, or Qwen2/Qwen3/Mistral) with a character-level tokenizer covering the
grid format, written in standard HF format (safetensors), no downloads: the test fixture
(`python -m submission tiny-model OUT`) and the starting point of the trained default model
(`python -m submission finetune`, see models/arc-tiny/finetune.json).

With `preset=` the tokenizer has the structure of a public checkpoint's family instead (stand-ins
for tests; see submission/pipeline/presets.py): nvarc (Qwen3, 16-token vocabulary, ChatML template),
architects (Mistral, single-character vocabulary), marc (Llama, a Llama-3-like byte-level BPE that
merges digit runs, Llama-3 chat template), induction (Llama, printable-ASCII characters, Llama-3 chat
template: the untrained start of the BARC induction stand-in, see submission/pipeline/induction_standin.py).
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


# The pre-tokenizer regexes of the families (tokenizer.json "Split" patterns): Qwen isolates every
# digit (\p{N}); Llama-3 groups up to three (\p{N}{1,3}), which is why compact text fails there.
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPLIT = QWEN_SPLIT.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
CHATML_TEMPLATE = ("{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
                   "'<|im_end|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
                   "{%- endif %}")  # NVARC's ARChitects/qwen3_configs/chat_template.j2: no newline after <|im_end|>
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                   "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
                   "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                   "{{ content }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")  # Meta-Llama-3-Instruct's
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                   "<|finetune_right_pad_id|>"]


def _byte_level(tok, split: str, bos: str | None = None, bos_id: int | None = None) -> None:
    """Regex split + GPT-2 byte mapping (newline is 'Ċ', space 'Ġ'), as the three families do."""
    from tokenizers import Regex, decoders, pre_tokenizers, processors

    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    level = processors.ByteLevel(trim_offsets=False)
    tok.post_processor = level if bos is None else processors.Sequence(
        [level, processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                              special_tokens=[(bos, bos_id)])])


def nvarc_tokenizer():
    """NVARC's 16 tokens (ARChitects/qwen3_configs/tokenizer.json): digits, 'Ċ', 'user', 'assistant',
    then <|endoftext|> (pad), <|im_start|>, <|im_end|> (eos); no BOS."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {**{d: i for i, d in enumerate("0123456789")}, "Ċ": 10, "user": 11, "assistant": 12}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    _byte_level(tok, QWEN_SPLIT)
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                   chat_template=CHATML_TEMPLATE, padding_side="left")


def architects_tokenizer():
    """The ARChitects' reduced vocabulary (finetune_NemoReArc1200.py keep_tok: letters, digits,
    '!?.:,;*+/-=' and newline, <s>/</s> kept, unk removed), a BPE without merges prepending <s>."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    chars = [*"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!?.:,;*+/-=", "Ċ"]
    vocab = {t: i for i, t in enumerate(["<s>", "</s>", *chars])}
    tok = Tokenizer(models.BPE(vocab, []))
    _byte_level(tok, LLAMA3_SPLIT, "<s>", 0)
    tok.add_special_tokens(["<s>", "</s>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="</s>",
                                   padding_side="left")


def marc_tokenizer():
    """A Llama-3-like byte-level BPE: the 256 byte symbols, merges for digit pairs and triples of a
    digit (so '0000' is two tokens, as in Llama-3) and for the numpy-grid brackets, Llama-3's special
    tokens, <|begin_of_text|> prepended, the Llama-3 chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    merges = [(a, b) for a in "0123456789" for b in "0123456789"] + [(d + d, d) for d in "0123456789"]
    merges += [("[", "["), ("]", "]"), ("]", "Ċ"), ("Ġ", "["), ("Ġ", "-"), ("Ġ-", ">"), ("Ċ", "Ċ")]
    vocab = {t: i for i, t in enumerate(dict.fromkeys([*sorted(pre_tokenizers.ByteLevel.alphabet()),
                                                       *(a + b for a, b in merges)]))}
    n = len(vocab)
    vocab.update({t: n + i for i, t in enumerate(LLAMA3_SPECIALS)})
    tok = Tokenizer(models.BPE(vocab, merges))
    _byte_level(tok, LLAMA3_SPLIT, "<|begin_of_text|>", vocab["<|begin_of_text|>"])
    tok.add_special_tokens(LLAMA3_SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|finetune_right_pad_id|>", chat_template=LLAMA3_TEMPLATE,
                                   padding_side="left")


def induction_tokenizer():
    """A stand-in for BARC's Llama-3.1 induction model: one token per printable ASCII character and newline
    (prompts in colour words, answers in Python), Llama-3's special tokens, the Llama-3 chat template. The
    template writes <|begin_of_text|>, so nothing is prepended: tokenising the templated prompt gives the same
    ids in HF and vLLM."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = ["\n", *(chr(c) for c in range(32, 127))]
    vocab = {t: i for i, t in enumerate(["<unk>", *chars, *LLAMA3_SPECIALS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(["<unk>", *LLAMA3_SPECIALS])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|finetune_right_pad_id|>", unk_token="<unk>",
                                   chat_template=LLAMA3_TEMPLATE, padding_side="left")


FAMILY_TOKENIZERS = {"nvarc": nvarc_tokenizer, "architects": architects_tokenizer, "marc": marc_tokenizer,
                     "induction": induction_tokenizer}


ARCHS = ("llama", "qwen2", "qwen3", "mistral")
PRESET_ARCH = {"compact": "llama", "nvarc": "qwen3", "architects": "mistral", "marc": "llama", "induction": "llama"}


def write_tiny_model(out: str | Path, hidden: int = 128, layers: int = 2, heads: int = 4, seed: int = 0,
                     max_positions: int = 16384, arch: str | None = None,
                     init_std: float | None = 0.08, preset: str | None = None, tie: bool | None = None) -> Path:
    """Write a random tiny causal LM + tokenizer to `out` (safetensors) and return the path.
    arch: llama | qwen2 | qwen3 | mistral (head_dim = hidden/heads must be >= 32 for vLLM-CPU);
    default llama, or the family's own with a preset.
    init_std: matrices ~ N(0, init_std) (a little larger than HF's init so greedy outputs of a random
    model vary between prompts and adapters); None keeps HF's init (training from scratch).
    preset: compact (the default char tokenizer) | nvarc | architects | marc: a tokenizer shaped like
    that family's (tests of the formats and presets); the nvarc stand-in ties its input and output embeddings,
    as Qwen3-4B does (`tie` overrides: one matrix for input and output embeddings)."""
    import torch
    import transformers

    out = Path(out)
    if preset is not None and preset not in PRESET_ARCH:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESET_ARCH)}")
    arch = arch or PRESET_ARCH.get(preset or "compact")
    tokenizer = build_tokenizer() if preset in (None, "compact") else FAMILY_TOKENIZERS[preset]()
    config_cls, model_cls = {
        "llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
        "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"), "mistral": ("MistralConfig", "MistralForCausalLM"),
    }[arch]
    config = getattr(transformers, config_cls)(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads // 2, max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=preset == "nvarc" if tie is None else tie, dtype="float32",
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
    if getattr(tokenizer, "chat_template", None):
        template_into_config(out)
    return out


def template_into_config(folder: Path) -> None:
    """Move chat_template.jinja into tokenizer_config.json, where the published checkpoints keep it."""
    import json

    jinja, cfg_path = folder / "chat_template.jinja", folder / "tokenizer_config.json"
    if jinja.is_file():
        cfg = json.loads(cfg_path.read_text())
        cfg["chat_template"] = jinja.read_text()
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
        jinja.unlink()


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
