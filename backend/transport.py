"""The client's HTTP transport: httpx's interface over aiohttp's connection pool.

httpcore's pool scans every pooled connection on each request, which made it most of the
CPU of a quick backend call once a few dozen connections were open; aiohttp's pool does
not. httpx stays the interface (httpx-sse reads the agent's stream through it), and
httpx-aiohttp bridges the two. Its error mapping is completed here, so the client only
ever sees httpx errors, each the one that describes what happened.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream

# The library hands a body on 16 KB at a time (its class setting); a stream arriving in
# bulk then takes four trips through httpx and the event parser where one would do
# (measured with benchmarks/bench_backend.py).
AiohttpResponseStream.CHUNK_SIZE = 64 * 1024


def env_proxy(url: str) -> str | None:
    """The proxy HTTP(S)_PROXY / NO_PROXY give for `url`, as httpx would pick it.

    Read once per host by the callers: aiohttp's own `trust_env` looks the environment up
    in a worker thread on every request, two thread hops that doubled a call's latency."""
    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def backend_transport(
    max_connections: int, keepalive_s: float = 5.0, *, base_url: str | None = None
) -> httpx.AsyncBaseTransport:
    """The pool for the API at `base_url`, through the proxy the environment names for it."""
    limits = httpx.Limits(max_connections=max_connections, keepalive_expiry=keepalive_s)
    proxy = env_proxy(base_url) if base_url else None
    return _Transport(limits=limits, proxy=httpx.Proxy(proxy) if proxy else None)


class _Transport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _httpx_errors(request):
            response = await super().handle_async_request(request)
        response.stream = _Body(response.stream, request)
        return response


class _Body(httpx.AsyncByteStream):
    def __init__(self, inner: Any, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        with _httpx_errors(self._request):
            await self._inner.aclose()


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError as exc:
        cause = exc.__cause__
        if isinstance(cause, aiohttp.ClientConnectorError):
            # The library reports a refused connection as a connect timeout.
            raise httpx.ConnectError(type(cause).__name__, request=request) from cause
        if isinstance(cause, aiohttp.ServerDisconnectedError):
            # The request went out and the server hung up: not a connect failure, since
            # the server may have acted on it.
            raise httpx.RemoteProtocolError(type(cause).__name__, request=request) from cause
        raise
    except aiohttp.ClientError as exc:
        # What the library leaves unmapped, such as a malformed HTTP answer.
        raise httpx.RemoteProtocolError(type(exc).__name__, request=request) from exc
