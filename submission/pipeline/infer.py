"""Inference for a phase: prompts -> engine requests in breadth-first order -> engine calls sized in
predicted seconds -> answers streamed back per finished prompt, parsed, mapped back to the
original frame and appended durably. A deadline that kills an engine call loses only the
prompts still running in it; resume skips every prompt already in predictions.jsonl.

A phase runs in rounds, so that a machine slower than its profile still gets every task's first
answers: the first round is a probe, one prompt per task and test input (the identity transform,
breadth-first's first round); the cost model re-fits from it; the next calls are sized at the
slowest speed seen, and a call that overruns its prediction OVERRUN_FACTOR times ends and keeps its
finished prompts, the rest going to a later, smaller call."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

from tqdm import tqdm

from submission.arc.formats import GridFormat
from submission.arc.grid import Grid
from submission.arc.phases import breadth_first, phase_prompts, poe_texts, prompt_key
from submission.arc.prompts import Prompt
from submission.engines.api import Completion, GenRequest, ScoreRequest, SearchRequest
from submission.pipeline.budget import (
    answer_limit,
    expected_answer_tokens,
    expected_paths,
    request_seconds,
    worst_paths,
)
from submission.pipeline.context import Run
from submission.pipeline.pool.supervisor import Pool, Status
from submission.pipeline.pool.workers import GenItem
from submission.pipeline.state import Answer

MIN_ANSWER_ROOM = 16  # a prompt must leave room for at least a small answer, else it is skipped
HANG_FACTOR = 4  # an engine call is hung when it shows no progress for 4x its worst case...
MIN_HANG_CAP_S = 300.0  # ...and never before 5 minutes
BUDGET_SHARE_PER_CALL = 0.05  # under a budget, one engine call is at most 5% of it: the fit catches drift early
REFRESH_S = 2.0  # rewrite submission.json at most this often while answers stream in
OVERRUN_FACTOR = 3.0  # an engine call that runs this many times its prediction (pessimistic) ends...
MIN_CALL_S = 10.0  # ...but never before this many seconds


@dataclass(frozen=True)
class Pending:
    prompt: Prompt
    request: GenRequest | SearchRequest  # SearchRequest under --search dfs
    predicted_s: float  # at the cost model's base profile


def pending(run: Run, phase: str, tids: list[str], adapters: dict[str, str]) -> list[Pending]:
    """Every prompt of the phase not finished yet, breadth-first, as engine requests."""
    per_task = {}
    for tid in tids:
        done = run.state.finished(tid, phase)
        prompts = phase_prompts(run.tasks.tasks[tid], phase, run.cfg.transforms, run.cfg.permutations,
                                run.cfg.quick_transforms, run.fmt, run.seed[tid], run.max_len - 1,
                                run.cfg.transform_colors)
        per_task[tid] = [p for p in prompts if prompt_key(p) not in done]
    ordered = breadth_first(per_task)
    if not ordered:
        return []
    ids = run.tokenizer([p.text for p in ordered])["input_ids"]
    out, skipped = [], 0
    for p, x in zip(ordered, ids):
        room = run.max_len - len(x)
        if room < MIN_ANSWER_ROOM:
            skipped += 1
            continue
        task = run.tasks.tasks[p.task_id]
        limit = run.gen.max_new_tokens or answer_limit(task, p.test_index, run.fmt)
        req = GenRequest(tuple(x), adapters.get(p.task_id), min(limit, room))
        search = run.settings.search
        if search.search == "dfs":  # every answer >= --min-prob instead of one
            req = SearchRequest(req.prompt_ids, req.adapter, req.max_tokens, search.min_prob, search.max_candidates)
        paths = expected_paths(search.search, search.min_prob)
        predicted = request_seconds(len(x), expected_answer_tokens(task, run.fmt), run.costs.base, paths)
        out.append(Pending(p, req, predicted))
    if skipped:
        run.log(f"{skipped} {phase} prompts exceed --max-model-len {run.max_len} even with one demo: skipped")
    return out


def unfinished(run: Run, phase: str, work: list[Pending], failed: set) -> list[Pending]:
    """The prompts of `work` with no answer yet and not failed, in the same order (no re-tokenising)."""
    done = {tid: run.state.finished(tid, phase) for tid in {w.prompt.task_id for w in work}}
    return [w for w in work if (k := prompt_key(w.prompt)) not in done[w.prompt.task_id] and k not in failed]


def engine_calls(work: list[Pending], max_prompts: int, max_s: float,
                 phase: str, rnd: int = 0) -> list[tuple[GenItem, list[Pending]]]:
    """Consecutive runs of the breadth-first list, each at most max_prompts and max_s predicted."""
    calls, cur, secs = [], [], 0.0
    for w in work:
        if cur and (len(cur) >= max_prompts or secs + w.predicted_s > max_s):
            calls.append(cur)
            cur, secs = [], 0.0
        cur.append(w)
        secs += w.predicted_s
    calls += [cur] if cur else []
    return [(GenItem(f"{phase}{rnd}.{k}", tuple(dict.fromkeys(w.prompt.task_id for w in c)),
                     tuple(w.request for w in c)), c) for k, c in enumerate(calls)]


def task_calls(work: list[Pending], order: list[str], phase: str,
               rnd: int = 0) -> list[tuple[GenItem, list[Pending]]]:
    """--deterministic: one engine call per task, its prompts in their own order, tasks in the run's order, so
    no call's batch depends on the chunk settings, the worker count or what else is in flight."""
    by_task: dict[str, list[Pending]] = {}
    for w in work:
        by_task.setdefault(w.prompt.task_id, []).append(w)
    calls = [by_task[t] for t in order if t in by_task]
    return [(GenItem(f"{phase}{rnd}.{k}", (c[0].prompt.task_id,), tuple(w.request for w in c)), c)
            for k, c in enumerate(calls)]


def hang_cap(run: Run, requests) -> float:
    """A hang detector, not a budget: no progress for HANG_FACTOR x the worst case (every answer runs
    to its token limit, as an untrained model's do) plus an engine start."""
    p = run.costs.base
    prompt = sum(len(r.prompt_ids) for r in requests)
    decode = sum((getattr(r, "max_tokens", 0) or len(getattr(r, "completion_ids", ()))) * worst_paths(r)
                 for r in requests)
    return run.cfg.task_timeout or max(MIN_HANG_CAP_S, HANG_FACTOR * (prompt / p.prefill_tok_s +
                                                                       decode / p.decode_tok_s) + p.engine_start_s)


def answer_grid(fmt: GridFormat, tokenizer: Any, c: Completion) -> Grid | None:
    """The grid a completion spells; None if it does not parse or never stopped: a text cut at the
    answer limit can still parse as the first rows of a runaway answer, and that is not an answer
    (the threshold search, likewise, keeps only completions that stop)."""
    if not c.stopped:
        return None
    return fmt.parse(tokenizer.decode(list(c.token_ids), skip_special_tokens=False))


def to_answers(run: Run, phase: str, calls: dict[str, list[Pending]], item: GenItem, part: list,
               seconds: float) -> list[Answer]:
    """Finished requests of an engine call as Answers in the original frame."""
    out = []
    for index, completions in part:
        p, request = calls[item.key][index].prompt, calls[item.key][index].request
        grids, lps = [], []
        for c in completions:
            g = answer_grid(run.fmt, run.tokenizer, c)
            grids.append(None if g is None else p.transform.invert(g).tolist())
            lps.append(None if c.logprob != c.logprob else round(c.logprob, 5))  # nan: unknown
        out.append(Answer(p.task_id, phase, prompt_key(p), p.test_index, p.transform.name, p.transform.is_identity,
                          tuple(grids), tuple(lps), sum(len(c.token_ids) for c in completions),
                          seconds / max(1, len(part)), request.adapter))
    return out


def probe(work: list[Pending]) -> list[Pending]:
    """The first pending prompt of each task and test input (breadth-first: the identity transform's)."""
    seen, out = set(), []
    for w in work:
        if (key := (w.prompt.task_id, w.prompt.test_index)) not in seen:
            seen.add(key)
            out.append(w)
    return out


def call_limit(run: Run, calls: list[Pending]) -> float:
    """Seconds an engine call may run before it ends early: OVERRUN_FACTOR x its prediction at the slowest
    speed this run has seen, at least MIN_CALL_S."""
    k = run.costs.pessimistic.prefill_tok_s / run.costs.base.prefill_tok_s
    return max(MIN_CALL_S, OVERRUN_FACTOR * sum(w.predicted_s for w in calls) / k)


def infer(run: Run, pool: Pool, phase: str, tids: list[str], adapters: dict[str, str],
          deadline: float | None = None) -> None:
    """Generate every unfinished prompt of a phase for these tasks, in rounds (the module's docstring);
    answers land as they finish. `deadline` (default: the run's) stops this phase earlier."""
    stop = min(run.deadline, deadline or run.deadline)
    work = pending(run, phase, tids, adapters)
    bar = tqdm(total=len(work), desc=f"{phase} inference", unit="prompt", disable=None)
    rnd, limited, failed = 0, True, set()
    while work and time.monotonic() < stop:
        if run.cfg.deterministic:  # fixed batches, never ended early: one round
            items = task_calls(work, run.ids, phase, rnd)
        else:
            speed = run.costs.profile.prefill_tok_s / run.costs.base.prefill_tok_s  # base seconds per real second
            max_s = speed * (min(run.cfg.chunk_seconds, BUDGET_SHARE_PER_CALL * run.budget) if run.budget
                             else run.cfg.chunk_seconds)
            items = engine_calls(probe(work) if rnd == 0 else work, run.cfg.chunk_prompts, max_s, phase, rnd)
            if rnd == 0:
                items = items[:run.workers]
            elif limited:
                items = [(replace(item, max_s=call_limit(run, c)), c) for item, c in items]
        landed = run_calls(run, pool, phase, items, stop, bar, failed)
        if run.cfg.deterministic or (not landed and not limited):
            break  # nothing finished with no call ended early: what is left failed; the next phase goes on
        limited = landed > 0  # a round that landed nothing ran too short: the next one runs its calls whole
        rnd += 1
        work = unfinished(run, phase, work, failed)
    bar.close()
    run.refresh()


def run_calls(run: Run, pool: Pool, phase: str, items: list[tuple[GenItem, list[Pending]]], stop: float,
              bar, failed: set) -> int:
    """One round's engine calls through the pool; their answers land as they stream back, each call's speed
    goes to the cost model. Returns how many prompts finished; adds to `failed` the prompts of calls that
    failed on their own (a crash or a hang: not retried in this phase's later rounds)."""
    calls = {item.key: c for item, c in items}
    last = {item.key: 0.0 for item, _ in items}
    landed = {item.key: 0.0 for item, _ in items}  # predicted seconds of the requests already back
    count, refreshed = 0, time.monotonic()
    for item, res in pool.run([i for i, _ in items], lambda i: hang_cap(run, i.requests), stop):
        if res.status is Status.PART:
            run.state.add_answers(to_answers(run, phase, calls, item, res.value, res.seconds - last[item.key]))
            last[item.key] = res.seconds
            landed[item.key] += sum(calls[item.key][i].predicted_s for i, _ in res.value)
            count += len(res.value)
            bar.update(len(res.value))
            if time.monotonic() - refreshed > REFRESH_S:
                run.refresh()
                refreshed = time.monotonic()
        elif res.status is Status.OK:
            done = landed[item.key] if item.max_s else sum(w.predicted_s for w in calls[item.key])
            run.costs.observe_infer(done, res.seconds)
            if done < sum(w.predicted_s for w in calls[item.key]):  # ended at its limit: a slow call
                run.log(f"{phase} engine call {item.key} ({len(item.requests)} prompts) ran past its limit of "
                        f"{item.max_s:.0f} s: its finished prompts are kept, the rest go to a smaller call")
        elif res.status is not Status.NOT_RUN:
            # a cut call still says how fast the machine is: what landed, in the time it took
            run.costs.observe_infer(landed[item.key], last[item.key])
            if res.own_failure:
                failed |= {prompt_key(w.prompt) for w in calls[item.key]}
            names = ", ".join(map(repr, item.task_ids[:4])) + ("…" if len(item.task_ids) > 4 else "")
            run.log(f"{phase} engine call {item.key} ({len(item.requests)} prompts of tasks {names}) "
                    f"{res.status.value}: {res.error}; its finished prompts are kept")
    return count


def score(run: Run, pool: Pool, tids: list[str]) -> None:
    """Product of experts: each task's top candidates scored under several augmentations, with its
    adapter, in one batched engine call per task."""
    items, index = [], {}
    for tid in tids:
        task = run.tasks.tasks[tid]
        _, tests = run.state.best(tid, len(task.test))
        texts = poe_texts(task, tests, run.cfg.score_candidates, run.cfg.score_augmentations, run.fmt,
                          run.seed[tid], run.max_len - 1, run.cfg.transform_colors)
        if not texts:
            continue
        prompts = run.tokenizer([t[2] for t in texts])["input_ids"]
        targets = run.tokenizer([t[3] for t in texts], add_special_tokens=False)["input_ids"]
        adapter = run.state.adapter(tid)
        reqs = tuple(ScoreRequest(tuple(p), tuple(c), adapter) for p, c in zip(prompts, targets))
        items.append(GenItem(f"score-{tid}", (tid,), reqs))
        index[items[-1].key] = texts
    for item, res in tqdm(pool.run(items, lambda i: hang_cap(run, i.requests), run.deadline), total=len(items),
                          desc="PoE scoring", unit="task", disable=None):
        tid = item.task_ids[0]
        if res.status is not Status.OK:
            if res.status is not Status.NOT_RUN:
                run.log(f"PoE scoring of task {tid!r} {res.status.value}: {res.error}")
            continue
        per_test: dict[int, dict] = {}
        for (ti, g, _, _), lp in zip(index[item.key], res.value):
            per_test.setdefault(ti, {}).setdefault(json.dumps(g), []).append(lp)
        n = len(run.tasks.tasks[tid].test)
        run.state.add_scores(tid, [[(json.loads(k), v) for k, v in per_test.get(i, {}).items()] for i in range(n)])
        run.refresh()
