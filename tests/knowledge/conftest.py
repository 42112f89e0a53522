"""Fixtures for the knowledge store: the real embedding model, a real `chroma run` server."""

from __future__ import annotations

import pytest

from advisor.knowledge.documents import Document


@pytest.fixture(scope="session")
def embedder():
    """The embedded all-MiniLM-L6-v2, loaded once for the session."""
    from advisor.knowledge.embeddings import Embedder

    emb = Embedder()
    emb.encode(["warm up"])  # load now, so the first test does not pay for it
    return emb


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
