"""The embedder: the real embedded all-MiniLM-L6-v2, never a hub."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.errors import BackendError
from advisor.knowledge.embeddings import Embedder, embedded_model_path


@pytest.mark.slow
def test_encode_gives_normalized_float32_vectors(embedder):
    before = embedder.encode_seconds
    vectors = embedder.encode(["How do I bake bread?", "Bread baking at home", "Chess openings"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # related texts are closer
    assert embedder.encode_seconds > before
    assert embedder.encode([]).shape == (0, 384)


def test_default_aliases_and_identity_name_the_embedded_model():
    path = embedded_model_path()
    assert (path / "model.safetensors").is_file()
    default, alias, by_path = Embedder(), Embedder("all-MiniLM-L6-v2"), Embedder(str(path))
    assert default.path == alias.path == by_path.path
    assert default.identity == alias.identity == by_path.identity
    assert default.identity.startswith("all-minilm-l6-v2-")


def test_unknown_model_folder_is_a_backend_error(tmp_path):
    with pytest.raises(BackendError, match="embedding model folder not found"):
        Embedder(str(tmp_path / "no-such-model"))


def test_identity_changes_with_the_model_files(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text('{"dim": 1}')
    first = Embedder(str(model)).identity
    assert first.startswith("my-model-")
    (model / "config.json").write_text('{"dim": 2}')
    assert Embedder(str(model)).identity != first
