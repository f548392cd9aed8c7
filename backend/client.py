"""The NemoVideo client: one shared httpx.AsyncClient, typed answers, one error tree.

`NemoClient` holds the connection pool and the configuration; `NemoApi` is one chat's
view of it, bound to that chat's credentials. Recovery happens only where it is safe,
for requests refused at the door (`backend.recovery`): one retry after a 429, waiting
what the server asks, and one after a new anonymous token when the old one expired.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from backend.config import ClientConfig
from backend.errors import (
    BackendUnavailable,
    MissingClientId,
    NemoError,
    ProtocolError,
    StreamBroken,
    StreamTimeout,
    map_error,
)
from backend.events import ChatEvent, StreamParser, TurnComplete
from backend.files import preflight
from backend.models import (
    Credentials,
    Credits,
    ProjectState,
    RenderJob,
    Session,
    UploadedFile,
    UploadFile,
    parse_credits,
    parse_datetime,
    parse_render,
    parse_session,
    parse_state,
    parse_uploaded,
    require_mapping,
)
from backend.recovery import Recovery, Renew
from backend.transport import backend_transport

log = logging.getLogger(__name__)

OnRenew = Callable[[Credentials], Awaitable[None]]
_ANONYMOUS_TTL = timedelta(days=7)
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asks us to wait: `Retry-After` as seconds or as an HTTP date."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse_json(content: bytes) -> tuple[Any, bool]:
    """(parsed body or None, whether it parsed); an empty body is not a parse failure."""
    if not content.strip():
        return None, True
    try:
        return json.loads(content), True
    except ValueError:
        return None, False


def _unwrap(body: Any) -> Any:
    """`data` of a `{code,message,data}` or `{success,data}` envelope; a bare body as is."""
    if isinstance(body, dict) and "data" in body and ("code" in body or "success" in body):
        return body["data"]
    return body


Wrap = Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]


def build_client(
    config: ClientConfig,
    *,
    max_connections: int = 100,
    wrap: Wrap | None = None,
    event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
) -> NemoClient:
    """The client as the product runs it, owning its connection pool (closed by `aclose`).

    `max_connections` bounds the pool (each open agent stream holds one); `wrap` puts a
    layer over the transport (request logging) and `event_hooks` are httpx's (metrics).
    """
    transport = backend_transport(max_connections, base_url=config.base_url)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(config.request_timeout),
        transport=wrap(transport) if wrap else transport,
        event_hooks=event_hooks,
    )
    return NemoClient(http, config, owns_http=True)


class NemoClient:
    """Shared by every chat. `build_client` makes one; or pass an httpx client in."""

    def __init__(
        self, http: httpx.AsyncClient, config: ClientConfig, *, owns_http: bool = False
    ) -> None:
        self.http = http
        self.config = config
        self._owns_http = owns_http
        self._base = config.base_url.rstrip("/")
        self._static_headers = {
            "X-Skill-Source": config.skill_source,
            "X-Skill-Version": config.version,
            "X-Skill-Platform": config.platform,
            "User-Agent": config.user_agent,
        }

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def reachable(self, wait_s: float = 5.0) -> bool:
        """Whether the API answers HTTP at all (any status): for readiness probes."""
        try:
            await self.http.get(f"{self._base}/", timeout=wait_s, headers=self._static_headers)
        except httpx.HTTPError:
            return False
        return True

    async def __aenter__(self) -> NemoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- credentials -------------------------------------------------------------------

    async def anonymous_token(self, client_id: str) -> Credentials:
        """A fresh anonymous token (100 credits, 7 days) for this client id."""
        recovery = self.recovery("anonymous-token")
        return await recovery.attempts()(self._fetch_token, client_id)

    def recovery(self, endpoint: str, renew: Renew | None = None) -> Recovery:
        """A retry budget for one call to `endpoint`, on this client's settings."""
        return Recovery(
            endpoint,
            rate_limit_wait=self.config.rate_limit_wait,
            max_wait=self.config.max_retry_after,
            renew=renew,
        )

    async def credentials(self, client_id: str) -> Credentials:
        """The operator token when one is configured, else a new anonymous token."""
        if self.config.operator_token:
            return Credentials(
                token=self.config.operator_token,
                client_id=None,
                expires_at=None,
                anonymous=False,
            )
        return await self.anonymous_token(client_id)

    def bind(self, creds: Credentials, on_renew: OnRenew | None = None) -> NemoApi:
        return NemoApi(self, creds, on_renew)

    async def _fetch_token(self, client_id: str) -> Credentials:
        if not client_id or not client_id.strip():
            raise MissingClientId("a client id is needed for an anonymous token", status=None)
        body = await self.send(
            "POST",
            "/api/auth/anonymous-token",
            endpoint="anonymous-token",
            token=None,
            headers={"X-Client-Id": client_id},
        )
        data = require_mapping(_unwrap(body), "anonymous token")
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("anonymous token: no token in the answer")
        expires = parse_datetime(data.get("expires_at") or data.get("expiresAt"))
        if expires is None:
            expires = datetime.now(UTC) + _ANONYMOUS_TTL
        user_id = data.get("user_id")
        return Credentials(
            token=token,
            client_id=client_id,
            expires_at=expires,
            anonymous=True,
            user_id=str(user_id) if user_id else None,
        )

    # --- one HTTP exchange -------------------------------------------------------------

    def url(self, path: str) -> str:
        return self._base + path

    def headers(self, token: str | None) -> dict[str, str]:
        headers = dict(self._static_headers)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def send(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        token: str | None,
        json_body: Any = None,
        files: Any = None,
        headers: dict[str, str] | None = None,
        anonymous: bool = False,
        credits_link: str | None = None,
        allow_empty: bool = False,
    ) -> Any:
        """One request, its answer mapped to data or to the one matching NemoError."""
        all_headers = self.headers(token)
        if headers:
            all_headers.update(headers)
        try:
            response = await self.http.request(
                method,
                self.url(path),
                headers=all_headers,
                json=json_body,
                files=files,
                timeout=self.config.request_timeout,
            )
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(f"{endpoint}: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{endpoint}: {type(exc).__name__}") from exc
        body, parsed = _parse_json(response.content)
        error = map_error(
            response.status_code,
            body,
            endpoint=endpoint,
            anonymous=anonymous,
            credits_link=credits_link,
            retry_after=_retry_after(response),
            secrets=(token, self.config.operator_token),
        )
        if error is not None:
            log.info(
                "backend refused",
                extra={
                    "endpoint": endpoint,
                    "status": response.status_code,
                    "code": error.code,
                    "error": type(error).__name__,
                },
            )
            raise error
        if not parsed or (body is None and not allow_empty):
            raise ProtocolError(f"{endpoint}: the answer is not JSON", status=response.status_code)
        return body


class NemoApi:
    """One chat's view of the backend.

    Renews an expired anonymous token once per call and reports the new credentials
    through `on_renew`, so the caller can store them.
    """

    def __init__(self, client: NemoClient, creds: Credentials, on_renew: OnRenew | None) -> None:
        self.client = client
        self.creds = creds
        self._on_renew = on_renew
        self._renew_lock = asyncio.Lock()
        self._user_id = creds.user_id

    def __repr__(self) -> str:
        return f"NemoApi(creds={self.creds!r})"

    # --- endpoints ---------------------------------------------------------------------

    async def create_session(self, language: str) -> Session:
        body = await self._call(
            "POST",
            f"/api/tasks/me/with-session/{self.client.config.app_name}",
            "session",
            json_body=lambda: {"task_name": "project", "language": language},
        )
        session = parse_session(_unwrap(body))
        if session.user_id:
            self._user_id = session.user_id
        return session

    async def credits(self) -> Credits:
        body = await self._call("GET", "/api/credits/balance/simple", "credits")
        return parse_credits(_unwrap(body))

    async def state(self, session_id: str) -> ProjectState:
        app = self.client.config.app_name
        body = await self._call(
            "GET", f"/api/state/{app}/me/{quote(session_id, safe='')}/latest", "state"
        )
        return parse_state(_unwrap(body))

    async def upload_files(
        self, session_id: str, files: Sequence[UploadFile]
    ) -> list[UploadedFile]:
        """Multipart upload of several files at once, each checked before any byte leaves."""
        if not files:
            return []
        limits = self.client.config.limits
        for item in files:
            preflight(item.name, item.mime, item.size, limits)
        starts: list[int | None] = []
        for item in files:
            start: int | None = None
            if not isinstance(item.data, bytes | bytearray | memoryview):
                try:
                    start = item.data.tell() if item.data.seekable() else None
                except (OSError, ValueError):
                    start = None
            starts.append(start)
        sent = False

        def parts() -> list[tuple[str, tuple[str, Any, str]]]:
            nonlocal sent
            out: list[tuple[str, tuple[str, Any, str]]] = []
            for item, start in zip(files, starts, strict=True):
                data = item.data
                if sent and not isinstance(data, bytes | bytearray | memoryview):
                    if start is None:
                        raise BackendUnavailable("upload: cannot resend an unseekable file")
                    data.seek(start)
                out.append(("files", (item.name, data, item.mime or "application/octet-stream")))
            sent = True
            return out

        app = self.client.config.app_name
        body = await self._call(
            "POST",
            f"/api/upload-video/{app}/me/{quote(session_id, safe='')}",
            "upload",
            files=parts,
        )
        return parse_uploaded(_unwrap(body))

    async def upload_urls(self, session_id: str, urls: Sequence[str]) -> list[UploadedFile]:
        if not urls:
            return []
        app = self.client.config.app_name
        body = await self._call(
            "POST",
            f"/api/upload-video/{app}/me/{quote(session_id, safe='')}",
            "upload",
            json_body=lambda: {"urls": list(urls), "source_type": "url"},
        )
        return parse_uploaded(_unwrap(body))

    async def start_export(
        self, session_id: str, draft: dict[str, Any], *, quality: str = "high"
    ) -> RenderJob:
        """Start a render; every attempt gets its own id (a reused id is refused)."""
        ids: list[str] = []

        def request() -> dict[str, Any]:
            render_id = f"render_{int(time.time() * 1000)}_{uuid.uuid4().hex[:8]}"
            ids.append(render_id)
            return {
                "id": render_id,
                "sessionId": session_id,
                "draft": draft,
                "output": {"format": "mp4", "quality": quality},
            }

        body = await self._call("POST", "/api/render/proxy/lambda", "render", json_body=request)
        return parse_render(body, fallback_id=ids[-1])

    async def export_status(self, render_id: str) -> RenderJob:
        body = await self._call(
            "GET", f"/api/render/proxy/lambda/{quote(render_id, safe='')}", "render-status"
        )
        return parse_render(body, fallback_id=render_id)

    async def cancel_export(self, render_id: str) -> None:
        await self._call(
            "POST",
            f"/api/render/proxy/lambda/{quote(render_id, safe='')}/cancel",
            "render-cancel",
            allow_empty=True,
        )

    async def claim_link(self, task_id: str, session_id: str) -> str:
        """A browser link that moves this anonymous project into a registered account."""
        body = await self._call(
            "POST",
            "/api/auth/claim-token",
            "claim",
            json_body=lambda: {"task_id": task_id, "session_id": session_id},
        )
        data = require_mapping(_unwrap(body), "claim token")
        claim = data.get("claim_token")
        if not isinstance(claim, str) or not claim:
            raise ProtocolError("claim token: none in the answer")
        web = self.client.config.web_base.rstrip("/")
        return f"{web}/workspace/claim?{urlencode({'ct': claim})}"

    # --- chat ----------------------------------------------------------------------------

    def chat(self, session_id: str, text: str) -> AsyncIterator[ChatEvent]:
        """The agent's answer as typed events.

        TurnComplete comes once (when the agent says so, or at a clean close) unless the
        agent crashed, in which case AgentCrash is the last event. Never re-sends the
        message once the agent may have received it: a broken stream raises StreamBroken
        (or StreamTimeout). The only retry is after a token expiry reported before the
        stream started, when the agent never saw the message.
        """
        return self._chat(session_id, text)

    async def _chat(self, session_id: str, text: str) -> AsyncIterator[ChatEvent]:
        config = self.client.config
        deadline = asyncio.get_running_loop().time() + config.chat_timeout
        response = await self._open_stream(session_id, text, deadline)
        try:
            # Read inline (not through a nested generator): one hop per event.
            parser = StreamParser()
            chunks = response.aiter_bytes()
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise StreamTimeout(
                        f"chat: still running after {config.chat_timeout:g}s"
                    ) from exc
                except httpx.TimeoutException as exc:
                    raise StreamBroken(
                        f"chat: nothing received for {config.chat_read_timeout:g}s"
                    ) from exc
                except httpx.HTTPError as exc:
                    raise StreamBroken(f"chat: stream broke ({type(exc).__name__})") from exc
                for event in parser.feed(chunk):
                    yield event
            for event in parser.close():
                yield event
            if not parser.crashed and not parser.turn_complete:
                yield TurnComplete()
        finally:
            await response.aclose()

    async def _open_stream(self, session_id: str, text: str, deadline: float) -> httpx.Response:
        """The agent's event stream, once the server took the message.

        A refusal before the stream starts (429, expired token) means the agent never saw
        the message, so it is sent again within the recovery budget."""
        client = self.client
        config = client.config
        body = {
            "app_name": config.app_name,
            "user_id": "me",
            "session_id": session_id,
            "new_message": {"role": "user", "parts": [{"text": text}]},
        }
        timeout = httpx.Timeout(config.request_timeout, read=config.chat_read_timeout)
        recovery = client.recovery("chat", renew=self._renew)

        async def attempt() -> httpx.Response:
            creds = await self._fresh_creds()
            recovery.sent_with = creds
            headers = client.headers(creds.token)
            headers["Accept"] = "text/event-stream"
            headers["Cache-Control"] = "no-store"
            request = client.http.build_request(
                "POST", client.url("/run_sse"), json=body, headers=headers, timeout=timeout
            )
            try:
                response = await client.http.send(request, stream=True)
            except _CONNECT_ERRORS as exc:
                raise BackendUnavailable(f"chat: {type(exc).__name__}") from exc
            except httpx.HTTPError as exc:
                raise StreamBroken(f"chat: {type(exc).__name__} before the answer") from exc
            content_type = response.headers.get("content-type", "")
            if response.status_code == 200 and "text/event-stream" in content_type:
                return response
            try:
                error = await self._chat_refusal(response, creds)
            finally:
                await response.aclose()
            raise error

        try:
            async with asyncio.timeout_at(deadline):
                return await recovery.attempts()(attempt)
        except TimeoutError as exc:
            raise StreamTimeout(f"chat: no answer within {config.chat_timeout:g}s") from exc

    async def _chat_refusal(self, response: httpx.Response, creds: Credentials) -> NemoError:
        try:
            content = await response.aread()
        except httpx.HTTPError as exc:
            return BackendUnavailable(f"chat: refused ({response.status_code}), {exc!r}")
        body, _ = _parse_json(content)
        error = map_error(
            response.status_code,
            body,
            endpoint="chat",
            anonymous=creds.anonymous,
            credits_link=self._credits_link(),
            retry_after=_retry_after(response),
            secrets=(creds.token, self.client.config.operator_token),
        )
        if error is None:
            content_type = response.headers.get("content-type", "")
            return ProtocolError(f"chat: expected an event stream, got {content_type!r}")
        return error

    # --- recovery ------------------------------------------------------------------------

    def _credits_link(self) -> str | None:
        if not self.creds.anonymous:
            return None
        web = self.client.config.web_base.rstrip("/")
        bind = self._user_id or self.creds.user_id
        return f"{web}/register?{urlencode({'bind': bind})}" if bind else f"{web}/register"

    async def _fresh_creds(self) -> Credentials:
        creds = self.creds
        if creds.anonymous and creds.expired():
            await self._renew(creds)
        return self.creds

    async def _renew(self, failed: Credentials) -> None:
        async with self._renew_lock:
            if self.creds.token != failed.token:
                return  # another call already renewed it
            client_id = failed.client_id or str(uuid.uuid4())
            new = await self.client.anonymous_token(client_id)
            self.creds = new
            if new.user_id:
                self._user_id = new.user_id
            log.info("anonymous token renewed", extra={"client_id": client_id})
        if self._on_renew is not None:
            try:
                await self._on_renew(new)
            except Exception:
                log.exception("on_renew callback failed")

    async def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        json_body: Callable[[], Any] | None = None,
        files: Callable[[], Any] | None = None,
        allow_empty: bool = False,
    ) -> Any:
        recovery = self.client.recovery(endpoint, renew=self._renew)

        async def attempt() -> Any:
            creds = await self._fresh_creds()
            recovery.sent_with = creds
            return await self.client.send(
                method,
                path,
                endpoint=endpoint,
                token=creds.token,
                json_body=json_body() if json_body else None,
                files=files() if files else None,
                anonymous=creds.anonymous,
                credits_link=self._credits_link(),
                allow_empty=allow_empty,
            )

        return await recovery.attempts()(attempt)
