from __future__ import annotations

import pytest

from advisor.data import assert_no_eval, load_dataset, load_examples, remove_leakage
from advisor.errors import InputError
from advisor.spec import parse_task

SPEC = """\
name: t
kind: classification
labels: [A, B]
data: {train: train.jsonl, eval: eval.jsonl}
target: {metric: accuracy, threshold: 0.8}
"""


@pytest.fixture
def task(tmp_path):
    return parse_task(SPEC, file=tmp_path / "task.yaml")


def test_jsonl_and_csv_load_the_same(task, tmp_path, write_jsonl):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "input": "hello", "output": "A", "extra": 1}])
    (tmp_path / "a.csv").write_text("id,input,output,extra\nx,hello,A,1\n")
    j = load_examples(task, tmp_path / "a.jsonl", split="train")
    c = load_examples(task, tmp_path / "a.csv", split="train")
    assert j[0].input == c[0].input == "hello"
    assert j[0].fields["extra"] == 1 and c[0].fields["extra"] == "1"


def test_broken_jsonl_line_is_named(task, tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text('{"input": "a", "output": "A"}\n{"input": "b", "output": \n')
    with pytest.raises(InputError) as e:
        load_examples(task, p, split="train")
    assert e.value.line == 2 and e.value.file == str(p)
    assert "broken JSON" in str(e.value)
    p.write_text('{"input": "a", "output": "A"}\n{"input": "b", "output": "A", "weight": Infinity}\n')
    with pytest.raises(InputError) as e:
        load_examples(task, p, split="train")
    assert e.value.line == 2 and "broken JSON: Infinity is not JSON" in str(e.value)


def test_unknown_label_names_file_line_field(task, tmp_path, write_jsonl):
    p = write_jsonl(tmp_path / "eval.jsonl", [{"input": "a", "output": "A"}, {"input": "b", "output": "C"}])
    with pytest.raises(InputError) as e:
        load_examples(task, p, split="eval")
    assert (e.value.line, e.value.field) == (2, "output")
    assert "unknown label 'C'" in str(e.value)


def test_unknown_label_in_csv_names_its_line(task, tmp_path):
    p = tmp_path / "eval.csv"
    p.write_text("input,output\na,A\nb,Z\n")
    with pytest.raises(InputError) as e:
        load_examples(task, p, split="eval")
    assert e.value.line == 3


def test_missing_field_and_duplicate_id(task, tmp_path, write_jsonl):
    p = write_jsonl(tmp_path / "x.jsonl", [{"input": "a"}])
    with pytest.raises(InputError) as e:
        load_examples(task, p, split="train")
    assert e.value.field == "output"
    p = write_jsonl(tmp_path / "y.jsonl", [{"id": "1", "input": "a", "output": "A"},
                                           {"id": "1", "input": "b", "output": "B"}])
    with pytest.raises(InputError, match="duplicate id '1'") as e:
        load_examples(task, p, split="train")
    assert e.value.line == 2


def test_missing_file_and_empty_eval(task, tmp_path, write_jsonl):
    with pytest.raises(InputError, match="data file not found"):
        load_dataset(task)
    write_jsonl(tmp_path / "train.jsonl", [{"input": "a", "output": "A"}])
    (tmp_path / "eval.jsonl").write_text("\n")
    with pytest.raises(InputError, match="eval set is empty"):
        load_dataset(task)


def test_eval_inputs_are_removed_from_train(task, tmp_path, write_jsonl):
    write_jsonl(tmp_path / "train.jsonl", [{"id": "t1", "input": "Where is Paris?", "output": "A"},
                                           {"id": "t2", "input": "who is bob", "output": "B"}])
    write_jsonl(tmp_path / "eval.jsonl", [{"id": "e1", "input": "  where IS paris? ", "output": "A"}])
    data = load_dataset(task)
    assert [e.id for e in data.train] == ["t2"]
    assert data.leakage_removed == ["t1"]


def test_assert_no_eval_refuses_a_leaking_pool(task, tmp_path, write_jsonl):
    write_jsonl(tmp_path / "train.jsonl", [{"input": "q1", "output": "A"}])
    write_jsonl(tmp_path / "eval.jsonl", [{"input": "Q1", "output": "A"}])
    train = load_examples(task, tmp_path / "train.jsonl", split="train")
    eval_ = load_examples(task, tmp_path / "eval.jsonl", split="eval")
    with pytest.raises(InputError, match="eval examples are never shown"):
        assert_no_eval(train, eval_, what="the few-shot pool")
    kept, removed = remove_leakage(train, eval_)
    assert kept == [] and len(removed) == 1
    assert_no_eval(kept, eval_, what="the few-shot pool")


def test_hash_changes_with_content(task, tmp_path, write_jsonl):
    write_jsonl(tmp_path / "a.jsonl", [{"input": "a", "output": "A"}])
    write_jsonl(tmp_path / "b.jsonl", [{"input": "a", "output": "B"}])
    a = load_examples(task, tmp_path / "a.jsonl", split="train")[0]
    b = load_examples(task, tmp_path / "b.jsonl", split="train")[0]
    assert a.hash != b.hash


CHECKED = SPEC.replace("target: {metric: accuracy, threshold: 0.8}\n",
                       "target: {metric: short, threshold: 0.8}\nchecks:\n  - {kind: length, name: short, max_words: 3}\n")


def test_eval_may_go_without_output_only_when_the_target_is_a_check(tmp_path, write_jsonl):
    task = parse_task(CHECKED, file=tmp_path / "task.yaml")
    write_jsonl(tmp_path / "train.jsonl", [{"input": "a", "output": "A"}])
    write_jsonl(tmp_path / "eval.jsonl", [{"input": "b"}, {"input": "c", "output": None}, {"input": "d", "output": "B"}])
    data = load_dataset(task)
    assert [e.output for e in data.eval] == [None, None, "B"] and data.eval_gold == 1
    # Train always needs its outputs: few-shot and fine-tuning learn from them.
    write_jsonl(tmp_path / "train.jsonl", [{"input": "a"}])
    with pytest.raises(InputError) as e:
        load_dataset(task)
    assert (e.value.line, e.value.field, e.value.message) == (1, "output", "missing: every example needs 'output'")
    # A gold metric as the target: the eval item is refused, and the message says why.
    gold_target = parse_task(CHECKED.replace("metric: short", "metric: accuracy"), file=tmp_path / "task.yaml")
    with pytest.raises(InputError) as e:
        load_examples(gold_target, tmp_path / "eval.jsonl", split="eval")
    assert (e.value.line, e.value.field) == (1, "output")
    assert e.value.message == ("missing: every example needs 'output' (target.metric accuracy compares answers "
                               "with it; an eval item may go without one only when target.metric is a check: "
                               "short, pass_all)")
    plain = parse_task(SPEC, file=tmp_path / "task.yaml")
    with pytest.raises(InputError, match="only when the task declares `checks:`"):
        load_examples(plain, tmp_path / "eval.jsonl", split="eval")
