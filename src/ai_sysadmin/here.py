"""Whether a host names this machine, which every check watches already: by its name
(``localhost``, the short hostname) or by its address (a loopback one, one of its interfaces',
or one /etc/hosts gives the name). No DNS is asked: a lookup may hang, or leave a network that
must not see it, so a name only DNS knows is not known to be this one."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from .config import machine_name, short_hostname

#: where this machine's names for its own addresses are (its FQDN, aliases)
HOSTS_FILE = Path("/etc/hosts")


def names_this_machine(host: str) -> bool:
    """Whether ``host`` is this machine by name: ``VM`` and a rooted ``vm.`` are ``vm``,
    ``localhost`` (and ``*.localhost``) and a loopback address are it too."""
    name = machine_name(host)
    if name in (short_hostname(), "localhost") or name.endswith(".localhost"):
        return True
    address = _numeric(name.strip("[]"))
    return address is not None and ipaddress.ip_address(address.partition("%")[0]).is_loopback


def _numeric(host: str) -> str | None:
    """``host`` as the address ssh reads it, where it is one: the C library's numeric forms
    (``127.1``, ``0x7f000001``, ``2130706433`` are 127.0.0.1), not only the dotted quad."""
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM,
                                      flags=socket.AI_NUMERICHOST)[0][4][0])
    except (OSError, UnicodeError, IndexError):
        return None


def address_here(host: str) -> str | None:
    """An address of this machine that ``host`` is, or that /etc/hosts gives it; None where
    none. Decided from the address, not the name: this machine's FQDN, another name of it
    and its address are all it."""
    return next((a for a in _addresses(host) if _is_local(a)), None)


def _addresses(host: str) -> list[str]:
    """``host`` as an address, else the addresses /etc/hosts gives its name."""
    if (address := _numeric(host)) is not None:
        return [address]
    try:
        text = HOSTS_FILE.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    wanted = machine_name(host)
    found = []
    for line in text.splitlines():
        words = line.partition("#")[0].split()
        if len(words) > 1 and wanted in (machine_name(w) for w in words[1:]):
            found.append(words[0])
    return found


def _is_local(address: str) -> bool:
    """Whether the kernel delivers to ``address`` on this machine: a loopback or unspecified
    address, or one a UDP socket connected to it (nothing is sent) takes as its own source,
    which only an address of this machine's interfaces is routed with."""
    try:
        parsed = ipaddress.ip_address(address.partition("%")[0])
        # numeric: no lookup; a link-local address's %scope becomes its interface's index
        family, _, _, _, sockaddr = socket.getaddrinfo(
            address, 9, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST)[0]
    except (ValueError, OSError):  # not an address (a stray word of /etc/hosts)
        return False
    if parsed.is_loopback or parsed.is_unspecified:
        return True
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(sockaddr)
            source = str(probe.getsockname()[0]).partition("%")[0]
    except OSError:  # no route to it: not here either
        return False
    return ipaddress.ip_address(source) == parsed


def this_machine_at(host: str, port: int | None) -> str | None:
    """Why ``host`` at ``port`` is this machine's own sshd (None where it is not): a name or
    address of it at ssh's port (22, or none written). Another port is another sshd (a
    container, a VM behind a forward), a host of its own."""
    if port not in (None, 22):
        return None
    if names_this_machine(host):
        return f"{host} names it"
    at = address_here(host)
    if at is None:
        return None
    return f"{host} is its address" if _numeric(host) is not None else \
        f"{host} is its address {at}"
