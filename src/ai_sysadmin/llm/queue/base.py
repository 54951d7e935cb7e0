"""The LLM request queue interface (owned by the queue implementer; see module docs)."""
