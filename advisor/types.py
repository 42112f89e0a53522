"""The small core types every part of advise shares (a leaf: it imports no other advisor module).

A lever turns a task into an `Artifact` (`prepare`), then turns examples into
`Request`s (`requests`); a `Predictor` (advisor/execute.py) sends requests through the
artifact's `Backend`, caches each answer, and the run scores them with the one shared scorer.

What a lever or a backend can do beyond the minimum is declared on its base class here
(`Lever`, `Backend`), with a default, so no caller has to probe for it: a method every one
answers has a neutral default (`lever.held_out(...)` is None when the lever holds no items
out), and an optional capability is None on the base class and a method where it exists
(`backend.answers is None`: answers come in batches; `lever.index is None`: no index).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Protocol

from pydantic import BaseModel


@dataclass(frozen=True)
class Example:
    """One labelled example. `fields` holds every key of the source line (for templates)."""

    id: str
    input: str
    output: Any
    fields: dict[str, Any]
    source: str  # "file:line", for error messages and reports
    hash: str  # content hash of the whole record


@dataclass
class Request:
    """What one example asks of a backend: chat messages plus, for classification, the options."""

    example_id: str
    messages: list[dict[str, str]]
    options: list[str] | None = None  # rank these by log-likelihood instead of generating
    max_new_tokens: int = 64
    json_schema: dict[str, Any] | None = None  # extraction: the backend may constrain output
    context: dict[str, Any] = field(default_factory=dict)  # e.g. retrieved chunk ids; recorded
    # Classification: the same prompt with the item's content replaced by "N/A", the reference a
    # backend ranks options against under `option_ranking="calibrated"` (contextual calibration).
    content_free: list[dict[str, str]] | None = None


@dataclass
class Generation:
    """A backend's answer to one request, with what it cost to produce."""

    text: str
    tokens_in: int
    tokens_out: int
    seconds: float  # this item's share of the batch's compute time
    option_scores: list[float] | None = None  # for score_options: log-likelihood per option
    info: dict[str, Any] = field(default_factory=dict)  # recorded with the prediction (e.g. how a label was chosen)
    # Of tokens_in, how many were read from a cache of a shared prompt prefix instead of computed
    # (the OpenAI API's usage.prompt_tokens_details.cached_tokens; a local backend's reused prefix).
    tokens_in_cached: int = 0
    # Seconds from sending the request to its answer, where the backend timed it (an API model: the
    # attempt that was answered, not the waits before retries); None: not timed per request.
    latency_s: float | None = None


@dataclass
class Prediction:
    example_id: str
    output: Any  # parsed: a label, a dict, a string
    raw: str
    tokens_in: int
    tokens_out: int
    seconds: float
    context: dict[str, Any] = field(default_factory=dict)
    cached: bool = False  # came from the run store, not computed in this run
    tokens_in_cached: int = 0  # of tokens_in, read from a shared-prefix cache (see Generation)


@dataclass
class Artifact:
    """What `prepare` made: the backend to query plus what it cost to make.

    `identity` changes whenever anything that changes the answers changes
    (options, adapter version, index content), so cache keys can include it.
    """

    lever: str
    identity: str
    backend: Backend
    setup_seconds: float = 0.0
    setup_usd: float = 0.0
    upkeep_usd_per_month: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # shown in reports and provenance
    private: Any = None  # the lever's own (e.g. a retriever); never serialized


# How `score_options` ranks a request's options (see advisor/ranking.py, `rank_options`):
# "calibrated" log P(option | prompt) - log P(option | content-free prompt) (Zhao et al. 2021),
# "calibrated_prefix" the same over the tokens up to where the options part (spelling after
# that point cannot move the prediction), "mean" per-token mean log-likelihood, "sum" summed
# log-likelihood (favours short labels), "first_token" the option's first token (ties by the sum).
OPTION_RANKINGS = ("calibrated", "calibrated_prefix", "mean", "sum", "first_token")
DEFAULT_OPTION_RANKING = "calibrated"
# How an API model's label answer is read (advisor/backends/classify_api.py), in every such answer's
# cache key: v2 credits only a label's real first tokens and allows a fence in a JSON-enum answer.
CLASSIFICATION_PATHS_VERSION = "v2"


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 64
    temperature: float = 0.0  # greedy: the same run twice gives the same predictions
    batch_size: int = 8
    option_ranking: str | None = DEFAULT_OPTION_RANKING  # None: a task with no options
    # Score every ranking method's inputs (the content-free reference too, even when
    # `option_ranking` does not need it), so each answer records what every method picks
    # (`ranking_alternatives`) and a run can choose or check the method without model time.
    rank_all: bool = False
    # How an API model is asked for a label (advisor/backends/classify_api.py PATHS); None: a local
    # model, which ranks whole options. Set by the run for every API classification answer.
    classification_path: str | None = None

    def key(self) -> str:
        base = f"max_new_tokens={self.max_new_tokens};temperature={self.temperature}"
        # The ranking method changes which option wins, so it is part of a classification answer's key.
        if not self.option_ranking:
            return base
        key = base + f";option_ranking={self.option_ranking}" + (";rank_all" if self.rank_all else "")
        # The path (and the version of how it reads an answer: its token budget, which tokens credit
        # a label) changes the answer too; an answer stored under another path is never reused.
        if self.classification_path:
            key += f";classification_path={self.classification_path}/{CLASSIFICATION_PATHS_VERSION}"
        return key


OnBatch = Callable[[int], None]  # a backend's "n more requests answered" (advisor.events.OnBatch)


class Backend:
    """Model access. Knows nothing about levers, tasks or caching.

    A backend subclasses this and overrides what it does; what it does not override says "not
    supported" (or the local-compute answer) here, so callers read a declaration instead of
    probing with getattr.
    """

    identity: str  # model name + revision/content hash; part of every cache key
    # The model's positions (prompt + answer tokens), None when unknown. The runner checks every
    # request against it with `count_tokens` before any model time is spent.
    context_window: int | None = None
    device: str = "cpu"  # where the model computes ("cpu", "cuda"); an API model: "cpu" (not this machine's)
    # Compute happens elsewhere (an API, a server priced per hour): never priced from this process's time.
    remote: ClassVar[bool] = False
    # The weights on this machine (a local model), which a fine-tuning lever trains; None for an API model.
    loaded: Any = None
    # What the per-query price assumes, in words (results.json `price_basis`); None: measured compute.
    price_basis: str | None = None

    # -- optional capabilities: None here, a method where a backend has it ----------------------
    # answers(requests, params) -> iterator of (index into requests, Generation) as each arrives
    # (an API model): the store keeps each answer the moment it comes.
    answers: Callable[[list[Request], GenerationParams], Iterator[tuple[int, Generation]]] | None = None
    # option_token_counts(options) -> {option: tokens as scored}: a local tokenizer's counts.
    option_token_counts: Callable[[list[str]], dict[str, int]] | None = None

    def count_tokens(self, request: Request) -> int:
        """Prompt tokens of `request` as this backend sends it (chat template applied)."""
        raise NotImplementedError(f"{type(self).__name__} cannot count tokens")

    def generate(self, requests: list[Request], params: GenerationParams,
                 on_batch: OnBatch | None = None) -> list[Generation]:
        """One answer per request, in order; `on_batch(n)` after each batch of n is answered."""
        raise NotImplementedError(f"{type(self).__name__} cannot generate")

    def classification_paths(self, labels: list[str]) -> tuple[str, ...]:
        """The ways this backend can be asked for one of `labels`, the default first (an API model:
        advisor/backends/classify_api.py PATHS it supports, or the one the task forces). Empty: the
        backend ranks whole options itself (a local model)."""
        return ()

    def classification_notes(self, labels: list[str]) -> list[str]:
        """Why a way of asking for a label is not among `classification_paths(labels)`, one line each."""
        return []

    def score_options(self, requests: list[Request], params: GenerationParams,
                      on_batch: OnBatch | None = None) -> list[Generation]:
        """Each request's options ranked (`params.option_ranking`); `on_batch` as in `generate`."""
        raise NotImplementedError(f"{type(self).__name__} cannot rank options")

    def price_per_second_usd(self) -> float:
        """What one second of this backend's compute costs; 0 when priced per token."""
        return 0.0

    def token_cost_usd(self, predictions: list[Prediction]) -> float | None:
        """The provider's token price of these answers in USD (0: no token price, compute is
        priced instead; None: a price per token applies but is unknown)."""
        return 0.0


ProgressFn = Callable[[int, int], None]


@dataclass
class HeldOut:
    """Train items a lever never trained on nor showed, on which the run may choose a setting
    (the label-ranking method) without looking at eval.

    `split`: what they are ("dev": the prompt levers' dev split; "validation": the split a
    fine-tuned adapter held out). `build(examples) -> requests`: how to ask about them when it
    differs from `Lever.requests` (retrieval that must not find the item itself).
    `priced`: their answers' compute is already in the artifact's setup cost (a dev search).
    """

    split: str
    examples: list[Example]
    build: Callable[[list[Example]], list[Request]] | None = None
    priced: bool = False


class RowAnswers(NamedTuple):
    """A predictor's answers to a list of examples: one prediction each (cached ones from the
    store), their cache keys, and how many were computed now. Unpacks as the tuple it replaced."""

    predictions: list[Prediction]
    keys: list[str]
    computed: int


class Predictor(Protocol):
    """The cached prediction path (advisor.execute.Predictor), handed to levers in their context."""

    def predict(self, lever: Lever, artifact: Artifact, examples: list[Example] | None = None,
                what: str = "predicting", row_name: str | None = None,
                build: Callable[[list[Example]], list[Request]] | None = None) -> RowAnswers:
        """Predictions for `examples` (default: the eval items), stored under `row` (default the
        lever's name); `build(examples) -> requests` asks them otherwise than `lever.requests`."""
        ...


@dataclass
class LeverContext:
    """What a lever gets to prepare itself: the task, a folder to keep artifacts, shared services."""

    task: Any  # advisor.spec.Task
    data: Any  # advisor.data.Dataset: train (eval inputs already removed) and eval
    workdir: Path
    cache_dir: Path
    base_backend: Callable[[], Backend]  # lazily loads the task's model
    console: Any = None  # rich Console for progress; None when quiet
    # (description, total) -> advance fn; an advisor.events.Progress also shows steps without a count.
    progress: Callable[[str, int], ProgressFn] | None = None
    # The run's cached prediction path, for a lever that scores candidates on a dev split (prompt
    # variants, prompt-search) during prepare. None outside a run.
    predictor: Predictor | None = None


Family = Literal["prompt", "retrieval", "fine-tuning"]
FAMILIES: tuple[str, ...] = ("prompt", "retrieval", "fine-tuning")


class Lever:
    """A way to adapt a model to a task. Registered in the `advisor.levers` entry-point group.

    A lever subclasses this, declares `name`, `rung`, `family` and `options_model`, and implements
    `prepare` and `requests`. Everything else has a default meaning "not supported" and is
    overridden by the levers that can.
    """

    name: ClassVar[str]
    rung: ClassVar[float]  # position on the cost ladder: prompt 0, few-shot 1, prompt-search 1.5, rag 2, lora 3, ...
    family: ClassVar[str]  # one of FAMILIES: how the verdict groups it and which model it needs
    options_model: ClassVar[type[BaseModel]]  # validates this lever's `lever_options` entry
    # The label-ranking method its rows start from under `scoring.option_ranking: auto`; None:
    # DEFAULT_OPTION_RANKING (LoRA levers: "sum", the objective their adapter was trained on).
    option_ranking: ClassVar[str | None] = None
    # -- optional capabilities: None here, a method where a lever has it ------------------------
    # index(ctx, options) -> statistics: build or refresh the lever's retrieval index on its own
    # (`advise index`).
    index: Callable[[LeverContext, BaseModel], dict[str, Any]] | None = None
    # prepare_on(ctx, options, train, eval_, leaked=0) -> Artifact: `prepare` on a given train list
    # (a learning curve passes subsets).
    prepare_on: Callable[..., Artifact] | None = None

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact:
        raise NotImplementedError(f"lever {self.name} does not implement prepare")

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        raise NotImplementedError(f"lever {self.name} does not implement requests")

    # -- capabilities every lever answers, with their "nothing to add" defaults -------------------

    def check_task(self, task: Any) -> str | None:
        """Why this lever cannot run on `task` at all, in a sentence that says what to do instead
        (checked when rows are planned, before any model loads); None: it can. By default it can."""
        return None

    def held_out(self, ctx: LeverContext, options: BaseModel, artifact: Artifact) -> HeldOut | None:
        """Train items the artifact never saw, on which the run may choose a setting; None: none."""
        return None

    def record_metrics(self, ctx: LeverContext, artifact: Artifact, metrics: dict[str, float]) -> None:
        """Keep an artifact's eval figures beside it (an adapter store); by default nothing is kept."""
        return None

    def report_details(self, artifact: Artifact, eval_metrics: dict[str, float]) -> dict[str, Any]:
        """Extra `details` for the row in results.json (e.g. prompt variants' dev scores); none by default."""
        return {}

    def retrieved_chars(self, options: BaseModel) -> int:
        """At most how many characters of retrieved text one request carries (`advise run --dry-run`
        counts them as tokens); 0 by default: the lever retrieves nothing."""
        return 0

    def artifacts(self, cache_dir: Path) -> list[dict[str, Any]]:
        """The artifacts this lever keeps in the cache (`advise adapters`); none by default."""
        return []
