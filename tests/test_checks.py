"""Checks on every output (advisor/checks): each kind on hand-made answers, the task.yaml errors, and a
generation task with no eval gold from `advise validate` through the scorer to a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from advisor.checks import (
    JsonSchemaCheck,
    LanguageCheck,
    LengthCheck,
    PhrasesCheck,
    ToneCheck,
    run_checks,
)
from advisor.checks.text import sentences
from advisor.errors import InputError
from advisor.spec import parse_task

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "zip": {"type": "string", "pattern": r"^\d{5}$"},
                   "age": {"type": "integer"}},
    "required": ["name", "zip"],
    "additionalProperties": False,
}


def _one(check, raws):
    """(per-item passes, per-item reasons) of one check."""
    found = run_checks([check], raws)
    return found.per_item[check.name], found.reasons[check.name]


# -- json_schema -----------------------------------------------------------------------------------


def test_schema_check_keeps_every_error_with_its_path_and_keyword():
    raws = [
        '{"name": "Ada", "zip": "12345"}',  # valid
        '{"name": "Ada", "zip": "12345", "age": "old"}',  # wrong type
        '{"zip": "12345"}',  # a required property missing
        '{"name": "Ada", "zip": "12345", "extra": 1}',  # additionalProperties: false
        '{"zip": "abc", "extra": 1}',  # three errors at once
        "not json at all",
    ]
    found = run_checks([JsonSchemaCheck(kind="json_schema", schema=SCHEMA)], raws)
    assert found.per_item["schema_valid"] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    reasons = found.reasons["schema_valid"]
    assert reasons[0] == ""
    assert reasons[1] == "schema: $.age: 'old' is not of type 'integer' (type)"
    assert reasons[2] == "schema: $: 'name' is a required property (required)"
    assert reasons[3] == ("schema: $: Additional properties are not allowed ('extra' was unexpected) "
                          "(additionalProperties)")
    assert reasons[4].split("; ") == [  # in path order, then keyword
        "schema: $: Additional properties are not allowed ('extra' was unexpected) (additionalProperties)",
        "schema: $: 'name' is a required property (required)",
        r"schema: $.zip: 'abc' does not match '^\\d{5}$' (pattern)",
    ]
    assert reasons[5].startswith("no JSON value found")
    # Failures count items per reason kind: four items broke the schema, one in three ways.
    assert found.failures["schema_valid"] == {"not_json": 1, "schema:additionalProperties": 2,
                                              "schema:pattern": 1, "schema:required": 2, "schema:type": 1}
    assert found.per_item["strict_json"] == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert found.per_item["lenient_json"] == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("raw", [
    '```json\n{"name": "Ada", "zip": "12345"}\n```',
    'Sure! Here it is: {"name": "Ada", "zip": "12345"} Hope that helps.',
])
def test_fenced_or_prose_wrapped_json_passes_lenient_and_fails_strict(raw):
    lenient = run_checks([JsonSchemaCheck(kind="json_schema", schema=SCHEMA)], [raw])
    strict = run_checks([JsonSchemaCheck(kind="json_schema", schema=SCHEMA, parse="strict")], [raw])
    assert lenient.per_item["schema_valid"] == [1.0] and lenient.per_item["lenient_json"] == [1.0]
    assert strict.per_item["schema_valid"] == [0.0] and strict.per_item["strict_json"] == [0.0]
    assert strict.reasons["schema_valid"][0].startswith("not JSON (parse: strict): Expecting value")
    assert strict.failures["schema_valid"] == {"not_json": 1}
    assert lenient.per_item["pass_all"] == [1.0] and strict.per_item["pass_all"] == [0.0]


# -- length, tone, phrases, language ----------------------------------------------------------------


def test_length_counts_words_characters_and_sentences():
    text = "One two three. Four five!  Six?"
    assert (len(text.split()), len(text.strip()), sentences(text)) == (6, 31, 3)
    assert sentences("It costs 3.5 dollars") == 1  # a point inside a number ends nothing
    assert sentences("Done.\n\nNext step: call us") == 2  # trailing text is a sentence
    assert sentences("  ...  ") == 0
    passes, reasons = _one(LengthCheck(kind="length", max_words=5, min_sentences=4, max_chars=40), [text, "Short."])
    assert passes == [0.0, 0.0]
    assert reasons[0] == "6 words > max_words 5; 3 sentences < min_sentences 4"
    assert reasons[1] == "1 sentences < min_sentences 4"
    passes, reasons = _one(LengthCheck(kind="length", max_words=6, max_chars=31), [text])
    assert passes == [1.0] and reasons == [""]


def test_tone_uses_vader_compound_and_negative_share():
    texts = ["Thank you so much, I'm happy to help you today!",
             "Calm down, this is your fault and the result is terrible."]
    vader = SentimentIntensityAnalyzer()
    scores = [vader.polarity_scores(t) for t in texts]
    assert scores[0]["compound"] >= 0.3 > scores[1]["compound"]  # the fixture strings are what they seem
    passes, reasons = _one(ToneCheck(kind="tone", min_compound=0.3), texts)
    assert passes == [1.0, 0.0]
    assert reasons[1] == f"VADER compound {scores[1]['compound']:g} < 0.3"
    assert scores[1]["neg"] > 0.2
    passes, reasons = _one(ToneCheck(kind="tone", max_negative=0.2), texts)
    assert passes == [1.0, 0.0]
    assert reasons[1] == f"VADER neg {scores[1]['neg']:g} > max_negative 0.2"


def test_phrases_are_case_insensitive_substrings_and_patterns_are_regexes():
    check = PhrasesCheck(kind="phrases", name="voice", required=["thank you"], forbidden=["calm down", "don't"],
                         required_patterns=[r"\b(order|parcel)\b"], forbidden_patterns=[r"(?i)\byour fault\b"])
    raws = [
        "THANK YOU for waiting: your order ships today.",
        "Please calm down. Thank you.",  # forbidden phrase; no order/parcel
        "Thank you! It's Your Fault the parcel is late.",  # forbidden pattern, case-insensitive by (?i)
        "Thank you; we don’t know where the parcel is.",  # curly apostrophe still matches "don't"
    ]
    passes, reasons = _one(check, raws)
    assert passes == [1.0, 0.0, 0.0, 0.0]
    assert reasons[1] == r"forbidden phrase 'calm down'; required pattern '\\b(order|parcel)\\b' not found"
    assert reasons[2] == r"forbidden pattern '(?i)\\byour fault\\b' matches 'Your Fault'"
    assert reasons[3] == "forbidden phrase \"don't\""
    assert run_checks([check], raws).failures["voice"] == {"forbidden": 2, "forbidden_pattern": 1,
                                                            "required_pattern": 1}


def test_language_tells_english_from_german():
    raws = ["Thank you for your patience; we will send a replacement parcel tomorrow morning.",
            "Vielen Dank für Ihre Geduld; wir schicken Ihnen morgen früh ein neues Paket.",
            "12345 !!!"]
    passes, reasons = _one(LanguageCheck(kind="language", language="en"), raws)
    assert passes == [1.0, 0.0, 0.0]
    assert reasons[1].startswith("language 'de' (p=") and reasons[1].endswith("not 'en'")
    assert reasons[2].startswith("no letters to identify a language in")
    passes, _ = _one(LanguageCheck(kind="language", language="de"), raws[:2])
    assert passes == [0.0, 1.0]


def test_pass_all_is_every_check_passing():
    checks = [LengthCheck(kind="length", max_words=12), ToneCheck(kind="tone", min_compound=0.3),
              PhrasesCheck(kind="phrases", forbidden=["calm down"])]
    raws = ["Happy to help, thank you!", "Calm down, I am happy to help, thank you!",
            "This is terrible and awful news.", "Great " * 20]
    found = run_checks(checks, raws)
    assert found.per_item["length"] == [1.0, 1.0, 1.0, 0.0]
    assert found.per_item["tone"] == [1.0, 1.0, 0.0, 1.0]
    assert found.per_item["phrases"] == [1.0, 0.0, 1.0, 1.0]
    assert found.per_item["pass_all"] == [1.0, 0.0, 0.0, 0.0]
    assert found.reasons["pass_all"] == ["", "failed: phrases", "failed: tone", "failed: length"]
    assert "strict_json" not in found.per_item  # only with a json_schema check
    assert found.summary()["pass_all"] == {"rate": 0.25, "failures": {"length": 1, "phrases": 1, "tone": 1}}


# -- task.yaml: names, schemas, target -------------------------------------------------------------

TASK = """\
name: reply
kind: generation
data: {train: train.jsonl, eval: eval.jsonl}
prompt: {system: "Answer the customer in one friendly sentence.", template: "{{ input }}", max_new_tokens: 16}
target: {metric: pass_all, threshold: 0.5}
levers: [prompt]
checks:
  - kind: length
    max_words: 30
  - kind: phrases
    name: voice
    forbidden: ["calm down", "as I said"]
    forbidden_patterns: ["(?i)\\\\byour fault\\\\b"]
  - kind: tone
    max_negative: 0.5
  - kind: language
    language: en
"""

SCHEMA_CHECK = "  - kind: json_schema\n    schema: schema.json\n    parse: strict\n"


def _error(text: str, folder: Path) -> InputError:
    with pytest.raises(InputError) as e:
        parse_task(text, file=folder / "task.yaml")
    assert "\n" not in str(e.value)  # one line
    return e.value


@pytest.mark.parametrize(("edit", "line", "field", "message"), [
    (("    name: voice\n", "    name: length\n"), 11, "checks.1.name",
     "check name 'length' is already the name of checks[0]; give each check its own `name:`"),
    (("    name: voice\n", "    name: token_f1\n"), 11, "checks.1.name",
     "check name 'token_f1' is a built-in metric of this task kind (exact_match, token_f1, contains); "
     "give the check another `name:`"),
    (("    name: voice\n", "    name: retrieval_mrr\n"), 11, "checks.1.name",
     "check name 'retrieval_mrr' is a figure the scorer or a lever already reports; give the check another `name:`"),
    (("    name: voice\n", "    name: pass_all\n"), 11, "checks.1.name",
     "check name 'pass_all' is reserved (pass_all, strict_json, lenient_json); give the check another `name:`"),
    (("  - kind: tone\n", "  - kind: tone\n    name: length\n"), 15, "checks.2.name",
     "check name 'length' is already the name of checks[0]; give each check its own `name:`"),
    (("metric: pass_all", "metric: polite"), 5, "target.metric",
     "'polite' does not apply to generation; choose one of exact_match, token_f1, contains, or a check's: "
     "length, voice, tone, language, pass_all"),
    (("    max_words: 30\n", ""), 8, "checks.0",
     "a length check needs at least one bound: min_words, max_words, min_chars, max_chars, min_sentences or "
     "max_sentences"),
    (('["(?i)\\\\byour fault\\\\b"]', '["(unclosed"]'), 13, "checks.1.forbidden_patterns",
     "item 0 '(unclosed' is not a Python regex: missing ), unterminated subpattern at position 0"),
])
def test_check_errors_name_the_line_of_task_yaml(tmp_path, edit, line, field, message):
    e = _error(TASK.replace(*edit), tmp_path)
    assert (e.file, e.line, e.field, e.message) == (str(tmp_path / "task.yaml"), line, field, message)


def test_a_bad_schema_is_one_line_naming_its_file(tmp_path):
    text = TASK.replace("checks:\n", "checks:\n" + SCHEMA_CHECK)
    e = _error(text, tmp_path)
    assert (e.line, e.field, e.message) == (9, "checks.0.schema", f"schema file not found: {tmp_path / 'schema.json'}")
    (tmp_path / "schema.json").write_text('{\n  "type": "object",\n  "required": ["a"\n}\n')
    e = _error(text, tmp_path)
    assert e.message.startswith(f"{tmp_path / 'schema.json'}:4: not JSON: ")
    (tmp_path / "schema.json").write_text(json.dumps({"type": "strin", "properties": {"a": {"minLength": -1}}}))
    e = _error(text, tmp_path)
    assert e.message.startswith(f"{tmp_path / 'schema.json'}: not a valid JSON Schema (2020-12): $.")
    e = _error(TASK.replace("checks:\n", "checks:\n  - kind: json_schema\n    schema: {type: strin}\n"), tmp_path)
    assert e.message == ("the inline schema: not a valid JSON Schema (2020-12): $.type: 'strin' is not valid "
                         "under any of the given schemas (anyOf)")
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    e = _error(text + "  - kind: json_schema\n    name: other\n    schema: {type: object}\n", tmp_path)
    assert (e.line, e.field) == (21, "checks.5.kind") and "at most one" in e.message
    task = parse_task(text.replace("metric: pass_all", "metric: strict_json"), file=tmp_path / "task.yaml")
    assert task.check_metrics == ["schema_valid", "length", "voice", "tone", "language", "strict_json",
                                  "lenient_json", "pass_all"]
    assert task.checks[0].schema_dict == SCHEMA
    # The record's per-check metrics and the task's come from the same method, so they hold the same names.
    from advisor.measure import check_records

    records = check_records(task)
    assert records[0].metrics == ["schema_valid", "strict_json", "lenient_json"]
    assert [r.metrics for r in records[1:]] == [["length"], ["voice"], ["tone"], ["language"]]
    assert {m for r in records for m in r.metrics} | {"pass_all"} == set(task.check_metrics)
    assert records[0].rule == "schema schema.json; parse strict"


def test_advise_schema_lists_the_checks():
    from advisor.spec import task_json_schema

    schema = task_json_schema()
    kinds = schema["properties"]["checks"]["items"]["discriminator"]["mapping"]
    assert sorted(kinds) == ["json_schema", "language", "length", "phrases", "tone"]
    assert "schema" in schema["$defs"]["JsonSchemaCheck"]["properties"]


# -- a generation task with no eval gold ----------------------------------------------------------

EVAL = ["My parcel has not arrived yet.", "The lid of the box was cracked.", "Can I change my delivery address?",
        "I was charged twice for one order.", "The manual is missing from the box.", "How do I return a gift?"]


@pytest.fixture
def no_gold(tmp_path, write_jsonl) -> Path:
    write_jsonl(tmp_path / "train.jsonl", [
        {"input": "Where is my order?", "output": "Thanks for asking! Your order ships tomorrow."},
        {"input": "The cup arrived broken.", "output": "Sorry about that! We will send a new cup today."},
        {"input": "Do you ship abroad?", "output": "Yes, we ship to most countries, happy to help."},
    ])
    write_jsonl(tmp_path / "eval.jsonl", [{"id": f"e{i}", "input": q} for i, q in enumerate(EVAL)])
    (tmp_path / "task.yaml").write_text(TASK)
    return tmp_path / "task.yaml"


def test_validate_accepts_eval_without_gold_and_says_which_metrics_need_it(no_gold):
    from advisor.cli import main

    out = CliRunner().invoke(main, ["validate", str(no_gold)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert ("metrics: length, voice, tone, language, pass_all (checks, no gold needed); exact_match, token_f1, "
            "contains need gold — eval has none, not computed") in " ".join(out.output.split())
    # A gold metric as the target needs gold: the loader says so, naming the file, line and field.
    out = CliRunner().invoke(main, ["validate", str(no_gold), "--set", "target.metric=token_f1"])
    assert out.exit_code == 2
    assert "eval.jsonl:1: output: missing: every example needs 'output' (target.metric token_f1 compares " \
           "answers with it" in " ".join(out.output.split())


def test_a_no_gold_eval_scores_on_checks_only(no_gold):
    from advisor.data import load_dataset
    from advisor.scoring import score
    from advisor.spec import load_task
    from advisor.verdict import trivial_baseline

    task = load_task(no_gold)
    data = load_dataset(task)
    assert [ex.output for ex in data.eval] == [None] * 6 and data.eval_gold == 0
    raws = ["We are sorry, your parcel ships today.", "Calm down, it is your fault.", "Sure, happy to help!",
            "word " * 40, "Es tut uns leid, wir senden es heute.", "Thank you, returns are free."]
    golds = [ex.output for ex in data.eval]
    with pytest.raises(ValueError, match="needs the raw outputs"):
        score(task, golds, raws)
    s = score(task, golds, raws, raws)
    assert set(s.per_item) == {"length", "voice", "tone", "language", "pass_all"}  # no exact_match: no gold
    assert "exact_match" not in s.aggregate and "token_f1" not in s.aggregate
    assert s.per_item["voice"] == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert s.per_item["length"] == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert s.per_item["language"][4] == 0.0
    assert s.check_reasons["voice"][1] == "forbidden phrase 'calm down'; forbidden pattern '(?i)\\\\byour " \
                                          "fault\\\\b' matches 'your fault'"
    assert s.details["checks"]["voice"] == {"rate": 5 / 6, "failures": {"forbidden": 1, "forbidden_pattern": 1}}
    assert s.aggregate["pass_all"] == pytest.approx(sum(s.per_item["pass_all"]) / 6)
    # With gold, the kind's metrics are there too.
    with_gold = score(task, ["We are sorry."] * 6, raws, raws)
    assert {"exact_match", "token_f1", "contains", "pass_all"} <= set(with_gold.per_item)
    # The trivial baseline of a check target is the empty answer, run through the checks.
    base = trivial_baseline(task, data)
    assert (base.name, base.answer) == ("empty-answer", "")
    assert base.per_item["language"] == [0.0] * 6 and base.per_item["length"] == [1.0] * 6
    assert "exact_match" not in base.metrics


def test_the_audit_reads_a_no_gold_eval(no_gold, tmp_path, write_jsonl):
    from advisor.audit import audit_task
    from advisor.spec import load_task

    report = audit_task(load_task(no_gold))
    assert not [f for f in report.findings if f.check in ("empty-output", "refused")]
    # Extraction and classification: no eval fields to compare, no labels to count.
    write_jsonl(tmp_path / "train.jsonl", [{"input": "Ada, 12345", "output": {"name": "Ada", "zip": "12345"}},
                                           {"input": "Bob, 54321", "output": {"name": "Bob", "zip": "54321"}}])
    write_jsonl(tmp_path / "eval.jsonl", [{"input": "Cy, 11111"}, {"input": "Ada, 12345"}])
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "x.yaml").write_text("name: x\nkind: extraction\ndata: {train: train.jsonl, eval: eval.jsonl}\n"
                                     "target: {metric: schema_valid, threshold: 0.9}\nlevers: [prompt]\n"
                                     "checks:\n  - kind: json_schema\n    schema: schema.json\n")
    report = audit_task(load_task(tmp_path / "x.yaml"))
    assert not [f for f in report.findings if f.check in ("empty-output", "unknown-keys", "refused")]
    assert [f.count for f in report.findings if f.check == "exact-duplicate:train/eval"] == [1]
    assert not [f for f in report.findings if f.check.startswith("label-conflict")]
    write_jsonl(tmp_path / "train.jsonl", [{"input": "good", "output": "A"}, {"input": "bad", "output": "B"}])
    write_jsonl(tmp_path / "eval.jsonl", [{"input": "fine"}, {"input": "bad"}])
    (tmp_path / "c.yaml").write_text("name: c\nkind: classification\nlabels: [A, B]\n"
                                     "data: {train: train.jsonl, eval: eval.jsonl}\n"
                                     "target: {metric: ok, threshold: 0.9}\nlevers: [prompt]\n"
                                     "checks:\n  - kind: length\n    name: ok\n    max_words: 1\n")
    report = audit_task(load_task(tmp_path / "c.yaml"))
    assert not [f for f in report.findings if f.check in ("too-few-eval-items", "label-conflict:train/eval")]
    assert "eval: no gold outputs" in next(f.message for f in report.findings if f.check == "balance")


@pytest.mark.slow
def test_a_no_gold_task_runs_on_the_real_model(no_gold, tmp_path, hf_backend):
    from advisor.runner import Runner
    from advisor.spec import load_task

    runner = Runner(load_task(no_gold), tmp_path / "run", limit=4, latency_probe=0)
    runner._backend = hf_backend  # the session's model: loaded once for all tests
    try:
        result = runner.run(["prompt"])
    finally:
        runner.close()
    (lever,) = result.levers
    raws = [p.raw for p in lever.predictions]
    assert len(raws) == 4 and all(isinstance(r, str) for r in raws)
    expected = run_checks(load_task(no_gold).checks, raws)
    assert lever.scores.per_item == expected.per_item  # the run scored the model's own text, nothing else
    assert lever.scores.check_reasons == expected.reasons
    row = result.to_json()["levers"][0]
    assert set(row["metrics"]) >= {"length", "voice", "tone", "language", "pass_all"}
    assert "exact_match" not in row["metrics"] and "token_f1" not in row["metrics"]
    assert row["details"]["checks"]["pass_all"]["rate"] == row["metrics"]["pass_all"]["value"]
    assert row["verdict"]["state"] in ("meets", "fails", "undecided")
    assert result.to_json()["baseline"]["name"] == "empty-answer"
    # The record names the checks; the store keeps why each output failed; the report shows rates and the
    # same items side by side with each failed check's reason, read back from the run folder alone.
    result.write(tmp_path / "run" / "results.json")
    data = result.to_json()
    assert [c["name"] for c in data["checks"]] == ["length", "voice", "tone", "language"]
    assert data["checks"][0]["rule"] and data["checks"][0]["metrics"] == ["length"]
    from advisor.report.document import build_document, load_run

    run = load_run(tmp_path / "run")
    items = run.items["prompt"]
    stored = {ex_id: why for ex_id, why in items.reasons.items()}
    ids = [ex.id for ex in runner.data.eval]
    for metric, whys in expected.reasons.items():
        for ex_id, why in zip(ids, whys):
            assert stored.get(ex_id, {}).get(metric, "") == why
    section = next(s for s in build_document(run).sections if s.id == "checks")
    text = " ".join(str(b) for b in section.blocks)
    assert "Outputs side by side" in text and "pass_all" in text
    failed = [(ex_id, m, why) for ex_id, per in stored.items() for m, why in per.items() if m != "pass_all"]
    assert all(f"Heading(text='{ex_id}: " in text for ex_id in ids)  # 4 items: every one is shown
    for _ex_id, metric, why in failed:  # each failed check with its reason; each pass marked as one
        assert f"✗ {metric} ({why})" in text
    assert text.count("✓ ") + text.count("✗ ") == 4 * 4  # four items, four checks each


def test_the_report_shows_strict_lenient_and_schema_valid_beside_a_gold_target():
    """An extraction task with a schema: the checks table puts exact match (the target, against gold)
    beside strict_json, lenient_json and schema_valid, and says why outputs failed, by kind."""
    from advisor.report.checks_view import checks_section

    def m(v):
        return {"value": v, "ci_low": max(v - 0.2, 0), "ci_high": min(v + 0.2, 1)}

    r = {"task": "t", "target": {"metric": "exact_match", "confidence": 0.95},
         "checks": [{"name": "schema_valid", "kind": "json_schema", "rule": "schema 'schema.json'",
                     "metrics": ["schema_valid", "strict_json", "lenient_json"]}],
         "levers": [{"name": "prompt", "n_eval": 10,
                     "metrics": {"exact_match": m(0.1), "schema_valid": m(0.5), "strict_json": m(0.2),
                                 "lenient_json": m(0.6), "pass_all": m(0.5)},
                     "details": {"checks": {"schema_valid": {"rate": 0.5, "failures": {"required": 3, "parse": 2}}}}}]}

    class NoItems:
        items, scores = None, {}

    blocks = checks_section(r, NoItems()).blocks
    table = next(b for b in blocks if b.kind == "table")
    assert table.columns == ["lever", "exact_match", "strict_json", "lenient_json", "schema_valid", "pass_all"]
    assert table.rows[0][1:4] == ["0.100 (0.000–0.300)", "0.200 (0.000–0.400)", "0.600 (0.400–0.800)"]
    assert "beside the target exact_match" in table.caption
    bullets = next(b for b in blocks if b.kind == "bullets")
    assert bullets.items == ["prompt: schema_valid failed on 5 of 10 items (required: 3, parse: 2)"]
