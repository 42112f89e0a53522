"""The `openai:` backend: any OpenAI-compatible chat server (the OpenAI API, vLLM, llama.cpp, Ollama).

    backend = OpenAIBackend(ModelChoice(None, "openai:gpt-4o-mini", OpenAISettings()), budget=RunBudget())
    for index, generation in backend.answers(requests, GenerationParams()):
        ...  # in arrival order, so the runner stores each answer the moment it exists

Retries are the openai client's own (`max_retries`: jittered backoff on 408/409/429/5xx, honouring
Retry-After up to 120 s). This module adds only what the client lacks: a clean stop when a server
asks to wait longer than that, when a run's budget is spent, or when a server stays down. The API
key is read from the environment variable the task names and is never written anywhere: not in
the identity (part of every cache key), not in errors, not in results.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from advisor.backends.classify_api import (
    TOP_LOGPROBS,
    distinct_first_tokens,
    enum_format,
    map_to_label,
    parse_enum_answer,
    rank_top_logprobs,
)
from advisor.errors import AdviseError, BackendError, InputError
from advisor.modelspec import (
    ModelChoice,
    OpenAISettings,
    Price,
    resolve_models,
    setting_field,
    settings_for_embeddings,
)
from advisor.pricing import CONTEXT_WINDOWS, price_basis, token_cost_usd
from advisor.types import Backend, Generation, GenerationParams, OnBatch, Prediction, Request

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_AFTER_LIMIT_S = 120  # the openai client waits at most this long on Retry-After; beyond it, we stop


class TokenUsage(NamedTuple):
    """Tokens of one response: prompt, generated, and of the prompt those served from a prompt cache."""

    tokens_in: int
    tokens_out: int
    tokens_in_cached: int


def usage_tokens(usage: Any) -> TokenUsage:
    """The tokens a response's `usage` reports. Cached prompt tokens come from
    `usage.prompt_tokens_details.cached_tokens` (the OpenAI API; vLLM with prefix caching), 0 where
    the server leaves it out."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return TokenUsage(usage.prompt_tokens, usage.completion_tokens, min(int(cached), usage.prompt_tokens))


def base_url_of(settings: OpenAISettings) -> str:
    """The server a model's settings reach: `base_url`, else $OPENAI_BASE_URL, else the OpenAI API."""
    return settings.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


def api_key(settings: OpenAISettings, what: str) -> str | None:
    """The key in the environment variable `settings.api_key_env`, or None when it is unset and none
    is needed: a self-served server (not api.openai.com) with `api_key_env` left at its default.

    Raises InputError (exit 2) when it is unset and needed: the task names the variable, or the
    server is the OpenAI API. `what` says what the key is for; the key itself is never in a message.
    """
    key = os.environ.get(settings.api_key_env)
    if key:
        return key
    if "api_key_env" in settings.model_fields_set or public_url(base_url_of(settings)) == DEFAULT_BASE_URL:
        raise InputError(f"no API key: the environment variable {settings.api_key_env} is not set "
                         f"(the task reads the key for {what} from it); set it in the shell that runs advise",
                         field="openai.api_key_env")
    return None


def check_api_keys(task: Any, embedders: list[str] | None = None) -> list[str]:
    """What `advise validate` says of the keys of the task's `openai:` models (and `openai:<model>`
    embedders), sending nothing: InputError, as the run would raise it, for a key that is needed and
    missing; a note for each variable that is unset where a self-served server may need no key."""
    uses = [(f"{c.spec}", c.settings, setting_field(task, c, "api_key_env"))
            for c in resolve_models(task) if c.scheme == "openai"]
    uses += [(f"embedding {name}", settings_for_embeddings(task), "openai.api_key_env")
             for name in dict.fromkeys(embedders or []) if name.startswith("openai:")]
    notes = []
    for what, settings, field in uses:
        try:
            if api_key(settings, what) is None:
                notes.append(f"{what}: {settings.api_key_env} is not set, so no key is sent to "
                             f"{public_url(base_url_of(settings))} (right for a server that checks none; if it "
                             "needs one, set the variable, or name yours with api_key_env)")
        except InputError as e:
            e.field = field
            raise
    return notes


class RunStopped(AdviseError):
    """A run stopped cleanly (budget spent, server down, told to wait too long); exit 1, all answers kept."""

    exit_code = 1


class RunBudget:
    """Requests and dollars one run may spend on API models, shared by every API backend of the run."""

    def __init__(self, max_requests: int | None = None, max_usd: float | None = None) -> None:
        self.max_requests = max_requests
        self.max_usd = max_usd
        self.requests = 0
        self.usd = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> None:
        """Count one request about to be sent; raises RunStopped when the budget is spent."""
        with self._lock:
            if self.max_requests is not None and self.requests >= self.max_requests:
                raise RunStopped(f"budget reached: {self.requests} requests sent (budget.max_requests "
                                 f"{self.max_requests}); answers so far are saved; raise it and run again to go on")
            if self.max_usd is not None and self.usd >= self.max_usd:
                raise RunStopped(f"budget reached: ${self.usd:.4f} spent (budget.max_usd {self.max_usd}); "
                                 "answers so far are saved; raise it and run again to go on")
            self.requests += 1

    def charge(self, usd: float | None) -> None:
        with self._lock:
            self.usd += usd or 0.0


def public_url(url: str) -> str:
    """The URL without any user:password part (safe to log and to key caches on)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def local_tokenizer(name: str, cache_dir: Any = None) -> Any:
    """The transformers tokenizer of a local model: the embedded SmolLM2's straight from its GGUF
    (no weights converted), else a model folder's."""
    from transformers import AutoTokenizer

    from advisor.backends.hf import EMBEDDED_NAME, _embedded_gguf, _quiet_transformers, resolve_model_path

    _quiet_transformers()
    if name.lower() in {EMBEDDED_NAME, "default", "smollm2"}:
        gguf = _embedded_gguf()
        return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return AutoTokenizer.from_pretrained(str(resolve_model_path(name, cache_dir)))


class OpenAIBackend(Backend):
    """Chat completions with bounded concurrency; answers come back as they arrive.

    Raises InputError (exit 2) for a missing key variable, BackendError (exit 2) when the server
    cannot be reached or does not speak the OpenAI API at start, RunStopped (exit 1) mid-run.
    """

    remote = True  # compute happens on the server: never priced from this process's CPU time

    def __init__(self, choice: ModelChoice, *, budget: RunBudget | None = None, price: Price | None = None,
                 price_source: str = "unknown", probe: bool = True, cache_dir: Any = None) -> None:
        from openai import OpenAI

        s = choice.settings
        self.choice, self.settings, self.model = choice, s, choice.name
        self.base_url = base_url_of(s)
        self.server = public_url(self.base_url)
        # None: a self-served server that checks no key; the client needs some string.
        key = api_key(s, choice.spec) or "no-key"
        self._secret = key
        self.identity = f"openai:{self.model}@{self.server}"
        self.price, self.price_source = price, price_source
        self.budget = budget or RunBudget()
        self.cache_dir = cache_dir
        self.context_window: int | None = s.context_window or CONTEXT_WINDOWS.get(self.model)
        self._tokenizer: Any = None
        self.token_method = f"tokenizer {s.tokenizer}" if s.tokenizer else "characters / 4 (no local tokenizer)"
        self._path: str | None = None if s.classification == "auto" else s.classification
        self.client = OpenAI(api_key=key, base_url=self.base_url, max_retries=s.max_retries, timeout=s.timeout_s)
        if probe:
            self._probe()

    # -- errors ----------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret and self._secret != "no-key" else text

    def _probe(self) -> None:
        """One cheap GET /models, so a wrong base_url or key fails before any work (exit 2)."""
        import openai

        try:
            self.client.with_options(max_retries=0, timeout=min(self.settings.timeout_s, 10)).models.list()
        except openai.AuthenticationError:
            raise BackendError(f"the server at {self.server} refused the key in ${self.settings.api_key_env} "
                               "(401); check the key") from None
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            raise BackendError(f"cannot reach the model server at {self.server} ({self._reason(e)}); "
                               "check base_url and that the server is up") from None
        except openai.APIStatusError as e:
            if e.status_code >= 500:
                raise BackendError(f"the model server at {self.server} answered {e.status_code} to GET /models; "
                                   "is it up and serving?") from None
            return  # some servers have no /models; a status code shows the server speaks HTTP at least
        except Exception as e:  # noqa: BLE001 - any parse failure means the server does not speak the API
            raise BackendError(f"the server at {self.server} did not answer like an OpenAI API "
                               f"({type(e).__name__}); is base_url its /v1 endpoint?") from None

    @staticmethod
    def _reason(e: Exception) -> str:
        cause = e.__cause__ or e.__context__
        text = str(cause or e).splitlines()[0] if str(cause or e) else type(e).__name__
        return text[:120]

    def _stop_for(self, e: Exception) -> AdviseError:
        """The one-line error a failed request ends the run with."""
        import openai

        if isinstance(e, openai.APIStatusError):
            retry_after = e.response.headers.get("retry-after")
            try:
                wait = float(retry_after) if retry_after is not None else None
            except ValueError:
                wait = None
            if wait is not None and wait > RETRY_AFTER_LIMIT_S:
                return RunStopped(f"the server at {self.server} asks to wait {wait:.0f} s (Retry-After), longer "
                                  f"than the {RETRY_AFTER_LIMIT_S} s a run waits; answers so far are saved; "
                                  "run again later to go on")
            if isinstance(e, openai.AuthenticationError):
                return BackendError(f"the server at {self.server} refused the key in "
                                    f"${self.settings.api_key_env} (401)")
            message = self._scrub(str(getattr(e, "message", "")) or "")[:160]
            return RunStopped(f"the model server at {self.server} answered {e.status_code} after "
                              f"{self.settings.max_retries} retries: {message}; answers so far are saved; "
                              "run again to go on")
        if isinstance(e, (openai.APIConnectionError, openai.APITimeoutError)):
            return RunStopped(f"the model server at {self.server} stopped answering ({self._scrub(self._reason(e))}) "
                              f"after {self.settings.max_retries} retries; answers so far are saved; "
                              "run again to resume")
        return RunStopped(f"the model server at {self.server} sent an answer that is not OpenAI-style JSON "
                          f"({type(e).__name__}); answers so far are saved")

    # -- pricing and sizes -----------------------------------------------------------------------

    def price_per_second_usd(self) -> float:
        """Per server hour when the task prices this server by time; else 0 (priced per token)."""
        hour = self.price.server_hour_usd if self.price is not None else None
        return hour / 3600.0 if hour is not None else 0.0

    @property
    def price_basis(self) -> str:
        """What this model's per-query price assumes, in words (results.json `price_basis`)."""
        return price_basis(self.price)

    def token_cost_usd(self, predictions: list[Prediction]) -> float | None:
        """USD for these answers' tokens (from each response's `usage`, cached input tokens at the
        price's cached-input rate where it has one); None when the price is unknown."""
        total = 0.0
        for p in predictions:
            usd = token_cost_usd(self.price, p.tokens_in, p.tokens_out, p.tokens_in_cached)
            if usd is None:
                return None
            total += usd
        return total

    def _tokenize_fn(self) -> Any:
        if not self.settings.tokenizer:
            return None
        if self._tokenizer is None:
            scheme, _, name = self.settings.tokenizer.partition(":")
            if scheme != "hf" or not name:
                raise InputError(f"tokenizer '{self.settings.tokenizer}' must be 'hf:<name or folder>'",
                                 field="openai.tokenizer")
            self._tokenizer = local_tokenizer(name, self.cache_dir)
        return self._tokenizer

    def count_tokens(self, request: Request) -> int:
        """Prompt tokens of `request`: with the local tokenizer (chat template applied) when the task
        names one, else characters / 4 plus 4 per message (a stated approximation)."""
        tok = self._tokenize_fn()
        if tok is not None:
            ids = tok.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=True,
                                          return_dict=False)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            return len(ids)
        return sum(len(m["content"]) // 4 + 4 for m in request.messages)

    # -- classification path ---------------------------------------------------------------------

    def classification_path(self, labels: list[str]) -> str:
        """The path `auto` takes for these labels (see advisor/backends/classify_api.py)."""
        if self._path is not None:
            return self._path
        tok = self._tokenize_fn()
        fn = (lambda s: tok.encode(s, add_special_tokens=False)) if tok is not None else None
        return "first_token_logprobs" if distinct_first_tokens(labels, fn) else "json_schema_enum"

    # -- requests --------------------------------------------------------------------------------

    def _complete(self, request: Request, params: GenerationParams, **extra: Any) -> Any:
        self.budget.reserve()
        kwargs: dict[str, Any] = {"model": self.model, "messages": request.messages,
                                  "max_tokens": request.max_new_tokens, "temperature": params.temperature, **extra}
        response = self.client.chat.completions.create(**kwargs)
        if not getattr(response, "choices", None):
            raise ValueError("no choices in the response")
        used = usage_tokens(response.usage) if response.usage else TokenUsage(self.count_tokens(request), 0, 0)
        self.budget.charge(token_cost_usd(self.price, *used))
        return response, used

    def _one(self, request: Request, params: GenerationParams, stopping: threading.Event) -> Generation | None:
        """One request's answer; None when the run is stopping (nothing sent). Sets `stopping` on a stop."""
        import openai

        if stopping.is_set():
            return None
        try:
            if request.options:
                return self._classify(request, params)
            extra = {}
            if request.json_schema:
                extra["response_format"] = {"type": "json_schema",
                                            "json_schema": {"name": "answer", "schema": request.json_schema}}
            response, used = self._complete(request, params, **extra)
            text = (response.choices[0].message.content or "").strip()
            return Generation(text, used.tokens_in, used.tokens_out, 0.0, tokens_in_cached=used.tokens_in_cached)
        except AdviseError:
            stopping.set()  # the other workers send nothing more
            raise
        except (openai.OpenAIError, ValueError, TypeError, AttributeError) as e:
            stopping.set()
            raise self._stop_for(e) from None

    def _classify(self, request: Request, params: GenerationParams) -> Generation:
        import openai

        labels = list(request.options or [])
        path = self.classification_path(labels)
        if path == "first_token_logprobs":
            r = Request(request.example_id, request.messages, max_new_tokens=1)
            response, used = self._complete(r, params, logprobs=True, top_logprobs=TOP_LOGPROBS)
            content = response.choices[0].logprobs.content if response.choices[0].logprobs else None
            top = [(t.token, t.logprob) for t in content[0].top_logprobs] if content else []
            label, scores = rank_top_logprobs(top, labels)
            raw = (response.choices[0].message.content or "").strip()
            return Generation(label if label is not None else raw, used.tokens_in, used.tokens_out, 0.0,
                              option_scores=scores,  # type: ignore[arg-type]  # None: not among the top tokens
                              info={"classification_path": path, "unmappable": label is None},
                              tokens_in_cached=used.tokens_in_cached)
        if path == "json_schema_enum":
            budget = max(len(lab) for lab in labels) + 8  # the quoted label and a little slack, in tokens at most
            r = Request(request.example_id, request.messages, max_new_tokens=budget)
            try:
                response, used = self._complete(r, params, response_format=enum_format(labels))
            except openai.BadRequestError:
                if self.settings.classification != "auto":
                    raise
                self._path = "generate_and_map"  # this server has no JSON-schema output; fall back
                return self._classify(request, params)
            choice = response.choices[0]
            text = (choice.message.content or "").strip()
            label = parse_enum_answer(text, choice.finish_reason, labels)
            return Generation(label if label is not None else text, used.tokens_in, used.tokens_out, 0.0,
                              info={"classification_path": path, "unmappable": label is None},
                              tokens_in_cached=used.tokens_in_cached)
        response, used = self._complete(request, params)
        text = (response.choices[0].message.content or "").strip()
        label = map_to_label(text, labels)
        return Generation(label if label is not None else text, used.tokens_in, used.tokens_out, 0.0,
                          info={"classification_path": "generate_and_map", "unmappable": label is None},
                          tokens_in_cached=used.tokens_in_cached)

    def answers(self, requests: list[Request], params: GenerationParams) -> Iterator[tuple[int, Generation]]:
        """(index into `requests`, answer) as each arrives, at most `max_concurrency` in flight.

        `seconds` of an answer is the wall time since the previous one arrived, so a run's answers
        add up to its wall time (what a server priced per hour costs). On a stop (RunStopped,
        BackendError) nothing new is sent, the requests in flight are still collected and yielded,
        then the error is raised.
        """
        pool = ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="advise-openai")
        stopping = threading.Event()
        futures: dict[Future[Generation | None], int] = {pool.submit(self._one, r, params, stopping): i
                                                         for i, r in enumerate(requests)}
        stop: AdviseError | None = None
        last = time.perf_counter()
        try:
            for future in as_completed(futures):
                try:
                    generation = future.result()
                except CancelledError:
                    continue
                except AdviseError as e:
                    if stop is None:
                        stop = e
                        for f in futures:
                            f.cancel()
                    continue
                if generation is None:  # skipped: the run is stopping
                    continue
                now = time.perf_counter()
                generation.seconds = now - last
                last = now
                yield futures[future], generation
        finally:
            stopping.set()  # also on Ctrl-C: nothing new is sent
            pool.shutdown(wait=False, cancel_futures=True)
        if stop is not None:
            raise stop

    def generate(self, requests: list[Request], params: GenerationParams,
                 on_batch: OnBatch | None = None) -> list[Generation]:
        out: dict[int, Generation] = {}
        for i, g in self.answers(requests, params):
            out[i] = g
            if on_batch is not None:
                on_batch(1)
        return [out[i] for i in range(len(requests))]

    def score_options(self, requests: list[Request], params: GenerationParams,
                      on_batch: OnBatch | None = None) -> list[Generation]:
        return self.generate(requests, params, on_batch)
