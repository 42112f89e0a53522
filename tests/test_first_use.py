"""What a new user meets first: errors that name the typo, the schema, the help, `advise adapters`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from advisor.cli import main
from advisor.errors import InputError
from advisor.report.adapter_table import adapters_table
from advisor.spec import load_task, task_json_schema
from baselines import adapters

ROOT = Path(__file__).resolve().parent.parent

TASK = """\
name: t
kind: classification
labels: [a, b]
data: {train: train.jsonl, eval: eval.jsonl}
target:
  metric: accuracy
  threshold: 0.8
levers: [prompt, prompt-few-shot]
lever_options:
  prompt-few-shot: {k: 2}
"""


def _error(tmp_path: Path, text: str) -> InputError:
    path = tmp_path / "task.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        load_task(path)
    return e.value


def test_a_misspelled_nested_key_is_named_on_its_own_line(tmp_path):
    e = _error(tmp_path, TASK.replace("  threshold: 0.8", "  treshold: 0.8"))
    assert e.line == 7 and e.field == "target.treshold"
    assert e.message.startswith("unknown key 'treshold'. Did you mean 'threshold'?")
    assert "Field required" not in str(e) and "more)" not in str(e)  # the missing key is its echo
    assert str(e).startswith(f"{tmp_path / 'task.yaml'}:7: target.treshold: unknown key 'treshold'")


def test_an_unrelated_second_error_is_still_counted(tmp_path):
    e = _error(tmp_path, TASK.replace("  threshold: 0.8", "  treshold: 0.8").replace("kind: classification",
                                                                                     "kind: sorting"))
    assert e.field == "target.treshold" and e.message.endswith("(and 1 more)")


def test_a_misspelled_lever_is_named_whatever_else_the_file_holds(tmp_path):
    # The lever_options entry no longer matches a lever: the typo is the news, not the mismatch.
    e = _error(tmp_path, TASK.replace("levers: [prompt, prompt-few-shot]", "levers: [prompt, few-shot]"))
    assert e.message.startswith("unknown lever 'few-shot'. Did you mean 'prompt-few-shot'?")
    assert e.field == "levers" and e.line == 8
    block = TASK.replace("levers: [prompt, prompt-few-shot]", "levers:\n  - prompt\n  - promt\n")
    e = _error(tmp_path, block.replace("target:", "bogus: 1\ntarget:"))
    assert e.message.startswith("unknown lever 'promt'. Did you mean 'prompt'?") and e.line == 11


def test_the_cli_prints_the_typo_on_one_line_with_exit_code_2(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(TASK.replace("  threshold: 0.8", "  treshold: 0.8"))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {path}:7: target.treshold: unknown key 'treshold'. Did you mean 'threshold'? "
        "(check the spelling; `advise schema` lists the keys)"
    ]


def test_schema_lists_the_task_keys_before_defs():
    schema = task_json_schema()
    keys = list(schema)
    assert keys.index("properties") < keys.index("$defs") == len(keys) - 1
    printed = CliRunner().invoke(main, ["schema"]).output
    assert printed.index('"name"') < printed.index('"$defs"')
    assert json.loads(printed) == schema


def test_help_shows_whole_command_descriptions_and_batch_size():
    listing = CliRunner().invoke(main, ["--help"], terminal_width=80).output
    assert "..." not in listing.split("Commands:")[1]  # click cuts descriptions at ~45 characters
    words = " ".join(listing.split())  # long descriptions wrap onto a second line
    assert "Build or refresh the task's retrieval index on its own (only changed documents are embedded)" in words
    assert "List the fine-tuned adapters in the cache: version, status, task, metrics, steps, date" in words
    run_help = CliRunner().invoke(main, ["run", "--help"]).output
    assert "--batch-size" in run_help and "Requests the model answers together" in run_help


def test_the_build_declares_an_spdx_license_without_a_deprecation_warning(tmp_path):
    """The build backend, run on the project's pyproject.toml, writes `License-Expression: Apache-2.0`
    and says nothing deprecated (a TOML table under `license` is deprecated since setuptools 77);
    the build requires a setuptools that understands an SPDX string."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    src = tmp_path / "src"
    for package in ("advisor", "baselines"):
        (src / package).mkdir(parents=True)
        (src / package / "__init__.py").write_text("")
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_text((ROOT / name).read_text())
    out = tmp_path / "meta"
    out.mkdir()
    code = ("import sys, setuptools.build_meta as b; "
            "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code, str(out)], cwd=src, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    said = (proc.stdout + proc.stderr).lower()
    assert "deprecat" not in said, said
    meta = (out / proc.stdout.strip().splitlines()[-1] / "METADATA").read_text()
    assert re.search(r"^License-Expression: Apache-2.0$", meta, re.M)
    from setuptools.config.pyprojecttoml import read_configuration

    requires = [Requirement(r) for r in read_configuration(ROOT / "pyproject.toml")["build-system"]["requires"]]
    (tools,) = [r for r in requires if r.name == "setuptools"]
    assert not tools.specifier.contains(Version("76.9")) and tools.specifier.contains(Version("77.0"))


def _rows() -> list[dict]:
    ready = {"version": "lora-0123456789abcdef", "status": "ready", "task": "trec-question-type",
             "lever": "lora-rag", "metrics": {"accuracy": 0.83, "macro_f1": 0.757}, "steps": 200,
             "best_val_loss": 0.174, "created": "2026-11-29T10:01:02+00:00", "size_bytes": 3_300_000,
             "n_train": 4572, "data_hash": "fedcba9876543210"}
    partial = {"version": "lora-fedcba9876543210", "status": "partial", "task": None, "lever": None,
               "metrics": {}, "steps": 40, "best_val_loss": None, "created": "2026-11-29T11:00:00+00:00",
               "size_bytes": 9_000_000, "n_train": None, "data_hash": None}
    return [ready, partial]


@pytest.mark.parametrize("width", [80, 100, 160])
def test_adapters_table_shows_whole_columns_at_the_terminal_width(width):
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(adapters_table(_rows(), width))
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    for cell in ("lora-0123456789abcdef", "ready", "accuracy 0.830", "macro_f1 0.757", "trec-question-type",
                 "unfinished"):
        assert cell in text
    assert "None" not in text
    words = " ".join(text.split())
    if width >= 160:
        assert "fedcba9876543210" in text and "not shown" not in text
    else:
        assert "not shown at this width:" in words and "(see --json)" in words
    if width >= 100:
        assert "lora-rag" in text and "0.174" in text


def test_an_unfinished_adapter_is_listed_as_such(tmp_path):
    path = adapters.adapter_path(tmp_path, "lora-aaaa")
    ckpt = path / "checkpoints" / "ckpt-0000040"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"step": 40, "best_val": 0.5, "train_seconds": 12.0}))
    [row] = adapters.list_adapters(tmp_path)
    assert row["status"] == "partial" and row["steps"] == 40 and row["best_val_loss"] == 0.5
    with adapters.training_lock(path):  # a process training it now
        assert adapters.list_adapters(tmp_path)[0]["status"] == "training"
