"""ProxyJump values as ssh reads them: plain hops, ssh:// URIs, chains and ``none``."""

from __future__ import annotations

import pytest

from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.ssh_target import SshTarget, parse_jump

BASE = SshTarget(host="web1", key_files=("/keys/id",), connect_timeout=4.0)


@pytest.mark.parametrize(("spec", "hops"), [
    ("bastion", [(None, "bastion", None)]),
    ("admin@bastion:2222", [("admin", "bastion", 2222)]),
    ("ssh://admin@bastion:2222", [("admin", "bastion", 2222)]),
    ("ssh://bastion", [(None, "bastion", None)]),
    ("ssh://admin@bastion/", [("admin", "bastion", None)]),
    # ssh ignores a URI's connection parameters and decodes its user
    ("ssh://ad%40min;fingerprint=SHA256-x@[2001:db8::1]:2200", [("ad@min", "2001:db8::1", 2200)]),
    ("one@j1, ssh://two@j2:2022", [("one", "j1", None), ("two", "j2", 2022)]),
    ("none", []),
    ("None", []),
])
def test_a_jump_value_names_the_hops_ssh_would_visit(
        spec: str, hops: list[tuple[str | None, str, int | None]]) -> None:
    parsed = parse_jump(spec, BASE)
    assert [(h.user, h.host, h.port) for h in parsed] == hops
    # what a hop is reached with comes from the target
    assert all(h.key_files == ("/keys/id",) and h.connect_timeout == 4.0 for h in parsed)


@pytest.mark.parametrize(("spec", "why"), [
    ("admin@bastion:22x", "'admin@bastion:22x': the port is not a number from 1 to 65535"),
    ("bastion:0", "'bastion:0': the port is not a number from 1 to 65535"),
    ("bastion:70000", "'bastion:70000': the port is not a number from 1 to 65535"),
    ("ssh://bastion:x", "'ssh://bastion:x': the port is not a number from 1 to 65535"),
    ("ssh://bastion/path", "'ssh://bastion/path'"),
    ("ssh://@bastion", "'ssh://@bastion'"),
    ("j1,,j2", "''"),
    ("admin@", "'admin@'"),
])
def test_a_jump_value_ssh_would_refuse_is_a_transport_error(spec: str, why: str) -> None:
    with pytest.raises(TransportError) as caught:
        parse_jump(spec, BASE)
    assert str(caught.value) == f"web1: invalid jump host {why}"
