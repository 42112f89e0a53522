"""The lora levers end to end on the real model: train once, reuse, score through the shared paths."""

from __future__ import annotations

import json

import pytest
import torch

from advisor.data import remove_leakage
from advisor.types import Example, GenerationParams
from baselines import adapters
from baselines.lora import LoraLever, LoraOptions, LoraRagLever, LoraRagOptions
from tests.lora.conftest import LABELS
from tests.naive_ranking import first_token_pick, token_logps

TINY = {"max_len": 64, "batch_size": 4, "max_steps": 4, "eval_every": 2, "val_fraction": 0.25,
        "learning_rate": 1e-3, "warmup_steps": 1}  # fmt: skip


def _example(i: int, text: str) -> Example:
    return Example(id=f"x{i}", input=text, output="LOC", fields={"input": text}, source=f"t:{i}", hash=str(i))


def _ranks_by_its_own_weights(backend, requests):
    """The adapter's backend ranks labels from the merged model's own logits: under first_token, each
    option's score is its first token's log-probability and the pick is that formula's, both computed
    here by hand (one forward pass of the merged model per label)."""
    got = backend.score_options(requests, GenerationParams(option_ranking="first_token"))
    for g, r in zip(got, requests):
        pick, first_logps = first_token_pick(token_logps(backend, r), r.options)
        assert g.option_scores == pytest.approx(first_logps, abs=2e-3)
        assert g.text == pick


def test_leakage_guard_drops_train_inputs_that_are_in_eval():
    eval_ = [_example(0, "Where is Kyoto ?")]
    train = [_example(1, "  where IS   kyoto ? "), _example(2, "Where is Osaka ?")]
    kept, removed = remove_leakage(train, eval_)
    assert [e.id for e in kept] == ["x2"] and removed == ["x1"]


def test_options_name_a_typo_and_the_version_follows_every_input():
    with pytest.raises(ValueError, match="rank"):
        LoraOptions.model_validate({"rank": 4})
    with pytest.raises(ValueError, match="k"):
        LoraRagOptions.model_validate({"rag": {"k": 0}})
    v = adapters.adapter_version("base@1", "data1", LoraOptions().model_dump(mode="json"))
    assert v == adapters.adapter_version("base@1", "data1", LoraOptions().model_dump(mode="json"))
    assert v != adapters.adapter_version("base@2", "data1", LoraOptions().model_dump(mode="json"))
    assert v != adapters.adapter_version("base@1", "data2", LoraOptions().model_dump(mode="json"))
    assert v != adapters.adapter_version("base@1", "data1", LoraOptions(r=4).model_dump(mode="json"))


@pytest.mark.slow
def test_lever_trains_once_then_reuses_the_versioned_adapter(make_task, make_context, tmp_path, monkeypatch):
    task = make_task(tmp_path / "task", leaked=2, lever_options={"lora": TINY})
    bars: list[tuple[str, int, int, str | None]] = []

    def progress(description, total):
        return lambda done, total, description=None: bars.append((description, done, total, description))

    ctx = make_context(task, tmp_path, progress)
    lever = LoraLever()
    options = lever.options_model.model_validate(task.lever_options["lora"])
    first = lever.prepare(ctx, options)

    info = first.info
    assert not info["reused"] and info["steps_run"] == 4 and info["steps"] == 4
    assert info["leakage_removed"] == 2 and info["n_train"] + info["n_val"] == 16
    assert info["best_val_loss"] < info["initial_val_loss"]
    assert len(bars) == 4 and "loss" in bars[-1][3] and "steps/s" in bars[-1][3]
    train_usd = info["train_seconds"] / 3600 * 0.36
    assert first.setup_usd == pytest.approx(train_usd + 100 * 0.5)
    assert first.upkeep_usd_per_month == pytest.approx(2 * train_usd)
    assert first.backend.identity.endswith("+" + first.identity)

    path = adapters.adapter_path(ctx.cache_dir, first.identity)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["base_model"] == ctx.base_backend().identity and meta["config"]["r"] == 8
    assert (path / "adapter_config.json").is_file() and not (path / "checkpoints").exists()

    # Classification goes through score_options, as for the prompt levers.
    requests = lever.requests(first, ctx.data.eval)
    assert requests[0].options == task.labels
    tuned = first.backend.score_options(requests, GenerationParams())
    base = ctx.base_backend().score_options(requests, GenerationParams())
    assert [g.option_scores for g in tuned] != [g.option_scores for g in base]
    _ranks_by_its_own_weights(first.backend, requests)

    adapters.record_metrics(ctx.cache_dir, first.identity, {"accuracy": 0.5}, task=task.name)
    [row] = adapters.list_adapters(ctx.cache_dir)
    assert row["version"] == first.identity and row["status"] == "ready" and row["size_bytes"] > 100_000
    assert row["data_hash"] == info["data_hash"] and row["metrics"] == {"accuracy": 0.5} and row["created"]

    # An unchanged rerun reuses the adapter: no training step runs.
    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr("baselines.lora.train_lora", no_training)
    bars.clear()
    second = lever.prepare(ctx, options)
    assert second.info["reused"] and second.info["steps_run"] == 0 and not bars
    assert second.identity == first.identity and second.setup_usd == pytest.approx(first.setup_usd)
    again = second.backend.score_options(requests, GenerationParams())
    assert [g.option_scores for g in again] == [g.option_scores for g in tuned]


@pytest.mark.slow
def test_lora_rag_trains_with_retrieved_examples_but_never_an_example_itself(
    make_task, make_context, tmp_path
):
    from advisor.leverkit.retrieval import RagOptions, prepare_retriever
    from advisor.prompting import render_user

    task = make_task(tmp_path / "task", levers=("lora-rag",),
                     lever_options={"lora-rag": {**TINY, "max_steps": 2, "rag": {"source": "examples", "k": 2}}})  # fmt: skip
    ctx = make_context(task, tmp_path)
    lever = LoraRagLever()
    retriever = prepare_retriever(ctx, RagOptions(source="examples", k=2), lever.name)
    train = ctx.data.train[:4]
    for ex, messages in zip(train, lever.training_messages(ctx, retriever, train)):
        user = messages[-1]["content"]
        assert "Solved examples" in user and user.count("\nAnswer:") == 2
        assert f"{render_user(task, ex)}\nAnswer:" not in user  # its own answer would teach copying

    options = lever.options_model.model_validate(task.lever_options["lora-rag"])
    artifact = lever.prepare(ctx, options)
    assert artifact.info["steps"] == 2 and artifact.info["source"] == "examples"
    assert artifact.identity != artifact.info["adapter"]  # the index is part of the identity
    requests = lever.requests(artifact, ctx.data.eval)
    assert "Solved examples" in requests[0].messages[-1]["content"] and requests[0].context["sources"]
    _ranks_by_its_own_weights(artifact.backend, requests[:1])  # the request carries what it retrieved


KNOWLEDGE = [
    {"id": "loc", "text": "LOC questions ask where something is: a place, a city, a country."},
    {"id": "hum", "text": "HUM questions ask who: a person or a group of people."},
    {"id": "num", "text": "NUM questions ask how many, how far, when: a number or a date."},
    {"id": "abbr", "text": "ABBR questions ask what an abbreviation stands for."},
]


@pytest.mark.slow
def test_lora_rag_keeps_its_adapter_when_the_knowledge_changes(make_task, make_context, tmp_path, monkeypatch):
    """Editing a document re-indexes and changes what requests carry, but never retrains the adapter."""
    opts = {"lora-rag": {**TINY, "max_len": 96, "max_steps": 2, "rag": {"source": "knowledge", "k": 1}}}
    task = make_task(tmp_path / "task", levers=("lora-rag",), lever_options=opts, knowledge=KNOWLEDGE)
    lever = LoraRagLever()
    options = lever.options_model.model_validate(task.lever_options["lora-rag"])
    first = lever.prepare(make_context(task, tmp_path), options)
    assert first.info["steps_run"] == 2 and first.info["source"] == "knowledge"
    before = lever.requests(first, make_context(task, tmp_path).data.eval)

    changed = [dict(d, text=d["text"] + " Ports and capitals count.") if d["id"] == "loc" else d for d in KNOWLEDGE]
    task = make_task(tmp_path / "task", levers=("lora-rag",), lever_options=opts, knowledge=changed)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr("baselines.lora.train_lora", no_training)
    ctx = make_context(task, tmp_path)
    second = lever.prepare(ctx, options)
    assert second.info["reused"] and second.info["adapter"] == first.info["adapter"]
    assert second.info["index"]["embedded_now"] == 1 and second.info["index"]["removed_now"] == 1
    assert second.info["data_hash"] == first.info["data_hash"]  # what the adapter was trained on, as recorded
    after = lever.requests(second, ctx.data.eval)
    where = [i for i, r in enumerate(after) if r.context["sources"] == ["loc"]]
    assert where, "the LOC question should retrieve the LOC document"
    for i in where:
        assert "Ports and capitals" in after[i].messages[-1]["content"]
        assert "Ports and capitals" not in before[i].messages[-1]["content"]


def test_an_adapter_trained_on_bf16_weights_is_another_version_and_scores_in_the_bases_precision(
        make_task, make_context, loaded, tmp_path):
    from advisor.backends.hf import HFBackend
    from advisor.compute import Precision

    fp32_task = make_task(tmp_path / "task", lever_options={"lora": TINY})
    ctx = make_context(fp32_task, tmp_path)
    lever = LoraLever()
    options = lever.options_model.model_validate(fp32_task.lever_options["lora"])
    fp32 = lever.prepare(ctx, options)
    assert fp32.info["training_precision"] == "fp32" and fp32.info["training_precision_choice"]["why"] == "forced"

    bf16_task = fp32_task.model_copy(update={"compute": fp32_task.compute.model_copy(update={"precision": "bf16"})})
    scoring = Precision(use="scoring", precision="bf16", why="forced", reason="test", device="cpu")
    base = HFBackend(loaded, identity=f"{loaded.identity}/bf16", model=loaded.in_precision("bf16"),
                     usd_per_hour=0.36, precision=scoring)
    ctx16 = ctx.__class__(**{**ctx.__dict__, "task": bf16_task, "base_backend": lambda: base})
    bf16 = lever.prepare(ctx16, options)
    meta = json.loads((adapters.adapter_path(ctx.cache_dir, bf16.identity) / "meta.json").read_text())
    assert bf16.identity != fp32.identity and meta["precision"] == "bf16" and meta["config"]["precision"] == "bf16"
    assert bf16.info["training_precision"] == "bf16"
    assert bf16.backend.identity == f"{loaded.identity}/bf16+{bf16.identity}"
    assert next(bf16.backend.model.parameters()).dtype == torch.bfloat16
    assert next(loaded.model.parameters()).dtype == torch.float32  # the shared base is untouched
    requests = lever.requests(bf16, ctx.data.eval)
    scored = bf16.backend.score_options(requests, GenerationParams())
    assert all(g.text in LABELS for g in scored)
