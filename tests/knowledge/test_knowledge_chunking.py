"""Chunking: exact offsets on many generated documents, paragraph packing, stable ids."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from advisor.knowledge.chunking import ChunkingConfig, chunk_document, chunk_id
from advisor.knowledge.documents import Document

WORDS = "the a knowledge index of café naïve 東京 retrieval chunk paragraph overlap size".split()


def _random_text(rng: random.Random) -> str:
    """Paragraphs of sentences with messy whitespace, the odd long token and odd breaks."""
    paragraphs = []
    for _ in range(rng.randint(0, 8)):
        sentences = []
        for _ in range(rng.randint(1, 12)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(1, 25))]
            if rng.random() < 0.05:
                words.append("x" * rng.randint(50, 700))  # a token longer than most chunks
            end = rng.choice([".", "!", "?", "", '."', ".)"])
            sentences.append(" ".join(words) + end)
        joiner = rng.choice([" ", "  ", "\n", " \t"])
        paragraphs.append(joiner.join(sentences))
    breaks = ["\n\n", "\n\n\n", "\n  \n", "\r\n\r\n", "\n \t\n\n"]
    text = "".join(p + rng.choice(breaks) for p in paragraphs)
    return rng.choice(["", " ", "\n\n"]) + text + rng.choice(["", "\n", "  "])


def test_offsets_are_exact_on_many_random_documents():
    rng = random.Random(20261128)
    for case in range(600):
        text = _random_text(rng)
        size = rng.choice([1, 5, 40, 120, 300, 800])
        overlap = rng.randint(0, size - 1) if rng.random() < 0.8 else 0
        doc = Document(id=f"doc-{case}", text=text, metadata={"n": case})
        chunks = chunk_document(doc, size=size, overlap=overlap)
        where = f"case {case}: size={size} overlap={overlap}"

        if not text.strip():
            assert chunks == [], where
            continue
        assert chunks, where
        assert chunks[0].start == len(text) - len(text.lstrip()), where
        assert chunks[-1].end == len(text.rstrip()), where
        for c in chunks:
            assert text[c.start : c.end] == c.text, where
            assert 0 < len(c.text) <= size, where
            assert c.text == c.text.strip(), where
            assert c.id == chunk_id(doc.id, c.start, c.end, c.text), where
            assert c.source_id == doc.id and c.metadata == {"n": case}, where
        for prev, nxt in zip(chunks, chunks[1:]):
            assert nxt.start > prev.start and nxt.end > prev.end, where
            # No more than `overlap` characters are carried, and nothing is skipped.
            assert nxt.start >= prev.end - overlap, where
            assert not text[prev.end : nxt.start].strip(), where
        assert len({c.id for c in chunks}) == len(chunks), where


def test_small_paragraphs_are_packed_into_one_chunk():
    text = "First paragraph here.\n\nSecond one.\n\nThird and last."
    chunks = chunk_document(Document("d", text), size=800, overlap=100)
    assert [c.text for c in chunks] == [text]


def test_chunks_end_on_paragraph_ends_when_paragraphs_fit():
    paragraphs = [f"Paragraph {i} " + "word " * (5 + 7 * i % 30) + "end." for i in range(12)]
    text = "\n\n".join(paragraphs)
    chunks = chunk_document(Document("d", text), size=300, overlap=0)
    assert len(chunks) > 1
    for c in chunks:
        # Whole paragraphs only: each chunk is a run of complete paragraphs.
        assert c.text.startswith("Paragraph ") and c.text.endswith("end.")
        assert all(p in paragraphs for p in c.text.split("\n\n"))
    assert "\n\n".join(c.text for c in chunks) == text


def test_long_paragraph_is_split_on_sentences():
    sentences = [f"Sentence {i} says something short." for i in range(40)]
    text = "Intro.\n\n" + " ".join(sentences)
    chunks = chunk_document(Document("d", text), size=200, overlap=0)
    assert chunks[0].text == "Intro."
    for c in chunks[1:]:
        assert c.text.startswith("Sentence ") and c.text.endswith("short.")
        assert len(c.text) <= 200


def test_unbroken_text_is_cut_hard_at_size():
    text = "x" * 1000
    chunks = chunk_document(Document("d", text), size=300, overlap=0)
    assert [(c.start, c.end) for c in chunks] == [(0, 300), (300, 600), (600, 900), (900, 1000)]
    chunks = chunk_document(Document("d", text), size=300, overlap=50)
    assert [(c.start, c.end) for c in chunks] == [(0, 300), (250, 550), (500, 800), (750, 1000)]


def test_overlap_carries_whole_words_into_the_next_chunk():
    text = " ".join(f"w{i:03d}" for i in range(300))  # 1199 characters, words of 4
    chunks = chunk_document(Document("d", text), size=200, overlap=40)
    for prev, nxt in zip(chunks, chunks[1:]):
        carried = text[nxt.start : prev.end]
        assert 30 < len(carried) <= 40
        assert prev.text.endswith(carried)
        assert text[nxt.start - 1] == " "  # starts on a word


def test_ids_change_exactly_when_chunks_change():
    paragraphs = [f"Paragraph {i}. " + "Some filler words here. " * 6 for i in range(8)]
    doc = Document("d", "\n\n".join(paragraphs))
    before = chunk_document(doc, size=300, overlap=50)
    assert [c.id for c in chunk_document(doc, size=300, overlap=50)] == [c.id for c in before]

    appended = Document("d", doc.text + "\n\nA new closing paragraph.")
    after = chunk_document(appended, size=300, overlap=50)
    changed = {c.id for c in after} - {c.id for c in before}
    assert 0 < len(changed) < len(after)  # earlier chunks keep their ids
    assert after[0].id == before[0].id

    prepended = Document("d", "New opening.\n\n" + doc.text)
    shifted = chunk_document(prepended, size=300, overlap=50)
    assert not {c.id for c in shifted} & {c.id for c in before}  # every offset moved

    renamed = chunk_document(Document("e", doc.text), size=300, overlap=50)
    assert not {c.id for c in renamed} & {c.id for c in before}


def test_chunking_config_validates_its_fields():
    assert ChunkingConfig().size == 800 and ChunkingConfig().overlap == 100
    with pytest.raises(ValidationError, match="`overlap` must be smaller than `size`"):
        ChunkingConfig(size=100, overlap=100)
    with pytest.raises(ValidationError, match="size"):
        ChunkingConfig(size=0, overlap=0)
    with pytest.raises(ValidationError, match="overlap"):
        ChunkingConfig(size=10, overlap=-1)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ChunkingConfig(size=100, overlap=10, sise=3)
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(Document("d", "text"), size=10, overlap=10)
