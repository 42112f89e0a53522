"""Fixtures for the knowledge store: the real embedding model, a real `chroma run` server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from advisor.knowledge.documents import Document

SERVER_START_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def embedder():
    """The embedded all-MiniLM-L6-v2, loaded once for the session."""
    from advisor.knowledge.embeddings import Embedder

    emb = Embedder()
    emb.encode(["warm up"])  # load now, so the first test does not pay for it
    return emb


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> Iterator[str]:
    """A real Chroma server on a free local port; yields its URL and stops it afterwards."""
    exe = Path(sys.executable).with_name("chroma")
    if not exe.exists():
        pytest.fail(f"the `chroma` executable is not next to {sys.executable}; reinstall chromadb")
    data = tmp_path_factory.mktemp("chroma-server")
    log_path = data.parent / "chroma-server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(exe), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(data)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _heartbeat(url):
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer within {SERVER_START_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()  # SIGTERM to this pid only; the server shuts down cleanly on it
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


# Five documents on unrelated topics, so an obvious query has one right answer.
CORPUS = {
    "baking/bread.md": (
        "# Baking bread at home\n\n"
        "Mix flour, water, salt and yeast into a shaggy dough. Knead the dough for ten minutes "
        "until it is smooth and springs back when pressed.\n\n"
        "Let the dough rise in a warm place until it doubles in size, about an hour. Shape it "
        "into a loaf, let it prove again, then bake at 230 degrees for thirty minutes.\n\n"
        "A loaf is done when it sounds hollow when tapped underneath. Cool it on a rack."
    ),
    "volcanoes.md": (
        "# Volcanoes\n\n"
        "A volcano is an opening in the crust of the Earth through which molten rock, ash and "
        "gases escape. Magma that reaches the surface is called lava.\n\n"
        "Stratovolcanoes such as Mount Fuji are built from layers of hardened lava and ash. "
        "Their eruptions are often explosive because their magma is thick and full of gas.\n\n"
        "Shield volcanoes, like those of Hawaii, have gentle slopes made by runny basalt lava."
    ),
    "chess.txt": (
        "Chess is a board game for two players on a board of sixty-four squares.\n\n"
        "Each player starts with sixteen pieces: a king, a queen, two rooks, two bishops, two "
        "knights and eight pawns. The knight moves in an L shape and can jump over pieces.\n\n"
        "The game is won by checkmate: the king is attacked and has no legal move to escape."
    ),
    "tax/vat.md": (
        "# Value added tax\n\n"
        "Value added tax is a consumption tax charged on the sale of goods and services. A "
        "business collects it from customers and pays it to the tax authority.\n\n"
        "Businesses can usually reclaim the VAT they paid on their own purchases, so the tax "
        "falls on the final consumer. Invoices must show the VAT rate and amount."
    ),
    "python.md": (
        "# Python lists\n\n"
        "A Python list is an ordered, mutable sequence. Create one with square brackets and "
        "append items with the append method.\n\n"
        "Slicing a list with a colon returns a new list. Sorting in place uses list.sort, while "
        "the sorted function returns a new sorted list and leaves the original unchanged."
    ),
}


@pytest.fixture
def corpus() -> list[Document]:
    return [Document(id=k, text=v, metadata={"topic": k.split("/")[0]}) for k, v in CORPUS.items()]
