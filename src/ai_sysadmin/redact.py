"""Secret-looking values in host text, masked before the text reaches the model or the store.

Host text (unit files, ``systemctl show``, command lines in ``ps``, the journal, files the model
reads) often carries credentials: ``Environment=DB_PASSWORD=...``, ``--token=...``,
``https://user:pass@host``, a private key pasted into a log. The assistant needs the key names and
the shape of the line to diagnose, never the values, so the values become ``[redacted]`` and
everything else stays. The rules lean towards masking (a lost value is a lesser harm than a leaked
one) but leave ordinary diagnostic text readable: ``Failed password for root`` has no value, a
path is not a secret, and neither is ``PublicKey = ...``.

This is a second layer: tools should not print secrets in the first place. It is a table,
:data:`RULES`, one entry per format (name=value carries the many small variants of its own),
each proven by a fixture under ``tests/fixtures/secrets/`` that names it.
Every rule finds what it masks in the original text, never in another rule's output, and the
masked spans are merged at the end, so the order of the table does not matter.

Cost: ``redact`` runs on every tool result. Each pattern starts with a literal (``://``,
``-----begin``, ``password``, a line break...), which lets the regex engine skip through the
text at memchr speed instead of trying every position; the case-insensitive rules match a
lower-cased copy (ignore-case matching is several times slower) and mask the same offsets in the
original.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MASK = "[redacted]"
_KEY_MASK = "[redacted private key]"

#: (start, end, replacement) in the text being redacted
Edit = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class Rule:
    """One secret format: how to find it and which parts of a match to hide."""

    name: str
    #: matched against the lower-cased text unless ``case_sensitive``
    pattern: re.Pattern[str]
    #: the edits for one match, given the original text (offsets are the same in both)
    edits: Callable[[re.Match[str], str], Iterator[Edit]]
    case_sensitive: bool = False
    #: a private key: read_file refuses a file that holds one (``private_key_format``) rather
    #: than show it masked, whatever the file's name; the masking and the refusal share this
    private_key: bool = False


# --- what a name and a value look like -------------------------------------------------------

# the word in a name that says "secret": DB_PASSWORD, api-key, client_secret, GITHUB_TOKEN ...
# A short word counts only as a whole part at the end of the name: DB_PASS, MYSQL_PWD, but not
# bypass, design, monkey, or gcloud-auth-plugin:amd64 and SSH_AUTH_SOCK; "pass" also after the
# few words it is glued to in settings (Nextcloud's adminpass, rootpass, dbpass, ssmtp's
# AuthPass), "pw" after those of LDAP's (bindpw, rootpw).
_SECRET_WORD = re.compile(
    r"passw(?:or)?d|passphrase|secret|token|credential|signature|requirepass|masterauth"
    r"|(?:api|access|private|preshared|auth|session|account|encryption|signing|master|license"
    r"|hmac|jwt|client|app)[_-]?key(?![a-z])|key[_-]data"
    r"|(?:(?<![a-z0-9])|(?<=ssh)|(?<=admin)|(?<=root)|(?<=db)|(?<=user)|(?<=auth))pass$"
    r"|(?:(?<![a-z0-9])|(?<=bind)|(?<=root))pw$"
    r"|(?<![a-z0-9])(?:pwd|psk|sig|auth|authtok)$")
# ... and "auth" or "sig" alone say too little for a value after a space: git's
# "--smtp-auth to limit", initdb's "--auth-host scram-sha-256"; nor "pw" alone (a country
# code: "PW	Palau")
_WEAK_SECRET_WORD = re.compile(r"(?<![a-z0-9])(?:sig|auth)$|(?<![\w.-])pw$")
# ... nor for a value that is no secret's: the signal in the kernel's audit "sig=11" (the key
# fact of a crash), a log's facility before its level ("dovecot: auth: Error: ..."), a mode
# ("auth: psk" from NetworkManager, "auth=scram-sha-256")
_WEAK_HARMLESS_VALUE = re.compile(
    r"[0-9]{1,3}"
    r"|(?i:debug|info|notice|warn|warning|err|error|crit|critical|alert|emerg|fatal|panic)"
    r"(?::(?:[ \t][^\n]*)?)?"
    r"|(?i:psk|sae|owe|open|shared|leap|eap|wpa-psk|wpa-eap|password|plain|login|cram-md5"
    r"|digest-md5|md5|scram-sha-1|scram-sha-256|peer|trust|ident|reject|gssapi|kerberos|krb5"
    r"|ntlm|basic|digest|bearer|oauthbearer|xoauth2|pam|ldap|sasl|tls|cert|publickey"
    r"|keyboard-interactive|hostbased|external|anonymous)")
# the same words' cheapest literal parts: a rule scans for these, then checks the whole name
_ANCHOR = r"(?:pass|pw|secret|token|credential|sig|psk|auth|key)"

# Names with a secret word that hold something else: a path, a reference, a switch. Their values
# help diagnosis (``password_file`` missing, ``secretName`` wrong) and hide nothing.
_HARMLESS_NAME = re.compile(
    r"(?:file|files|path|dir|directory|command|cmd|socket|stdin|authentication|name|names|ref|url|"
    r"uri|length|expiry|expires|expiration|ttl|lifetime|timeout|policy|required|enabled|type|mode|"
    r"prompt|dialog|format|count|helper|provider|store|algorithm|encryption|min|max|len|age|"
    # a lookup table's name (Postfix's smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd)
    r"retries|attempts|maps?)$"
    # a bound: gpg's min-passphrase-len 9, max_tokens: 512
    r"|^(?:min|max)[_-]"
    # a systemd unit: "vault-token.service: Main process exited"
    r"|\.(?:service|timer|mount|target|scope|slice|device|swap)$"
    r"|pub(?:lic)?_key$|^(?:load|import)credential|^(?:no|ask|prompt)-")
# Values that are words, not secrets: ``PasswordAuthentication: no``, ``token: expired``,
# ``password=********`` (already hidden), ``${DB_PASSWORD}`` (a reference, telling when unset),
# ``<password>`` in a sample.
_HARMLESS_VALUE = re.compile(
    r"(?i:true|false|yes|no|on|off|none|null|nil|required|optional|disabled|enabled|empty|missing"
    r"|invalid|incorrect|expired|unset)|\*+|\$\{\w+\}|\$[A-Z_][A-Z0-9_]*"
    # the shell computes it: passwd=$(getent passwd "$user")
    r"|\$\(.*|`.*"
    # a placeholder in documentation and sample configs: <master-password>
    r"|<[^<>\n]*>"
    # a path under a usual top folder: credentials=/root/.smbcred, secret: /run/secrets/db,
    # sudo's PWD=/root (only those: a base64 secret may start with "/" too)
    r"|/(?:run|etc|var|home|root|nix|usr|opt|srv|tmp|mnt|media|proc|sys|dev|data|config|app"
    r"|secrets|keys|certs|vault|bin|lib|boot)(?:/[\w.@+-]*)*"
    # nsswitch.conf's "passwd: files systemd" names where accounts come from
    r"|(?:(?:files|systemd|compat|sss|ldap|nis|db|winbind|cache|extrausers|\[[^\]\n]*\])"
    r"[ \t]*)+"
    # a file of keys or settings named relative to the config (OpenVPN's "secret static.key",
    # "auth-user-pass creds.txt"): where the secret is, not the secret
    r"|(?:[\w.@+-]+/)*[\w@+-][\w.@+-]*\.(?i:key|keys|pem|crt|cer|der|p12|pfx|pub|asc|gpg|keytab"
    r"|txt|conf|cfg|cnf|ini|json|ya?ml)"
    # a port (/etc/services: "kpasswd 464/tcp")
    r"|[0-9]{1,5}/(?:tcp|udp|sctp|dccp)"
    # what a log line says happened to one (a line "Token refreshed" reads like "token x")
    r"|(?i:accepted|rejected|denied|failed|changed|created|updated|refreshed|renewed|revoked"
    r"|loaded|saved|removed|deleted|ok)\.?")
# nginx's proxy_pass (and fastcgi_pass ...) names an upstream, but PROXY_PASS, Chef's
# http_proxy_pass and httplib2's proxy_pass= are a proxy's password: the name alone cannot
# tell, so only its value may. An address with no credentials in it, or a socket, is an
# upstream (an Ansible role's "proxy_pass: http://backend"); nginx's own "proxy_pass x;" is
# no setting of one value to its line's end, so it is never masked in the first place.
_UPSTREAM_NAME = re.compile(r"(?<![a-z0-9])(?:proxy|fastcgi|uwsgi|scgi|grpc|memcached)_pass$")
_UPSTREAM_VALUE = re.compile(r"(?i:https?|grpcs?|s?uwsgi|fastcgi|scgi|memcached)://[^\s@]+"
                             r"|unix:/[^\s@]*")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _value(bare: str) -> str:
    """A value: JSON-escaped \\"...\\", "...", '...' (spaces allowed inside), or bare."""
    return (r'(?:\\"(?P<v0>(?:[^"\\\n]|\\[^"\n])*)\\"'
            r'|"(?P<v1>(?:[^"\\\n]|\\.)*)"'
            r"|'(?P<v2>(?:[^'\\\n]|\\.)*)'"
            rf"|(?P<v3>{bare}))")


# a bare value ends at space, quote, or a separator of lists and query strings; it does not
# start with what opens a structure ({, [, |, >) so that "password: |" and JSON stay readable
_BARE = r"""[^\s"'{\[|>\\,;&](?:[^\s"',;&\\]|\\(?!["']))*"""
# "=" stuck to its name takes the value stuck to it: in "--set-credential= switch" and in the
# shell's "A= b" the value is empty
_SEP = r"\\?[\"']?(?:[ \t]*(?:=>|:)[ \t]*|[ \t]+=[ \t]*|=)"
_ARG = r"[^\s'\"]+"
# the rest of one command on a line, bounded: a line with thousands of "mysql" in it must not
# cost thousands of scans to its end
_SAME_COMMAND = r"[^\n;|&]{0,400}?"


# --- what to hide in a match -----------------------------------------------------------------

def _groups(match: re.Match[str], text: str) -> Iterator[Edit]:
    """Every non-empty group named v, v0, v1... of the match."""
    for group in match.re.groupindex:
        if group[0] == "v":
            start, end = match.span(group)
            if start < end:
                yield start, end, MASK


def _whole(replacement: str, back: int = 0) -> Callable[[re.Match[str], str], Iterator[Edit]]:
    """The whole match, and ``back`` characters before it (a prefix checked by lookbehind)."""
    def edits(match: re.Match[str], text: str) -> Iterator[Edit]:
        yield match.start() - back, match.end(), replacement
    return edits


@functools.lru_cache(maxsize=2)
def _newlines(text: str) -> list[int]:
    """Where ``text``'s lines end, found once a text (its hash is kept by the string)."""
    return [match.start() for match in re.finditer("\n", text)]


def _line_start(text: str, pos: int) -> int:
    """Where the line that holds ``pos`` begins. Not ``rfind``: one line of a megabyte that
    names a secret at every word was walked back once a name, 0.7 s a text."""
    ends = _newlines(text)
    before = bisect.bisect_left(ends, pos)
    return ends[before - 1] + 1 if before else 0


def _name_start(text: str, end: int) -> int:
    """Where the name that ends at ``end`` begins (names are [A-Za-z0-9_.-], and shorter than
    a long run of base64 whose every "key" would otherwise walk back to its start)."""
    start = end
    limit = max(0, end - 128)
    while start > limit and text[start - 1] in _NAME_CHARS:
        start -= 1
    return start


def _is_secret_name(name: str, after_space: bool = False) -> bool:
    bare = name.lower().strip("\"'<>-")
    match = _SECRET_WORD.search(bare)
    if not match or _HARMLESS_NAME.search(bare):
        return False
    return not (after_space and _WEAK_SECRET_WORD.fullmatch(bare, match.start()))


def _is_weak_name(name: str) -> bool:
    """Whether ``name`` (a secret's) says so by "sig" or "auth" alone."""
    bare = name.lower().strip("\"'<>-")
    match = _SECRET_WORD.search(bare)
    return match is not None and _WEAK_SECRET_WORD.fullmatch(bare, match.start()) is not None


def _is_harmless(text: str, start: int, end: int, weak: bool = False) -> bool:
    """Whether the value ``text[start:end]`` is a word, not a secret; for a ``weak`` name
    (:func:`_is_weak_name`) also a signal, a log level or a mode."""
    return (_HARMLESS_VALUE.fullmatch(text, start, end) is not None
            or weak and _WEAK_HARMLESS_VALUE.fullmatch(text, start, end) is not None)


def _value_edits(match: re.Match[str], text: str, weak: bool = False) -> Iterator[Edit]:
    for start, end, replacement in _groups(match, text):
        if not _is_harmless(text, start, end, weak):
            yield start, end, replacement


_DIRECTIVES = frozenset(("requirepass", "masterauth"))
# a secret's name alone at the start of its line with one value after a space, then the
# line's end (a comment may follow): msmtprc's "password x", a .netrc spread
# over lines, Debian's interfaces "wpa-psk x", keepalived's "auth_pass x", LDAP's "bindpw x",
# BIND's 'secret "x";' (a sentence has more words, "auth" or "sig" alone too little)
_LINE_END = re.compile(r"[ \t]*(?:#[^\n]*)?\r?(?:\n|\Z)")
_LINE_END_CLOSED = re.compile(r"[ \t]*;?[ \t]*(?:#[^\n]*)?\r?(?:\n|\Z)")
# ... but not a line of prose or code, whose last word only looks like a value: a sentence
# wrapped to "credential subsystem." or "SIGNATURE_RSA and", a docstring's "token (`str`):",
# C's "SecretItem *item;" (a ";" closes a value only in quotes)
_NOT_A_SETTING = re.compile(r"[(*&][^\n]*|[^\n]*[.:,)]"
                            r"|(?i:and|or|nor|but|the|a|an|to|of|in|is|are|for|with|by|on|at|as"
                            r"|from|if|when|then|than|that|which)")
# ... except after a name that can only mean a secret, whatever it is glued to (msmtprc's and
# fetchmail's "password x", pppd's, a RADIUS client's "secret x", AuthLDAPBindPassword,
# wpa-psk, bindpw, keepalived's auth_pass, redis's requirepass): there one value is the
# secret, whatever punctuation a generated one starts or ends with ("password Zx9!q.",
# "password *pppSecret"); a wrapped sentence's "passphrase straightforward." is masked too, a
# lost word being the lesser harm
_STRONG_NAME = re.compile(r"(?:passw(?:or)?d|passphrase|secret|psk|(?:bind|root)pw"
                          r"|auth[_-]?pass|requirepass|masterauth)$")
_NON_BLANKS = re.compile(r"\S*")
# "key" alone says too little (a Nix attribute, a TOML table's key = "name", "public key:"):
# at the start of its line, its value is a secret when it reads like one, long and of a key's
# characters (rclone's B2 key = K001...)
_KEY_LIKE = re.compile(r"(?=[^\n]*[0-9])(?=[^\n]*[A-Za-z])[A-Za-z0-9+/_=-]{16,}")
# a comment after a value (one right after "=" may be the value: "password = #x1" stays masked)
_COMMENT = re.compile(r"[ \t]+#")
# redis.conf's directive on its own line (after indentation), or set at run time (CONFIG SET,
# read back from the name: not from the line's start, which a line of "requirepass "
# repeated went back to for each, 3 s for 100 KB)
_CONFIG_SET = ("set", "config")
_WORD_CHAR = re.compile(r"\w")


def _opens_line(text: str, line_start: int, start: int) -> bool:
    """Whether only indentation stands between ``line_start`` and ``start``. Walked back from
    ``start``, never forward from the line's start: a line that starts with 60,000 spaces and
    then names a secret at every word was read across its indentation once a name, 14 s."""
    while start > line_start and text[start - 1] in " \t":
        start -= 1
    return start == line_start


def _after_word(text: str, line_start: int, start: int, word: str) -> bool:
    """Whether ``start`` follows ``word`` (lower-case) and blanks, and ``word`` opens its line:
    a Dockerfile's old "ENV NAME value", a shell's "export NAME=value", a list's "- NAME: x"."""
    pos = start
    while pos > line_start and text[pos - 1] in " \t":
        pos -= 1
    begin = pos - len(word)
    return (pos < start and begin >= line_start and text[begin:pos].lower() == word
            and _opens_line(text, line_start, begin))


def _line_lead(text: str, line_start: int, start: int) -> bool:
    """Whether what stands between a line's start and a config name at ``start`` is
    indentation, "export " or "- " alone."""
    return (_opens_line(text, line_start, start) or _after_word(text, line_start, start, "export")
            or _after_word(text, line_start, start, "-"))


def _one_setting(match: re.Match[str], text: str, name: str) -> int:
    """Where the value of ``name`` at its line's start ends when it reads as a setting's, or
    -1: one value (a quoted one may be closed by ";"), then the line's end, and no prose or
    code. After a strong name (:data:`_STRONG_NAME`) the value is the line's one token,
    whatever punctuation it holds ("password ab,c;d" is one password), but for a ";" that ends
    it, nginx's ("secure_link_secret x;")."""
    start, end = match.span("v3")
    if start < 0:
        return match.end() if _LINE_END_CLOSED.match(text, match.end()) else -1
    if _STRONG_NAME.search(name.lower().strip("\"'<>-")):
        end = _NON_BLANKS.match(text, end).end()
        if not _LINE_END.match(text, end):
            return -1
        return end - 1 if end - start > 1 and text[end - 1] == ";" else end
    if _LINE_END.match(text, end) and not _NOT_A_SETTING.fullmatch(text, start, end):
        return end
    return -1


def _upstream(name: str, text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]``, the value of ``name``, is an upstream's address."""
    return (_UPSTREAM_NAME.search(name.lower().strip("\"'")) is not None
            and _UPSTREAM_VALUE.fullmatch(text, start, end) is not None)


def _directive_lead(text: str, line_start: int, start: int) -> bool:
    """Whether the directive at ``start`` starts its line or follows ``config set``."""
    if _opens_line(text, line_start, start):
        return True
    pos = start
    for word in _CONFIG_SET:
        end = pos
        while end > line_start and text[end - 1] in " \t":
            end -= 1
        if end == pos or end - len(word) < line_start or text[end - len(word):end].lower() != word:
            return False
        pos = end - len(word)
    return pos == line_start or not _WORD_CHAR.match(text, pos - 1)


def _named(match: re.Match[str], text: str) -> Iterator[Edit]:
    """A value after a name found at one of its anchor words: the whole name decides."""
    start = _name_start(text, match.start())
    name = text[start:match.end("suffix")]
    before = text[start - 1]  # the text starts with an added "\n": there is one
    if before == "/":  # /run/secrets: ... is a path in a message, not a name
        return
    after_space = match.group("space") is not None
    setting_end = -1
    if after_space:
        # after a space, a value belongs to a flag (--password x), a directive that starts
        # its line (requirepass x) or a Dockerfile's ENV, not to a word in a sentence
        # ("Failed password for root", "the requirepass is not compatible")
        line_start = _line_start(text, start)
        flag = name.startswith("-") and (before.isspace() or before in "\"'")
        directive = name.lower() in _DIRECTIVES and _directive_lead(text, line_start, start)
        if _opens_line(text, line_start, start):
            setting_end = _one_setting(match, text, name)
        if not (flag or directive or setting_end >= 0
                or _after_word(text, line_start, start, "env")):
            return
    if not _is_secret_name(name, after_space):
        if (not after_space and name.lower().strip("\"'") == "key"
                and _line_lead(text, _line_start(text, start), start - (before in "\"'"))):
            for value_start, value_end, replacement in _groups(match, text):
                if _KEY_LIKE.fullmatch(text, value_start, value_end):
                    yield value_start, value_end, replacement
        return
    value_start, value_end = match.span("v3")
    if 0 <= value_start < value_end < setting_end:
        # a strong name's one token, longer than a bare value may be
        if not _is_harmless(text, value_start, setting_end):
            yield value_start, setting_end, MASK
        return
    sep = match.group("sep") or ""
    if value_start >= 0 and sep != sep.strip():
        line_start = _line_start(text, start)
        if _line_lead(text, line_start, start):
            # "password = two words" on a line of its own: the value is the rest of the line,
            # up to a comment
            line_end = text.find("\n", value_end)
            rest = text[value_start:line_end if line_end >= 0 else len(text)]
            rest = _COMMENT.split(rest, 1)[0].rstrip()
            if not (_is_harmless(rest, 0, len(rest), _is_weak_name(name))
                    or _upstream(name, rest, 0, len(rest))):
                yield value_start, value_start + len(rest), MASK
            return
    for value_start, value_end, replacement in _value_edits(match, text, _is_weak_name(name)):
        if not _upstream(name, text, value_start, value_end):
            yield value_start, value_end, replacement


def _named_group(match: re.Match[str], text: str) -> Iterator[Edit]:
    """A match that carries its whole name in the group ``name``."""
    if _is_secret_name(match.group("name")):
        yield from _value_edits(match, text, _is_weak_name(match.group("name")))


def _named_lines(match: re.Match[str], text: str) -> Iterator[Edit]:
    """A YAML value over indented lines: each line's text masked, line breaks kept."""
    if not _is_secret_name(match.group("name")):
        return
    for line in re.finditer(r"\S[^\r\n]*", text[match.start("v"):match.end("v")]):
        yield match.start("v") + line.start(), match.start("v") + line.end(), MASK


def _env_key(match: re.Match[str], text: str) -> Iterator[Edit]:
    """SECRET_KEY=, RAILS_MASTER_KEY=: an upper-case environment name ending in _KEY."""
    start = _name_start(text, match.start())
    name = text[start:match.start() + 4]
    if (re.fullmatch(r"[A-Z][A-Z0-9_]*_KEY", name) and text[start - 1] not in "/"
            and not _HARMLESS_NAME.search(name.lower())):
        yield from _value_edits(match, text)


def _putty_lines(match: re.Match[str], text: str) -> Iterator[Edit]:
    """``Private-Lines: N`` then N lines of key: those N lines go, whatever follows stays."""
    count = int(match.group("count"))
    lines = match.group("lines").split("\n")
    if count == 0:
        return
    start = match.start("lines")
    end = start + len("\n".join(lines[:count]))
    yield start, end, _KEY_MASK


_KEY_TEXT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\r\n")


def _key_tail(match: re.Match[str], text: str) -> Iterator[Edit]:
    """A key's end marker and the base64 before it, back to the first character no key
    line holds: a key cut so that its header fell outside (a stream's kept end, a quote's
    last characters) shows no line of it. Words just before it may go too: better than key."""
    start = match.start()
    while start > 0 and text[start - 1] in _KEY_TEXT:
        start -= 1
    yield start, match.end(), _KEY_MASK


def _options(option: str) -> Callable[[re.Match[str], str], Iterator[Edit]]:
    """The values of every ``option`` (a pattern whose value groups are v, v0, v1...) within
    the match: a command that takes several secrets (ldappasswd's old and new password)."""
    each = re.compile(option)

    def edits(match: re.Match[str], text: str) -> Iterator[Edit]:
        for found in each.finditer(text, match.start(), match.end()):
            yield from _groups(found, text)
    return edits


# Nix's strings: "..." (backslash escapes, any lines) and ''...'' (its escapes: ''' ''$
# ''\x); one a file leaves open runs to the text's end. Possessive (*+): nothing is tried twice
_NIX_STRING = r"""(?:"(?:[^"\\]|\\.)*+(?:"|\Z)|''(?:[^']|'(?!')|''['$]|''\\.)*+(?:''|\Z))"""
_NIX_COMMENT = r"(?:#[^\n]*+|/\*(?:[^*]|\*(?!/))*+(?:\*/|\Z))"
# what a set holds but its braces: strings and comments whole (a "{" or "}" in them is text)
_NIX_TOKEN = rf"""(?:{_NIX_STRING}|{_NIX_COMMENT}|[^{{}}"'#/]++|['/])"""


def _nix_set(depth: int) -> str:
    """An attribute set's body, sets in it to ``depth`` levels; one left open ends it."""
    inner = _NIX_TOKEN if depth == 0 else rf"(?:{_NIX_TOKEN}|\{{{_nix_set(depth - 1)}\}}?)"
    return rf"{inner}*+"


_NIX_WALK = re.compile(rf"(?P<s>{_NIX_STRING})|{_NIX_COMMENT}|(?P<eq>=)|(?P<end>[;{{}}])"
                       r"""|[^"'#/=;{}]++|['/]""", re.S)


def _every_nix_value(match: re.Match[str], text: str) -> Iterator[Edit]:
    """Every string given as a value (after "=", up to its ";") in the attribute set
    ``set`` (``basicAuth = { alice = "pw"; }``, ``basicAuth = lib.mkForce { ... }``), however
    its strings and comments hold braces: its attribute names are user names, so no name
    says a value is a secret. And the one value ``v`` (``basicAuth.alice = "pw"``)."""
    yield from _groups(match, text)
    start, end = match.span("set")
    valued = False
    for token in _NIX_WALK.finditer(text, start, end):
        if token["eq"]:
            valued = True
        elif token["end"]:
            valued = False
        elif token["s"] and valued:
            found = token["s"]
            quote = 1 if found[0] == '"' else 2
            closed = len(found) >= 2 * quote and found.endswith(found[:quote])
            inside = (token.start() + quote, token.end() - (quote if closed else 0))
            if inside[0] < inside[1]:
                yield inside[0], inside[1], MASK


def _bounded(prefix: str) -> str:
    """``prefix`` not preceded by a letter, digit, _ or - (put after the literal, where it keeps
    the literal first in the pattern and so the fast scan)."""
    return rf"{re.escape(prefix)}(?<![A-Za-z0-9_-]{re.escape(prefix)})"


def _rule(name: str, pattern: str,
          edits: Callable[[re.Match[str], str], Iterator[Edit]] = _groups,
          case_sensitive: bool = False, flags: int = 0, private_key: bool = False) -> Rule:
    return Rule(name, re.compile(pattern, flags), edits, case_sensitive, private_key)


_HEADER_SCHEME = (r"(?:(?:bearer|basic|token|digest|negotiate|ntlm|apikey|sso-key|hmac"
                  r"|aws4-hmac-sha256)[ \t]+)?")


def _header(name: str) -> str:
    """A header named ``name`` (or ending so), then ":" (never "=": that is name-value's, and a
    header's value runs to the end of the line where ``--api-key=x --port 80`` must not)."""
    return (re.escape(name) + r"\\?[\"']?[ \t]*:[ \t]*"
            rf'(?:\\"{_HEADER_SCHEME}(?P<v0>(?:[^"\\\n]|\\[^"\n])*)\\"'
            rf'|"{_HEADER_SCHEME}(?P<v1>(?:[^"\\\n]|\\.)*)"'
            rf"|'{_HEADER_SCHEME}(?P<v2>(?:[^'\\\n]|\\.)*)'"
            rf"""|{_HEADER_SCHEME}(?P<v3>[^\n"'\\]*[^\s"'\\]))""")

_TOKEN = _whole(MASK)


def _header_named(match: re.Match[str], text: str) -> Iterator[Edit]:
    """A header's value, where the name is no file's: ``/run/secrets/gotify-token: No such
    file or directory`` is a message about a path, and hid why the token could not be read."""
    if text[_name_start(text, match.start()) - 1] != "/":
        yield from _groups(match, text)


def _jwt(match: re.Match[str], text: str) -> Iterator[Edit]:
    """The whole match, where it is a token (its other parts followed its first)."""
    if match.start("jwt") >= 0:
        yield match.start(), match.end(), MASK

#: The formats. The text they see starts with a line break (added, never masked), so that
#: "\n" can stand for "a line starts here" and stay a literal.
RULES: tuple[Rule, ...] = (
    _rule("pem-private-key",
          r"-----begin [a-z0-9 ]*private key-----.*?(?:-----end [a-z0-9 ]*private key-----|\Z)",
          _whole(_KEY_MASK), flags=re.S, private_key=True),
    # the end of one whose start was cut away: the marker is found, the key walked back to
    _rule("private-key-tail", r"-----end [a-z0-9 ]*private key(?: block)?-----", _key_tail,
          private_key=True),
    _rule("pgp-private-key",
          r"-----begin pgp private key block-----.*?(?:-----end pgp private key block-----|\Z)",
          _whole(_KEY_MASK), flags=re.S, private_key=True),
    # SSH.com's (Tectia's, puttygen's "export ssh.com key"): four dashes and spaces
    _rule("ssh2-private-key",
          r"---- begin ssh2 (?:encrypted )?private key ----.*?"
          r"(?:---- end ssh2 (?:encrypted )?private key ----|\Z)",
          _whole(_KEY_MASK), flags=re.S, private_key=True),
    _rule("putty-private-lines",
          r"private-lines:[ \t]*(?P<count>\d+)[ \t]*\r?\n"
          r"(?P<lines>[a-z0-9+/=]+\r?(?:\n[a-z0-9+/=]+\r?)*)", _putty_lines, private_key=True),
    _rule("putty-private-mac", r"private-mac:[ \t]*(?P<v>\S+)"),
    # scheme://user:password@host, also redis://:password@host; the password may hold an @,
    # and a '/' (base64's), and is bounded: unbounded, a host line of "x://a:" repeated took
    # each match to the line's end (quadratic: 3 s for 48 KB); one a setting's display
    # already hid (user:****@host, config.mask_secret_text) stays
    _rule("url-credentials",
          r"://(?<=[a-z0-9]://)[^\s:/@]*:(?!\*+@)(?P<v>\S{1,256})(?=@[^\s@/]+)"),
    # scheme://TOKEN@host, a token standing as the user name (redis://, https:// to a git
    # forge): one that reads like a token, long and of a token's characters; git@, admin@
    # and other user names stay
    _rule("url-token-user", r"://(?<=[a-z0-9]://)(?P<v>[a-z0-9_-]{20,})(?=@[^\s@/:]+)"),
    # HTTP headers, plain, JSON or Python repr: Authorization: Bearer x (also Proxy-),
    # "Cookie": "a=b; c=d" (also Set-), {'X-Api-Key': 'k'}, X-Auth-Token, X-Vault-Token,
    # Private-Token. The scheme stays; a value runs to the end of its quotes or line.
    _rule("http-authorization", _header("authorization")),
    _rule("http-cookie", _header("cookie")),
    _rule("http-api-key", _header("-api-key"), _header_named),
    _rule("http-token-header", _header("-token"), _header_named),
    # the same headers set by a web server: nginx proxy_set_header / add_header, HAProxy
    # http-request set-header, Apache RequestHeader set
    _rule("http-header-directive",
          r"header(?:(?<=set_header)|(?<=add_header)|(?<=set-header)|(?<=requestheader))"
          r"(?:[ \t]+(?:set|append|add|merge))?[ \t]+[\w-]{0,30}?"
          r"(?:authorization|cookie|api-key|-token)[ \t]+" + _value(r"[^\s;]+")),
    # password: |  (or >) then every deeper line of the block; token:\n  value, a plain
    # scalar on the deeper lines below (a nested mapping or list there is left to the rules
    # for its own keys)
    _rule("yaml-value-below",
          r"\n(?P<ind>[ \t]*)(?:-[ \t]+)?(?P<name>[\w.-]+)[ \t]*:[ \t]*"
          r"(?:(?P<block>[|>])[+-]?[0-9]?[+-]?[ \t]*(?:#[^\n]*)?)?"
          r"(?P<v>(?(block)(?:\n(?P=ind)[ \t]+\S[^\n]*|\n[ \t]*(?=\n))+"
          r"|(?:\n(?P=ind)[ \t]+(?![\w.-]+[ \t]*:(?:[ \t\n]|\Z)|-[ \t]|#)\S[^\n]*)+))",
          _named_lines),
    # CREATE USER ... IDENTIFIED BY 'x', IDENTIFIED WITH mysql_native_password BY 'x'
    _rule("sql-identified-by",
          r"identified(?:[ \t]+(?:with|via)[ \t]+\S+)?[ \t]+(?:by|as)[ \t]+(?:password[ \t]*)?"
          r"\(?[ \t]*(?:'(?P<v1>(?:[^'\n]|'')*)'|\"(?P<v2>[^\"\n]*)\""
          # Oracle's bare IDENTIFIED BY pw; (and not "identified by valgrind." in prose)
          r"|(?P<v3>[^\s'\";)]+)(?=[ \t]*;))"),
    # ALTER ROLE app PASSWORD 'x', PASSWORD'x', PASSWORD E'x', SET PASSWORD FOR 'u'@'h' =
    # PASSWORD('x'); never a quoted word: {'password': 'x'} (name-value's) and "the
    # 'password' isn't set" (prose), whose quote after "password" closes the one before it
    _rule("sql-password",
          r"password(?<![\w'\"-]password)(?:[ \t]+for[ \t]+[^\n;=]{0,200}+=[ \t]*"
          r"(?:password[ \t]*\([ \t]*)?|[ \t]*\(?[ \t]*e?)'(?P<v>(?:[^'\n]|'')*)'"),
    # <password>x</password>, <db.token>x</db.token>, <Password><Value>x</Value>
    _rule("xml-element",
          r"<(?P<name>[\w:.-]{1,64}+)(?:[ \t][^>\n]{0,400}+)?>(?:[ \t\n]*<value>)?[ \t\n]*"
          r"(?P<v>[^<\s](?:[^<\n]*[^<\s])?)[ \t]*</(?:(?P=name)|value)>", _named_group),
    # mysql -pSECRET (attached, and -p not -P: "-p secret" asks and names a database, -P is
    # the port)
    _rule("mysql-p",
          rf"(?:mysql|mariadb)[\w-]{{0,40}}+{_SAME_COMMAND}[ \t]-p" + _value(_ARG),
          case_sensitive=True),
    _rule("sshpass-p", rf"sshpass{_SAME_COMMAND}[ \t]-p[ \t]*" + _value(_ARG), case_sensitive=True),
    # OpenLDAP's tools: -w BINDPW (ldappasswd's -s NEWPW and -a OLDPW too); -W asks instead
    _rule("ldap-w",
          rf"ldap(?:search|modify|add|delete|modrdn|compare|whoami|exop|url)?{_SAME_COMMAND}"
          r"[ \t]-w[ \t]*" + _value(_ARG), case_sensitive=True),
    _rule("ldappasswd-s", r"ldappasswd[^\n;|&]{0,400}",
          _options(r"[ \t]-[as][ \t]*" + _value(_ARG)), case_sensitive=True),
    # htpasswd -b FILE USER PASSWORD (-nb USER PASSWORD): batch mode takes it as its last word
    # The first such flag is the one: where no last word follows it, the match takes the rest
    # of the command all the same and masks nothing. Tried again at each later flag, each
    # trying 400 places for the last word, "htpasswd -b " repeated cost 160,000 steps a
    # command, 9 s for 100 KB
    _rule("htpasswd-b",
          rf"htpasswd{_SAME_COMMAND}[ \t]-[A-Za-z]*b(?:{_SAME_COMMAND}[ \t]"
          + _value(_ARG) + r"[ \t]*(?=$|[\n;|&])|[^\n;|&]*+)", flags=re.M, case_sensitive=True),
    _rule("redis-cli-a",
          rf"redis-cli{_SAME_COMMAND}[ \t](?:-a|--pass)[ \t]+" + _value(_ARG), case_sensitive=True),
    # curl -u user:password, --user user:password, -U/--proxy-user user:password
    _rule("curl-user",
          rf"curl{_SAME_COMMAND}[ \t](?:-u|-U|--user|--proxy-user)[ \t]*[\"']?[^\s:'\"]*:"
          r"(?P<v>[^\s'\"]+)", case_sensitive=True),
    # docker login -u bob -p secret registry (podman, nerdctl, buildah, skopeo, helm registry)
    _rule("registry-login-p",
          r"login(?:(?<=docker login)|(?<=podman login)|(?<=nerdctl login)|(?<=buildah login)"
          rf"|(?<=skopeo login)|(?<=registry login)){_SAME_COMMAND}[ \t]-p[ \t]+" + _value(_ARG),
          case_sensitive=True),
    # smbclient -U user%password, net ads join -U user%password (Samba's form)
    _rule("samba-user-password",
          r"-(?:U(?<=[ \t]-U)|-user(?<=[ \t]--user))[ \t=]*[\"']?[^\s%'\"/]+%(?P<v>[^\s'\"]+)",
          case_sensitive=True),
    # openssl ... -passin pass:secret (file:, env:, fd: say where the secret is, and stay)
    _rule("openssl-pass", r"-pass(?:in|out)?[ \t]+pass:(?P<v>\S+)"),
    # NixOS' nginx virtualHosts.<name>.basicAuth = { alice = "pw"; }: user name -> password in
    # clear, as the option's documentation has it (basicAuth.alice = "pw" alike); the set may
    # follow a function (lib.mkForce { ... }) or a line break, span lines, and hold braces in
    # its strings and comments; basicAuthFile is a path and stays
    _rule("nix-basic-auth",
          rf"basicauth(?:[ \t]*=[^{{}};\"'#]{{0,200}}+\{{(?P<set>{_nix_set(2)})\}}?"
          r"|\.(?:\"[^\"\n]*\"|[\w-]+)[ \t]*=[ \t]*"
          r"(?:\"(?P<v>(?:[^\"\\\n]|\\.)*)\"|''(?P<v1>(?:[^']|'(?!'))*)''))",
          _every_nix_value, flags=re.S),
    # a password hash (crypt(3): htpasswd, shadow, users.users.*.hashedPassword, HAProxy's
    # userlist, a kickstart's rootpw --iscrypted): the scheme stays ($6$, $2y$), salt and hash go
    _rule("crypt-hash",
          r"\$(?:1|apr1|md5|5|6|sha1|2[abxy]?|y|gy|7|argon2(?:id|i|d))\$"
          r"(?P<v>(?:[./0-9a-z=,+-]{1,128}\$){0,4}[./0-9a-z+]{16,})"),
    # the same in RFC 2307 / Dovecot form, {SSHA}base64 and {PLAIN}password
    _rule("password-scheme",
          r"\{(?:s?sha(?:1|256|384|512)?|s?md5|plain(?:-md5)?|cleartext|crypt|[a-z0-9]+-crypt"
          r"|pbkdf2(?:-sha\d+)?|argon2(?:id|i)?)\}(?P<v>[^\s\"',;:]+)"),
    # HAProxy: "stats auth USER:PASSWORD" (the statistics page's login), and a userlist's
    # "user NAME insecure-password PASSWORD" or "password" without a crypt hash (one is the
    # crypt-hash rule's, its scheme kept)
    _rule("haproxy-auth",
          r"\n[ \t]*(?:stats[ \t]+auth[ \t]+[^\s:]*:(?P<v>\S+)"
          r"|user[ \t]+\S+[ \t]+(?:insecure-password[ \t]+|password[ \t]+(?!\$))(?P<v1>\S+))"),
    # ~/.netrc: machine host login bob password secret (one line or several)
    _rule("netrc", r"machine\s+\S+(?:\s+login\s+\S+)?\s+password\s+(?P<v>\S+)"),
    # NAME=value, NAME: value, "name": "value", NAME => value, name="a b c";
    # a config line's value to its end: password = two words, secret: two words;
    # --password value, -token value (a flag, then its value after a space);
    # redis.conf's requirepass foo, masterauth foo (a directive, no "=");
    # wpa-psk foo, auth_pass foo (a secret's name alone on its line, then one value)
    _rule("name-value",
          rf"{_ANCHOR}(?P<suffix>[\w.-]{{0,64}}+)(?:(?P<sep>{_SEP})|(?P<space>[ \t]+)(?=[^\s-]))"
          + _value(_BARE), _named),
    # SECRET_KEY=, RAILS_MASTER_KEY=, STRIPE_KEY= (but FOO_PUBLIC_KEY= is public)
    _rule("env-key", rf"_KEY{_SEP}" + _value(_BARE), _env_key, case_sensitive=True),
    # tokens whose shape alone says what they are
    _rule("aws-access-key-id",
          r"(?:AKIA|ASIA|ABIA|ACCA)(?<![A-Za-z0-9]....)[0-9A-Z]{16}(?![A-Za-z0-9])", _TOKEN,
          case_sensitive=True),
    _rule("github-token", r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
          _TOKEN, case_sensitive=True),
    _rule("gitlab-token", r"glpat-[A-Za-z0-9_-]{20,}", _TOKEN, case_sensitive=True),
    _rule("slack-token", _bounded("xox") + r"[abposre]-[A-Za-z0-9-]{10,}", _TOKEN,
          case_sensitive=True),
    _rule("slack-webhook", r"hooks\.slack\.com/services/(?P<v>[a-z0-9/_-]+)"),
    _rule("stripe-key", r"k_(?:live|test)_(?<=[sr]k_live_|[sr]k_test_)[A-Za-z0-9]{10,}",
          _whole(MASK, back=1), case_sensitive=True),
    _rule("stripe-webhook-secret", r"whsec_[A-Za-z0-9]{20,}", _TOKEN, case_sensitive=True),
    _rule("google-api-key", _bounded("AIza") + r"[0-9A-Za-z_-]{30,}", _TOKEN,
          case_sensitive=True),
    _rule("openai-style-key", _bounded("sk-") + r"[A-Za-z0-9_-]{20,}", _TOKEN,
          case_sensitive=True),
    _rule("npm-token", _bounded("npm_") + r"[A-Za-z0-9]{36}", _TOKEN, case_sensitive=True),
    _rule("pypi-token", r"pypi-AgE[A-Za-z0-9_-]{30,}", _TOKEN, case_sensitive=True),
    _rule("vault-token", r"hv[sbr]\.[A-Za-z0-9_-]{20,}", _TOKEN, case_sensitive=True),
    # an age identity (sops, agenix, age -d -i): Bech32, upper case
    _rule("age-secret-key", r"AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{50,}", _TOKEN,
          case_sensitive=True, private_key=True),
    # a run that starts with eyJ but is no token is taken whole all the same (possessive, and
    # never a failed match): tried again at every eyJ in it, a line of "eyJ" repeated was
    # read to its end from each, 4.6 s for 100 KB. No later eyJ in the run could start a
    # token where the first did not: the same dot ends its first part, only sooner
    _rule("jwt",
          r"eyJ(?:[A-Za-z0-9_-]{5}[A-Za-z0-9_-]*+"
          r"(?P<jwt>\.eyJ[A-Za-z0-9_-]{5}[A-Za-z0-9_-]*+\.[A-Za-z0-9_-]*+)?|[A-Za-z0-9_-]*+)",
          _jwt, case_sensitive=True),
)

#: a terminal's escape sequences: CSI (colours, cursor), OSC (window titles, hyperlinks; ended
#: by BEL or ESC \) and the two-byte escapes. They go first: "pass\x1b[0mword=x" must read as
#: "password=x"; and strip_control takes them off host text whole, an OSC's words with it
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]"
                     r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _splice(text: str, edits: list[Edit], keep_lines: bool = False) -> str:
    """``text`` with the edits applied; overlapping ones merge (a private key mask wins).
    ``keep_lines``: a mask over several lines is followed by as many line breaks as it hid."""
    edits.sort()
    parts: list[str] = []
    pos = 0

    def masked(start: int, end: int, replacement: str) -> str:
        hidden = text.count("\n", start, end) - replacement.count("\n")
        return replacement + "\n" * hidden if keep_lines and hidden > 0 else replacement

    start, end, replacement = edits[0]
    for next_start, next_end, next_replacement in edits[1:]:
        if next_start < end:
            end = max(end, next_end)
            if next_replacement == _KEY_MASK:
                replacement = _KEY_MASK
            continue
        parts += (text[pos:start], masked(start, end, replacement))
        pos = end
        start, end, replacement = next_start, next_end, next_replacement
    parts += (text[pos:start], masked(start, end, replacement), text[end:])
    return "".join(parts)


def _subjects(text: str) -> tuple[str, str, str]:
    """(the text as the rules read it, the same with a line break before it, that one
    lower-cased at the same offsets): terminal escapes removed, NUL read as a separator."""
    if "\x1b" in text or "\x9b" in text:
        text = ESCAPES.sub("", text)
    if "\x00" in text:
        # /proc/PID/cmdline and /proc/PID/environ separate their arguments with NUL
        text = text.replace("\x00", " ")
    padded = "\n" + text
    lower = padded.lower()
    if len(lower) != len(padded):
        # a few letters grow when lower-cased (İ); offsets must stay those of the original
        lower = padded.translate(_ASCII_LOWER)
    return text, padded, lower


def redact(text: str, keep_lines: bool = False) -> str:
    """``text`` with secret-looking values replaced by ``[redacted]`` (private keys by
    ``[redacted private key]``), terminal escapes removed, NUL read as an argument separator.
    ``keep_lines``: every line stays on its line ("\\n" counted), a private key's mask
    followed by as many empty lines as the key had, for a text whose lines are numbered."""
    text, padded, lower = _subjects(text)
    edits: list[Edit] = []
    for rule in RULES:
        subject = padded if rule.case_sensitive else lower
        for match in rule.pattern.finditer(subject):
            edits.extend(rule.edits(match, padded))
    if not edits:
        return text
    return _splice(padded, edits, keep_lines)[1:]


#: how far past a cut text is masked before it is cut: a secret that the cut splits (a token
#: cut short of its pattern's length, a private key whose header falls outside) is found whole
#: in the window, and only the window is masked, however much a command printed
CUT_MARGIN = 65_536


def redact_cut(text: str, limit: int, *, tail: bool = False) -> str:
    """At most ``limit`` characters of ``text`` as :func:`redact` masks it: its first, or with
    ``tail`` its last. Masked first and cut after: cut first, a secret at the cut would no
    longer match its pattern and show in part, a private key without its header in full."""
    window = text[-(limit + CUT_MARGIN):] if tail else text[:limit + CUT_MARGIN]
    shown = redact(window)
    if tail:
        return shown[-limit:] if limit > 0 else ""
    return shown[:limit]


_PRIVATE_KEY_RULES = tuple(rule for rule in RULES if rule.private_key)


def private_key_format(text: str) -> str | None:
    """The rule that finds a private key in ``text`` (a PEM, PGP, SSH.com, PuTTY or age key), as
    :func:`redact` would mask it; None when it holds none."""
    _, padded, lower = _subjects(text)
    for rule in _PRIVATE_KEY_RULES:
        if rule.pattern.search(padded if rule.case_sensitive else lower):
            return rule.name
    return None


# .pgpass: host:port:database:user:password, with "\:" and "\\" escapes. A line of five
# colon-separated fields is an IPv6 address or a timestamp as often, so only a file of that
# name is read this way; a diff's "+", "-" or " " before a line is allowed.
_PGPASS_NAME = re.compile(r"(?:^|/)\.?pgpass(?:\.conf)?$")
_PGPASS_LINE = re.compile(r"^(?P<fields>[+ -]?(?![+ -]?#)(?:(?:[^:\\\n]|\\.)*:){4})(?P<v>[^\n]+)",
                          re.M)


def redact_file(text: str, path: str, diff: bool = False, keep_lines: bool = False) -> str:
    """``text`` of the file ``path`` as :func:`redact` masks it, and the formats only the
    file's name tells apart: a ``.pgpass``'s passwords. ``diff``: the text is a unified diff
    of the file, whose added and removed lines are masked without their "+" or "-" too, so
    that what a rule reads at a line's start (msmtprc's "password x") is found there.
    ``keep_lines``: as :func:`redact`'s."""
    text = redact(text, keep_lines)
    if diff:
        text = "\n".join(
            line[0] + redact(line[1:]) if line[:1] in ("+", "-") and line[:3] not in
            ("+++", "---") else line for line in text.split("\n"))
    if _PGPASS_NAME.search(path):
        text = _PGPASS_LINE.sub(lambda m: m["fields"] + MASK, text)
    return text


def redact_values(data: Any) -> Any:
    """``data`` (what JSON can write: mappings, lists, text, numbers) with every text in it
    masked as :func:`redact` masks it, in lists and mappings at any depth; a value JSON
    cannot write is masked as the text it would be written as. The keys stay: they are names
    the program chose (a section, a setting). A text that comes back many times (a record's
    level, a host's name) is masked once."""
    seen: dict[str, str] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            if value not in seen:
                seen[value] = redact(value)
            return seen[value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(item) for item in value]
        return walk(str(value))

    return walk(data)
