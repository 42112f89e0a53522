from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.errors import InputError
from advisor.spec import load_task, parse_task, task_json_schema

GOOD = """\
name: t
kind: classification
labels: [A, B]
data: {train: train.jsonl, eval: eval.jsonl}
prompt:
  template: "Q: {{ input }}"
target: {metric: accuracy, threshold: 0.8}
levers: [prompt]
"""


def test_good_spec_loads_with_paths_relative_to_the_file(tmp_path):
    f = tmp_path / "task.yaml"
    f.write_text(GOOD)
    task = load_task(f)
    assert task.kind == "classification"
    assert task.path(task.data.train) == tmp_path / "train.jsonl"
    assert task.model == "hf:smollm2-135m-instruct"
    assert task.target.confidence == 0.95


def test_unknown_key_names_line_and_field():
    text = GOOD.replace("target:", "tagret: 1\ntarget:")
    with pytest.raises(InputError) as e:
        parse_task(text, file=Path("task.yaml"))
    assert e.value.field == "tagret"
    assert e.value.line == 7
    assert "unknown key" in str(e.value)


def test_nested_unknown_key_points_at_its_line():
    text = GOOD.replace("target: {metric: accuracy, threshold: 0.8}",
                        "target:\n  metric: accuracy\n  threshhold: 0.8")
    with pytest.raises(InputError) as e:
        parse_task(text, file=Path("task.yaml"))
    assert e.value.field in {"target.threshhold", "target.threshold"}
    assert e.value.line in {8, 9, 10}


def test_malformed_yaml_names_the_line():
    with pytest.raises(InputError) as e:
        parse_task("name: t\nkind: [unclosed\nlabels: x\n", file=Path("bad.yaml"))
    assert e.value.file == "bad.yaml"
    assert e.value.line is not None
    assert "malformed YAML" in str(e.value)


def test_metric_must_fit_the_kind():
    with pytest.raises(InputError, match="does not apply to classification"):
        parse_task(GOOD.replace("metric: accuracy", "metric: token_f1"), file=Path("t.yaml"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("labels: [A, B]", "labels: [A, A]"), "duplicate labels"),
        (("labels: [A, B]\n", ""), "classification needs 'labels'"),
        (("levers: [prompt]", "levers: []"), "'levers' is empty"),
        (("levers: [prompt]", "levers: [prompt]\nmodel: gpt4"), "must start with 'hf:' or 'openai:'"),
        (("threshold: 0.8", "threshold: 1.5"), "less than or equal to 1"),
        (("levers: [prompt]", "levers: [prompt]\nlever_options: {rag: {k: 2}}"), "not in levers"),
    ],
)
def test_bad_values_are_named(edit, message):
    with pytest.raises(InputError, match=message):
        parse_task(GOOD.replace(*edit), file=Path("t.yaml"))


def test_missing_task_file():
    with pytest.raises(InputError, match="task file not found"):
        load_task("/nonexistent/task.yaml")


def test_overrides_apply_dotted_keys(tmp_path):
    f = tmp_path / "task.yaml"
    f.write_text(GOOD)
    task = load_task(f, {"target.threshold": 0.6, "levers": ["prompt", "prompt-few-shot"]})
    assert task.target.threshold == 0.6
    assert task.levers == ["prompt", "prompt-few-shot"]


def test_schema_lists_the_keys_and_hides_internals():
    schema = task_json_schema()
    json.dumps(schema)
    assert {"name", "kind", "data", "prompt", "target", "levers", "model", "costs"} <= set(schema["properties"])
    assert "base_dir" not in schema["properties"]
    assert schema["additionalProperties"] is False
