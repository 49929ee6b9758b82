"""Each subcommand's wiring: its flags and the function it runs. Heavy modules are imported inside the
commands that need them, so --help, validate and score stay instant and work without torch."""

from __future__ import annotations

import argparse

from submission.pipeline.presets import DETECT


def cmd_run(args: argparse.Namespace) -> int:
    from submission.cli.args import given
    from submission.pipeline.config import STAGES, resolve
    from submission.pipeline.run import run
    from submission.pipeline.start import plan

    settings = resolve(given(args, STAGES))
    if args.command == "doctor":
        from submission.pipeline.doctor import doctor

        return doctor(settings)
    print(f"preset {settings.run.preset} ({settings.preset_source})")
    if settings.applied:
        print(f"settings recommended by {settings.run.model}/arc_ttt.json (flags override them): "
              + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.applied.items()))
    return (plan if args.command == "plan" else run)(settings)


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from submission.engines.tiny_model import write_tiny_model

    if args.preset == "induction":  # trained, not random: a stand-in for BARC's induction model
        from submission.pipeline.induction_standin import build_induction_standin

        print(build_induction_standin(args.out, seed=args.seed))
        return 0
    print(write_tiny_model(args.out, seed=args.seed, arch=args.arch, preset=args.preset))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from submission.arc.data import DataError
    from submission.cli.args import given
    from submission.pipeline.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(**given(args, (FinetuneConfig,)))
    if problems := cfg.problems():
        raise DataError("bad arguments:\n  " + "\n  ".join(problems))
    stats = finetune(cfg)
    print(f"wrote {cfg.out} ({stats['parameters'] / 1e6:.2f} M parameters, {stats['steps']} steps, "
          f"final loss {stats['final_loss']:.4f}); use it with: python -m submission run --model {cfg.out}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from submission.pipeline.ablate import ablate, ablate_programs, format_programs, format_table, run_ids

    scores = ablate(args.run_dir, args.solutions)
    _, summary = run_ids(__import__("pathlib").Path(args.run_dir))
    policy = summary["config"]["run"].get("program_policy", "off")
    print(f"each selection rule, programs merged by the run's --program-policy {policy}:")
    print(format_table(scores, summary["config"]["run"]["select"], summary.get("score")))
    print(format_programs(ablate_programs(args.run_dir, args.solutions), policy,
                          (summary.get("programs") or {}).get("searched", 0), summary.get("score")))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from submission.pipeline.report import write_report

    print(write_report(args.run_dir, args.solutions))
    return 0


def register_commands(sub: argparse._SubParsersAction) -> None:
    from submission.cli.args import add_config_args, add_run_args
    from submission.pipeline.finetune import FinetuneConfig

    for name, text in (("run", "the main job: TTT + batched inference + vote -> submission.json"),
                       ("plan", "print the per-task plan and predicted wall time (loads no model)"),
                       ("doctor", "will this machine hold the run: one adapter trained and served, measured "
                                  "speeds and memory, then the plan at those speeds (a few minutes)")):
        p = sub.add_parser(name, help=text)
        add_run_args(p)
        p.set_defaults(func=cmd_run)

    p = sub.add_parser("finetune", help="stage 1: fine-tune (or train from scratch) a model on ARC-style tasks")
    add_config_args(p, FinetuneConfig)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("ablate", help="score a finished run under every selection rule and program "
                                        "policy (no model needed)")
    p.add_argument("run_dir")
    p.add_argument("--solutions", default=None, help="default: the run's own solutions")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("report", help="write RUN_DIR/report.html: grids, attempts, truth, candidates")
    p.add_argument("run_dir")
    p.add_argument("--solutions", default=None, help="default: the run's own solutions")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tiny-model", help="write a tiny random Llama + char tokenizer (test fixture)")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0, help="weights seed (default: 0)")
    p.add_argument("--arch", default=None, choices=("llama", "qwen2", "qwen3", "mistral"),
                   help="architecture of the random model (default: llama, or the preset family's own)")
    p.add_argument("--preset", default=None, choices=("nvarc", "architects", "marc", "induction"),
                   help="a stand-in for a public checkpoint: that family's tokenizer structure and chat template "
                        "(default: this project's character tokenizer); induction: a small Llama trained on CPU "
                        "(~11 min) to write programs for four tasks' BARC-format prompts")
    p.set_defaults(func=cmd_tiny_model)

    def cmd_prompt(a: argparse.Namespace) -> int:
        from submission.cli.show_prompt import show_prompt

        print(show_prompt(a.preset, a.challenges, a.task, a.model, a.tokens))
        return 0

    p = sub.add_parser("prompt", help="print the exact prompt a preset's format makes of a task's first test input")
    p.add_argument("--preset", default=DETECT, help=f"{DETECT} (detect from --model's tokenizer) | compact | nvarc | "
                   f"architects | marc (default: {DETECT})")
    p.add_argument("--challenges", default="arc1-eval", help="a *_challenges.json path or a bundled set")
    p.add_argument("--task", required=True, help="task id")
    p.add_argument("--model", default=None, help="model folder: its eos ends answers; its tokenizer for --tokens")
    p.add_argument("--tokens", action="store_true", help="also check the tokenizer and list token ids and pieces")
    p.set_defaults(func=cmd_prompt)

    from submission.cli.sweep import add_parser as add_sweep_parser  # issue 16: grids of runs

    add_sweep_parser(sub)

    from submission.cli.program_check import add_parser as add_program_check_parser  # issue 26: program sandbox

    add_program_check_parser(sub)
