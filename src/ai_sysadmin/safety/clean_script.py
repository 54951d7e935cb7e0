"""clean_directory's deletion: one constant POSIX sh program, judged and run on one handle.

A check of the path string followed by ``find PATH -delete`` has a hole: between the two, a local
user can swap a component of PATH for a symlink and make root delete elsewhere. So the host runs
:data:`SCRIPT` (ours, never model text) with the path as data::

    sh -c SCRIPT ai-sysadmin-clean ROOT... -- DAYS PATH

It enters PATH once (``cd -P``: the shell's working directory is now a handle on one directory,
whatever PATH names later), asks the kernel where that directory really is (``getcwd`` through
coreutils ``pwd -P``, because bash's builtin re-resolves the string), requires that to be an
allowed root or below one (each root compared by its own real path), and only then runs
``find -P . -xdev ... -type f -mtime +DAYS -atime +DAYS -delete`` relative to that directory.
GNU find never follows a symlink with ``-P``, descends with ``openat(O_NOFOLLOW|O_DIRECTORY)``
after checking that the directory it opened is the one it examined, and deletes with
``unlinkat`` on the parent's descriptor (findutils manual, "Security Considerations for find";
``find --version`` shows ``O_NOFOLLOW(enabled) FTS(FTS_CWDFD)``).

What else lives in a cache or tmp directory is not the directory's own:

* mounts. ``-xdev`` stops only at another device, and a bind mount of a directory of the same
  file system has the same one. So the script reads ``/proc/self/mountinfo``: a mount point
  between the root and the directory (a bind mount or another disk placed inside the root)
  makes it refuse, and every mount point below the directory is left out of the deletion
  (``-path``: find still walks it, as ``-delete`` implies ``-depth``, under which ``-prune``
  does nothing). A root that is a mount point itself (``/tmp`` on tmpfs, a btrfs subvolume, a
  container's volume, ``/var/tmp`` bound to ``/tmp``) is the configured directory and is
  cleaned.
* the private ``/tmp`` of services with ``PrivateTmp=`` (``systemd-private-*``), which
  systemd-tmpfiles leaves alone for the same reason: nothing below one is deleted, and one
  is refused as the path.
* files still in use: old means neither modified (mtime) nor read (atime, which relatime
  still moves once a day) for DAYS days, as systemd-tmpfiles judges. tmpfiles also asks the
  ctime; only the clock sets that, so no test could make a file this script deletes.

The roots come first and the path last so that a sudo rule can pin the roots (see
:func:`sudoers_rule`). Hosts need only POSIX sh, coreutils and findutils, and Linux's
``/proc``. No I/O here.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

#: the script's $0; the script refuses to run under another name (see sudoers_rule)
NAME = "ai-sysadmin-clean"

#: exit statuses of SCRIPT (a shell's own syntax error is 2, a missing program 127)
EXIT_FIND_FAILED = 1
EXIT_OUTSIDE = 3
EXIT_NOT_A_DIRECTORY = 4
EXIT_USAGE = 5
EXIT_MOUNTED = 6
EXIT_PRIVATE_TMP = 7

MAX_DAYS = 3650

# One line with single spaces, and one `{ ...; }` group: a sudo rule matches it as text, and
# any word that sudo's matching would let a caller glue after the group is a syntax error before
# anything runs. Every check comes before the only command that deletes.
_LINES = (
    "{",
    "unset CDPATH;",
    "nl=$(printf '\\n.'); nl=${nl%.}; tab=$(printf '\\t');",
    f"fail() {{ printf '{NAME}: %s\\n' \"$2\" >&2; exit \"$1\"; }};",
    # the real path of a directory, from getcwd(); a name with a newline is refused, as
    # command substitution would cut trailing newlines off it
    "phys() { p=$(cd -P -- \"$1\" && env pwd -P && echo .) || return 1; p=${p%?.};"
    " case $p in ''|*\"$nl\"*) return 1;; esac; printf %s \"$p\"; };",
    # m: a mount point as mountinfo writes it (space, tab, newline and backslash octal-escaped)
    "unesc() { s=$1; m=; while :; do case $s in *'\\'*) ;; *) break;; esac;"
    " m=$m${s%%'\\'*}; s=${s#*'\\'}; case $s in 040*) m=\"$m \";; 011*) m=$m$tab;;"
    " 012*) m=$m$nl;; 134*) m=$m'\\';; *) return 1;; esac; s=${s#???}; done; m=$m$s; };",
    # g: a name as a find -path pattern that matches only itself
    "glob() { s=$1; g=; while test -n \"$s\"; do c=${s%\"${s#?}\"}; s=${s#?};"
    " case $c in '['|']'|'*'|'?'|'\\') g=$g'\\'$c;; *) g=$g$c;; esac; done; };",
    # under a sudo rule a caller could glue our fixed words into $0 and choose the roots
    f"test \"x$0\" = x{NAME} || fail {EXIT_USAGE} 'run as: sh -c SCRIPT {NAME} ROOT... --"
    " DAYS PATH';",
    "state=roots; days=; path=;",
    "for a do case $state in",
    # a root with a space could be two words of a sudo rule glued together
    f"roots) case $a in --) state=days;; *' '*) fail {EXIT_USAGE} \"root with a space: $a\";;"
    f" /*) ;; *) fail {EXIT_USAGE} \"root not absolute: $a\";; esac;;",
    "days) days=$a; state=path;;",
    "path) path=$a; state=end;;",
    f"*) fail {EXIT_USAGE} 'more than one path';;",
    "esac; done;",
    f"test \"$state\" = end || fail {EXIT_USAGE} 'expected ROOT... -- DAYS PATH';",
    f"case $days in ''|*[!0-9]*) fail {EXIT_USAGE} \"days not a number: $days\";; esac;",
    f"test \"$days\" -ge 1 && test \"$days\" -le {MAX_DAYS} || fail {EXIT_USAGE}"
    f" \"days not in 1..{MAX_DAYS}: $days\";",
    f"case $path in /*) ;; *) fail {EXIT_USAGE} \"path not absolute: $path\";; esac;",
    # the one resolution of the path: from here on only the handle counts
    f"cd -P -- \"$path\" || fail {EXIT_NOT_A_DIRECTORY} \"cannot enter $path\";",
    f"here=$(phys .) || fail {EXIT_NOT_A_DIRECTORY} \"cannot tell where $path is\";",
    # top: the deepest root that holds it, which leaves the fewest mounts in between
    "top=;",
    "for a do test \"x$a\" = x-- && break; r=$(phys \"$a\") || continue;"
    " test \"x$r\" = x/ && continue;"
    " case $here in \"$r\"|\"$r\"/*) test ${#r} -gt ${#top} && top=$r;; esac; done;",
    f"test -n \"$top\" || fail {EXIT_OUTSIDE} \"$path is $here, outside the allowed"
    " directories\";",
    f"case $here/ in */systemd-private-*/*) fail {EXIT_PRIVATE_TMP} \"$path is $here, a"
    " service's private temporary directory\";; esac;",
    # -xdev misses a bind mount of the same file system: every mount point counts (see above)
    "set --; seen=;",
    "while read -r id parent dev root mp rest; do seen=1;"
    f" unesc \"$mp\" || fail {EXIT_MOUNTED} \"cannot read the mount point $mp\";"
    " case $m in \"$top\"/*) case $here in \"$m\"|\"$m\"/*)"
    f" fail {EXIT_MOUNTED} \"$path is $here, on $m, a mount inside $top\";; esac;; esac;"
    " case $m in \"$here\"/*) glob \"${m#\"$here\"/}\";"
    " set -- \"$@\" -o -path \"./$g\" -o -path \"./$g/*\";; esac;"
    " done < /proc/self/mountinfo;",
    f"test -n \"$seen\" || fail {EXIT_MOUNTED} 'cannot read the mounts (/proc/self/mountinfo)';",
    # neither modified nor read for DAYS days; no service's PrivateTmp= (tmpfiles' x rule)
    "find -P . -xdev ! \\( -path '*/systemd-private-*' \"$@\" \\) -type f"
    f" -mtime +\"$days\" -atime +\"$days\" -delete || fail {EXIT_FIND_FAILED}"
    " \"find could not delete everything in $here\";",
    "}",
)
SCRIPT = " ".join(_LINES)

_EXPLAIN = {
    EXIT_FIND_FAILED: "find reported errors; some old files may remain",
    2: "the shell refused the script (syntax error)",
    EXIT_OUTSIDE: "the directory is outside the allowed directories (after resolving symlinks "
                  "on the host)",
    EXIT_NOT_A_DIRECTORY: "the path is not a directory that can be entered",
    EXIT_USAGE: "the script was called with invalid arguments",
    EXIT_MOUNTED: "the directory is on a mount inside the allowed directory (a bind mount or "
                  "another disk), or the mounts could not be read",
    EXIT_PRIVATE_TMP: "the directory is a service's private temporary directory (PrivateTmp=)",
    127: "a program the script needs (env, pwd, find) is missing",
}


class CleanArgumentError(ValueError):
    """An argument the clean script must never be given."""


def _plain_absolute(path: object, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise CleanArgumentError(f"{what} {path!r} is not an absolute path")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise CleanArgumentError(f"{what} {path!r} contains a control character")
    if path != "/" and (posixpath.normpath(path) != path or path.startswith("//")):
        raise CleanArgumentError(f"{what} {path!r} is not a plain path (no '.', '..', '//' "
                                 "or trailing '/')")
    return path


def _roots(allowed_roots: Iterable[str]) -> tuple[str, ...]:
    if isinstance(allowed_roots, str):
        raise CleanArgumentError("the allowed roots are a list of paths, not one string")
    # the configuration allows a trailing '/'; the script compares real paths, which have none
    roots = tuple(r.rstrip("/") or "/" if isinstance(r, str) else r for r in allowed_roots)
    if not roots:
        raise CleanArgumentError("no allowed root directory was given")
    for root in roots:
        _plain_absolute(root, "allowed root")
        if root == "/":
            raise CleanArgumentError("'/' cannot be an allowed root")
        if " " in root:
            # the script refuses it: a sudo rule could not tell two roots from one with a space
            raise CleanArgumentError(f"allowed root {root!r} contains a space")
    return roots


def clean_argv(path: str, older_than_days: int, allowed_roots: Iterable[str]
               ) -> tuple[str, ...]:
    """The argv that deletes regular files neither modified nor read for ``older_than_days``
    days below ``path``, on the host, only if ``path`` really is one of ``allowed_roots`` or
    inside one, and not in the mounts or services' private temporary directories there."""
    _plain_absolute(path, "path")
    if path == "/":
        raise CleanArgumentError("'/' is never cleaned")
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, int) or not (
            1 <= older_than_days <= MAX_DAYS):
        raise CleanArgumentError(f"older_than_days must be an integer in 1..{MAX_DAYS}, "
                                 f"not {older_than_days!r}")
    return ("sh", "-c", SCRIPT, NAME, *_roots(allowed_roots), "--", str(older_than_days), path)


def explain_exit(code: int) -> str:
    """What an exit status of the clean script means, for people."""
    if code == 0:
        return "done"
    return _EXPLAIN.get(code, f"exited {code}")


def _sudoers_word(text: str) -> str:
    # two levels: fnmatch() needs \ before its own specials, then the sudoers parser needs \
    # before , : = # and before every backslash it should pass on
    fnmatch_text = "".join("\\" + c if c in "\\*?[]" else c for c in text)
    return "".join("\\" + c if c in "\\,:=#" else c for c in fnmatch_text)


def sudoers_rule(user: str, allowed_roots: Iterable[str], shell: str = "/bin/sh") -> str:
    """The sudoers line that lets ``user`` run exactly this script, with these roots in this
    order (the daemon passes ``safety.clean_paths`` as configured), and any days and path."""
    if not user or any(c.isspace() or c in ",:=#\\" for c in user):
        raise CleanArgumentError(f"user {user!r} cannot be written in a sudoers line")
    _plain_absolute(shell, "shell")
    words = ["-c", SCRIPT, NAME, *_roots(allowed_roots)]
    return (f"{user} ALL=(root) NOPASSWD: {_sudoers_word(shell)} "
            f"{' '.join(_sudoers_word(w) for w in words)} -- *")
