"""Read-only commands that would send their arguments over the network: name lookups.

A lookup of a name (or of an address, through its reverse zone) goes to the resolvers and on
to the servers of the domain that name chooses, so a model steered by text it read on the host
(a journal line, a file) could hand that text to whoever runs ``attacker.example`` as
``<secret>.attacker.example``. Each check below reads the argv as its program does and says
why a lookup is refused; lookups that stay on the host (``getent hosts`` without a key lists
/etc/hosts, ``resolvectl query --network=no``, numeric addresses in an ss filter) pass.
The other ways out (``-H``/``--host``, ``-M``/``--machine``, ``--url``) are refused by the
option lists themselves. Pure code, no I/O.
"""

from __future__ import annotations

import ipaddress
import re

from ..redact import redact_cut
from .argv_parser import Parsed

LEAVES = ("a lookup sends the words it is given to DNS servers and on to whoever runs their "
          "domain, so text read on the host would leave it")

#: false as systemd's parse_boolean reads it (case does not matter)
_FALSE = frozenset({"0", "no", "n", "false", "f", "off"})
#: resolvectl verbs whose operands are names or addresses to look up
RESOLVECTL_LOOKUPS = ("query", "service", "openpgp", "tlsa")


def resolvectl_lookup(parsed: Parsed) -> str | None:
    """``resolvectl query`` asks the network unless the last ``--network`` is false; then the
    answer comes from the cache, /etc/hosts and the host's own names only."""
    if parsed.operands[:1] != ["query"]:
        return None
    network = [value for name, value in parsed.options if name == "--network"]
    if network and (network[-1] or "").lower() in _FALSE:
        return None
    return (f"resolvectl query asks the network: {LEAVES}. resolvectl status shows the "
            "resolver's servers and settings; resolvectl query --network=no NAME answers from "
            "the cache and /etc/hosts alone")


#: getent databases whose keys go through name resolution (DNS among the sources)
_RESOLVED_DATABASES = frozenset({"hosts", "ahosts", "ahostsv4", "ahostsv6", "networks"})


def getent_lookup(parsed: Parsed) -> str | None:
    """A key of hosts/ahosts*/networks is resolved (DNS for a name, the reverse zone for an
    address); without a key getent lists the local file."""
    database, keys = parsed.operands[:1], parsed.operands[1:]
    if not database or database[0] not in _RESOLVED_DATABASES or not keys:
        return None
    return (f"getent {database[0]} KEY resolves the key through DNS: {LEAVES}. "
            f"getent {database[0]} without a key lists /etc/hosts")


# ss filter grammar (iproute2 misc/ssfilter.y): words that are keywords or operators, those
# after which a value comes that is no address, and those after which a port comes (a port is
# read as a service name from /etc/services, never resolved through DNS)
_SS_KEYWORDS = frozenset({"dst", "src", "dport", "sport", "dev", "fwmark", "cgroup",
                          "autobound", "and", "or", "not", "&", "&&", "|", "||", "!", "=",
                          "==", "!=", "<", ">", "<=", ">=", "eq", "neq", "ne", "ge", "gt",
                          "le", "lt", "lte", "gte", "state", "exclude", "excl"})
_SS_VALUE_NEXT = frozenset({"dev", "fwmark", "cgroup", "state", "exclude", "excl"})
_SS_PORT_NEXT = frozenset({"dport", "sport"})
_SS_OPERATORS = frozenset({"=", "==", "!=", "<", ">", "<=", ">=", "eq", "neq", "ne", "ge",
                           "gt", "le", "lt", "lte", "gte"})
#: address families whose hosts are never looked up (a socket path, an interface, a number)
_SS_LOCAL_FAMILIES = frozenset({"unix", "link", "packet", "netlink", "vsock", "tipc", "xdp"})


def _numeric(host: str) -> bool:
    """Is ``host`` (before any /prefix length) empty, '*' or a numeric IPv4/IPv6 address?"""
    host = host.split("/", 1)[0]
    if host in ("", "*"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_needs_lookup(word: str) -> bool:
    """Would ss read the host of ``word`` ([family:]host[:port]) by resolving a name?"""
    family, sep, rest = word.partition(":")
    if sep and family in _SS_LOCAL_FAMILIES:
        return False
    if sep and family in ("inet", "inet6"):
        word = rest
    if word.startswith("/"):
        return False  # a unix socket's path
    if word.startswith("["):
        return not _numeric(word[1:].split("]", 1)[0])
    if _numeric(word):
        return False  # a bare IPv6 address (its colons are no port)
    return not _numeric(word.rpartition(":")[0] if ":" in word else word)


def ss_filter_names(parsed: Parsed) -> str | None:
    """ss resolves a host name in its filter (``dst NAME``, or a bare ``NAME``) to match
    sockets against: only numeric addresses may stand there."""
    expect = ""
    for token in re.findall(r"[^\s()]+", " ".join(parsed.operands)):
        word = token.lstrip("!") or token
        if expect == "value" or (expect == "port" and word not in _SS_OPERATORS):
            expect = ""
            continue
        if word in _SS_KEYWORDS:
            expect = ("value" if word in _SS_VALUE_NEXT else
                      "port" if word in _SS_PORT_NEXT or expect == "port" else "")
            continue
        if host_needs_lookup(word):
            return (f"ss filter host {redact_cut(word, 40)!r} is a name ss would resolve: "
                    f"{LEAVES}. "
                    "Give addresses as numbers (dst 10.0.0.5, src [::1]:22), or filter by "
                    "port (dport = :443)")
    return None


def lsof_address(value: str) -> str | None:
    """lsof -i [46][protocol][@host][:port]: lsof resolves a host name."""
    if "@" not in value:
        return None
    host = value.split("@", 1)[1]
    host = host[1:].split("]", 1)[0] if host.startswith("[") else host.split(":", 1)[0]
    if _numeric(host) and host != "*":
        return None
    return (f"names the host {redact_cut(host, 40)!r}, which lsof would resolve: {LEAVES}; give an "
            "address as a number (-i @10.0.0.5:443)")
