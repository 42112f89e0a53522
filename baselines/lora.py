"""The LoRA levers: fine-tune the base model on the train split, then score it like any lever.

`lora` trains on the task's prompt; `lora-rag` trains and answers with
retrieved knowledge in the prompt (the `rag` lever's request building).

The prompt form (`prompt_form`, issue 29): a fine-tuned model often no longer needs the task's
instructions, and a short prompt is cheaper to train and to serve. `template_only` trains and
answers with the lever's messages less the system message (the user turn as the template renders
it; lora-rag's retrieved context stays in it; SmolLM2's chat template then puts its own default
system line); `as_written` with the task's prompt as written. `auto` (the default) is a cost-ordered
rule that never looks at eval (`choose_form`):

1. train `template_only` first and score it on the adapter's validation split (train items the
   training held out) through the runner's cached path;
2. if its validation value of the target metric is at or above `target.threshold`, keep it and do
   not train `as_written`;
3. otherwise train `as_written` too and keep `template_only` unless `as_written` beats it on the
   same validation items beyond noise (advisor.choice.choose_paired: exact McNemar at
   1 - target.confidence; a paired bootstrap for macro-F1);
4. with no validation items (a tiny train split, `val_fraction: 0`), a prompt with no system
   message (both forms are then the same prompt), or outside a run (no prediction store to score
   validation items through), `as_written`, trained once.

The validation answers are scored under the row's natural label ranking (`sum`), before the
run's own ranking choice. A learning curve (`prepare_on` per subset) applies the rule at each size.

Every adapter trained for the choice is priced into setup, with the validation answers; only the
kept one's retraining is upkeep. `artifact.info["prompt_form"]` records the choice. The
adapter is a versioned artifact in the cache (see `baselines.adapters`): an
unchanged rerun reuses it, a killed run resumes it. The fine-tuned model is
the base with the adapter merged in, behind the same `HFBackend`, so
classification goes through the same `score_options` and the rest through the
same `generate` as the prompt levers; the shared scorer is untouched.

`prepare_on` trains on a given subset of the train split: `advisor.curves.measure_curve`
uses it to train at fractions of the split and say how many examples the target would
need, or that more data of this kind will not help.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from advisor.data import remove_leakage, stable_hash
from advisor.errors import InputError
from advisor.events import status
from advisor.leverkit.dev_choice import choose_on_dev
from advisor.leverkit.retrieval import RagOptions, prepare_retriever, rag_artifact, retrieval_requests
from advisor.prompting import answer_text, make_request, render_messages
from advisor.spec import Task
from advisor.types import Artifact, Example, HeldOut, Lever, LeverContext, Request
from baselines import adapters
from baselines.lora_train import StepInfo, TrainConfig, clear_checkpoints, split_validation, train_lora

Messages = list[dict[str, str]]


PromptForm = Literal["auto", "as_written", "template_only"]
FORMS = ("template_only", "as_written")  # cheapest first: the order `auto` tries them in
FORM_LABELS = {"template_only": "template only", "as_written": "as written"}


def _form_field() -> Any:
    return Field("auto", description="The prompt trained on and served: template_only (no system message), "
                 "as_written (the task's prompt), or auto: template_only, unless it misses the target on the "
                 "validation split and as_written beats it there beyond noise.")


class LoraOptions(TrainConfig):
    """`lever_options.lora`: the training settings (all optional; the defaults suit a CPU), and the prompt form."""

    prompt_form: PromptForm = _form_field()


def in_form(messages: Messages, form: str) -> Messages:
    """`messages` as `form` asks them: `template_only` drops every system message (the user and assistant
    turns are kept, retrieved context included); `as_written` returns them unchanged."""
    if form == "template_only":
        return [m for m in messages if m["role"] != "system"]
    return messages


def request_in_form(request: Request, form: str) -> Request:
    """`request` with its messages (and its content-free reference, if any) in `form`."""
    if form == "as_written":
        return request
    return dataclasses.replace(request, messages=in_form(request.messages, form),
                               content_free=None if request.content_free is None
                               else in_form(request.content_free, form))


def artifact_form(artifact: Artifact) -> str:
    """The prompt form an adapter was trained on and answers in (`as_written` for an artifact made without one)."""
    return (artifact.private or {}).get("prompt_form", "as_written")


def _local_model(ctx: LeverContext) -> tuple[Any, Any]:
    """The base backend and its loaded model; LoRA needs weights on this machine."""
    base = ctx.base_backend()
    loaded = base.loaded  # None: an API model (advisor.types.Backend)
    if loaded is None:
        raise InputError(
            f"lora fine-tunes a local model, but the task uses '{ctx.task.model}'; "
            "use model: hf:smollm2-135m-instruct (or drop lora from levers)",
            field="model",
        )
    return base, loaded


def _progress(ctx: LeverContext, name: str) -> Callable[[StepInfo], None] | None:
    """Adapt `ctx.progress` (description, total) -> advance(done, total) to training steps.

    When the advance function takes a `description` keyword, the bar shows loss and steps/s.
    """
    if ctx.progress is None:
        return None
    state: dict[str, Any] = {}

    def on_step(s: StepInfo) -> None:
        if "advance" not in state:
            state["advance"] = advance = ctx.progress(f"{name}: training", s.total)  # type: ignore[misc]
            state["describe"] = "description" in inspect.signature(advance).parameters
            state["rate"] = s.steps_per_s
        state["rate"] = 0.8 * state["rate"] + 0.2 * s.steps_per_s  # smoothed for display
        val = f", val {s.val_loss:.3f}" if s.val_loss is not None else ""
        text = f"{name}: training, loss {s.loss:.3f}{val}, {state['rate']:.2f} steps/s"
        if state["describe"]:
            state["advance"](s.step, s.total, description=text)
        else:
            state["advance"](s.step, s.total)

    return on_step


def build_adapter(
    ctx: LeverContext,
    cfg: TrainConfig,
    pairs: list[tuple[Messages, str]],
    *,
    lever: str,
    info: dict[str, Any] | None = None,
    version_data: Any = None,
) -> Artifact:
    """Train (or reuse, or resume) the adapter for these (messages, answer) pairs; wrap it as an Artifact.

    The version hashes (base model, `version_data`, config); `version_data` defaults to the pairs
    themselves. `data_hash` in the adapter's metadata is always the hash of the pairs it was trained on.
    """
    from advisor.backends.hf import HFBackend, forward_probe, precision_identity, to_precision
    from advisor.compute import PROBE_STEPS, choose_precision

    if not pairs:
        raise InputError(
            f"{lever} needs train examples; none are left after removing eval inputs",
            file=ctx.task.path(ctx.task.data.train),
        )
    base, loaded = _local_model(ctx)
    train_cfg = TrainConfig.model_validate(cfg.model_dump(include=set(TrainConfig.model_fields)))
    config = train_cfg.model_dump(mode="json")
    # The base weights' precision while training: measured on these pairs (advisor.compute); an
    # adapter trained on bf16 weights is another adapter, so it enters the version (fp32 does not:
    # adapters trained before the choice existed keep their versions).
    trained_in = choose_precision(loaded, "training", ctx.task.compute.precision,
                                  probe=[[m, a] for m, a in pairs[: 8 * (PROBE_STEPS + 1)]],
                                  cache_dir=ctx.cache_dir, on_status=lambda text: status(ctx.progress, f"{lever}: {text}"))
    if trained_in.precision != "fp32":
        config["precision"] = trained_in.precision
    data_hash = stable_hash([[m, a] for m, a in pairs])[:16]
    version_hash = data_hash if version_data is None else stable_hash(version_data)[:16]
    version = adapters.adapter_version(loaded.identity, version_hash, config)
    path = adapters.adapter_path(ctx.cache_dir, version)

    steps_run, resumed_from = 0, None
    with adapters.training_lock(path):  # a second process training the same version waits here
        if adapters.is_complete(path):
            meta = adapters.read_meta(path)
        else:
            started = time.perf_counter()
            model = copy.deepcopy(loaded.in_precision(trained_in.precision))  # the shared base stays as it is
            threads = getattr(base, "threads", None)  # the run's advisor.compute.ThreadChoice
            probe = forward_probe(model, loaded.device)
            result = train_lora(
                model,
                loaded.tokenizer,
                pairs,
                train_cfg,
                path / "checkpoints",
                on_step=_progress(ctx, lever),
                on_status=lambda text: status(ctx.progress, f"{lever}: {text}"),
                on_check=(lambda: threads.check("training", probe)) if threads is not None else None,
            )
            del model
            with status(ctx.progress, f"{lever}: saving adapter {version}"):
                result.model.save_pretrained(str(path))
            steps_run = result.steps - (result.resumed_from or 0)
            resumed_from = result.resumed_from
            meta = {
                "version": version,
                "lever": lever,
                "task": ctx.task.name,
                "base_model": loaded.identity,
                "base_path": str(loaded.path),
                "data_hash": data_hash,
                "config": config,
                "n_train": result.n_train,
                "n_val": result.n_val,
                "steps": result.steps,
                "planned_steps": result.planned_steps,
                "stopped_early": result.stopped_early,
                "best_step": result.best_step,
                "initial_val_loss": result.initial_val_loss,
                "best_val_loss": result.best_val_loss,
                "first_train_loss": result.history[0]["loss"] if result.history else None,
                "last_train_loss": result.history[-1]["loss"] if result.history else None,
                "tokens": result.tokens,
                "truncated": result.truncated,
                "train_seconds": result.train_seconds,
                "wall_seconds": time.perf_counter() - started,
                "device": loaded.device,
                "precision": trained_in.precision,
                "created": adapters.now_iso(),
                "metrics": {},
            }
            adapters.write_meta(path, meta)  # written last: from here on the adapter is complete
            clear_checkpoints(path / "checkpoints")
            del result

    scoring = getattr(base, "precision", None)  # the precision the base model scores in (advisor.compute)
    scored_in = scoring.precision if scoring is not None else "fp32"
    with status(ctx.progress, f"{lever}: loading and merging adapter {version}"):
        merged = to_precision(adapters.load_merged(loaded.model, path), scored_in)
    costs = ctx.task.costs
    price = costs.gpu_hour_usd if meta["device"] == "cuda" else costs.cpu_hour_usd
    train_usd = meta["train_seconds"] / 3600 * price
    backend = HFBackend(
        loaded,
        identity=f"{precision_identity(loaded.identity, scored_in)}+{version}",
        model=merged,
        usd_per_hour=base.usd_per_hour,  # an HFBackend: `_local_model` checked it has weights here
        precision=scoring,
        threads=getattr(base, "threads", None),
    )
    return Artifact(
        lever=lever,
        identity=version,
        backend=backend,
        setup_seconds=meta["train_seconds"],
        setup_usd=train_usd + costs.engineer_hour_usd * costs.curation_hours,
        upkeep_usd_per_month=costs.retrain_per_month * train_usd,
        info={
            "adapter": version,
            "adapter_path": str(path),
            "reused": steps_run == 0,
            "steps_run": steps_run,
            "resumed_from": resumed_from,
            "train_usd": train_usd,
            "training_precision": meta.get("precision", "fp32"),
            "training_precision_choice": trained_in.as_dict(),
            **{
                k: meta[k]
                for k in (
                    "data_hash",
                    "n_train",
                    "n_val",
                    "steps",
                    "stopped_early",
                    "initial_val_loss",
                    "best_val_loss",
                    "train_seconds",
                    "device",
                    "truncated",
                )
            },
            **(info or {}),
        },
    )


def _mean_tokens(backend: Any, messages: list[Messages]) -> dict[str, float] | None:
    """Mean prompt tokens per query in each form (the backend's chat template applied, as served), over
    `messages` (as written); None when there are none or the backend has no tokenizer here."""
    if not messages or not hasattr(backend, "prompt_ids"):
        return None
    return {form: round(sum(len(backend.prompt_ids(in_form(m, form))) for m in messages) / len(messages), 1)
            for form in FORMS}


def _items(n: int) -> str:
    return f"{n} validation item{'' if n == 1 else 's'}"


def choose_form(ctx: LeverContext, lever: Any, setting: str, validation: list[Example],
                train_form: Callable[[str], Artifact], *, same_prompt: bool = False,
                sample: list[Messages] = ()) -> Artifact:  # type: ignore[assignment]
    """Train the adapter(s) `setting` calls for and return the kept one, its choice in `info["prompt_form"]`.

    `setting`: `auto`, `as_written` or `template_only` (see the module docstring for auto's rule).
    `validation`: the train items the training holds out (never eval). `train_form(form) -> Artifact`
    trains (or reuses) the adapter for a form; its `private` says the form. `same_prompt`: both forms
    are the same prompt (no system message). `sample`: training prompts as written, whose mean token
    count per form is recorded (`tokens_in`, the chat template applied). Outside a runner (no
    `ctx.predictor`: nothing to score validation items through) auto trains as_written and says so.
    The kept artifact's setup gains every other adapter's training (seconds, USD) and the validation
    answers' compute (`choose_on_dev`'s seconds and USD); its upkeep stays its own retraining.
    """
    target = ctx.task.target
    metric, threshold = target.metric, target.threshold
    record: dict[str, Any] = {"setting": "forced" if setting != "auto" else "auto", "validation": None}
    if setting != "auto":
        artifact = train_form(setting)
        record.update(chosen=setting, why="forced", trained=[setting],
                      reason=f"forced by lever_options.{lever.name}.prompt_form: {setting}")
    elif same_prompt:
        artifact = train_form("as_written")
        record.update(chosen="as_written", why="same_prompt", trained=["as_written"],
                      reason="the task's prompt has no system message: both forms are the same prompt, trained once")
    elif not validation:
        artifact = train_form("as_written")
        record.update(chosen="as_written", why="no_validation", trained=["as_written"],
                      reason="no validation items to choose on (too few train items, or val_fraction 0): the "
                             "prompt as written is kept; template_only not trained")
    elif ctx.predictor is None:
        artifact = train_form("as_written")
        record.update(chosen="as_written", why="no_predictor", trained=["as_written"],
                      reason="built outside a run (no prediction store to score validation items through): the "
                             "prompt as written is kept; template_only not trained")
    else:
        build = lever.held_out_requests  # lora-rag: a validation item never retrieves itself
        first = train_form("template_only")
        choice = choose_on_dev(ctx, lever, {"template_only": first}, validation, build=build)
        tried = choice.scores["template_only"]
        if tried >= threshold:
            artifact, other, trained = first, None, ["template_only"]
            why = "meets_target"
            reason = (f"template_only scores {metric} {tried:.3f} on {_items(len(validation))}, at or above "
                      f"the target {threshold:.2f}: the cheaper-served form is kept; as_written not trained")
        else:
            second = train_form("as_written")
            both = {"template_only": first, "as_written": second}
            choice = choose_on_dev(ctx, lever, both, validation, default="template_only", build=build)
            artifact, trained = both[choice.chosen], ["template_only", "as_written"]
            other = both["as_written" if choice.chosen == "template_only" else "template_only"]
            scores = ", ".join(f"{n} {v:.3f}" for n, v in choice.scores.items())
            rule = (choice.extra.get("test") or {}).get("rule")
            why = "switched" if choice.chosen == "as_written" else "kept"
            head = (f"template_only scores {metric} {tried:.3f} on {_items(len(validation))}, below the target "
                    f"{threshold:.2f}, so as_written was trained too ({scores}")
            reason = (head + (f"; {rule}" if rule else "") + "): " +
                      ("as_written is better beyond noise and is kept" if why == "switched" else
                       "as_written was not shown better beyond noise: the cheaper-served template_only is kept"))
        # What choosing cost: the other adapter's training and every validation answer (the second
        # choice re-reads the first one's answers from the store and counts them once).
        artifact.setup_seconds += choice.seconds
        artifact.setup_usd += choice.usd
        if other is not None:
            artifact.setup_seconds += float(other.info["train_seconds"])
            artifact.setup_usd += float(other.info["train_usd"])
            record["other_adapter"] = other.info["adapter"]
        record.update(chosen=choice.chosen, why=why, trained=trained, reason=reason, validation={
            "items": len(validation), "metric": metric, "threshold": threshold, "scores": dict(choice.scores),
            **({"test": choice.extra["test"]} if "test" in choice.extra else {}),
            "seconds": choice.seconds, "usd": choice.usd})
        artifact.private["form_choice"] = choice
    record["label"] = FORM_LABELS[record["chosen"]]
    record["tokens_in"] = _mean_tokens(artifact.backend, list(sample))
    artifact.info["prompt_form"] = record
    return artifact


class LoraLever(Lever):
    """Fine-tune LoRA layers on the train split with the task's prompt in the chosen form (module docstring)."""

    name = "lora"
    rung = 3
    family = "fine-tuning"
    options_model: type[BaseModel] = LoraOptions
    # Labels are ranked by their summed log-likelihood, the objective the adapter was trained on
    # (answer-only cross-entropy); contextual calibration would divide out what it learned.
    option_ranking = "sum"

    def training_messages(self, ctx: LeverContext, state: Any, examples: list[Example]) -> list[Messages]:
        """The prompts to train on: the task's prompt as written, exactly as `requests` renders it."""
        return [render_messages(ctx.task, ex) for ex in examples]

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact:
        return self.prepare_on(ctx, options, ctx.data.train, leaked=len(ctx.data.leakage_removed))

    def prepare_on(
        self, ctx: LeverContext, options: BaseModel, subset: list[Example], *, leaked: int = 0
    ) -> Artifact:
        """`prepare` on a given list of train examples (a learning curve's subsets, advisor.curves);
        any whose input is also an eval input is left out. `leaked`: eval inputs removed before
        (the dataset's own leakage count), added to the artifact's `leakage_removed`.
        The prompt form follows `options.prompt_form` (`choose_form`)."""
        assert isinstance(options, TrainConfig)
        train, removed_ids = remove_leakage(subset, ctx.data.eval)
        removed = len(removed_ids)
        state = self.prepare_state(ctx, options)
        with status(ctx.progress, f"{self.name}: building {len(train)} training prompts"):
            messages = self.training_messages(ctx, state, train)
        answers = [answer_text(ctx.task, ex.output) for ex in train]
        # The validation split train_lora carves from these pairs (same indices): never trained on.
        _, val_idx = split_validation(len(train), options)
        validation = [train[i] for i in val_idx]
        version = self.version_data(ctx, options, state, train)

        def train_form(form: str) -> Artifact:
            pairs = [(in_form(m, form), a) for m, a in zip(messages, answers)]
            # lora's version hashes its pairs, which differ by form; a lever that hashes other data
            # (lora-rag, lora-curated) gets the form added (as_written keeps the version it always had).
            data = version if version is None or form == "as_written" else [version, {"prompt_form": form}]
            artifact = build_adapter(
                ctx, options, pairs, lever=self.name, info={"leakage_removed": leaked + removed}, version_data=data,
            )
            artifact.private = {"task": ctx.task, "extra": state, "validation": validation, "prompt_form": form}
            return self.finish(ctx, options, artifact, state)

        setting = str(getattr(options, "prompt_form", "as_written"))
        same = all(in_form(m, "template_only") == m for m in messages)
        return choose_form(ctx, self, setting, validation, train_form, same_prompt=same, sample=messages[:64])

    def finish(self, ctx: LeverContext, options: BaseModel, artifact: Artifact, state: Any) -> Artifact:
        """Last touches after the adapter is built (lora-rag adds its index)."""
        return artifact

    def prepare_state(self, ctx: LeverContext, options: BaseModel) -> Any:
        """What request building needs besides the task (the retriever, for lora-rag)."""
        return None

    def version_data(self, ctx: LeverContext, options: BaseModel, state: Any, train: list[Example]) -> Any:
        """What the adapter's version hashes besides base model and config; None: the training pairs."""
        return None

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        task: Task = artifact.private["task"]
        form = artifact_form(artifact)
        return [make_request(task, ex, in_form(render_messages(task, ex), form)) for ex in examples]

    def held_out(self, ctx: LeverContext, options: BaseModel, artifact: Artifact) -> HeldOut:
        """The adapter's validation split: train items it was never trained on (early stopping
        read their loss), asked the way eval items are. `priced` when the prompt form was chosen
        on them (their answers are then in setup already)."""
        return HeldOut("validation", list(artifact.private.get("validation") or []),
                       build=self.held_out_requests(artifact), priced="form_choice" in artifact.private)

    def held_out_requests(self, artifact: Artifact) -> Callable[[list[Example]], list[Request]] | None:
        """How validation items are asked when it differs from `requests` (lora-rag: without retrieving themselves)."""
        return None

    # -- beyond the Lever protocol: what the CLI and runner ask of a fine-tuning lever ------------

    def dry_run_form(self, options: BaseModel, n_train: int, requests: list[Request]) -> tuple[list[Request], str]:
        """`advise run --dry-run`: the eval `requests` (as written) in the prompt form the lever will serve,
        and a note saying which. `auto` counts template_only (tried first, kept when it meets the target),
        or as_written when `n_train` train items leave no validation split."""
        setting = str(getattr(options, "prompt_form", "as_written"))
        assert isinstance(options, TrainConfig)
        form = setting
        if setting == "auto":
            form = "template_only" if split_validation(n_train, options)[1] else "as_written"
        note = f"eval prompts counted {FORM_LABELS[form]} (prompt_form: {setting}"
        if setting == "auto" and form == "template_only":
            note += ("; as_written, with the system message, is also trained and then served if template_only "
                     "misses the target on the validation split and as_written beats it there")
        elif setting == "auto":
            note += "; no validation split to choose on"
        return [request_in_form(r, form) for r in requests], note + ")"

    def artifacts(self, cache_dir: Path) -> list[dict[str, Any]]:
        """The adapters in the store (`advise adapters`)."""
        return adapters.list_adapters(cache_dir)

    def record_metrics(self, ctx: LeverContext, artifact: Artifact, metrics: dict[str, float]) -> None:
        """Keep an artifact's eval scores beside its adapter, so `advise adapters` shows them."""
        adapters.record_metrics(
            ctx.cache_dir,
            artifact.info["adapter"],
            metrics,
            task=ctx.task.name,
            lever=self.name,
            eval_hash=ctx.data.hashes()["eval"],
        )


# -- lora + rag ----------------------------------------------------------------------------------


class LoraRagOptions(TrainConfig):
    """`lever_options.lora-rag`: the training settings plus the retrieval settings under `rag`, and the
    prompt form (`template_only` keeps the retrieved context, in the user turn)."""

    prompt_form: PromptForm = _form_field()
    max_len: int = Field(
        1024, ge=8, description="Tokens per example; retrieved context makes prompts long (see truncated)."
    )
    rag: RagOptions = Field(
        default_factory=RagOptions, description="Retrieval settings, as under lever_options.rag."
    )


class LoraRagLever(LoraLever):
    """LoRA trained and queried with retrieved context in the prompt, built as the rag lever builds it."""

    name = "lora-rag"
    rung = 4
    options_model = LoraRagOptions

    def retrieved_chars(self, options: BaseModel) -> int:
        assert isinstance(options, LoraRagOptions)
        return options.rag.max_context_chars

    def prepare_state(self, ctx: LeverContext, options: BaseModel) -> Any:
        assert isinstance(options, LoraRagOptions)
        return prepare_retriever(ctx, options.rag, self.name)

    def training_messages(self, ctx: LeverContext, retriever: Any, examples: list[Example]) -> list[Messages]:
        """As written; `prepare_on` puts them in the prompt form."""
        return [r.messages for r in retrieval_requests(ctx.task, retriever, examples, exclude_self=True)]

    def version_data(self, ctx: LeverContext, options: BaseModel, retriever: Any, train: list[Example]) -> Any:
        """The train examples as the prompt renders them and the retrieval settings, not the retrieved text.

        The adapter learns to answer from whatever context it is given; the facts stay in the index.
        Editing the knowledge base therefore keeps the adapter (no retraining: the point of RAG), while
        the predictions still follow the new text, because each request carries what it retrieved.
        Retrieving from train examples (`source: examples`) puts them in the version through `train`.
        The prompt form is added by `prepare_on` (as_written keeps this version unchanged).
        """
        assert isinstance(options, LoraRagOptions)
        rendered = [[render_messages(ctx.task, ex), answer_text(ctx.task, ex.output)] for ex in train]
        return ["lora-rag", rendered, options.rag.settings(), retriever.source]

    def finish(self, ctx: LeverContext, options: BaseModel, artifact: Artifact, retriever: Any) -> Artifact:
        """Add the index to the adapter: its cost, its upkeep, its identity."""
        assert isinstance(options, LoraRagOptions)
        rag = rag_artifact(ctx, options.rag, retriever, self.name, artifact.backend)
        artifact.identity = stable_hash([artifact.identity, rag.identity])[:16]
        artifact.setup_seconds += rag.setup_seconds
        artifact.setup_usd += rag.setup_usd
        artifact.upkeep_usd_per_month += rag.upkeep_usd_per_month
        artifact.info.update(rag.info)
        return artifact

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        form = artifact_form(artifact)
        return [request_in_form(r, form)
                for r in retrieval_requests(artifact.private["task"], artifact.private["extra"], examples)]

    def held_out_requests(self, artifact: Artifact) -> Callable[[list[Example]], list[Request]] | None:
        # As in training (`training_messages`): a train item never retrieves itself.
        form = artifact_form(artifact)
        return lambda examples: [request_in_form(r, form) for r in retrieval_requests(
            artifact.private["task"], artifact.private["extra"], examples, exclude_self=True)]
