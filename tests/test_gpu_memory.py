"""vLLM's memory per card: LoRA slots and sequences sized so the KV cache holds a batch, never above what
the user set, with a warning where nothing fits."""

from submission.pipeline.gpu_memory import CARD_BYTES, GIB, MIN_SEQS, OVERHEAD_BYTES, size_gpu
from submission.pipeline.presets import PRESETS

NVARC = PRESETS["nvarc"].shape  # Qwen3-4B, rank 256 in NVARC's recipe


def test_nvarc_on_an_l4_gets_fewer_slots_than_eight_and_a_kv_cache_that_holds_a_batch():
    eight = size_gpu(NVARC, 4.0e9, 256, CARD_BYTES["l4x4"], 0.85, 8192, 3000, max_loras=8, max_num_seqs=64)
    slot = 36 * 256 * (2 * (2560 + 4096) + 2 * (2560 + 1024) + 3 * (2560 + 9728)) * 2  # bf16, every projection
    assert eight.slot == slot and eight.kv_per_token == 2 * 36 * 8 * 128 * 2
    # eight slots would leave room for fewer than MIN_SEQS typical sequences: the sizing steps down until a batch fits
    assert 0.85 * CARD_BYTES["l4x4"] - OVERHEAD_BYTES - 8e9 - 8 * slot < MIN_SEQS * 3000 * eight.kv_per_token
    assert 1 <= eight.max_loras < 8 and eight.fits
    assert eight.kv == 0.85 * CARD_BYTES["l4x4"] - OVERHEAD_BYTES - 8e9 - eight.max_loras * slot
    assert eight.max_num_seqs == min(64, eight.kv_tokens // 3000) and eight.max_num_seqs >= 8
    assert "WARNING" not in eight.describe("L4")


def test_a_big_card_keeps_what_the_user_set():
    h100 = size_gpu(NVARC, 4.0e9, 256, CARD_BYTES["h100"], 0.85, 8192, 3000, max_loras=8, max_num_seqs=64)
    assert (h100.max_loras, h100.max_num_seqs) == (8, 64) and h100.fits
    few = size_gpu(NVARC, 4.0e9, 256, CARD_BYTES["h100"], 0.85, 8192, 3000, max_loras=2, max_num_seqs=16)
    assert (few.max_loras, few.max_num_seqs) == (2, 16)  # never raised


def test_an_8b_model_in_bf16_on_a_t4_is_reported_as_not_fitting():
    t4 = size_gpu(PRESETS["marc"].shape, 8.0e9, 128, CARD_BYTES["t4x2"], 0.85, 8192, 3000, 8, 64)
    assert not t4.fits and t4.max_loras == 1 and t4.kv_tokens == 0
    assert "WARNING" in t4.describe("T4") and f"{CARD_BYTES['t4x2'] / GIB:.1f} GiB" in t4.describe("T4")
