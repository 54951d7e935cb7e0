"""The [knowledge] settings: a mistake is refused at load with the key named; the token file
counts among the assistant's secrets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import load_settings
from ai_sysadmin.errors import ConfigError


def test_defaults_are_embedded_minilm_under_the_state_dir(tmp_path: Path) -> None:
    settings = load_settings(environ={"AI_SYSADMIN_STATE_DIR": str(tmp_path)}).settings
    assert settings.knowledge.embedding == "minilm" and settings.knowledge.url is None
    assert settings.knowledge_dir == tmp_path / "knowledge"


@pytest.mark.parametrize(("line", "message"), [
    ('embedding = "openai:text-embedding-3"', "must be 'minilm' or 'ollama:<model>'"),
    ('url = "chroma.example:8000"', "must be an http:// or https:// URL"),
    ('url = "http://admin:pw@127.0.0.1:8000"', "the token goes in knowledge.token_file"),
    ('path = "relative/dir"', "must be an absolute path"),
    ("top_k = 0", "greater than or equal to 1"),
])
def test_a_bad_knowledge_setting_is_refused(config_file: Callable[[str], Path], line: str,
                                            message: str) -> None:
    path = config_file(f"[knowledge]\n{line}\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert "knowledge." in str(refused.value) and message in str(refused.value)
    assert "pw@" not in str(refused.value)


def test_the_token_file_is_a_secret(config_file: Callable[[str], Path], tmp_path: Path) -> None:
    token = tmp_path / "chroma-token"
    path = config_file(f'[knowledge]\nurl = "http://127.0.0.1:8000"\ntoken_file = "{token}"\n'
                       'embedding = "ollama:nomic-embed-text"\n')
    settings = load_settings(path).settings
    assert token in settings.secret_files
    assert settings.knowledge.embedding == "ollama:nomic-embed-text"
