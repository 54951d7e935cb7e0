"""The agent: typed tools in a registry, the system prompt, the tool-calling loop."""
