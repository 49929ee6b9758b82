"""`python -m submission doctor` on the tiny model, for real: the trainer and vLLM in worker processes, as a
run has them, one adapter trained and served, HF compared, the plan at the measured speeds."""

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import SMALL_TASKS
from test_run import write_challenges

ROOT = Path(__file__).parents[1]


def test_doctor_measures_a_real_adapter_and_gives_a_verdict(tmp_path, tiny_model):
    c = write_challenges(tmp_path / "c.json", SMALL_TASKS)
    r = subprocess.run([sys.executable, "-m", "submission", "doctor", "--challenges", str(c), "--model",
                        str(tiny_model), "--out", str(tmp_path / "d"), "--engine", "vllm", "--trainer", "peft",
                        "--lora-rank", "8", "--max-model-len", "2048", "--budget", "3600"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-3000:]
    assert "machine: 0 GPU(s)" in out and "torch " in out
    assert "program sandbox: 8 of 8 layers active; a test program: ok" in out  # seccomp, Landlock, ast, audit
    ttt = re.search(r"TTT: peft started in \d+ s; task '(\w+)': (\d+) steps, (\d+) tokens .* = (\d+) tok/s at rank 8;"
                    r" peak memory ([\d.]+) GiB", out)
    assert ttt and ttt.group(1) in SMALL_TASKS and int(ttt.group(2)) >= 1 and int(ttt.group(4)) > 0
    assert float(ttt.group(5)) > 0
    serve = re.search(r"serving: vllm started in \d+ s with LoRA \(rank 8, context 2048\); (\d+) prompts .* "
                      r"prefill (\d+) tok/s, decode (\d+) tok/s", out)
    assert serve and int(serve.group(2)) > 0 and int(serve.group(3)) > 0
    n = serve.group(1)
    assert f"vLLM against HF+PEFT on the same adapter and prompts: {n} of {n} answers identical" in out
    # the plan is made at the figures just measured, not the profile's
    assert f"prefill {serve.group(2)} tok/s, decode {serve.group(3)} tok/s" in out
    assert "measured just now by doctor" in out and "budget 60.0 min: fits" in out
    assert re.search(r"doctor verdict \(\d+ s\): FITS", out)
    assert (tmp_path / "d" / "doctor.log").stat().st_size > 0  # engine output in its log, not on the screen
    assert "INFO" not in out
