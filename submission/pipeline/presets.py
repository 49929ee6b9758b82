"""Presets: run a public ARC checkpoint the way it was trained. A preset is a text format (see
submission/arc/formats.py), a TTT recipe and inference defaults, as plain dicts keyed by the existing
config field names (TTTDataConfig, TrainConfig, GenerateConfig, RunConfig) so the config resolve
step can merge them under the user's flags. Pure data + a detector; stdlib only.

    from submission.pipeline.presets import PRESETS, detect
    name = detect("models/qwen3_4b_grids15_sft139") or "compact"   # 'nvarc'
    PRESETS[name].settings()   # {'lora_rank': 256, 'use_rslora': True, ...}

Sources (read at these commits; "file:line" below points into them):
  NVARC       github 1ytic/NVARC 846d019, ARC-AGI1/002_ivan_arc1.ipynb; "cell N line L" counts lines in
              the notebook cell (cell 2 writes arc_loader.py, 3 arc_decoder.py, 4 arc_solver.py)
  ARChitects  github da-fr/Product-of-Experts-ARC-Paper 82619f6 (the paper's TTT + PoE code; its format
              is the one of da-fr/arc-prize-2024), evaluate_NemoReArc1200_on_ARCeval_16x_dfs0.090_with_ttt.py
  MARC        github ekinakyurek/marc 95b3348: README.md (the TTT and predict commands), test_time_train.py,
              configs/ttt/8B_lora_single_device.yaml, ttt/preprocess.py, inference/preprocess.py, predict.py

Embeddings: NVARC and the ARChitects also train `embed_tokens` and `lm_head`; their Unsloth turned them into
`modules_to_save` (full trainable copies, at embedding_learning_rate 1e-5 for the ARChitects), which vLLM refuses.
Here they are LoRA (PEFT's lora_embedding_A/B and an lm_head lora_A/B), which vLLM serves beside the other tasks'
adapters. With NVARC's 16 tokens a rank-256 LoRA on a 16-row matrix is full rank: it expresses any update the
full copy could. Qwen3-4B ties the two matrices: each side gets its own LoRA (the tests serve that on a tied
stand-in). The ARChitects' Mistral is served by vLLM as Llama (engines/gen_vllm.served_as).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from submission.engines.model_folder import Shape

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
EMBEDDINGS = (*PROJECTIONS, "embed_tokens", "lm_head")


@dataclass(frozen=True)
class Preset:
    name: str
    format: str  # a name in submission.arc.formats.FORMATS
    recipe: dict[str, Any]  # TTT: TTTDataConfig and TrainConfig fields
    inference: dict[str, Any]  # RunConfig and GenerateConfig fields
    unmapped: dict[str, Any] = field(default_factory=dict)  # published settings no config field holds yet
    # the checkpoint's parameter count, so `plan --preset X` without the weights scales speeds to its size
    # (0: read from the model folder, as for this repository's own models)
    params: float = 0.0
    shape: Shape | None = None  # the checkpoint's matrix sizes: adapter disk and LoRA memory planned without it

    def settings(self) -> dict[str, Any]:
        """Recipe and inference defaults as one {config field: value} dict (a fresh copy)."""
        return {**self.recipe, **self.inference}


COMPACT = Preset("compact", "compact", recipe={
    # this repository's own defaults (ttt_data.TTTDataConfig, engines/config.TrainConfig), which follow
    # MARC's paper numbers; tests/test_presets.py checks they still equal the dataclass defaults
    "augmentations": 16, "max_examples": 64, "max_tokens": 8192, "color_policy": "keep0",
    "permute_demos": True, "loss_mode": "all_but_first",
    "lora_rank": 64, "lora_alpha": 16, "use_rslora": False, "targets": PROJECTIONS, "learning_rate": 1e-4,
    "epochs": 2, "batch_size": 2, "grad_accum": 1, "warmup_ratio": 0.1, "weight_decay": 0.0,
}, inference={
    "transforms": 8, "permutations": 2, "select": "vote", "score_augmentations": 8, "score_candidates": 4,
    "temperature": 0.0,
})

NVARC = Preset("nvarc", "nvarc", recipe={
    "augmentations": 32,  # cell 4 line 328 augment(n=16): 8 D8 x 16 colour maps = 128 copies of the demos
    "max_examples": 128,  # (cell 2 lines 249-255); here ~32 per leave-one-out task, 128 in all
    "max_tokens": 8192,  # cell 4 line 263 max_seq_length = 8192 (cut_to_len drops demos beyond it)
    "color_policy": "all",  # cell 2 line 34 permute_rnd_all_: np.random.permutation(10), colour 0 included
    "permute_demos": True,  # cell 2 line 254 shuffle_ex()
    "loss_mode": "all",  # cell 4 line 91: the collator puts loss on every assistant turn (j % 2 == 1)
    "lora_rank": 256,  # cell 4 line 226 r=256
    "lora_alpha": 32,  # cell 4 line 228
    "use_rslora": True,  # cell 4 line 233
    "targets": EMBEDDINGS,  # cell 4 line 227; embed_tokens, lm_head as LoRA (see the module docstring)
    "learning_rate": 5e-5,  # cell 4 line 245
    "epochs": 1,  # cell 4 line 241 num_train_epochs=1
    "batch_size": 1,  # cell 4 line 239 per_device_train_batch_size=1
    "grad_accum": 1,  # cell 4 line 240
    "warmup_ratio": 0.1,  # cell 4 line 243, cosine decay (line 248) as here
    "weight_decay": 0.0,  # cell 4 line 247
}, inference={
    "transforms": 16,  # cell 4 line 363 augment(n=2): 8 D8 x 2 colour maps per test input
    "permutations": 1,  # each of those 16 has its own shuffled demo order (shuffle_ex), no repeats
    "select": "nvarc",  # cell 3 line 30 getter_kgmon: times found + mean log-prob under augmentations (cell 3
    # line 61 default): vote.py's nvarc rule
    "score_augmentations": 8,  # cell 4 line 444 augment() with n=1: the 8 D8, each with a colour map
    "score_candidates": 8,  # NVARC scores every DFS candidate; 8 bounds the cost here
    "temperature": 0.0,
    "search": "dfs",  # cell 4: a batched DFS over the answer tokens
    "min_prob": 0.2,  # cell 4 line 292 max_score = -log(0.2): DFS keeps answers with probability >= 0.2
}, params=4.0e9, shape=Shape(36, 2560, 9728, 32, 8, 128, 16, True))  # Qwen3-4B's config.json; NVARC's 16 tokens

ARCHITECTS = Preset("architects", "architects", recipe={
    "augmentations": 16,  # line 86-87 augment(n=8, tp='all', rt='all', perm, shfl_ex): 8 D8 x 8 = 64
    "max_examples": 64,  # copies of the demos per task; here 16 per leave-one-out task, 64 in all
    "max_tokens": 8192,  # line 52 fmt_opts max_tokens
    "color_policy": "all",  # arc_loader.py line 355 augment_keys(keep_bg=False): all 10 colours permuted
    "permute_demos": True,  # line 86 shfl_ex=True
    "loss_mode": "all_but_first",  # line 103 InputMaskingDataCollator(mask_first_n_examples=1)
    "lora_rank": 32,  # line 75 r=32
    "lora_alpha": 16,  # line 76
    "use_rslora": True,  # line 81
    "targets": EMBEDDINGS,  # lines 70-71; embed_tokens, lm_head as LoRA (see the module docstring)
    "learning_rate": 1e-4,  # line 110
    "embedding_learning_rate": 1e-5,  # line 111, for embed_tokens / lm_head
    "epochs": 1,  # line 109
    "batch_size": 1,  # line 106
    "grad_accum": 1,  # line 107
    "warmup_ratio": 0.5,  # line 108 warmup_steps=32, of 64 steps (64 examples, batch 1, 1 epoch)
    "weight_decay": 0.0,  # line 116, cosine decay (line 117) as here
}, inference={
    "transforms": 16,  # lines 131-132 augment(n=2, tp='all', rt='all', perm, shfl_ex): 8 D8 x 2 per test input
    "permutations": 1,  # each of the 16 has its own demo order (shfl_ex)
    "select": "poe",  # selection.py line 48 EvalTool(sorting_algo='mul_aug_prob'), line 34: sum of log-probs
    "score_augmentations": 16,  # line 146 aug_score_opts=dict(n=2, tp='all', rt='all', ...): 16 augmentations
    "score_candidates": 8,  # inference_tools.py line 182 scores every DFS candidate; 8 bounds the cost here
    "temperature": 0.0,
    "search": "dfs",  # line 145: inference by depth-first search over answers
    "min_prob": 0.09,  # line 145: DFS keeps answers with probability >= 0.09
}, unmapped={
    "optim": "adamw_8bit",  # line 115
}, params=8.0e9, shape=Shape(40, 4096, 16384, 32, 8, 128, 77, False))  # Mistral-NeMo-Minitron-8B, ~77 tokens

MARC = Preset("marc", "marc", recipe={
    "augmentations": 23,  # ttt/preprocess.py line 28 get_augmenters (test_time_train.py line 237): 23 geometric
    # and size augmenters per leave-one-out task...
    "extra_augment_share": 0.74,  # ...17 of them not D8 (4 reflect-concatenate, translate, 3 size, 6 D8 + x2
    # chains, 3 repeat; ttt/preprocess.py lines 36-91): submission/arc/ttt/augment.py makes those
    "max_examples": 250,  # test_time_train.py line 297 Nmax=250
    "max_tokens": 8192,  # ttt/preprocess.py line 174
    "color_policy": "keep0",  # arclib/augmenters.py line 137 PermuteColors: colours - {0}
    "permute_demos": True,  # ttt/preprocess.py line 154 PermuteExamples on every augmented task
    "loss_mode": "all_but_first",  # configs/ttt/8B_lora_single_device.yaml line 56 unmask_outputs: outputs
    # after the first demonstration, and the answer
    "lora_rank": 128,  # README.md line 67 (the TTT command)
    "lora_alpha": 16,  # README.md line 68
    "use_rslora": False,  # torchtune's LoRA: alpha / rank
    "targets": ("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"),  # yaml lines 22-23 (attention q, v
    # + MLP); README.md line 69 lora_to_output=False
    "learning_rate": 5e-5,  # README.md line 66
    "epochs": 2,  # README.md line 65
    "batch_size": 2,  # README.md line 64
    "grad_accum": 1,  # test_time_train.py line 119
    "warmup_ratio": 0.1,  # test_time_train.py line 265 num_warmup_steps = total_steps // 10, cosine
    "weight_decay": 0.01,  # configs/ttt/8B_lora_single_device.yaml line 66
}, inference={
    "transforms": 8,  # inference/preprocess.py line 46: identity + transpose, 2 flips, rot90, rot180 -- a
    # subset of D8 that the first 8 transforms here cover
    "permutations": 2,  # predict.py line 98 --permute_n 2 (inference/preprocess.py line 17)
    "select": "marc",  # predict.py line 346 vote(): MARC's own vote (arclib/voting.py line 72; vote.marc_vote)
    "score_augmentations": 0,  # MARC votes; it does not score candidates
    "score_candidates": 0,
    "temperature": 0.0,  # README.md line 107 temperature=0
}, unmapped={
    "include_n": (1,),  # predict.py line 91: prompts leave one demo out
}, params=8.0e9, shape=Shape(32, 4096, 14336, 32, 8, 128, 128256, False))  # Llama-3-8B's config.json

PRESETS: dict[str, Preset] = {p.name: p for p in (COMPACT, NVARC, ARCHITECTS, MARC)}


def preset_settings(name: str) -> dict[str, Any]:
    """{config field: value} of the preset `name`; ValueError names the choices."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name].settings()


ARCHITECTS_CHARS = set("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjklmnpqrstuvwxyz+/-=")  # preprompt + reply_beg
LLAMA3_MARKERS = {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}


def detect(model_dir: str | Path) -> str | None:
    """The preset whose family `model_dir` belongs to, from its tokenizer alone: 'nvarc' (ChatML tokens,
    a vocabulary of at most 64), 'marc' (Llama-3 chat tokens), 'architects' (a small single-character
    vocabulary holding the ARChitects' preprompt letters), 'compact' (this repository's char models),
    or None (unknown: the caller keeps compact and lets the tokenizer check decide)."""
    from submission.engines.model_folder import tokenizer_facts

    specials, plain, size = tokenizer_facts(model_dir)
    if {"<|im_start|>", "<|im_end|>"} <= specials and size <= 64:
        return "nvarc"
    if LLAMA3_MARKERS <= specials:
        return "marc"
    if plain and len(plain) <= 512 and all(len(t) == 1 for t in plain):
        if ARCHITECTS_CHARS <= plain:
            return "architects"
        if set("0123456789IO") <= plain and plain & {"\n", "Ċ"}:
            return "compact"
    return None


DETECT = "auto"  # the one spelling of "find the preset from the model folder" (--preset's default)


def pick(name: str | None, model: str | None) -> tuple[str, str]:
    """(preset, why): a named preset wins; DETECT (or nothing) looks at the model folder's tokenizer files,
    and falls back to compact when they match no family. ValueError names the choices."""
    if name and name != DETECT:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose {DETECT} or one of {', '.join(PRESETS)}")
        return name, "--preset"
    found = detect(model) if model else None
    return (found, f"detected in {model}") if found else ("compact", "default")


def preset_format(name: str, eos: str | None):
    """The text format of preset `name`, ending answers with the tokenizer's `eos`."""
    from submission.arc.formats import make_format

    return make_format(PRESETS[name].format, eos=eos)
