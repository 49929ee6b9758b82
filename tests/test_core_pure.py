"""The core imports and works with every heavy engine blocked."""

import subprocess
import sys

CODE = r"""
import sys
for m in ("torch", "vllm", "unsloth", "transformers", "peft"):
    sys.modules[m] = None
from submission import augment, data, grid, prompts, score, submission_io, text, ttt_data, vote
ts = data.load_challenges("arc1-eval")
task = ts.tasks[ts.ids[0]]
fmt = text.TextFormat()
ex = ttt_data.build_ttt_dataset(task, ttt_data.TTTDataConfig(augmentations=2), fmt)
ps = prompts.build_prompts(task, 4, 2, fmt)
preds = [vote.Prediction(p.transform.invert(task.test[p.test_index].input), p.transform.name, p.transform.is_identity)
         for p in ps]
ranked = vote.hierarchical_vote(preds)
sub = submission_io.build_submission(ts, {task.id: [vote.top2(ranked)]})
assert not submission_io.validate_submission(sub, ts)
print("ok", len(ex), len(ps))
"""


def test_core_works_without_engines():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")
