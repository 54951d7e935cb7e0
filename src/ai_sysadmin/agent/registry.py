"""Tools are typed functions; the signature is the JSON schema the model reads.

A call with an unknown name, arguments that are not a JSON object, or arguments that do not
validate comes back as an error result the model can correct; it never raises.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..llm.types import MAX_ARGUMENT_DEPTH, ToolSpec
from ..safety.catalog import validation_problems

Status = Literal["ok", "error", "refused"]


@dataclass
class ToolResult:
    status: Status
    output: str
    #: the exact argv that ran, when a command ran
    command: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: host text (untrusted) vs. text the program wrote itself
    from_host: bool = True
    #: text of the program's own that goes with host text (the knowledge base's recall after
    #: an incident's evidence): shown after the host's block, never inside it, where a host's
    #: line could pose as one of its items ("[operator note · may guide a fix]")
    ours: str = ""
    #: its newest lines last (a journal): cut where it is read once (the evidence mode, no
    #: read_more), its end is kept with its beginning, not lost from a head cut
    newest_last: bool = False


ToolFn = Callable[..., Awaitable[ToolResult | str]]
#: why a tool cannot serve a conversation (its context lacks what it reads), or None where
#: it can: a model is not offered a tool that could only answer that it cannot
Unavailable = Callable[[Any], str | None]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    model: type[BaseModel]
    fn: ToolFn
    unavailable: Unavailable | None = None

    def why_not(self, ctx: Any) -> str | None:
        """Why the tool cannot serve ``ctx``'s conversation; None where it can."""
        return self.unavailable(ctx) if self.unavailable is not None else None

    @property
    def spec(self) -> ToolSpec:
        schema = self.model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return ToolSpec(self.name, self.description, schema)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def tool(self, unavailable: Unavailable | None = None) -> Callable[[ToolFn], ToolFn]:
        """Register ``async def name(ctx, arg: Annotated[type, Field(description=...)])``.

        The docstring's first paragraph is the description the model reads. ``unavailable``
        says why a conversation's context cannot serve the tool (see :meth:`offered`).
        """

        def register(fn: ToolFn) -> ToolFn:
            name = fn.__name__
            if name in self._tools:
                raise ValueError(f"two tools are named {name!r}")
            hints = get_type_hints(fn, include_extras=True)
            fields: dict[str, Any] = {}
            for index, param in enumerate(inspect.signature(fn).parameters.values()):
                if index == 0:
                    continue  # the ToolContext
                default = ... if param.default is inspect.Parameter.empty else param.default
                fields[param.name] = (hints[param.name], default)
            model = create_model(f"{name}_params", __base__=_Params, **fields)
            doc = inspect.getdoc(fn) or name
            self._tools[name] = Tool(name, doc.split("\n\n")[0], model, fn, unavailable)
            return fn

        return register

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def offered(self, ctx: Any) -> list[str]:
        """The tools a conversation with this context is offered: those that can serve it."""
        return [name for name in self.names if self._tools[name].why_not(ctx) is None]

    def specs(self, names: list[str] | None = None) -> list[ToolSpec]:
        chosen = self._tools if names is None else {n: self._tools[n] for n in names}
        return [tool.spec for tool in chosen.values()]

    async def call(self, name: str, arguments: dict[str, Any] | None, ctx: Any,
                   raw_arguments: str = "") -> ToolResult:
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult(
                "error", f"unknown tool {name!r}; tools: {', '.join(self.names)}", from_host=False
            )
        if arguments is None:
            return ToolResult(
                "error",
                f"the arguments of {name} must be a JSON object, nested at most "
                f"{MAX_ARGUMENT_DEPTH} levels deep; got {raw_arguments[:200]!r}",
                from_host=False,
            )
        try:
            params = tool.model.model_validate(arguments)
        except ValidationError as exc:
            problems = validation_problems(exc, "arguments")
            schema = json.dumps(tool.spec.parameters.get("properties", {}))
            return ToolResult(
                "error", f"invalid arguments for {name}: {problems}. Parameters: {schema}",
                params=arguments, from_host=False,
            )
        values = params.model_dump()
        why = tool.why_not(ctx)
        if why is not None:  # a tool that could only fail here is not run
            return ToolResult("error", why, params=values, from_host=False)
        try:
            result = await tool.fn(ctx, **values)
        except Exception as exc:  # a tool failure is data for the model
            return ToolResult("error", f"{name} failed: {type(exc).__name__}: {exc}",
                              params=values, from_host=False)
        if isinstance(result, str):
            result = ToolResult("ok", result)
        result.params = values
        return result
