"""Progress without a terminal: plain lines in a pipe, time left from the recent rate, no silent steps."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from rich.console import Console

from advisor.report.progress import ProgressReporter, RecentRate, format_seconds, status


def _plain(every: float = 0.0) -> tuple[ProgressReporter, io.StringIO]:
    out = io.StringIO()
    return ProgressReporter(Console(file=out), mode="plain", every=every), out


def test_a_console_without_a_terminal_gets_plain_lines():
    out = io.StringIO()
    assert ProgressReporter(Console(file=out)).mode == "plain"  # StringIO is no terminal
    assert ProgressReporter(Console(file=out), mode="quiet").mode == "quiet"


def test_recent_rate_follows_the_last_window_not_the_mean_since_the_start():
    rate = RecentRate(window=10)
    rate.add(0.0, 200)  # items already cached when the stage starts: never speed
    assert rate.rate() is None and rate.seconds_left(200, 300) is None
    for t in range(1, 31):  # 1 item/s for 30 s, then 5 items/s
        rate.add(float(t), 200 + t)
    assert rate.rate() == pytest.approx(1.0)
    for t in range(31, 41):
        rate.add(float(t), 230 + 5 * (t - 30))
    assert rate.rate() == pytest.approx(5.0, rel=0.1)  # the mean since the start would say 2.0
    assert rate.seconds_left(280, 300) == pytest.approx(4.0, rel=0.1)


def test_plain_lines_name_stage_count_rate_and_time_left():
    progress, out = _plain()
    with progress:
        advance = progress("rag: predicting", 40)
        advance(8, 40)  # cached items first: no rate yet
        time.sleep(0.05)
        advance(16, 40)
        time.sleep(0.05)
        advance(24, 40)
        advance(40, 40)
    lines = out.getvalue().splitlines()
    assert lines[0] == "rag: predicting: 0/40 (0%), time left unknown"
    assert lines[1] == "rag: predicting: 8/40 (20%), time left unknown"
    assert re.fullmatch(r"rag: predicting: 24/40 \(60%\), [\d.]+/s, \d+:\d\d left", lines[3]), lines[3]
    assert re.fullmatch(r"rag: predicting: 40/40 \(100%\), done in \d+:\d\d", lines[-1]), lines[-1]
    assert "\x1b" not in out.getvalue()


def test_plain_lines_come_at_most_every_interval_but_always_at_the_end():
    progress, out = _plain(every=3600)
    with progress:
        advance = progress("lora: training", 100)
        for step in range(1, 101):
            advance(step, 100, description=f"lora: training, loss {1 / step:.3f}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the start and the end, nothing in between at this interval
    assert lines[-1].startswith("lora: training, loss 0.010: 100/100 (100%), done in")


def test_a_long_step_without_a_count_is_announced_and_its_end_reported():
    progress, out = _plain(every=0.2)
    with progress:
        with progress.status("lora: tokenising 5000 examples"):
            time.sleep(3.4)  # past STATUS_AFTER_S (2 s), then a heartbeat (1 s)
        with progress.status("rag: building 12 requests"):
            pass  # quick: stays quiet
    text = out.getvalue()
    assert "lora: tokenising 5000 examples ...\n" in text
    assert re.search(r"lora: tokenising 5000 examples \.\.\. \(0:0\d so far\)", text)
    assert re.search(r"lora: tokenising 5000 examples: done in 0:0\d\n", text)
    assert "building 12 requests" not in text


def test_status_is_a_no_op_for_a_bare_progress_callable():
    # Levers get plain (description, total) callables from tests and older runners: the block runs,
    # the callable is never called (no bar opens), and an error in the block passes through.
    calls, ran = [], []

    def bare(description, total):
        calls.append((description, total))
        return lambda done, total: None

    with status(bare, "anything"):
        ran.append(True)
    assert ran == [True] and calls == []
    with pytest.raises(KeyError):
        with status(bare, "anything"):
            raise KeyError("inside")
    assert calls == []
    # A progress factory that has `status` gets the text, around the block.
    seen = []

    class WithStatus:
        def __call__(self, description, total):
            return bare(description, total)

        @contextmanager
        def status(self, text):
            seen.append(("start", text))
            yield
            seen.append(("end", text))

    with status(WithStatus(), "lora: loading the adapter"):
        seen.append("block")
    assert seen == [("start", "lora: loading the adapter"), "block", ("end", "lora: loading the adapter")]


def test_backend_batches_move_the_bar_through_the_callback_they_are_given(tmp_path, write_jsonl):
    from advisor.execute import Predictor, run_params
    from advisor.spec import load_task
    from advisor.store import RunStore
    from advisor.types import Artifact, Backend, Generation, Lever, Request

    write_jsonl(tmp_path / "train.jsonl", [{"input": f"t{i}", "output": "A"} for i in range(4)])
    write_jsonl(tmp_path / "eval.jsonl", [{"input": f"e{i}", "output": "AB"[i % 2]} for i in range(5)])
    (tmp_path / "task.yaml").write_text(
        "name: bars\nkind: classification\nlabels: [A, B]\ndata: {train: train.jsonl, eval: eval.jsonl}\n"
        "prompt: {template: '{{ input }}'}\ntarget: {metric: accuracy, threshold: 0.5}\nlevers: [prompt]\n")
    task = load_task(tmp_path / "task.yaml")

    class Ask(Lever):
        name, rung, family = "ask", 0, "prompt"

        def requests(self, artifact, examples):
            return [Request(ex.id, [{"role": "user", "content": ex.input}], options=["A", "B"]) for ex in examples]

    class TwoAtATime(Backend):
        identity = "two-at-a-time@1"

        def score_options(self, requests, params, on_batch=None):
            out = []
            for i in range(0, len(requests), 2):
                out += [Generation("A", 3, 1, 0.0, [0.0, -1.0]) for _ in requests[i : i + 2]]
                if on_batch is not None:
                    on_batch(len(requests[i : i + 2]))
            return out

    moves = []

    def progress(description, total):
        def advance(done, total, description=description):
            stored = store.db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
            moves.append((description, done, total))
            if done == total and description == "ask: predicting":
                assert stored == total  # "done" only once every answer is in the store

        return advance

    from advisor.data import load_dataset

    store = RunStore(tmp_path / "advise.sqlite")
    try:
        predictor = Predictor(task, load_dataset(task), store, run_params(task), progress, latency_probe=0)
        predictions, _, computed = predictor.predict(Ask(), Artifact("ask", "v1", TwoAtATime()))
        again = predictor.predict(Ask(), Artifact("ask", "v1", TwoAtATime()))
    finally:
        store.close()
    assert computed == 5 and [p.output for p in predictions] == ["A"] * 5 and again.computed == 0
    # The bar moves per batch the backend reports (2, 2, then the last short of the chunk's end), and
    # reaches the end when the chunk is stored; the rerun finds everything stored.
    bar = [(done, total) for d, done, total in moves if d == "ask: predicting"]
    assert bar == [(0, 5), (2, 5), (4, 5), (4, 5), (5, 5), (5, 5)]


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 42.4, 725, 3723)] == ["0:00", "0:42", "12:05", "1:02:03"]


@pytest.mark.slow
def test_a_piped_run_prints_progress_lines_per_batch_and_a_plain_scorecard(trec_small, tmp_path):
    """`advise run | tee log`: a real subprocess whose stdout is a pipe, not a terminal."""
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"}}
    env["ADVISE_PROGRESS_EVERY"] = "0"  # every move on its own line, so the per-batch moves show
    proc = subprocess.run(
        [sys.executable, "-c", "from advisor.cli import main; main()", "run", str(trec_small),
         "--out", str(tmp_path / "run"), "--lever", "prompt", "--limit", "12", "--batch-size", "4",
         "--latency-probe", "2"],
        capture_output=True, text=True, env=env, timeout=600,  # stdout is a pipe, not a terminal
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "\x1b[" not in out  # plain text: no colour codes, no cursor moves
    lines = out.splitlines()
    predicting = [ln for ln in lines if ln.startswith("prompt: predicting: ")]
    # 12 items in batches of 4: the line moves per batch (4, 8, 12), not once per stored chunk.
    counts = [int(re.match(r"prompt: predicting: (\d+)/12", ln).group(1)) for ln in predicting]
    assert counts[0] == 0 and {4, 8, 12} <= set(counts), predicting
    assert predicting[-1].startswith("prompt: predicting: 12/12 (100%), done in")
    assert any(re.search(r"predicting: (4|8)/12 \(\d+%\), [\d.]+/s, \d+:\d\d left", ln) for ln in predicting)
    assert any(ln.startswith("prompt: latency probe: 2/2") for ln in lines)
    # The scorecard as plain text after the progress.
    assert "trec-question-type: quality" in out and "Recommendation" in out
    assert out.index("Recommendation") > out.index("prompt: predicting: 12/12")
    tail = out.rstrip().splitlines()[-2:]  # the paths close the output, each on one unwrapped line
    assert tail[0].startswith("Results: ") and tail[1].startswith("Report: ") and tail[1].endswith("report.md")


def test_a_terminal_gets_rich_bars_with_time_left_from_the_recent_rate():
    out = io.StringIO()
    progress = ProgressReporter(Console(file=out, force_terminal=True, width=100))
    assert progress.mode == "rich"
    with progress:
        advance = progress("lora: training", 10)
        for step in range(1, 6):
            time.sleep(0.02)
            advance(step, 10, description=f"lora: training, loss {1 / step:.3f}")
        task = progress._rich.tasks[0]
        assert task.fields["eta_at"] > time.monotonic()  # about 5 steps at ~50/s: a time left
        with progress.status("lora: merging adapter"):
            assert len(progress._rich.tasks) == 2
        assert len(progress._rich.tasks) == 1  # a quick status step leaves no line behind
        advance(10, 10)
    assert "lora: training, loss 0.200" in out.getvalue()
