"""How a server URL from the settings (``llm.url``, ``knowledge.ollama_url``) is used and shown:
the base that requests go to, the query some proxies take a key in (sent with every request),
and the form every text about the server shows (no password, no query value). Plain strings:
no HTTP client is imported here.
"""

from __future__ import annotations

from ..errors import ConfigError


def base_url(url: str, default_port: int | None = None) -> str:
    """``url`` without its query (:func:`url_query`) and trailing slash. Ollama's own
    convention (``OLLAMA_HOST``) lets a bare ``host[:port]`` through as ``http://host:port``,
    ``default_port`` when none is given; a scheme other than http(s) is a configuration
    error, not a connection failure later."""
    url = url.strip().partition("?")[0].rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "http", url
        host = rest.split("/", 1)[0]
        if default_port is not None and not host.rsplit("]", 1)[-1].count(":"):
            rest = rest.replace(host, f"{host}:{default_port}", 1)
    if scheme.lower() not in ("http", "https") or not rest:
        raise ConfigError("llm.url", [f"{masked_url(url)!r} is not an http:// or https:// URL"])
    return f"{scheme}://{rest}"


def url_query(url: str) -> str:
    """The query of ``url`` (a key some proxies take there), sent with every request: glued
    to the base URL, the API's paths would land inside it."""
    return url.strip().partition("?")[2].partition("#")[0]


def masked_url(url: str) -> str:
    """``url`` as every text about the server shows it (errors, the status, hence the queue's
    stored errors, the logs, incident events): its password and query values masked the way
    ``config show`` masks them, a bare ``host:port`` (Ollama's convention) included."""
    # here, not at the top: the settings module costs pydantic's import, and a backend is
    # made from settings that already paid it
    from ..config import mask_url

    return mask_url(url)
