"""`python -m submission run`: the phased, deadline-aware run (start.py opens it). Each phase leaves a valid
submission.json, rewritten atomically as answers land:

  0. [[0]] for every task, at once; then the programs a DSL search finds (CPU workers, programs.py) and, with
     --induction-model, those a model writes (induction.py, run in the sandbox), merged by --program-policy
  1. quick: the base model, a few transforms, all tasks (--quick-transforms, 0 = skip)
  2. TTT: a fresh LoRA per task in worker processes, down a fallback ladder on failure; it stops
     starting tasks when the inference owed to the trained tasks would no longer fit
  3. main: every adapter's prompts, breadth-first, in batched multi-LoRA engine calls
  4. PoE: the top candidates scored under augmentations with each task's adapter
  5. extra: time the later tasks do not need buys more augmentations for each uncertain task

Phases 2-5 run in waves when the disk holds fewer adapters than there are tasks (adapter_disk.py):
a wave trains what fits, answers it (3-5, batched across the wave), deletes its adapters, and the
next wave trains. The last wave also answers the tasks no adapter was trained for (the base model).
Work is durable per finished prompt and per trained task (state.py): the same --out resumes.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace

from submission.arc.phases import certainty
from submission.pipeline import infer
from submission.pipeline.budget import Profile
from submission.pipeline.config import Settings
from submission.pipeline.context import Run
from submission.pipeline.induction import phase_induction
from submission.pipeline.pool.supervisor import Pool, Status
from submission.pipeline.pool.workers import (
    LADDER,
    GenInit,
    TrainInit,
    TrainItem,
    ladder_configs,
    make_gen_handler,
    make_train_handler,
)
from submission.pipeline.programs import phase_programs, start_beside
from submission.pipeline.start import open_run
from submission.pipeline.summary import finish
from submission.pipeline.waves import live_bytes, next_wave, release_wave

TTT_SLACK_SHARE = 0.05  # TTT also leaves 5% of the budget unplanned: engine starts vary
MIN_TTT_CAP_S = 120.0  # a TTT task is hung after HANG_FACTOR x its predicted time, never before this
UNMEASURED_TTT_SLACK = 4  # until a task has trained, its predicted time may be 4x short (a busy 2-core box was 5x)
QUICK_BUDGET_SHARE = 0.25  # the quick pass stops at a quarter of a budget (breadth-first: identity prompts first)
NO_TTT = LADDER.index("no_ttt")
TRIM_FLOOR = 4  # a task trimmed to fit keeps at least a quarter of its TTT examples (as the ladder's fewer_demos)


def make_pool(run: Run, make_handler, init) -> Pool:
    """The executor of worker items: local processes (default) or Ray actors (--executor ray); both
    have Pool's interface: a context manager whose run() yields (item, Result). Engine starts are measured."""
    log = str(run.log_path) if run.log_path else None
    kind = "train" if isinstance(init, TrainInit) else "gen"
    on_start = lambda seconds: run.costs.observe_start(kind, seconds)  # noqa: E731
    if run.cfg.executor == "ray":
        from submission.pipeline.pool.ray_pool import RayPool

        return RayPool(make_handler, init, run.cfg.workers, address=run.cfg.ray_address, log=log,  # 0: per GPU
                       on_start=on_start)
    return Pool(make_handler, init, run.workers, run.gpus, log, on_start=on_start)


def gen_pool(run: Run) -> Pool:
    init = GenInit(run.cfg.model, run.cfg.engine, run.gen, run.decoding, run.settings.train.lora_rank)
    return make_pool(run, make_gen_handler, init)


def timed(name: str):
    def wrap(phase):
        def inner(run: Run, *args):
            t = time.monotonic()
            try:
                return phase(run, *args)
            finally:
                run.times[name] = round(run.times.get(name, 0.0) + time.monotonic() - t, 2)
        return inner
    return wrap


@timed("quick")
def phase_quick(run: Run) -> None:
    todo = [t for t in run.ids if not run.state.has(t, "main")]
    if run.cfg.quick_transforms and todo and run.left() > 0:
        # a safety net, not the run: on a slow machine it must not eat the time TTT needs
        stop = run.t0 + QUICK_BUDGET_SHARE * run.budget if run.budget else math.inf
        with gen_pool(run) as pool:
            infer.infer(run, pool, "quick", todo, {}, stop)


def owed_inference(run: Run, extra: tuple[str, ...] = ()) -> float:
    """Predicted seconds (at the pessimistic speed) of main inference for tasks with adapters."""
    p = run.costs.pessimistic
    tids = [t for t in run.ids if run.state.adapter(t) or t in extra]
    return sum(run.plans[t].infer_s(p) for t in tids if not run.state.has(t, "main"))


def ttt_deadline(run: Run) -> float:
    """Stop starting TTT when only the inference owed to the trained tasks still fits (at the slowest speeds
    and the slowest engine start this run has seen)."""
    if math.isinf(run.deadline):
        return run.deadline
    slack = run.costs.start_s("gen") + TTT_SLACK_SHARE * run.budget
    return run.deadline - owed_inference(run) - slack


def item_s(run: Run, item: TrainItem, p: Profile, infer_too: bool = False) -> float:
    """Predicted TTT seconds of an item (all its tasks' sets for a shared adapter; a ladder step or a trim
    with fewer examples, that share of them), plus their inference."""
    plans = [run.plans[task.id] for task, _ in item.sources()]
    return sum(plan.ttt_s(p) * min(1.0, item.ttt.max_examples / max(1, plan.ttt_examples))
               + (plan.infer_s(p) if infer_too else 0.0) for plan in plans)


def fits(run: Run, item: TrainItem) -> bool:
    """Would this task's TTT and its own inference finish before the TTT cut-off (pessimistically)?"""
    return time.monotonic() + item_s(run, item, run.costs.pessimistic, infer_too=True) <= ttt_deadline(run)


def admit(run: Run, item: TrainItem) -> TrainItem | None:
    """The item as it starts, asked just before: as planned; trimmed, when what is left to train no longer
    fits the time to the TTT cut-off on these workers (a machine slower than planned: fewer TTT examples, at
    most TRIM_FLOOR times fewer, and the tasks that start first are cut first: largest-first puts the widest
    there); or not at all, when even so it would not finish before the cut-off (`fits`)."""
    left = ttt_deadline(run) - time.monotonic()
    if not item.shared and not math.isinf(left) and left > 0:
        p = run.costs.pessimistic
        rest = [t for t in ttt_todo(run) if t != item.task.id]
        need = (item_s(run, item, p, infer_too=True)
                + sum(run.plans[t].ttt_s(p) + run.plans[t].infer_s(p) for t in rest)) / run.workers
        examples = min(item.ttt.max_examples, run.plans[item.task.id].ttt_examples)
        keep = max(math.ceil(examples / TRIM_FLOOR), int(examples * left / need)) if need > left else examples
        if keep < examples:
            run.log(f"TTT: task {item.task.id!r} trimmed to {keep} of {examples} examples: what is left to train "
                    f"needs ~{need:.0f} s per worker, {left:.0f} s are left before the TTT cut-off")
            item = replace(item, ttt=replace(item.ttt, max_examples=keep))
    return item if fits(run, item) else None


def train_items(run: Run, tids: list[str]) -> list[TrainItem]:
    """One item per task; under --adapter shared, one item for all of them (the first task's ladder level)."""
    def item(tid: str, shared: tuple = ()) -> TrainItem:
        level = run.state.next_level(tid)
        ttt, train = ladder_configs(level, run.settings.ttt, run.settings.train)
        return TrainItem(run.tasks.tasks[tid], run.seed[tid], level, ttt, train, shared)

    if run.cfg.adapter == "shared" and tids:  # its TTT set in the file's order, whatever --order says
        tids = [t for t in run.ids if t in set(tids)]
        return [item(tids[0], tuple((run.tasks.tasks[t], run.seed[t]) for t in tids))]
    return [item(t) for t in tids]


def record_train(run: Run, item: TrainItem, res) -> bool:
    """Store a TTT outcome (for each task of a shared adapter); True when the item should go one step
    down the ladder and retry."""
    rec = {"level": item.level, "step": LADDER[item.level], "status": res.status.value}
    if item.ttt.max_examples < ladder_configs(item.level, run.settings.ttt, run.settings.train)[0].max_examples:
        rec["trimmed_to_examples"] = item.ttt.max_examples
    if res.status is Status.OK:
        rec.update({**vars(res.value.result), "trainer": res.value.trainer, "data_s": round(res.value.data_s, 3),
                    "load_s": round(res.value.load_s, 3), "peak_gb": round(res.value.peak_bytes / 1e9, 3)})
        run.costs.observe_ttt(res.value.result.tokens, res.value.result.train_s)
        if run.disk is not None:
            run.disk.observe(res.value.result.lora_rank, res.value.result.adapter)
    else:
        rec["error"] = res.error
    for task, _ in item.sources():
        run.state.add_train({"task_id": task.id, **rec, **({"shared_by": len(item.shared)} if item.shared else {})})
    if not res.own_failure:
        return False
    nxt = LADDER[item.level + 1]
    run.log(f"ladder: task {item.task.id!r}: {LADDER[item.level]} failed ({res.error[:200]}) -> {nxt}")
    return nxt != "no_ttt"


def task_cost(run: Run, tid: str) -> float:
    """A task's planned seconds (TTT and inference at the profile): what --order largest sorts by."""
    return run.plans[tid].ttt_s(run.costs.base) + run.plans[tid].infer_s(run.costs.base)


def ttt_todo(run: Run) -> list[str]:
    """Tasks still to train: no answers from an adapter yet, no adapter, and a ladder step left; in --order
    (largest: the most planned seconds first, so no long task starts last and holds one GPU alone at the end)."""
    todo = [t for t in run.ids if not run.state.has(t, "main") and not run.state.adapter(t)
            and run.state.next_level(t) < NO_TTT]
    return sorted(todo, key=lambda t: -task_cost(run, t)) if run.cfg.order == "largest" else todo


@timed("ttt")
def phase_ttt(run: Run) -> int:
    """Train the next wave of tasks (those whose adapters fit the disk); returns how many trained."""
    todo = ttt_todo(run)
    if run.cfg.trainer == "none" or not todo or not (todo := next_wave(run, todo)):
        return 0
    from tqdm import tqdm

    init = TrainInit(run.cfg.model, run.cfg.trainer, run.settings.train, run.fmt, str(run.out), run.gen.dtype)

    def cap(item: TrainItem) -> float:  # a hang detector at the slowest speed seen, not at the profile's
        p = run.costs.pessimistic
        if not run.costs.ttt:  # nothing trained yet: the profile may be far off on this machine
            p = replace(p, ttt_tok_s=p.ttt_tok_s / UNMEASURED_TTT_SLACK)
        return run.cfg.task_timeout or max(MIN_TTT_CAP_S, infer.HANG_FACTOR * item_s(run, item, p) + p.engine_start_s)

    trained = 0
    bar = tqdm(total=len(todo), desc="TTT", unit="task", disable=None)
    with make_pool(run, make_train_handler, init) as pool:
        while todo and time.monotonic() < ttt_deadline(run):
            retry = []
            for item, res in pool.run(train_items(run, todo), cap, lambda: ttt_deadline(run),
                                      admit=lambda it: admit(run, it)):
                trained += res.status is Status.OK
                if record_train(run, item, res):
                    retry += [task.id for task, _ in item.sources()]
                else:
                    bar.update(len(item.sources()))
            todo = retry
    bar.close()
    if run.disk is not None:
        run.disk.waves += 1
        run.disk.peak = max(run.disk.peak, live_bytes(run))
    return trained


def note_untrained(run: Run) -> None:
    skipped = [t for t in run.ids if not run.state.trained(t) and run.state.next_level(t) < NO_TTT]
    if skipped and run.cfg.trainer != "none":
        run.log(f"TTT: {len(skipped)} tasks not trained (the time left was for the inference of trained tasks, "
                f"or the adapter disk was full); the base model answers them")


@timed("main")
def phase_main(run: Run, pool: Pool, tids: list[str]) -> None:
    adapters = {t: a for t in tids if (a := run.state.adapter(t))}
    print(f"inference: {len(adapters)} tasks with adapters first, then {len(tids) - len(adapters)} without")
    infer.infer(run, pool, "main", list(adapters), adapters)
    infer.infer(run, pool, "main", [t for t in tids if t not in adapters], {})


@timed("score")
def phase_score(run: Run, pool: Pool, tids: list[str]) -> None:
    """Product of experts: the top candidates of every TTT-answered task, scored under augmentations."""
    todo = [t for t in tids if run.state.best(t, len(run.tasks.tasks[t].test))[0] == "main"
            and t not in run.state.scores]
    if run.cfg.score_augmentations and todo and run.left() > 0:
        infer.score(run, pool, todo)


@timed("extra")
def phase_extra(run: Run, pool: Pool, tids: list[str], reserve: float) -> None:
    """More augmentations for each task whose answers disagree more than --extra-below allows, least
    certain first, as many as fit the time left less `reserve` (what the tasks still to train need)."""
    p = run.costs.pessimistic
    for _ in range(run.cfg.extra_rounds):
        tests = {t: run.state.best(t, len(run.tasks.tasks[t].test))[1] for t in tids if run.state.has(t, "main")}
        unsure = sorted((t for t in tests if certainty(tests[t]) < run.cfg.extra_below),
                        key=lambda t: (certainty(tests[t]), run.ids.index(t)))
        chosen, total = [], 0.0
        for t in unsure:
            total += run.plans[t].infer_s(p)
            if run.left() - reserve < total:
                break
            chosen.append(t)
        if not chosen:
            return
        infer.infer(run, pool, "extra", chosen, {t: a for t in chosen if (a := run.state.adapter(t))})


def still_owed_s(run: Run) -> float:
    """Predicted seconds (pessimistic) the tasks still to train need: their TTT, their inference, and a
    trainer and an engine start for their wave."""
    todo = ttt_todo(run) if run.cfg.trainer != "none" else []
    if not todo:
        return 0.0
    p = run.costs.pessimistic
    return sum(item_s(run, item, p, infer_too=True) for item in train_items(run, todo)) + 2 * p.engine_start_s


def more_ttt(run: Run) -> bool:
    """Would another wave train anything: tasks left, before the TTT cut-off, one of them fitting in time
    (checked before this wave is answered: its inference is already owed, so what does not fit now never will)."""
    todo = ttt_todo(run)
    return bool(todo) and time.monotonic() < ttt_deadline(run) and any(fits(run, it) for it in train_items(run, todo))


def base_tasks(run: Run) -> list[str]:
    """Tasks the base model answers: no adapter now, and none whose answers already landed."""
    return [t for t in run.ids if not run.state.adapter(t) and not (run.state.trained(t) and run.state.has(t, "main"))]


def answer_wave(run: Run, tids: list[str], reserve: float) -> None:
    """Main inference, PoE scoring and extra rounds for these tasks, batched together in one engine pool."""
    with gen_pool(run) as pool:
        phase_main(run, pool, tids)
        phase_score(run, pool, tids)
        phase_extra(run, pool, tids, reserve)


def run(settings: Settings) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    r = open_run(settings)
    beside = None
    try:
        for name, phase in (("programs", phase_programs), ("beside", start_beside), ("induction", phase_induction)):
            try:
                if name == "beside":  # --program-search beside: the search goes on in CPU workers from here
                    beside = phase(r)
                else:
                    timed(name)(phase)(r)
            except Exception as e:  # a broken search, induction model or sandbox costs its programs, never the run
                r.log(f"{name} failed ({type(e).__name__}: {str(e)[:300]}); the run goes on without its programs")
        phase_quick(r)
        while True:
            trained = phase_ttt(r)
            last = not trained or not more_ttt(r)
            if r.left() <= 0:
                break
            wave = [t for t in r.ids if r.state.adapter(t) and t not in r.answered]
            answer_wave(r, wave + (base_tasks(r) if last else []), 0.0 if last else still_owed_s(r))
            r.answered |= set(wave)
            release_wave(r, wave)
            if last:
                break
        note_untrained(r)
        if beside is not None:
            beside.stop()
    finally:
        if beside is not None:  # stopped above unless a phase raised: then at once
            beside.stop(wait=False)
        r.refresh()
    finish(r)
    return 0

