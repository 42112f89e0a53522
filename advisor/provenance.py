"""Where a run's figures came from: the task and prompt hashes, the data, the package versions,
the code's git commit, the machine and the command line (results.json `provenance`).

    provenance(task, data, Path("sample_tasks/trec/task.yaml"))["git"]   # {"commit": "...", "dirty": False}
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from advisor.data import Dataset, stable_hash
from advisor.spec import Task

PACKAGES = ("advise", "torch", "transformers", "peft", "sentence-transformers", "chromadb", "openai")


def versions() -> dict[str, str]:
    """Python's version and each of PACKAGES' ("not installed" when absent)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state() -> dict[str, Any]:
    """The commit of the code that ran and whether the work tree had changes; None for both
    outside a git checkout (an installed package) or without git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def provenance(task: Task, data: Dataset, task_file: Path | None) -> dict[str, Any]:
    """results.json `provenance`: model, task file and hashes, data hashes and sizes, what leakage
    was removed, versions, git state, platform, argv and when."""
    return {
        "model": task.model,
        "task_file": str(task_file) if task_file else None,
        "task_sha256": stable_hash(task.model_dump(mode="json"))[:16],
        # The wording, not how many dev items chose among wordings (`--limit` caps dev_size).
        "prompt_sha256": stable_hash(task.prompt.model_dump(exclude={"dev_size"}))[:16],
        "data": {**data.hashes(), "n_train": len(data.train), "n_eval": len(data.eval),
                 "leakage_removed": data.leakage_removed,
                 "near_leakage_removed": data.near_leakage_removed},
        "versions": versions(),
        "git": git_state(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

