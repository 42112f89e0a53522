"""The `advise` command: a thin click layer over the library. Maps errors to exit codes.

Exit codes: 0 done; 1 a run failed, or stopped because the disk filled (everything computed before it
is kept in advise.sqlite: free space and run again, nothing is recomputed); 2 bad input (spec, data,
usage, an output path that cannot be written, a run folder another run is using); 130 interrupted.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from advisor.errors import AdviseError, DiskFullError, InputError, is_disk_full, is_not_writable, size_text


@contextmanager
def progress_factory(console: Console, quiet: bool) -> Iterator[Callable[[str, int], Callable[[int, int], None]]]:
    """Yields `(description, total) -> advance(done, total)`: rich bars on a terminal, plain
    lines in a pipe or CI log, nothing when quiet (see advisor.report.progress)."""
    from advisor.report.progress import make_progress

    with make_progress(console, quiet) as progress:
        yield progress


def _fail(e: AdviseError) -> None:
    # One line, no traceback, never wrapped (rich would wrap long paths at the terminal width).
    click.echo(f"error: {e}", err=True)
    sys.exit(e.exit_code)


def _printing(e: BaseException) -> bool:
    """Whether `e` was raised while printing (click.echo, rich), i.e. writing standard output."""
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith(("click.utils", "rich.")):
            return True
        tb = tb.tb_next
    return False


def _world_error(e: BaseException, stdout: bool = False) -> AdviseError | None:
    """The one-line error for a fault of the machine rather than of advise (a full disk, a path that cannot
    be written) that no command caught where it knew more; None for anything else (a bug: its traceback).
    `stdout`: it was raised writing standard output."""
    where = getattr(e, "filename", None) or ("standard output" if stdout or _printing(e) else None)
    what = f"{where}: " if where else ""
    if is_disk_full(e):
        return DiskFullError(f"the disk is full: {what}{getattr(e, 'strerror', None) or e}; everything written "
                             "before it is kept; free some space and run again")
    if is_not_writable(e):
        return InputError(f"cannot be written: {what}{getattr(e, 'strerror', None) or e}")
    return None


def _checked(call: Callable[[], Any]) -> Any:
    """Run a command; a full disk or an unwritable path it meets is one line, not a traceback. Its
    output is flushed here, so that standard output on a full disk (`advise compare A B --json >
    out.json`) is reported too, and not as Python's "Exception ignored" at exit (code 120)."""
    flushing = False
    try:
        try:
            return call()
        finally:
            flushing = True
            sys.stdout.flush()
            flushing = False
    except (OSError, sqlite3.Error) as e:
        if isinstance(e, OSError) and e.errno == errno.EPIPE:
            raise  # click's own: a reader that went away (`advise show | head`)
        error = _world_error(e, stdout=flushing)
        if error is None:
            raise
        # What is still buffered for standard output can never be written: drop it, or Python reports it at exit.
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), sys.stdout.fileno())
        except (OSError, ValueError):  # no file descriptor (a test's captured output)
            pass
        _fail(error)


class AdviseGroup(click.Group):
    """Turns the library's errors into one-line messages and exit codes."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list with each command's whole first sentence (click cuts it at ~45
        characters with '...'); long ones wrap instead."""
        rows = [(name, cmd.get_short_help_str(limit=200)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from advisor.interrupt import handled

        try:
            with handled():  # a second Ctrl-C exits at once (advisor/interrupt.py)
                return _checked(lambda: super(AdviseGroup, self).invoke(ctx))
        except AdviseError as e:
            _fail(e)
        except KeyboardInterrupt:
            click.echo("interrupted: every answer stored so far is kept (a batch in progress is not); "
                       "run again to resume.", err=True)
            _exit_interrupted()


def _exit_interrupted() -> None:
    """Exit 130 now. Every `finally` has run and every answer is committed by the time Ctrl-C gets
    here, so the process ends with os._exit: during a normal exit Python puts the default SIGINT
    handler back, and a second Ctrl-C landing then ended the process by the signal (status -2, not
    130); nothing else waits at exit either. Under a test's CliRunner (standard output swapped for a
    buffer) it is sys.exit, so the test process lives on."""
    if sys.stdout is not sys.__stdout__:
        sys.exit(130)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


@click.group(cls=AdviseGroup)
@click.version_option(package_name="advise")
def main() -> None:
    """Decide, with evidence, between a better prompt, RAG and fine-tuning."""
    # Our own progress bars only: no per-tensor bars or advisories from the libraries below.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub
    os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm reads it at import: no GGUF-conversion bar


def _fractions(text: str) -> tuple[float, ...]:
    where = f"--learning-curve {text}"
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError("expected fractions like 0.25,0.5,1.0", file=where) from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise InputError("fractions must lie in (0, 1]", file=where)
    return values


@contextmanager
def _about(task: Any) -> Iterator[None]:
    """Errors about a task setting (a lever, an option) found after loading name where it was
    written: task.yaml and the setting's line, or the `--set` argument that set it."""
    try:
        yield
    except InputError as e:
        task.place(e)
        raise


def _load(task_file: Path, sets: tuple[str, ...]) -> Any:
    from advisor.origin import parse_sets
    from advisor.plan import task_lever_options
    from advisor.spec import load_task

    task = load_task(task_file, parse_sets(sets))
    with _about(task):
        task_lever_options(task)  # every lever's options, whichever command and --lever
    return task


# The files `advise run` writes in its run folder, each rewritten in place or replaced.
RUN_FILES = ("advise.sqlite", "advise.sqlite-wal", "advise.sqlite-shm", "advise.sqlite.lock", "results.json",
             "report.html", "report.md", "cost_quality.svg", "volume.svg")


def _check_writable(path: Path, option: str, want: str, files: tuple[str, ...] = (), hint: str = "") -> None:
    """Before any work: `path` can be written as `want` ("folder", "file" or "either"), and so can each of
    `files` already in that folder; else InputError (exit 2), one line naming the option (a run of an
    hour must not end in a traceback at its last write, nor a model load before a refusal).
    Writability is probed, not read off permission bits, which do not tell (root, read-only mounts,
    immutable files, /proc): a temporary folder is made and removed where the path will live, and each
    existing file is opened for appending (which changes nothing in it). `hint` ends the message."""
    import tempfile

    where = f"{option} {path}".strip()
    if path.exists() and want == "folder" and not path.is_dir():
        raise InputError("exists and is not a folder", file=where)
    if path.exists() and want == "file" and path.is_dir():
        raise InputError("is a folder; give a file path", file=where)
    home = path if path.is_dir() else path.parent
    while not home.exists():
        home = home.parent
    if not home.is_dir():
        raise InputError(f"cannot be created: {home} is a file, not a folder", file=where)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".advise-probe-", dir=home))
    except OSError as e:
        raise InputError(f"cannot be written: {home}: {e.strerror or e}{hint}", file=where) from None
    targets = [path / name for name in files] if path.is_dir() else [path]
    for target in targets:
        if target.is_dir() and target != path:
            raise InputError(f"{target.name} in it is a folder, where advise writes a file{hint}", file=where)
        if not target.is_file():
            continue
        try:
            with open(target, "ab"):
                pass
        except OSError as e:
            raise InputError(f"cannot be written: {target}: {e.strerror or e}{hint}", file=where) from None


def _check_lever_args(task: Any, values: tuple[str, ...]) -> None:
    """`--lever` values are checked before anything runs; an error names the argument, not task.yaml."""
    from advisor.plan import plan_rows
    from advisor.registry import load_lever

    for value in values:
        try:
            name = value.split("@")[0]
            plan_rows(task, [value], {name: load_lever(name)})
        except InputError as e:
            raise InputError(e.message, file=f"--lever {value}") from None


task_arg = click.argument("task_file", type=click.Path(path_type=Path))
set_opt = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                       help="Override a task.yaml setting, e.g. --set target.threshold=0.9")


@main.command()
@task_arg
@click.option("--out", type=click.Path(path_type=Path), help="Run folder (default runs/<task name>).")
@click.option("--lever", "levers", multiple=True, help="Run only these levers (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="Score only the first N eval items (a quick look).")
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout instead of the scorecard "
              "(as `audit --json` and `compare --json` do).")
@click.option("--json-out", "json_path", type=click.Path(path_type=Path), help="Also write results.json here.")
@click.option("--latency-probe", type=click.IntRange(min=0), default=12, show_default=True,
              help="Eval items whose serving latency is measured: sent one at a time to a local model; "
              "an API model's are timed on the run's own requests (nothing sent again).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Requests the model answers together; larger is faster until memory runs out.")
@click.option("--quiet", is_flag=True, help="No progress bars or scorecard; still writes results.json.")
@click.option("--learning-curve", "curve", is_flag=False, flag_value="0.25,0.5,1.0", default=None,
              metavar="FRACTIONS", help="Also train fine-tuning levers on fractions of train (default "
              "0.25,0.5,1.0), fit a curve and say how many examples the target needs.")
@click.option("--dry-run", is_flag=True, help="Estimate requests, tokens and dollars per lever and model; "
              "send nothing.")
@set_opt
def run(task_file: Path, out: Path | None, levers: tuple[str, ...], limit: int | None, as_json: bool,
        json_path: Path | None,
        latency_probe: int, batch_size: int, quiet: bool, curve: str | None, sets: tuple[str, ...],
        dry_run: bool = False) -> None:
    """Run the task's levers cheapest first and recommend one."""
    from advisor.record import results_path
    from advisor.report.scorecard import print_results
    from advisor.runner import Runner
    from advisor.types import GenerationParams

    task = _load(task_file, sets)
    _check_lever_args(task, levers)
    from advisor.compute import environment_precision

    environment_precision()  # a bad ADVISE_PRECISION is refused before a model loads
    fractions = _fractions(curve) if curve else None  # every argument is checked before a run folder exists
    if json_path:
        _check_writable(json_path, "--json-out", "file")
    if not dry_run:
        _check_writable(out or Path("runs") / task.name, "--out", "folder", RUN_FILES)
    if dry_run:
        from advisor.estimate import as_dicts, estimate, print_estimate

        with _about(task):
            rows = estimate(task, list(levers) or None, limit, latency_probe)
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps({"dry_run": as_dicts(rows)}, indent=2))
        if as_json:
            click.echo(json.dumps({"dry_run": as_dicts(rows)}, indent=2))
        else:
            print_estimate(Console(), rows)
        return
    quiet = quiet or as_json  # stdout carries the JSON alone
    workdir = out or Path("runs") / task.name
    console = Console()
    params = GenerationParams(max_new_tokens=task.prompt.max_new_tokens, batch_size=batch_size)
    from advisor.report.render import write_reports

    with progress_factory(console, quiet) as progress:
        with _about(task):
            runner = Runner(task, workdir, limit=limit, progress=progress, latency_probe=latency_probe,
                            params=params, console=None if quiet else console)
            try:
                _run_notes(runner)
                result = runner.run(list(levers) or None, task_file=task_file,
                                    curve_fractions=fractions)
                data = result.to_json()
                # Written while the run still holds the folder's lock: results.json is this run's.
                with _disk_full_after_run(runner.store.path, "results.json", len(json.dumps(data)), workdir):
                    path = result.write(results_path(workdir))
                    if json_path:
                        json_path.parent.mkdir(parents=True, exist_ok=True)
                        json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
                with _disk_full_after_run(runner.store.path, "the reports", None, workdir):
                    reports = write_reports(workdir)
            finally:
                runner.close()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif not quiet:
        print_results(console, result.record)
        console.print(f"Results: {path}" + (f" and {json_path}" if json_path else ""), soft_wrap=True)
        console.print("Report: " + " and ".join(str(p) for p in reports), soft_wrap=True)


def _run_notes(runner: Any) -> None:
    """One line each, on standard error, before a run starts: runs found unfinished in the folder (and
    now marked abandoned), and ids that train and eval share."""
    _abandoned_note(runner)
    for line in shared_id_lines(runner.data):
        click.echo(line, err=True)


def _abandoned_note(runner: Any) -> None:
    """One line on standard error for the runs the store found `running` and marked abandoned on open."""
    import time

    gone = runner.store.abandoned
    if gone:
        when = ", ".join(f"{r['id']} (started {time.strftime('%Y-%m-%d %H:%M', time.localtime(r['started']))})"
                         for r in gone)
        click.echo(f"note: {runner.workdir}: run{'s' if len(gone) > 1 else ''} {when} stopped without recording "
                   "an end (killed with kill -9, a crash, a machine gone down or a full disk); marked abandoned in "
                   f"{runner.store.path}. Every answer saved is kept and reused.", err=True)


def shared_id_lines(data: Any, limit: int = 3) -> list[str]:
    """Warnings for ids that are in both train and eval (advisor.data.Dataset.shared_ids): usually one
    file copied into the other; the leakage guard compares inputs, so a copy with an edited input stays in
    train. At most `limit` lines, then a count."""
    shared = data.shared_ids
    lines = [f"warning: id '{ex_id}' is in both train ({train}) and eval ({eval_}): an eval item copied "
             "into train? (ids name items; `advise audit` lists every shared id)" for ex_id, train, eval_ in
             shared[:limit]]
    if len(shared) > limit:
        lines.append(f"warning: and {len(shared) - limit} more id(s) in both train and eval")
    return lines


@contextmanager
def _disk_full_after_run(store: Path, what: str, size: int | None, folder: Path) -> Iterator[None]:
    """A full disk while writing a finished run's outputs: one line (DiskFullError, exit 1) saying that every
    answer and score is in the store, how much `what` needs (`size` bytes, when known) and what is free."""
    try:
        yield
    except OSError as e:
        if not is_disk_full(e):
            raise
        import shutil

        need = f"; it needs about {size_text(size)}" if size else ""
        try:
            free = f", {size_text(shutil.disk_usage(folder).free)} free there now"
        except OSError:
            free = ""
        raise DiskFullError(f"the disk is full: {what} could not be written ({e.filename or folder}: "
                            f"{e.strerror}){need}{free}; every answer and score of the run is saved in {store}: "
                            "free some space and run again (nothing is recomputed)") from None


@main.command()
@task_arg
@set_opt
def validate(task_file: Path, sets: tuple[str, ...]) -> None:
    """Check task.yaml and its data without running a model."""
    from advisor.backends.openai import check_api_keys
    from advisor.data import load_dataset
    from advisor.knowledge.documents import load_knowledge
    from advisor.plan import plan_rows, task_lever_options
    from advisor.prompting import check_templates, check_variants
    from advisor.registry import load_lever

    task = _load(task_file, sets)
    with _about(task):
        data = load_dataset(task)
        check_templates(task, data.train + data.eval)
        check_variants(task, data.train + data.eval)
        options = list(task_lever_options(task).values())
        plan_rows(task, task.levers, {n.split("@")[0]: load_lever(n.split("@")[0]) for n in task.levers})
        # The reader the run uses: same errors, no model.
        docs = load_knowledge(task.data_path("knowledge")) if task.data.knowledge else []
        # A key the run would need and lacks is an error here too; one a self-served server may not need, a note.
        key_notes = check_api_keys(task, [str(getattr(o, "embedding", "")) for o in options])
    console = Console()
    console.print(f"[green]ok[/green] {task.name}: {task.kind}, {len(data.train)} train, {len(data.eval)} eval, "
                  f"levers {', '.join(task.levers)}" + (f", {len(docs)} knowledge documents" if docs else ""))
    if data.leakage_removed:
        console.print(f"[yellow]{len(data.leakage_removed)} train example(s) share an input with eval and "
                      f"will be left out of training and few-shot: {', '.join(data.leakage_removed[:5])}")
    for line in shared_id_lines(data):
        console.print(line, style="yellow", soft_wrap=True, markup=False, highlight=False)
    for note in key_notes:
        console.print(f"[yellow]note: {note}", soft_wrap=True, markup=True, highlight=False)
    if task.checks:
        console.print(metrics_line(task, data.eval_gold, len(data.eval)), soft_wrap=True, markup=False,
                      highlight=False)


def metrics_line(task: Any, gold: int, n_eval: int) -> str:
    """Which metrics a run computes: the checks' (no gold needed) and the kind's (gold needed), and
    whether eval has the gold they need (`gold` of `n_eval` items have an output)."""
    checks = f"metrics: {', '.join(task.check_metrics)} (checks, no gold needed)"
    needs = ", ".join(task.gold_metrics)
    if gold == n_eval:
        return f"{checks}; {needs} (gold outputs)"
    have = "none" if gold == 0 else f"{gold} of {n_eval} items"
    return f"{checks}; {needs} need gold — eval has {have}, not computed"


@main.command()
@task_arg
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON (the `audit` key of results.json).")
@click.option("--strict", is_flag=True, default=None, help="Exit 1 on any warning (also: audit.strict: true).")
@click.option("--embeddings", is_flag=True, default=None,
              help="Also compare inputs by embedding cosine (loads the embedding model; audit.embeddings).")
@click.option("--review", "review_path", type=click.Path(path_type=Path), metavar="FILE.csv",
              help="Write every likely label error (and extraction field error) to this CSV for a person to "
              "review, likeliest first; apply it with `advise apply-review`.")
@set_opt
def audit(task_file: Path, as_json: bool, strict: bool | None, embeddings: bool | None,
          review_path: Path | None, sets: tuple[str, ...]) -> None:
    """Audit train, eval and knowledge: duplicates, near-duplicates, leakage, label conflicts, likely label
    errors, balance, form."""
    from advisor.audit import audit_task
    from advisor.audit.render import audit_table

    task = _load(task_file, sets)
    if review_path is not None:
        from advisor.audit.review import refuse_task_file

        refuse_task_file(task, review_path, "--review")
        _check_writable(review_path, "--review", "file")
    with _about(task):
        report = audit_task(task, embeddings=embeddings, label_errors=True if review_path else None)
    if strict:
        report.strict = True
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        Console().print(audit_table(report.as_dict(), title=f"{task.name}: data audit"))
    if review_path is not None:
        from advisor.audit.review import write_review

        n = write_review(review_path, report.suspects)
        click.echo(f"review: {n} suspect(s) written to {review_path}" + (
            "; fill `decision` (keep / relabel / drop), then `advise apply-review TASK "
            f"{review_path} --out DIR`" if n else " (none found; see the audit's label-error lines for why)"),
            err=True)
    refusal = report.refusal()
    if refusal is not None:  # the data is bad input, as validate and run say: exit 2, after the full list
        raise refusal
    if report.failed():
        click.echo(f"audit failed (strict): {len(report.warnings)} warning check(s)", err=True)
        sys.exit(1)


@main.command(name="apply-review")
@task_arg
@click.argument("review_file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the corrected copy (train and eval files) and its change log, changes.jsonl.")
@set_opt
def apply_review_cmd(task_file: Path, review_file: Path, out: Path, sets: tuple[str, ...]) -> None:
    """Apply a reviewed `audit --review` CSV: write a corrected copy of the data and a change log; the
    original files are never modified, and a review of data that has changed since is refused."""
    from advisor.audit.review import apply_review

    task = _load(task_file, sets)
    _check_writable(out, "--out", "folder")
    with _about(task):
        done = apply_review(task, review_file, out)
    files = done["files"]
    click.echo(f"applied {done['relabel']} relabel(s) and {done['drop']} drop(s) ({done['keep']} kept, "
               f"{done['unreviewed']} not reviewed): {files['train']}, {files['eval']}; change log "
               f"{done['change_log']}")
    click.echo(f"run on it: advise run {task_file} --set data.train={Path(files['train']).resolve()} "
               f"--set data.eval={Path(files['eval']).resolve()}")


@main.command()
@task_arg
@click.option("--lever", "levers", multiple=True, help="Index for these levers only (default: every lever "
              "of the task that keeps an index).")
@set_opt
def index(task_file: Path, levers: tuple[str, ...], sets: tuple[str, ...]) -> None:
    """Build or refresh the task's retrieval index on its own (only changed documents are embedded)."""
    from advisor.registry import lever_options, load_lever
    from advisor.runner import Runner

    task = _load(task_file, sets)
    _check_lever_args(task, levers)
    console = Console()
    with _about(task):
        names = list(dict.fromkeys(n.split("@")[0] for n in (list(levers) or task.levers)))
        indexers = [lv for lv in (load_lever(n) for n in names) if lv.index is not None]
        if not indexers:
            raise InputError(f"none of the levers {', '.join(names)} keeps an index (try --lever rag)",
                             field="levers")
        with progress_factory(console, False) as progress:
            runner = Runner(task, Path("runs") / task.name, progress=progress)
            try:
                _abandoned_note(runner)
                for lever in indexers:
                    options = lever_options(lever, task.lever_options.get(lever.name, {}))
                    stats = lever.index(runner.context(lever), options)  # type: ignore[misc]
                    size = f", {stats['index_bytes'] / 1e6:.1f} MB on disk" if stats.get("index_bytes") else ""
                    console.print(
                        f"{lever.name}: {stats['total_chunks']} chunks in '{stats['collection']}': "
                        f"{stats['embedded_chunks']} embedded now, {stats['removed']} removed, "
                        f"{stats['kept']} unchanged ({stats['embed_seconds']:.1f} s embedding){size}"
                    )
            finally:
                runner.close()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def adapters(as_json: bool) -> None:
    """List the fine-tuned adapters in the cache: version, status, task, metrics, steps, date."""
    from advisor.backends.hf import default_cache_dir
    from advisor.registry import load_lever
    from advisor.report.adapter_table import adapters_table

    lever = load_lever("lora")  # through the registry, like any lever
    rows = lever.artifacts(default_cache_dir())  # type: ignore[attr-defined]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    console = Console()
    if not rows:
        console.print("No adapters yet: run a task with the lora lever.")
        return
    # The columns that matter at this width; the rest are in --json.
    console.print(adapters_table(rows, console.width, title=f"adapters in {default_cache_dir() / 'adapters'}"))


@main.command()
@click.option("--results", "of_results", is_flag=True, help="The schema of results.json (the run record) instead.")
def schema(of_results: bool) -> None:
    """Print the JSON Schema of task.yaml (for editor completion), or with --results of results.json."""
    if of_results:
        from advisor.record import results_schema

        click.echo(json.dumps(results_schema(), indent=2))
        return
    from advisor.spec import task_json_schema

    click.echo(json.dumps(task_json_schema(), indent=2))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--task", "task_file", type=click.Path(path_type=Path), default=None,
              help="The task.yaml (default: the one the run recorded).")
@click.option("--lever", default=None, help="The row whose outputs to grade (default: the run's first).")
@click.option("-n", "count", type=click.IntRange(min=1), default=20, show_default=True, help="Outputs to show.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sample.")
@click.option("--import", "csv_file", type=click.Path(path_type=Path), default=None,
              help="Read grades from a CSV (example_id, criterion, grade[, output_hash]) instead of asking.")
@click.option("--replace", is_flag=True, help="With --import: a CSV grade that contradicts one already in "
              "labels.jsonl overwrites it (the old grade is kept on the new line); without it, refused.")
def label(run_dir: Path, task_file: Path | None, lever: str | None, count: int, seed: int,
          csv_file: Path | None, replace: bool = False) -> None:
    """Grade a seeded sample of a run's outputs by hand against the rubric; kappa and PPI go into results.json.

    Grades go to labels.jsonl in the task folder, keyed by item, output hash and criterion, with who gave
    each and when. Answer p(ass), f(ail), s(kip) or q(uit) per criterion. An imported grade that
    contradicts a recorded one is refused (exit 2) unless --replace; one that agrees is not written again."""
    from advisor.judge.grading import text_hash
    from advisor.judge.labels import (
        LABELS_FILE,
        append_labels,
        ask,
        import_csv_sources,
        judge_section,
        load_label_lines,
        load_labels,
        sample,
    )
    from advisor.record import load_record, results_path
    from advisor.store import RunStore

    if run_dir.is_file() and run_dir.suffix.lower() != ".json":
        raise InputError("is a file, not a run folder: give the folder `advise run` wrote (with results.json)",
                         file=run_dir)
    record = load_record(run_dir)
    if task_file is None:
        recorded = record.provenance.task_file if record.provenance else None
        if not recorded:
            raise InputError("the run recorded no task file; give --task TASK.yaml", file=results_path(run_dir))
        task_file = Path(recorded)
    task = _load(task_file, ())
    if (task.name, task.kind) != (record.task, record.kind):
        raise InputError(f"is task '{task.name}' ({task.kind}) but the run is of task '{record.task}' "
                         f"({record.kind}); give the run's own task.yaml", file=f"--task {task_file}")
    if task.rubric is None:
        raise InputError("the task has no `rubric:` to grade against", file=task_file, field="rubric")
    if replace and csv_file is None:
        raise InputError("--replace overwrites grades read with --import; give --import CSV (grades asked here "
                         "are asked only where none is recorded)", field="--replace")
    names = [lv.name for lv in record.levers]
    lever = lever or (names[0] if names else None)
    if lever not in names:
        raise InputError(f"no row '{lever}' in the run; one of {', '.join(names)}", field="--lever")
    if record.run_id is None:
        raise InputError("results.json names no run id (written before runs were recorded); run the task again",
                         file=results_path(run_dir))
    store = RunStore(run_dir / "advise.sqlite")
    try:
        items = [{**it, "output_hash": text_hash(it["raw"])} for it in store.run_items(record.run_id, lever)]
        path = task.base_dir / LABELS_FILE
        from advisor.audit.review import refuse_task_file

        refuse_task_file(task, path, "labels file", skip=(LABELS_FILE,))
        lines = load_label_lines(path)
        have = {key: got["grade"] for key, got in lines.items()}
        sources: str | list[str] = "asked"
        if csv_file is not None:
            known: dict[str, set[str]] = {}
            for name in names:
                for it in store.run_items(record.run_id, name):
                    known.setdefault(it["example_id"], set()).add(text_hash(it["raw"]))
            rows, sources = import_csv_sources(csv_file, task.rubric.names,
                                               {it["example_id"]: it["output_hash"] for it in items}, known,
                                               have=lines, replace=replace, labels_file=path)
        else:
            def read() -> str | None:
                line = sys.stdin.readline()
                return line if line else None

            rows = ask(sample(items, count, seed), task.rubric.criteria, read,
                       lambda text: click.echo(text, nl=False), have)
        replaced = {(ex, oh, crit): lines[(ex, oh, crit)] for ex, oh, crit, _ in rows if (ex, oh, crit) in lines}
        append_labels(path, rows, sources, replaces=replaced)
        labels = load_labels(path)
        record.judge = judge_section(store, record.run_id, names, task.rubric.names, labels,
                                     task.target.confidence, task.rubric.min_kappa)
        record.write(results_path(run_dir))
    finally:
        store.close()
    click.echo(f"\n{len(rows)} grade{'s' * (len(rows) != 1)} recorded in {path} ({len(labels)} in all"
               + (f"; {len(replaced)} replaced an earlier grade, kept on the new line" if replaced else "") + ")")
    from advisor.report.scorecard import print_judge

    print_judge(Console(), record)
    if task.target_is_criterion or (task.target.metric == "pass_all" and task.pass_all_uses_judge):
        click.echo(f"The verdict on {task.target.metric} reads these grades at the next `advise run` (answers and "
                   "judge grades are reused); results.json's verdict is the last run's until then.")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path), default=None, required=False)
def show(run_dir: Path | None) -> None:
    """Show the scorecard of a finished run from its results.json."""
    from advisor.record import load_record
    from advisor.report.scorecard import print_results

    print_results(Console(), load_record(run_dir or Path(".")))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["html", "md", "both"]), default="both", show_default=True)
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder for the reports (default: the run folder), or, with one format, the file itself.")
def report(run_dir: Path, fmt: str, out: Path | None) -> None:
    """Render report.html and report.md (charts as SVG beside them) from a stored run; no model is loaded."""
    from advisor.record import results_path
    from advisor.report.render import FORMATS, write_reports

    if out is not None:
        _check_writable(out, "--out", "folder" if fmt == "both" else "either", RUN_FILES[-4:])
    elif results_path(run_dir).is_file():  # the reports go beside results.json
        _check_writable(results_path(run_dir).parent, "RUN_DIR", "folder", RUN_FILES[-4:],
                        hint=" (give --out to write the reports elsewhere)")
    try:
        paths = write_reports(run_dir, FORMATS if fmt == "both" else (fmt,), out)
    except OSError as e:
        if not is_disk_full(e):
            raise
        raise DiskFullError(f"the disk is full: {e.filename or out or run_dir}: {e.strerror}; the run itself "
                            "(results.json, advise.sqlite) is untouched, and a report already there is as it was; "
                            "free some space and run `advise report` again") from None
    for path in paths:
        click.echo(str(path))


@main.command()
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(run_a: Path, run_b: Path, as_json: bool) -> None:
    """Compare two runs on the target metric; exit 1 when RUN_A's pick is significantly worse in RUN_B.

    Items are paired one by one (within their eval groups; macro-F1 from the stored answers). The gate
    is RUN_A's recommended lever, or with none every lever; exit 1 when one is significantly worse in
    RUN_B (a CI gate), else 0. Significance is one-sided at 1 − confidence, Holm-adjusted over the
    levers gated, so an unchanged run fails at most that often."""
    from advisor.compare import compare_runs, print_comparison
    from advisor.report.document import load_run

    out = compare_runs(load_run(run_a), load_run(run_b))
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        print_comparison(Console(), out)
    sys.exit(1 if out["regressed"] else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
