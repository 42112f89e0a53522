"""Prompt variants and prompt-search: chosen on a dev split carved from train, never on eval.

The model tests use the real embedded SmolLM2 on real TREC questions, kept small (a few dev
items, a few candidates) so the whole file takes well under a minute or two on 2 cores.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from rich.console import Console
from scipy import stats as sps

from advisor.data import load_dataset
from advisor.errors import InputError
from advisor.prompting import dev_split, with_variant
from advisor.report.scorecard import prompt_choice_tables
from advisor.runner import Runner
from advisor.spec import load_task
from baselines.prompt_search import draw_candidates

ROOT = Path(__file__).resolve().parent.parent
TREC = ROOT / "sample_tasks" / "trec" / "data"
LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]

# Two wordings, one clearly better: `named` describes every label; `unnamed` says "{labels}", which
# stops the label list being appended, so the model is never told what the labels are or mean.
TASK = """\
name: trec-variants
kind: classification
labels: [ABBR, DESC, ENTY, HUM, LOC, NUM]
data: {{train: data/train.jsonl, eval: data/eval.jsonl}}
prompt:
  system: "{{labels}}"
  template: "Question: {{{{ input }}}}\\nType:"
  max_new_tokens: 8
  variants:
    named:
      system: |-
        You sort questions by the kind of answer they expect. Reply with exactly one label:
        ABBR - an abbreviation or what one stands for. DESC - a description, definition or reason.
        ENTY - a thing: an animal, food, colour, film, product, substance or term.
        HUM - a person or a group of people. LOC - a place. NUM - a number, date, count or amount.
  dev_size: {dev}
target: {{metric: accuracy, threshold: 0.8}}
levers: [prompt, prompt-search]
# These tests are about choosing on dev, not about label ranking: pinned to the summed
# log-likelihood, under which the wording that names the labels is clearly better on dev.
scoring: {{option_ranking: sum}}
{options}
"""


def _lines(name: str, n: int, skip: int = 0) -> list[dict]:
    rows = (TREC / name).read_text().splitlines()[skip : skip + n]
    return [json.loads(r) for r in rows]


def _make_task(folder: Path, *, dev: int = 12, options: str = "", scramble_eval: bool = False) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    train = _lines("train.jsonl", 40)
    eval_ = _lines("eval.jsonl", 6)
    if scramble_eval:  # every eval label replaced by another one: a choice that read eval would move
        rng = random.Random(7)
        eval_ = [{**r, "output": rng.choice([lab for lab in LABELS if lab != r["output"]])} for r in eval_]
    for split, rows in (("train", train), ("eval", eval_)):
        (folder / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "task.yaml").write_text(TASK.format(dev=dev, options=options))
    return folder / "task.yaml"


def _run(task_file: Path, workdir: Path, backend, levers: list[str]):
    runner = Runner(load_task(task_file), workdir, latency_probe=0)
    runner._backend = backend  # the session's model: loaded once for all tests
    try:
        result = runner.run(levers)
    finally:
        runner.store.close()
    return result, {lv.name: lv for lv in result.levers}


# -- no model ----------------------------------------------------------------------------------


def test_dev_split_is_seeded_nested_disjoint_and_leaves_a_pool(tmp_path):
    task = load_task(_make_task(tmp_path))
    train = load_dataset(task).train
    dev, pool = dev_split(task, train)
    assert len(dev) == 12 and len(pool) == len(train) - 12
    assert {e.id for e in dev}.isdisjoint(e.id for e in pool)
    assert {e.id for e in dev} | {e.id for e in pool} == {e.id for e in train}
    assert [e.id for e in dev_split(task, train)[0]] == [e.id for e in dev]  # seeded: the same every time
    assert [e.id for e in dev_split(task, train, 5)[0]] == [e.id for e in dev[:5]]  # nested
    other = task.model_copy(update={"seed": 1})
    assert [e.id for e in dev_split(other, train)[0]] != [e.id for e in dev]
    assert len(dev_split(task, train, 10_000)[0]) == len(train) // 2  # half of train stays a pool


def test_variants_render_and_a_variant_named_default_is_refused(tmp_path):
    task = load_task(_make_task(tmp_path))
    named = with_variant(task, "named")
    assert named.prompt.system.startswith("You sort questions") and named.prompt.template == task.prompt.template
    assert with_variant(task, "default") is task
    text = (tmp_path / "task.yaml").read_text().replace("    named:", "    default:")
    (tmp_path / "task.yaml").write_text(text)
    with pytest.raises(InputError) as err:
        load_task(tmp_path / "task.yaml")
    assert err.value.field == "prompt.variants" and err.value.line is not None and "'default'" in err.value.message


def test_search_space_is_seeded_distinct_and_tries_every_instruction_zero_shot_first(tmp_path):
    train = load_dataset(load_task(_make_task(tmp_path))).train
    a = draw_candidates(["default", "named"], train, 6, 3, seed=0)
    assert [c.name for c in a] == [c.name for c in draw_candidates(["default", "named"], train, 6, 3, seed=0)]
    assert [c.name for c in a] != [c.name for c in draw_candidates(["default", "named"], train, 6, 3, seed=1)]
    assert [(c.instruction, len(c.shots)) for c in a[:2]] == [("default", 0), ("named", 0)]
    assert len({c.name for c in a}) == 6 and all(1 <= len(c.shots) <= 3 for c in a[2:])


def test_validate_names_a_broken_variant_template(tmp_path):
    from click.testing import CliRunner

    from advisor.cli import main

    task_file = _make_task(tmp_path)
    text = task_file.read_text().replace("  dev_size:", "    broken: {template: 'Q: {{ question }}'}\n  dev_size:")
    task_file.write_text(text)
    r = CliRunner().invoke(main, ["validate", str(task_file)])
    assert r.exit_code == 2 and "prompt.variants.broken.template" in r.output and "Traceback" not in r.output


# -- the real model ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_better_wording_is_chosen_on_dev_and_scrambled_eval_labels_change_nothing(tmp_path, hf_backend):
    result, levers = _run(_make_task(tmp_path / "a"), tmp_path / "run-a", hf_backend, ["prompt"])
    lv = levers["prompt"]
    rows = {r["name"]: r for r in lv.scores.details["prompt_variants"]}
    assert rows["named"]["dev_score"] > rows["default"]["dev_score"]
    choice = lv.scores.details["prompt_choice"]
    # The task's own wording is kept unless the other wins beyond noise on the same dev items: exact
    # McNemar on the items where the two disagree (one other candidate: no adjustment).
    test = choice["test"]
    only_named, only_default = test["wins"]["named"]
    assert test["p_values"]["named"] == pytest.approx(
        sps.binomtest(only_named, only_named + only_default, 0.5).pvalue)
    won = test["p_values"]["named"] < 0.05 and only_named > only_default
    assert choice["chosen"] == ("named" if won else "default") == lv.artifact.info["variant"]
    assert rows["named"]["chosen"] == won and rows["default"]["chosen"] != won
    assert choice["dev_items"] == 12 and choice["eval_score"] == lv.metrics["accuracy"].value
    assert choice["dev_eval_gap"] == pytest.approx(choice["dev_score"] - choice["eval_score"])
    assert lv.cost.setup_seconds == choice["setup_seconds"] > 0  # choosing is setup, priced as such
    assert lv.cost.setup_usd > 0
    assert result.to_json()["levers"][0]["details"]["prompt_variants"] == lv.scores.details["prompt_variants"]

    # The same task with every eval label wrong: the choice and every dev score are identical.
    _, scrambled = _run(_make_task(tmp_path / "b", scramble_eval=True), tmp_path / "run-b", hf_backend, ["prompt"])
    s = scrambled["prompt"]
    assert s.scores.details["prompt_variants"] == lv.scores.details["prompt_variants"]
    assert s.metrics["accuracy"].value != lv.metrics["accuracy"].value  # eval itself did change

    # A rerun in the same folder recomputes nothing, dev answers included.
    _, again = _run(_make_task(tmp_path / "a"), tmp_path / "run-a", hf_backend, ["prompt"])
    assert again["prompt"].computed == 0
    assert again["prompt"].scores.details["prompt_choice"]["computed_dev_predictions"] == 0
    assert again["prompt"].scores.details["prompt_variants"] == lv.scores.details["prompt_variants"]
    assert again["prompt"].cost.setup_seconds == lv.cost.setup_seconds  # the cost does not vanish on a rerun


SEARCH = "lever_options:\n  prompt-search: {{candidates: {n}, dev_items: 8, max_shots: 2, seed: 3}}"


@pytest.mark.slow
def test_prompt_search_chooses_on_dev_resumes_and_never_reads_eval(tmp_path, hf_backend):
    task_file = _make_task(tmp_path / "a", options=SEARCH.format(n=4))
    # A search cut short (2 of its 4 candidates scored) then run in full: only the rest is computed.
    short = _make_task(tmp_path / "short", options=SEARCH.format(n=2))
    _, first = _run(short, tmp_path / "run", hf_backend, ["prompt-search"])
    assert first["prompt-search"].scores.details["search"]["computed_dev_predictions"] == 2 * 8
    result, levers = _run(task_file, tmp_path / "run", hf_backend, ["prompt-search"])
    lv = levers["prompt-search"]
    search = lv.scores.details["search"]
    assert search["computed_dev_predictions"] == 2 * 8  # the two new candidates only
    assert search["candidates"] == len(search["trials"]) == 4 and search["dev_items"] == 8
    assert [t["instruction"] for t in search["trials"][:2]] == ["default", "named"]
    best = max(t["dev_score"] for t in search["trials"])
    assert search["dev_score"] == best and sum(t["chosen"] for t in search["trials"]) == 1
    assert search["eval_score"] == lv.metrics["accuracy"].value
    assert search["dev_eval_gap"] == pytest.approx(search["dev_score"] - search["eval_score"])
    assert lv.cost.setup_seconds == search["setup_seconds"] > 0
    # Demonstrations never come from dev (or eval): every shot of every trial is in the pool.
    task = load_task(task_file)
    dev, pool = dev_split(task, load_dataset(task).train, 8)
    pool_ids = {e.id for e in pool}
    assert all(set(t["shot_ids"]) <= pool_ids for t in search["trials"])
    assert lv.predictions[0].context["shots"] == search["chosen"]["shot_ids"]
    # The scorecard shows every candidate's dev score, the chosen one, its eval score and the gap.
    console = Console(record=True, width=160)
    for part in prompt_choice_tables(result.to_json()):
        console.print(part)
    text = " ".join(console.export_text().split())  # rich wraps a title to its table's width
    assert "prompt-search: accuracy on 8 dev items" in text and f"gap {search['dev_eval_gap']:+.3f}" in text

    # Scrambled eval labels: the same choice from the same dev scores.
    scrambled = _make_task(tmp_path / "b", options=SEARCH.format(n=4), scramble_eval=True)
    _, other = _run(scrambled, tmp_path / "run-b", hf_backend, ["prompt-search"])
    o = other["prompt-search"].scores.details["search"]
    assert o["trials"] == search["trials"] and o["chosen"] == search["chosen"]

    # A rerun recomputes nothing.
    _, again = _run(task_file, tmp_path / "run", hf_backend, ["prompt-search"])
    assert again["prompt-search"].computed == 0
    assert again["prompt-search"].scores.details["search"]["computed_dev_predictions"] == 0
    assert again["prompt-search"].scores.details["search"]["trials"] == search["trials"]


@pytest.mark.slow
def test_a_proposer_model_adds_instructions_once(tmp_path, hf_backend):
    options = ("lever_options:\n  prompt-search: {candidates: 3, dev_items: 4, max_shots: 0, "
               "proposer: {model: 'hf:smollm2-135m-instruct', proposals: 1, examples: 3, max_new_tokens: 40}}")
    task_file = _make_task(tmp_path / "a", options=options)
    _, levers = _run(task_file, tmp_path / "run", hf_backend, ["prompt-search"])
    search = levers["prompt-search"].scores.details["search"]
    assert len(search["proposed_instructions"]) == 1 and search["proposed_instructions"][0].strip()
    assert [t["instruction"] for t in search["trials"]] == ["default", "named", "proposed-1"]
    # The proposal is cached like any answer: a rerun asks the proposer nothing and proposes the same.
    runner = Runner(load_task(task_file), tmp_path / "run", latency_probe=0)
    runner._backend = hf_backend
    try:
        before = runner.store.count_predictions("prompt-search-proposer")
        again = runner.run(["prompt-search"]).levers[0].scores.details["search"]
        assert runner.store.count_predictions("prompt-search-proposer") == before == 1
    finally:
        runner.store.close()
    assert again["proposed_instructions"] == search["proposed_instructions"]
    assert again["computed_dev_predictions"] == 0


@pytest.mark.slow
def test_few_shot_scores_the_variants_with_demonstrations_from_outside_dev(tmp_path, hf_backend):
    options = "lever_options:\n  prompt-few-shot: {k: 2, selection: random, seed: 0}"
    task_file = _make_task(tmp_path / "a", dev=8, options=options)
    task_file.write_text(task_file.read_text().replace("levers: [prompt, prompt-search]",
                                                       "levers: [prompt, prompt-few-shot]"))
    _, levers = _run(task_file, tmp_path / "run", hf_backend, ["prompt-few-shot"])
    lv = levers["prompt-few-shot"]
    rows = lv.scores.details["prompt_variants"]
    assert [r["name"] for r in rows] == ["default", "named"] and sum(r["chosen"] for r in rows) == 1
    assert lv.artifact.info["variant"] == lv.scores.details["prompt_choice"]["chosen"]
    task = load_task(task_file)
    dev, pool = dev_split(task, load_dataset(task).train)
    shots = lv.artifact.info["shot_ids"]
    assert len(shots) == 2 and set(shots) <= {e.id for e in pool} and not set(shots) & {e.id for e in dev}
    assert lv.cost.setup_seconds > 0
