"""LLM layer: backends (Ollama native, OpenAI-compatible) and the request queue."""
