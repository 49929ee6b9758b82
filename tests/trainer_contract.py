"""The Trainer contract, checked in a fresh process (Unsloth patches transformers on import, so it
must not share a process with the other tests): python tests/trainer_contract.py NAME MODEL OUT.
Prints one JSON line of findings that tests/test_engines.py asserts on."""

import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from submission.arc.data import parse_task  # noqa: E402
from submission.arc.text import TextFormat  # noqa: E402
from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset  # noqa: E402
from submission.engines.api import TrainExample  # noqa: E402
from submission.engines.config import TrainConfig  # noqa: E402

from conftest import SMALL_TASKS  # noqa: E402

CFG = TrainConfig(lora_rank=8, lora_alpha=16, epochs=1, learning_rate=1e-2, batch_size=2)


def examples(tid: str) -> list[TrainExample]:
    task = parse_task(tid, SMALL_TASKS[tid])
    fmt = TextFormat(end_marker="</s>")
    return [TrainExample(e.text, e.loss_spans("all_but_first"))
            for e in build_ttt_dataset(task, TTTDataConfig(augmentations=2, max_examples=8), fmt)]


def main(name: str, model: str, out: str) -> dict:
    import torch
    from safetensors.torch import load_file

    from submission.engines.factory import make_trainer

    out = Path(out)
    trainer = make_trainer(name, model, CFG, "auto")
    base = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" not in n}
    results = {tid: trainer.train(examples(tid), out / tid, CFG, 0) for tid in SMALL_TASKS}
    base_same = all(torch.equal(p, base[n]) for n, p in trainer.model.named_parameters() if "lora_" not in n)
    # fresh LoRA per task: flip trained again after recolor, with seed 3, equals flip trained by a new trainer
    trainer.train(examples("flip"), out / "reused", CFG, 3)
    make_trainer(name, model, CFG, "auto").train(examples("flip"), out / "fresh", CFG, 3)
    a, b = (load_file(out / d / "adapter_model.safetensors") for d in ("reused", "fresh"))
    fresh = a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    small = trainer.train(examples("flip"), out / "small", replace(CFG, lora_rank=4), 0)  # the ladder's small_rank
    files = {tid: sorted(p.name for p in (out / tid).iterdir()) for tid in SMALL_TASKS}
    return {"trainer": trainer.name, "base_unchanged": base_same, "fresh_per_task": fresh,
            "steps": [r.steps for r in results.values()], "last_loss": [r.last_loss for r in results.values()],
            "small_rank": small.lora_rank, "files": files, "adapters": {t: r.adapter for t, r in results.items()}}


EMBED_CFG = replace(CFG, targets=("q_proj", "v_proj", "embed_tokens", "lm_head"), embedding_learning_rate=5e-3)


def embeddings(model: str, out: str) -> dict:
    """Unsloth with LoRA on embed_tokens / lm_head: what its get_peft_model made, what trains, what is saved, and
    whether a reused trainer starts each task fresh (the embedding LoRA reset too)."""
    import torch
    from safetensors.torch import load_file

    from submission.engines.factory import make_trainer

    out = Path(out)
    trainer = make_trainer("unsloth", model, EMBED_CFG, "auto")
    config = trainer.model.peft_config["default"]
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad
                 and ("lora_embedding_" in n or "lm_head.lora_" in n)]
    trainer.train(examples("recolor"), out / "first", EMBED_CFG, 0)
    trainer.train(examples("flip"), out / "reused", EMBED_CFG, 3)
    make_trainer("unsloth", model, EMBED_CFG, "auto").train(examples("flip"), out / "fresh", EMBED_CFG, 3)
    a, b = (load_file(out / d / "adapter_model.safetensors") for d in ("reused", "fresh"))
    saved = json.loads((out / "first" / "adapter_config.json").read_text())
    return {"modules_to_save": config.modules_to_save, "trainable_embedding_lora": len(trainable),
            "target_modules": sorted(saved["target_modules"]),
            "embedding_keys": sum("embed_tokens" in k or "lm_head" in k for k in a), "all_lora": all(
                "lora_" in k for k in a),
            "fresh_per_task": a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)}


if __name__ == "__main__":
    if sys.argv[1] == "unsloth-embeddings":
        print("CONTRACT " + json.dumps(embeddings(*sys.argv[2:4])))
    else:
        print("CONTRACT " + json.dumps(main(*sys.argv[1:4])))
