"""Likely label errors in `advise audit` (advisor/audit/label_errors.py) and the review loop
(advisor/audit/review.py, `advise audit --review`, `advise apply-review`).

Most tests stand a deterministic fake in for the embedding model (random vectors per text: no signal, so
the word view carries the classes) and load no model; the TREC test embeds 5,080 real questions with
the embedded all-MiniLM-L6-v2 (marked slow).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from advisor.audit import audit_task
from advisor.audit.label_errors import MIN_PER_LABEL, MIN_TRAIN, form, occurs_in
from advisor.audit.render import audit_summary
from advisor.audit.review import COLUMNS
from advisor.cli import main
from advisor.runner import Runner
from advisor.spec import load_task
from tests.fake_backends import FirstOption

SAMPLES = Path(__file__).resolve().parent.parent / "sample_tasks"

CLASSIFY = """\
name: labelled
kind: classification
labels: [LOC, NUM, HUM]
data: {train: train.jsonl, eval: eval.jsonl}
target: {metric: accuracy, threshold: 0.5}
levers: [prompt]
"""

_CUES = {
    "LOC": ["river", "city", "mountain", "country", "capital", "island", "lake", "where", "border", "coast"],
    "NUM": ["many", "much", "year", "long", "far", "number", "percent", "count", "distance", "age"],
    "HUM": ["who", "person", "president", "author", "singer", "team", "inventor", "wrote", "founder", "actor"],
}
_rng = random.Random(5)
_FILLER = sorted({"".join(_rng.choice("bcdfghklmnprstvz") + _rng.choice("aeiou") for _ in range(3))
                  for _ in range(4000)})


def _text(label: str, rng: random.Random) -> str:
    return " ".join(rng.sample(_CUES[label], 3) + rng.sample(_FILLER, 3)) + " ?"


def _fake_vectors(texts: list[str]) -> np.ndarray:
    """A deterministic 16-d unit vector per text, with no information about its label."""
    out = []
    for t in texts:
        seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
        v = np.random.default_rng(seed).normal(size=16)
        out.append(v / np.linalg.norm(v))
    return np.array(out, dtype=np.float32)


@pytest.fixture
def fake_embed(monkeypatch):
    """The audit's embedder replaced by `_fake_vectors`; records how often it was called."""
    calls = []

    def embed(self, texts):
        calls.append(len(texts))
        return _fake_vectors(texts)

    monkeypatch.setattr("advisor.audit.checks._Embeddings.__call__", embed)
    return calls


def _labelled_task(folder: Path, write_jsonl, *, per_label: int = 50, flips: int = 3, extra: dict | None = None,
                   eval_flip: bool = True) -> tuple[Path, dict[str, str]]:
    """A classification task whose classes are told apart by cue words; `flips` train items (ids
    flip-N) and one eval item (flip-eval) carry a wrong label. Returns the task file and id -> true label."""
    rng = random.Random(11)
    labels = list(_CUES)
    counts = {lb: per_label for lb in labels} | (extra or {})
    train, truth = [], {}
    for lb, n in counts.items():
        for i in range(n):
            train.append({"id": f"{lb.lower()}-{i}", "input": _text(lb, rng), "output": lb})
    rng.shuffle(train)
    for k in range(flips):
        true = labels[k % 3]
        wrong = labels[(k + 1) % 3]
        train.append({"id": f"flip-{k}", "input": _text(true, rng), "output": wrong})
        truth[f"flip-{k}"] = true
    eval_ = [{"id": f"e-{lb.lower()}-{i}", "input": _text(lb, rng), "output": lb} for lb in labels for i in range(8)]
    if eval_flip:
        eval_.append({"id": "flip-eval", "input": _text("HUM", rng), "output": "LOC"})
        truth["flip-eval"] = "HUM"
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "eval.jsonl", eval_)
    (folder / "task.yaml").write_text(CLASSIFY)
    return folder / "task.yaml", truth


def test_planted_wrong_labels_are_ranked_first_with_the_label_the_data_suggests(tmp_path, write_jsonl, fake_embed):
    task_file, truth = _labelled_task(tmp_path, write_jsonl)
    report = audit_task(load_task(task_file))
    train = report.find("label-error:train")
    assert train is not None and train.severity == "warning"
    top = train.examples[:3]
    assert {ex["id"] for ex in top} == {"flip-0", "flip-1", "flip-2"}
    for ex in top:
        assert ex["suggested"] == truth[ex["id"]] and ex["given"] != ex["suggested"]
        assert ex["a"].startswith(str(tmp_path / "train.jsonl") + ":") and 0.5 < ex["score"] <= 1.0
    assert [ex["score"] for ex in train.examples] == sorted((ex["score"] for ex in train.examples), reverse=True)
    # eval is reported apart, and put first in the suspects list (it corrupts the verdict itself)
    ev = report.find("label-error:eval")
    assert ev is not None and ev.examples[0]["id"] == "flip-eval" and ev.examples[0]["suggested"] == "HUM"
    assert "corrupts the verdict" in ev.message and "Northcutt" in ev.message
    assert report.suspects[0].id == "flip-eval" and report.suspects[0].split == "eval"
    counts = report.counts["label_errors"]
    assert counts["checked"] == {"train": 153, "eval": 25} and counts["skipped"] is None
    assert counts["train"]["flagged"] == train.count and set(counts["seconds"]) == {"embed", "fit"}
    assert fake_embed == [153 + 25]  # train and eval embedded once, together
    # --json and results.json carry the same dicts (the findings with their suspects)
    as_json = json.loads(json.dumps(report.as_dict()))
    assert any(f["check"] == "label-error:train" and f["examples"][0]["id"].startswith("flip-")
               for f in as_json["findings"])


def test_too_little_data_is_skipped_with_a_reason_and_no_model(tmp_path, write_jsonl, fake_embed):
    task_file, _ = _labelled_task(tmp_path, write_jsonl, per_label=20, flips=0)
    report = audit_task(load_task(task_file))
    f = report.find("label-error")
    assert f is not None and f.severity == "info" and f.count == 0
    assert "only 60 train example(s)" in f.message and f"needs {MIN_TRAIN}" in f.message
    assert report.counts["label_errors"]["skipped"] and report.suspects == [] and fake_embed == []
    # one label with enough examples: nothing to tell it from
    (tmp_path / "task.yaml").write_text(CLASSIFY)
    write_jsonl(tmp_path / "train.jsonl", [{"input": _text("LOC", random.Random(i)), "output": "LOC" if i else "NUM"}
                                           for i in range(150)])
    f = audit_task(load_task(task_file)).find("label-error")
    assert "fewer than 2 labels" in f.message and "NUM 1" in f.message and fake_embed == []
    # audit.label_errors: false turns the check off entirely
    (tmp_path / "task.yaml").write_text(CLASSIFY + "audit: {label_errors: false}\n")
    assert not any(f.check.startswith("label-error") for f in audit_task(load_task(task_file)).findings)


def test_the_run_looks_for_label_errors_only_when_the_task_asks(tmp_path, write_jsonl, fake_embed):
    """`advise run`'s audit (advisor.plan.load_data) leaves the check out unless audit.label_errors is
    true: it embeds every train example, at the start of every run."""
    from advisor.plan import load_data

    task_file, _ = _labelled_task(tmp_path, write_jsonl, per_label=40, flips=0)
    _, report = load_data(load_task(task_file))
    assert report.find("label-error") is None and fake_embed == []
    assert audit_task(load_task(task_file)).find("label-error:train") is not None  # `advise audit` looks
    (tmp_path / "task.yaml").write_text(task_file.read_text() + "audit: {label_errors: true}\n")
    _, report = load_data(load_task(task_file))
    assert report.find("label-error:train") is not None


def test_a_label_with_few_examples_is_left_out_and_named(tmp_path, write_jsonl, fake_embed):
    task_file, _ = _labelled_task(tmp_path, write_jsonl, per_label=50, flips=0, eval_flip=False)
    text = CLASSIFY.replace("labels: [LOC, NUM, HUM]", "labels: [LOC, NUM, HUM, ABBR]")
    (tmp_path / "task.yaml").write_text(text)
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    rows += [{"id": f"abbr-{i}", "input": f"what does ab{i} stand for ?", "output": "ABBR"} for i in range(3)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    report = audit_task(load_task(task_file))
    assert report.counts["label_errors"]["left_out"] == {"ABBR": 3}
    assert report.counts["label_errors"]["checked"]["train"] == 150
    f = report.find("label-error:train")
    assert f is not None and f"not checked: ABBR (3 train) (a label needs {MIN_PER_LABEL}" in f.message
    assert not any(s.given == "ABBR" for s in report.suspects)


@pytest.mark.slow
def test_the_planted_errors_of_trec_are_found(tmp_path):
    """Issue 25's bar: 4% of TREC train's labels flipped at random (seed of this test's own): precision among
    the top-k train suspects (k = planted) >= 0.70, recall of the flagged train set >= 0.80. Real model."""
    src = SAMPLES / "trec"
    shutil.copytree(src / "data", tmp_path / "data")
    shutil.copy(src / "task.yaml", tmp_path / "task.yaml")
    rows = [json.loads(line) for line in (src / "data" / "train.jsonl").read_text().splitlines()]
    labels = sorted({r["output"] for r in rows})
    rng = random.Random(2025)
    planted = set(rng.sample(range(len(rows)), round(0.04 * len(rows))))
    for i in planted:
        rows[i]["output"] = rng.choice([lb for lb in labels if lb != rows[i]["output"]])
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = audit_task(load_task(tmp_path / "task.yaml"))
    flipped = {rows[i]["id"] for i in planted}
    suspects = [s for s in report.suspects if s.split == "train"]
    k = len(flipped)
    top = {s.id for s in suspects[:k]}
    precision_at_k = len(top & flipped) / k
    flagged = {s.id for s in suspects}
    recall = len(flagged & flipped) / k
    print(f"planted {k}: precision@k {precision_at_k:.3f}; flagged {len(flagged)}, recall {recall:.3f}, "
          f"precision {len(flagged & flipped) / len(flagged):.3f}; {report.counts['label_errors']['seconds']}")
    assert precision_at_k >= 0.70
    assert recall >= 0.80


# --- extraction ------------------------------------------------------------------------------------------

EXTRACT = """\
name: fields
kind: extraction
data: {train: train.jsonl, eval: eval.jsonl}
target: {metric: exact_match, threshold: 0.5}
levers: [prompt]
"""

_CITIES = ["Springfield", "Riverton", "Lakewood", "Fairview", "Georgetown", "Salem", "Madison", "Clinton"]


def _address(i: int, zip_code: str | None = None) -> tuple[str, dict]:
    city, zip_code = _CITIES[i % len(_CITIES)], zip_code or f"{10000 + 137 * i:05d}"
    return f"{100 + i} Main St., {city}, ST {zip_code}", {"number": str(100 + i), "city": city, "zip": zip_code}


def _extraction_task(folder: Path, write_jsonl, n: int = 40) -> Path:
    """`n` train and 10 eval addresses; with n > 7, three planted errors: train a5's ZIP has 4 digits (as
    its input does: the form breaks the pattern), train a7's city is not in its input, eval a42's ZIP is
    letters."""
    train = []
    for i in range(n):
        text, out = _address(i, "0685" if i == 5 else None)
        train.append({"id": f"a{i}", "input": text, "output": out})
    if n > 7:
        train[7]["output"]["city"] = "Shelbyville"
    eval_ = []
    for i in range(n, n + 10):
        text, out = _address(i)
        eval_.append({"id": f"a{i}", "input": text, "output": out})
    if n > 7:
        eval_[2]["output"]["zip"] = "ST"
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "eval.jsonl", eval_)
    (folder / "task.yaml").write_text(EXTRACT)
    return folder / "task.yaml"


def test_forms_and_occurrence():
    assert form("60614") == "9{5}" and form("60614-1234") == "9{5}-9{4}" and form("IL") == "A{2}"
    assert form("Il") == "Aa" and form(12) == "number" and form(["x"]) == "list"
    assert occurs_in("Suite 5 Floor 2", "12 Elm St, Suite 5, Floor 2")  # punctuation between words ignored
    assert occurs_in("n.w.", "1800 M Street, N.W.") and not occurs_in("Street NW", "1800 M Street, SW")
    assert not occurs_in("Elm", "12 Elmwood St")  # whole words only


def test_extraction_field_errors_are_found_per_split(tmp_path, write_jsonl):
    report = audit_task(load_task(_extraction_task(tmp_path, write_jsonl)))
    missing = report.find("field-not-in-input:train")
    assert missing is not None and missing.count == 1
    assert missing.examples[0]["id"] == "a7" and missing.examples[0]["field"] == "city"
    assert missing.examples[0]["given"] == "Shelbyville" and missing.examples[0]["a"].endswith("train.jsonl:8")
    pattern = report.find("field-pattern:train")
    assert pattern is not None and [ex["id"] for ex in pattern.examples] == ["a5"] and "9{5}" in pattern.message
    ev = report.find("field-pattern:eval")
    assert ev is not None and ev.examples[0]["id"] == "a42" and ev.examples[0]["given"] == "ST"
    counts = report.counts["label_errors"]
    assert set(counts["copying"]) == {"number", "city", "zip"} and counts["patterns"]["zip"] == ["9{5}"]
    assert counts["train"] == {"not_in_input": 1, "pattern": 1} and counts["eval"] == {"not_in_input": 0, "pattern": 1}
    # the sample task: its real broken ZIP codes (a state where the ZIP belongs, four digits, ten)
    real = audit_task(load_task(SAMPLES / "addresses" / "task.yaml"))
    zips = {ex["given"] for ex in real.find("field-pattern:train").examples}
    assert {"ct", "6065460610"} <= zips


def test_extraction_with_too_few_values_says_so(tmp_path, write_jsonl):
    _extraction_task(tmp_path, write_jsonl, n=6)
    f = audit_task(load_task(tmp_path / "task.yaml")).find("field-error")
    assert f is not None and f.severity == "info" and "fewer than 20 values" in f.message


# --- the review loop, through the real CLI -----------------------------------------------------------------

def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns or list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _one_line_error(result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_review_round_trip(tmp_path, write_jsonl, fake_embed):
    task_file, truth = _labelled_task(tmp_path, write_jsonl)
    originals = {p.name: p.read_bytes() for p in (tmp_path / "train.jsonl", tmp_path / "eval.jsonl", task_file)}
    review = tmp_path / "review" / "suspects.csv"
    r = CliRunner().invoke(main, ["audit", str(task_file), "--review", str(review)])
    assert r.exit_code == 0, r.output
    assert "label-error:train" in r.output and f"written to {review}" in r.output
    rows = _read_csv(review)
    assert list(rows[0]) == COLUMNS and rows[0]["id"] == "flip-eval" and rows[0]["split"] == "eval"
    assert [row["rank"] for row in rows] == [str(i) for i in range(1, len(rows) + 1)]
    assert all(row["decision"] == "" and row["suggested"] for row in rows)
    by_id = {row["id"]: row for row in rows}
    assert by_id["flip-0"]["given"] == "NUM" and by_id["flip-0"]["suggested"] == truth["flip-0"]

    # a person reviews: relabel two (one with a label of their own), drop one, keep one; the rest unreviewed
    by_id["flip-eval"].update(decision="relabel", reviewer="ana", reviewed_at="2025-06-01T10:00")
    by_id["flip-0"].update(decision="Relabel", reviewer="ana", reviewed_at="2025-06-01T10:05")
    by_id["flip-1"].update(decision="drop", reviewer="bo", reviewed_at="2025-06-02", note="ambiguous")
    by_id["flip-2"].update(decision="keep", reviewer="bo")
    _write_csv(review, rows)
    out = tmp_path / "fixed"
    r = CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"applied 2 relabel(s) and 1 drop(s) (1 kept, {len(rows) - 4} not reviewed)")
    assert f"--set data.train={(out / 'train.jsonl').resolve()}" in r.output
    for p in (tmp_path / "train.jsonl", tmp_path / "eval.jsonl", task_file):
        assert p.read_bytes() == originals[p.name]  # never modified
    train = {json.loads(line)["id"]: json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()}
    eval_ = {json.loads(line)["id"]: json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()}
    assert train["flip-0"]["output"] == truth["flip-0"] and "flip-1" not in train
    assert train["flip-2"]["output"] == "LOC" and eval_["flip-eval"]["output"] == "HUM"
    old_lines = (tmp_path / "train.jsonl").read_text().splitlines()
    new_lines = (out / "train.jsonl").read_text().splitlines()
    assert len(new_lines) == len(old_lines) - 1
    assert sum(a != b for a, b in zip([x for x in old_lines if '"flip-1"' not in x], new_lines)) == 1  # only flip-0
    log = [json.loads(line) for line in (out / "changes.jsonl").read_text().splitlines()]
    assert sorted((c["split"], c["id"], c["action"], c["before"], c["after"], c["reviewer"], c["reviewed_at"])
                  for c in log) == [
        ("eval", "flip-eval", "relabel", "LOC", "HUM", "ana", "2025-06-01T10:00"),
        ("train", "flip-0", "relabel", "NUM", truth["flip-0"], "ana", "2025-06-01T10:05"),
        ("train", "flip-1", "drop", "HUM", None, "bo", "2025-06-02"),
    ]
    log = {c["id"]: c for c in log}
    assert log["flip-1"]["note"] == "ambiguous" and log["flip-eval"]["review"] == f"{review}:2"
    assert log["flip-eval"]["applied_at"]
    assert log["flip-0"]["where"] == f"{tmp_path / 'train.jsonl'}:{[i for i, x in enumerate(old_lines, 1) if 'flip-0' in x][0]}"
    # the corrected copy is a task's data: the audit reads it, and flip-0 is no longer a suspect
    fixed = audit_task(load_task(task_file, _sets(out)))
    assert "flip-0" not in {s.id for s in fixed.suspects} and fixed.counts["train"] == len(train)

    # stale: the data changed since the review was written
    changed = (tmp_path / "train.jsonl").read_text().replace('"flip-0", "input": "', '"flip-0", "input": "so ')
    (tmp_path / "train.jsonl").write_text(changed)
    r = CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(tmp_path / "f2")])
    line = _one_line_error(r)
    assert line.startswith(f"error: {review}:{_row_line(review, 'flip-0')}: hash: train item 'flip-0'")
    assert "changed since this review was written" in line and not (tmp_path / "f2").exists()


def _sets(out: Path):
    from advisor.origin import parse_sets

    return parse_sets([f"data.train={out / 'train.jsonl'}", f"data.eval={out / 'eval.jsonl'}"])


def _row_line(path: Path, item_id: str) -> int:
    return next(i for i, row in enumerate(_read_csv(path), start=2) if row["id"] == item_id)


def test_a_bad_review_file_is_one_line_exit_2(tmp_path, write_jsonl, fake_embed):
    task_file, _ = _labelled_task(tmp_path, write_jsonl)
    review = tmp_path / "r.csv"
    assert CliRunner().invoke(main, ["audit", str(task_file), "--review", str(review)]).exit_code == 0
    rows = _read_csv(review)
    out = tmp_path / "out"

    def apply_with(edit_rows, columns=None) -> str:
        _write_csv(review, edit_rows, columns)
        return _one_line_error(CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(out)]))

    bad = [dict(r) for r in rows]
    bad[1]["decision"] = "relable"
    assert apply_with(bad).startswith(f"error: {review}:3: decision: 'relable' is not a decision")
    bad = [dict(r) for r in rows]
    bad[0].update(decision="relabel", suggested="PLACE")
    assert apply_with(bad).startswith(f"error: {review}:2: suggested: 'PLACE' is not a label of the task")
    bad = [dict(r) for r in rows]
    bad[2]["id"] = "nobody"
    assert apply_with(bad).startswith(f"error: {review}:4: id: id 'nobody' is not in the train data")
    bad = [dict(r) for r in rows]
    bad[0]["split"] = "dev"
    assert apply_with(bad).startswith(f"error: {review}:2: split: 'dev' is not a split")
    assert apply_with([{k: v for k, v in r.items() if k != "hash"} for r in rows],
                      [c for c in COLUMNS if c != "hash"]).startswith(f"error: {review}:1: hash: the header has no")
    review.write_text(review.read_text() + 'x,"unclosed\n')
    assert _one_line_error(CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(out)])
                           ).startswith(f"error: {review}:")
    line = _one_line_error(CliRunner().invoke(main, ["apply-review", str(task_file), str(tmp_path / "none.csv"),
                                                     "--out", str(out)]))
    assert line == f"error: {tmp_path / 'none.csv'}: review file not found"
    _write_csv(review, rows)
    line = _one_line_error(CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(tmp_path)]))
    assert "would overwrite the original" in line
    assert not out.exists()


def test_review_round_trip_of_a_field(tmp_path, write_jsonl):
    task_file = _extraction_task(tmp_path, write_jsonl)
    review = tmp_path / "r.csv"
    r = CliRunner().invoke(main, ["audit", str(task_file), "--review", str(review)])
    assert r.exit_code == 0, r.output
    rows = _read_csv(review)
    assert [(row["split"], row["id"], row["field"], row["suggested"]) for row in rows] == [
        ("eval", "a42", "zip", ""), ("train", "a7", "city", ""), ("train", "a5", "zip", "")]
    rows[0].update(decision="relabel", suggested="10137", reviewer="ana")
    rows[1].update(decision="relabel", suggested="null", reviewer="ana")
    rows[2].update(decision="relabel", suggested="", reviewer="ana")
    _write_csv(review, rows)
    out = tmp_path / "out"
    line = _one_line_error(CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(out)]))
    assert line.startswith(f"error: {review}:4: suggested: relabel needs the field's new value")
    rows[2]["suggested"] = "10685"
    _write_csv(review, rows)
    r = CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(out)])
    assert r.exit_code == 0, r.output
    train = {json.loads(x)["id"]: json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()}
    assert train["a5"]["output"]["zip"] == "10685" and train["a7"]["output"]["city"] is None  # text stays text
    assert train["a5"]["output"]["city"] == "Salem"  # the other fields untouched
    log = [json.loads(x) for x in (out / "changes.jsonl").read_text().splitlines()]
    assert [(c["id"], c["field"], c["before"], c["after"]) for c in log] == [
        ("a42", "zip", "ST", "10137"), ("a7", "city", "Shelbyville", None), ("a5", "zip", "0685", "10685")]




def test_a_run_stores_the_suspects_in_results_audit_and_the_scorecard_names_them(tmp_path, write_jsonl, fake_embed):
    task_file, _ = _labelled_task(tmp_path, write_jsonl)
    task_file.write_text(task_file.read_text() + "audit: {label_errors: true}\n")  # the run looks only when asked
    task = load_task(task_file)
    runner = Runner(task, tmp_path / "run", latency_probe=1)
    runner._backend = FirstOption()
    try:
        result = runner.run(task_file=task_file)
    finally:
        runner.store.close()
    audit = result.to_json()["audit"]
    checks = {f["check"]: f for f in audit["findings"]}
    assert checks["label-error:train"]["examples"][0]["id"].startswith("flip-")
    assert checks["label-error:eval"]["examples"][0]["id"] == "flip-eval"
    assert audit["counts"]["label_errors"]["checked"] == {"train": 153, "eval": 25}
    lines = [t.plain for t in audit_summary(audit)]
    assert any(line.startswith("- label-error:train: ") for line in lines)


def test_review_of_csv_data_writes_a_corrected_csv(tmp_path, write_jsonl, fake_embed):
    task_file, truth = _labelled_task(tmp_path, write_jsonl)
    rows = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    rows[0]["input"] = 'a "quoted", comma ' + rows[0]["input"]  # CSV quoting survives the copy
    with (tmp_path / "train.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "input", "output"])
        w.writerows([r["id"], r["input"], r["output"]] for r in rows)
    task_file.write_text(CLASSIFY.replace("train: train.jsonl", "train: train.csv"))
    review = tmp_path / "r.csv"
    assert CliRunner().invoke(main, ["audit", str(task_file), "--review", str(review)]).exit_code == 0
    reviewed = _read_csv(review)
    for row in reviewed:
        if row["id"] == "flip-0":
            row.update(decision="relabel", reviewer="ana")
        if row["id"] == "flip-1":
            row.update(decision="drop", reviewer="ana")
    _write_csv(review, reviewed)
    r = CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(tmp_path / "fixed")])
    assert r.exit_code == 0, r.output
    with (tmp_path / "fixed" / "train.csv").open(newline="", encoding="utf-8") as f:
        fixed = {row["id"]: row for row in csv.DictReader(f)}
    assert fixed["flip-0"]["output"] == truth["flip-0"] and "flip-1" not in fixed
    assert fixed[rows[0]["id"]]["input"] == rows[0]["input"] and len(fixed) == len(rows) - 1
    assert (tmp_path / "fixed" / "eval.jsonl").read_bytes() == (tmp_path / "eval.jsonl").read_bytes()


def test_unwritable_review_and_out_paths_are_refused_before_any_work(tmp_path, write_jsonl, fake_embed):
    task_file, _ = _labelled_task(tmp_path, write_jsonl)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = _one_line_error(CliRunner().invoke(main, ["audit", str(task_file), "--review", str(blocker / "r.csv")]))
    assert line.startswith(f"error: --review {blocker / 'r.csv'}: ") and fake_embed == []
    review = tmp_path / "r.csv"
    assert CliRunner().invoke(main, ["audit", str(task_file), "--review", str(review)]).exit_code == 0
    line = _one_line_error(CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(blocker)]))
    assert line == f"error: --out {blocker}: exists and is not a folder"


def test_a_review_path_that_is_one_of_the_tasks_files_is_refused(tmp_path, write_jsonl, fake_embed):
    task_file, _ = _labelled_task(tmp_path, write_jsonl)
    (tmp_path / "labels.jsonl").write_text("")
    originals = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "eval.jsonl")
    for given, what in ((tmp_path / "eval.jsonl", "the eval data (data.eval)"),
                        (tmp_path / "sub" / ".." / "train.jsonl", "the train data (data.train)"),
                        (tmp_path / "link.csv", "the eval data (data.eval)"), (task_file, "task.yaml"),
                        (tmp_path / "labels.jsonl", "the task's labels.jsonl")):
        line = _one_line_error(CliRunner().invoke(main, ["audit", str(task_file), "--review", str(given)]))
        assert line.startswith(f"error: --review {given}: is {what} of the task"), line
    assert fake_embed == []  # refused before any work
    assert {p: p.read_bytes() for p in originals} == originals
    # apply-review --out uses the same guard
    review = tmp_path / "r.csv"
    assert CliRunner().invoke(main, ["audit", str(task_file), "--review", str(review)]).exit_code == 0
    line = _one_line_error(CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out",
                                                     str(tmp_path / "sub" / "..")]))
    assert "is the train data (data.train) of the task" in line and "would overwrite the original" in line
    assert {p: p.read_bytes() for p in originals} == originals


def _reviewed(tmp_path, write_jsonl):
    task_file, _ = _labelled_task(tmp_path, write_jsonl)
    review = tmp_path / "r.csv"
    assert CliRunner().invoke(main, ["audit", str(task_file), "--review", str(review)]).exit_code == 0
    return task_file, review, _read_csv(review)


def _apply(task_file, review, out):
    return CliRunner().invoke(main, ["apply-review", str(task_file), str(review), "--out", str(out)])


def test_apply_review_refuses_two_rows_for_one_item_naming_both_lines(tmp_path, write_jsonl, fake_embed):
    task_file, review, rows = _reviewed(tmp_path, write_jsonl)
    rows[0]["decision"] = "relabel"
    rows.append({**rows[0], "decision": "drop"})
    _write_csv(review, rows)
    line = _one_line_error(_apply(task_file, review, tmp_path / "out"))
    assert line.startswith(f"error: {review}:{len(rows) + 1}: id: eval item 'flip-eval' is reviewed twice: at line 2 "
                           f"and line {len(rows) + 1}"), line
    assert not (tmp_path / "out").exists()


def test_a_relabel_to_the_given_label_is_counted_as_keep_and_not_logged(tmp_path, write_jsonl, fake_embed):
    task_file, review, rows = _reviewed(tmp_path, write_jsonl)
    rows[0].update(decision="relabel", suggested=rows[0]["given"])
    rows[1]["decision"] = "relabel"
    _write_csv(review, rows)
    r = _apply(task_file, review, tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"applied 1 relabel(s) and 0 drop(s) (1 kept, {len(rows) - 2} not reviewed)")
    log = [json.loads(x) for x in (tmp_path / "out" / "changes.jsonl").read_text().splitlines()]
    assert [c["id"] for c in log] == [rows[1]["id"]] and all(c["before"] != c["after"] for c in log)


def test_a_corrected_copy_validate_would_refuse_is_one_line_exit_2(tmp_path, write_jsonl, fake_embed):
    task_file, review, rows = _reviewed(tmp_path, write_jsonl)
    ev = tmp_path / "eval.jsonl"
    ev.write_text(ev.read_text() + ev.read_text().splitlines(keepends=True)[0])  # a duplicate id in eval
    assert CliRunner().invoke(main, ["validate", str(task_file)]).exit_code == 2
    rows = [r for r in rows if r["id"] != "e-loc-0"]
    _write_csv(review, rows)
    line = _one_line_error(_apply(task_file, review, tmp_path / "out"))
    assert "`advise validate` would refuse it" in line and str(tmp_path / "out" / "eval.jsonl") in line, line


def test_review_file_messages_say_what_is_wrong(tmp_path, write_jsonl, fake_embed):
    task_file, review, rows = _reviewed(tmp_path, write_jsonl)
    (tmp_path / "sub").mkdir()
    line = _one_line_error(_apply(task_file, tmp_path / "sub", tmp_path / "out"))
    assert line == f"error: {tmp_path / 'sub'}: is a folder, not a review file; give the CSV `advise audit --review` wrote"
    bad = [dict(r) for r in rows]
    bad[2]["id"] = "flip-O"
    _write_csv(review, bad)
    line = _one_line_error(_apply(task_file, review, tmp_path / "out"))
    assert line.startswith(f"error: {review}:4: id: id 'flip-O' is not in the ") and "changed since" not in line
    # a spreadsheet saved with semicolons is read as such
    rows[0]["decision"] = "relabel"
    with review.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")
        w.writeheader()
        w.writerows(rows)
    r = _apply(task_file, review, tmp_path / "out")
    assert r.exit_code == 0 and r.output.startswith("applied 1 relabel(s)"), r.output


def _graded_run(tmp_path, write_jsonl):
    """A run of the labelled task (the first option every time), and the task given a rubric afterwards."""
    from tests.judge_fixtures import CRITERIA

    task_file, _ = _labelled_task(tmp_path, write_jsonl)
    task = load_task(task_file)
    runner = Runner(task, tmp_path / "run", latency_probe=1)
    runner._backend = FirstOption()
    try:
        runner.run(task_file=task_file).write(tmp_path / "run" / "results.json")
    finally:
        runner.store.close()
    task_file.write_text(CLASSIFY + "rubric:\n  judge: openai:qwen2.5-7b-instruct\n  mode: per_criterion\n" + CRITERIA)
    return task_file, tmp_path / "run"


def test_label_refusals_are_one_line_exit_2(tmp_path, write_jsonl, fake_embed):
    task_file, run = _graded_run(tmp_path, write_jsonl)
    grades = tmp_path / "grades.csv"
    labels = tmp_path / "labels.jsonl"

    def label(*args):
        return CliRunner().invoke(main, ["label", str(run), *args])

    # a file given for the run folder
    a_file = tmp_path / "review.csv"
    a_file.write_text("x")
    line = _one_line_error(CliRunner().invoke(main, ["label", str(a_file)]))
    assert line == f"error: {a_file}: is a file, not a run folder: give the folder `advise run` wrote (with results.json)"
    # another task's task.yaml
    other = tmp_path / "other" / "task.yaml"
    other.parent.mkdir()
    for name in ("train.jsonl", "eval.jsonl"):
        shutil.copy(tmp_path / name, other.parent / name)
    other.write_text(task_file.read_text().replace("name: labelled", "name: trec"))
    line = _one_line_error(label("--task", str(other), "--import", str(grades)))
    assert line == (f"error: --task {other}: is task 'trec' (classification) but the run is of task 'labelled' "
                    "(classification); give the run's own task.yaml")
    assert not (other.parent / "labels.jsonl").exists()
    # the same item and criterion graded both ways
    grades.write_text("example_id,criterion,grade\ne-loc-0,owns_problem,yes\ne-loc-1,one_step,no\n"
                      "e-loc-0,owns_problem,no\n")
    line = _one_line_error(label("--import", str(grades)))
    assert line == (f"error: {grades}:4: grade: item 'e-loc-0' criterion 'owns_problem' is graded pass at line 2 "
                    "and fail at line 4; keep one")
    # an output_hash that is no output of the run
    grades.write_text("example_id,criterion,grade,output_hash\ne-loc-0,owns_problem,yes,abc123\n")
    line = _one_line_error(label("--import", str(grades)))
    assert line.startswith(f"error: {grades}:2: output_hash: output_hash 'abc123' is no output of the run")
    assert not labels.exists()
    # labels.jsonl a link to the eval data: not written through
    labels.symlink_to(tmp_path / "eval.jsonl")
    before = (tmp_path / "eval.jsonl").read_bytes()
    grades.write_text("example_id,criterion,grade\ne-loc-0,owns_problem,yes\n")
    line = _one_line_error(label("--import", str(grades)))
    assert line.startswith(f"error: labels file {labels}: is the eval data") and \
        (tmp_path / "eval.jsonl").read_bytes() == before
    labels.unlink()
    # and a good import still works; the same grade twice is no conflict
    grades.write_text("example_id,criterion,grade\ne-loc-0,owns_problem,yes\ne-loc-0,owns_problem,pass\n")
    r = label("--import", str(grades))
    assert r.exit_code == 0, r.output
    assert len(labels.read_text().splitlines()) == 1  # the same grade twice is written once


def test_an_import_that_contradicts_labels_jsonl_is_refused_unless_replace(tmp_path, write_jsonl, fake_embed):
    """labels.jsonl already grades (item, output hash, criterion): a CSV that says otherwise is one line at
    the CSV's line naming the recorded grade's line and who/when; --replace overwrites it and keeps the old
    grade on the new line; a CSV that agrees writes nothing."""
    from advisor.judge.labels import load_labels

    task_file, run = _graded_run(tmp_path, write_jsonl)
    labels = tmp_path / "labels.jsonl"

    def label(*args):
        return CliRunner().invoke(main, ["label", str(run), *args])

    first = tmp_path / "first.csv"
    first.write_text("example_id,criterion,grade\ne-loc-0,owns_problem,pass\ne-loc-1,one_step,fail\n")
    r = label("--import", str(first))
    assert r.exit_code == 0, r.output
    recorded = [json.loads(x) for x in labels.read_text().splitlines()]
    assert [(x["example_id"], x["criterion"], x["grade"]) for x in recorded] == [
        ("e-loc-0", "owns_problem", "pass"), ("e-loc-1", "one_step", "fail")]
    assert recorded[0]["source"] == f"import {first}:2" and recorded[0]["at"].endswith("Z")
    before = labels.read_text()
    # agreeing grades (and one new one): only the new one is written
    again = tmp_path / "again.csv"
    again.write_text("example_id,criterion,grade\ne-loc-0,owns_problem,yes\ne-loc-1,one_step,0\n"
                     "e-loc-1,owns_problem,pass\n")
    r = label("--import", str(again))
    assert r.exit_code == 0, r.output
    added = [json.loads(x) for x in labels.read_text()[len(before):].splitlines()]
    assert [(x["example_id"], x["criterion"]) for x in added] == [("e-loc-1", "owns_problem")]
    before = labels.read_text()
    # a contradiction: refused at the CSV's line, naming labels.jsonl's line and who/when; nothing written
    other = tmp_path / "other.csv"
    other.write_text("example_id,criterion,grade\ne-loc-1,owns_problem,pass\ne-loc-0,owns_problem,fail\n")
    line = _one_line_error(label("--import", str(other)))
    who = ", ".join(f"{k} {recorded[0][k]}" for k in ("by", "at", "source") if recorded[0].get(k))
    assert line == (f"error: {other}:3: grade: item 'e-loc-0' criterion 'owns_problem' is graded fail here but pass "
                    f"at {labels}:1 ({who}); fix the CSV, or give --replace to overwrite (the grade it replaces "
                    "is kept on the new line)")
    assert labels.read_text() == before
    # --replace without --import is refused, too
    line = _one_line_error(label("--replace"))
    assert line.startswith("error: --replace: --replace overwrites grades read with --import")
    # --replace: the change is written, with the grade it replaced
    r = label("--import", str(other), "--replace")
    assert r.exit_code == 0, r.output
    assert "1 replaced an earlier grade" in r.output
    added = [json.loads(x) for x in labels.read_text()[len(before):].splitlines()]
    assert len(added) == 1 and added[0]["grade"] == "fail" and added[0]["source"] == f"import {other}:3"
    assert added[0]["replaces"]["grade"] == "pass" and added[0]["replaces"]["line"] == 1
    oh = added[0]["output_hash"]
    assert load_labels(labels)[("e-loc-0", oh, "owns_problem")] == 0.0  # the replacement is the grade now
