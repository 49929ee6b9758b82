"""--executor ray on a real local Ray cluster (`ray start --head` on a fixed port, 2 CPU slots, torn
down at the end): RayPool under faults with trivial handlers, then `run` end to end on the tiny
model: the same submission as the local pool, an actor killed mid-run, the driver killed and resumed."""

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray  # noqa: E402  (a declared dependency: missing, it fails here, never skips)
from test_scheduler import TASKS  # noqa: E402

from submission.arc.data import load_challenges  # noqa: E402
from submission.arc.submission_io import validate_submission  # noqa: E402
from submission.engines.api import GenRequest, TrainResult  # noqa: E402
from submission.pipeline.pool import ray_pool  # noqa: E402
from submission.pipeline.pool.ray_pool import RayPool  # noqa: E402
from submission.pipeline.pool.supervisor import Status  # noqa: E402
from submission.pipeline.pool.workers import GenItem, Trained, TrainInit  # noqa: E402

from conftest import parsed_answers  # noqa: E402
from test_run import FAST, write_challenges  # noqa: E402

ROOT = Path(__file__).parents[1]
PORT = 6399  # fixed, away from Ray's default 6379 so a user's own cluster is never joined
HF = [*FAST, "--engine", "hf", "--trainer", "peft", "--quick-transforms", "0", "--epochs", "1",
      "--max-examples", "4", "--workers", "2"]
RAY = ["--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node with 2 CPU slots; token auth with a token of our own (Ray's default is on)."""
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ray._raylet.Config.initialize("")  # this process imported Ray before the mode was set: read it again
    temp = tmp_path_factory.mktemp("ray")
    head = subprocess.Popen(["ray", "start", "--head", "--block", "--port", str(PORT), "--num-cpus", "2",
                             "--node-ip-address", "127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
                             "--ray-client-server-port", str(PORT + 1), "--dashboard-agent-listen-port",
                             str(PORT + 2), "--temp-dir", str(temp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: subprocess.run(["ray", "status", "--address", f"127.0.0.1:{PORT}"], capture_output=True,
                                        timeout=30).returncode == 0, 120)
        yield f"127.0.0.1:{PORT}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        os.killpg(head.pid, signal.SIGTERM)  # the head's process group: GCS, raylet and every actor
        try:
            head.wait(15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def wait_for(cond, timeout: float) -> None:
    t = time.monotonic()
    while not cond():
        assert time.monotonic() - t < timeout, "timed out waiting"
        time.sleep(0.5)


# -- the pool, with trivial handlers (pickled by value: actors cannot import this test module) --------
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def make_handler(init):
    def handle(item):
        if isinstance(item, GenItem):  # streams; the first attempt dies after two requests
            return stream(item, init)
        if item == "raise":
            raise RuntimeError("boom")
        if item == "hang":
            time.sleep(1000)
        if item == "crash":
            os._exit(3)
        return {"value": f"{init}:{item}", "pid": os.getpid()}
    return handle


def stream(item, marker):
    for i, r in enumerate(item.requests):
        time.sleep(0.6)  # > PART_FLUSH_S: every request travels in its own part
        if i == 2 and not os.path.exists(marker):
            Path(marker).touch()
            os._exit(9)  # a lost node, as the driver sees it
        yield i, [(os.getpid(), len(item.requests), r.max_tokens)]


def run_pool(cluster, items, init="x", workers=2, cap=6.0, deadline_in=120.0):
    with RayPool(make_handler, init, workers, address=cluster) as pool:
        return list(pool.run(items, lambda item: cap, time.monotonic() + deadline_in))


def test_faults_cost_only_their_item(cluster):
    res = dict(run_pool(cluster, ["a", "raise", "hang", "crash", "b"]))
    assert res["a"].value["value"] == "x:a" and res["b"].value["value"] == "x:b"
    assert res["raise"].status is Status.FAILED and "RuntimeError: boom" in res["raise"].error
    assert res["hang"].error.startswith("timeout")
    assert res["crash"].status is Status.FAILED and "died 2 times" in res["crash"].error  # retried once


def test_a_lost_actor_costs_only_its_unsent_requests(cluster, tmp_path):
    item = GenItem("main0", ("t",), tuple(GenRequest((1, 2), None, 100 + i) for i in range(5)))
    got = run_pool(cluster, [item], init=str(tmp_path / "died"))
    parts = [p for _, r in got if r.status is Status.PART for p in r.value]
    assert got[-1][1].status is Status.OK
    assert sorted(i for i, _ in parts) == list(range(5))  # every request answered exactly once
    assert all(c[0][2] == 100 + i for i, c in parts)  # indices map back to the original requests
    first, second = {c[0][0] for i, c in parts if i < 2}, {c[0][0] for i, c in parts if i >= 2}
    assert first.isdisjoint(second)  # the retry ran on another actor...
    assert {c[0][1] for i, c in parts if i >= 2} == {3}  # ...with only the 3 requests not answered


def test_deadline_interrupts_and_does_not_start(cluster):
    # the hang never ends and its cap is 100 s: only the deadline (8 s) can end it as INTERRUPTED
    res = dict(run_pool(cluster, ["hang", "a", "b"], workers=1, cap=100, deadline_in=8))
    assert res["hang"].status is Status.INTERRUPTED
    assert res["a"].status is Status.NOT_RUN and res["b"].status is Status.NOT_RUN


def make_adapter_handler(init):
    def handle(item):
        if isinstance(item, GenItem):  # serve: read the adapter folder the request points at
            path = Path(item.requests[0].adapter)
            return [str(path), (path / "adapter_model.safetensors").read_bytes().decode()]
        folder = Path(init.out) / "adapters" / item
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(f"weights of {item}".encode())
        return Trained(TrainResult(str(folder), 1, 1, 1, 1.0, 1.0, 0.1, 8), "fake", 0.0, 0.0)
    return handle


def test_adapters_travel_as_bytes_off_the_drivers_node(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv(ray_pool.SHIP_ENV, "always")  # as if every actor were on another node
    init = TrainInit("m", "peft", None, None, str(tmp_path / "out"))
    with RayPool(make_adapter_handler, init, 1, address=cluster) as pool:
        ((_, res),) = pool.run(["taskA"], lambda i: 30, time.monotonic() + 60)
    dest = tmp_path / "out" / "adapters" / "taskA"
    assert res.status is Status.OK and res.value.result.adapter == str(dest)
    assert (dest / "adapter_model.safetensors").read_bytes() == b"weights of taskA"  # written by the driver
    item = GenItem("main0", ("taskA",), (GenRequest((1,), str(dest), 4),))
    with RayPool(make_adapter_handler, init, 1, address=cluster) as pool:
        ((_, res),) = pool.run([item], lambda i: 30, time.monotonic() + 60)
    path, content = res.value
    assert path != str(dest) and content == "weights of taskA"  # served from the actor's own copy


# -- `run --executor ray` end to end -------------------------------------------------------------
def cli(args, cwd, **env):
    return [sys.executable, "-m", "submission", "run", *args], dict(
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, text=True)


def read_train(out: Path) -> list[dict]:
    path = out / "train.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_ray_run_gives_the_local_runs_submission(cluster, tmp_path):
    from submission.engines.tiny_model import TRAINED  # answers with grids: equal [[0]]s would prove nothing

    c = write_challenges(tmp_path / "c.json", {k: TASKS[k] for k in ("flip", "recolor", "t3")})
    subs = []
    for name, extra, env in (("local", [], {}), ("ray", RAY, {ray_pool.SHIP_ENV: "always"})):
        out = tmp_path / name
        args, kw = cli(["--challenges", str(c), "--model", str(TRAINED), "--out", str(out), *HF, *extra],
                       tmp_path, **env)
        r = subprocess.run(args, capture_output=True, timeout=900, **kw)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "adapters trained: 3, with adapter answers: 3" in r.stdout and parsed_answers(out) > 0
        subs.append(json.loads((out / "submission.json").read_text()))
    assert validate_submission(subs[1], load_challenges(c)) == []
    assert subs[0] == subs[1]  # adapters went out and back as bytes, and nothing changed
    assert all(r["status"] == "ok" for r in read_train(tmp_path / "ray"))


def busy_actor_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if line.split()[1:2] == ["ray::ArcWorker.work"]]


@pytest.mark.slow
def test_killing_an_actor_mid_run_loses_nothing(cluster, tmp_path, tiny_model):
    c = write_challenges(tmp_path / "c.json", TASKS)
    out = tmp_path / "out"
    args, kw = cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), *HF, *RAY], tmp_path,
                   ARC_TTT_FAULTS="slow_train_s=4")  # every TTT item takes >= 4 s: the killed actor is surely busy
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    wait_for(lambda: any("adapter" in r for r in read_train(out)), 300)
    busy = []
    wait_for(lambda: busy.extend(busy_actor_pids()) or busy, 60)
    before = read_train(out)
    os.kill(busy[0], signal.SIGKILL)  # the process of an actor working on an item
    stdout, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, stdout[-3000:]
    assert "retrying it on another actor" in stdout
    train = read_train(out)
    assert train[: len(before)] == before  # nothing finished was lost or redone
    assert sorted(r["task_id"] for r in train) == sorted(TASKS) and all(r["status"] == "ok" for r in train)
    sub = json.loads((out / "submission.json").read_text())
    assert validate_submission(sub, load_challenges(c)) == []
    assert "adapters trained: 5, with adapter answers: 5" in stdout


@pytest.mark.slow
def test_resume_after_killing_the_driver(cluster, tmp_path, tiny_model):
    c = write_challenges(tmp_path / "c.json", TASKS)
    out = tmp_path / "out"
    args, kw = cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), *HF, *RAY], tmp_path)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **kw)
    wait_for(lambda: sum("adapter" in r for r in read_train(out)) >= 2, 300)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver; Ray ends the actors it owned
    proc.wait()
    done_before = {r["task_id"] for r in read_train(out) if "adapter" in r}
    assert validate_submission(json.loads((out / "submission.json").read_text()), load_challenges(c)) == []

    r = subprocess.run(args, capture_output=True, timeout=900, **kw)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trained = [x["task_id"] for x in read_train(out) if "adapter" in x]
    assert sorted(trained) == sorted(TASKS)  # each task trained once: the finished ones were not redone
    assert done_before <= set(trained)
    assert validate_submission(json.loads((out / "submission.json").read_text()), load_challenges(c)) == []


@pytest.mark.slow
def test_sweep_runs_its_cells_at_once_on_the_cluster(cluster, tmp_path, tiny_model):
    c = write_challenges(tmp_path / "c.json", {k: TASKS[k] for k in ("flip", "t3")})
    out = tmp_path / "sweep"
    r = subprocess.run([sys.executable, "-m", "submission", "sweep", "--grid", "transforms=1,2", "--out", str(out),
                        "--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}", "--", "--challenges", str(c),
                        "--model", str(tiny_model), "--engine", "hf", "--trainer", "none", "--quick-transforms", "0",
                        "--score-augmentations", "0", "--extra-rounds", "0", "--max-new-tokens", "20"],
                       capture_output=True, timeout=900, **cli([], tmp_path)[1])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 at a time, 1 actor(s) each" in r.stdout  # the cluster's 2 slots split between the 2 cells
    for t in (1, 2):
        summary = json.loads((out / f"transforms-{t}" / "summary.json").read_text())
        assert summary["config"]["run"]["executor"] == "ray" and summary["config"]["run"]["transforms"] == t
    assert (out / "sweep.csv").read_text().count(",ok,") == 2 and (out / "score_vs_time.png").is_file()
