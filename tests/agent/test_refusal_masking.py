"""A refusal quotes the model's argument cut short (40 characters): a token that starts near
the cut is masked whole before the cut, where the cut left too little of it for its pattern
and its first characters reached the model and the queue's stored requests in clear."""

from __future__ import annotations

import pytest

from tests.agent.test_loop import run_agent
from tests.support.scripted_model import ScriptedModel, call, say, tool_results

#: a GitHub token: its shape alone says it is one, once 30 characters follow "ghp_"
TOKEN = "ghp_" + "Q7wErT9yUiOpAsDfGhJkLzXcVbNm1234Ab"
#: what of it a cut 40 characters into "x" * 14 + TOKEN kept: too short for the pattern
PART = TOKEN[4:22]


@pytest.mark.parametrize(("argv", "refusal"), [
    (["ip", "x" * 14 + TOKEN], "ip needs one of"),
    (["find", "x" * 14 + TOKEN], "find starting point"),
])
def test_a_token_the_quote_of_a_refused_argument_cuts_is_masked_whole(
        run_with_model, ctx, argv: list[str], refusal: str) -> None:
    with ScriptedModel([call("run_readonly", argv=argv), say("DIAGNOSIS: refused")]) as model:
        run_agent(run_with_model, model, ctx)
        (result,) = tool_results(model.requests[1])
    # the refusal's words; the line above it echoes the model's own call
    (reason,) = [line for line in result.splitlines() if line.startswith("refused by policy")]
    assert refusal in reason, result
    assert PART not in reason and "x" * 14 + "[redacted]" in reason, reason
