"""The run: config, stages (TTT in a child process, batched generation), selection, outputs."""

from __future__ import annotations

import argparse
import sys


def cmd_run(args: argparse.Namespace) -> int:
    from submission.engines.config import GenerateConfig, TrainConfig
    from submission.pipeline.config import RunConfig, from_args, validate
    from submission.pipeline.run import plan, run
    from submission.ttt_data import TTTDataConfig

    model_defaults(args)
    configs = [from_args(c, args) for c in (RunConfig, TTTDataConfig, TrainConfig, GenerateConfig)]
    configs[3].seed = configs[0].seed
    problems = validate(*configs)
    if problems:
        print("error: bad arguments:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if configs[0].challenges == "kaggle":
        from submission.pipeline.kaggle import resolve

        configs[0] = resolve(configs[0])
    return (plan if args.command == "plan" else run)(*configs)


def model_defaults(args: argparse.Namespace) -> None:
    """Settings a model folder recommends for itself (MODEL/arc_ttt.json, {"run_defaults": {flag:
    value}}, e.g. a tiny model's TTT learning rate), applied to the flags the user did not give."""
    import json
    from pathlib import Path

    from submission.data import DataError

    if args.model is None:
        from submission.engines.tiny_model import default_model

        args.model = str(default_model())
    path = Path(args.model) / "arc_ttt.json"
    if not path.is_file():
        return
    try:
        defaults = json.loads(path.read_text())["run_defaults"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: expected {{\"run_defaults\": {{flag: value}}}} ({type(e).__name__}: {e})") from None
    applied = {}
    for key, value in defaults.items():
        if not hasattr(args, key):
            raise DataError(f"{path}: run_defaults.{key} is not a setting of `run`")
        if getattr(args, key) is None:
            setattr(args, key, tuple(value) if isinstance(value, list) else value)
            applied[key] = value
    if applied:
        print(f"settings recommended by {path} (flags override them): "
              + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in applied.items()))


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from submission.engines.tiny_model import write_tiny_model

    print(write_tiny_model(args.out, seed=args.seed, arch=args.arch))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from submission.engines.finetune import CHOICES, FinetuneConfig, finetune
    from submission.pipeline.config import from_args

    cfg = from_args(FinetuneConfig, args)
    bad = [f"--{k.replace('_', '-')} must be one of {', '.join(v)}" for k, v in CHOICES.items() if getattr(cfg, k) not in v]
    bad += [f"--{k.replace('_', '-')} must be >= 1" for k in ("steps", "batch_tokens", "checkpoint_every", "max_tokens")
            if getattr(cfg, k) < 1]
    if bad:
        print("error: bad arguments:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 2
    stats = finetune(cfg)
    print(f"wrote {cfg.out} ({stats['parameters'] / 1e6:.2f} M parameters, {stats['steps']} steps, "
          f"final loss {stats['final_loss']:.4f}); use it with: python -m submission run --model {cfg.out}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from submission.pipeline.ablate import ablate, format_table, run_ids

    scores = ablate(args.run_dir, args.solutions)
    _, summary = run_ids(__import__("pathlib").Path(args.run_dir))
    print(format_table(scores, summary["config"]["run"]["select"], summary.get("score")))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from submission.pipeline.report import write_report

    print(write_report(args.run_dir, args.solutions))
    return 0


def register_commands(sub: argparse._SubParsersAction) -> None:
    from submission.pipeline.config import STAGES, SKIP, RunConfig, add_dataclass_args

    for name, text in (("run", "the main job: TTT + batched inference + vote -> submission.json"),
                       ("plan", "print the per-task plan and predicted wall time (loads no model)")):
        p = sub.add_parser(name, help=text)
        add_dataclass_args(p, RunConfig)
        for cls in STAGES:
            add_dataclass_args(p, cls, SKIP)
        p.set_defaults(func=cmd_run)

    from submission.engines.finetune import FinetuneConfig

    p = sub.add_parser("finetune", help="stage 1: fine-tune (or train from scratch) a model on ARC-style tasks")
    add_dataclass_args(p, FinetuneConfig, {"trainer", "loss_mode"})
    p.add_argument("--trainer", default=None, help="auto | torch | peft | unsloth (default: auto)")
    p.add_argument("--loss-mode", default=None, help="all | all_but_first | query (default: all_but_first)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("ablate", help="score a finished run under every selection rule (no model needed)")
    p.add_argument("run_dir")
    p.add_argument("--solutions", default=None, help="default: the run's own solutions")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("report", help="write RUN_DIR/report.html: grids, attempts, truth, candidates")
    p.add_argument("run_dir")
    p.add_argument("--solutions", default=None, help="default: the run's own solutions")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tiny-model", help="write a tiny random Llama + char tokenizer (test fixture)")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", default="llama", choices=("llama", "qwen2", "qwen3", "mistral"))
    p.set_defaults(func=cmd_tiny_model)
