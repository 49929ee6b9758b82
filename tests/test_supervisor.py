"""The worker pool under faults, with trivial handlers (no engine): raise, hang, crash, deadline,
streamed parts, refusals."""

import os
import time

from submission.pipeline.pool.supervisor import Pool, Status


def make_handler(init):
    def handle(item):
        if item == "raise":
            raise RuntimeError("boom")
        if item == "hang":
            time.sleep(1000)
        if item == "crash":
            os._exit(3)
        if item.startswith("slow"):
            time.sleep(0.5)
        if item.startswith("stream"):  # three parts, then a hang: the parts must still arrive
            return stream(item)
        return {"value": f"{init}:{item}", "pid": os.getpid()}
    return handle


def make_env_handler(name):
    """Reports the worker's value of the environment variable `name` (and its pid)."""
    def handle(item):
        time.sleep(0.3)  # long enough that both workers take items
        return {"value": os.environ.get(name), "pid": os.getpid()}
    return handle


def stream(item):
    for k in range(3):
        yield f"{item}-{k}"
        time.sleep(0.6)  # longer than the flush interval: each part travels on its own
    if item.endswith("hang"):
        time.sleep(1000)


def run_pool(items, workers=1, cap=4.0, deadline_in=120.0, admit=None):
    finals, parts = {}, {}
    with Pool(make_handler, "x", workers=workers) as pool:
        for item, res in pool.run(items, lambda item: cap, time.monotonic() + deadline_in, admit):
            if res.status is Status.PART:
                parts.setdefault(item, []).extend(res.value)
            else:
                assert item not in finals, f"{item} finished twice"
                finals[item] = res
    return finals, parts


def test_faults_cost_only_their_item():
    res, _ = run_pool(["a", "raise", "hang", "crash", "b"])
    assert res["a"].status is Status.OK and res["a"].value["value"] == "x:a" and res["b"].value["value"] == "x:b"
    assert res["raise"].own_failure and "RuntimeError: boom" in res["raise"].error
    assert res["hang"].own_failure and res["hang"].error.startswith("timeout")
    assert res["crash"].own_failure and "exit code 3" in res["crash"].error


def test_two_workers_share_the_queue():
    res, _ = run_pool([f"slow{k}" for k in range(8)] + ["crash"], workers=2)
    ok = {k: v.value["value"] for k, v in res.items() if v.status is Status.OK}
    assert ok == {f"slow{k}": f"x:slow{k}" for k in range(8)}
    assert len({res[k].value["pid"] for k in ok}) >= 2


def test_deadline_stops_everything_in_time_and_is_nobodys_fault():
    # the hang never ends and its cap is 100 s: only the deadline (3 s) can end it as INTERRUPTED
    res, _ = run_pool(["hang", "a", "b"], cap=100, deadline_in=3)
    assert res["hang"].status is Status.INTERRUPTED and not res["hang"].own_failure
    assert all(res[k].status is Status.NOT_RUN and not res[k].own_failure for k in ("a", "b"))


def test_streamed_parts_arrive_before_a_kill():
    """A handler that yields: every part is delivered as it finishes, so a deadline (or a hang
    past the cap) that kills the worker loses only what had not finished."""
    res, parts = run_pool(["stream-ok", "stream-hang"], cap=3, deadline_in=60)
    assert res["stream-ok"].status is Status.OK
    assert parts["stream-ok"] == [f"stream-ok-{k}" for k in range(3)]
    assert parts["stream-hang"] == [f"stream-hang-{k}" for k in range(3)]  # all three, though it then hung
    assert res["stream-hang"].error.startswith("timeout")


def test_admit_refuses_items_without_running_them():
    res, _ = run_pool(["a", "b", "c"], admit=lambda item: item != "b")
    assert res["a"].status is Status.OK and res["c"].status is Status.OK
    assert res["b"].status is Status.NOT_RUN and not res["b"].own_failure


def make_kaggle_env_handler(_):
    """Reports what a worker's environment says, and when it handled its first item."""
    first = []

    def handle(item):
        first.append(first[0] if first else time.time())
        time.sleep(0.2)
        names = ("OMP_NUM_THREADS", "UNSLOTH_DISABLE_STATISTICS", "UNSLOTH_COMPILE_LOCATION")
        return {"env": {n: os.environ.get(n) for n in names}, "pid": os.getpid(), "first": first[0]}
    return handle


def test_gpu_workers_share_the_cores_start_apart_and_keep_caches_out_of_the_working_folder(monkeypatch, tmp_path):
    """Kaggle's lessons, per worker: OMP threads split between the GPU workers, engine loads staggered, Unsloth's
    statistics call off and its compile cache in the temp folder, not the working (output) folder."""
    for name in ("OMP_NUM_THREADS", "UNSLOTH_DISABLE_STATISTICS", "UNSLOTH_COMPILE_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARC_TTT_STAGGER_S", "1.5")
    monkeypatch.chdir(tmp_path)
    seen = {}
    with Pool(make_kaggle_env_handler, None, workers=2, gpus=["0", "1"]) as pool:
        for _, res in pool.run([f"i{k}" for k in range(20)], lambda item: 60, time.monotonic() + 300):
            seen[res.value["pid"]] = res.value
    assert len(seen) == 2
    for v in seen.values():
        assert v["env"]["OMP_NUM_THREADS"] == str(max(1, os.cpu_count() // 2))
        assert v["env"]["UNSLOTH_DISABLE_STATISTICS"] == "1"
        assert not v["env"]["UNSLOTH_COMPILE_LOCATION"].startswith(str(tmp_path))
    a, b = sorted(v["first"] for v in seen.values())
    assert b - a >= 1.0  # the second engine loaded at least a stagger later
