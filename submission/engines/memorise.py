"""Teach a tiny causal LM fixed continuations: full-weight AdamW on (prompt, answer) string pairs, loss on the
answer tokens only, until greedy decoding reproduces them. It builds stand-in models for tests (the BARC
induction stand-in); it knows strings and token ids, nothing of ARC."""

from __future__ import annotations

from pathlib import Path


def encode_pair(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Ids of prompt + answer + eos and labels (-100 on the prompt); the prompt already holds any BOS."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return p + a, [-100] * len(p) + a


def memorise(folder: str | Path, pairs: list[tuple[str, str]], steps: int = 400, lr: float = 3e-3,
             seed: int = 0, log_every: int = 50) -> list[float]:
    """Train the model in `folder` in place on every pair each step (gradients summed over the pairs); save it back.
    Returns the loss per step."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    rows = [(torch.tensor([x]), torch.tensor([y])) for x, y in (encode_pair(tok, p, a) for p, a in pairs)]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    losses = []
    for step in range(steps):  # one sequence at a time, no padding: the prompts differ a lot in length
        opt.zero_grad()
        total = 0.0
        for ids, labels in rows:
            loss = model(input_ids=ids, labels=labels).loss / len(rows)
            loss.backward()
            total += float(loss)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(total)
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step}: loss {total:.4f}", flush=True)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    return losses


def greedy(folder: str | Path, prompt: str, max_new_tokens: int = 800) -> str:
    """HF greedy continuation of `prompt` (tokenised without added specials), special tokens dropped."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
