"""One notion of "the same text" (`canonical_text`) and answer normalisation that never changes meaning
(`normalize_answer`): the decisions as a table, and the leakage guard and audit catching an eval input
written differently in train. No model is loaded.
"""

from __future__ import annotations

import unicodedata

import pytest

from advisor.audit import audit_task
from advisor.audit.similar import shingles
from advisor.backends.classify_api import map_to_label
from advisor.data import assert_no_eval, load_dataset, load_examples, remove_leakage, stable_hash
from advisor.errors import InputError
from advisor.scoring import contains_answer, field_counts, normalize_answer, token_f1
from advisor.spec import load_task, parse_task
from advisor.textnorm import answer_tokens, canonical_text

NFD_CAFE = unicodedata.normalize("NFD", "Café")
assert NFD_CAFE != "Café"

# -- canonical_text ------------------------------------------------------------------------------

SAME_TEXT = [
    ("Café au lait", f"{NFD_CAFE} au lait"),  # NFC against NFD
    ("ABC 123", "ＡＢＣ　１２３"),  # full-width letters, digits and ideographic space
    ("new york", "new\u00a0york"),  # non-breaking space
    ("new york", "new\u2009\u202fyork"),  # thin and narrow no-break spaces
    ("zero width", "zero\u200b width\u200d"),  # zero-width space and joiner
    ("cooperate", "co\u00adoperate"),  # soft hyphen
    ("bom", "\ufeffbom"),  # byte-order mark
    ("it's \"quoted\"", "it\u2019s \u201cquoted\u201d"),  # curly quotes
    ("'single'", "\u2018single\u2019"),
    ('"guillemets"', "\u00abguillemets\u00bb"),
    ("1990-2000", "1990\u20132000"),  # en dash
    ("a - b", "a \u2014 b"),  # em dash
    ("-5", "\u22125"),  # minus sign
    ("straße", "STRASSE"),  # full case folding (casefold, not lower)
    ("fine", "\ufb01ne"),  # ligature (NFKC)
    ("wait...", "wait\u2026"),  # ellipsis (NFKC)
    ("  several   spaces\tand\nlines ", "several spaces and lines"),
    ("H2O", "H\u2082O"),  # subscripts are folded by NFKC (documented)
]

DIFFERENT_TEXT = [
    ("café", "cafe"),  # accents are letters, kept
    ("3.14", "314"),
    ("-5", "5"),
    ("C++", "C"),
    ("e-mail", "email"),
    ("hello, world", "hello world"),
    ("A/B", "AB"),
]


@pytest.mark.parametrize(("a", "b"), SAME_TEXT)
def test_canonical_text_folds_only_how_a_text_is_written(a, b):
    assert canonical_text(a) == canonical_text(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT_TEXT)
def test_canonical_text_never_folds_what_it_says(a, b):
    assert canonical_text(a) != canonical_text(b)


@pytest.mark.parametrize("text", [a for pair in SAME_TEXT + DIFFERENT_TEXT for a in pair] + ["İstanbul", "ǅ", "ß"])
def test_canonical_text_is_idempotent(text):
    once = canonical_text(text)
    assert canonical_text(once) == once


def test_canonical_text_of_ascii_is_lower_case_and_single_spaces():
    assert canonical_text("  Where IS\tParis?  ") == "where is paris?"


# -- normalize_answer ----------------------------------------------------------------------------

EQUAL_ANSWERS = [
    ("Paris", "paris"),  # case
    ("The Hague.", "hague"),  # article, trailing period
    ("an apple", "apple"),
    ("\u201cParis\u201d", "Paris"),  # curly quotes
    ("'Paris'", "Paris"),
    ("Café", NFD_CAFE),  # NFC against NFD
    ("１２３", "123"),  # full-width digits
    ("New\u00a0York", "new york"),  # non-breaking space
    ("Ber\u200blin", "Berlin"),  # zero-width space
    ("5.", "5"),  # sentence-final period after a number
    ("3.14.", "3.14"),
    ("(5)", "5"),  # brackets around the whole answer
    ("(5).", "5"),
    ("[1]", "1"),
    ("Paris, France", "paris france"),  # comma between words
    ("yes!", "yes"),
    ("1,000", "1000"),  # thousands comma between digit groups
    ("1,234,567.5", "1234567.5"),
    ("$1,000", "$1000"),
    ("\u22125", "-5"),  # minus sign and hyphen-minus
    ("\u20135", "-5"),  # en dash
    ("U.S.", "US"),  # dots in initials
    ("U.S.A.", "usa"),
    ("don't", "dont"),  # apostrophe between letters (as SQuAD)
    ("C++.", "C++"),
    ("C#!", "c#"),
    ("50%.", "50%"),
    ("f(x)", "F(X)"),  # a bracket with its partner inside stays
]

DIFFERENT_ANSWERS = [
    ("-5", "5"),  # sign
    ("+44", "44"),
    ("3.14", "314"),  # decimal point
    (".5", "5"),
    ("C++", "C"),
    ("C#", "C"),
    ("50%", "50"),  # percent is part of the quantity
    ("$5", "5"),  # currency
    ("5€", "5"),
    ("2024-01-05", "20240105"),  # hyphens inside a token stay
    ("e-mail", "email"),
    ("A/B", "AB"),
    ("10:30", "1030"),
    ("1.000", "1000"),  # a dot is read as written: never a thousands separator
    ("1.000", "1,000"),
    ("1,5", "15"),  # not three digits after the comma: not a thousands comma
    ("US", "USA"),
    ("10²", "102"),  # an exponent stays apart
    ("18+", "18"),
    ("#1", "1"),
    ("café", "cafe"),
    ("028", "28"),  # leading zeros (ISO numeric codes)
]


@pytest.mark.parametrize(("a", "b"), EQUAL_ANSWERS)
def test_answers_equal_when_only_the_writing_differs(a, b):
    assert normalize_answer(a) == normalize_answer(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT_ANSWERS)
def test_answers_differ_when_a_mark_carries_meaning(a, b):
    assert normalize_answer(a) != normalize_answer(b)


@pytest.mark.parametrize("gold", ["?", "...", "-", "%", "the", "A", " \u200b ", "\u201c\u201d"])
def test_punctuation_or_articles_alone_normalise_to_nothing(gold):
    assert normalize_answer(gold) == ""


def test_tokens_keep_numbers_and_codes_whole():
    assert answer_tokens("The price rose -5.5% to $1,200 (C++ 2024-01-05).") == [
        "price", "rose", "-5.5%", "to", "$1200", "c++", "2024-01-05"]


CONTAINS = [
    ("The code is 028.", "028", 1.0),
    ("code 0280", "028", 0.0),
    ("it fell -5", "5", 0.0),  # "5" is not in "-5"
    ("about 3.5 points", "5", 0.0),
    ("15 items", "5", 0.0),
    ("5% of them", "5", 0.0),
    ("USA", "US", 0.0),  # "US" is not in "USA"
    ("the U.S. did", "US", 1.0),
    ("It is The Hague, I think", "the hague", 1.0),
    ("Hague The", "the hague", 1.0),  # articles are not tokens
    ("in New York City", "new york", 1.0),
    ("New Jersey York", "new york", 0.0),  # in order and adjacent
    ("3.14 exactly", "3.14", 1.0),
    ("314", "3.14", 0.0),
    ("C is not C++", "C++", 1.0),
    ("only C here", "C++", 0.0),
    ("It was 1,000 people", "1000", 1.0),
    ("", "", 1.0),
]


@pytest.mark.parametrize(("pred", "gold", "expected"), CONTAINS)
def test_contains_matches_whole_tokens_only(pred, gold, expected):
    assert contains_answer(pred, gold) == expected


def test_token_f1_counts_numbers_as_whole_tokens():
    assert token_f1("-5 degrees", "5 degrees") == pytest.approx(0.5)
    assert token_f1("3.14", "314") == 0.0
    assert token_f1("The Hague.", "hague") == 1.0


def test_extraction_fields_compare_in_canonical_form():
    gold = {"city": "Café", "quote": "it's", "n": "1990-2000"}
    pred = {"city": NFD_CAFE.upper(), "quote": "it\u2019s", "n": "1990\u20132000"}
    assert field_counts(pred, gold) == (3, 3, 3)
    assert field_counts({"n": "-5"}, {"n": "5"}) == (0, 1, 1)


def test_api_label_mapping_folds_unicode_and_curly_quotes():
    labels = ["positive", "negative"]
    assert map_to_label("\u201cPOSITIVE\u201d", labels) == "positive"
    assert map_to_label("ｎｅｇａｔｉｖｅ", labels) == "negative"
    assert map_to_label("neutral", labels) is None


# -- leakage, few-shot pool and audit ------------------------------------------------------------

SPEC = """\
name: t
kind: classification
labels: [A, B]
data: {train: train.jsonl, eval: eval.jsonl}
target: {metric: accuracy, threshold: 0.5}
levers: [prompt, prompt-few-shot]
"""

EVAL_INPUT = "Which café in Zürich serves “the best” coffee?"
WRITTEN_DIFFERENTLY = {
    "nfd": unicodedata.normalize("NFD", EVAL_INPUT),
    "nbsp": EVAL_INPUT.replace(" ", "\u00a0"),
    "fullwidth": "Ｗｈｉｃｈ café in Zürich serves “the best” coffee？",
    "zero-width": EVAL_INPUT.replace("café", "ca\u200bfé").replace("Zürich", "\ufeffZürich"),
    "straight-quotes": EVAL_INPUT.replace("“", '"').replace("”", '"'),
    "casefold": EVAL_INPUT.upper(),
}


@pytest.fixture(params=sorted(WRITTEN_DIFFERENTLY))
def leaky(request, tmp_path, write_jsonl):
    """A task whose train holds the eval input written another way (the param names how)."""
    write_jsonl(tmp_path / "train.jsonl", [
        {"id": "copy", "input": WRITTEN_DIFFERENTLY[request.param], "output": "A"},
        {"id": "other", "input": "How tall is the tower in Pisa?", "output": "B"},
    ])
    write_jsonl(tmp_path / "eval.jsonl", [
        {"id": "e1", "input": EVAL_INPUT, "output": "A"},
        {"id": "e2", "input": "Who painted the ceiling of the chapel?", "output": "B"},
    ])
    (tmp_path / "task.yaml").write_text(SPEC)
    return tmp_path


def test_an_eval_input_written_differently_is_removed_from_train(leaky):
    data = load_dataset(parse_task(SPEC, file=leaky / "task.yaml"))
    assert data.leakage_removed == ["copy"]
    assert [e.id for e in data.train] == ["other"]


def test_the_few_shot_pool_refuses_an_eval_input_written_differently(leaky):
    task = parse_task(SPEC, file=leaky / "task.yaml")
    train = load_examples(task, leaky / "train.jsonl", split="train")
    eval_ = load_examples(task, leaky / "eval.jsonl", split="eval")
    with pytest.raises(InputError, match="eval examples are never shown"):
        assert_no_eval(train, eval_, what="the few-shot pool")
    kept, removed = remove_leakage(train, eval_)
    assert removed == ["copy"]
    assert_no_eval(kept, eval_, what="the few-shot pool")


def test_the_audit_flags_an_eval_input_written_differently_as_an_exact_duplicate(leaky):
    report = audit_task(load_task(leaky / "task.yaml"))
    leak = report.find("exact-duplicate:train/eval")
    assert leak is not None and leak.count == 1
    assert leak.examples[0]["a"].endswith("train.jsonl:1") and leak.examples[0]["b"].endswith("eval.jsonl:1")
    near = report.find("near-duplicate:train/eval")
    assert near is None or near.count == 0  # reported once, as the exact copy it is


def test_audit_exact_duplicates_within_train_and_knowledge_use_the_canonical_form(tmp_path, write_jsonl):
    spec = SPEC.replace("data: {train: train.jsonl, eval: eval.jsonl}",
                        "data: {train: train.jsonl, eval: eval.jsonl, knowledge: kb.jsonl}")
    write_jsonl(tmp_path / "train.jsonl", [
        {"id": "t1", "input": "Where is the café?", "output": "A"},
        {"id": "t2", "input": unicodedata.normalize("NFD", "WHERE is the\u00a0café?"), "output": "B"},
    ])
    write_jsonl(tmp_path / "eval.jsonl", [{"id": "e1", "input": "Who built the bridge?", "output": "A"}])
    write_jsonl(tmp_path / "kb.jsonl", [
        {"id": "d1", "text": "The bridge was built in 1890 by the city."},
        {"id": "d2", "text": "The bridge was built in 1890 by the city.\u200b"},
    ])
    (tmp_path / "task.yaml").write_text(spec)
    report = audit_task(load_task(tmp_path / "task.yaml"))
    assert report.find("exact-duplicate:train").count == 1
    assert report.find("label-conflict:train").count == 1
    assert report.find("knowledge-duplicate").count == 1


def test_shingles_are_taken_from_the_canonical_form():
    assert shingles(EVAL_INPUT, 2) == shingles(WRITTEN_DIFFERENTLY["fullwidth"], 2)
    assert shingles(EVAL_INPUT, 2) == shingles(WRITTEN_DIFFERENTLY["zero-width"], 2)


def test_content_hashes_are_not_normalised(tmp_path, write_jsonl):
    """Hashes identify stored content: two spellings of one text keep two hashes."""
    task = parse_task(SPEC, file=tmp_path / "task.yaml")
    write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "input": "Café", "output": "A"}])
    write_jsonl(tmp_path / "b.jsonl", [{"id": "x", "input": NFD_CAFE, "output": "A"}])
    a = load_examples(task, tmp_path / "a.jsonl", split="train")[0]
    b = load_examples(task, tmp_path / "b.jsonl", split="train")[0]
    assert a.hash != b.hash
    assert a.hash == stable_hash({"id": "x", "input": "Café", "output": "A"})[:16]
