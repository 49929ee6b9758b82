"""See what the model sees: the exact prompt of a task's first test input under a preset's format,
and with --tokens the token ids and pieces the model's tokenizer makes of it (BOS included).

    python -m submission prompt --preset nvarc --challenges arc1-eval --task 00576224
    python -m submission prompt --preset auto --model MODEL_DIR --task 00576224 --tokens
"""

from __future__ import annotations

from typing import Any

from submission.arc.data import DataError, load_challenges
from submission.arc.formats import check_format_tokenizer
from submission.arc.text import TokenizerError
from submission.pipeline.presets import pick, preset_format


def load_tokenizer(model: str) -> Any:
    """The model folder's own tokenizer (local files only)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model, local_files_only=True, trust_remote_code=False)


def token_table(tokenizer: Any, text: str) -> str:
    """One line per token of `text` as the model receives it: position, id, piece."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    lines = [f"--- {len(ids)} tokens"]
    lines += [f"{i:6d} {t:8d}  {tokenizer.decode([t], skip_special_tokens=False)!r}" for i, t in enumerate(ids)]
    return "\n".join(lines)


def show_prompt(preset: str, challenges: str, task_id: str, model: str | None, tokens: bool) -> str:
    """The exact prompt text of `task_id`'s first test input (identity transform, demos in file
    order) under `preset`'s format; with `tokens`, followed by the tokenizer check and the token
    table of the model at `model`."""
    if tokens and not model:
        raise DataError("--tokens needs --model (the folder whose tokenizer to use)")
    try:
        name, _ = pick(preset, model)
    except ValueError as e:
        raise DataError(f"--preset: {e}") from None
    ts = load_challenges(challenges)
    if task_id not in ts.tasks:
        why = ts.invalid.get(task_id) or f"not in the file ({len(ts.ids)} tasks, e.g. {', '.join(ts.ids[:3])})"
        raise DataError(f"{challenges}: task {task_id!r}: {why}")
    task = ts.tasks[task_id]
    tokenizer = load_tokenizer(model) if model else None
    fmt = preset_format(name, getattr(tokenizer, "eos_token", None))
    text = fmt.prompt([(p.input, p.output) for p in task.train], task.test[0].input)
    if not tokens:
        return text
    try:
        found = check_format_tokenizer(tokenizer, fmt)
        check = f"ok: answers use token ids {list(found.allowed_ids)}, stop {list(found.stop_ids)}"
    except TokenizerError as e:
        check = f"FAILED: {e}"
    return f"{text}\n--- preset {name}, format {fmt.name}, tokenizer {model}: {check}\n{token_table(tokenizer, text)}"
