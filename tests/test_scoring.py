from __future__ import annotations

import random
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, f1_score

from advisor.scoring import (
    contains_answer,
    normalize_answer,
    parse_json_object,
    parse_output,
    score,
    token_f1,
)
from advisor.spec import parse_task


def _task(kind, metric, labels=None):
    lab = f"labels: {labels}\n" if labels else ""
    return parse_task(
        f"name: t\nkind: {kind}\n{lab}data: {{train: a.jsonl, eval: b.jsonl}}\n"
        f"target: {{metric: {metric}, threshold: 0.5}}\n",
        file=Path("t.yaml"),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_matches_scikit_learn(seed):
    labels = ["A", "B", "C", "D"]
    rng = random.Random(seed)
    golds = [rng.choice(labels) for _ in range(200)]
    preds = [g if rng.random() < 0.6 else rng.choice(labels[:3]) for g in golds]
    s = score(_task("classification", "accuracy", labels), golds, preds)
    assert s.aggregate["accuracy"] == pytest.approx(accuracy_score(golds, preds))
    assert s.aggregate["macro_f1"] == pytest.approx(f1_score(golds, preds, average="macro", zero_division=0))
    matrix = s.details["confusion"]["matrix"]
    assert sum(map(sum, matrix)) == 200
    assert sum(matrix[i][i] for i in range(4)) == sum(g == p for g, p in zip(golds, preds))


def test_unparseable_label_counts_as_wrong():
    task = _task("classification", "accuracy", ["HUM", "LOC"])
    assert parse_output(task, "LOC") == "LOC"
    assert parse_output(task, "I think it is HUM.") == "HUM"
    assert parse_output(task, "no idea") is None
    s = score(task, ["LOC", "HUM"], ["LOC", None])
    assert s.aggregate["accuracy"] == 0.5
    assert s.details["confusion"]["matrix"][0][2] == 1  # HUM (row 0) predicted as (none)


def test_extraction_metrics_by_hand():
    task = _task("extraction", "exact_match")
    golds = [{"a": "1", "b": "x", "c": None}, {"a": "2", "b": "y", "c": None}, {"a": "3", "b": None, "c": None}]
    preds = [{"a": "1", "b": "X ", "c": None}, {"a": "2", "b": "z", "c": "q"}, None]
    s = score(task, golds, preds)
    assert s.per_item["exact_match"] == [1.0, 0.0, 0.0]
    assert s.aggregate["json_valid"] == pytest.approx(2 / 3)
    # tp: 2 + 1 + 0 = 3; predicted non-null: 2 + 3 + 0 = 5; gold non-null: 2 + 2 + 1 = 5
    assert s.aggregate["field_precision"] == pytest.approx(3 / 5)
    assert s.aggregate["field_recall"] == pytest.approx(3 / 5)
    assert s.per_item["field_f1"][1] == pytest.approx(2 * (1 / 3) * (1 / 2) / ((1 / 3) + (1 / 2)))
    assert s.details["per_field"]["b"]["recall"] == pytest.approx(1 / 2)


def test_text_metrics():
    task = _task("qa", "exact_match")
    s = score(task, ["The Eiffel Tower", "578"], ["eiffel tower.", "It is 578"])
    assert s.per_item["exact_match"] == [1.0, 0.0]
    assert s.per_item["token_f1"][1] == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    # "It is 578" holds the right fact in the wrong format: contains, not exact.
    assert s.per_item["contains"] == [1.0, 1.0]
    assert contains_answer("code 0280", "028") == 0.0  # whole tokens only
    assert contains_answer("The code is AG.", "ag") == 1.0
    assert token_f1("", "") == 1.0
    assert normalize_answer("A  Cat!") == "cat"
    assert parse_output(task, "NOR\nBecause...") == "NOR"


def test_parse_json_object_finds_the_object_in_prose_and_fences():
    assert parse_json_object('Sure! {"a": "}"} trailing') == {"a": "}"}
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object("{broken") is None
    assert parse_json_object("[1, 2]") is None


def test_nested_objects_compare_by_content_not_key_order():
    task = _task("extraction", "exact_match")
    gold = {"name": "Leo Park", "address": {"city": "Lakeside", "zip": "92040"}}
    same = parse_json_object('{"address": {"zip": "92040", "city": "lakeside "}, "name": "Leo  Park"}')
    other = parse_json_object('{"name": "Leo Park", "address": {"zip": "92041", "city": "Lakeside"}}')
    s = score(task, [gold, gold], [same, other])
    assert s.per_item["exact_match"] == [1.0, 0.0]
    assert s.per_item["field_f1"] == [1.0, 0.5]  # name right, address (as a whole) wrong
    assert score(task, [{"tags": ["a", "b"]}], [{"tags": ["b", "a"]}]).per_item["exact_match"] == [0.0]  # lists keep order


@pytest.mark.parametrize("text", [
    '{"name": "Dana Reyes", "address": {"city": "Springfield", "zip": "627',  # cut inside a string
    '{"name": "Dana Reyes", "address": {"city": "Springfield", "zip": "62704"}',  # outer brace missing
    'Here it is: {"name": "Dana", "address": {"city": "X"}, "note": "a } in text',
])
def test_an_answer_whose_outermost_object_is_cut_off_is_invalid(text):
    assert parse_json_object(text) is None
    s = score(_task("extraction", "json_valid"), [{"name": "Dana"}], [parse_json_object(text)])
    assert s.aggregate["json_valid"] == 0.0


def test_json_objects_are_found_in_prose_and_fences():
    assert parse_json_object('Sure! {"a": {"b": 1}} Hope that helps {"c": 2}') == {"a": {"b": 1}}
    assert parse_json_object('He said "hi" {not json} then {"a": "}"}') == {"a": "}"}
    assert parse_json_object('```json\n{"a": "x\\"y"}\n```') == {"a": 'x"y'}
    assert parse_json_object('{"a": [1, 2]}') == {"a": [1, 2]}


def test_label_length_warning():
    from advisor.scoring import label_length_warning

    assert label_length_warning({"refund": 1, "other": 1}, "calibrated") is None
    assert label_length_warning({"ABBR": 2, "DESC": 2, "HUM": 1}, "calibrated") is None
    w = label_length_warning({"refund": 1, "other, the message is not a refund": 8}, "sum")
    assert w.startswith("labels differ a lot in length: 'refund' is 1 token, 'other, the message is not a...' 8")
    assert "use scoring.option_ranking: auto" in w


def test_set_statistic_is_macro_f1_on_the_resampled_items_and_refuses_item_means():
    """Every resample of a set metric (intervals, paired differences, choices) goes through one function:
    f(idx) is macro-F1 of the items idx, repeats counted, as scikit-learn computes it on that list."""
    import numpy as np

    from advisor.scoring import set_statistic

    rng = random.Random(3)
    labels = ["A", "B", "C"]
    golds = [rng.choice(labels) for _ in range(40)]
    preds = [g if rng.random() < 0.6 else rng.choice(labels + [None]) for g in golds]
    f = set_statistic("macro_f1", golds, preds, labels)
    idx = np.random.default_rng(0).integers(0, 40, size=40)  # a bootstrap resample: repeats
    g, p = [golds[i] for i in idx], [preds[i] if preds[i] is not None else "none" for i in idx]
    present = sorted(set(g) | (set(p) & set(labels)))
    assert f(idx) == pytest.approx(f1_score(g, p, labels=present, average="macro", zero_division=0))
    assert f(np.arange(40)) != f(idx)  # it reads the indices, not the whole set
    with pytest.raises(ValueError, match="accuracy is not a set-level metric"):
        set_statistic("accuracy", golds, preds, labels)
