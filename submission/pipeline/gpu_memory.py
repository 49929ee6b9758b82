"""vLLM's memory on one GPU, planned from the model's shape, the LoRA rank and the card: weights, the
LoRA slots vLLM reserves up front (max_loras of them, each at max_lora_rank on every projection), and
what is left for the KV cache. `plan` prints it; a run on a GPU lowers --max-loras / --max-num-seqs
to what leaves the KV cache room for a batch (never raises what the user set).

At NVARC's rank 256, Qwen3-4B on an L4 (22.5 GiB): 8 GB of weights, 2 GB of overhead and 8 slots of
~1.06 GB leave ~1.9 GB of KV cache at vLLM's 0.85 share, ~13k tokens: four of NVARC's ~3k-token
prompts. Six slots leave ~4 GB (27k tokens, nine sequences).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from submission.engines.config import LORA_TARGETS, vllm_rank
from submission.engines.model_folder import Shape, model_params, model_shape

if TYPE_CHECKING:
    from submission.pipeline.budget import TaskPlan
    from submission.pipeline.config import Settings
    from submission.pipeline.context import Run

GIB = 1 << 30
CARD_BYTES = {"l4x4": 22.5 * GIB, "t4x2": 15.0 * GIB, "h100": 79.6 * GIB}  # per card, as nvidia-smi reports
OVERHEAD_BYTES = 2 * GIB  # CUDA context, activations of vLLM's profiling batch, CUDA graphs (an estimate)
DTYPE_BYTES = 2  # bf16 (fp16 on a T4): weights, KV cache and vLLM's LoRA slots
MIN_SEQS = 8  # a batch narrower than this wastes the GPU more than a LoRA swap costs


@dataclass(frozen=True)
class GpuPlan:
    card_bytes: float
    utilization: float
    weights: float
    slot: float  # one LoRA slot
    kv_per_token: float
    seq_tokens: int  # a typical prompt + answer
    max_model_len: int
    max_loras: int
    max_num_seqs: int

    @property
    def kv(self) -> float:
        return self.utilization * self.card_bytes - OVERHEAD_BYTES - self.weights - self.max_loras * self.slot

    @property
    def kv_tokens(self) -> int:
        return max(0, int(self.kv // self.kv_per_token))

    @property
    def fits(self) -> bool:
        """The KV cache holds one longest sequence and a batch of MIN_SEQS typical ones."""
        return self.kv_tokens >= max(self.max_model_len, MIN_SEQS * self.seq_tokens)

    def describe(self, card: str) -> str:
        g = 1e9
        head = (f"GPU memory per {card} card ({self.card_bytes / GIB:.1f} GiB x {self.utilization:.2f}): weights "
                f"{self.weights / g:.1f} GB, {self.max_loras} LoRA slots x {self.slot / g:.2f} GB, overhead "
                f"{OVERHEAD_BYTES / g:.1f} GB, KV cache {max(0.0, self.kv) / g:.1f} GB = {self.kv_tokens:,} tokens "
                f"-> --max-loras {self.max_loras} --max-num-seqs {self.max_num_seqs}")
        if self.fits:
            return head
        return head + (f"\n  WARNING: the KV cache holds under one {self.max_model_len}-token sequence plus {MIN_SEQS} "
                       f"of ~{self.seq_tokens} tokens: lower --lora-rank or --max-model-len, or use a larger card")


def size_gpu(shape: Shape, params: float, rank: int, card_bytes: float, utilization: float, max_model_len: int,
             seq_tokens: int, max_loras: int, max_num_seqs: int) -> GpuPlan:
    """The most LoRA slots (up to max_loras) that leave a KV cache for a batch, and the sequences it holds
    (up to max_num_seqs)."""
    slot = shape.lora_params(LORA_TARGETS, vllm_rank(rank)) * DTYPE_BYTES  # vLLM reserves every projection
    kv_tok = 2 * shape.layers * shape.kv_heads * shape.head_dim * DTYPE_BYTES
    seq_tokens = max(1, min(seq_tokens, max_model_len))

    def plan(loras: int) -> GpuPlan:
        p = GpuPlan(card_bytes, utilization, params * DTYPE_BYTES, slot, kv_tok, seq_tokens, max_model_len,
                    loras, max_num_seqs)
        return GpuPlan(**{**vars(p), "max_num_seqs": max(1, min(max_num_seqs, p.kv_tokens // seq_tokens))})

    for loras in range(max(1, max_loras), 0, -1):
        if (p := plan(loras)).fits:
            return p
    return plan(1)


# -- the run's side: the cards nvidia-smi shows, the settings lowered to fit them -------------------
def vllm_note(engine: str) -> str:
    """What the installed vLLM offers (streaming, the search's log-probs, batch invariance), read without
    importing it; '' with --engine hf or no vLLM."""
    if engine == "hf":
        return ""
    from submission.engines.gen_vllm import vllm_features

    features = vllm_features()
    return features.describe() if features else ""


def card_bytes(gpus: list[str]) -> float:
    """Memory of the smallest of these GPUs, from nvidia-smi (0: unknown)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
        mib = {i.strip(): float(m) for i, m in (line.split(",") for line in out.splitlines() if "," in line)}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0.0
    return min((mib[g] for g in gpus if g in mib), default=0.0) * (1 << 20)


def fit_gpu_memory(run: Run, gpus: list[str]) -> None:
    """On GPUs with vLLM: lower --max-loras / --max-num-seqs to what leaves the KV cache room for a batch."""
    shape = model_shape(run.cfg.model)
    if not gpus or run.cfg.engine == "hf" or not shape or not (card := card_bytes(gpus)):
        return
    g = gpu_plan(run.settings, shape, model_params(run.cfg.model), list(run.plans.values()), card)
    print(g.describe(f"{card / (1 << 30):.0f} GiB"))
    gen = run.settings.gen
    if (g.max_loras, g.max_num_seqs) != (gen.max_loras, gen.max_num_seqs):
        run.settings = replace(run.settings, gen=replace(gen, max_loras=g.max_loras, max_num_seqs=g.max_num_seqs))


def gpu_plan(settings: Settings, shape, params: float, plans: list[TaskPlan], card_bytes: float) -> GpuPlan:
    """vLLM's memory on one card for this run's rank, context and typical prompt + answer."""
    gen = settings.gen
    seq = sum(p.prompt_tokens + p.answer_tokens for p in plans) // max(1, sum(p.prompts for p in plans))
    return size_gpu(shape, params, settings.train.lora_rank, card_bytes, gen.gpu_memory_utilization,
                    gen.max_model_len, seq, gen.max_loras, gen.max_num_seqs)
