"""What the disk and directory tools show on this machine: du runs as root only for sizes, so
no file name in a directory the reading identity cannot list reaches the model; and any path
read_file reads, the listing tools list too (an argv never meets a shell)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ai_sysadmin.safety.privilege import root_reason
from tests.agent.test_tools import call

SECRET_NAME = "db-password-Hunter2.txt"


@pytest.fixture
def private(tmp_path: Path) -> Path:
    """A 0700 directory of root's: the reading identity may not list it."""
    directory = tmp_path / "private"
    directory.mkdir()
    directory.chmod(0o700)
    (directory / SECRET_NAME).write_text("x" * 50_000)
    return directory


NAME_SHOWING = [
    ["du", "-a", "{dir}"],
    ["du", "--all", "-h", "{dir}"],
    ["du", "-ah", "--time", "{dir}"],
    ["du", "--time=ctime", "-d", "1", "{dir}"],
    ["du", "-s", "--exclude=*password*", "{dir}"],
]


def test_du_never_shows_what_is_inside_a_directory_the_reader_cannot_list(ctx,
                                                                          private) -> None:
    for argv in NAME_SHOWING:
        result = call(ctx, "run_readonly", argv=[a.format(dir=private) for a in argv])
        assert SECRET_NAME not in result.output and "Hunter2" not in result.output, argv
        assert "Permission denied" in result.output, (argv, result.output)
    # the listing tool agrees: the reading identity may not list it
    listing = call(ctx, "list_directory", path=str(private))
    assert SECRET_NAME not in listing.output and "Permission denied" in listing.output
    # and its size is still measured, by root, directory by directory
    result = call(ctx, "run_readonly", argv=["du", "-sh", str(private)])
    assert result.status == "ok", result.output
    size, _, name = result.output.strip().partition("\t")
    assert name == str(private) and size.endswith("K")
    above = call(ctx, "disk_usage", path=str(private.parent))
    assert above.status == "ok" and str(private) in above.output
    assert SECRET_NAME not in above.output


def test_lsof_runs_as_root_for_ports_only(ctx, tmp_path: Path) -> None:
    """lsof +D DIR as root named every open file inside directories the reading identity may
    not list (`nobody` cannot enter a 0700 directory), and so did bare lsof, -p PID, -u and
    -c, listing every open file of what they select; any selection but -i runs as the
    reader, who is told what it may see."""
    assert root_reason(["lsof", "-nP", "-iTCP", "-sTCP:LISTEN"])
    assert root_reason(["lsof", "-i", ":22"]) and root_reason(["lsof", "-nPi:443", "-t"])
    for args in (["+D", "/root"], ["+d", "/srv"], ["-n", "+D/root"], ["/var/log/syslog"],
                 ["--", "/srv/app.sock"], [], ["-n"], ["-p", "4242"], ["-i", "-p", "1"],
                 ["-a", "-i", "-u", "root"], ["-c", "sshd"], ["-U"], ["+L1"]):
        assert root_reason(["lsof", *args]) is None, args
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    held = private / "acme-merger.txt"
    held.write_text("x")
    with held.open():
        for argv in (["lsof", "-n", "+D", str(private)], ["lsof", "-n", "-p", str(os.getpid())]):
            result = call(ctx, "run_readonly", argv=argv)
            assert "acme-merger" not in result.output, (argv, result.output)


def test_only_the_directory_level_form_of_du_is_named_for_root() -> None:
    assert root_reason(["du", "-x", "-k", "--max-depth=1", "--", "/var"])
    assert root_reason(["du", "-shc", "/var", "/srv"])
    for names in (["-a"], ["-sha"], ["--all"], ["--time"], ["--time=atime"],
                  ["--exclude", "*.log"]):
        assert root_reason(["du", *names, "/var"]) is None, names


@pytest.mark.parametrize("name", ["app (old)", "it's", "c#", "a;b|c&d", "50% $HOME"])
def test_listing_tools_take_the_paths_read_file_takes(ctx, tmp_path: Path, name) -> None:
    directory = tmp_path / name
    directory.mkdir()
    directory.chmod(0o755)
    (directory / "log.txt").write_text("hello\n")
    (directory / "log.txt").chmod(0o644)
    assert call(ctx, "read_file", path=str(directory / "log.txt")).output == "hello\n"
    listing = call(ctx, "list_directory", path=str(directory))
    assert listing.status == "ok" and "log.txt" in listing.output, listing.output
    usage = call(ctx, "disk_usage", path=str(directory))
    assert usage.status == "ok" and str(directory) in usage.output, usage.output
    ls = call(ctx, "run_readonly", argv=["ls", "-l", str(directory / "log.txt")])
    assert ls.status == "ok" and "log.txt" in ls.output, ls.output
    # what matters in a path is still refused
    for path, reason in [(f"{directory}/a\nb", "control character"),
                         (f"{directory}/a\x1b[2Jb", "control character"),
                         (f"{directory}/a\u202eb", "invisible or control character"),
                         (f"{directory}/../../etc", "climbs out"),
                         (name, "absolute path")]:
        for argv in (["ls", "-l", path], ["du", "-sh", path], ["stat", path]):
            result = call(ctx, "run_readonly", argv=argv)
            assert result.status == "refused" and reason in result.output, (argv, result.output)


def test_a_path_longer_than_an_ordinary_argument_is_listed(ctx, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*[f"level-{n}-" + "d" * 50 for n in range(6)])
    deep.mkdir(parents=True)
    for part in [deep, *deep.parents]:
        if part == tmp_path:
            break
        part.chmod(0o755)
    (deep / "app.log").write_text("deep\n")
    (deep / "app.log").chmod(0o644)
    assert len(str(deep)) > 300
    listing = call(ctx, "list_directory", path=str(deep))
    assert listing.status == "ok" and "app.log" in listing.output, listing.output
    assert call(ctx, "disk_usage", path=str(deep)).status == "ok"


