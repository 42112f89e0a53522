"""load_knowledge: folders and JSONL, and errors that name file, line and field."""

from __future__ import annotations

import json

import pytest

from advisor.errors import InputError
from advisor.knowledge.documents import load_knowledge


def test_folder_is_walked_recursively_sorted_with_posix_ids(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "z.md").write_text("zeta")
    (tmp_path / "b" / "one.txt").write_text("bee")
    (tmp_path / "a" / "deep" / "x.MD").write_text("deep x")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")  # not knowledge
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.md").write_text("hidden")  # hidden folders are skipped
    (tmp_path / "empty.md").write_text("  \n")  # empty placeholder is skipped

    docs = load_knowledge(tmp_path)

    assert [d.id for d in docs] == ["a/deep/x.MD", "b/one.txt", "z.md"]
    assert [d.text for d in docs] == ["deep x", "bee", "zeta"]


def test_jsonl_records_with_metadata(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text(
        json.dumps({"id": "d1", "text": "one", "metadata": {"lang": "en"}})
        + "\n\n"
        + json.dumps({"id": "d2", "text": "two"})
        + "\n"
    )
    docs = load_knowledge(path)
    assert [(d.id, d.text, d.metadata) for d in docs] == [
        ("d1", "one", {"lang": "en"}),
        ("d2", "two", {}),
    ]


@pytest.mark.parametrize(
    ("lines", "line", "field", "words"),
    [
        (['{"id": "a", "text": "x"}', '{"id": "b", "text": '], 2, None, "broken JSON"),
        (['{"text": "x"}'], 1, "id", "missing"),
        (['{"id": "a", "text": "x"}', '{"id": "b"}'], 2, "text", "missing"),
        (['{"id": "a", "text": ""}'], 1, "text", "non-empty"),
        (['{"id": 3, "text": "x"}'], 1, "id", "string"),
        (['{"id": "a", "text": "x", "metadata": [1]}'], 1, "metadata", "object"),
        (['{"id": "a", "text": "x", "meta": {}}'], 1, "meta", "unknown field"),
        (['{"id": "a", "text": "x", "metadata": {"start": 1}}'], 1, "metadata.start", "reserved"),
        (['["a", "x"]'], 1, None, "object"),
        (
            ['{"id": "a", "text": "x"}', '{"id": "b", "text": "y"}', '{"id": "a", "text": "z"}'],
            3,
            "id",
            "duplicate id 'a' (first on line 1)",
        ),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, lines, line, field, words):
    path = tmp_path / "kb.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        load_knowledge(path)
    err = info.value
    assert err.exit_code == 2
    assert err.file == str(path) and err.line == line and err.field == field
    assert words in str(err)
    assert str(err).startswith(f"{path}:{line}: ")


def test_empty_knowledge_is_an_error(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "readme.pdf").write_bytes(b"x")
    with pytest.raises(InputError, match="no knowledge found") as info:
        load_knowledge(folder)
    assert info.value.file == str(folder)

    empty = tmp_path / "kb.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="no knowledge found"):
        load_knowledge(empty)


def test_missing_path_and_wrong_format(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_knowledge(tmp_path / "nope")
    csv = tmp_path / "kb.csv"
    csv.write_text("id,text\n")
    with pytest.raises(InputError, match="unsupported knowledge format"):
        load_knowledge(csv)


def test_non_utf8_file_names_the_file(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9")
    with pytest.raises(InputError, match="not UTF-8") as info:
        load_knowledge(tmp_path)
    assert info.value.file == str(tmp_path / "bad.txt")
