"""`advise audit` on planted problems: each is found with file:line on both sides, a clean task finds
nothing, the CLI's exit codes follow --strict, and `advise run` stores the audit and applies its policy.

No model is loaded here (embeddings stay off); a small answering backend stands in for the model in
the one run test, which checks the runner's bookkeeping, not answers.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from advisor.audit import audit_task, items_for_label_recall
from advisor.audit.render import audit_summary
from advisor.audit.similar import all_pairs_jaccard, near_pairs, shingles
from advisor.cli import main
from advisor.report.scorecard import print_results
from advisor.runner import Runner
from advisor.spec import load_task
from tests.fake_backends import FirstOption

CLASSIFY = """\
name: planted
kind: classification
labels: [LOC, HUM, NUM, ENTY]
data: {train: train.jsonl, eval: eval.jsonl}
target: {metric: accuracy, threshold: 0.5}
levers: [prompt, prompt-few-shot]
"""

# Words no two texts share, so a clean task has no near-duplicates by construction.
_rng = random.Random(7)
_VOCAB = sorted({"".join(_rng.choice("bcdfghklmnprstvz") + _rng.choice("aeiou") for _ in range(3))
                 for _ in range(3000)})


def _distinct_texts(n: int, words: int = 6) -> list[str]:
    pool = _VOCAB[:]
    random.Random(3).shuffle(pool)
    return [" ".join(pool[i * words : (i + 1) * words]) + "?" for i in range(n)]


def _lines(path):
    return {json.loads(line).get("id"): n for n, line in enumerate(path.read_text().splitlines(), start=1)}


@pytest.fixture
def planted(tmp_path, write_jsonl):
    """A classification task with one of each planted problem (ids name them)."""
    clean = _distinct_texts(20)
    train = [{"id": f"t{i}", "input": clean[i], "output": ["LOC", "NUM", "ENTY"][i % 3]} for i in range(9)]
    train += [
        {"id": "near", "input": "Which river is the longest river in the whole world when measured from its source?", "output": "LOC"},
        {"id": "dup-a", "input": "How many legs does a spider have?", "output": "NUM"},
        {"id": "dup-b", "input": "how many  legs does a SPIDER have?", "output": "ENTY"},  # conflicting label
    ]
    eval_ = [{"id": f"e{i}", "input": clean[10 + i], "output": ["LOC", "NUM", "ENTY"][i % 3]} for i in range(6)]
    eval_ += [
        {"id": "near-eval", "input": "which RIVER is the   longest river in the entire world when measured from its SOURCE ?", "output": "LOC"},
        {"id": "one-hum", "input": "Who wrote the novel about a white whale?", "output": "HUM"},
    ]
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "eval.jsonl", eval_)
    (tmp_path / "task.yaml").write_text(CLASSIFY)
    return tmp_path


def _where(folder, split, ex_id):
    return f"{folder / f'{split}.jsonl'}:{_lines(folder / f'{split}.jsonl')[ex_id]}"


def test_planted_classification_problems_are_each_found_with_file_and_line(planted):
    report = audit_task(load_task(planted / "task.yaml"))
    near = report.find("near-duplicate:train/eval")
    assert near is not None and near.count == 1 and near.severity == "warning"
    assert near.examples[0]["a"] == _where(planted, "train", "near")
    assert near.examples[0]["b"] == _where(planted, "eval", "near-eval")
    assert "jaccard 0.86" in near.examples[0]["text"]  # 12 shared words of 14
    assert report.near_leak_ids == ["near"]
    pool = report.find("near-duplicate:few-shot-pool/eval")  # the task has prompt-few-shot
    assert pool is not None and pool.count == 1

    dup = report.find("exact-duplicate:train")
    assert dup is not None and dup.count == 1
    assert (dup.examples[0]["a"], dup.examples[0]["b"]) == (_where(planted, "train", "dup-a"),
                                                            _where(planted, "train", "dup-b"))
    conflict = report.find("label-conflict:train")
    assert conflict is not None and conflict.count == 1
    assert conflict.examples[0]["b"] == _where(planted, "train", "dup-b")
    assert "NUM" in conflict.examples[0]["text"] and "ENTY" in conflict.examples[0]["text"]

    assert report.find("refused") is None and report.refusal() is None  # the loaders accept every record

    few = report.find("too-few-eval-items")
    assert few is not None
    hum = [ex for ex in few.examples if ex["text"].startswith("HUM")]
    assert hum and hum[0]["a"] == _where(planted, "eval", "one-hum") and "1 eval item" in hum[0]["text"]
    assert f"each needs {items_for_label_recall(0.15, 0.95)}" in few.message and items_for_label_recall(0.15, 0.95) == 43
    unseen = report.find("label-unseen-in-train")
    assert unseen is not None and unseen.count == 1 and unseen.examples[0]["text"].startswith("HUM")
    assert report.counts["labels"]["eval"]["HUM"] == 1
    assert report.find("exact-duplicate:train/eval") is None  # nothing exact leaks here


def test_near_duplicate_remove_policy_marks_it_removed(planted):
    task = load_task(planted / "task.yaml", {"audit.near_duplicates": "remove"})
    report = audit_task(task)
    near = report.find("near-duplicate:train/eval")
    assert near is not None and near.severity == "removed" and report.counts["removed_near"] == 1
    assert report.find("near-duplicate:few-shot-pool/eval") is None  # nothing left in the pool


def test_extraction_list_output_and_stray_keys_are_found(tmp_path, write_jsonl):
    write_jsonl(tmp_path / "train.jsonl", [
        {"id": "ok", "input": "12 Main St", "output": {"number": "12", "street": "Main St"}},
        {"id": "list", "input": "9 Elm Rd", "output": ["9", "Elm Rd"]},
        {"id": "stray", "input": "4 Oak Ave Apt 2", "output": {"number": "4", "street": "Oak Ave", "unit": "Apt 2"}},
        {"id": "text", "input": "7 Pine Ct", "output": "{not json"},
    ])
    write_jsonl(tmp_path / "eval.jsonl", [{"id": "e1", "input": "3 Birch Ln", "output": {"number": "3",
                                                                                          "street": "Birch Ln"}}])
    (tmp_path / "task.yaml").write_text(
        "name: ex\nkind: extraction\ndata: {train: train.jsonl, eval: eval.jsonl}\n"
        "target: {metric: exact_match, threshold: 0.5}\nlevers: [prompt]\n")
    report = audit_task(load_task(tmp_path / "task.yaml"))
    refused = report.find("refused")  # the loader's own verdict and words, not a copy of its rules
    assert refused is not None and refused.severity == "error" and refused.count == 2
    assert [(ex["a"], ex["text"]) for ex in refused.examples] == [
        (_where(tmp_path, "train", "list"), "output: extraction output must be a JSON object"),
        (_where(tmp_path, "train", "text"), "output: extraction output must be a JSON object")]
    stray = report.find("unknown-keys")
    assert stray is not None and stray.count == 1 and "unit" in stray.examples[0]["text"]
    assert stray.examples[0]["a"] == _where(tmp_path, "train", "stray")
    assert report.find("label-conflict:train") is None and report.find("balance") is None


QA = """\
name: qa
kind: qa
data: {train: train.jsonl, eval: eval.jsonl, knowledge: knowledge.jsonl}
target: {metric: exact_match, threshold: 0.5}
levers: [prompt]
"""


def test_knowledge_duplicates_empty_docs_and_answers_missing_from_sources(tmp_path, write_jsonl):
    write_jsonl(tmp_path / "knowledge.jsonl", [
        {"id": "d1", "text": "Andorra: alpha-2 code AD, numeric code 020."},
        {"id": "d2", "text": "Angola: alpha-2 code AO, numeric code 024."},
        {"id": "d3", "text": "  andorra:  alpha-2 code AD,   numeric code 020.  "},  # d1 again
        {"id": "d4", "text": "   "},
    ])
    write_jsonl(tmp_path / "train.jsonl", [{"id": "t1", "input": "Alpha-2 code of Andorra?", "output": "AD",
                                            "sources": ["d1"]}])
    write_jsonl(tmp_path / "eval.jsonl", [
        {"id": "e1", "input": "Numeric code of Angola?", "output": "024", "sources": ["d2"]},
        {"id": "e2", "input": "Alpha-3 code of Angola?", "output": "AGO", "sources": ["d2"]},
        {"id": "e3", "input": "Alpha-2 code of Chad?", "output": "TD", "sources": ["d9"]},
    ])
    (tmp_path / "task.yaml").write_text(QA)
    report = audit_task(load_task(tmp_path / "task.yaml"))
    kfile = tmp_path / "knowledge.jsonl"
    dup = report.find("knowledge-duplicate")
    assert dup is not None and dup.count == 1 and (dup.examples[0]["a"], dup.examples[0]["b"]) == (f"{kfile}:1",
                                                                                                   f"{kfile}:3")
    refused = report.find("refused")  # a blank JSONL text: the RAG loader refuses it
    assert refused is not None and [(ex["a"], ex["text"]) for ex in refused.examples] == [
        (f"{kfile}:4", "text: expected a non-empty string, got '   '")]
    absent = report.find("answer-not-in-sources")
    assert absent is not None and absent.count == 1  # 024 is in d2, AGO is not
    assert (absent.examples[0]["a"], absent.examples[0]["b"]) == (_where(tmp_path, "eval", "e2"), f"{kfile}:2")
    missing = report.find("source-missing")
    assert missing is not None and missing.examples[0]["a"] == _where(tmp_path, "eval", "e3")


def test_a_clean_task_finds_nothing(tmp_path, write_jsonl):
    texts = _distinct_texts(30)
    write_jsonl(tmp_path / "train.jsonl", [{"input": texts[i], "output": "AB"[i % 2]} for i in range(20)])
    write_jsonl(tmp_path / "eval.jsonl", [{"input": texts[20 + i], "output": "AB"[i % 2]} for i in range(10)])
    # ±0.45 needs 5 eval items a label (n = 1.96² · 0.25 / 0.45²): the 5 + 5 here suffice.
    (tmp_path / "task.yaml").write_text(
        "name: clean\nkind: classification\nlabels: [A, B]\ndata: {train: train.jsonl, eval: eval.jsonl}\n"
        "target: {metric: accuracy, threshold: 0.5}\nlevers: [prompt, prompt-few-shot]\n"
        "audit: {label_half_width: 0.45, strict: true}\n")
    report = audit_task(load_task(tmp_path / "task.yaml"))
    # The class counts, and why the label-error check did not run (20 items), as information only.
    assert [(f.check, f.severity) for f in report.findings] == [("balance", "info"), ("label-error", "info")]
    assert "not checked: only 20 train example(s)" in report.find("label-error").message
    assert report.counts["labels"] == {"train": {"A": 10, "B": 10}, "eval": {"A": 5, "B": 5}}
    assert not report.failed()
    result = CliRunner().invoke(main, ["audit", str(tmp_path / "task.yaml")])
    assert result.exit_code == 0, result.output


def test_cli_exit_codes_and_json(planted):
    task = str(planted / "task.yaml")
    runner = CliRunner()
    shown = runner.invoke(main, ["audit", task])
    assert shown.exit_code == 0, shown.output  # warnings only, not strict
    assert "near-duplicate:train/eval" in shown.output and "label-conflict:train" in shown.output
    assert runner.invoke(main, ["audit", task, "--strict"]).exit_code == 1
    assert runner.invoke(main, ["audit", task, "--set", "audit.strict=true"]).exit_code == 1
    as_json = runner.invoke(main, ["audit", task, "--json"])
    data = json.loads(as_json.stdout)
    assert data["strict"] is False and {"findings", "counts", "strict"} == set(data)
    f = next(f for f in data["findings"] if f["check"] == "near-duplicate:train/eval")
    assert set(f) == {"check", "severity", "count", "message", "examples"} and set(f["examples"][0]) == {"a", "b", "text"}
    missing = runner.invoke(main, ["audit", str(planted / "nope.yaml")])
    assert missing.exit_code == 2 and "task file not found" in missing.output
    (planted / "eval.jsonl").write_text('{"input": "x", "output": "LOC"}\n{broken\n')
    broken = runner.invoke(main, ["audit", task])
    assert broken.exit_code == 2 and "eval.jsonl:2" in broken.output and "Traceback" not in broken.output




def test_run_stores_the_audit_and_removes_near_leakage_on_request(planted, write_jsonl):
    rows = [json.loads(x) for x in (planted / "train.jsonl").read_text().splitlines()]
    write_jsonl(planted / "train.jsonl", [r for r in rows if r["id"] != "dup-b"])
    task = load_task(planted / "task.yaml", {"audit.near_duplicates": "remove", "levers": ["prompt"]})
    runner = Runner(task, planted / "run", latency_probe=1)
    runner._backend = FirstOption()
    try:
        assert "near" not in {e.id for e in runner.data.train}
        result = runner.run(task_file=planted / "task.yaml")
    finally:
        runner.store.close()
    data = result.to_json()
    assert data["provenance"]["data"]["near_leakage_removed"] == ["near"]
    assert data["provenance"]["data"]["n_train"] == 10
    checks = {f["check"]: f for f in data["audit"]["findings"]}
    assert checks["near-duplicate:train/eval"]["severity"] == "removed"
    lines = [t.plain for t in audit_summary(data["audit"])]
    assert "removed 1 (near-duplicate:train/eval)" in lines[0]
    assert any("too-few-eval-items" in line for line in lines[1:])
    console = Console(file=io.StringIO(), width=200)
    print_results(console, result.record)
    shown = console.file.getvalue()
    assert "data audit: " in shown and "removed 1 (near-duplicate:train/eval)" in shown


def test_lsh_finds_what_all_pairs_finds_on_planted_copies():
    rng = random.Random(0)
    texts = [" ".join(rng.choice(_VOCAB) for _ in range(12)) for _ in range(400)]
    for k in range(40):  # one word changed: Jaccard (11 shared) / 13 ≈ 0.85 when all words differ
        words = texts[k].split()
        words[rng.randrange(12)] = "zzzq"
        texts.append(" ".join(words).upper())
    exact = {(i, j) for i, j, _ in all_pairs_jaccard(texts, 0.7)}
    found = {(i, j) for i, j, _ in near_pairs(texts, 0.7)}
    assert found <= exact  # every reported pair is checked exactly: no false positives
    assert {(k, 400 + k) for k in range(40)} <= exact
    assert len(found & exact) >= 0.95 * len(exact)
    assert shingles("A  b, C", 2) == {b"a b", b"b c"} and shingles("", 1) == set()


@pytest.mark.slow
def test_embeddings_find_a_paraphrase_that_shares_few_words(tmp_path, write_jsonl):
    """The real embedded all-MiniLM-L6-v2: cosine 0.97 for two wordings that share 3 of 9 words."""
    texts = _distinct_texts(8)
    write_jsonl(tmp_path / "train.jsonl", [{"id": "tall", "input": "How tall is Mount Everest?", "output": "NUM"}]
                + [{"input": t, "output": "LOC"} for t in texts[:4]])
    write_jsonl(tmp_path / "eval.jsonl", [{"id": "height", "input": "What is the height of Mount Everest?",
                                           "output": "NUM"}] + [{"input": t, "output": "LOC"} for t in texts[4:]])
    (tmp_path / "task.yaml").write_text(CLASSIFY)
    task = load_task(tmp_path / "task.yaml")
    assert audit_task(task).find("near-duplicate:train/eval") is None  # MinHash alone: Jaccard 0.33
    result = CliRunner().invoke(main, ["audit", str(tmp_path / "task.yaml"), "--embeddings", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    near = next(f for f in data["findings"] if f["check"] == "near-duplicate:train/eval")
    assert near["count"] == 1 and near["examples"][0]["a"] == _where(tmp_path, "train", "tall")
    assert near["examples"][0]["b"] == _where(tmp_path, "eval", "height")
    assert "cosine 0.9" in near["examples"][0]["text"] and "embedding cosine>=0.95" in data["counts"]["near_method"]


def test_a_bad_audit_setting_names_file_line_and_field(planted):
    (planted / "task.yaml").write_text(CLASSIFY + "audit:\n  near_duplicates: delete\n")
    result = CliRunner().invoke(main, ["audit", str(planted / "task.yaml")])
    assert result.exit_code == 2
    assert f"{planted / 'task.yaml'}:8: audit.near_duplicates:" in result.output and "Traceback" not in result.output


def test_the_audit_lists_every_record_the_loaders_refuse_and_exits_2_like_validate(tmp_path):
    """Duplicate ids (field case 15) and a qa gold of "?" (case 08) were missed by the audit while
    validate refused them: the audit now asks the loaders, lists each refusal in their words, and
    exits 2 with the error validate gives (saying how many more it lists)."""
    import shutil

    cases = Path(__file__).parent / "fixtures" / "field_cases"
    runner = CliRunner()
    dup = cases / "15-dup-ids" / "task.yaml"
    validated = runner.invoke(main, ["validate", str(dup)])
    audited = runner.invoke(main, ["audit", str(dup), "--json"])
    assert validated.exit_code == audited.exit_code == 2
    assert audited.stderr.strip() == validated.output.strip() == (
        f"error: {cases / '15-dup-ids' / 'data' / 'eval.jsonl'}:5: id: duplicate id 'r1' (first on line 2)")
    refused = next(f for f in json.loads(audited.stdout)["findings"] if f["check"] == "refused")
    assert refused["severity"] == "error" and refused["count"] == 1
    assert refused["examples"] == [{"a": f"{cases / '15-dup-ids' / 'data' / 'eval.jsonl'}:5", "b": None,
                                    "text": "id: duplicate id 'r1' (first on line 2)"}]

    qa = shutil.copytree(cases / "08-blank-values", tmp_path / "08") / "qa.yaml"
    eval_ = qa.parent / "data" / "qa_eval.jsonl"
    validated = runner.invoke(main, ["validate", str(qa)])
    audited = runner.invoke(main, ["audit", str(qa)])
    assert validated.exit_code == audited.exit_code == 2 and "Traceback" not in audited.output
    first = (f'error: {eval_}:2: output: the gold answer "?" is empty once normalised (case folded; punctuation '
             "around words and articles dropped), so exact match would count an empty answer right; write the answer in words")
    assert validated.output.strip() == first
    assert audited.stderr.strip() == first + " (and 1 more record(s) that validate and run refuse; the audit lists them all)"
    report = audit_task(load_task(qa))
    assert [(ex["a"], ex["text"].split(":")[0]) for ex in report.find("refused").examples] == [
        (f"{eval_}:2", "output"), (f"{eval_}:3", "output")]
    assert report.counts["eval"] == 1 and report.counts["refused"] == 2  # the refused are left out of the rest
