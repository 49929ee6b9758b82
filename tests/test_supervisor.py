"""The worker pool under faults, with trivial handlers (no engine): raise, hang, crash, deadline."""

import os
import time

from submission.pipeline.supervisor import Pool


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
        return {"value": f"{init}:{item}", "pid": os.getpid()}
    return handle


def run_pool(items, workers=1, cap=4.0, deadline_in=120.0):
    pool = Pool(make_handler, "x", workers=workers)
    try:
        return dict(pool.run(items, lambda item: cap, time.monotonic() + deadline_in))
    finally:
        pool.close()


def test_faults_cost_only_their_item():
    res = run_pool(["a", "raise", "hang", "crash", "b"])
    assert res["a"]["value"] == "x:a" and res["b"]["value"] == "x:b"
    assert "RuntimeError: boom" in res["raise"]["error"]
    assert res["hang"]["error"].startswith("timeout")
    assert res["crash"]["error"].startswith("crash") and "exit code 3" in res["crash"]["error"]


def test_two_workers_share_the_queue():
    res = run_pool([f"slow{k}" for k in range(8)] + ["crash"], workers=2)
    assert {k: v.get("value") for k, v in res.items() if k != "crash"} == {f"slow{k}": f"x:slow{k}" for k in range(8)}
    assert len({v["pid"] for k, v in res.items() if k != "crash"}) >= 2


def test_deadline_stops_everything_in_time():
    t = time.monotonic()
    res = run_pool(["hang", "a", "b"], cap=100, deadline_in=3)
    assert time.monotonic() - t < 15
    assert res["hang"]["error"].startswith("deadline")
    assert all(res[k].get("not_run") for k in ("a", "b"))
