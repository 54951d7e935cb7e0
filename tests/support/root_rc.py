"""This machine's root ~/.bashrc is no test host's: bash runs it for every command an sshd
starts as root, and one with pyenv init runs `pyenv rehash`, which waits up to a minute for a
lock file in ~/.pyenv/shims while another shell here holds it. The fault lab's / is an overlay
of this machine's: a lab whose first root login saw that file goes on seeing it after it is
gone, and every root command over SSH there waits that minute ("cannot run 'id -u' over
SSH", a follower's check that never comes). So every sshd a test starts sees an empty one,
bound over it in the sshd's own mount namespace, never this machine's."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

ROOT_RC = "/root/.bashrc"


def empty_rc(directory: Path) -> Path:
    """An empty file in ``directory`` to hide :data:`ROOT_RC` behind."""
    path = directory / "empty-bashrc"
    path.write_text("")
    return path


def without_root_rc(empty: Path | str) -> str:
    """Shell commands (ending in ``&&``) that hide :data:`ROOT_RC` behind ``empty``, in the
    mount namespace they run in: one of its own, never this machine's."""
    return (f"{{ [ ! -e {ROOT_RC} ] || mount --bind {shlex.quote(str(empty))} {ROOT_RC}; }} "
            "&& ")


def in_own_mounts_without_root_rc(argv: Sequence[str], directory: Path) -> list[str]:
    """``argv`` (an sshd started in this machine's namespaces) run in a private mount
    namespace of its own where :data:`ROOT_RC` is an empty file kept in ``directory``."""
    script = f'{without_root_rc(empty_rc(directory))}exec "$0" "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, *argv]
