"""Secret-looking values in host text, masked before the text reaches the model or the store.

Host text (unit files, ``systemctl show``, command lines in ``ps``, the journal) often carries
credentials: ``Environment=DB_PASSWORD=...``, ``--token=...``, ``https://user:pass@host``, a
private key pasted into a log. The assistant needs the key names and the shape of the line to
diagnose, never the values, so the values become ``[redacted]`` and everything else stays.
The patterns lean towards masking: a lost value is a lesser harm than a leaked one.
"""

from __future__ import annotations

import re

MASK = "[redacted]"

# a name that says "this is a secret": DB_PASSWORD, api-key, client_secret, GITHUB_TOKEN ...
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|passphrase|secret|token|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|credentials?|auth[_-]?key|session[_-]?key)[A-Za-z0-9_.-]*"
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole (an unterminated one up to the end of the text)
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----"
                r"|\Z)", re.S), "[redacted private key]"),
    # scheme://user:password@host
    (re.compile(r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(?=@)"),
     rf"\g<pre>{MASK}"),
    # Authorization: Bearer xyz
    (re.compile(r"(?i)(?P<pre>\bauthorization\s*[:=]\s*(?:bearer|basic|token|digest)\s+)\S+"),
     rf"\g<pre>{MASK}"),
    # NAME=value, NAME: value, "name": "value", NAME => value
    (re.compile(rf"(?i)(?P<pre>{_SECRET_NAME}[\"']?\s*(?:=>|[=:])\s*[\"']?)"
                r"(?P<value>[^\s\"',;&]+)"), rf"\g<pre>{MASK}"),
    # --password value, -token value (a flag then its value)
    (re.compile(rf"(?i)(?P<pre>(?<!\S)--?{_SECRET_NAME}\s+)(?P<value>[^\s-]\S*)"),
     rf"\g<pre>{MASK}"),
    # token formats that need no name to be recognised
    (re.compile(r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}"
                r"|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20,})\b"), MASK),
)


def redact(text: str) -> str:
    """``text`` with secret-looking values replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
