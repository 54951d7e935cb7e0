"""Layer 8: the knowledge base (ChromaDB) -- what the assistant knows and has learned.

- :mod:`.models`: the records (``KnowledgeEntry``, ``IncidentRecord``, ``SystemProfile``,
  ``ConfigChunk``, ``Hit``; ``Provenance`` = seed | operator | learned). No ChromaDB.
- :mod:`.store`: ``KnowledgeBase.open(settings)``, embedded under ``state_dir/knowledge`` or a
  ``chroma run`` server (``knowledge.url``, token auth); collections knowledge, incidents,
  systems, config_chunks.
- :mod:`.embeddings`: our own offline embedding functions (all-MiniLM-L6-v2 int8 ONNX,
  checksummed; or an Ollama model when configured).
- :mod:`.seed`: the shipped seed knowledge (``seed.toml``).

Importing this package imports nothing heavy: chromadb, onnxruntime and tokenizers load when
a knowledge base is opened or a text embedded, so ``check`` and ``--help`` never pay for them.
May import config, hosts, monitor, store, safety, llm, agent; imported only by executor,
notify, orchestrator, lab and cli.
"""
