"""`build_submission.py wheels`: the pip command (the lock's hashes, this machine's pip settings
ignored), and a real pip download from a local index of small pure-Python wheels built here.
The helpers (make_wheel, local_index, small_lock) also serve test_packaging and test_kaggle_cli."""

import base64
import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
import build_submission as bs  # noqa: E402


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (), tag: str = "py3-none-any",
               payload: str = "") -> Path:
    """A minimal valid pure-Python wheel: one module, METADATA, WHEEL and RECORD."""
    module, dist = name.replace("-", "_"), f"{name.replace('-', '_')}-{version}"
    files = {f"{module}/__init__.py": f"__version__ = {version!r}\n{payload}",
             f"{dist}.dist-info/METADATA": "Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
             + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{dist}.dist-info/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"}
    record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).decode().rstrip('=')}"
                     f",{len(t.encode())}\n" for p, t in files.items()) + f"{dist}.dist-info/RECORD,,\n"
    files[f"{dist}.dist-info/RECORD"] = record
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, t in files.items():
            z.writestr(p, t)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def local_index(root: Path, wheels: list[Path]) -> str:
    """A PEP 503 simple index on disk (file:// URL) serving the wheels."""
    for w in wheels:
        project = root / "simple" / bs.canonical(w.name.split("-")[0])
        project.mkdir(parents=True, exist_ok=True)
        (project / "index.html").write_text(f'<a href="{w.as_uri()}#sha256={sha256(w)}">{w.name}</a>\n')
    return (root / "simple").as_uri()


def small_lock(path: Path, wheels: list[Path], cuda: str | None = None, python: str | None = None) -> Path:
    """A lock (pins + one sha256 each) and its manifest for the given wheels."""
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    entries = [{"name": bs.canonical(w.name.split("-")[0]), "version": w.name.split("-")[1], "filename": w.name,
                "sha256": sha256(w), "size": w.stat().st_size, "url": w.as_uri()} for w in wheels]
    path.write_text("".join(f"{e['name']}=={e['version']} \\\n    --hash=sha256:{e['sha256']}\n" for e in entries))
    manifest = {"python": python, "implementation": "cp", "platform": "manylinux x86_64", "glibc": "2.35",
                "cuda": cuda, "min_driver": 580 if cuda else None, "exclude_newer": "2026-12-01T00:00:00Z",
                "wheels": entries}
    path.with_suffix(".json").write_text(json.dumps(manifest))
    return path


def demo_wheels(folder: Path) -> list[Path]:
    return [make_wheel(folder, "arcttt-demo-a", "1.0"),
            make_wheel(folder, "arcttt-demo-b", "2.0", requires=("arcttt-demo-a==1.0",))]


def test_wheels_command_carries_the_lock_hashes_and_ignores_pip_config(capsys, monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")  # this machine's setting that leaked CPU torch
    assert bs.main(["wheels", "--dry-run", "--out", "/tmp/wh"]) == 0
    printed = capsys.readouterr().out
    cmd = bs.wheels_command(type("A", (), {"lock": bs.LOCK, "out": "/tmp/wh", "index_url": "https://pypi.org/simple"}),
                            bs.read_manifest(bs.LOCK))
    assert " ".join(cmd[1:4]) in printed and printed.startswith("PIP_CONFIG_FILE=/dev/null ")
    for flag in ("--isolated", "--require-hashes", "--no-deps", "--only-binary=:all:"):
        assert flag in cmd
    assert cmd[cmd.index("-r") + 1] == str(bs.LOCK) and cmd[cmd.index("--index-url") + 1] == "https://pypi.org/simple"
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and "cp312" in cmd and "--find-links" not in cmd
    platforms = {cmd[i + 1] for i, c in enumerate(cmd) if c == "--platform"}
    for tag in ("manylinux_2_18", "manylinux_2_24", "manylinux_2_25", "manylinux_2_27", "manylinux_2_31"):
        assert f"{tag}_x86_64" in platforms  # nccl, bitsandbytes, cupti, cublas/cudnn, llguidance
    # the lock the command reads carries one sha256 per wheel: pip refuses anything else
    assert all(len(h) == 1 for h in bs.read_lock_hashes(bs.LOCK).values())
    env = bs.pip_env()
    assert env["PIP_CONFIG_FILE"] == os.devnull and not any(k.startswith("PIP_") and k != "PIP_CONFIG_FILE"
                                                              for k in env)


def test_wheels_downloads_exactly_the_lock_and_ignores_local_wheels(tmp_path, monkeypatch):
    wheels = demo_wheels(tmp_path / "dist")
    index = local_index(tmp_path / "index", wheels)
    lock = small_lock(tmp_path / "lock.txt", wheels)
    decoys = tmp_path / "decoys"  # a find-links folder like this machine's, with a different build of demo-a
    make_wheel(decoys, "arcttt-demo-a", "1.0", payload="DECOY = True\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(decoys))
    out = tmp_path / "wheelhouse"
    assert bs.main(["wheels", "--lock", str(lock), "--index-url", index, "--out", str(out), "--owner", "me"]) == 0
    assert sorted(p.name for p in out.glob("*.whl")) == sorted(w.name for w in wheels)
    for w in wheels:
        assert sha256(out / w.name) == sha256(w)  # not the decoy
    assert json.loads((out / bs.WHEELHOUSE_MARK).read_text()) == json.loads(lock.with_suffix(".json").read_text())
    meta = json.loads((out / "dataset-metadata.json").read_text())
    assert meta["id"] == "me/arc-ttt-wheels" and len(meta["licenses"]) == 1


def test_wheels_refuses_a_wheel_whose_hash_differs_from_the_lock(tmp_path):
    wheels = demo_wheels(tmp_path / "dist")
    lock = small_lock(tmp_path / "lock.txt", wheels)
    make_wheel(tmp_path / "dist", "arcttt-demo-b", "2.0", requires=("arcttt-demo-a==1.0",), payload="X = 1\n")
    index = local_index(tmp_path / "index", wheels)  # serves the rebuilt demo-b: another sha256
    out = tmp_path / "wheelhouse"
    assert bs.main(["wheels", "--lock", str(lock), "--index-url", index, "--out", str(out)]) != 0
    assert not (out / bs.WHEELHOUSE_MARK).exists()


def test_check_wheelhouse_refuses_cpu_builds_and_foreign_files(tmp_path):
    wheels = demo_wheels(tmp_path / "wh")
    manifest = bs.read_manifest(small_lock(tmp_path / "lock.txt", wheels))
    assert bs.check_wheelhouse(tmp_path / "wh", manifest) == []
    make_wheel(tmp_path / "wh", "torch", "2.13.0+cpu")
    wheels[0].write_bytes(wheels[0].read_bytes() + b"\0")
    problems = "\n".join(bs.check_wheelhouse(tmp_path / "wh", manifest))
    assert "torch-2.13.0+cpu-py3-none-any.whl: a local build (+cpu), refused" in problems
    assert f"{wheels[0].name}: sha256" in problems
