"""`lora-curated` (baselines/lora_curated.py): lora on train minus the suspected label errors.

The lever tests run the real label-error check (the embedded all-MiniLM-L6-v2) and train the real SmolLM2
for a couple of steps on a 124-item train set with 4 planted wrong labels; the verdict tests use constructed
evidence and load no model.
"""

from __future__ import annotations

import json
import random
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import tomllib

from advisor.data import load_dataset
from advisor.errors import InputError
from advisor.record import CostRecord, MetricRecord, TargetRecord
from advisor.spec import Task
from advisor.stats import metric_interval, paired_difference
from advisor.types import Artifact, LeverContext
from advisor.verdict import Curation, LeverEvidence, decide
from baselines import adapters
from baselines import lora as lora_module
from baselines.lora import LoraLever
from baselines.lora_curated import LoraCuratedLever, LoraCuratedOptions
from tests.lora.conftest import _make_context, _write_task

ROOT = Path(__file__).resolve().parent.parent
TINY = {"max_len": 48, "batch_size": 4, "max_steps": 1, "eval_every": 1, "val_fraction": 0.1, "max_val": 4,
        "learning_rate": 1e-3, "warmup_steps": 0}  # fmt: skip
LABELS = ["LOC", "NUM", "HUM"]
_CUES = {
    "LOC": ["river", "city", "mountain", "country", "capital", "island", "lake", "where", "border", "coast"],
    "NUM": ["many", "much", "year", "long", "far", "number", "percent", "count", "distance", "age"],
    "HUM": ["who", "person", "president", "author", "singer", "team", "inventor", "wrote", "founder", "actor"],
}
COSTS = {"cpu_hour_usd": 0.36, "engineer_hour_usd": 100, "curation_hours": 0.5, "retrain_per_month": 2}


def _text(label: str, rng: random.Random) -> str:
    return " ".join(rng.sample(_CUES[label], 4)) + f" item {rng.randrange(10_000)} ?"


def _noisy_task(folder: Path, *, kind: str = "classification", lever_options: dict | None = None,
                per_label: int = 40) -> tuple[Task, set[str]]:
    """`per_label` (40) train items per label told apart by cue words, plus 4 (ids flip-N) whose label is wrong; 9 eval
    items. Returns the task and the planted ids."""
    rng = random.Random(3)
    train = [{"id": f"{lb.lower()}-{i}", "input": _text(lb, rng), "output": lb} for lb in LABELS for i in range(per_label)]
    planted = set()
    for k in range(4):
        true, wrong = LABELS[k % 3], LABELS[(k + 1) % 3]
        train.append({"id": f"flip-{k}", "input": _text(true, rng), "output": wrong})
        planted.add(f"flip-{k}")
    rng.shuffle(train)
    evals = [{"id": f"e-{lb}-{i}", "input": _text(lb, rng), "output": lb} for lb in LABELS for i in range(3)]
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("eval.jsonl", evals)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "noisy", "kind": kind, "data": {"train": "train.jsonl", "eval": "eval.jsonl"},
            "prompt": {"system": "Classify the question.", "template": "Question: {{ input }}\nType:"},
            "target": {"metric": "accuracy" if kind == "classification" else "exact_match", "threshold": 0.8},
            "levers": ["lora", "lora-curated"], "lever_options": lever_options or {}, "costs": COSTS,
            "base_dir": folder}
    if kind == "classification":
        spec["labels"] = LABELS
    return Task.model_validate(spec), planted


def _modelless_context(task: Task, tmp: Path) -> LeverContext:
    """A lever context whose model must never be asked for."""
    def no_model():
        raise AssertionError("the model was asked for")

    return LeverContext(task=task, data=load_dataset(task), workdir=tmp / "work", cache_dir=tmp / "cache",
                        base_backend=no_model)


@pytest.fixture
def captured_pairs(monkeypatch):
    """Every (messages, answer) list `build_adapter` is asked to train on, by lever."""
    seen: dict[str, list] = {}
    real = lora_module.build_adapter

    def spy(ctx, cfg, pairs, *, lever, **kw):
        seen[lever] = list(pairs)
        return real(ctx, cfg, pairs, lever=lever, **kw)

    monkeypatch.setattr(lora_module, "build_adapter", spy)
    return seen


def test_without_review_the_record_says_none_is_assumed_and_charges_none(tmp_path):
    task, _ = _noisy_task(tmp_path / "task")
    found = {"method": "m", "checker": "c", "checked": 124, "eval_used": False, "left_out_labels": {},
             "oof_accuracy": 0.9, "audit_seconds": {"embed": 2.0, "fit": 1.6}, "dropped_ids": ["a", "b"],
             "suspects": [{"id": "a"}, {"id": "b"}]}
    info = {"device": "cpu", "n_train": 110, "n_val": 12}

    def priced(review_seconds):
        art = Artifact("lora-curated", "v", backend=None, setup_seconds=10.0, setup_usd=1.0,  # type: ignore[arg-type]
                       upkeep_usd_per_month=0.5, info=dict(info))
        options = LoraCuratedOptions(review_seconds_per_item=review_seconds)
        return LoraCuratedLever()._priced(_modelless_context(task, tmp_path), options, art, found, ["a", "b"])

    audit_usd = 3.6 / 3600 * 0.36
    art = priced(0)
    review = art.info["curation"]["review"]
    assert not review["assumed"] and review["usd"] == 0 and "no human review assumed" in review["basis"]
    assert art.setup_usd == pytest.approx(1.0 + audit_usd) and art.setup_seconds == pytest.approx(13.6)
    assert art.upkeep_usd_per_month == pytest.approx(0.5 + 2 * audit_usd)
    assert "2 of 124 train items dropped" in art.info["curation"]["summary"]
    assert "no human review assumed" in art.info["curation"]["summary"]
    art = priced(45)  # a person confirming each of the 2 suspects: 90 s at $100/hour
    assert art.info["curation"]["review"]["assumed"] and art.setup_usd == pytest.approx(1.0 + audit_usd + 2.5)
    assert "45 s per suspect" in art.info["curation"]["summary"]
    assert "not checked" not in art.info["curation"]["summary"]
    found["left_out_labels"] = {"ABBR": 3}  # a label too small to check: its items are kept, and it says so
    assert art.info["curation"]["summary"] != priced(45).info["curation"]["summary"]
    assert priced(45).info["curation"]["summary"].endswith("not checked, too few train examples: ABBR (3)")


def test_a_task_that_is_not_classification_is_refused_with_the_reason(tmp_path):
    from advisor.plan import plan_rows

    task, _ = _noisy_task(tmp_path / "task", kind="generation")
    lever = LoraCuratedLever()
    with pytest.raises(InputError, match="classification tasks only; this task is generation"):
        plan_rows(task, ["lora-curated"], {"lora-curated": lever})
    assert plan_rows(task, ["lora"], {"lora": LoraLever()})  # lora itself runs there
    ctx = _modelless_context(task, tmp_path)  # refused before any model is asked for
    with pytest.raises(InputError, match="Use lora, or drop lora-curated"):
        lever.prepare(ctx, LoraCuratedOptions())


def test_train_too_small_for_the_check_is_refused_not_trained_on_everything(tmp_path):
    task = _write_task(tmp_path / "few", levers=("lora-curated",))  # 16 questions over 6 labels
    with pytest.raises(InputError) as e:
        LoraCuratedLever().prepare(_modelless_context(task, tmp_path), LoraCuratedOptions())
    assert "the label-error check did not run: fewer than 2 labels have 10 or more train examples" in str(e.value)
    assert "would be lora under another name" in str(e.value) and str(e.value).startswith(str(task.path(task.data.train)))
    task, _ = _noisy_task(tmp_path / "small", per_label=20)  # 64 items: labels large enough, the split is not
    with pytest.raises(InputError, match=r"did not run: only 64 train example\(s\) .* the check needs 100"):
        LoraCuratedLever().prepare(_modelless_context(task, tmp_path), LoraCuratedOptions())
    assert not (tmp_path / "cache" / "adapters").exists() and not (tmp_path / "cache" / "curation").exists()


def test_the_lever_is_registered_beside_lora_in_its_cost_class():
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["advisor.levers"]
    lever = EntryPoint("lora-curated", eps["lora-curated"], "advisor.levers").load()()
    assert isinstance(lever, LoraCuratedLever) and lever.rung == LoraLever.rung
    assert lever.family == "fine-tuning" and lever.option_ranking == "sum"
    assert set(LoraLever.options_model.model_fields) < set(lever.options_model.model_fields)
    with pytest.raises(ValueError, match="review_seconds_per_item"):
        LoraCuratedOptions.model_validate({"review_seconds_per_item": -1})


def test_a_row_trained_on_cleaned_data_is_paired_with_its_plain_row_on_the_same_model():
    from advisor.measure import LeverResult

    art = Artifact("lora-curated", "v", backend=None, info={"curation": {  # type: ignore[arg-type]
        "plain_lever": "lora", "dropped": 7, "review": {"assumed": False}}})
    row = LeverResult("lora-curated@local", 3, "fine-tuning", {}, art, [], None, {}, None, 0)  # type: ignore[arg-type]
    assert row.curation() == Curation(plain_row="lora@local", dropped=7, reviewed=False)
    plain = LeverResult("lora", 3, "fine-tuning", {}, Artifact("lora", "w", backend=None), [], None, {}, None, 0)  # type: ignore[arg-type]
    assert plain.curation() is None


# -- the verdict's sentence ------------------------------------------------------------------------------


def _cost(first_year):
    return CostRecord(setup_usd=first_year, per_1k_queries_usd=0.01, latency_ms_p50=400, latency_ms_p95=450,
                      upkeep_usd_per_month=0, monthly_usd=0, first_year_usd=first_year, tokens_in_mean=10,
                      tokens_out_mean=1, compute_s_per_query=0.1, setup_seconds=0)


def _ev(name, rung, values, first_year, curation=None):
    iv = metric_interval(values, 0.95)
    return LeverEvidence(name, rung, "fine-tuning", len(values), {"accuracy": MetricRecord(**iv.as_dict())},
                         _cost(first_year), {"accuracy": list(values)}, [None] * len(values), curation=curation)


def _flip(values, k, to):
    out, done = list(values), 0
    for i, v in enumerate(out):
        if v != to and done < k:
            out[i], done = to, done + 1
    return out


TARGET = TargetRecord(metric="accuracy", threshold=0.99, confidence=0.95, rule="lower_bound", margin=0.0)
PLAIN = [1.0] * 300 + [0.0] * 100  # 0.75 on 400 items


def test_the_verdict_says_when_cleaning_beats_the_next_lever_up_from_the_paired_differences():
    curated = _flip(PLAIN, 40, 1.0)  # 0.85: 40 items fixed, none lost
    above = _flip(PLAIN, 5, 1.0)  # lora-rag 0.7625
    rows = [_ev("lora", 3, PLAIN, 100.0), _ev("lora-curated", 3, curated, 101.0, Curation("lora", 12)),
            _ev("lora-rag", 4, above, 150.0)]
    v = decide(TARGET, rows, None, golds=[None] * 400)
    [said] = [r for r in v.record.reasons if r.startswith("Cleaning the data")]
    assert "lora-curated: lora's training without 12 suspected label error(s), dropped automatically" in said
    assert "worth more than the next lever up, lora-rag" in said and "$49.00 less in the first year" in said
    d = paired_difference(curated, PLAIN, 0.95, seed=0)
    assert f"significantly better than lora ({d.value:+.3f}, interval {d.low:+.3f} to {d.high:+.3f})" in said
    pairs = {(c.lever, c.against): c for c in v.record.comparisons}
    assert pairs[("lora-curated", "lora")].difference.value == pytest.approx(0.10)
    assert pairs[("lora-curated", "lora-rag")].significantly_better


def test_the_verdict_says_when_the_next_lever_up_is_worth_more_or_nothing_above_was_run():
    curated = _flip(PLAIN, 2, 1.0)  # 0.755: cleaning fixed 2 items
    above = _flip(PLAIN, 60, 1.0)  # lora-rag 0.90
    rows = [_ev("lora", 3, PLAIN, 100.0), _ev("lora-curated", 3, curated, 101.0, Curation("lora", 3)),
            _ev("lora-rag", 4, above, 150.0)]
    [said] = [r for r in decide(TARGET, rows, None, golds=[None] * 400).record.reasons if r.startswith("Cleaning")]
    assert "the next lever up, lora-rag, is worth more than cleaning the data" in said
    assert "cleaning alone is not shown different from lora" in said
    [said] = [r for r in decide(TARGET, rows[:2], None, golds=[None] * 400).record.reasons if r.startswith("Cleaning")]
    assert "no lever above lora was run, so it is weighed against lora only" in said
    alone = decide(TARGET, [rows[1], rows[2]], None, golds=[None] * 400)  # no plain lora row: nothing to weigh
    assert not [r for r in alone.record.reasons if r.startswith("Cleaning")]


@pytest.mark.slow
def test_a_run_drops_the_planted_errors_records_them_keeps_apart_from_lora_prices_and_weighs_cleaning(
        tmp_path, loaded_model, monkeypatch, captured_pairs):
    from advisor import registry
    from advisor.backends.hf import HFBackend
    from advisor.report.levers import _lever_blocks
    from advisor.runner import Runner

    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["advisor.levers"]
    mine = [EntryPoint(name, value, registry.GROUP) for name, value in eps.items()]  # the venv may predate lora-curated
    monkeypatch.setattr(registry, "entry_points", lambda group: mine)
    task, planted = _noisy_task(tmp_path / "task", lever_options={"lora": TINY,
                                                                 "lora-curated": {**TINY, "review_seconds_per_item": 30}})
    runner = Runner(task, tmp_path / "run", cache_dir=tmp_path / "cache", latency_probe=1)
    runner._backend = HFBackend(loaded_model, usd_per_hour=0.36)
    try:
        result = runner.run()
    finally:
        runner.close()
    data = result.to_json()
    rows = {lv["name"]: lv for lv in data["levers"]}
    assert list(rows) == ["lora", "lora-curated"] and rows["lora-curated"]["rung"] == rows["lora"]["rung"]
    curation = rows["lora-curated"]["artifact"]["info"]["curation"]
    assert planted <= set(curation["dropped_ids"]) and curation["dropped"] == len(curation["dropped_ids"])
    assert "curation" not in rows["lora"]["artifact"]["info"]
    assert rows["lora-curated"]["artifact"]["identity"] != rows["lora"]["artifact"]["identity"]
    [said] = [r for r in data["verdict"]["reasons"] if r.startswith("Cleaning the data (lora-curated")]
    assert f"without {curation['dropped']} suspected label error(s)" in said and "weighed against lora only" in said
    assert any(c["lever"] == "lora-curated" and c["against"] == "lora" for c in data["verdict"]["comparisons"])
    shown = [b.text for b in _lever_blocks(data, rows["lora-curated"]) if hasattr(b, "text")]
    assert any(t.startswith(f"Cleaned data: {curation['dropped']} of 124 train items dropped") for t in shown)

    # The record names each dropped item with what the data suggests; the method and its scope.
    dropped = set(curation["dropped_ids"])
    assert curation["dropped"] < 20  # a few true items may be flagged, not a sixth of the data
    items = {d["id"]: d for d in curation["dropped_items"]}
    assert all(items[p]["suggested"] != items[p]["given"] for p in planted)
    assert curation["checked"] == 124 and curation["eval_used"] is False
    assert "confident learning" in curation["method"] and curation["checker"].endswith("check_labels")

    # lora-curated trained on train less exactly those items; lora on all of them.
    by_text = {ex.input: ex.id for ex in runner.data.train}
    trained = {by_text[m[-1]["content"].removeprefix("Question: ").removesuffix("\nType:")]
               for m, _ in captured_pairs["lora-curated"]}
    assert trained == set(by_text.values()) - dropped and len(captured_pairs["lora"]) == 124
    curated = next(r.artifact for r in result.levers if r.name == "lora-curated")
    assert curated.info["n_train"] + curated.info["n_val"] == 124 - len(dropped)
    meta = json.loads((adapters.adapter_path(tmp_path / "cache", curated.identity) / "meta.json").read_text())
    assert meta["lever"] == "lora-curated" and meta["n_train"] + meta["n_val"] == 124 - len(dropped)

    # A rerun reuses the recorded audit and the adapter: the same dropped ids, the same version, no training.
    # (Outside a runner nothing scores the validation split, so the rerun names the prompt form the run chose.)
    ctx = _make_context(task, tmp_path, loaded_model)
    form = curated.info["prompt_form"]["chosen"]
    again = LoraCuratedLever().prepare(ctx, LoraCuratedOptions.model_validate(
        {**task.lever_options["lora-curated"], "prompt_form": form}))
    assert again.info["prompt_form"]["setting"] == "forced" and again.info["prompt_form"]["chosen"] == form
    assert again.identity == curated.identity and again.info["reused"]
    assert again.info["curation"]["dropped_ids"] == curation["dropped_ids"]

    # The price (as prepared: the run then adds the answers its label-ranking choice asked on the validation
    # split): training and curation_hours as lora, plus the audit's measured compute and the stated review.
    seconds = sum(curation["audit_seconds"].values())
    assert seconds > 0 and curation["audit_usd"] == pytest.approx(seconds / 3600 * 0.36)
    review = curation["review"]
    assert review["assumed"] and review["items"] == len(dropped)
    assert review["usd"] == pytest.approx(len(dropped) * 30 / 3600 * 100)
    assert again.setup_usd == pytest.approx(again.info["train_usd"] + 100 * 0.5 + curation["audit_usd"] + review["usd"])
    assert again.setup_seconds == pytest.approx(again.info["train_seconds"] + seconds)
    assert again.upkeep_usd_per_month == pytest.approx(2 * (again.info["train_usd"] + curation["audit_usd"]))
    assert rows["lora-curated"]["cost"]["setup_usd"] >= again.setup_usd - 1e-9
    assert rows["lora"]["cost"]["setup_usd"] < rows["lora-curated"]["cost"]["setup_usd"]  # review: $1+ more here


def test_a_learning_curve_subset_is_cleaned_of_the_suspects_found_on_the_whole_split(tmp_path, monkeypatch):
    """`prepare_on` (what advisor.curves trains each point with) drops from a subset the suspects the check
    found on the whole train split. The real embedding model checks; training is stubbed out."""
    seen = []

    def no_training(ctx, cfg, pairs, *, lever, **kw):
        seen.append(list(pairs))
        return Artifact(lever, f"v{len(seen)}", backend=None, info={  # type: ignore[arg-type]
            "device": "cpu", "n_train": len(pairs), "n_val": 0, "train_usd": 0.0, "train_seconds": 0.0})

    monkeypatch.setattr(lora_module, "build_adapter", no_training)
    task, planted = _noisy_task(tmp_path / "task")
    ctx = _modelless_context(task, tmp_path)
    subset = [ex for ex in ctx.data.train if ex.id in {"flip-0", "flip-1"} or ex.id.endswith(("-1", "-2", "-3"))]
    lever = LoraCuratedLever()
    art = lever.prepare_on(ctx, LoraCuratedOptions(), subset)
    whole = set(json.loads(next((tmp_path / "cache" / "curation").glob("*.json")).read_text())["dropped_ids"])
    assert planted <= whole
    assert set(art.info["curation"]["dropped_ids"]) == whole & {ex.id for ex in subset} >= {"flip-0", "flip-1"}
    asked = {m[-1]["content"] for m, _ in seen[0]}
    assert asked == {f"Question: {ex.input}\nType:" for ex in subset if ex.id not in whole}


def test_the_prompt_form_enters_the_curated_adapters_version_and_as_written_keeps_the_old_one(tmp_path, monkeypatch):
    """lora-curated versions its adapter by its own data (not the pairs' hash): template_only must add the form,
    as_written keep the version it always had. The real embedding model checks; training is stubbed out."""
    seen = []

    def no_training(ctx, cfg, pairs, *, lever, version_data=None, **kw):
        seen.append((list(pairs), version_data))
        return Artifact(lever, f"v{len(seen)}", backend=None, info={  # type: ignore[arg-type]
            "device": "cpu", "n_train": len(pairs), "n_val": 0, "train_usd": 0.0, "train_seconds": 0.0})

    monkeypatch.setattr(lora_module, "build_adapter", no_training)
    task, _ = _noisy_task(tmp_path / "task")
    ctx = _modelless_context(task, tmp_path)
    lever = LoraCuratedLever()
    for form in ("as_written", "template_only"):
        art = lever.prepare(ctx, LoraCuratedOptions(prompt_form=form))
        assert art.info["prompt_form"]["chosen"] == form and art.info["prompt_form"]["trained"] == [form]
    (written, v_written), (short, v_short) = seen
    kept = [ex for ex in ctx.data.train if ex.id not in set(art.info["curation"]["dropped_ids"])]
    assert v_written == lever.version_data(ctx, LoraCuratedOptions(), None, kept)
    assert v_short == [v_written, {"prompt_form": "template_only"}]
    assert written[0][0][0]["role"] == "system" and [m["role"] for m in short[0][0]] == ["user"]
    # auto outside a runner (nothing scores the validation split): as written, and it says why.
    art = lever.prepare(ctx, LoraCuratedOptions())
    assert art.info["prompt_form"]["why"] == "no_predictor" and seen[-1][1] == v_written
