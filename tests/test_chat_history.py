"""The chat's line history: each person's own file, never one the daemon's user can plant."""

from __future__ import annotations

import os
import readline
from pathlib import Path

import pytest

from ai_sysadmin.cli import talk
from ai_sysadmin.config import Settings
from tests.support.needs_root import needs_root


def test_the_history_lives_with_the_person_not_in_the_state_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
    settings = Settings(ai_name="hal", state_dir=tmp_path / "var")
    path = talk._history_file(settings)
    assert path == tmp_path / "state-home" / "ai-sysadmin" / "hal-chat-history"
    assert settings.state_dir not in path.parents
    monkeypatch.delenv("XDG_STATE_HOME")
    assert talk._history_file(settings) == (
        Path.home() / ".local" / "state" / "ai-sysadmin" / "hal-chat-history")


def test_a_history_that_is_a_link_is_neither_read_nor_written(tmp_path: Path) -> None:
    # as the daemon's user could leave it for a chat run with sudo
    target = tmp_path / "authorized_keys"
    target.write_text("kept\n")
    link = tmp_path / "hal-chat-history"
    link.symlink_to(target)
    readline.clear_history()
    readline.add_history("ssh-ed25519 AAAA planted")
    talk._save_history(readline, link)
    assert target.read_text() == "kept\n"
    assert not talk._own_file(link)
    # a plain file of one's own is written, for that person only
    own = tmp_path / "own-history"
    talk._save_history(readline, own)
    assert "planted" in own.read_text() and (own.stat().st_mode & 0o777) == 0o600
    assert talk._own_file(own)


def test_a_history_owned_by_someone_else_is_not_used(tmp_path: Path) -> None:
    needs_root("giving a file away")
    other = tmp_path / "hal-chat-history"
    other.write_text("planted\n")
    os.chown(other, 65534, 65534)
    assert not talk._own_file(other)
