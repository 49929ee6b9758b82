"""The real Kaggle CLI (the `kaggle` package) run on what build_submission.py writes, with dummy
credentials and only its network intercepted (requests.Session.send, where every call it makes
ends): its own checks must pass, and what it would send is asserted. Also the README's submit
flow, command by command, through the CLI's own argument parser."""

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from test_kaggle_wheels import demo_wheels, local_index, small_lock  # noqa: E402

import build_submission  # noqa: E402


class FakeKaggle:
    """Kaggle's servers as the CLI sees them: records each request, answers the few it needs."""

    def __init__(self):
        self.calls: list[tuple[str, str, dict | None]] = []
        self.uploaded: dict[str, int] = {}

    def send(self, request, **_):
        url, body = request.url, None
        if request.headers.get("Content-Type") == "application/json" and request.body:
            body = json.loads(request.body)
        self.calls.append((request.method, url, body))
        method = url.rsplit("/", 1)[-1]
        if url.startswith("https://upload.invalid/"):  # the resumable upload of one file
            data = request.body.read() if hasattr(request.body, "read") else (request.body or b"")
            self.uploaded[url.rsplit("/", 1)[-1]] = len(data)
            return self.answer(request, {})
        answers = {
            "GetDatasetStatus": (404, {"code": 404, "message": "Not found"}),
            "StartBlobUpload": (200, {"token": f"tok-{(body or {}).get('name')}",
                                      "createUrl": f"https://upload.invalid/{(body or {}).get('name')}"}),
            "CreateDataset": (200, {"ref": "ok", "url": "https://www.kaggle.com/datasets/x", "status": "ok"}),
            "SaveKernel": (200, {"ref": "ok", "url": "https://www.kaggle.com/code/x", "versionNumber": 3}),
            "CreateCodeSubmission": (200, {"message": "Submission successful", "ref": 7}),
            "GetKernelSessionStatus": (200, {"status": "COMPLETE"}),
        }
        if method not in answers:
            raise AssertionError(f"unexpected network call: {request.method} {url}")
        return self.answer(request, *answers[method][::-1])

    @staticmethod
    def answer(request, payload, status=200):
        r = requests.Response()
        r.status_code, r._content, r.url, r.request = status, json.dumps(payload).encode(), request.url, request
        r.headers["Content-Type"] = "application/json"
        return r

    def bodies(self, method: str) -> list[dict]:
        return [b for _, url, b in self.calls if url.endswith("/" + method)]


@pytest.fixture
def kaggle_api(tmp_path, monkeypatch):
    """An authenticated KaggleApi (dummy key, nothing read from this machine) and the fake server."""
    for k in ("KAGGLE_API_TOKEN", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_IS_COMPETITION_RERUN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    monkeypatch.setenv("KAGGLE_USERNAME", "me")
    monkeypatch.setenv("KAGGLE_KEY", "0" * 32)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the CLI keeps upload state in the temp dir
    fake = FakeKaggle()
    monkeypatch.setattr(requests.Session, "send", lambda self, request, **kw: fake.send(request, **kw))
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    return api, fake


def test_kernels_push_accepts_the_kernel_folder(tmp_path, kaggle_api):
    api, fake = kaggle_api
    out = tmp_path / "kernel"
    build_submission.main(["--out", str(out), "--owner", "me", "--competition", "arc-prize-2025",
                           "--model-source", "me/qwen-arc/transformers/default/1",
                           "--wheels-dataset", "me/arc-ttt-wheels", "--dataset", "me/more-data",
                           "--machine", "NvidiaL4"])
    result = api.kernels_push(str(out))
    assert result.version_number == 3
    (sent,) = fake.bodies("SaveKernel")
    assert sent["slug"] == "me/arc-ttt-arc-prize-2025" and sent["newTitle"] == "arc-ttt-arc-prize-2025"
    assert sent["language"] == "python" and sent["kernelType"] == "notebook"
    assert sent["competitionDataSources"] == ["arc-prize-2025"]
    assert sent["datasetDataSources"] == ["me/arc-ttt-wheels", "me/more-data"]
    assert sent["modelDataSources"] == ["me/qwen-arc/transformers/default/1"]
    assert sent["machineShape"] == "NvidiaL4" and sent["enableGpu"] is True
    assert sent.get("enableInternet", False) is False  # Kaggle's default is true: it must be sent as false
    nb = json.loads(sent["text"])  # the code file itself, as the CLI read it
    assert any("find_competition_files" in c["source"] for c in nb["cells"] if c["cell_type"] == "code")


def test_datasets_create_accepts_the_wheelhouse_and_the_package_folders(tmp_path, kaggle_api):
    api, fake = kaggle_api
    wheels = demo_wheels(tmp_path / "dist")
    lock = small_lock(tmp_path / "lock.txt", wheels)
    wheelhouse = tmp_path / "wheelhouse"
    assert build_submission.main(["wheels", "--lock", str(lock), "--out", str(wheelhouse), "--owner", "me",
                                  "--index-url", local_index(tmp_path / "index", wheels)]) == 0
    result = api.dataset_create_new(str(wheelhouse), quiet=True)
    assert not result.error, result.error
    (sent,) = fake.bodies("CreateDataset")
    assert (sent["ownerSlug"], sent["slug"], sent["title"]) == ("me", "arc-ttt-wheels", "arc-ttt wheels")
    assert sent["isPrivate"] is True and len(sent["files"]) == 3  # two wheels and the manifest
    for w in wheels:
        assert fake.uploaded[w.name] == w.stat().st_size
    assert build_submission.WHEELHOUSE_MARK in fake.uploaded

    kernel = tmp_path / "kernel"
    build_submission.main(["--out", str(kernel), "--owner", "me", "--competition", "arc-prize-2025", "--package",
                           "dataset"])
    result = api.dataset_create_new(str(kernel / "package"), quiet=True, dir_mode="zip")
    assert not result.error, result.error
    sent = fake.bodies("CreateDataset")[-1]
    assert (sent["ownerSlug"], sent["slug"]) == ("me", "arc-ttt-arc-prize-2025-code")
    assert fake.uploaded["submission.zip"] > 10_000  # the package folder, zipped by the CLI


def readme_commands() -> list[list[str]]:
    """The `kaggle ...` commands of the README's "Submit to Kaggle" section, joined and split."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Submit to Kaggle", 1)[1].split("\n## ", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", section)
    return [shlex.split(line.split("  #")[0])[1:] for line in joined.splitlines() if line.startswith("kaggle ")]


def run_cli(monkeypatch, api, argv: list[str]) -> None:
    import kaggle.cli

    monkeypatch.setattr(kaggle.cli, "api", api)
    monkeypatch.setattr(sys, "argv", ["kaggle", *argv])
    kaggle.cli.main()


def test_readme_submit_flow_through_the_cli(tmp_path, kaggle_api, monkeypatch):
    api, fake = kaggle_api
    commands = readme_commands()
    verbs = [tuple(c[:2]) for c in commands]
    for step in [("datasets", "create"), ("kernels", "push"), ("kernels", "status"), ("competitions", "submit")]:
        assert step in verbs, f"README lacks `kaggle {' '.join(step)}`"
    order = [verbs.index(step) for step in [("kernels", "push"), ("kernels", "status"), ("competitions", "submit")]]
    assert order == sorted(order)
    status = commands[verbs.index(("kernels", "status"))]
    run_cli(monkeypatch, api, [a.replace("YOU", "me") for a in status])
    assert fake.bodies("GetKernelSessionStatus")[-1]["kernelSlug"] == "arc-ttt-arc-prize-2025"
    submit = [a.replace("YOU", "me").replace("N", "3") if a in ("YOU/arc-ttt-arc-prize-2025", "N") else a
              for a in commands[verbs.index(("competitions", "submit"))]]
    run_cli(monkeypatch, api, submit)
    (sent,) = fake.bodies("CreateCodeSubmission")
    assert sent["fileName"] == "submission.json" and sent["kernelVersion"] == 3
    assert sent["kernelSlug"] == "arc-ttt-arc-prize-2025" and sent["competitionName"].startswith("arc-prize-")


def test_cli_refuses_a_code_submission_without_the_file(kaggle_api, monkeypatch, capsys):
    api, fake = kaggle_api
    with pytest.raises(SystemExit):
        run_cli(monkeypatch, api, ["competitions", "submit", "arc-prize-2025", "-k", "me/arc-ttt-arc-prize-2025",
                                   "-v", "3", "-m", "TTT"])
    assert "No file specified" in capsys.readouterr().err and not fake.bodies("CreateCodeSubmission")
