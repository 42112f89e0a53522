"""The small core types every part of advise shares.

A lever turns a task into an `Artifact` (`prepare`), then turns examples into
`Request`s (`requests`); the runner sends requests through the artifact's
`Backend`, caches each answer, and scores them with the one shared scorer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pydantic import BaseModel

    from advisor.data import Dataset
    from advisor.spec import Task


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
    state: Any = None  # lever-private (e.g. a retriever); never serialized


# How `score_options` ranks a request's options (see advisor/ranking.py, `rank_options`):
# "calibrated" log P(option | prompt) - log P(option | content-free prompt) (Zhao et al. 2021),
# "calibrated_prefix" the same over the tokens up to where the options part (spelling after
# that point cannot move the prediction), "mean" per-token mean log-likelihood, "sum" summed
# log-likelihood (favours short labels), "first_token" the option's first token (ties by the sum).
OPTION_RANKINGS = ("calibrated", "calibrated_prefix", "mean", "sum", "first_token")
DEFAULT_OPTION_RANKING = "calibrated"


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

    def key(self) -> str:
        base = f"max_new_tokens={self.max_new_tokens};temperature={self.temperature}"
        # The ranking method changes which option wins, so it is part of a classification answer's key.
        if not self.option_ranking:
            return base
        return base + f";option_ranking={self.option_ranking}" + (";rank_all" if self.rank_all else "")


@runtime_checkable
class Backend(Protocol):
    """Model access. Knows nothing about levers, tasks or caching."""

    identity: str  # model name + revision/content hash; part of every cache key
    # The model's positions (prompt + answer tokens), None when unknown. The runner checks every
    # request against it with `count_tokens` before any model time is spent.
    context_window: int | None

    def count_tokens(self, request: Request) -> int:
        """Prompt tokens of `request` as this backend sends it (chat template applied)."""
        ...

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Generation]: ...

    def score_options(
        self, requests: list[Request], params: GenerationParams
    ) -> list[Generation]: ...

    def price_per_second_usd(self) -> float:
        """What one second of this backend's compute costs; 0 when priced per token."""
        ...


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


@dataclass
class LeverContext:
    """What a lever gets to prepare itself: the task, a folder to keep artifacts, shared services."""

    task: Task
    data: Dataset  # train (eval inputs already removed) and eval
    workdir: Path
    cache_dir: Path
    base_backend: Callable[[], Backend]  # lazily loads the task's model
    console: Any = None  # rich Console for progress; None when quiet
    progress: Callable[[str, int], ProgressFn] | None = None  # (description, total) -> advance fn
    # (lever, artifact, examples, what) -> (predictions, cache keys, newly computed): the runner's cached
    # path, for a lever that scores candidates on a dev split (prompt variants, prompt-search) during prepare.
    predict: Callable[..., tuple[list[Prediction], list[str], int]] | None = None


@runtime_checkable
class Lever(Protocol):
    """A way to adapt a model to a task. Registered in the `advisor.levers` entry-point group."""

    name: str
    rung: float  # position on the cost ladder: prompt 0, few-shot 1, prompt-search 1.5, rag 2, lora 3, lora-rag 4
    options_model: type[BaseModel]  # validates this lever's `lever_options` entry

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact: ...

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]: ...
