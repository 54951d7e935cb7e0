"""Which investigation mode a model gets, as the operator writes it in TOML and sees it in
``config show``; a wrong mode is a clear configuration error."""

from __future__ import annotations

import json

import pytest

from ai_sysadmin.config import AgentSettings, load_settings
from ai_sysadmin.errors import ConfigError

MODES = """
[llm]
model = "smollm2:135m"
backend = "openai"
response_format = "json_object"

[agent]
mode = "tools"

[agent.modes]
"smollm2:135m" = "evidence"
"qwen2.5:0.5b" = "evidence"
"""


def test_the_mode_follows_the_model(config_file) -> None:
    settings = load_settings(config_file(MODES), environ={}).settings
    agent = settings.agent
    assert agent.mode_for(settings.llm.model) == "evidence"
    assert agent.mode_for("qwen2.5:0.5b") == "evidence"
    # Ollama's default tag on either side names the same model
    assert AgentSettings(modes={"llama3.2": "evidence"}).mode_for("llama3.2:latest") == "evidence"
    assert AgentSettings(modes={"llama3.2:latest": "evidence"}).mode_for("llama3.2") == "evidence"
    # every other model gets agent.mode
    assert agent.mode_for("qwen2.5:7b-instruct") == "tools"
    assert AgentSettings(mode="evidence").mode_for("anything") == "evidence"
    assert AgentSettings().mode_for("qwen2.5:7b-instruct") == "tools"
    assert settings.llm.response_format == "json_object"


def test_config_show_names_each_models_mode_and_where_it_comes_from(cli, config_file) -> None:
    path = config_file(MODES)
    code, out, _ = cli("config", "show", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["agent.mode"] == {"value": "tools", "source": f"file {path}"}
    assert shown["agent.modes.smollm2:135m"] == {"value": "evidence", "source": f"file {path}"}
    assert shown["agent.evidence_max_tokens"] == {"value": 1024, "source": "default"}
    assert shown["llm.response_format"]["value"] == "json_object"


@pytest.mark.parametrize(("text", "message"), [
    ('[agent]\nmode = "json"\n', "key 'agent.mode': Input should be 'tools' or 'evidence'"),
    ('[agent.modes]\n"smollm2" = "fast"\n',
     "key 'agent.modes.smollm2': Input should be 'tools' or 'evidence'"),
    ('[agent.modes]\n" " = "evidence"\n', "a model name in agent.modes cannot be empty"),
    ('[llm]\nresponse_format = "grammar"\n',
     "key 'llm.response_format': Input should be 'json_schema' or 'json_object'"),
])
def test_a_wrong_mode_is_a_clear_error(config_file, text, message) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file(text), environ={})
    assert message in str(caught.value)
