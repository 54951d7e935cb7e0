"""What the model reads on this machine, as root hands it to the reading identity (nobody):
du names nothing inside a directory that identity may not list, read_file reads regular files
only and only the file the policy judged (a swap on the way is caught on the opened file), a
file holding a private key in any format the masking knows is refused whole, and a path too
long for the kernel is refused with one reason by every tool."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.redact import RULES
from ai_sysadmin.safety.file_policy import holds_private_key
from tests.support.dirs import enterable_tmp

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="reads drop from root to the reading identity (nobody)")

SECRET_DIR = "acme-merger-2027"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "secrets"


def call(ctx: ToolContext, name: str, **args: Any) -> Any:
    return asyncio.run(REGISTRY.call(name, args, ctx))


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with enterable_tmp("ai-sysadmin-noticed-") as path:
        yield path


@pytest.fixture
def ctx(tmp_path: Path, store: Any) -> ToolContext:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", command_timeout=8)
    return ToolContext(settings, {"testhost": LocalTransport("testhost")}, "testhost", store)


def _public(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o644)
    return path


# -- du: root measures, the reader names ----------------------------------------------------

@pytest.fixture
def private(tmp_path: Path) -> Path:
    """A 0700 directory of root's holding a directory whose name is the secret."""
    directory = tmp_path / "private"
    (directory / SECRET_DIR).mkdir(parents=True)
    (directory / SECRET_DIR / "plan.txt").write_text("x" * 60_000)
    directory.chmod(0o700)
    return directory


@pytest.mark.parametrize("argv", [
    ["du", "-d", "1", "{private}"],
    ["du", "--max-depth=2", "{top}"],
    ["du", "-h", "-d", "3", "{top}"],
    ["du", "{top}"],
    ["du", "-k", "-x", "{private}"],
])
def test_du_never_names_a_directory_inside_one_the_reader_may_not_list(
        ctx, tmp_path: Path, private: Path, argv: list[str]) -> None:
    argv = [a.format(private=private, top=tmp_path) for a in argv]
    result = call(ctx, "run_readonly", argv=argv)
    assert SECRET_DIR not in result.output, (argv, result.output)
    assert "Permission denied" in result.output, (argv, result.output)


def test_disk_usage_names_what_the_reader_may_list_and_root_measures_it(
        ctx, tmp_path: Path, private: Path) -> None:
    result = call(ctx, "disk_usage", path=str(private))
    assert result.status == "ok", result.output
    assert SECRET_DIR not in result.output
    assert str(private) in result.output and "may not list" in result.output
    # one level down where the reader may list: named, and measured by root (the reader
    # could not have entered the 0700 directory to count its 60 kB)
    for argv in (["du", "-k", "-d", "1", str(tmp_path)],
                 ["du", "-k", "--max-depth=1", "--", str(tmp_path)]):
        listed = call(ctx, "run_readonly", argv=argv)
        assert listed.status == "ok", listed.output
        sizes = {name: int(size) for size, _, name in
                 (line.partition("\t") for line in listed.output.splitlines())}
        assert sizes[str(private)] >= 60 and SECRET_DIR not in listed.output
    above = call(ctx, "disk_usage", path=str(tmp_path))
    assert above.status == "ok" and str(private) in above.output, above.output
    assert "may not list" not in above.output


# -- read_file: regular files only, and only the one judged ---------------------------------

def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o666)


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    path.chmod(0o666)


def _zero_device(path: Path) -> None:
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is


@pytest.mark.parametrize(("make", "kind"), [
    (_fifo, "fifo"), (_socket, "socket"), (_zero_device, "character special file"),
])
def test_read_file_refuses_at_once_what_is_not_a_regular_file(
        ctx, tmp_path: Path, make: Callable[[Path], None], kind: str) -> None:
    path = tmp_path / "special"
    make(path)
    started = time.monotonic()
    result = call(ctx, "read_file", path=str(path))
    # not after the tool's timeout: a FIFO's open waits for a writer that never comes
    assert time.monotonic() - started < ctx.settings.command_timeout / 2
    assert result.status == "refused", result.output
    assert "not a regular file" in result.output and kind in result.output


class SwappingHost(LocalTransport):
    """This machine, with a local user who swaps what a path names right after the host
    resolved it for the policy (``readlink -f``) and before the file is read."""

    def __init__(self, swap: Callable[[], None]) -> None:
        super().__init__("testhost")
        self.swap: Callable[[], None] | None = swap

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        done = await super().run(argv, timeout)
        if self.swap is not None and any(a.endswith("readlink") for a in argv):
            self.swap()
            self.swap = None
        return done


def _swapping(ctx: ToolContext, swap: Callable[[], None]) -> ToolContext:
    return ToolContext(ctx.settings, {"testhost": SwappingHost(swap)}, "testhost", ctx.store)


def test_a_file_swapped_for_a_link_to_a_refused_name_is_not_read(ctx, tmp_path: Path) -> None:
    keyring = _public(tmp_path / ".gnupg" / "notes", "gnupg-marker-4711\n")
    wanted = _public(tmp_path / "app.log", "ordinary log line\n")

    def swap() -> None:
        wanted.unlink()
        wanted.symlink_to(keyring)

    assert call(ctx, "read_file", path=str(keyring)).status == "refused"  # by its name
    result = call(_swapping(ctx, swap), "read_file", path=str(wanted))
    assert "gnupg-marker-4711" not in result.output
    assert result.status == "refused" and ".gnupg" in result.output, result.output


def test_a_directory_on_the_way_swapped_for_a_link_is_caught_on_the_opened_file(
        ctx, tmp_path: Path) -> None:
    _public(tmp_path / ".gnupg" / "app.conf", "gnupg-marker-0815\n")
    wanted = _public(tmp_path / "conf" / "app.conf", "listen 8080\n")
    (tmp_path / "conf").chmod(0o755)
    (tmp_path / ".gnupg").chmod(0o755)

    def swap() -> None:
        (tmp_path / "conf").rename(tmp_path / "conf.old")
        (tmp_path / "conf").symlink_to(tmp_path / ".gnupg")

    result = call(_swapping(ctx, swap), "read_file", path=str(wanted))
    assert "gnupg-marker-0815" not in result.output
    assert result.status == "refused" and ".gnupg" in result.output, result.output


def test_a_file_swapped_for_a_fifo_is_refused_at_once(ctx, tmp_path: Path) -> None:
    wanted = _public(tmp_path / "app.log", "ordinary log line\n")

    def swap() -> None:
        wanted.unlink()
        _fifo(wanted)

    started = time.monotonic()
    result = call(_swapping(ctx, swap), "read_file", path=str(wanted))
    assert time.monotonic() - started < ctx.settings.command_timeout / 2
    assert result.status == "refused" and "not a regular file" in result.output, result.output
    # a file nobody swaps reads as it always did
    log = _public(tmp_path / "other.log", "ordinary log line\n")
    assert call(_swapping(ctx, lambda: None), "read_file", path=str(log)).output == \
        "ordinary log line\n"
    assert call(ctx, "read_file", path=str(log), max_bytes=8).output == "ordinary"
    empty = _public(tmp_path / "empty.log", "")
    assert call(ctx, "read_file", path=str(empty)).output == "(empty file)"




# -- private keys: refused whole in every format the masking knows --------------------------

PGP_KEY = """-----BEGIN PGP PRIVATE KEY BLOCK-----

lQOYBGXq1cABCADPgpPrivateBodyLineOne0123456789abcdefABCDEF
=PgpCrc
-----END PGP PRIVATE KEY BLOCK-----
"""
PUTTY_KEY = """PuTTY-User-Key-File-3: ssh-ed25519
Encryption: none
Comment: deploy@laptop
Public-Lines: 2
AAAAC3NzaC1lZDI1NTE5AAAAIPuttyPublicPartOne
PuttyPublicPartTwo
Private-Lines: 1
Zq9PrivLineOnlyOne0123456789abcd
Private-MAC: 5f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a
"""
AGE_KEY = """# created: 2026-11-02T10:00:00Z
# public key: age1qx7hd2kx0yfnq0u4w3rnhzyv0lq2s9l3d8xqzjh8r5sr0w6e5acsqkkp8e
AGE-SECRET-KEY-1QQQQQ8SX2TNGGZ9D0G0FAKEAGEKEY9W4N7Q2C5L8J3H6V0XKDMRT5PRZYSE
"""


@pytest.mark.parametrize(("name", "text"), [
    ("signing.asc", PGP_KEY), ("deploy.ppk", PUTTY_KEY), ("identity.txt", AGE_KEY),
])
def test_a_private_key_file_is_refused_whatever_its_format(ctx, tmp_path: Path, name: str,
                                                           text: str) -> None:
    result = call(ctx, "read_file", path=str(_public(tmp_path / name, text)))
    assert result.status == "refused" and "private key" in result.output, result.output


def _fixture(name: str) -> dict[str, Any]:
    return tomllib.loads((FIXTURES / f"{name}.toml").read_text(encoding="utf-8"))


def test_every_private_key_the_masking_knows_is_refused_by_the_file_policy() -> None:
    for name in ("pem_private_key", "pgp_private_key", "putty_key", "age_key"):
        assert holds_private_key(_fixture(name)["text"]), name
    assert not holds_private_key(_fixture("must_stay")["text"])
    # one list decides both: each rule that masks a key, and every fixture that proves one
    key_rules = {rule.name for rule in RULES if getattr(rule, "private_key", False)}
    for path in sorted(FIXTURES.glob("*.toml")):
        case = tomllib.loads(path.read_text(encoding="utf-8"))
        if key_rules & set(case.get("rules", ())):
            assert holds_private_key(case["text"]), path.name


# -- one length check for a path, whichever tool is given it --------------------------------

@pytest.mark.parametrize("path", [
    "/srv/" + "a" * 5000,
    "/srv/" + "/".join(["\u65e5" * 80] * 18),  # 1462 characters, 4342 bytes
])
def test_a_path_too_long_for_the_kernel_is_refused_alike_by_every_tool(ctx, path: str) -> None:
    said = set()
    for tool, args in [("read_file", {"path": path}), ("list_directory", {"path": path}),
                       ("run_readonly", {"argv": ["ls", "-l", path]}),
                       ("run_readonly", {"argv": ["stat", path]})]:
        result = call(ctx, tool, **args)
        assert result.status == "refused", (tool, result.output)
        assert "too long a path" in result.output, (tool, result.output)
        said.add(result.output[result.output.index("too long a path"):])
    assert len(said) == 1, said
    (reason,) = said
    assert f"({len(path.encode())} bytes; the kernel takes 4095 at most)" in reason


# -- mdadm opens its devices as root: block devices only ---------------------------------------

def _a_block_device() -> str | None:
    for name in sorted(os.listdir("/dev")):
        if stat.S_ISBLK(os.stat(f"/dev/{name}").st_mode):
            return f"/dev/{name}"
    return None


def test_mdadm_as_root_opens_block_devices_only(ctx) -> None:
    """mdadm --detail/--examine/--query open each device as root and send it ioctls; opening
    a character device runs its driver (a watchdog arms and reboots the host, a tape
    rewinds). The host says what each is, and only block devices are opened."""
    for argv in (["mdadm", "--detail", "/dev/ptmx"], ["mdadm", "-E", "/dev/null"],
                 ["mdadm", "--query", "/dev/stdin"], ["mdadm", "--detail", "/dev/nosuch0"]):
        result = call(ctx, "run_readonly", argv=argv)
        assert result.status == "refused", (argv, result.output)
        assert "block devices" in result.output, result.output
    refused = call(ctx, "run_readonly", argv=["mdadm", "--detail", "/dev/ptmx"]).output
    assert "/dev/ptmx is a character device" in refused and "/dev/md0" in refused, refused
    shm = call(ctx, "run_readonly", argv=["mdadm", "--detail", "/dev/shm/md0"])
    assert shm.status == "refused" and "anyone may write" in shm.output, shm.output
    block = _a_block_device()
    if block is not None:  # a block device goes to mdadm (whether it is installed or not)
        result = call(ctx, "run_readonly", argv=["mdadm", "--examine", block])
        assert result.status != "refused", result.output
