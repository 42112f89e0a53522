"""`advise run --dry-run`: tokens and dollars per (lever, model) before anything is sent.

Nothing is sent and nothing is trained: requests are rendered as the prompt levers would render
them; retrieval levers add their largest context (`max_context_chars`), a stated upper estimate.
Tokens are counted with the model's own tokenizer where it is local (an `hf:` model, or an
`openai:` model with `tokenizer: hf:...`), else as characters / 4 (tiktoken needs to download its
encodings at run time, which this tool never does). Output tokens are the answer budget
(`max_new_tokens`, an upper bound) or, for labels chosen by first-token log-probabilities, one; a LoRA
row's eval prompts are counted in the prompt form it will serve (`prompt_form`; under `auto`
template_only, said in the row's note: as_written may also be trained); an
`openai:` classification row that chooses its path on the dev split counts that too (`_label_requests`).

With a `rubric:`, every row's eval outputs are graded by the judge model (advisor.judge.grading), and
each row carries the judge's own figures apart from the lever's (`RowEstimate.judge`, `_judge`): one
request per eval item, per criteria group (each criterion in `per_criterion` mode, all of them in
`joint`) and per sample (`rubric.samples`); tokens in are the judge prompt with the item's input and an
output of the lever's whole answer budget (`max_new_tokens`), an estimate since the outputs are not
known yet; tokens out are the judge's budget (`rubric.max_new_tokens`, an upper bound); dollars are at
the judge's own price (`resolve_price`). An upper estimate of the requests: a run sends none for an output
the judge graded before (cached in the run folder) and one per distinct output of a row, not per item.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from advisor.errors import InputError
from advisor.modelspec import ModelChoice
from advisor.plan import plan_run
from advisor.pricing import resolve_price, token_cost_usd
from advisor.registry import fine_tunes
from advisor.spec import Task
from advisor.types import LeverContext, Request


@dataclass
class JudgeEstimate:
    """The rubric judge's grading of one row's eval outputs (module docstring), apart from the lever's."""

    model: str  # the judge's spec, e.g. openai:gpt-4o-mini
    requests: int  # eval items x criteria groups x samples
    tokens_in: int  # estimated: the judge prompt with each item's input and a max_new_tokens output
    tokens_out: int  # at most: requests x rubric.max_new_tokens
    usd: float | None  # at the judge's price; None: per server hour, or price unknown
    priced: str
    token_method: str


@dataclass
class RowEstimate:
    row: str
    model: str
    requests: int
    tokens_in: int
    tokens_out: int
    usd: float | None  # None: priced by server hour or by compute time, or price unknown
    priced: str  # how the dollars were (or could not be) worked out
    token_method: str
    judge: JudgeEstimate | None = None  # with a `rubric:`: the judge's grading of this row's outputs


def _counter(task: Task, choice: ModelChoice, cache_dir: Any) -> tuple[Any, str, Any]:
    """(count_tokens(request) -> int, method, backend or None) without contacting any server."""
    if choice.scheme == "openai":
        from advisor.backends.openai import OpenAIBackend

        price, source = resolve_price(choice, task.prices)
        backend = OpenAIBackend(choice, price=price, price_source=source, probe=False, cache_dir=cache_dir)
        return backend.count_tokens, backend.token_method, backend
    from advisor.backends.openai import local_tokenizer

    tok = local_tokenizer(choice.name, cache_dir)

    def count(r: Request) -> int:
        ids = tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        return len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "input_ids") else ids)

    return count, f"tokenizer hf:{choice.name}", None


def estimate(task: Task, lever_names: list[str] | None = None, limit: int | None = None,
             latency_probe: int = 12, cache_dir: Any = None) -> list[RowEstimate]:
    """One estimate per (lever, model) row. Raises InputError for a bad lever or model entry."""
    from advisor.backends.hf import default_cache_dir

    cache_dir = cache_dir or default_cache_dir()
    # Planned as the run plans (the `--limit` rewrite, the rows), without the audit: nothing is run.
    plan = plan_run(task, lever_names, limit, audit=False)
    task, data = plan.task, plan.data
    out: list[RowEstimate] = []
    counters: dict[ModelChoice, tuple[Any, str, Any]] = {}
    judge = _judge(task, data, cache_dir) if task.rubric is not None else None  # the same for every row
    for row in plan.rows:
        lever = plan.levers[row.lever]
        options = plan.options[lever.name]
        if row.model not in counters:
            counters[row.model] = _counter(task, row.model, cache_dir)
        count, method, backend = counters[row.model]
        requests = _requests(task, data, lever, options, cache_dir)
        form_note = ""
        if hasattr(lever, "dry_run_form"):  # a LoRA lever: its prompt form (baselines.lora)
            requests, form_note = lever.dry_run_form(options, len(data.train), requests)
        extra_chars = lever.retrieved_chars(options)  # declared by the lever (rag, lora-rag)
        # A local model's latency probe repeats the first requests; an API model's latency is
        # measured on the run's own requests (advisor.execute.Predictor.latencies): none more.
        n = len(requests) + (min(latency_probe, len(requests)) if backend is None else 0)
        t_in = sum(count(r) + extra_chars // 4 for r in requests)
        per_out = task.prompt.max_new_tokens
        scale = n / max(len(requests), 1)  # a local model's latency probe repeats the first requests
        t_in, t_out = round(t_in * scale), round(per_out * len(requests) * scale)
        if task.kind == "classification" and backend is not None and task.labels:
            more, more_in, t_out = _label_requests(task, data, backend.settings.classification, requests,
                                                   round(t_in / max(len(requests), 1)))
            n, t_in = n + more, t_in + more_in
        if backend is None:
            usd, priced = None, "local model: priced at run time (tokens × this machine's calibrated compute rate)"
        else:
            usd, priced = _priced(backend, t_in, t_out, "`prices:`")
        if fine_tunes(lever):
            priced += "; training runs locally, not estimated here"
        if form_note:
            priced += "; " + form_note
        out.append(RowEstimate(row.name, row.model.label, n, t_in, t_out, usd, priced, method, judge))
    return out


def _priced(backend: Any, t_in: int, t_out: int, where: str) -> tuple[float | None, str]:
    """(USD or None, how) of an API model's tokens: at its token price; None for a price per server
    hour (priced by wall time at run time) or an unknown one (`where` says where to add it)."""
    if backend.price is None:
        return None, f"unknown price (add it under {where})"
    if backend.price.server_hour_usd is not None:
        return None, f"per server hour (${backend.price.server_hour_usd}/h): priced by wall time at run time"
    return token_cost_usd(backend.price, t_in, t_out), backend.price_source


def _judge(task: Task, data: Any, cache_dir: Any) -> JudgeEstimate:
    """What the rubric's judge costs to grade one row's eval outputs (module docstring), counted with the
    judge's own tokenizer setting and priced at its price, without contacting its server. Raises
    InputError naming task.yaml's `rubric.judge` line for the judge's own settings (e.g. a key variable
    it names that is unset), as the run would."""
    from advisor.judge.grading import criteria_groups
    from advisor.judge.rubric import judge_messages

    rubric = task.rubric
    assert rubric is not None
    choice = ModelChoice(None, rubric.judge_spec, rubric.judge_settings(task.openai))
    try:
        count, method, backend = _counter(task, choice, cache_dir)
    except InputError as e:  # about the judge's settings: named at the rubric's judge line
        if e.file is None:
            e.field = "rubric.judge"
            task.place(e)
        raise
    groups = criteria_groups(rubric)  # one request per group, per output and per sample (Grader.grade)
    answer = task.prompt.max_new_tokens  # the graded output: at most the lever's answer budget
    requests = t_in = 0
    for ex in data.eval:
        for group in groups:
            t_in += (count(Request("judge", judge_messages(rubric, group, ex.input, ""))) + answer) * rubric.samples
            requests += rubric.samples
    t_out = requests * rubric.max_new_tokens
    usd, priced = _priced(backend, t_in, t_out, "`prices:` or the judge's settings")
    return JudgeEstimate(choice.spec, requests, t_in, t_out, usd, priced,
                         f"{method}; each output taken as {answer} tokens (max_new_tokens), an estimate")


def _label_requests(task: Task, data: Any, setting: str, requests: list[Request],
                    mean_in: int) -> tuple[int, int, int]:
    """(requests added, their tokens in, output tokens of all the row's requests) of an API
    classification row, without asking the server anything: a forced path's own output budget
    (1 token for first-token log-probabilities, the JSON-enum budget, `max_new_tokens`); under
    `auto` the largest of them (which path the dev split chooses is not known before), plus the
    dev split asked on the two other paths and one content-free request (calibration), an upper
    estimate (advisor.measure.choose_path)."""
    from advisor.backends.classify_api import enum_budget
    from advisor.prompting import dev_split

    labels = list(task.labels or [])
    budgets = {"first_token_logprobs": 1, "json_schema_enum": enum_budget(labels, None),
               "generate_and_map": task.prompt.max_new_tokens}
    if setting != "auto":
        return 0, 0, budgets[setting] * len(requests)
    dev = len(dev_split(task, data.train)[0]) * 2 + 1
    return dev, dev * mean_in, max(budgets.values()) * (len(requests) + dev)


def _requests(task: Task, data: Any, lever: Any, options: Any, cache_dir: Any) -> list[Request]:
    """The requests a prompt lever would send: its eval requests (the zero-shot ones for any lever
    whose prepare would compute something: retrieval, training) and, when the task has prompt
    variants and the lever is a prompt lever, every wording's requests on the dev split (the
    choice between wordings is made there), rendered as the lever renders them (a few-shot lever's
    with its demonstrations). The eval requests use the default wording: which wording wins is not
    known before the dev answers are in."""
    from advisor.prompting import dev_split, make_request, render_messages, variant_names, with_variant

    def unvaried(t: Task) -> Task:
        return t.model_copy(update={"prompt": t.prompt.model_copy(update={"variants": {}})})

    cheap = lever.name == "prompt" or (lever.name == "prompt-few-shot" and options.selection != "similar")

    def rendered(t: Task, items: list[Any]) -> list[Request]:
        if not cheap:
            return [make_request(t, ex, render_messages(t, ex)) for ex in items]
        ctx = LeverContext(task=t, data=data, workdir=cache_dir, cache_dir=cache_dir,
                           base_backend=lambda: None)  # type: ignore[arg-type,return-value]
        return lever.requests(lever.prepare(ctx, options), items)

    dev: list[Request] = []
    if task.prompt.variants and lever.family == "prompt":
        dev_items, _ = dev_split(task, data.train)
        for name in variant_names(task):
            dev += rendered(unvaried(with_variant(task, name)), dev_items)
    return dev + rendered(unvaried(task), data.eval)


def as_dicts(rows: list[RowEstimate]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def print_estimate(console: Any, rows: list[RowEstimate]) -> None:
    """The dry-run table: requests, tokens and dollars per row; with a rubric, under each row a row of its
    own for the judge's grading of that row's outputs ("ROW (judge)", the judge's model), apart from the
    lever's figures. How each figure was made is listed under the table (long sentences in table cells
    were squeezed to nothing at 80 columns)."""
    from rich.table import Table

    table = Table(title="dry run: nothing sent (estimates)", title_justify="left")
    for col in ("row", "model", "requests", "tokens in", "tokens out ≤", "USD"):
        table.add_column(col, justify="right" if col in {"requests", "tokens in", "tokens out ≤", "USD"} else "left",
                         overflow="fold")
    figures: list[tuple[str, Any]] = []  # (what, its figures): each row, then its judge
    for r in rows:
        figures.append((r.row, r))
        if r.judge is not None:
            figures.append((f"{r.row} (judge)", r.judge))
    for name, f in figures:
        table.add_row(name, f.model, f"{f.requests:,}", f"{f.tokens_in:,}", f"{f.tokens_out:,}",
                      "unknown" if f.usd is None else f"{f.usd:.4f}")
    console.print(table)
    for name, f in figures:
        console.print(f"{name}: {f.priced}; tokens counted by {f.token_method}", soft_wrap=True)
    known = [f.usd for _, f in figures if f.usd is not None]
    judged = [r.judge.usd for r in rows if r.judge is not None and r.judge.usd is not None]
    split = f" (the judge's: ${sum(judged):.4f})" if any(r.judge is not None for r in rows) else ""
    console.print(f"total known: ${sum(known):.4f}{split}" + ("" if len(known) == len(figures) else
                  f" ({len(figures) - len(known)} row(s) not priced in advance)"))
