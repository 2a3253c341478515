"""What reading a dataset where it lives may cost: how long a server may stay silent, how long one request may
take, how large a response may be, and no decompression of what a server sends (a gzip body could expand a
thousandfold). ``with_limits`` adds these to fsspec's storage options; ``expertdata.io.remote`` and the Zarr backend's
remote store both take their file systems through it.
"""
from __future__ import annotations

import os
from typing import Any

from ..core.errors import UnreadableError, UsageError

#: Seconds a connection may take to open, or stay silent while a response is read (``--timeout``)...
TIMEOUT_VARIABLE, TIMEOUT = "EXPERTDATA_TIMEOUT", 30.0
#: ... and one request may take in all (a server that trickles bytes; ``--request-timeout``).
REQUEST_TIMEOUT_VARIABLE, REQUEST_TIMEOUT = "EXPERTDATA_REQUEST_TIMEOUT", 600.0
#: An HTTP response read into memory may hold at most this many bytes: a chunk (at most 256 MiB decompressed, so
#: as much compressed, ``formats.base.MAX_CHUNK_BYTES``) and a MiB; a response to a range request, at most the range.
MAX_RESPONSE = 257 * 2**20


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{variable} must be a positive number of seconds, not {text!r}")
    return value


def timeouts() -> tuple[float, float]:
    """The seconds a connection may stay silent, and one request may take in all (``EXPERTDATA_TIMEOUT``,
    ``EXPERTDATA_REQUEST_TIMEOUT``; the command line's ``--timeout`` and ``--request-timeout``)."""
    return _seconds(TIMEOUT_VARIABLE, TIMEOUT), _seconds(REQUEST_TIMEOUT_VARIABLE, REQUEST_TIMEOUT)


async def _capped_session(**kwargs: Any) -> Any:
    """An aiohttp session for fsspec's HTTP file system that reads no response body beyond ``MAX_RESPONSE``
    bytes, asks for bodies as they are (``Accept-Encoding: identity``) and never decompresses one: a gzip body
    could expand a thousandfold (a server that sends one anyway gives bytes that fail to parse, in one line)."""
    import aiohttp

    class Capped(aiohttp.ClientResponse):
        async def read(self) -> bytes:
            if self._body is None:
                chunks, size, limit = [], 0, _asked(self.request_info.headers.get("Range"))
                try:
                    while chunk := await self.content.read(2**20):
                        size += len(chunk)
                        if size > limit:
                            raise ResponseTooLarge(f"{self.url}: the response runs past the {limit:,} bytes asked "
                                                   "for" if limit < MAX_RESPONSE else
                                                   f"{self.url}: the response runs past {MAX_RESPONSE:,} bytes")
                        chunks.append(chunk)
                except BaseException:
                    self.close()
                    raise
                self._body = b"".join(chunks)
            return await super().read()

    headers = {**dict(kwargs.pop("headers", None) or {}), "Accept-Encoding": "identity"}
    return aiohttp.ClientSession(response_class=Capped, auto_decompress=False, headers=headers, **kwargs)


def _asked(range_header: str | None) -> int:
    """How many bytes a request asked for: a range's length (``bytes=a-b``), else ``MAX_RESPONSE``."""
    parts = (range_header or "").removeprefix("bytes=").split("-")
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return min(MAX_RESPONSE, int(parts[1]) - int(parts[0]) + 1)
    return MAX_RESPONSE


class ResponseTooLarge(UnreadableError):
    """A server sent more than was asked for, or than a response may hold."""


def with_limits(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with expertdata's limits added where the caller set none: connect and read timeouts, a time
    limit per request, and (HTTP) capped, undecoded response bodies. Options given for a chained URL's file
    systems (``{"simplecache": {...}}``) are kept as they are."""
    protocol = url.split("::")[-1].split("://")[0] if "://" in url else "file"
    silent, whole = timeouts()
    out = dict(options)
    if protocol in ("http", "https"):
        import aiohttp

        target = dict(out.get(protocol, {})) if "::" in url else out
        client = dict(target.get("client_kwargs") or {})
        client.setdefault("timeout", aiohttp.ClientTimeout(total=whole, connect=silent, sock_read=silent))
        target["client_kwargs"] = client
        target.setdefault("get_client", _capped_session)
        if "::" in url:
            out[protocol] = target
    elif protocol in ("s3", "s3a"):
        config = dict(out.get("config_kwargs") or {})
        config.setdefault("connect_timeout", silent)
        config.setdefault("read_timeout", silent)
        out["config_kwargs"] = config
    return out
