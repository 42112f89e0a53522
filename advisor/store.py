"""The run store: SQLite in the run folder, holding every prediction and every run.

Predictions are cached under a key of everything that can change an answer, and
each batch is committed as soon as it is done, so a run killed half way (Ctrl-C,
kill -9) resumes where it stopped and a repeated run recomputes nothing.

One writer at a time: opening a store for writing takes an advisory lock (`fcntl.flock`) on
`advise.sqlite.lock` beside it, held until `close`, so a second run into the same folder is
refused in one line instead of interleaving its rows with the first's. Holding the lock also
proves that a run still marked `running` is dead (killed with `kill -9`, or its machine went
down): it is marked `abandoned` on open (`RunStore.abandoned` lists them).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None  # type: ignore[assignment]

from advisor.data import stable_hash
from advisor.errors import DiskFullError, InputError, is_disk_full, is_not_writable
from advisor.types import Example, GenerationParams, Prediction, Request

# A plain list of migrations; PRAGMA user_version says how many have run.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE predictions (
        key TEXT PRIMARY KEY,
        lever TEXT NOT NULL,
        example_id TEXT NOT NULL,
        backend TEXT NOT NULL,
        raw TEXT NOT NULL,
        output TEXT NOT NULL,          -- JSON of the parsed output
        tokens_in INTEGER NOT NULL,
        tokens_out INTEGER NOT NULL,
        seconds REAL NOT NULL,
        option_scores TEXT,            -- JSON list, for option ranking
        context TEXT NOT NULL,         -- JSON: what the request carried (e.g. retrieved chunks)
        created REAL NOT NULL
    );
    CREATE TABLE latencies (
        key TEXT PRIMARY KEY,
        lever TEXT NOT NULL,
        ms REAL NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        status TEXT NOT NULL,          -- running | done | interrupted | failed | abandoned
        results TEXT                   -- results.json of this run
    );
    CREATE TABLE item_scores (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        lever TEXT NOT NULL,
        example_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (run_id, lever, example_id, metric)
    );
    """,
    # What each run showed each lever and what it answered, in eval order: a stored run's
    # report samples failures (input, gold, output) from here without loading the data or a model.
    """
    CREATE TABLE run_items (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        lever TEXT NOT NULL,
        position INTEGER NOT NULL,     -- index in the eval set
        example_id TEXT NOT NULL,
        source TEXT NOT NULL,          -- "file:line" of the eval example
        input TEXT NOT NULL,
        gold TEXT NOT NULL,            -- JSON of the gold output
        output TEXT NOT NULL,          -- JSON of the parsed output
        raw TEXT NOT NULL,             -- the model's text as generated
        PRIMARY KEY (run_id, lever, position)
    );
    """,
    # Prompt tokens read from a shared-prefix cache instead of computed (Prediction.tokens_in_cached).
    # NULL in rows stored before it was recorded: read as 0, so they stay charged in full, as they were.
    "ALTER TABLE predictions ADD COLUMN tokens_in_cached INTEGER;",
    # Why an output failed a check (advisor.checks), per item: the report shows it beside the answer.
    # Only failures are kept; a pass has no reason.
    """
    CREATE TABLE item_reasons (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        lever TEXT NOT NULL,
        example_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (run_id, lever, example_id, metric)
    );
    """,
    # A judge's grades (advisor.judge.grading), cached like predictions: keyed by the judge's identity,
    # the judge prompt's hash, the criterion and the graded text's hash, so a rerun grades nothing twice.
    # grade: 1.0 pass, 0.0 fail, NULL unscored (the judge's answer could not be read; `answer` keeps it).
    # run_grades: which grades each run's lever got, per item.
    """
    CREATE TABLE judge_grades (
        key TEXT PRIMARY KEY,
        judge TEXT NOT NULL,
        prompt_hash TEXT NOT NULL,
        criterion TEXT NOT NULL,
        output_hash TEXT NOT NULL,
        grade REAL,
        answer TEXT NOT NULL,
        tokens_in INTEGER NOT NULL,
        tokens_out INTEGER NOT NULL,
        usd REAL,
        created REAL NOT NULL
    );
    CREATE TABLE run_grades (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        lever TEXT NOT NULL,
        example_id TEXT NOT NULL,
        criterion TEXT NOT NULL,
        output_hash TEXT NOT NULL,
        grade REAL,
        PRIMARY KEY (run_id, lever, example_id, criterion)
    );
    """,
]


def request_hash(request: Request) -> str:
    """Hash of exactly what the model sees: the messages, options, budget and schema."""
    return stable_hash(
        {
            "messages": request.messages,
            "options": request.options,
            "max_new_tokens": request.max_new_tokens,
            "json_schema": request.json_schema,
        }
    )


def prediction_key(*, backend: str, lever: str, artifact: str, request: Request, params: GenerationParams) -> str:
    """The cache key: model identity, lever config, exactly what the model sees, decoding params.

    The example enters only through its request (the rendered prompt, options, budget), so
    what cannot change an answer cannot invalidate it: a corrected gold label or gold source,
    a metadata field the template does not use, a knowledge edit that leaves a question's
    retrieved text as it was. Per-example facts (id, retrieval scores against the gold
    sources) come from this run's requests, never from the cache.
    """
    return stable_hash([backend, lever, artifact, request_hash(request), params.key()])


def lock_path(store: Path) -> Path:
    """The lock file beside a store: `advise.sqlite.lock`."""
    return store.with_name(store.name + ".lock")


class FolderLock:
    """The run folder's writer lock: an exclusive `fcntl.flock` on `path`, which holds the holder's pid
    (for the refusal's message). Advisory: only advise takes it. The kernel drops it when the holder's
    process ends, however it ends, so a killed run never leaves the folder locked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock, or raise InputError (exit 2) naming the folder when another process holds it.

        OSError when the lock file cannot be created or opened (a read-only folder)."""
        if fcntl is None:  # pragma: no cover
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                fd = os.open(self.path, os.O_RDONLY)  # a read-only lock file still locks
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                who = f" (pid {pid})" if pid.isdigit() else ""
                raise InputError(f"another advise run{who} is using this run folder; wait for it to finish, or "
                                 "give another --out", file=self.path.parent) from None
            try:  # the holder before us may have removed the file (a run that left nothing) and another made it anew
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk or a read-only file: the pid is only for the message
            pass
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


class RunStore:
    """A run folder's SQLite store, open for writing (one writer at a time: see the module docstring).

    Raises InputError (exit 2) when another process holds the folder's lock, when the folder or the
    store cannot be written (read-only, immutable, a file in the way) or when `path` is not a SQLite
    file; DiskFullError (exit 1) when the disk is full before the store is ready.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.abandoned: list[dict[str, Any]] = []  # runs found `running` and marked abandoned on open
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FolderLock(lock_path(path)).acquire()
        except OSError as e:
            raise InputError(f"cannot be written: {e.strerror or e}", file=e.filename or path.parent) from None
        try:
            self.db = sqlite3.connect(str(path), timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")  # a reader never blocks the writer
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self.abandoned = self._abandon_running()
        except sqlite3.Error as e:
            self._lock.release()
            if is_disk_full(e):
                raise DiskFullError(f"{path}: the disk is full ({e}); free some space and run again") from None
            if is_not_writable(e):
                raise InputError(f"cannot be written: {e}", file=path) from None
            raise InputError(f"not a run store advise can open: {e}", file=path) from None

    @classmethod
    def read_only(cls, path: Path) -> RunStore:
        """An existing store opened for reading only: no migration, no write (a report of a stored run).

        Raises sqlite3.OperationalError when the file cannot be opened.
        """
        store = cls.__new__(cls)
        store.path = path
        store.abandoned = []
        store._lock = FolderLock(lock_path(path))  # never acquired: a reader takes no lock
        store.db = connect_read_only(path)
        return store

    def tables(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _migrate(self) -> None:
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        for i, sql in enumerate(MIGRATIONS[version:], start=version):
            with self.db:
                self.db.executescript(sql)
                self.db.execute(f"PRAGMA user_version = {i + 1}")

    def close(self) -> None:
        """Close the database, then release the folder's lock."""
        self.db.close()
        self._lock.release()

    def _abandon_running(self) -> list[dict[str, Any]]:
        """Mark every run still `running` as `abandoned` and return them: this store holds the folder's
        lock, so no live run can be writing them (they were killed, or their machine went down)."""
        rows = [r for r in self.runs() if r["status"] == "running"]
        if rows:
            with self.db:
                self.db.execute("UPDATE runs SET status='abandoned' WHERE status='running'")
        return rows

    def holds_work(self) -> bool:
        """Whether anything was computed into this store: an answer, a latency, a score or a finished run."""
        return any(self.db.execute(sql).fetchone() for sql in (
            "SELECT 1 FROM predictions LIMIT 1", "SELECT 1 FROM latencies LIMIT 1",
            "SELECT 1 FROM item_scores LIMIT 1", "SELECT 1 FROM runs WHERE status='done' LIMIT 1"))

    # -- predictions -----------------------------------------------------------------------------

    def get_predictions(self, keys: list[str]) -> dict[str, Prediction]:
        found: dict[str, Prediction] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT key, example_id, raw, output, tokens_in, tokens_out, seconds, context,"
                f" option_scores, tokens_in_cached FROM predictions WHERE key IN ({marks})",
                chunk,
            )
            for key, ex_id, raw, output, t_in, t_out, secs, context, opt, t_cached in rows:
                ctx = json.loads(context)
                if opt is not None:
                    ctx["option_scores"] = json.loads(opt)
                found[key] = Prediction(ex_id, json.loads(output), raw, t_in, t_out, secs, ctx, cached=True,
                                        tokens_in_cached=t_cached or 0)
        return found

    def put_predictions(self, lever: str, backend: str, items: list[tuple[str, Prediction]],
                        latencies: list[tuple[str, float]] | None = None) -> None:
        """Store a batch in one transaction: all of it survives a kill, or none of it. `latencies`:
        (latency key, ms) measured on these answers (an API model's), stored in the same transaction."""
        now = time.time()
        with self.db:
            if latencies:
                self.db.executemany("INSERT OR REPLACE INTO latencies VALUES (?,?,?,?)",
                                    [(key, lever, ms, now) for key, ms in latencies])
            self.db.executemany(
                "INSERT OR REPLACE INTO predictions (key, lever, example_id, backend, raw, output, tokens_in,"
                " tokens_out, seconds, option_scores, context, created, tokens_in_cached)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        key,
                        lever,
                        p.example_id,
                        backend,
                        p.raw,
                        json.dumps(p.output),
                        p.tokens_in,
                        p.tokens_out,
                        p.seconds,
                        json.dumps(p.context.get("option_scores"))
                        if "option_scores" in p.context
                        else None,
                        json.dumps({k: v for k, v in p.context.items() if k != "option_scores"}),
                        now,
                        p.tokens_in_cached,
                    )
                    for key, p in items
                ],
            )

    def count_predictions(self, lever: str | None = None, since: float | None = None) -> int:
        """Stored answers, of one lever row and/or stored at or after `since` (seconds since the epoch)."""
        sql, args = "SELECT COUNT(*) FROM predictions WHERE 1=1", []
        if lever is not None:
            sql, args = sql + " AND lever=?", [*args, lever]
        if since is not None:
            sql, args = sql + " AND created>=?", [*args, since]
        return self.db.execute(sql, args).fetchone()[0]

    def count_answered(self, lever: str, example_ids: list[str]) -> int:
        """How many of `example_ids` have at least one stored answer under the lever row `lever`."""
        wanted = set(example_ids)
        rows = self.db.execute("SELECT DISTINCT example_id FROM predictions WHERE lever=?", (lever,))
        return sum(1 for (ex_id,) in rows if ex_id in wanted)

    def bytes_per_answer(self) -> float | None:
        """The store's size per stored answer so far, in bytes: the database's pages in use (the log's
        committed pages included) less one page per table and index an empty store has, over the answers
        stored. Covers what each answer brings along (its per-item rows and scores); coarse over the first
        few answers. None before any answer is stored."""
        n = self.count_predictions()
        if not n:
            return None
        (pages,), (free,), (size,) = (self.db.execute(f"PRAGMA {p}").fetchone()
                                      for p in ("page_count", "freelist_count", "page_size"))
        (trees,) = self.db.execute("SELECT COUNT(*) FROM sqlite_master WHERE rootpage > 0").fetchone()
        return max(pages - free - trees - 1, 1) * size / n

    def log_headroom(self) -> int:
        """Bytes the write-ahead log (advise.sqlite-wal) may still grow by before SQLite checkpoints it
        (`wal_autocheckpoint` pages, 1000 by default) and then reuses it from the start."""
        (pages,), (size,) = (self.db.execute(f"PRAGMA {p}").fetchone() for p in ("wal_autocheckpoint", "page_size"))
        wal = Path(f"{self.path}-wal")
        now = wal.stat().st_size if wal.exists() else 0
        return max(0, 32 + pages * (size + 24) - now)

    # -- latency probes --------------------------------------------------------------------------

    def get_latencies(self, keys: list[str]) -> dict[str, float]:
        """{key: ms} of the latencies stored under `keys` (an API model's run asks for every eval item's)."""
        found: dict[str, float] = {}
        for i in range(0, len(keys), 500):  # under SQLite's limit on bound parameters
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(f"SELECT key, ms FROM latencies WHERE key IN ({marks})", chunk).fetchall())
        return found

    def put_latency(self, key: str, lever: str, ms: float) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO latencies VALUES (?,?,?,?)", (key, lever, ms, time.time()))

    # -- runs ------------------------------------------------------------------------------------

    def start_run(self, task: str) -> int:
        """A new run of `task`, status `running`; returns its id (the `run_id` of results.json)."""
        with self.db:
            cur = self.db.execute(
                "INSERT INTO runs (task, started, status) VALUES (?, ?, 'running')", (task, time.time())
            )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, results: dict[str, Any] | None = None) -> None:
        """Record how run `run_id` ended: `status` done (with its results.json), failed or interrupted.
        Raises sqlite3.OperationalError as SQLite does (a full disk: SQLITE_FULL)."""
        with self.db:
            self.db.execute(
                "UPDATE runs SET finished=?, status=?, results=? WHERE id=?",
                (time.time(), status, json.dumps(results) if results is not None else None, run_id),
            )

    def put_item_scores(self, run_id: int, lever: str, ids: list[str], per_item: dict[str, list[float]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO item_scores VALUES (?,?,?,?,?)",
                [
                    (run_id, lever, ex_id, metric, value)
                    for metric, values in per_item.items()
                    for ex_id, value in zip(ids, values)
                ],
            )

    def put_item_reasons(self, run_id: int, lever: str, ids: list[str], reasons: dict[str, list[str]]) -> None:
        """Keep why each item failed each check: `reasons` metric -> one string per item in `ids`'
        order ("" for a pass, not stored)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO item_reasons VALUES (?,?,?,?,?)",
                [(run_id, lever, ex_id, metric, why) for metric, whys in reasons.items()
                 for ex_id, why in zip(ids, whys) if why],
            )

    def item_reasons(self, run_id: int, lever: str) -> dict[str, dict[str, str]]:
        """example id -> {check metric: why it failed} for one run and lever ({} in a store from before checks)."""
        if "item_reasons" not in self.tables():
            return {}
        out: dict[str, dict[str, str]] = {}
        for ex_id, metric, why in self.db.execute(
                "SELECT example_id, metric, reason FROM item_reasons WHERE run_id=? AND lever=?", (run_id, lever)):
            out.setdefault(ex_id, {})[metric] = why
        return out

    def get_grades(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Cached judge grades by key: {grade (None: unscored), answer, tokens_in, tokens_out, usd}."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = self.db.execute(
                f"SELECT key, grade, answer, tokens_in, tokens_out, usd FROM judge_grades WHERE key IN "
                f"({','.join('?' * len(chunk))})", chunk)
            for key, grade, answer, tin, tout, usd in rows:
                out[key] = {"grade": grade, "answer": answer, "tokens_in": tin, "tokens_out": tout, "usd": usd}
        return out

    def put_grades(self, rows: list[tuple[str, str, str, str, str, float | None, str, int, int, float | None]]) -> None:
        """Store judge grades: (key, judge, prompt_hash, criterion, output_hash, grade, answer, tokens_in,
        tokens_out, usd) each."""
        now = time.time()
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO judge_grades VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                                [(*r, now) for r in rows])

    def put_run_grades(self, run_id: int, lever: str, rows: list[tuple[str, str, str, float | None]]) -> None:
        """Record a run's grades for one lever: (example_id, criterion, output_hash, grade) each."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO run_grades VALUES (?,?,?,?,?,?)",
                                [(run_id, lever, *r) for r in rows])

    def run_grades(self, run_id: int, lever: str) -> dict[str, dict[str, tuple[str, float | None]]]:
        """criterion -> example_id -> (output_hash, grade) of one run and lever ({} before grading existed)."""
        if "run_grades" not in self.tables():
            return {}
        out: dict[str, dict[str, tuple[str, float | None]]] = {}
        for ex_id, crit, oh, grade in self.db.execute(
                "SELECT example_id, criterion, output_hash, grade FROM run_grades WHERE run_id=? AND lever=?",
                (run_id, lever)):
            out.setdefault(crit, {})[ex_id] = (oh, grade)
        return out

    def put_run_items(self, run_id: int, lever: str, examples: list[Example], predictions: list[Prediction]) -> None:
        """Record, for one run and lever, each eval example beside the answer it got (eval order)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO run_items VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (run_id, lever, i, ex.id, ex.source, ex.input, json.dumps(ex.output, ensure_ascii=False),
                     json.dumps(p.output, ensure_ascii=False), p.raw)
                    for i, (ex, p) in enumerate(zip(examples, predictions))
                ],
            )

    def run_items(self, run_id: int, lever: str) -> list[dict[str, Any]]:
        """A run's items for one lever, in eval order: position, example_id, source, input, gold, output, raw."""
        rows = self.db.execute(
            "SELECT position, example_id, source, input, gold, output, raw FROM run_items"
            " WHERE run_id=? AND lever=? ORDER BY position",
            (run_id, lever),
        )
        return [
            {"position": pos, "example_id": ex_id, "source": src, "input": inp, "gold": json.loads(gold),
             "output": json.loads(out), "raw": raw}
            for pos, ex_id, src, inp, gold, out, raw in rows
        ]

    def item_scores(self, run_id: int, lever: str) -> dict[str, dict[str, float]]:
        """A run's per-item scores for one lever: metric -> {example_id: score}."""
        out: dict[str, dict[str, float]] = {}
        rows = self.db.execute("SELECT example_id, metric, value FROM item_scores WHERE run_id=? AND lever=?",
                               (run_id, lever))
        for ex_id, metric, value in rows:
            out.setdefault(metric, {})[ex_id] = value
        return out

    def run_results(self, run_id: int) -> dict[str, Any] | None:
        """The results.json a finished run stored, or None."""
        row = self.db.execute("SELECT results FROM runs WHERE id=?", (run_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def runs(self) -> list[dict[str, Any]]:
        """Every run the store has seen: id, task, started and finished (seconds since the epoch), status."""
        rows = self.db.execute("SELECT id, task, started, finished, status FROM runs ORDER BY id")
        return [dict(zip(("id", "task", "started", "finished", "status"), r)) for r in rows]


def connect_read_only(path: Path) -> sqlite3.Connection:
    """`path` opened for reading only. A store in a folder advise cannot write (a read-only mount, a
    copy on a CD, another user's folder) is opened as immutable: SQLite cannot make the shared-memory
    file a WAL reader needs there, and no writer can be at work in such a folder. (When the log and
    shared-memory files are there, a plain read-only open reads them and sees every committed row.)

    Raises sqlite3.OperationalError when the file cannot be opened."""
    beside = all(Path(f"{path}{s}").exists() for s in ("-wal", "-shm"))
    uri = Path(path).resolve().as_uri()  # percent-encoded: a '?' or '#' in a folder name stays a name
    if os.access(path.parent, os.W_OK) or beside:
        return sqlite3.connect(f"{uri}?mode=ro", uri=True)
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
