"""A run folder belongs to one configuration. Every setting that changes what a run answers (the
config fields whose knob says `answers=True`: the default, so a new setting fails closed) and the
identity of the model folder are written to OUT/run.json by the first run; a later run into the same
folder resumes only if they are the same, else it stops before any work and says which differ.
Settings that change when, not what (budget, workers, chunk sizes, executor) may differ on resume.

`--adapters-from RUN` answers with another run folder's adapters (an A/B of inference settings on the
same TTT): the settings that shape an adapter (training_settings) and the model must match that folder's."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

from submission.arc.data import DataError
from submission.arc.submission_io import write_json_atomic
from submission.knobs import answers_of
from submission.pipeline.config import Settings

RECORD = "run.json"
# what a run leaves in its folder that answers depend on (moved aside together by --fresh)
RUN_FILES = ("train.jsonl", "predictions.jsonl", "scores.jsonl", "programs.jsonl", "results.jsonl", "summary.json",
             "report.html", "adapters", RECORD)
# the settings that shape an adapter (with the TTT data and training configs' fields and the model)
TRAINING_RUN_FIELDS = ("seed", "trainer", "adapter", "preset", "dtype")
WEIGHT_SAMPLE = 1 << 20  # bytes hashed from each end of a weights file: a retrained model differs there


def answer_settings(settings: Settings) -> dict[str, Any]:
    """{field: value} of every setting that changes answers, as JSON would hold it."""
    out = {}
    for stage in (settings.run, settings.ttt, settings.train, settings.gen, settings.search):
        out |= {f.name: getattr(stage, f.name) for f in fields(stage) if answers_of(f)}
    return json.loads(json.dumps(out))


def model_identity(model_dir: str | Path) -> str:
    """A digest of a model folder's contents that a copy keeps and a retrained model changes: every file's
    name and size, the small files whole (config, tokenizer), and the first and last MiB of each weights
    file with its safetensors header. Reads a few MiB, never the whole weights."""
    d = Path(model_dir)
    h = hashlib.sha256()
    for f in sorted(p for p in d.rglob("*") if p.is_file()):
        size = f.stat().st_size
        h.update(f"{f.relative_to(d)}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= 2 * WEIGHT_SAMPLE:
                h.update(fh.read())
            else:
                h.update(fh.read(WEIGHT_SAMPLE))
                fh.seek(size - WEIGHT_SAMPLE)
                h.update(fh.read(WEIGHT_SAMPLE))
    return h.hexdigest()


def training_settings(settings: Settings) -> dict[str, Any]:
    """{field: value} of the settings an adapter depends on."""
    names = {f.name for stage in (settings.ttt, settings.train) for f in fields(stage)} | set(TRAINING_RUN_FIELDS)
    return {k: v for k, v in answer_settings(settings).items() if k in names}


def record(settings: Settings) -> dict:
    return {"answers": answer_settings(settings), "model": model_identity(settings.run.model)}


def borrow_adapters(out: Path, source: Path, now: dict, training: set[str]) -> str:
    """Start `out` from `source`'s trained adapters (its train.jsonl), if they were trained as this run
    would train them."""
    path = source / RECORD
    if not (source / "train.jsonl").is_file() or not path.is_file():
        raise DataError(f"--adapters-from {source}: not a run folder with adapters (no train.jsonl or {RECORD})")
    before = json.loads(path.read_text())
    mine = {"model": now["model"], "answers": {k: v for k, v in now["answers"].items() if k in training}}
    theirs = {"model": before.get("model"),
              "answers": {k: v for k, v in before.get("answers", {}).items() if k in training}}
    if why := differences(theirs, mine):
        raise DataError(f"--adapters-from {source}: its adapters were trained otherwise:\n  " + "\n  ".join(why))
    shutil.copy(source / "train.jsonl", out / "train.jsonl")
    paths = {json.loads(line).get("adapter") for line in (source / "train.jsonl").read_text().splitlines()
             if line.strip().startswith("{")} - {None}
    gone = sorted(p for p in paths if not (Path(p) / "adapter_model.safetensors").is_file())
    return f"answering with the adapters of {source}" + (
        f"; {len(gone)} of its {len(paths)} adapters are gone (a run deletes each once answered unless "
        f"--keep-adapters): those tasks train here" if gone else "")


def differences(before: dict, now: dict) -> list[str]:
    """'--flag: before X, now Y' for every answer-changing setting that differs (and the model)."""
    out = []
    if before.get("model") != now["model"]:
        out.append("the model folder's contents differ (another model, or the same path retrained)")
    old, new = before.get("answers", {}), now["answers"]
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name, "(unset)"), new.get(name, "(unset)")
        if a != b:
            out.append(f"--{name.replace('_', '-')}: before {a!r}, now {b!r}")
    return out


def previous_work(out: Path) -> list[str]:
    return [name for name in RUN_FILES if (out / name).exists()]


def claim(out: Path, settings: Settings, fresh: bool) -> str | None:
    """Make `out` this configuration's folder: a new folder is claimed, the same configuration resumes,
    another one stops here with what differs, unless `fresh` moves its work to OUT/previous-N/ first.
    Returns a line to log (None when there is nothing to say)."""
    now, path = record(settings), out / RECORD
    found = previous_work(out)
    lines = []
    before = json.loads(path.read_text()) if path.is_file() else None
    if before is not None and not differences(before, now):
        return None  # the same configuration: resume
    if found and not fresh:
        why = differences(before, now) if before is not None else [
            f"it holds work ({', '.join(found)}) but no {RECORD}: the configuration that made it is unknown"]
        raise DataError(f"--out {out} belongs to another configuration:\n  " + "\n  ".join(why)
                        + f"\nEither give a new --out, or add --fresh to move that folder's earlier answers and "
                          f"adapters to {out}/previous-N/ and start over there.")
    if found:
        aside = next(out / f"previous-{n}" for n in range(1, 10_000) if not (out / f"previous-{n}").exists())
        aside.mkdir()
        for name in found:
            shutil.move(str(out / name), str(aside / name))
        lines.append(f"--fresh: the earlier work in {out} ({', '.join(found)}) was moved to {aside}")
    out.mkdir(parents=True, exist_ok=True)
    if settings.run.adapters_from:
        lines.append(borrow_adapters(out, Path(settings.run.adapters_from), now, set(training_settings(settings))))
    write_json_atomic(path, now)
    return "\n".join(lines) or None
