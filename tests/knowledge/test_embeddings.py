"""The offline embedding model: unit vectors, padded per batch, refused when its files are
not the ones we checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ai_sysadmin.errors import EmbeddingError
from ai_sysadmin.knowledge.embeddings import (
    TOKENIZER_FILE,
    MiniLMEmbedding,
    default_model_path,
)


def test_vectors_are_unit_length_and_similar_texts_are_close(embedder: MiniLMEmbedding) -> None:
    texts = ["nginx cannot bind to port 80", "the web server fails: address already in use",
             "garbage-collect the nix store"]
    vectors = np.array(embedder(texts))
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]


def test_a_text_embeds_the_same_alone_or_beside_a_long_one(embedder: MiniLMEmbedding) -> None:
    """Padding to the batch's longest text must not change a short text's vector."""
    short = "disk full"
    # the model itself: a text already embedded in this process is not computed again
    alone = np.array(embedder._embed([short]))[0]
    beside = np.array(embedder._embed([short, "word " * 300]))[0]
    assert np.allclose(alone, beside, atol=1e-4)


def test_a_text_embedded_again_is_not_computed_again(embedder: MiniLMEmbedding,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed, a file indexed again, a query asked again: about 0.15 s of CPU a note."""
    computed: list[str] = []
    model = embedder._embed

    def counting(texts: list[str]) -> object:
        computed.extend(texts)
        return model(texts)

    monkeypatch.setattr(embedder, "_embed", counting)
    texts = ["sshd refuses the key of web7", "the backup of db3 is 9 days old"]
    first = embedder([texts[0], texts[1], texts[0]])
    assert sorted(computed) == sorted(texts)  # each text once, a repeat in the batch too
    first[0][:] = 0  # what a caller does with its vectors is its own
    again = MiniLMEmbedding()([texts[1], texts[0]])  # another instance of the same model
    assert len(computed) == 2
    assert np.allclose(again[1], first[2]) and np.allclose(again[0], first[1])
    assert np.linalg.norm(again[1]) == pytest.approx(1.0, abs=1e-4)


def test_a_model_file_with_the_wrong_checksum_is_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "model.onnx"
    shutil.copyfile(default_model_path(), damaged)
    with damaged.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(EmbeddingError, match="sha256 .* expected 8199be6f.*damaged"):
        MiniLMEmbedding(model_path=damaged).load()
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(TOKENIZER_FILE.read_text().replace("[UNK]", "[UNKNOWN]", 1))
    with pytest.raises(EmbeddingError, match="tokenizer"):
        MiniLMEmbedding(tokenizer_path=tokenizer)(["x"])
    with pytest.raises(EmbeddingError, match="cannot be read"):
        MiniLMEmbedding(model_path=tmp_path / "missing.onnx").load()


def test_the_embedding_functions_leave_name_to_chromadb() -> None:
    # chromadb 1.x (NixOS ships it) calls an embedding function's name(): a str there made
    # every collection fail to open ("'str' object is not callable"); the model each store was
    # made with is model_name
    from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding, OllamaEmbedding

    ollama = OllamaEmbedding("http://127.0.0.1:9", "nomic-embed-text")
    for embedder in (MiniLMEmbedding, ollama):
        assert not isinstance(getattr(embedder, "name", None), str)
    assert MiniLMEmbedding.model_name == "minilm-l6-v2-int8"
    assert ollama.model_name == "ollama:nomic-embed-text"
