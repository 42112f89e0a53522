"""The models a task runs on: `model:` (one), or `models:` (several, a row per lever and model).

    model: openai:gpt-4o-mini
    openai: {base_url: http://127.0.0.1:8080/v1, api_key_env: OPENAI_API_KEY, max_concurrency: 8}

    models:
      gpt: openai:gpt-4o-mini                          # a spec, or a mapping with per-model settings
      small: {model: "openai:smollm2", base_url: "http://gpu-box:8000/v1", price: {server_hour_usd: 1.2}}
      local: hf:smollm2-135m-instruct
    levers: [prompt, lora@local]                       # prompt on every model; lora on `local` only

Settings of an `openai:` model come from its own entry, else the task's `openai:` section, else the
openai client's defaults (OPENAI_BASE_URL). The key is never in the task file: `api_key_env` names
the environment variable that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ClassificationPath = Literal["auto", "first_token_logprobs", "json_schema_enum", "generate_and_map"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """What a model costs: per million tokens (hosted APIs) or per server hour (self-served)."""

    input_per_1m_usd: float | None = Field(None, ge=0, description="USD per million prompt tokens.")
    output_per_1m_usd: float | None = Field(None, ge=0, description="USD per million generated tokens.")
    cached_input_per_1m_usd: float | None = Field(
        None, ge=0, description="USD per million prompt tokens served from the provider's prompt cache "
        "(usage.prompt_tokens_details.cached_tokens); unset: they cost the full input price."
    )
    server_hour_usd: float | None = Field(
        None, ge=0, description="USD per hour of the server (self-served); charged by wall time per answer."
    )

    @model_validator(mode="after")
    def _one_way(self) -> Price:
        per_token = self.input_per_1m_usd is not None or self.output_per_1m_usd is not None
        if per_token and self.server_hour_usd is not None:
            raise ValueError("give a price per token or per server hour, not both")
        if per_token and (self.input_per_1m_usd is None or self.output_per_1m_usd is None):
            raise ValueError("a per-token price needs both input_per_1m_usd and output_per_1m_usd")
        if self.cached_input_per_1m_usd is not None and self.input_per_1m_usd is None:
            raise ValueError("cached_input_per_1m_usd goes with input_per_1m_usd and output_per_1m_usd")
        return self


class OpenAISettings(_Strict):
    """How to reach an OpenAI-compatible server (the OpenAI API, vLLM, llama.cpp, Ollama)."""

    base_url: str | None = Field(
        None, description="e.g. http://127.0.0.1:8080/v1; default: $OPENAI_BASE_URL, else api.openai.com."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the key (the key itself is never in the task file).",
    )
    max_concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once.")
    max_retries: int | None = Field(
        None, ge=0, le=1000, description="Most retries of one request (408/409/429/5xx, dropped connections, "
        "timeouts); unset: as many as retry_budget_s allows."
    )
    retry_budget_s: float = Field(
        120.0, gt=0, description="Seconds one request may spend being retried (the waits, jittered "
        "exponential or the server's Retry-After, and the tries after its first failure); once spent, or "
        "when the server asks to wait longer than what is left, the run stops cleanly (exit 1). The default "
        "leaves room for about 17 retries (README, 'Faults', says how it was measured)."
    )
    timeout_s: float = Field(60.0, gt=0, description="Seconds before one request times out.")
    classification: ClassificationPath = Field(
        "auto", description="How labels are chosen: first-token top_logprobs, a JSON-schema enum, or "
        "generate and map; auto tries every path the server supports on the dev split and keeps the "
        "cheapest unless another is better beyond noise."
    )
    tokenizer: str | None = Field(
        None, description="A local tokenizer for token counts, dry-run estimates and, when the server has "
        "no /tokenize, which token begins each label, e.g. 'hf:smollm2-135m-instruct'; without it tokens "
        "are estimated as characters / 4."
    )
    context_window: int | None = Field(None, ge=1, description="The model's context in tokens, if known.")
    price: Price | None = Field(None, description="Overrides the shipped price table for this model.")


class ModelEntry(OpenAISettings):
    """One entry of `models:`: the model spec plus, for `openai:`, settings that override `openai:`."""

    model: str = Field(description="'hf:<name or folder>' or 'openai:<model>'.")


class Budget(_Strict):
    """Limits on what one run may spend on API models; the run stops cleanly when one is reached."""

    max_requests: int | None = Field(None, ge=0, description="Most API requests this run sends.")
    max_usd: float | None = Field(None, ge=0, description="Most USD this run spends on API tokens.")


def check_scheme(spec: str) -> str:
    scheme = spec.split(":", 1)[0]
    if ":" not in spec or scheme not in {"hf", "openai"} or not spec.split(":", 1)[1]:
        raise ValueError(f"'{spec}' must start with 'hf:' or 'openai:' followed by a model name")
    return spec


@dataclass(frozen=True, eq=False)
class ModelChoice:
    """A resolved model: its alias (None for the single `model:`), spec and settings."""

    alias: str | None
    spec: str
    settings: OpenAISettings

    def _key(self) -> tuple[str | None, str, str]:
        return self.alias, self.spec, self.settings.model_dump_json()

    def __hash__(self) -> int:  # settings (a pydantic model) are not hashable themselves
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelChoice) and self._key() == other._key()

    @property
    def scheme(self) -> str:
        return self.spec.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.spec.split(":", 1)[1]

    @property
    def label(self) -> str:
        return self.alias or self.spec


def resolve_models(task: Any) -> list[ModelChoice]:
    """The task's models in file order: one per `models:` entry, or the single `model:`."""
    base: OpenAISettings = task.openai or OpenAISettings()
    if not task.models:
        return [ModelChoice(None, task.model, base)]
    out = []
    for alias, entry in task.models.items():
        if isinstance(entry, str):
            out.append(ModelChoice(alias, check_scheme(entry), base))
        else:
            own = entry.model_dump(exclude_unset=True, exclude={"model"})
            settings = OpenAISettings.model_validate({**base.model_dump(exclude_unset=True), **own})
            out.append(ModelChoice(alias, check_scheme(entry.model), settings))
    return out


def settings_for_embeddings(task: Any) -> OpenAISettings:
    """The server an `openai:<model>` embedder reaches: the task's first `openai:` model's settings,
    else its `openai:` section, else the defaults ($OPENAI_BASE_URL, else the OpenAI API)."""
    for choice in resolve_models(task):
        if choice.scheme == "openai":
            return choice.settings
    return task.openai or OpenAISettings()


def setting_field(task: Any, choice: ModelChoice, key: str | None = None) -> str:
    """The task.yaml key a model's setting was written under, for errors: `key` (an OpenAISettings
    field) from the model's own `models:` entry, else the `openai:` section, else the model itself.

    >>> setting_field(task, choice, "api_key_env")  # doctest: +SKIP
    'models.gpt.api_key_env'
    """
    entry = task.models.get(choice.alias) if task.models and choice.alias else None
    if key and isinstance(entry, ModelEntry) and key in entry.model_fields_set:
        return f"models.{choice.alias}.{key}"
    if key and task.openai is not None and key in task.openai.model_fields_set:
        return f"openai.{key}"
    if choice.alias is None:
        return "model"
    return f"models.{choice.alias}" + (".model" if isinstance(entry, ModelEntry) else "")
