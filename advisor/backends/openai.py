"""The `openai:` backend: any OpenAI-compatible chat server (the OpenAI API, vLLM, llama.cpp, Ollama).

    backend = OpenAIBackend(ModelChoice(None, "openai:gpt-4o-mini", OpenAISettings()), budget=RunBudget())
    for index, generation in backend.answers(requests, GenerationParams()):
        ...  # in arrival order, so the runner stores each answer the moment it exists

Retries are this module's own; the openai client's are off (max_retries=0). The client retries
inside `create()`, where nothing can stop it on Ctrl-C, keep it to a total time per request, or
tell the other requests of the run to slow down when the server says 429; those three are what a
run against a flaky or rate-limited server needs. So each request is retried here on 408, 409,
429, 5xx, a dropped connection or a timeout (or as the server's `x-should-retry` says), after a
jittered exponential wait (0.5 s doubling up to 8 s, less up to a quarter: the client's own
schedule) that is never shorter than the server's Retry-After, for at most `retry_budget_s`
seconds from its first failure (its waits and later tries; not time spent waiting for room in the
in-flight window), and `max_retries` retries where set. The requests in flight adapt
(AIMD): a 429 halves how many may be in flight, each answer allows one more, never fewer than 1 nor
more than `max_concurrency`. A request still failing when its budget is spent, a Retry-After longer
than what is left of it, or a run's spent `budget:` ends the run cleanly (RunStopped, exit 1, every
answer so far kept). Ctrl-C stops sending at once and hangs up on the requests in flight
(advisor/interrupt.py). Each answer carries the time its answered try took (`latency_s`), the
run's serving latency. The API key is read from the environment variable the task names and is
never written anywhere: not in the identity (part of every cache key), not in errors, not in
results.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from advisor.backends.classify_api import (
    TOP_LOGPROBS,
    LabelTokens,
    Tokenize,
    enum_budget,
    enum_format,
    first_token_choice,
    first_tokens,
    map_to_label,
    parse_enum_answer,
    read_first_token,
)
from advisor.errors import AdviseError, BackendError, InputError
from advisor.interrupt import deferred, interrupted
from advisor.modelspec import (
    ModelChoice,
    OpenAISettings,
    Price,
    resolve_models,
    setting_field,
    settings_for_embeddings,
)
from advisor.pricing import CONTEXT_WINDOWS, price_basis, token_cost_usd
from advisor.ranking import NEEDS_REFERENCE
from advisor.types import OPTION_RANKINGS, Backend, Generation, GenerationParams, OnBatch, Prediction, Request

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BACKOFF_FIRST_S = 0.5  # the first wait before a retry; it doubles with each retry ...
BACKOFF_MOST_S = 8.0  # ... up to this (the openai client's own schedule)
RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
TOKENIZE_RETRIES = 3  # quick retries of the server's /tokenize (label tokens, asked once per label set)


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
                                 f"{self.max_requests}); answers so far are saved. The budget is per run: running again "
                                 "spends up to it again on the answers still missing (saved ones are not asked "
                                 "again); raise it to go further in one run")
            if self.max_usd is not None and self.usd >= self.max_usd:
                raise RunStopped(f"budget reached: ${self.usd:.4f} spent (budget.max_usd {self.max_usd}); "
                                 "answers so far are saved. The budget is per run: running again spends up to it "
                                 "again on the answers still missing (saved ones are not asked again); raise it "
                                 "to go further in one run")
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


def retry_after_s(headers: Any) -> float | None:
    """Seconds a response asks the client to wait: `retry-after-ms`, else `retry-after` in seconds
    or as an HTTP date (0 when that date has passed); None when it asks nothing or cannot be read.
    An endless or unreadable number of seconds is math.inf (never retried)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            if name == "retry-after-ms":
                continue
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            seconds = (when - datetime.now(timezone.utc)).total_seconds()
        return max(seconds, 0.0) if math.isfinite(seconds) else math.inf
    return None


def backoff_s(retry: int) -> float:
    """The wait before retry number `retry` (0 for the first): 0.5 s doubling up to 8 s, less a
    random part of up to a quarter, so requests that failed together do not all come back together."""
    return min(BACKOFF_FIRST_S * 2.0 ** min(retry, 30), BACKOFF_MOST_S) * (1 - 0.25 * random.random())


def _refused(e: BaseException) -> bool:
    """Whether a connection error was a refused connection (nothing listens at the address) or a host
    name that does not resolve (socket.gaierror): at start, both fail at once rather than be retried."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (ConnectionRefusedError, socket.gaierror)):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def transient(e: Exception, refused: bool = True) -> tuple[bool, bool]:
    """(worth retrying, throttled) for a failed request: retried on 408, 409, 429, 5xx (unless the
    server's `x-should-retry` header says otherwise), a dropped or timed-out connection, and a
    refused one when `refused`; throttled on a 429."""
    import openai

    if isinstance(e, openai.APIStatusError):
        flag = (e.response.headers.get("x-should-retry") or "").lower()
        retry = flag == "true" if flag in {"true", "false"} else e.status_code in RETRY_STATUSES or e.status_code >= 500
        return retry, e.status_code == 429
    if isinstance(e, openai.APIConnectionError):  # timeouts too
        return refused or not _refused(e), False
    return False, False


class _Skipped(Exception):
    """The run is stopping: the request was not sent (or its answer is not wanted)."""


class _GaveUp(Exception):
    """A request that failed and is not retried again: its last error, the retries made, the seconds
    they took (waits and tries after the first failure), and why (`"retry_after"`: the server asked to wait longer than the
    `left` seconds of the budget; `"budget"`: the next wait would pass it; `"max_retries"`)."""

    def __init__(self, error: Exception, retries: int, spent: float, why: str, asked: float | None,
                 left: float) -> None:
        super().__init__(str(error))
        self.error, self.retries, self.spent, self.why, self.asked, self.left = error, retries, spent, why, asked, left


class Window:
    """How many requests may be in flight at once, adapted to the server (AIMD): a 429 halves it,
    each answer adds one back, never fewer than 1 nor more than `most`. A 429 to a request sent
    before the last halving does not halve again (one cut per burst, as TCP cuts once per window)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.limit = most
        self.lowest = most  # the fewest it came down to (for a note on a run that was throttled)
        self.busy = 0
        self.epoch = 0  # how many times it was halved
        self._cond = threading.Condition()

    def enter(self, stopped: Callable[[], bool]) -> int | None:
        """Wait for room; the epoch the request is sent in, or None when `stopped()` turns true first."""
        with self._cond:
            while self.busy >= self.limit:
                if stopped():
                    return None
                self._cond.wait(0.25)
            self.busy += 1
            return self.epoch

    def leave(self, epoch: int, answered: bool, throttled: bool = False) -> None:
        with self._cond:
            self.busy -= 1
            if throttled and epoch == self.epoch:
                self.limit = max(1, self.limit // 2)
                self.lowest = min(self.lowest, self.limit)
                self.epoch += 1
            elif answered and self.limit < self.most:
                self.limit += 1
            self._cond.notify_all()


class _Call:
    """What the workers of one `answers()` call share: the client they send with, and whether the
    call is stopping (an error, Ctrl-C: `advisor.interrupt`)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.stopping = threading.Event()

    def stopped(self) -> bool:
        return self.stopping.is_set() or interrupted()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less when the call stops meanwhile."""
        end = time.monotonic() + seconds
        while not self.stopped() and (left := end - time.monotonic()) > 0:
            self.stopping.wait(min(left, 0.25))


_DONE = object()  # a worker has nothing more to send
_INTERRUPTED = object()  # the first Ctrl-C (advisor.interrupt.deferred)


def _top_tokens(response: Any) -> list[tuple[str, int | None, float]] | None:
    """(token, id when the server gives one, log-probability) of the first position's top tokens;
    None when the response carries no log-probabilities."""
    lp = response.choices[0].logprobs
    content = getattr(lp, "content", None) if lp is not None else None
    if not content:
        return None
    out = []
    for t in content[0].top_logprobs or []:
        tid = getattr(t, "id", None)
        if tid is None and getattr(t, "model_extra", None):
            tid = t.model_extra.get("id")
        out.append((t.token, int(tid) if isinstance(tid, int) else None, float(t.logprob)))
    return out or None


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
        self._lock = threading.Lock()
        self._label_tokens: dict[tuple[str, ...], LabelTokens | str] = {}  # by label set (str: why none)
        self._enum_budgets: dict[tuple[str, ...], int] = {}  # by label set: tokens a JSON-enum answer may take
        self._tokenize_source: tuple[Tokenize | None, str] | None = None  # the tokenizer found, and where
        self._unsupported: set[str] = set()  # classification paths this server turned out not to support
        self._cf_cache: dict[str, tuple[list[float | None], float | None]] = {}  # content-free references
        self._cf_locks: dict[str, threading.Lock] = {}
        self.window = Window(s.max_concurrency)  # shared by every answers() call: the server's limits persist
        self.client = self._new_client()
        if probe:
            self._probe()

    def _new_client(self) -> Any:
        from openai import OpenAI

        # max_retries=0: retries are this module's (see the module docstring for why).
        return OpenAI(api_key=self._secret, base_url=self.base_url, max_retries=0, timeout=self.settings.timeout_s)

    # -- errors ----------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret and self._secret != "no-key" else text

    def _probe(self) -> None:
        """One cheap GET /models, so a wrong base_url or key fails before any work (exit 2). Retried
        like any request, except that a refused connection (nothing listens at base_url) and a
        refused key (401) fail at once."""
        import openai

        client = self.client.with_options(timeout=min(self.settings.timeout_s, 10))
        try:
            try:
                self._retrying(client.models.list, lambda: False, time.sleep, at_start=True)
            except _GaveUp as gave_up:
                if isinstance(gave_up.error, openai.APIStatusError) and gave_up.error.status_code < 500:
                    return  # rate-limited (429) even here: the server speaks HTTP; the run will wait on it
                raise gave_up.error from None
        except openai.AuthenticationError:
            raise BackendError(f"the server at {self.server} refused the key in ${self.settings.api_key_env} "
                               "(401); check the key") from None
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            raise BackendError(f"cannot reach the model server at {self.server} ({self._scrub(self._reason(e))}); "
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

    def _retrying(self, send: Callable[[], Any], stopped: Callable[[], bool], sleep: Callable[[float], None],
                  at_start: bool = False) -> tuple[Any, float]:
        """`send()`'s result and the seconds its answered try took, retried as the module docstring
        says, each try inside the in-flight window. `stopped()` is read before each try and after each
        failure; `sleep(seconds)` waits (and may return early when stopping).

        Raises _Skipped when the call stops first, _GaveUp when a failure is not retried again, and
        the error itself when it is not worth retrying (400, 401, an answer that is not JSON). At
        start (`at_start`), a refused connection is not retried: a wrong base_url is likelier than
        a restart.
        """
        s = self.settings
        retries = 0
        spent = 0.0  # on retries: the waits and the tries after the first failure (not waiting for room)
        while True:
            if stopped():
                raise _Skipped
            epoch = self.window.enter(stopped)
            if epoch is None:
                raise _Skipped
            start = time.perf_counter()
            try:
                result = send()
            except Exception as e:
                took = time.perf_counter() - start
                retry, throttled = transient(e, refused=not at_start)
                self.window.leave(epoch, answered=False, throttled=throttled)
                if stopped():
                    raise _Skipped from None
                if not retry:
                    raise
                spent += took if retries else 0.0
                left = s.retry_budget_s - spent
                headers = getattr(getattr(e, "response", None), "headers", None)
                asked = retry_after_s(headers) if headers is not None else None
                wait = max(asked or 0.0, backoff_s(retries))
                if asked is not None and asked > left:
                    raise _GaveUp(e, retries, spent, "retry_after", asked, left) from None
                if s.max_retries is not None and retries >= s.max_retries:
                    raise _GaveUp(e, retries, spent, "max_retries", asked, left) from None
                if wait > left:
                    raise _GaveUp(e, retries, spent, "budget", asked, left) from None
                retries += 1
                sleep(wait)
                spent += wait
                continue
            self.window.leave(epoch, answered=True)
            return result, time.perf_counter() - start

    def _gave_up(self, g: _GaveUp) -> AdviseError:
        """The one-line error a request that stayed failed ends the run with."""
        import openai

        s = self.settings
        if g.why == "retry_after":
            room = (f"the {s.retry_budget_s:g} s" if g.retries == 0
                    else f"the {max(g.left, 0):.0f} s left of the {s.retry_budget_s:g} s")
            return RunStopped(f"the server at {self.server} asks to wait {g.asked:.0f} s (Retry-After), longer than "
                              f"{room} a request may spend on retries (openai.retry_budget_s); answers so far are "
                              "saved; run again later to go on")
        tries = f"{g.retries} {'retry' if g.retries == 1 else 'retries'} in {g.spent:.0f} s"
        limit = (f"openai.max_retries {s.max_retries}" if g.why == "max_retries"
                 else f"openai.retry_budget_s {s.retry_budget_s:g}")
        e = g.error
        if isinstance(e, openai.APIStatusError):
            message = self._scrub(str(getattr(e, "message", "")) or "")[:160]
            return RunStopped(f"the model server at {self.server} answered {e.status_code} after {tries} "
                              f"({limit}): {message}; answers so far are saved; run again to go on")
        return RunStopped(f"the model server at {self.server} stopped answering ({self._scrub(self._reason(e))}) "
                          f"after {tries} ({limit}); answers so far are saved; run again to resume")

    def _stop_for(self, e: Exception) -> AdviseError:
        """The one-line error a request that failed for good (not worth retrying) ends the run with."""
        import openai

        if isinstance(e, openai.AuthenticationError):
            return BackendError(f"the server at {self.server} refused the key in ${self.settings.api_key_env} (401)")
        if isinstance(e, openai.APIStatusError):
            message = self._scrub(str(getattr(e, "message", "")) or "")[:160]
            return RunStopped(f"the model server at {self.server} answered {e.status_code} (not retried): "
                              f"{message}; answers so far are saved")
        if isinstance(e, (openai.APIConnectionError, openai.APITimeoutError)):
            return RunStopped(f"the model server at {self.server} stopped answering ({self._scrub(self._reason(e))}); "
                              "answers so far are saved; run again to resume")
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

    def _server_tokenize(self) -> Tokenize | None:
        """The server's own tokenizer (`POST /tokenize` beside the API root: llama.cpp's and vLLM's),
        as `tokenize(text) -> [(id, text)]`, or None when the server has none. llama.cpp returns
        pieces with `with_pieces`; for bare ids (vLLM) each piece comes from `/detokenize`."""
        import httpx

        root = self.base_url.rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret != "no-key" else {}

        def post(path: str, body: dict[str, Any]) -> Any:
            # A few quick retries of a 429, a 5xx or a dropped connection (the module's backoff); the
            # endpoint answered before, so a failure that outlasts them is the server's, said in one line.
            for retry in range(TOKENIZE_RETRIES + 1):
                try:
                    r = httpx.post(root + path, json=body, headers=headers, timeout=min(self.settings.timeout_s, 10))
                    if r.status_code != 429 and r.status_code < 500:
                        r.raise_for_status()
                        return r.json()
                    failure: Exception = httpx.HTTPStatusError(f"{r.status_code}", request=r.request, response=r)
                except httpx.TransportError as e:
                    failure = e
                if retry < TOKENIZE_RETRIES:
                    time.sleep(backoff_s(retry))
            raise failure

        def tokenize(text: str) -> list[tuple[int | None, str]]:
            got = post("/tokenize", {"content": text, "prompt": text, "model": self.model, "add_special": False,
                                     "add_special_tokens": False, "with_pieces": True})
            out: list[tuple[int | None, str]] = []
            for t in got["tokens"]:
                if isinstance(t, dict):
                    out.append((int(t["id"]), str(t["piece"])))
                else:
                    back = post("/detokenize", {"tokens": [int(t)], "model": self.model})
                    out.append((int(t), str(back.get("content", back.get("prompt", "")))))
            return out

        try:
            tokenize("a")
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return None

        def checked(text: str) -> list[tuple[int | None, str]]:
            try:
                return tokenize(text)
            except (httpx.HTTPError, KeyError, TypeError, ValueError) as e:
                raise BackendError(f"{self.server}: its /tokenize answered once, then failed on a label "
                                   f"({self._scrub(str(e)) or type(e).__name__})") from None

        return checked

    def label_tokens(self, labels: list[str]) -> LabelTokens | None:
        """Which first tokens stand for which label (advisor/backends/classify_api.py LabelTokens),
        by the server's `/tokenize`, else the local tokenizer in `openai.tokenizer`, else the
        approximate string rule; None when two labels begin with the same token. Asked once per
        label set."""
        found = self._read_labels(labels)
        return found if isinstance(found, LabelTokens) else None

    def _read_labels(self, labels: list[str]) -> LabelTokens | str:
        """`classify_api.first_tokens` of `labels` (their reading, or why there is none), tokenized once
        per label set for the backend's lifetime, with the label tokens' JSON-enum budget beside it."""
        key = tuple(labels)
        with self._lock:
            if key in self._label_tokens:
                return self._label_tokens[key]
        if self._tokenize_source is None:
            fn = self._server_tokenize()
            if fn is not None:
                self._tokenize_source = (fn, f"the server's /tokenize ({self.server})")
            elif self.settings.tokenizer:
                tok = self._tokenize_fn()
                self._tokenize_source = (lambda s: [(i, tok.decode([i])) for i in tok.encode(s, add_special_tokens=False)],
                                         f"tokenizer {self.settings.tokenizer}")
            else:
                self._tokenize_source = (None, "")
        fn, source = self._tokenize_source
        found = first_tokens(key, fn, source)
        exact = fn if isinstance(found, LabelTokens) and found.exact else None
        budget = enum_budget(labels, (lambda t: len(exact(t))) if exact else None)
        with self._lock:
            self._label_tokens[key] = found
            self._enum_budgets[key] = budget
        return found

    def classification_paths(self, labels: list[str]) -> tuple[str, ...]:
        """The paths this server can take for `labels`, the default first (see Backend): the one
        `openai.classification` forces, else every path of PATHS that applies: first-token
        log-probabilities when every label begins with a token of its own and the server returns
        log-probabilities, a JSON-schema enum unless the server refused one."""
        if self.settings.classification != "auto":
            return (self.settings.classification,)
        paths = []
        if "first_token_logprobs" not in self._unsupported and self.label_tokens(labels) is not None:
            paths.append("first_token_logprobs")
        if "json_schema_enum" not in self._unsupported:
            paths.append("json_schema_enum")
        return (*paths, "generate_and_map")

    def classification_notes(self, labels: list[str]) -> list[str]:
        """Why a path of PATHS is not among `classification_paths(labels)`, one line each."""
        if self.settings.classification != "auto":
            return []
        notes = []
        if "first_token_logprobs" in self._unsupported:
            notes.append(f"first_token_logprobs: {self.server} returns no log-probabilities")
        elif isinstance(clash := self._read_labels(labels), str):
            notes.append(f"first_token_logprobs: {clash}")
        if "json_schema_enum" in self._unsupported:
            notes.append(f"json_schema_enum: {self.server} refused a JSON-schema response_format")
        return notes

    def classification_path(self, labels: list[str]) -> str:
        """The path a request takes when the run names none: the default of `classification_paths`."""
        return self.classification_paths(labels)[0]

    # -- requests --------------------------------------------------------------------------------

    def _complete(self, request: Request, params: GenerationParams, call: _Call, **extra: Any) -> Any:
        """(response, tokens, seconds the answered try took) of one chat completion, retried."""
        self.budget.reserve()
        kwargs: dict[str, Any] = {"model": self.model, "messages": request.messages,
                                  "max_tokens": request.max_new_tokens, "temperature": params.temperature, **extra}
        response, seconds = self._retrying(lambda: call.client.chat.completions.create(**kwargs), call.stopped,
                                           call.sleep)
        if not getattr(response, "choices", None):
            raise ValueError("no choices in the response")
        used = usage_tokens(response.usage) if response.usage else TokenUsage(self.count_tokens(request), 0, 0)
        self.budget.charge(token_cost_usd(self.price, *used))
        return response, used, seconds

    def _one(self, request: Request, params: GenerationParams, call: _Call) -> Generation | None:
        """One request's answer; None when the run is stopping (nothing sent, or the answer is not
        wanted). Stops the call on an error, so the other workers send nothing more."""
        import openai

        if call.stopped():
            return None
        try:
            if request.options:
                return self._classify(request, params, call)
            extra = {}
            if request.json_schema:
                extra["response_format"] = {"type": "json_schema",
                                            "json_schema": {"name": "answer", "schema": request.json_schema}}
            response, used, seconds = self._complete(request, params, call, **extra)
            text = (response.choices[0].message.content or "").strip()
            return Generation(text, used.tokens_in, used.tokens_out, 0.0, tokens_in_cached=used.tokens_in_cached,
                              latency_s=seconds)
        except _Skipped:
            return None
        except _GaveUp as g:
            call.stopping.set()
            raise self._gave_up(g) from None
        except AdviseError:
            call.stopping.set()
            raise
        except (openai.OpenAIError, ValueError, TypeError, AttributeError) as e:
            call.stopping.set()
            raise self._stop_for(e) from None

    def _classify(self, request: Request, params: GenerationParams, call: _Call) -> Generation:
        """One label by `params.classification_path` (default: `classification_path`). The answer's
        `info` records the path, what the model itself answered (`answer`), whether that was a label
        (`off_label`) and, when no label can be read from it, `unmappable` (final: scored wrong,
        never re-mapped). A path the server turns out not to support (no log-probabilities, a
        400 for `response_format`) is dropped for the run and the next one answers, unless forced."""
        import openai

        labels = list(request.options or [])
        path = params.classification_path or self.classification_path(labels)
        forced = self.settings.classification != "auto"
        if path == "first_token_logprobs":
            lt = self.label_tokens(labels)
            if lt is None:
                if forced:
                    raise InputError("first_token_logprobs needs every label to begin with a token of its own: "
                                     + (self.classification_notes(labels) or ["these labels share one"])[0],
                                     field="openai.classification")
                return self._classify(request, replace(params, classification_path="json_schema_enum"), call)
            method = params.option_ranking or "calibrated"
            # The content-free reference first: a budget that stops there has paid for no answer it cannot
            # keep (asked after the item, a stop at the reference lost the item's paid answer).
            ref, floor = (self._reference(request, lt, params, call) if method in NEEDS_REFERENCE or params.rank_all
                          else (None, None))
            r = Request(request.example_id, request.messages, max_new_tokens=1)
            response, used, seconds = self._complete(r, params, call, logprobs=True, top_logprobs=TOP_LOGPROBS)
            top = _top_tokens(response)
            if top is None:  # the server answers without log-probabilities
                if forced:
                    raise BackendError(f"{self.server} returned no log-probabilities: openai.classification: "
                                       "first_token_logprobs cannot be used with it")
                self._unsupported.add("first_token_logprobs")
                return self._classify(request, replace(params, classification_path=None), call)
            read = read_first_token(top, lt)
            info: dict[str, Any] = {"classification_path": path, "answer": read.answer, "off_label": read.off_label,
                                    "label_mass": round(read.label_mass, 6),
                                    "labels_unseen": sum(1 for x in read.logps if x is None), "label_tokens": lt.source,
                                    "label_tokens_exact": lt.exact, "ranking_scope": "first token"}
            if all(x is None for x in read.logps):  # no label token among the top ones: no label at all
                info.update(unmappable=True, ranked_by=method,
                            ranking_alternatives={m: read.answer for m in OPTION_RANKINGS if m != method})
                return Generation(read.answer, used.tokens_in, used.tokens_out, 0.0, info=info,
                                  tokens_in_cached=used.tokens_in_cached, latency_s=seconds)
            best, scores, picks = first_token_choice(method, read.logps, ref, floor, OPTION_RANKINGS)
            info.update(unmappable=False, ranked_by=method,
                        ranking_alternatives={m: labels[j] for m, j in picks.items()})
            return Generation(labels[best], used.tokens_in, used.tokens_out, 0.0,
                              option_scores=[s if math.isfinite(s) else None for s in scores],  # type: ignore[misc]
                              info=info, tokens_in_cached=used.tokens_in_cached, latency_s=seconds)
        if path == "json_schema_enum":
            self._read_labels(labels)
            r = Request(request.example_id, request.messages, max_new_tokens=self._enum_budgets[tuple(labels)])
            try:
                response, used, seconds = self._complete(r, params, call, response_format=enum_format(labels))
            except openai.BadRequestError:
                if forced:
                    raise
                self._unsupported.add("json_schema_enum")  # this server has no JSON-schema output
                return self._classify(request, replace(params, classification_path="generate_and_map"), call)
            choice = response.choices[0]
            text = (choice.message.content or "").strip()
            label = parse_enum_answer(text, choice.finish_reason, labels)
        else:
            path = "generate_and_map"
            response, used, seconds = self._complete(request, params, call)
            text = (response.choices[0].message.content or "").strip()
            label = map_to_label(text, labels)
        info = {"classification_path": path, "answer": text, "off_label": label is None, "unmappable": label is None}
        return Generation(label if label is not None else text, used.tokens_in, used.tokens_out, 0.0, info=info,
                          tokens_in_cached=used.tokens_in_cached, latency_s=seconds)

    def _reference(self, request: Request, lt: LabelTokens, params: GenerationParams,
                   call: _Call) -> tuple[list[float | None], float | None]:
        """The labels' first-token log-probabilities after the request's content-free prompt
        (`Request.content_free`, else the last user turn replaced by "N/A", as the local backend
        does) and the smallest top log-probability there; one request per distinct prompt form,
        kept for the backend's lifetime (contextual calibration, Zhao et al. 2021)."""
        cf = request.content_free or [*request.messages[:-1], {"role": "user", "content": "N/A"}]
        key = json.dumps([cf, lt.labels], sort_keys=True)
        with self._lock:
            gate = self._cf_locks.setdefault(key, threading.Lock())
        with gate:  # one request per prompt form, even with many workers asking at once
            if key not in self._cf_cache:
                r = Request(request.example_id + ":content-free", cf, max_new_tokens=1)
                response, _, _ = self._complete(r, params, call, logprobs=True, top_logprobs=TOP_LOGPROBS)
                top = _top_tokens(response) or []
                read = read_first_token(top, lt)
                self._cf_cache[key] = (read.logps, min((t[2] for t in top), default=None))
            return self._cf_cache[key]

    def answers(self, requests: list[Request], params: GenerationParams) -> Iterator[tuple[int, Generation]]:
        """(index into `requests`, answer) as each arrives, at most `max_concurrency` in flight
        (fewer while the server answers 429: `Window`).

        `seconds` of an answer is the wall time since the previous one arrived, so a run's answers
        add up to its wall time (what a server priced per hour costs); `latency_s` is the time its
        answered try took. On a stop (RunStopped, BackendError) nothing new is sent, the requests in
        flight are still collected and yielded, then the error is raised. On Ctrl-C (KeyboardInterrupt,
        or the first Ctrl-C under `advisor.interrupt.handled`) nothing new is sent, the connections
        of the requests in flight are closed without waiting for them, the answers that had already
        arrived are yielded, then KeyboardInterrupt is raised.

        The workers are daemon threads of this call's own (not a ThreadPoolExecutor, whose threads
        the interpreter joins at exit: a Ctrl-C would wait for every request in flight).
        """
        call = _Call(self.client)
        results: queue.SimpleQueue[Any] = queue.SimpleQueue()  # SimpleQueue: put() is safe in a signal handler
        order = iter(range(len(requests)))
        lock = threading.Lock()

        def work() -> None:
            while not call.stopped():
                with lock:
                    i = next(order, None)
                if i is None:
                    break
                try:
                    results.put((i, self._one(requests[i], params, call), None))
                except BaseException as e:  # noqa: BLE001 - the main thread raises it
                    results.put((i, None, e))
            results.put(_DONE)

        live = min(self.settings.max_concurrency, len(requests))
        for n in range(live):
            threading.Thread(target=work, name=f"advise-openai-{n}", daemon=True).start()
        stop: AdviseError | None = None
        last = time.perf_counter()
        try:
            with deferred(lambda: results.put(_INTERRUPTED)):
                while live:
                    item = results.get()
                    if item is _DONE:
                        live -= 1
                        continue
                    if item is _INTERRUPTED:
                        raise KeyboardInterrupt
                    i, generation, error = item
                    if error is not None:
                        call.stopping.set()  # nothing new is sent; the requests in flight are still collected
                        if not isinstance(error, AdviseError):
                            raise error
                        stop = stop or error
                        continue
                    if generation is None:  # skipped: the run is stopping
                        continue
                    now = time.perf_counter()
                    generation.seconds = now - last
                    last = now
                    yield i, generation
        except KeyboardInterrupt:
            call.stopping.set()
            self._hang_up(call)
            while True:  # answers that arrived meanwhile are paid for: hand them over too
                try:
                    item = results.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, tuple) and item[1] is not None:
                    item[1].seconds = time.perf_counter() - last
                    last = time.perf_counter()
                    yield item[0], item[1]
            raise
        finally:
            call.stopping.set()  # also when the caller stops asking: nothing new is sent
        if stop is not None:
            raise stop

    def _hang_up(self, call: _Call) -> None:
        """Close the connections of `call`'s requests in flight (the server may stop computing them)
        and give this backend a fresh client for any later call."""
        try:
            call.client.close()
        except Exception:  # noqa: BLE001, S110 - closing is a courtesy to the server; never fail a stop on it
            pass
        self.client = self._new_client()

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
