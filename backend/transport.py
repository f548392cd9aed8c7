"""The client's HTTP transport: httpx's interface over aiohttp's connection pool.

Why not httpx's own pool: httpcore scans every pooled connection on each request, which
makes it most of the CPU of a quick backend call once a few dozen connections are open
(`benchmarks/bench_backend.py` runs the same calls over both in one run). httpx stays the
client's interface; every aiohttp failure is turned here into the httpx error that says
what happened, so the client only ever sees httpx errors.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx

# Body pieces handed to httpx: a stream arriving in bulk then takes one trip through httpx
# and the event parser where 16 KB pieces took four.
_CHUNK = 64 * 1024


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
    proxy = env_proxy(base_url) if base_url else None
    return AiohttpTransport(
        max_connections, keepalive_s, proxy=httpx.Proxy(proxy) if proxy else None
    )


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent through one aiohttp session, opened on first use."""

    def __init__(
        self, max_connections: int, keepalive_s: float, *, proxy: httpx.Proxy | None = None
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=self._keepalive_s,
                ssl=httpx.create_ssl_context(),
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open_session()
        timeout = request.extensions.get("timeout", {})
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed upload: aiohttp reads it chunk by chunk
            data = request.stream
            request.headers.pop("transfer-encoding", None)
        proxy = self._proxy
        with _httpx_errors(request):
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes the content encoding itself
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
                proxy=str(proxy.url) if proxy else None,
                proxy_auth=aiohttp.BasicAuth(*proxy.auth) if proxy and proxy.auth else None,
            )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        with _httpx_errors(self._request):
            self._response.release()
            await self._response.wait_for_close()


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as exc:
        raise _httpx_error(exc)(type(exc).__name__, request=request) from exc


def _httpx_error(exc: aiohttp.ClientError) -> type[httpx.TransportError]:
    """Only a failure before the request left is a connect error: after it, the server may
    have acted on the request."""
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return httpx.ProxyError
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # connecting, or waiting for the pool
        return httpx.ConnectTimeout
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        return httpx.ReadError
    # A hang-up after the request, a malformed answer, and anything else aiohttp raises.
    return httpx.RemoteProtocolError
