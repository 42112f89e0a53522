"""Rubrics in task.yaml, grading with a judge (a scripted one here; the real one behind llama.cpp is in
tests/openai/test_judge_server.py), unscored grades, the grade cache, human labels and the judge section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.errors import InputError
from advisor.judge.grading import Grader, self_judge_warning, text_hash
from advisor.judge.labels import append_labels, ask, import_csv, judge_section, load_labels, sample
from advisor.judge.rubric import answer_schema, parse_grades, prompt_hash
from advisor.spec import load_task, parse_task
from advisor.store import RunStore
from advisor.types import Generation
from tests.judge_fixtures import CRITERIA

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "sample_tasks" / "support-replies" / "task.yaml"

RUBRIC = "rubric:\n  judge: openai:qwen2.5-7b-instruct\n  mode: per_criterion\n" + CRITERIA


def support_text(rubric: str = RUBRIC) -> str:
    return SUPPORT.read_text() + rubric


def parse(text: str):
    return parse_task(text, file=SUPPORT)


def line_of(text: str, needle: str, nth: int = 0) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return lines[nth]


def test_rubric_parses_and_prompt_hash_follows_the_wording():
    task = parse(support_text())
    r = task.rubric
    assert r is not None and r.names == ["owns_problem", "one_step"]
    assert r.criteria[0].pass_.startswith("names the problem")
    h = prompt_hash(r, r.criteria[0])
    assert h == prompt_hash(parse(support_text()).rubric, r.criteria[0])  # stable
    changed = parse(support_text(RUBRIC.replace("a few words", "some words"))).rubric
    assert prompt_hash(changed, changed.criteria[0]) != h
    assert prompt_hash(changed, changed.criteria[1]) == prompt_hash(r, r.criteria[1])  # per criterion
    assert answer_schema(r.criteria[:1])["properties"]["owns_problem"]["enum"] == ["pass", "fail"]


def test_task_without_rubric_has_none():
    assert parse(SUPPORT.read_text()).rubric is None


@pytest.mark.parametrize("edit, needle, field", [
    (lambda t: t.replace("name: one_step", "name: owns_problem"), "criteria:", "rubric.criteria.1.name"),
    (lambda t: t.replace("name: one_step", "name: voice"), "name: voice\n", "rubric.criteria.1.name"),
    (lambda t: t.replace("judge: openai:qwen2.5-7b-instruct", "judge: hf:smollm2"), "judge:", "rubric.judge"),
    (lambda t: t.replace("      fail: no next step, or several\n", ""), "name: one_step", "rubric.criteria.1.fail"),
    (lambda t: t.replace("mode: per_criterion", "mode: all"), "mode:", "rubric.mode"),
])
def test_bad_rubric_names_line_and_field(edit, needle, field):
    text = edit(support_text())
    with pytest.raises(InputError) as e:
        parse(text)
    err = e.value
    assert err.field == field, str(err)
    assert err.file == str(SUPPORT)
    assert isinstance(err.line, int) and err.line >= line_of(text, "rubric:")
    assert "\n" not in str(err)


@pytest.mark.parametrize("judge", ["qwen2.5", "hf:smollm2", "openai:"])
def test_a_judge_that_is_not_an_openai_model_is_told_so(judge):
    """A judge grades through an OpenAI-compatible server: the message never offers `hf:` for it."""
    with pytest.raises(InputError) as e:
        parse(support_text(RUBRIC.replace("judge: openai:qwen2.5-7b-instruct", f"judge: '{judge}'")))
    assert e.value.field == "rubric.judge"
    assert str(e.value).endswith(f"the judge '{judge}' must be an 'openai:' model, e.g. openai:gpt-4o-mini (any "
                                 "OpenAI-compatible server)")
    assert "'hf:'" not in str(e.value)


def test_a_repeated_criterion_name_is_reported_at_its_own_name_line(tmp_path):
    from click.testing import CliRunner

    from advisor.cli import main

    text = support_text().replace("name: one_step", "name: owns_problem")
    task = tmp_path / "task.yaml"
    task.write_text(text.replace("data/", str(SUPPORT.parent / "data") + "/"))
    r = CliRunner().invoke(main, ["validate", str(task)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip() == (f"error: {task}:{line_of(text, 'name: owns_problem', 1)}: rubric.criteria.1.name: "
                                "criterion name 'owns_problem' is already the name of criteria[0]; give each "
                                "criterion its own name")


def test_parse_grades_never_guesses():
    crits = parse(support_text()).rubric.criteria
    assert parse_grades('{"owns_problem": "pass", "one_step": "fail"}', crits) == {"owns_problem": 1.0,
                                                                                   "one_step": 0.0}
    assert parse_grades('{"owns_problem": "maybe"}', crits) == {"owns_problem": None, "one_step": None}
    assert parse_grades('{"owns_problem": "pa', crits) == {"owns_problem": None, "one_step": None}  # cut off
    assert parse_grades("I cannot grade this.", crits) == {"owns_problem": None, "one_step": None}  # refusal


class ScriptedJudge:
    """A judge backend answering from a function of the request; counts requests."""

    identity = "openai:scripted@http://judge"
    price = None

    def __init__(self, answer):
        self.answer, self.sent = answer, []

    def price_per_second_usd(self) -> float:
        return 0.0

    def answers(self, requests, params):
        for i, r in enumerate(requests):
            self.sent.append(r)
            assert r.json_schema is not None  # constrained
            yield i, Generation(self.answer(r), 100, 5, 0.01)


def test_grader_counts_unscored_caches_and_prices_apart(tmp_path):
    from advisor.modelspec import Price

    task = parse(support_text())

    def answer(r):
        text = r.messages[-1]["content"]
        if "BROKEN" in text:
            return "not json"
        crit = next(iter(r.json_schema["properties"]))
        return json.dumps({crit: "pass" if "sorry" in text.split("Output:\n")[1].split("\n\nCriteria:")[0] else "fail"})

    judge = ScriptedJudge(answer)
    judge.price = Price(input_per_1m_usd=1.0, output_per_1m_usd=2.0)
    store = RunStore(tmp_path / "advise.sqlite")
    items = [("a", "in a", "I'm sorry, that's on us."), ("b", "in b", "Read the manual."),
             ("c", "in c", "BROKEN"), ("d", "in d", "I'm sorry, that's on us.")]  # d repeats a's text
    found = Grader(task.rubric, judge, store).grade(items)
    assert len(judge.sent) == 2 * 3  # 2 criteria x 3 distinct outputs
    assert found.grades["owns_problem"] == [1.0, 0.0, None, 1.0]
    s = found.summary()["owns_problem"]
    assert (s["rate"], s["scored"], s["unscored"]) == (pytest.approx(2 / 3), 3, 1)
    assert found.cost()["requests"] == 6 and found.usd == pytest.approx(6 * (100 * 1 + 5 * 2) / 1e6)
    again = ScriptedJudge(answer)
    found2 = Grader(task.rubric, again, store).grade(items)
    assert again.sent == [] and found2.requests == 0 and found2.cached == 6
    assert found2.grades == found.grades and found2.usd == pytest.approx(found.usd)
    # A changed output text is graded anew; the others are not.
    third = ScriptedJudge(answer)
    Grader(task.rubric, third, store).grade([("a", "in a", "Sorry! New text.")] + items[1:])
    assert len(third.sent) == 2
    store.close()


def test_joint_mode_sends_one_request_per_output(tmp_path):
    task = parse(support_text(RUBRIC.replace("mode: per_criterion", "mode: joint")))
    judge = ScriptedJudge(lambda r: json.dumps({"owns_problem": "pass"}))  # one_step missing: unscored
    store = RunStore(tmp_path / "advise.sqlite")
    found = Grader(task.rubric, judge, store).grade([("a", "i", "x"), ("b", "i", "y")])
    assert len(judge.sent) == 2
    assert found.grades == {"owns_problem": [1.0, 1.0], "one_step": [None, None]}
    store.close()


def test_self_judge_warning():
    r = parse(support_text()).rubric
    assert self_judge_warning(r, "openai:qwen2.5-7b-instruct")
    assert self_judge_warning(r, "openai:qwen2.5-0.5b-instruct")  # same family
    assert self_judge_warning(r, "hf:smollm2-135m-instruct") is None


def items_for_labels():
    return [{"example_id": f"e{i}", "input": f"complaint {i}", "raw": f"reply {i}",
             "output_hash": text_hash(f"reply {i}")} for i in range(6)]


def test_ask_records_scripted_answers_and_skips_known(tmp_path):
    crits = parse(support_text()).rubric.criteria
    items = sample(items_for_labels(), 2, seed=0)
    assert items == sample(items_for_labels(), 2, seed=0)  # seeded
    answers = iter(["p", "x", "f", "s", "q"])
    shown = []
    got = ask(items, crits, lambda: next(answers), shown.append, {})
    assert got == [(items[0]["example_id"], items[0]["output_hash"], "owns_problem", 1.0),
                   (items[0]["example_id"], items[0]["output_hash"], "one_step", 0.0)]
    assert any("answer p, f, s or q" in s for s in shown)
    path = tmp_path / "labels.jsonl"
    append_labels(path, got)
    have = load_labels(path)
    answers2 = iter(["q"])
    shown2 = []
    ask(items[:1], crits, lambda: next(answers2), shown2.append, have)
    assert shown2 == []  # nothing left to ask for that output


def test_import_csv_and_refusals(tmp_path):
    hashes = {it["example_id"]: it["output_hash"] for it in items_for_labels()}
    good = tmp_path / "g.csv"
    good.write_text("example_id,criterion,grade\ne0,owns_problem,pass\ne1,one_step,0\n")
    rows = import_csv(good, ["owns_problem", "one_step"], hashes)
    assert rows == [("e0", hashes["e0"], "owns_problem", 1.0), ("e1", hashes["e1"], "one_step", 0.0)]
    bad = tmp_path / "b.csv"
    bad.write_text("example_id,criterion,grade\ne0,owns_problem,pass\nzz,one_step,fail\n")
    with pytest.raises(InputError) as e:
        import_csv(bad, ["owns_problem", "one_step"], hashes)
    assert (e.value.line, e.value.field) == (3, "example_id") and "\n" not in str(e.value)
    bad.write_text("example_id,criterion,grade\ne0,tone_ok,pass\n")
    with pytest.raises(InputError) as e:
        import_csv(bad, ["owns_problem", "one_step"], hashes)
    assert (e.value.line, e.value.field) == (2, "criterion")


def test_judge_section_gives_kappa_and_ppi(tmp_path):
    store = RunStore(tmp_path / "advise.sqlite")
    run = store.start_run("t")
    judge = [1.0, 1.0, 0.0, 1.0, 0.0, None, 1.0, 1.0, 0.0, 1.0]
    store.put_run_grades(run, "prompt", [(f"e{i}", "c", f"h{i}", g) for i, g in enumerate(judge)])
    labels = {(f"e{i}", f"h{i}", "c"): g for i, g in enumerate([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])}
    labels[("e7", "stale-hash", "c")] = 0.0  # a grade of an output since changed: not used
    sec = judge_section(store, run, ["prompt"], ["c"], labels, 0.95, 0.6)["prompt"]["c"]
    assert sec["unscored"] == 1 and sec["scored"] == 9 and sec["human"] == 6
    assert sec["agreement"]["n"] == 5  # e5 is unscored by the judge: not compared
    assert sec["ppi"]["n_human"] == 5 and sec["ppi"]["n_judge"] == 4
    assert sec["judge_rate"] == pytest.approx(6 / 9)
    store.close()


def test_record_accepts_judge_section():
    from advisor.record import RunRecord

    assert "judge" in RunRecord.model_fields


def test_support_replies_loads_unchanged():
    task = load_task(SUPPORT)
    assert task.rubric is None and task.target.metric == "pass_all"


def test_a_missing_judge_key_names_the_rubric_judge_line(tmp_path, monkeypatch):
    """The judge's settings are its own: a key variable it names and the shell lacks is one line at rubric.judge."""
    from advisor.runner import Runner

    monkeypatch.delenv("ADVISE_NO_SUCH_KEY", raising=False)
    text = support_text(RUBRIC.replace("judge: openai:qwen2.5-7b-instruct",
                                       "judge: {model: 'openai:qwen2.5-7b-instruct', base_url: 'http://127.0.0.1:9/v1', "
                                       "api_key_env: ADVISE_NO_SUCH_KEY}"))
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "task.yaml").write_text(text)
    (folder / "data").symlink_to(SUPPORT.parent / "data")
    task = load_task(folder / "task.yaml")
    runner = Runner(task, tmp_path / "run", limit=2)
    try:
        with pytest.raises(InputError) as e:
            runner.grade_outputs(1, "prompt", None, [], None, {})
    finally:
        runner.close()
    assert e.value.field == "rubric.judge" and e.value.line == line_of(text, "judge: {")
    assert "ADVISE_NO_SUCH_KEY" in str(e.value)
