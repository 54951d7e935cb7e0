from __future__ import annotations

import asyncio
from typing import Annotated

import pytest
from pydantic import Field

from ai_sysadmin.agent.registry import ToolRegistry, ToolResult
from ai_sysadmin.agent.tools import REGISTRY


def test_schema_comes_from_the_signature_and_docstring() -> None:
    spec = next(s for s in REGISTRY.specs() if s.name == "journal")
    props = spec.parameters["properties"]
    assert spec.description.startswith("Read the systemd journal")
    assert props["lines"] == {"default": 50, "description": "Newest entries to show.",
                              "maximum": 500, "minimum": 1, "type": "integer"}
    assert props["priority"]["enum"][:3] == ["emerg", "alert", "crit"]
    assert spec.parameters["additionalProperties"] is False
    assert "run_readonly" in REGISTRY.names and "propose_action" in REGISTRY.names


def test_two_tools_with_one_name_fail_loudly() -> None:
    registry = ToolRegistry()

    async def ping(ctx: object) -> str:
        return "pong"

    registry.tool()(ping)
    with pytest.raises(ValueError, match="two tools are named 'ping'"):
        registry.tool()(ping)


def test_malformed_calls_become_errors_the_model_can_read(ctx) -> None:
    registry = ToolRegistry()

    @registry.tool()
    async def add(ctx: object, a: Annotated[int, Field(description="first")], b: int = 1) -> str:
        """Add two numbers."""
        return str(a + b)

    def call(name: str, args: dict | None, raw: str = "") -> ToolResult:
        return asyncio.run(registry.call(name, args, ctx, raw))

    assert call("add", {"a": 2}).output == "3"
    unknown = call("sub", {"a": 1})
    assert unknown.status == "error" and "unknown tool 'sub'; tools: add" in unknown.output
    bad_json = call("add", None, "{a: 2")
    assert bad_json.status == "error" and "must be a JSON object" in bad_json.output
    assert "{a: 2" in bad_json.output
    wrong = call("add", {"a": "two"})
    assert wrong.status == "error" and "a: Input should be a valid integer" in wrong.output
    assert '"description": "first"' in wrong.output
    missing = call("add", {})
    assert "a: Field required" in missing.output
    extra = call("add", {"a": 1, "c": 3})
    assert "c: Extra inputs are not permitted" in extra.output
