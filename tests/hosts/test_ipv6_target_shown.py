"""An IPv6 host is shown in brackets wherever its login and port are said: ``admin@[::1]:1``,
as it was typed, never ``admin@::1:1`` (which reads as another address)."""

from __future__ import annotations


def test_a_host_that_does_not_answer_is_named_with_its_brackets(cli, config_file) -> None:
    config_file('ai_name = "hal"\n')
    # port 1 on the IPv6 loopback: nobody listens (refused, or unreachable without IPv6)
    code, out, err = cli("systems", "add", "admin@[::1]:1", "--name", "six")
    assert code == 0, err
    assert "six (admin@[::1]:1) is managed now" in out
    assert err.startswith("warning: no command ran on six: ")
    assert "(admin@[::1]:1)" in err and "admin@::1" not in err
