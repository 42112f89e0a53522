"""The `advise` command: a thin click layer over the library. Maps errors to exit codes.

Exit codes: 0 done, 1 a run failed, 2 bad input (spec, data, usage), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from advisor.errors import AdviseError, InputError


def _parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    """`--set a.b=value` overrides; the value is parsed as YAML (so numbers stay numbers)."""
    import yaml

    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise InputError(f"--set expects KEY=VALUE, got '{item}'", field="--set")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


@contextmanager
def progress_factory(console: Console, quiet: bool) -> Iterator[Callable[[str, int], Callable[[int, int], None]]]:
    """Yields `(description, total) -> advance(done, total)`; each call adds one rich bar."""
    if quiet:
        yield lambda description, total: (lambda done, total: None)
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )

    def factory(description: str, total: int) -> Callable[[int, int], None]:
        task_id = progress.add_task(description, total=total)

        def advance(done: int, total: int, description: str | None = None) -> None:
            progress.update(task_id, completed=done, total=total,
                            **({"description": description} if description else {}))

        return advance

    with progress:
        yield factory


def _fail(e: AdviseError) -> None:
    # One line, no traceback, never wrapped (rich would wrap long paths at the terminal width).
    click.echo(f"error: {e}", err=True)
    sys.exit(e.exit_code)


class AdviseGroup(click.Group):
    """Turns the library's errors into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AdviseError as e:
            _fail(e)
        except KeyboardInterrupt:
            click.echo("interrupted: everything computed so far is saved; run again to resume.", err=True)
            sys.exit(130)


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
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"expected fractions like 0.25,0.5,1.0, got '{text}'", field="--learning-curve") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise InputError(f"fractions must lie in (0, 1], got '{text}'", field="--learning-curve")
    return values


@contextmanager
def _about(task_file: Path) -> Iterator[None]:
    """Errors about a task setting (a lever, an option) name the task file they came from."""
    try:
        yield
    except InputError as e:
        if e.file is None and e.field:
            e.file = str(task_file)
        raise


def _load(task_file: Path, sets: tuple[str, ...]) -> Any:
    from advisor.spec import load_task

    return load_task(task_file, _parse_sets(sets))


task_arg = click.argument("task_file", type=click.Path(path_type=Path))
set_opt = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                       help="Override a task.yaml setting, e.g. --set target.threshold=0.9")


@main.command()
@task_arg
@click.option("--out", type=click.Path(path_type=Path), help="Run folder (default runs/<task name>).")
@click.option("--lever", "levers", multiple=True, help="Run only these levers (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="Score only the first N eval items (a quick look).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write results.json here.")
@click.option("--latency-probe", type=click.IntRange(min=0), default=12, show_default=True,
              help="Eval items sent one at a time to measure serving latency.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars or scorecard; still writes results.json.")
@click.option("--learning-curve", "curve", is_flag=False, flag_value="0.25,0.5,1.0", default=None,
              metavar="FRACTIONS", help="Also train fine-tuning levers on fractions of train (default "
              "0.25,0.5,1.0), fit a curve and say how many examples the target needs.")
@click.option("--dry-run", is_flag=True, help="Estimate requests, tokens and dollars per lever and model; "
              "send nothing.")
@set_opt
def run(task_file: Path, out: Path | None, levers: tuple[str, ...], limit: int | None, json_path: Path | None,
        latency_probe: int, batch_size: int, quiet: bool, curve: str | None, sets: tuple[str, ...],
        dry_run: bool = False) -> None:
    """Run the task's levers cheapest first and recommend one."""
    from advisor.report.scorecard import print_results
    from advisor.runner import Runner
    from advisor.types import GenerationParams

    task = _load(task_file, sets)
    if dry_run:
        from advisor.estimate import as_dicts, estimate, print_estimate

        with _about(task_file):
            rows = estimate(task, list(levers) or None, limit, latency_probe)
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps({"dry_run": as_dicts(rows)}, indent=2))
        print_estimate(Console(), rows)
        return
    workdir = out or Path("runs") / task.name
    console = Console()
    params = GenerationParams(max_new_tokens=task.prompt.max_new_tokens, batch_size=batch_size)
    with progress_factory(console, quiet) as progress:
        with _about(task_file):
            runner = Runner(task, workdir, limit=limit, progress=progress, latency_probe=latency_probe,
                            params=params, console=None if quiet else console)
            try:
                result = runner.run(list(levers) or None, task_file=task_file,
                                    curve_fractions=_fractions(curve) if curve else None)
            finally:
                runner.store.close()
    path = result.write(workdir / "results.json")
    data = result.to_json()
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    if not quiet:
        print_results(console, data)
        console.print(f"Results: {path}" + (f" and {json_path}" if json_path else ""))


@main.command()
@task_arg
@set_opt
def validate(task_file: Path, sets: tuple[str, ...]) -> None:
    """Check task.yaml and its data without running a model."""
    from advisor.data import load_dataset
    from advisor.prompting import check_templates
    from advisor.registry import lever_options, load_lever

    task = _load(task_file, sets)
    data = load_dataset(task)
    check_templates(task, data.train + data.eval)
    with _about(task_file):
        for name in dict.fromkeys(entry.split("@")[0] for entry in task.levers):  # `lever@model` rows
            lever_options(load_lever(name), task.lever_options.get(name, {}))
        from advisor.modelspec import plan_rows

        plan_rows(task, task.levers, {n.split("@")[0]: load_lever(n.split("@")[0]) for n in task.levers})
    if task.data.knowledge and not task.path(task.data.knowledge).exists():
        raise InputError("knowledge path not found", file=task.path(task.data.knowledge), field="data.knowledge")
    console = Console()
    console.print(f"[green]ok[/green] {task.name}: {task.kind}, {len(data.train)} train, {len(data.eval)} eval, "
                  f"levers {', '.join(task.levers)}")
    if data.leakage_removed:
        console.print(f"[yellow]{len(data.leakage_removed)} train example(s) share an input with eval and "
                      f"will be left out of training and few-shot: {', '.join(data.leakage_removed[:5])}")


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
    console = Console()
    with _about(task_file):
        names = list(dict.fromkeys(n.split("@")[0] for n in (list(levers) or task.levers)))
        indexers = [lv for lv in (load_lever(n) for n in names) if hasattr(lv, "index")]
        if not indexers:
            raise InputError(f"none of the levers {', '.join(names)} keeps an index (try --lever rag)",
                             field="levers")
        with progress_factory(console, False) as progress:
            runner = Runner(task, Path("runs") / task.name, progress=progress)
            try:
                for lever in indexers:
                    options = lever_options(lever, task.lever_options.get(lever.name, {}))
                    stats = lever.index(runner.context(lever), options)  # type: ignore[attr-defined]
                    size = f", {stats['index_bytes'] / 1e6:.1f} MB on disk" if stats.get("index_bytes") else ""
                    console.print(
                        f"{lever.name}: {stats['total_chunks']} chunks in '{stats['collection']}': "
                        f"{stats['embedded_chunks']} embedded now, {stats['removed']} removed, "
                        f"{stats['kept']} unchanged ({stats['embed_seconds']:.1f} s embedding){size}"
                    )
            finally:
                runner.store.close()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def adapters(as_json: bool) -> None:
    """List the fine-tuned adapters in the cache: version, size, data hash, metrics, date."""
    from rich.table import Table

    from advisor.backends.hf import default_cache_dir
    from advisor.registry import load_lever

    lever = load_lever("lora")  # through the registry, like any lever
    rows = lever.artifacts(default_cache_dir())  # type: ignore[attr-defined]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"adapters in {default_cache_dir() / 'adapters'}", title_justify="left")
    for col in ("version", "task", "lever", "size", "data", "n_train", "steps", "best val loss", "metrics", "created"):
        table.add_column(col, no_wrap=col in {"version", "created"})
    for r in rows:
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in (r.get("metrics") or {}).items()
                            if isinstance(v, (int, float)))
        table.add_row(str(r.get("version")), str(r.get("task", "")), str(r.get("lever", "")),
                      f"{(r.get('size_bytes') or 0) / 1e6:.1f} MB", str(r.get("data_hash", "")),
                      str(r.get("n_train", "")), str(r.get("steps", "")),
                      f"{r['best_val_loss']:.3f}" if isinstance(r.get("best_val_loss"), float) else "–",
                      metrics or "–", str(r.get("created", ""))[:19])
    Console().print(table if rows else "No adapters yet: run a task with the lora lever.")


@main.command()
def schema() -> None:
    """Print the JSON Schema of task.yaml (for editor completion)."""
    from advisor.spec import task_json_schema

    click.echo(json.dumps(task_json_schema(), indent=2))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path), default=None, required=False)
def show(run_dir: Path | None) -> None:
    """Show the scorecard of a finished run from its results.json."""
    from advisor.report.scorecard import print_results

    path = (run_dir or Path(".")) / "results.json" if not (run_dir and run_dir.is_file()) else run_dir
    if not path.is_file():
        raise InputError("no results.json here; run 'advise run TASK' first", file=path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"broken JSON: {e.msg}", file=path, line=e.lineno) from None
    print_results(Console(), data)


if __name__ == "__main__":  # pragma: no cover
    main()
