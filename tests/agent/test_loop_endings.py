"""How an answer ends, against the scripted model over both wire protocols: a tool budget
spent, an empty last reply after a full one, a reasoning block before the answer, calls a
server passed on as text; and what of an investigation's opening stays in a long one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.investigate import investigate
from ai_sysadmin.agent.loop import LAST_CALL, Agent, AgentOutcome
from ai_sysadmin.agent.prompt import HostFacts
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import AgentSettings, Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.llm.types import LLMBadResponse, Message
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import IncidentStore
from tests.support.scripted_model import (
    ScriptedModel,
    call,
    calls,
    offered_tools,
    say,
    tool_results,
)

HOST = "testhost"
FAILURE = "demo: cannot read /etc/demo.conf: No such file or directory"
RESTART = {"kind": "restart_unit", "parameters": {"unit": "demo.service"},
           "rationale": "it failed reading its config; restart once it is back"}
DIAGNOSIS = ("DIAGNOSIS: demo.service cannot read /etc/demo.conf\nEVIDENCE: " + FAILURE
             + "\nPROPOSALS: restart_unit demo.service")


def _investigate(run_with_model, model: ScriptedModel, ctx: ToolContext, settings: Settings,
                 store: IncidentStore, agent: AgentSettings | None = None) -> AgentOutcome:
    finding = Finding(HOST, "failed_unit", "demo.service", Severity.CRITICAL,
                      "demo.service has failed",
                      ("demo.service: active=failed result=exit-code", FAILURE))
    (incident_id,) = store.record_check(HOST, [finding], {"failed_unit"}).opened
    if agent is not None:
        settings = settings.model_copy(update={"agent": agent})

    async def use(llm: Any) -> AgentOutcome:
        return await investigate(store.get(incident_id), llm, ctx, settings,
                                 HostFacts(HOST, "debian", "12"))

    return run_with_model(model, use)


def _chat(run_with_model, model: ScriptedModel, ctx: ToolContext,
          question: str = "Is demo.service fine?") -> AgentOutcome:
    async def use(llm: Any) -> AgentOutcome:
        return await Agent(llm, REGISTRY, ctx, AgentSettings()).run(
            [Message("system", "You are hal."), Message("user", question)])

    return run_with_model(model, use)


def test_a_call_written_as_text_once_the_budget_is_spent_ends_the_investigation_with_its_proposal(
        run_with_model, ctx, settings, store) -> None:
    """With the budget spent the request offers no tools, and no server reads a call then:
    the model is told, and the call it writes as text anyway is the budget's end, not a
    server's fault. It failed the investigation, and the proposal made was abandoned."""
    written = ('<tool_call>\n{"name": "journal", "arguments": {"unit": "demo.service", '
               '"lines": 20}}\n</tool_call>')

    def text_call_when_no_tools(request: dict[str, Any]) -> Any:
        return call("journal", unit="demo.service") if request.get("tools") else say(written)

    script = [calls([call("propose_action", **RESTART)], text="demo.conf is missing."),
              call("incident_evidence"), text_call_when_no_tools]
    with ScriptedModel(script) as model:
        outcome = _investigate(run_with_model, model, ctx, settings, store,
                               AgentSettings(max_tool_calls=2))
        offered = [len(offered_tools(r)) for r in model.requests]
        told = tool_results(model.requests[-1])[-1]
    assert offered[-1] == 0 and all(offered[:-1])
    assert told.endswith(LAST_CALL)
    assert outcome.stop_reason == "budget" and outcome.answer == "demo.conf is missing."
    assert [p["kind"] for p in outcome.proposals] == ["restart_unit"]
    assert outcome.messages[-1].role == "tool"  # the call written as text is no answer kept


def test_an_empty_reply_once_the_budget_is_spent_ends_the_investigation_with_its_proposal(
        run_with_model, ctx, settings, store) -> None:
    """Offered no tools, a model that wanted another call may answer nothing at all, where
    others write the call as text: the same end of the budget. It failed the investigation
    as an unusable answer, and the proposal made was abandoned."""
    script = [call("propose_action", **RESTART), call("incident_evidence"), say("")]
    with ScriptedModel(script) as model:
        outcome = _investigate(run_with_model, model, ctx, settings, store,
                               AgentSettings(max_tool_calls=2))
        offered = [len(offered_tools(r)) for r in model.requests]
    assert offered[-1] == 0 and all(offered[:-1])
    assert outcome.stop_reason == "budget"
    assert outcome.answer == "(no answer: the tool budget ran out)"
    assert [p["kind"] for p in outcome.proposals] == ["restart_unit"]
    assert outcome.messages[-1].role == "tool"  # the empty reply is no answer kept


def test_an_empty_reply_while_tools_are_offered_is_no_answer_still(run_with_model, ctx) -> None:
    with ScriptedModel([say("")]) as model, \
            pytest.raises(LLMBadResponse, match="neither text nor a tool call"):
        _chat(run_with_model, model, ctx)


def test_the_budget_spent_by_one_reply_of_several_calls_is_said_once(
        run_with_model, ctx) -> None:
    script = [calls([call("run_readonly", argv=["uname", "-s"]),
                     call("run_readonly", argv=["uname", "-r"])]), say("Linux.")]
    with ScriptedModel(script) as model:
        async def use(llm: Any) -> AgentOutcome:
            return await Agent(llm, REGISTRY, ctx, AgentSettings(max_tool_calls=2)).run(
                [Message("system", "You are hal."), Message("user", "Which kernel?")])

        outcome = run_with_model(model, use)
        results = tool_results(model.requests[1])
    assert outcome.answer == "Linux."
    assert not results[0].endswith(LAST_CALL) and results[1].endswith(LAST_CALL)


def test_an_empty_reply_after_a_diagnosis_beside_a_proposal_keeps_that_diagnosis(
        run_with_model, ctx, settings, store) -> None:
    """Small models write their answer beside their propose_action call, then reply empty
    once told the proposal is recorded: that failed the investigation and its proposal."""
    script = [calls([call("propose_action", **RESTART)], text=DIAGNOSIS), say("")]
    with ScriptedModel(script) as model:
        outcome = _investigate(run_with_model, model, ctx, settings, store)
    assert outcome.stop_reason == "answer" and outcome.answer == DIAGNOSIS
    assert [p["kind"] for p in outcome.proposals] == ["restart_unit"]


def test_an_empty_reply_after_a_preamble_beside_a_reading_call_is_no_answer(
        run_with_model, ctx) -> None:
    # "let me check" beside a reading call is no diagnosis: kept as the answer, it was
    # stored as the incident's diagnosis and shown to the person it was escalated to
    script = [calls([call("run_readonly", argv=["uname", "-s"])],
                    text="Let me check the kernel first."), say("")]
    with ScriptedModel(script) as model, \
            pytest.raises(LLMBadResponse, match="neither text nor a tool call"):
        _chat(run_with_model, model, ctx)


def test_an_empty_reply_is_no_answer_where_this_question_has_no_text(
        run_with_model, ctx) -> None:
    # an earlier question's answer is not this one's
    async def use(llm: Any) -> AgentOutcome:
        return await Agent(llm, REGISTRY, ctx, AgentSettings()).run(
            [Message("system", "You are hal."), Message("user", "Is it up?"),
             Message("assistant", "It is up."), Message("user", "And now?")])

    with ScriptedModel([call("run_readonly", argv=["uname", "-s"]), say("")]) as model, \
            pytest.raises(LLMBadResponse, match="neither text nor a tool call"):
        run_with_model(model, use)


def test_the_incidents_evidence_stays_in_a_long_investigations_context(
        run_with_model, ctx, settings, store, tmp_path: Path) -> None:
    """Five full outputs fill the default context: the oldest, the incident's own evidence,
    went first, and the diagnosis and proposals were made without the failure they fix."""
    script = []
    for n in range(7):
        log = tmp_path / f"app{n}.log"
        log.write_text(f"log {n}\n" + "filler line of the application log\n" * 200)
        script.append(call("read_file", path=str(log)))
    script.append(say(DIAGNOSIS))
    with ScriptedModel(script) as model:
        outcome = _investigate(run_with_model, model, ctx, settings, store)
        sent = [tool_results(r) for r in model.requests]
    assert outcome.answer == DIAGNOSIS
    assert any("older tool output dropped" in " ".join(r) for r in sent)  # it was long
    assert all(FAILURE in r[0] for r in sent)


def test_a_reasoning_block_before_the_answer_is_not_the_answer(run_with_model, ctx) -> None:
    """Qwen3, DeepSeek-R1 and the like, where the server leaves their reasoning in the
    content: it was the diagnosis stored and shown, and sent back with each request."""
    thought = "<think>\nThe user asks about demo. Maybe restart it? " + "hmm " * 200 + "\n</think>"
    script = [calls([call("run_readonly", argv=["uname", "-s"])], text=thought),
              say(f"{thought}\n\nDIAGNOSIS: demo.service is fine")]
    with ScriptedModel(script) as model:
        outcome = _chat(run_with_model, model, ctx)
        sent = model.requests[1]["messages"]
    assert outcome.answer == "DIAGNOSIS: demo.service is fine"
    assert not any("<think>" in (m.get("content") or "") for m in sent)


@pytest.mark.parametrize("tag", ["think", "thinking"])
def test_reasoning_whose_opening_tag_was_in_the_prompt_is_not_the_answer(
        run_with_model, ctx, tag) -> None:
    """DeepSeek-R1's and QwQ's templates end the prompt with "<think>": served without a
    reasoning parser (vLLM) or with --reasoning-format none (llama.cpp), the content starts
    with the reasoning and holds only the closing tag. The whole monologue was the answer,
    the incident's diagnosis and what its notification carried."""
    thought = ("Okay, the user asks about demo. Maybe I should restart it? "
               "Let me write {\"kind\": \"restart_unit\"} first. " + "hmm " * 50)
    answer = "DIAGNOSIS: demo.service is fine"
    script = [calls([call("run_readonly", argv=["uname", "-s"])], text=f"{thought}\n</{tag}>"),
              say(f"{thought}\n</{tag}>\n\n{answer}\n(the log said </{tag}> once)")]
    with ScriptedModel(script) as model:
        outcome = _chat(run_with_model, model, ctx)
        sent = model.requests[1]["messages"]
    # the first closing tag ends the reasoning, as vLLM's deepseek_r1 parser has it
    assert outcome.answer == f"{answer}\n(the log said </{tag}> once)"
    assert not any("Okay, the user" in (m.get("content") or "") for m in sent)


def test_an_answer_that_names_the_tags_is_kept_whole(run_with_model, ctx) -> None:
    # no closing tag, or an opening one before it: no reasoning left in the content
    said = ["DIAGNOSIS: the app logs <think> blocks; nothing failed",
            "DIAGNOSIS: the app wrote <think>x</think> to its log"]
    with ScriptedModel([say(s) for s in said]) as model:
        assert [_chat(run_with_model, model, ctx).answer for _ in said] == said


@pytest.mark.parametrize("said", [
    "DIAGNOSIS: vllm's chat template is wrong: remove the stray </think> tag from line 12 of "
    "/etc/vllm/template.jinja and restart vllm.service.",
    "DIAGNOSIS: remove the stray `</think>` tag from line 12\nof the template.",
    "DIAGNOSIS: the template ends the prompt with\n```\n</think>\n```\nwhich the model "
    "takes for the end of its reasoning.",
    "DIAGNOSIS: the template's last line is </think>\nRemove it.",
], ids=["in-a-sentence", "in-backticks", "in-a-fence", "ending-a-line"])
def test_an_answer_that_mentions_the_closing_tag_is_kept_whole(run_with_model, ctx,
                                                               said: str) -> None:
    """This tool investigates the LLM servers of its hosts: a diagnosis may name the tag.
    Cut at its first mention as the end of a reasoning begun in the prompt, the answer lost
    its start ("tag from line 12 of ..."). The model writes that end on a line of its own."""
    with ScriptedModel([say(said)]) as model:
        assert _chat(run_with_model, model, ctx).answer == said


def test_a_reasoning_block_that_never_ends_is_no_answer(run_with_model, ctx) -> None:
    with ScriptedModel([say("<thinking>\nSo the unit failed because")]) as model, \
            pytest.raises(LLMBadResponse, match="neither text nor a tool call"):
        _chat(run_with_model, model, ctx)


@pytest.mark.parametrize("written", [
    '[{"name": "journal", "arguments": {"unit": "demo.service", "lines": 50}}]',
    'Let me look.\n```json\n[{"name": "journal", "arguments": {}}, '
    '{"name": "snapshot", "arguments": {}}]\n```',
])
def test_a_list_of_calls_written_as_text_is_no_answer(run_with_model, ctx, written) -> None:
    """Mistral writes its calls as a list after [TOOL_CALLS], a control token the server's
    detokenizer leaves out: the list was stored as the diagnosis."""
    ctx.incident_id = 7
    with ScriptedModel([say(written)]) as model, pytest.raises(
            LLMBadResponse, match="wrote a tool call as text.*--jinja"):
        _chat(run_with_model, model, ctx)


def test_an_answer_ending_in_a_list_of_the_hosts_json_is_an_answer(run_with_model, ctx) -> None:
    said = 'The backup jobs are fine:\n[{"name": "snapshot", "size": 3}]'
    with ScriptedModel([say(said)]) as model:
        assert _chat(run_with_model, model, ctx).answer == said


def test_a_fix_is_proposed_for_the_conversations_host_and_the_model_is_told_which(
        run_with_model, settings, store) -> None:
    """Every reading tool takes a host: a model that read web2 proposed its fix there, it
    was recorded for this host, and the model said it was for web2."""
    ctx = ToolContext(settings, {HOST: LocalTransport(HOST), "web2": LocalTransport("web2")},
                      HOST, store)
    restart = {"kind": "restart_unit", "parameters": {"unit": "nginx.service"},
               "rationale": "nginx on web2 failed"}
    script = [call("propose_action", host="web2", **restart),
              call("propose_action", host=HOST, **restart), say("Proposed on testhost.")]
    with ScriptedModel(script) as model:
        outcome = _chat(run_with_model, model, ctx, "nginx on web2 is down")
        refused, recorded = (tool_results(r)[-1] for r in model.requests[1:3])
        (spec,) = [t["function"] for t in model.requests[0]["tools"]
                   if t["function"]["name"] == "propose_action"]
    assert "status=refused" in refused
    assert f"only for host {HOST}, the host this conversation is about" in refused
    assert "none is recorded for 'web2'" in refused
    assert f"recorded: restart_unit {{\"unit\": \"nginx.service\"}} for host {HOST}" in recorded
    assert [p["host"] for p in outcome.proposals] == [HOST]
    assert "host this conversation is about" in spec["description"]
