"""results.json, a run's machine-readable record: where it lies in a run folder, and reading it back.

`advise show`, `advise report` and `advise compare` all read it here, so a missing, broken or foreign
file is the same one-line error (exit 2) whichever command met it.

    results = load_results(Path("runs/trec-question-type"))
    results["recommendation"]["lever"]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advisor.errors import InputError
from advisor.textio import read_text

RESULTS_FILE = "results.json"
# What every results.json holds (advisor.runner.RunResult.to_json); the readers rely on these.
REQUIRED_KEYS = ("task", "kind", "target", "recommendation")


def results_path(run: Path) -> Path:
    """`run` itself when it is a file, else the results.json in the run folder `run`."""
    return run if run.is_file() else run / RESULTS_FILE


def load_results(run: Path) -> dict[str, Any]:
    """The results of the run folder (or results.json file) `run`.

    Raises InputError naming the file (and line) when it is missing, not UTF-8, broken JSON, or not
    an advise results file.
    """
    path = results_path(run)
    if not path.is_file():
        raise InputError(f"no {RESULTS_FILE} here; run 'advise run TASK' (or with --out DIR) first", file=path)
    try:
        results = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise InputError(f"broken JSON: {e.msg} (column {e.colno})", file=path, line=e.lineno) from None
    if not isinstance(results, dict) or not isinstance(results.get("levers"), list):
        raise InputError("not an advise results file (no 'levers' list)", file=path, field="levers")
    for key in REQUIRED_KEYS:
        if key not in results:
            raise InputError(f"not an advise results file (no '{key}')", file=path, field=key)
    return results
