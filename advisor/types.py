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


@dataclass
class Generation:
    """A backend's answer to one request, with what it cost to produce."""

    text: str
    tokens_in: int
    tokens_out: int
    seconds: float  # this item's share of the batch's compute time
    option_scores: list[float] | None = None  # for score_options: log-likelihood per option
    info: dict[str, Any] = field(default_factory=dict)  # recorded with the prediction (e.g. how a label was chosen)


@dataclass
class Prediction:
    example_id: str
    output: Any  # parsed: a label, a dict, a string
    raw: str
    tokens_in: int
    tokens_out: int
    seconds: float
    context: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


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


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 64
    temperature: float = 0.0  # greedy: the same run twice gives the same predictions
    batch_size: int = 8

    def key(self) -> str:
        return f"max_new_tokens={self.max_new_tokens};temperature={self.temperature}"


@runtime_checkable
class Backend(Protocol):
    """Model access. Knows nothing about levers, tasks or caching."""

    identity: str  # model name + revision/content hash; part of every cache key

    def generate(self, requests: list[Request], params: GenerationParams) -> list[Generation]: ...

    def score_options(
        self, requests: list[Request], params: GenerationParams
    ) -> list[Generation]: ...

    def price_per_second_usd(self) -> float:
        """What one second of this backend's compute costs; 0 when priced per token."""
        ...


ProgressFn = Callable[[int, int], None]


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


@runtime_checkable
class Lever(Protocol):
    """A way to adapt a model to a task. Registered in the `advisor.levers` entry-point group."""

    name: str
    rung: int  # position on the cost ladder: prompt 0, few-shot 1, rag 2, lora 3, lora-rag 4
    options_model: type[BaseModel]  # validates this lever's `lever_options` entry

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact: ...

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]: ...
