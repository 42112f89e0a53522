"""The adapter store: fine-tuned LoRA adapters as versioned artifacts under `<cache>/adapters/`.

    <cache_dir>/adapters/<version>/
        adapter_config.json, adapter_model.safetensors   peft's format (PeftModel.from_pretrained)
        meta.json       base model, data hash, config, n_train, steps, seconds, losses, metrics
        checkpoints/    only while training: what a killed run resumes from

The version is a hash of (base model identity, training data hash, training config),
so an unchanged rerun finds the finished adapter and reuses it. An adapter is
complete once its `meta.json` exists; it is written last, atomically.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from advisor.data import stable_hash

ADAPTERS = "adapters"
META = "meta.json"
WEIGHTS = "adapter_model.safetensors"


def adapter_version(base_identity: str, data_hash: str, config: dict[str, Any]) -> str:
    """Content address of an adapter: the same base, data and config give the same version."""
    return "lora-" + stable_hash({"base": base_identity, "data": data_hash, "config": config})[:16]


def adapter_path(cache_dir: Path, version: str) -> Path:
    return Path(cache_dir) / ADAPTERS / version


def is_complete(path: Path) -> bool:
    return (path / META).is_file() and (path / WEIGHTS).is_file()


def read_meta(path: Path) -> dict[str, Any]:
    return json.loads((path / META).read_text(encoding="utf-8"))


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Write meta.json via a temp file and a rename: it is there whole or not at all."""
    tmp = path / f".{META}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path / META)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_metrics(cache_dir: Path, version: str, metrics: dict[str, float], **where: Any) -> None:
    """Add scores to an adapter's meta.json once they are known (the runner calls this).

    `where` says what produced them, e.g. task="trec", eval_hash="..."; kept beside the numbers.
    """
    path = adapter_path(cache_dir, version)
    with _locked(path):
        meta = read_meta(path)
        meta["metrics"] = {**meta.get("metrics", {}), **metrics}
        if where:
            meta["metrics_from"] = where
        write_meta(path, meta)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_adapters(cache_dir: Path) -> list[dict[str, Any]]:
    """Every adapter in the store, newest first; what `advise adapters` prints.

    Each row: version, path, status ("ready"; "training": a process holds it now; "partial": a
    stopped run that the next run resumes; for the last two, steps and best_val_loss are
    those of the newest checkpoint, the rest None),
    size_bytes, base_model, data_hash, n_train, steps, train_seconds, best_val_loss,
    metrics, created.
    """
    root = Path(cache_dir) / ADAPTERS
    rows: list[dict[str, Any]] = []
    if not root.is_dir():
        return rows
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if is_complete(path):
            meta = read_meta(path)
            status = "ready"
        else:
            meta, status = _unfinished(path), "training" if _is_locked(path) else "partial"
        rows.append(
            {
                "version": path.name,
                "path": str(path),
                "status": status,
                "size_bytes": _size(path),
                "base_model": meta.get("base_model"),
                "data_hash": meta.get("data_hash"),
                "n_train": meta.get("n_train"),
                "steps": meta.get("steps"),
                "train_seconds": meta.get("train_seconds"),
                "best_val_loss": meta.get("best_val_loss"),
                "metrics": meta.get("metrics", {}),
                "created": meta.get("created")
                or datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds"),
                "task": meta.get("task"),
                "lever": meta.get("lever"),
            }
        )
    return sorted(rows, key=lambda r: r["created"] or "", reverse=True)


def _unfinished(path: Path) -> dict[str, Any]:
    """What the newest checkpoint of an unfinished adapter says (steps done, best validation loss)."""
    found = sorted((path / "checkpoints").glob("ckpt-[0-9]*/state.json"))
    if not found:
        return {"steps": 0}
    try:
        state = json.loads(found[-1].read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):  # being replaced right now
        return {}
    return {"steps": state.get("step"), "best_val_loss": state.get("best_val"),
            "train_seconds": state.get("train_seconds")}


def _is_locked(path: Path) -> bool:
    """Whether a process holds this version's training lock now (without waiting for it)."""
    lock_path = path.parent / f".{path.name}.lock"
    if not lock_path.exists():
        return False
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on one version: a second process waits, then finds the work done."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


training_lock = _locked


def load_merged(model: Any, path: Path) -> Any:
    """A copy of `model` with the adapter at `path` merged in: a plain model, as fast as the base.

    The shared base model is left untouched (prompt levers keep using it).
    """
    from peft import PeftModel

    from baselines.lora_train import peft_quiet

    with peft_quiet():
        peft_model = PeftModel.from_pretrained(copy.deepcopy(model), str(path))
    return peft_model.merge_and_unload().eval()
