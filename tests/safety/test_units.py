"""Unit names by systemd's own rules (unit_name_is_valid in src/basic/unit-name.c)."""

from __future__ import annotations

import pytest

from ai_sysadmin.safety.units import (
    UNIT_NAME_MAX,
    UNIT_TYPES,
    mangle,
    normalise_unit,
    parse_unit,
    unescape,
    unit_problem,
)


@pytest.mark.parametrize("name", [
    "nginx.service", "sshd@.service", "sshd@3-10.0.0.1:22-10.0.0.2:51000.service",
    "getty@tty1.service", "a@b@c.service",  # the instance may hold further '@'
    "dev-disk-by\\x2duuid-0c4a.device", "systemd-fsck@dev-disk-by\\x2dlabel-root.service",
    "-.slice", "-.mount", "home.mount", "foo.bar.service", "x.target", "init.scope",
    "user-1000.slice", "var-lib-docker.automount", "dev-sda2.swap", "certbot.timer",
    "cups.path", "session-3.scope", "A_b:c.socket", "a" * 247 + ".service",
])
def test_valid_names(name: str) -> None:
    assert unit_problem(name) is None
    assert parse_unit(name).full == name


@pytest.mark.parametrize(("name", "why"), [
    ("", "empty"),
    ("nginx", "no type suffix"),
    ("nginx.", "not a unit type"),
    ("nginx.servic", "not a unit type"),
    ("nginx.SERVICE", "not a unit type"),
    (".service", "no type suffix"),
    ("@.service", "empty prefix"),
    ("@foo.service", "empty prefix"),
    ("a" * 248 + ".service", "255 characters at most"),
    ("ngi nx.service", "whitespace"),
    (" nginx.service", "whitespace"),
    ("nginx.service ", "whitespace"),
    ("nginx\t.service", "control character"),
    ("nginx\x00.service", "NUL"),
    ("../etc.service", "'/'"),
    ("a/b.service", "'/'"),
    ("a;b.service", "';'"),
    ("a*.service", "'*'"),
    ("\u0455shd.service", "non-ASCII character U+0455"),
    ("ssh\u200bd.service", "U+200B"),
    ("\uff53shd.service", "U+FF53"),
    ("ssh\u00e9.service", "U+00E9"),
])
def test_invalid_names(name: str, why: str) -> None:
    problem = unit_problem(name)
    assert problem is not None and why in problem
    with pytest.raises(ValueError, match="unit name|empty"):
        parse_unit(name)


def test_not_text_is_invalid() -> None:
    assert unit_problem(None) == "a unit name must be text"
    assert unit_problem(b"nginx.service") == "a unit name must be text"


def test_the_limit_is_exactly_255() -> None:
    assert len("a" * 247 + ".service") == UNIT_NAME_MAX
    assert unit_problem("a" * 247 + ".service") is None
    assert unit_problem("a" * 248 + ".service") is not None


@pytest.mark.parametrize("unit_type", UNIT_TYPES)
def test_every_type_suffix(unit_type: str) -> None:
    assert parse_unit(f"x.{unit_type}").type == unit_type


def test_templates_and_instances() -> None:
    template = parse_unit("sshd@.service")
    assert template.is_template and not template.is_instance
    assert (template.prefix, template.instance, template.template) == ("sshd", "", "sshd@.service")
    instance = parse_unit("sshd@3-10.0.0.1:22.service")
    assert instance.is_instance and not instance.is_template
    assert (instance.prefix, instance.instance) == ("sshd", "3-10.0.0.1:22")
    assert instance.template == "sshd@.service"
    plain = parse_unit("foo.bar.service")
    assert (plain.prefix, plain.instance, plain.template) == ("foo.bar", None, None)


@pytest.mark.parametrize(("given", "full"), [
    ("nginx", "nginx.service"), ("nginx.service", "nginx.service"),
    ("nginx.socket", "nginx.socket"), ("foo.bar", "foo.bar.service"),
    ("sshd@", "sshd@.service"), ("sshd@1", "sshd@1.service"),
    ("nginx.SERVICE", "nginx.SERVICE.service"),
])
def test_mangle_like_systemctl(given: str, full: str) -> None:
    assert mangle(given) == full


@pytest.mark.parametrize(("given", "expected"), [
    ("nginx", "nginx.service"), ("sshd@3-10.0.0.1:22.service", "sshd@3-10.0.0.1:22.service"),
    ("dev-disk-by\\x2duuid-1.device", "dev-disk-by\\x2duuid-1.device"),
    ("-.slice", None),  # valid for systemd, but would read as an option on a command line
    ("--root=/x", None), ("-H", None), (".hidden", None), ("", None), ("a b;c", None),
    ("nginx\n", None), ("\u0455shd", None), ("a" * 256, None),
])
def test_normalise_unit(given: str, expected: str | None) -> None:
    assert normalise_unit(given) == expected


def test_unescape() -> None:
    assert unescape("dev-disk-by\\x2duuid") == "dev-disk-by-uuid"
    assert unescape("ssh\\x64") == "sshd"
    assert unescape("no\\xzzescape") == "no\\xzzescape"
