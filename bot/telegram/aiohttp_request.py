"""PTB's requests to the Bot API over one aiohttp session.

PTB's own HTTPXRequest spends most of a reply's CPU in httpcore's pool bookkeeping (it
scans every pooled connection on each request); aiohttp's C parser and simpler pool make a
Bot API call several times cheaper, which is what lets one process answer hundreds of
updates a second. `BaseRequest` is PTB's documented extension point for this.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

Timeout = float | None


class AiohttpRequest(BaseRequest):
    """Same knobs as PTB's HTTPXRequest; aiohttp has no write timeout, so the sum of all four
    bounds the whole call instead (an upload cannot hang forever)."""

    def __init__(
        self,
        *,
        connection_pool_size: int = 1,
        read_timeout: Timeout = 5.0,
        write_timeout: Timeout = 5.0,
        connect_timeout: Timeout = 5.0,
        pool_timeout: Timeout = 1.0,
        media_write_timeout: Timeout = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read = read_timeout
        self._write = write_timeout
        self._connect = connect_timeout
        self._pool = pool_timeout
        self._media_write = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        # HTTP(S)_PROXY / NO_PROXY, as PTB's httpx client honours them (where Telegram is
        # blocked, a proxy is how the bot reaches it); looked up once per host.
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("this AiohttpRequest is not initialized")
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else {}
        read = _given(read_timeout, self._read)
        connect = _given(connect_timeout, self._connect)
        pool = _given(pool_timeout, self._pool)
        write = _given(write_timeout, self._media_write if files else self._write)
        body: aiohttp.FormData | dict[str, str] = fields
        if files:
            form = aiohttp.FormData()
            for name, value in fields.items():
                form.add_field(name, value)
            for name, (filename, content, mime) in files.items():
                form.add_field(name, content, filename=filename, content_type=mime)
            body = form
        timeout = aiohttp.ClientTimeout(
            total=_sum(pool, connect, write, read),
            connect=_sum(pool, connect),
            sock_connect=connect,
            sock_read=read,
        )
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key not in self._proxies:
            self._proxies[key] = _proxy_for(parts.scheme, parts.hostname)
        proxy = self._proxies[key]
        try:
            async with session.request(
                method, url, data=body, timeout=timeout, proxy=proxy
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:  # aiohttp's timeouts subclass it
            raise TimedOut from err
        except aiohttp.ClientError as err:
            # The class name only: some aiohttp messages quote the URL, and it holds the token.
            raise NetworkError(f"aiohttp.{type(err).__name__}") from err


def _given(value: object, default: Timeout) -> Timeout:
    """PTB passes DEFAULT_NONE for "use the default"; anything else is the caller's choice."""
    if isinstance(value, type(BaseRequest.DEFAULT_NONE)):
        return default
    return value if value is None else float(value)  # type: ignore[arg-type]


def _sum(*parts: Timeout) -> Timeout:
    return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


def _proxy_for(scheme: str, host: str | None) -> str | None:
    """The proxy HTTP(S)_PROXY / NO_PROXY name for a host: looked up once per host, since
    aiohttp's own `trust_env` reads the environment in a worker thread on every request."""
    if not host or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)
