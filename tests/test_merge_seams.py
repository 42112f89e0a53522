"""Where the parts built in parallel meet: validate reads knowledge like a run does; a dry run
of a task with prompt variants counts the dev requests; `--limit` also caps the dev split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.cli import main

ROOT = Path(__file__).resolve().parent.parent
KB_CASE = ROOT / "tests" / "fixtures" / "field_cases" / "13-kb-edge"


def _error_line(result) -> str:
    lines = [ln for ln in (result.output or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("case, expected", [
    ("task_latin1.yaml", "café.txt:1: not UTF-8 text (byte 6: 0xe9)"),
    ("task_dup.yaml", "kb_dup.jsonl:3: id: duplicate id 'returns' (first on line 1)"),
])
def test_validate_reads_the_knowledge_base_as_the_run_does(case, expected):
    r = CliRunner().invoke(main, ["validate", str(KB_CASE / case)])
    assert r.exit_code == 2, r.output
    assert expected in _error_line(r)


def _small_trec(tmp_path: Path, n_train: int = 60, n_eval: int = 5) -> Path:
    src = ROOT / "sample_tasks" / "trec"
    dst = tmp_path / "trec"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.py", "README.md"))
    for split, n in (("train", n_train), ("eval", n_eval)):
        path = dst / "data" / f"{split}.jsonl"
        path.write_text("\n".join(path.read_text().splitlines()[:n]) + "\n")
    return dst / "task.yaml"


@pytest.mark.slow  # counts tokens with the embedded model's tokenizer (converts the model once)
def test_dry_run_of_a_task_with_prompt_variants_counts_the_dev_requests(tmp_path):
    import yaml

    task_file = _small_trec(tmp_path)
    spec = yaml.safe_load(task_file.read_text())
    n_wordings = 1 + len(spec["prompt"]["variants"])
    out = tmp_path / "estimate.json"
    r = CliRunner().invoke(main, ["run", str(task_file), "--dry-run", "--lever", "prompt", "--latency-probe", "0",
                                  "--json", str(out), "--set", "prompt.dev_size=7"])
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())
    rows = rows["dry_run"]
    assert rows[0]["requests"] == 5 + 7 * n_wordings  # eval items + every wording on the dev split
    r = CliRunner().invoke(main, ["run", str(task_file), "--dry-run", "--lever", "prompt", "--latency-probe", "0",
                                  "--json", str(out), "--set", "prompt.dev_size=7", "--limit", "3"])
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())
    rows = rows["dry_run"]
    assert rows[0]["requests"] == 3 + 3 * n_wordings  # --limit caps the dev split too
