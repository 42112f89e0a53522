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


# -- every spec error names the line of the key it is about ---------------------------------------

SEVERAL = GOOD.replace("levers: [prompt]\n", "levers: [prompt]\nmodels:\n  small: hf:smollm2-135m-instruct\n"
                       "  gpt: {model: 'openai:gpt-4o-mini', base_url: 'http://127.0.0.1:9/v1'}\n")


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (GOOD + "lever_options:\n  prompt: {}\n  rag: {k: 2}\n", 11, "lever_options.rag",
         "options for 'rag', which is not in levers (prompt); add it to levers or remove its options"),
        (GOOD.replace("metric: accuracy", "metric: token_f1"), 7, "target.metric",
         "'token_f1' does not apply to classification; choose one of accuracy, macro_f1 "
         "(or declare `checks:` and name one of them, or pass_all)"),
        (GOOD.replace("labels: [A, B]\n", ""), 2, "kind", "classification needs 'labels'"),
        (GOOD.replace("kind: classification", "kind: qa").replace("accuracy", "exact_match"), 3, "labels",
         "'labels' only applies to classification, not qa"),
        (GOOD.replace("levers: [prompt]", "levers: []"), 8, "levers",
         "'levers' is empty: name at least one, e.g. [prompt]"),
        (SEVERAL + "model: hf:smollm2-135m-instruct\n", 12, "model", "give either 'model' or 'models', not both"),
        (SEVERAL.replace("  small:", "  'sm all':"), 10, "models.sm all",
         "model alias 'sm all' must be letters, digits, '.', '_' or '-'"),
        (SEVERAL.replace("model: 'openai:gpt-4o-mini'", "model: 'gpt-4o-mini'"), 11, "models.gpt.model",
         "'gpt-4o-mini' must start with 'hf:' or 'openai:' followed by a model name"),
        (SEVERAL.replace("small: hf:smollm2-135m-instruct", "small: smollm2"), 10, "models.small",
         "'smollm2' must start with 'hf:' or 'openai:' followed by a model name"),
    ],
)
def test_a_check_across_keys_names_the_line_of_the_key_it_is_about(text, line, field, message):
    with pytest.raises(InputError) as e:
        parse_task(text, file=Path("t.yaml"))
    assert (e.value.file, e.value.line, e.value.field, e.value.message) == ("t.yaml", line, field, message)


def test_an_error_in_an_override_names_the_override_not_task_yaml(tmp_path):
    from advisor.origin import parse_sets

    f = tmp_path / "task.yaml"
    f.write_text(GOOD)
    with pytest.raises(InputError) as e:
        load_task(f, parse_sets(["target.treshold=0.9"]))
    assert str(e.value) == ("--set target.treshold=0.9: target.treshold: unknown key 'treshold'. Did you mean "
                            "'threshold'? (check the spelling; `advise schema` lists the keys)")
    with pytest.raises(InputError) as e:  # inside an overridden value: the override too
        load_task(f, parse_sets(["target={metric: accuracy, threshold: 2}"]))
    assert str(e.value).startswith("--set target={metric: accuracy, threshold: 2}: target.threshold: ")
    with pytest.raises(InputError) as e:  # a library caller's mapping is named as such
        load_task(f, {"levers": ["promt"]})
    assert str(e.value).startswith("override levers=['promt']: levers: unknown lever 'promt'.")
    with pytest.raises(InputError) as e:  # an error elsewhere still names task.yaml and its line
        load_task(f, parse_sets(["target.threshold=0.9", "kind=qa"]))
    assert (e.value.file, e.value.line, e.value.field) == (str(f), 3, "labels")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["x"], "--set x: expected KEY=VALUE, e.g. --set target.threshold=0.9"),
        (["=3"], "--set =3: expected KEY=VALUE, e.g. --set target.threshold=0.9"),
    ],
)
def test_a_malformed_set_names_the_argument_once(items, message):
    from advisor.origin import parse_sets

    with pytest.raises(InputError) as e:
        parse_sets(items)
    assert str(e.value) == message


def test_errors_found_after_loading_name_the_line_of_their_setting(tmp_path):
    from advisor.plan import plan_rows
    from advisor.registry import lever_options, load_lever

    f = tmp_path / "task.yaml"
    f.write_text(GOOD.replace("levers: [prompt]", "levers:\n  - prompt\n  - prompt@gpt\n  - lora"))
    task = load_task(f)
    levers = {"prompt": load_lever("prompt"), "lora": load_lever("lora")}
    with pytest.raises(InputError) as e:
        plan_rows(task, task.levers, levers)
    assert str(e.value) == (f"{f}:10: levers: 'prompt@gpt' names model 'gpt', which `models:` does not define; "
                            "defined: none (add a `models:` section)")
    f.write_text(GOOD.replace("levers: [prompt]", "levers: [prompt, lora]\nmodel: openai:gpt-4o-mini"))
    task = load_task(f)
    with pytest.raises(InputError) as e:
        plan_rows(task, task.levers, levers)
    assert str(e.value) == (f"{f}:8: levers: lever 'lora' fine-tunes a model's weights, which needs a local "
                            "'hf:' model; openai:gpt-4o-mini is an API model (set model: hf:<name>, or list "
                            "models under `models:` and write lora@<hf alias>)")
    f.write_text(GOOD + "lever_options:\n  prompt: {nope: 1}\n")
    task = load_task(f)
    with pytest.raises(InputError) as e:
        lever_options(load_lever("prompt"), task.lever_options["prompt"])
    assert str(task.place(e.value)) == f"{f}:10: lever_options.prompt.nope: unknown option"
    with pytest.raises(InputError) as e:
        task.data_path("eval")
    assert str(e.value) == f"{f}:4: data.eval: data file not found: {tmp_path / 'eval.jsonl'}"


@pytest.mark.parametrize(
    ("edit", "line", "field", "message"),
    [
        (("labels: [A, B]", "labels: [0, 1]"), 3, "labels",
         'must be text, but YAML reads 0, 1 as numbers; quote them: labels: ["0", "1"]'),
        (("labels: [A, B]", "labels: [A, 1.50, yes]"), 3, "labels",
         'must be text, but YAML reads 1.50, yes as numbers and booleans; quote them: labels: ["A", "1.50", "yes"]'),
        (("name: t", "name: 2024"), 1, "name", 'must be text, but YAML reads 2024 as a number; quote it: name: "2024"'),
        (('template: "Q: {{ input }}"', "template: 12"), 6, "prompt.template",
         'must be text, but YAML reads 12 as a number; quote it: template: "12"'),
        (("levers: [prompt]", "levers: [prompt]\nmodels: {a: 5}"), 9, "models.a",
         "Input should be a valid string or a valid dictionary or instance of ModelEntry"),
    ],
)
def test_a_yaml_number_where_text_belongs_says_so_and_shows_the_quoted_form(edit, line, field, message):
    with pytest.raises(InputError) as e:
        parse_task(GOOD.replace(*edit), file=Path("t.yaml"))
    assert (e.value.line, e.value.field, e.value.message) == (line, field, message)


@pytest.mark.parametrize(
    ("item", "message"),
    [  # through a plain value: an error, not a traceback; numbers given by --set quoted as given
        ("name.x=1", "--set name.x=1: name.x: 'name' is a single value, not a mapping of settings"),
        ("labels=[1, 2]", '--set labels=[1, 2]: labels: must be text, but YAML reads 1, 2 as numbers; '
                          'quote them: labels: ["1", "2"]'),
    ],
)
def test_a_bad_override_names_the_set_argument(tmp_path, item, message):
    from advisor.origin import parse_sets

    f = tmp_path / "task.yaml"
    f.write_text(GOOD)
    with pytest.raises(InputError) as e:
        load_task(f, parse_sets([item]))
    assert str(e.value) == message
