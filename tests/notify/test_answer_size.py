"""A far end that answers 200 and streams without end (a URL that is a download or a media
stream), or a small gzip body that inflates to gigabytes: the sending process reads a bounded
piece of the answer and fails the send, its memory as it was. Each send runs in a process of
its own, whose peak memory is what is judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.notify.conftest import TOKEN, apprise_url, secret_file
from tests.notify.servers import Flood, GotifyServer, JsonEndpoint, Receiver

#: what the far end sends: far more than any bound, little enough to stream in seconds
SIZE = 512 << 20
#: how much the sender's peak memory may grow; reading the answer whole grew it by the answer
GROWTH_LIMIT_MIB = 128

#: builds the configured channels, sends one message through them, says what each answered
#: and how far the process's peak memory grew while it sent
_SEND = """
import asyncio, json, resource, sys
from pathlib import Path
import httpx  # imported by the Gotify channel's first send: not counted
from ai_sysadmin.config import Settings
from ai_sysadmin.notify import Message
from ai_sysadmin.notify.channels import build_channels
from ai_sysadmin.notify.notifier import send_around
settings = Settings(ai_name="hal", state_dir=Path(sys.argv[1]), **json.loads(sys.argv[2]))
channels = build_channels(settings)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
results = asyncio.run(send_around(channels, Message("[hal] t", "m", 5)))
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"results": results, "grew_mib": grew // 1024}))
"""


def _send(tmp_path: Path, **settings: Any) -> tuple[str | None, int]:
    """One message sent by a process of its own: why it was not accepted, and how many MiB
    its peak memory grew while it sent."""
    done = subprocess.run([sys.executable, "-c", _SEND, str(tmp_path / "state"),
                           json.dumps(settings, default=str)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout.splitlines()[-1])
    (why,) = said["results"].values()
    return why, said["grew_mib"]


@pytest.mark.parametrize("gzip", [False, True], ids=["stream", "gzip-bomb"])
def test_gotify_reads_a_bounded_answer(tmp_path: Path, gzip: bool) -> None:
    with GotifyServer(TOKEN, [Flood(SIZE, gzip)]) as gotify:
        token = secret_file(tmp_path / "gotify.token", TOKEN + "\n")
        # a timeout long enough to read it all: the bound is on bytes, not on time
        why, grew = _send(tmp_path, gotify_url=gotify.url, gotify_token_file=token,
                          notify={"timeout": 60})
        (request,) = gotify.requests
    assert grew < GROWTH_LIMIT_MIB, why
    assert why is not None and "answered HTTP 200 with more than 64 KiB" in why
    # asked for as it is: a compressed answer is inflated as it is read
    assert request.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("gzip", [False, True], ids=["stream", "gzip-bomb"])
def test_apprise_reads_a_bounded_answer(tmp_path: Path, endpoint: JsonEndpoint,
                                        gzip: bool) -> None:
    endpoint.then(Flood(SIZE, gzip))
    urls = secret_file(tmp_path / "apprise.urls", apprise_url(endpoint) + "\n")
    why, grew = _send(tmp_path, notify={"apprise_urls_file": urls, "timeout": 60})
    assert grew < GROWTH_LIMIT_MIB, why
    assert why is not None and "its answer was longer than 1024 KiB, read no further" in why
    (request,) = endpoint.requests
    assert request.headers["accept-encoding"] == "identity"


def test_an_answer_within_the_bound_is_read_as_before(tmp_path: Path,
                                                      endpoint: JsonEndpoint) -> None:
    """What the bound leaves: a Gotify's answer and an Apprise service's are accepted, and
    the bound ends with the send: the same thread then reads a longer answer through requests
    whole, as anything else in the process does."""
    with GotifyServer(TOKEN) as gotify, Receiver([Flood(2 << 20)]) as other:
        token = secret_file(tmp_path / "gotify.token", TOKEN + "\n")
        urls = secret_file(tmp_path / "apprise.urls", apprise_url(endpoint) + "\n")
        done = subprocess.run(
            [sys.executable, "-c", _SEND + _AFTER, str(tmp_path / "state"),
             json.dumps({"gotify_url": gotify.url, "gotify_token_file": token,
                         "notify": {"apprise_urls_file": urls}}, default=str),
             f"http://127.0.0.1:{other.port}/"],
            capture_output=True, text=True, timeout=120)
        titles = gotify.titles()
    assert done.returncode == 0, done.stderr
    sent, after = done.stdout.splitlines()[-2:]
    assert list(json.loads(sent)["results"].values()) == [None, None]
    assert titles == ["[hal] t"] and len(endpoint.accepted) == 1
    assert after == str(2 << 20)


#: after the send, the same thread reads a 2 MiB answer through requests, outside any send
_AFTER = """
import requests
print(len(requests.post(sys.argv[3], data=b"{}", timeout=30).content))
"""
