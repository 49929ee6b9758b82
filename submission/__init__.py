"""ARC-AGI test-time training pipeline (Akyürek et al. 2024), packaged for offline Kaggle runs.

Layers, data flowing one way: task -> augmented prompts -> adapters -> candidates -> selection
-> submission. The core modules (grid, data, augment, text, ttt_data, prompts, vote, score,
submission_io) are numpy + standard library only; engines live in `submission.engines`.
"""

__version__ = "0.1.0"
