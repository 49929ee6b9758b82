"""Build a Kaggle offline submission kernel in one command.

    python build_submission.py --owner you --model-source you/qwen-arc/transformers/default/1 \\
        --wheels-dataset you/arc-ttt-wheels                       # -> kernels/arc-ttt-arc-prize-2025/
    python build_submission.py wheels --out wheelhouse            # the offline wheelhouse dataset

The kernel folder holds kernel-metadata.json (internet off, GPU on, sources attached) and the
notebook, generated with nbformat from notebooks/kaggle_template.py, with the `submission`
package embedded (or, with --package dataset, shipped as a dataset folder beside it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TEMPLATE = ROOT / "notebooks" / "kaggle_template.py"
KAGGLE_LIMIT_S, MARGIN_S = 12 * 3600, 600


def read_lock(path: Path) -> dict[str, str]:
    """{package: version} for every '==' pin of a requirements file."""
    lock = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s#;]+)", line)
        if m:
            lock[m.group(1).lower()] = m.group(2)
    return lock


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
            out.append(("markdown", "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.strip().splitlines())))
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


def build_kernel(args: argparse.Namespace) -> Path:
    import nbformat

    slug = args.slug or f"arc-ttt-{args.competition}"
    out = Path(args.out or ROOT / "kernels" / slug)
    out.mkdir(parents=True, exist_ok=True)
    lock = read_lock(Path(args.lock))
    settings = {"competition": args.competition, "budget": args.budget, "require_gpu": not args.no_gpu_check,
                "model_path": args.model_path, "run_args": shlex.split(args.run_args), "lock": lock}
    nb = render_notebook(settings, embed=args.package == "embed")
    nb_name = f"{slug}.ipynb"
    nbformat.write(nb, out / nb_name)
    datasets = [d for d in (args.wheels_dataset, *args.dataset) if d]
    if args.package == "dataset":
        pkg = out / "package"
        with zipfile.ZipFile(io.BytesIO(package_zip())) as z:
            z.extractall(pkg)
        (pkg / "dataset-metadata.json").write_text(json.dumps(
            {"title": f"{slug} code", "id": f"{args.owner}/{slug}-code", "licenses": [{"name": "apache-2.0"}]}, indent=1))
        datasets.append(f"{args.owner}/{slug}-code")
    meta = {
        "id": f"{args.owner}/{slug}", "title": args.title or slug, "code_file": nb_name, "language": "python",
        "kernel_type": "notebook", "is_private": True, "enable_gpu": True, "enable_tpu": False,
        "enable_internet": False,  # Kaggle defaults to true when omitted; competitions require false
        "machine_shape": args.machine, "competition_sources": [args.competition], "dataset_sources": datasets,
        "kernel_sources": [], "model_sources": [args.model_source] if args.model_source else [],
    }
    (out / "kernel-metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out / nb_name} and {out / 'kernel-metadata.json'}")
    print(f"next: kaggle kernels push -p {out}")
    return out


def wheels_command(args: argparse.Namespace) -> list[str]:
    """pip download of the GPU lock's wheels for the Kaggle image (CPython 3.11, manylinux x86_64)."""
    return [sys.executable, "-m", "pip", "download", "-r", str(args.lock), "-d", str(args.out), "--only-binary=:all:",
            "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
            "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64", "--platform", "linux_x86_64"]


def build_wheels(args: argparse.Namespace) -> int:
    cmd = wheels_command(args)
    print(" ".join(shlex.quote(c) for c in cmd))
    if args.dry_run:
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(cmd, check=True)
    manifest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.whl"))}
    (out / "MANIFEST.sha256.json").write_text(json.dumps(manifest, indent=1))
    (out / "dataset-metadata.json").write_text(json.dumps(
        {"title": args.title, "id": f"{args.owner}/{args.slug}", "licenses": [{"name": "other"}]}, indent=1))
    print(f"{len(manifest)} wheels in {out}; next: kaggle datasets create -p {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["wheels"]:
        ap = argparse.ArgumentParser(prog="build_submission.py wheels")
        ap.add_argument("--out", default="wheelhouse")
        ap.add_argument("--lock", default=str(ROOT / "requirements-gpu.txt"))
        ap.add_argument("--owner", default="YOUR_KAGGLE_NAME")
        ap.add_argument("--slug", default="arc-ttt-wheels")
        ap.add_argument("--title", default="arc-ttt wheels")
        ap.add_argument("--dry-run", action="store_true", help="print the pip command only")
        return build_wheels(ap.parse_args(argv[1:]))
    ap = argparse.ArgumentParser(prog="build_submission.py", description=__doc__.splitlines()[0])
    ap.add_argument("--competition", default="arc-prize-2025", help="competition slug (2024, 2025, 2026 work)")
    ap.add_argument("--model-source", default="", help="Kaggle Models handle owner/model/framework/variation/version")
    ap.add_argument("--model-path", default="", help="fixed model folder in the kernel (default: search /kaggle/input)")
    ap.add_argument("--wheels-dataset", default="", help="owner/slug of the wheelhouse dataset")
    ap.add_argument("--dataset", action="append", default=[], help="more dataset sources (e.g. a model as a dataset)")
    ap.add_argument("--machine", default="NvidiaL4", help="machine_shape: NvidiaL4, NvidiaTeslaT4, ...")
    ap.add_argument("--owner", default="YOUR_KAGGLE_NAME")
    ap.add_argument("--title", default="")
    ap.add_argument("--slug", default="")
    ap.add_argument("--out", default="", help="kernel folder (default kernels/<slug>/)")
    ap.add_argument("--package", choices=("embed", "dataset"), default="embed")
    ap.add_argument("--lock", default=str(ROOT / "requirements-gpu.txt"), help="the pins the notebook checks")
    ap.add_argument("--budget", type=int, default=KAGGLE_LIMIT_S - MARGIN_S, help="seconds for the whole notebook")
    ap.add_argument("--run-args", default="", help="extra `python -m submission run` flags to bake in")
    ap.add_argument("--no-gpu-check", action="store_true", help="for CPU dry runs of the notebook")
    build_kernel(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
