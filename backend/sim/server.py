"""The simulated NemoVideo API over real HTTP (aiohttp.web), faults included.

It speaks only the wire format of `nemo-api.md`; it shares no code with the client so a
misunderstanding on either side shows up as a failing test instead of cancelling out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict, CIMultiDictProxy

from backend.sim import agent, events, media
from backend.sim.config import SimConfig
from backend.sim.faults import Faults, UnknownFault, parse_fault_request
from backend.sim.state import TERMINAL, Render, SimSession, Token, Upload, User, World, iso

log = logging.getLogger(__name__)

ATTRIBUTION_HEADERS = ("X-Skill-Source", "X-Skill-Version", "X-Skill-Platform")
REGISTER_URL = "https://nemovideo.com/register"
CLAIM_URL = "https://nemovideo.com/workspace/claim"
BUSINESS_STATUS = {1002: 404, 2001: 403, 4001: 415, 4002: 413}
_READ_CHUNK = 64 * 1024
SESSION_KEY: web.RequestKey[str | None] = web.RequestKey("nemo_sim_session")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def sample_mp4() -> bytes:
    """The few-KB valid MP4 (H.264 + AAC, 1 s, 160x90) every finished render downloads as."""
    return resources.files("backend.sim").joinpath("sample.mp4").read_bytes()


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator saw, for tests asserting what a client sent."""

    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    at: float


class ApiError(Exception):
    """An error answer, raised anywhere in a handler and rendered by the middleware."""

    def __init__(
        self,
        status: int,
        body: Mapping[str, Any] | None,
        *,
        text: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.text = text
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        if self.body is not None:
            return web.json_response(self.body, status=self.status, headers=self.headers)
        return web.Response(status=self.status, text=self.text or "", headers=self.headers)


def _ok(data: Any) -> web.Response:
    return web.json_response({"code": 0, "message": "success", "data": data})


def _is_render(path: str) -> bool:
    return path.startswith("/api/render/")


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class Simulator:
    """A stateful fake of the NemoVideo API: `await Simulator().start()` returns its base URL."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.faults = Faults()
        self.world = World(self.config)
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._mp4 = sample_mp4()
        self.app = self._build_app()

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serves on host:port (0 = a free port) and returns the base URL."""
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        self.base_url = f"http://{shown}:{bound[1]}"
        log.info("NemoVideo simulator serving on %s (seed %s)", self.base_url, self.config.seed)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- test helpers --------------------------------------------------------------------
    def set_fault(self, name: str, session_id: str | None = None, **params: Any) -> None:
        """Arms fault `name`, for one session or for all; see `FAULT_DEFAULTS` for params."""
        self.faults.set(name, session_id, **params)

    def clear_faults(self, name: str | None = None, session_id: str | None = None) -> None:
        self.faults.clear(name, session_id)

    def session(self, session_id: str) -> SimSession | None:
        return self.world.sessions.get(session_id)

    def user_for(self, token: str) -> User | None:
        if self.config.operator_token and token == self.config.operator_token:
            return self.world.operator_user()
        found = self.world.tokens.get(token)
        return None if found is None else self.world.users.get(found.user_id)

    def set_credits(self, token: str, available: int, frozen: int = 0) -> None:
        user = self.user_for(token)
        if user is None:
            raise KeyError("unknown token")
        user.available, user.frozen = available, frozen

    def expire_token(self, token: str) -> None:
        found = self.world.tokens.get(token)
        if found is not None:
            found.expires_at = time.time() - 1

    def requests_to(self, path_part: str) -> list[RecordedRequest]:
        return [r for r in self.requests if path_part in r.path]

    # ---- app -----------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        r = app.router
        r.add_post("/api/auth/anonymous-token", self._anonymous_token)
        r.add_post("/api/auth/claim-token", self._claim_token)
        r.add_post("/api/tasks/me/with-session/{app}", self._new_session)
        r.add_post("/run_sse", self._run_sse)
        r.add_post("/api/upload-video/{app}/me/{sid}", self._upload)
        r.add_get("/api/credits/balance/simple", self._credits)
        r.add_get("/api/state/{app}/me/{sid}/latest", self._state)
        r.add_post("/api/render/proxy/lambda", self._render_start)
        r.add_get("/api/render/proxy/lambda/{rid}", self._render_status)
        r.add_post("/api/render/proxy/lambda/{rid}/cancel", self._render_cancel)
        r.add_get("/renders/{rid}.mp4", self._download)
        r.add_get("/media/{mid}.mp4", self._media)
        r.add_get("/cdn/{sid}/{key}/{name}", self._cdn)
        r.add_get("/_sim/faults", self._faults_list)
        r.add_post("/_sim/faults", self._faults_set)
        r.add_delete("/_sim/faults", self._faults_clear)
        r.add_get("/_sim/requests", self._requests_list)
        r.add_get("/_sim/health", self._health)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim/"):
            return await handler(request)
        self._record(request)
        try:
            if path.startswith(("/api/", "/run_sse")):
                sid = await self._scope_session(request)
                request[SESSION_KEY] = sid
                await self._transport_faults(path, sid)
            else:
                request[SESSION_KEY] = None
            return await handler(request)
        except ApiError as exc:
            return exc.response()

    def _record(self, request: web.Request) -> None:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                at=time.time(),
            )
        )
        overflow = len(self.requests) - self.config.request_log_size
        if overflow > 0:
            del self.requests[:overflow]

    async def _scope_session(self, request: web.Request) -> str | None:
        """The session a request concerns, so session-scoped faults can match it."""
        sid = request.match_info.get("sid")
        if sid:
            return sid
        rid = request.match_info.get("rid")
        if rid:
            render = self.world.renders.get(rid)
            return render.session_id if render else None
        if request.method == "POST" and request.content_type == "application/json":
            try:
                body = json.loads(await request.read() or b"null")
            except (ValueError, UnicodeDecodeError):
                return None
            if isinstance(body, dict):
                value = body.get("session_id", body.get("sessionId"))
                return None if value is None else str(value)
        return None

    async def _transport_faults(self, path: str, sid: str | None) -> None:
        slow = self.faults.take("slow", sid, path)
        if slow is not None:
            await asyncio.sleep(float(slow.params["seconds"]))
        failure = self.faults.take("server_error", sid, path)
        if failure is not None:
            status = int(failure.params["status"])
            raise ApiError(status, None, text=f"{status} simulated upstream failure")
        limited = self.faults.take("rate_limit_once", sid, path)
        if limited is not None:
            retry = str(limited.params["retry_after"])
            if _is_render(path):
                body: dict[str, Any] = {"success": False, "data": None, "error": "rate limited"}
            else:
                body = {"code": 429, "message": "too many requests", "data": None}
            raise ApiError(429, body, headers={"Retry-After": retry})

    # ---- shared checks -------------------------------------------------------------------
    def _error(self, request: web.Request, code: int, message: str, data: Any = None) -> ApiError:
        """A business error in the envelope the endpoint uses, with its HTTP status."""
        if code == 1001:
            status = 401
        elif self.config.error_style == "ok":
            status = 200
        else:
            status = BUSINESS_STATUS.get(code, 400)
        if _is_render(request.path):
            body: dict[str, Any] = {"success": False, "data": data, "error": message, "code": code}
        else:
            body = {"code": code, "message": message, "data": data}
        return ApiError(status, body)

    def _auth(self, request: web.Request) -> User:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise self._error(request, 1001, "missing bearer token")
        sid: str | None = request.get(SESSION_KEY)
        operator = bool(self.config.operator_token) and value == self.config.operator_token
        token: Token | None = None if operator else self.world.tokens.get(value)
        if not operator and (token is None or token.expired()):
            raise self._error(request, 1001, "token expired or invalid")
        if self.faults.take("token_expired", sid, request.path) is not None:
            if token is not None:
                token.expires_at = time.time() - 1
            raise self._error(request, 1001, "token expired or invalid")
        if token is None:  # checked above: only the operator has no token of its own
            return self.world.operator_user()
        return self.world.users[token.user_id]

    def _session(self, request: web.Request, user: User, sid: str | None) -> SimSession:
        session = self.world.sessions.get(sid or "")
        if session is not None and self.faults.take("session_lost", sid, request.path):
            del self.world.sessions[session.session_id]
            session = None
        if session is None or session.user_id != user.user_id:
            raise self._error(request, 1002, f"session not found: {sid}")
        return session

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read() or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._invalid(request, "request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise self._invalid(request, "request body must be a JSON object")
        return body

    def _invalid(self, request: web.Request, message: str) -> ApiError:
        if _is_render(request.path):
            return ApiError(400, {"success": False, "data": None, "error": message})
        return ApiError(422, {"code": 422, "message": message, "data": None})

    def _no_credits(self, request: web.Request, user: User, sid: str | None, required: int) -> None:
        if self.faults.peek("no_credits", sid, request.path) is not None or (
            required and user.available < required
        ):
            data = {
                "available": 0 if self._credits_faulted(sid, request.path) else user.available,
                "required": required,
                "user_id": user.user_id,
                "anonymous": user.anonymous,
            }
            if user.anonymous:
                data["register_url"] = f"{REGISTER_URL}?bind={user.user_id}"
            self.faults.take("no_credits", sid, request.path)
            raise self._error(request, 2001, "insufficient credits", data)

    def _credits_faulted(self, sid: str | None, path: str) -> bool:
        return self.faults.peek("no_credits", sid, path) is not None

    @staticmethod
    def _origin(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def _public(self, request: web.Request) -> str:
        return (self.config.public_base_url or self._origin(request)).rstrip("/")

    # ---- auth, sessions, credits, state --------------------------------------------------
    async def _anonymous_token(self, request: web.Request) -> web.StreamResponse:
        client_id = request.headers.get("X-Client-Id", "").strip()
        if not client_id:
            raise ApiError(
                400, {"code": 400, "message": "X-Client-Id header is required", "data": None}
            )
        token, user = self.world.anonymous_token(client_id)
        return _ok(
            {
                "token": token.value,
                "user_id": user.user_id,
                "expires_at": iso(token.expires_at),
                "credits": user.available,
            }
        )

    async def _new_session(self, request: web.Request) -> web.StreamResponse:
        user = self._auth(request)
        body = await self._json_body(request)
        language = str(body.get("language") or "en")
        session = self.world.new_session(user, str(body.get("task_name") or "project"), language)
        return _ok(
            {"task_id": session.task_id, "session_id": session.session_id, "user_id": user.user_id}
        )

    async def _credits(self, request: web.Request) -> web.StreamResponse:
        user = self._auth(request)
        self.world.settle_user(user)
        available = (
            0 if self._credits_faulted(request.get(SESSION_KEY), request.path) else user.available
        )
        return _ok(
            {"available": available, "frozen": user.frozen, "total": available + user.frozen}
        )

    async def _state(self, request: web.Request) -> web.StreamResponse:
        user = self._auth(request)
        session = self._session(request, user, request.match_info["sid"])
        return _ok(session.state_json())

    async def _claim_token(self, request: web.Request) -> web.StreamResponse:
        user = self._auth(request)
        body = await self._json_body(request)
        session = self._session(request, user, _str_or_none(body.get("session_id")))
        if str(body.get("task_id") or "") != session.task_id:
            raise self._error(request, 1002, f"task not found: {body.get('task_id')}")
        claim = f"clm_{self.world.hex(128)}"
        self.world.claims[claim] = (session.task_id, session.session_id)
        return _ok({"claim_token": claim, "expires_in": self.config.claim_ttl_s})

    # ---- uploads -------------------------------------------------------------------------
    async def _upload(self, request: web.Request) -> web.StreamResponse:
        user = self._auth(request)
        session = self._session(request, user, request.match_info["sid"])
        if request.content_type.startswith("multipart/"):
            uploads = await self._read_multipart(request, session)
        elif request.content_type == "application/json":
            uploads = self._url_uploads(request, session, await self._json_body(request))
        else:
            raise self._invalid(request, "send multipart field 'files' or JSON {\"urls\": [...]}")
        if not uploads:
            raise self._invalid(request, "no files in the request")
        session.uploads.extend(uploads)
        return _ok({"files": [u.as_json() for u in uploads], "session_state_applied": True})

    def _kind(self, request: web.Request, name: str, mime: str | None) -> str:
        kind = media.kind_of(name)
        if kind is None and mime and media.extension(name) == "":
            ext = next((e for e, m in media.MIME_BY_EXTENSION.items() if m == mime), "")
            kind = media.KIND_BY_EXTENSION.get(ext)
        if kind is None:
            raise self._error(
                request,
                4001,
                f"unsupported file type: {name}",
                {"filename": name, "accepted": list(media.ACCEPTED)},
            )
        return kind

    async def _read_multipart(self, request: web.Request, session: SimSession) -> list[Upload]:
        reader = await request.multipart()
        uploads: list[Upload] = []
        failure: ApiError | None = None
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or part.name != "files":
                if isinstance(part, BodyPartReader):
                    await part.release()
                continue
            name = part.filename or "file"
            mime = part.headers.get("Content-Type")
            if failure is not None:
                await part.release()
                continue
            try:
                kind = self._kind(request, name, mime)
            except ApiError as exc:
                failure = exc
                await part.release()
                continue
            limit = media.limit_for(kind, self.config)
            data, size = await _read_limited(part, limit)
            if data is None:
                failure = self._error(
                    request,
                    4002,
                    f"file too large: {name} ({size} bytes, limit {limit})",
                    {"filename": name, "size": size, "limit": limit},
                )
                continue
            uploads.append(self._make_upload(request, session, name, kind, data, mime))
        if failure is not None:
            raise failure
        return uploads

    def _make_upload(
        self,
        request: web.Request,
        session: SimSession,
        name: str,
        kind: str,
        data: bytes | None,
        mime: str | None,
        url: str | None = None,
    ) -> Upload:
        digest = hashlib.sha256(data if data is not None else (url or name).encode()).hexdigest()
        key = digest[:16]
        safe = name.replace("/", "_") or "file"
        upload = Upload(
            filename=name,
            file_type=kind,
            cdn_url=f"{self._public(request)}/cdn/{session.session_id}/{key}/{safe}",
            size=None if data is None else len(data),
            hash=digest,
            data=data,
            mime=mime or media.MIME_BY_EXTENSION.get(media.extension(name)),
        )
        if kind == "image":
            dims = media.image_size(data) if data else None
            upload.width, upload.height = dims if dims else (None, None)
        elif kind == "video":
            upload.duration, upload.width, upload.height, upload.fps = 10.0, 1920, 1080, 30.0
        else:
            upload.duration = 30.0
        return upload

    def _url_uploads(
        self, request: web.Request, session: SimSession, body: dict[str, Any]
    ) -> list[Upload]:
        urls = body.get("urls")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise self._invalid(request, "'urls' must be a list of strings")
        uploads = []
        for url in urls:
            name = media.name_from_url(url)
            if not url.startswith(("http://", "https://")):
                raise self._error(
                    request,
                    4001,
                    f"unsupported URL: {url}",
                    {"filename": name, "accepted": list(media.ACCEPTED)},
                )
            kind = self._kind(request, name, None)
            uploads.append(self._make_upload(request, session, name, kind, None, None, url))
        return uploads

    # ---- chat ----------------------------------------------------------------------------
    async def _run_sse(self, request: web.Request) -> web.StreamResponse:
        user = self._auth(request)
        body = await self._json_body(request)
        sid = _str_or_none(body.get("session_id"))
        message = body.get("new_message")
        parts = message.get("parts") if isinstance(message, dict) else None
        if not sid or not isinstance(parts, list):
            raise self._invalid(request, "session_id and new_message.parts are required")
        text = "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)).strip()
        session = self._session(request, user, sid)
        source = next(
            (
                agent.Source(u.filename, u.cdn_url, u.width, u.height)
                for u in reversed(session.uploads)
                if u.file_type == "image"
            ),
            None,
        )
        plan = agent.plan_turn(
            text,
            session_lang=session.language,
            draft=session.draft,
            source=source,
            rng=self.world.rng,
            generate_cost=self.config.generate_cost,
            generate_seconds=self.config.generate_seconds,
            edit_seconds=self.config.edit_seconds,
            media_base=self._public(request),
        )
        self._no_credits(request, user, sid, plan.cost)
        # The turn takes effect in full even if the stream later breaks: the server finished it.
        session.turns += 1
        silent = False
        if plan.edits:
            session.edit_turns += 1
            every = self.config.no_text_every
            silent = every > 0 and (session.edit_turns + self.config.seed) % every == 0
            session.draft = plan.steps[-1].draft
            user.available -= plan.cost
            session.generated_media.extend(plan.media)
            for item in plan.media:
                self.world.media[item["id"]] = item
        return await self._stream(request, sid, plan, silent)

    async def _stream(
        self, request: web.Request, sid: str, plan: agent.TurnPlan, silent: bool
    ) -> web.StreamResponse:
        path = request.path
        quiet = self.faults.take("quiet_stream", sid, path)
        cut = self.faults.take("stream_cut", sid, path)
        crash = self.faults.take("agent_crash", sid, path)
        model_error = self.faults.take("model_error", sid, path)
        malformed = self.faults.take("malformed_events", sid, path)
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            },
        )
        await resp.prepare(request)
        writer = _StreamWriter(resp, self.config, malformed is not None)
        factory = events.EventFactory(self.world.rng)
        if quiet is not None:
            await writer.wait(float(quiet.params["seconds"]), float(quiet.params["every"]))
        for item in _script(factory, plan, silent, self.config):
            sent = writer.sent
            if cut is not None and sent >= int(cut.params["after"]):
                return await _cut(request, resp, str(cut.params["mode"]))
            if crash is not None and sent >= int(crash.params["after"]):
                await writer.raw(
                    events.crash_line(str(crash.params["message"]), str(crash.params["style"]))
                )
                await resp.write_eof()
                return resp
            if model_error is not None and sent >= int(model_error.params["after"]):
                await writer.event(
                    factory.model_error(
                        str(model_error.params["code"]), str(model_error.params["message"])
                    )
                )
                await resp.write_eof()
                return resp
            if isinstance(item, float):
                await writer.wait(item, self.config.keepalive_every_s)
            else:
                await writer.event(item)
        await resp.write_eof()
        return resp

    # ---- renders -------------------------------------------------------------------------
    def _render_body(self, request: web.Request, render: Render) -> dict[str, Any]:
        self.world.settle(render)
        status, progress, error = render.snapshot()
        url = f"{self._public(request)}/renders/{render.id}.mp4" if status == "completed" else None
        shape = self.config.render_shape
        if shape == "A":
            data: dict[str, Any] = {
                "id": render.id,
                "status": status,
                "progress": progress,
                "outputUrl": url,
                "createdAt": render.created_at,
                "completedAt": render.completed_at(),
            }
            if error:
                data["error"] = error
            return {"success": True, "data": data}
        output = {"url": url, "duration": 1.0, "size": len(self._mp4)} if url else None
        if shape == "B":
            data = {"taskId": render.id, "status": status, "progress": progress, "output": output}
            if error:
                data["error"] = error
            return {"success": True, "data": data}
        top: dict[str, Any] = {
            "id": render.id,
            "status": status,
            "progress": progress,
            "output": {"url": url} if url else None,
        }
        if error:
            top["error"] = error
        return top

    def _own_render(self, request: web.Request, user: User) -> Render:
        render = self.world.renders.get(request.match_info["rid"])
        if render is None or render.user_id != user.user_id:
            raise ApiError(404, {"success": False, "data": None, "error": "render not found"})
        return render

    async def _render_start(self, request: web.Request) -> web.StreamResponse:
        user = self._auth(request)
        missing = [h for h in ATTRIBUTION_HEADERS if not request.headers.get(h, "").strip()]
        if missing:
            raise ApiError(
                402,
                {
                    "success": False,
                    "data": None,
                    "error": f"missing attribution headers: {', '.join(missing)}",
                },
            )
        sid: str | None = request.get(SESSION_KEY)
        if self.faults.take("export_blocked", sid, request.path) is not None:
            raise ApiError(
                402,
                {"success": False, "data": None, "error": "export is not available on this plan"},
            )
        body = await self._json_body(request)
        render_id = body.get("id")
        if not isinstance(render_id, str) or not render_id:
            raise self._invalid(request, "'id' is required")
        if render_id in self.world.renders:
            raise ApiError(
                409,
                {"success": False, "data": None, "error": f"render id already used: {render_id}"},
            )
        session = self._session(request, user, _str_or_none(body.get("sessionId")))
        draft = body.get("draft")
        if not _exportable(draft):
            raise self._invalid(request, "draft has no segments to render")
        self._no_credits(request, user, session.session_id, self.config.export_cost)
        output = body.get("output")
        quality = str(output.get("quality", "high")) if isinstance(output, dict) else "high"
        now = time.time()
        render = Render(
            id=render_id,
            session_id=session.session_id,
            user_id=user.user_id,
            started=time.monotonic(),
            created_at=iso(now),
            seconds=self.config.render_seconds,
            pending_s=self.config.render_pending_s,
            quality=quality,
            cost=self.config.export_cost,
        )
        fail = self.faults.take("render_fail", session.session_id, request.path)
        if fail is not None:
            render.fail_at = float(fail.params["at"])
            render.fail_message = str(fail.params["message"])
        stuck = self.faults.take("render_never_finishes", session.session_id, request.path)
        if stuck is not None:
            render.stuck_at = float(stuck.params["progress"])
        user.available -= render.cost
        user.frozen += render.cost
        self.world.renders[render_id] = render
        return web.json_response(self._render_body(request, render))

    async def _render_status(self, request: web.Request) -> web.StreamResponse:
        user = self._auth(request)
        return web.json_response(self._render_body(request, self._own_render(request, user)))

    async def _render_cancel(self, request: web.Request) -> web.StreamResponse:
        user = self._auth(request)
        render = self._own_render(request, user)
        status, progress, _ = render.snapshot()
        if status in TERMINAL:
            raise ApiError(
                409, {"success": False, "data": None, "error": f"render already {status}"}
            )
        render.cancelled = (progress, time.time())
        return web.json_response(self._render_body(request, render))

    # ---- files ---------------------------------------------------------------------------
    async def _download(self, request: web.Request) -> web.StreamResponse:
        render = self.world.renders.get(request.match_info["rid"])
        if render is None or render.snapshot()[0] != "completed":
            raise web.HTTPNotFound()
        return web.Response(body=self._mp4, content_type="video/mp4")

    async def _media(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["mid"] not in self.world.media:
            raise web.HTTPNotFound()
        return web.Response(body=self._mp4, content_type="video/mp4")

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        session = self.world.sessions.get(request.match_info["sid"])
        key = request.match_info["key"]
        found = next(
            (u for u in (session.uploads if session else []) if u.hash.startswith(key)), None
        )
        if found is None or found.data is None:
            raise web.HTTPNotFound()
        return web.Response(body=found.data, content_type=found.mime or "application/octet-stream")

    # ---- /_sim control -------------------------------------------------------------------
    async def _faults_list(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"faults": self.faults.as_json()})

    async def _faults_set(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read() or b"{}")
            if not isinstance(body, dict):
                raise UnknownFault("body must be a JSON object")
            name, sid, params = parse_fault_request(body)
            self.faults.set(name, sid, **params)
        except (UnknownFault, ValueError, TypeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, "faults": self.faults.as_json()})

    async def _faults_clear(self, request: web.Request) -> web.StreamResponse:
        self.faults.clear(request.query.get("name"), request.query.get("session_id"))
        return web.json_response({"ok": True, "faults": self.faults.as_json()})

    async def _requests_list(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "requests": [
                    {"method": r.method, "path": r.path, "headers": dict(r.headers)}
                    for r in self.requests
                ]
            },
            dumps=_json_dumps,
        )

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})


def _str_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _exportable(draft: object) -> bool:
    if not isinstance(draft, dict) or not isinstance(draft.get("t"), list):
        return False
    return any(isinstance(t, dict) and t.get("sg") for t in draft["t"])


async def _read_limited(part: BodyPartReader, limit: int) -> tuple[bytes | None, int]:
    """The part's bytes, or (None, full size) when it is over `limit` (drained, not kept)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await part.read_chunk(_READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
    return (b"".join(chunks) if size <= limit else None), size


def _script(
    factory: events.EventFactory, plan: agent.TurnPlan, silent: bool, config: SimConfig
) -> list[dict[str, Any] | float]:
    """The turn as a list of events and pauses (a float = seconds of work, keep-alives due)."""
    out: list[dict[str, Any] | float] = []

    def speak(text: str, final: bool) -> None:
        for piece in events.chunks(text, config.chunk_words):
            out.append(factory.text(piece, partial=True))
            out.append(config.chunk_delay_s)
        out.append(factory.text(text, final=final))

    if plan.edits and not silent and plan.preamble:
        speak(plan.preamble, final=False)
    for step in plan.steps:
        call_id, call = factory.function_call(step.name, step.args)
        out.append(call)
        out.append(step.seconds)
        out.append(factory.function_response(call_id, step.name, step.response, step.draft))
    if silent:
        out.append(factory.turn_complete())
    else:
        speak(plan.reply, final=True)
    return out


class _StreamWriter:
    """Writes events and keep-alives; counts the events sent so faults can strike after N."""

    def __init__(self, resp: web.StreamResponse, config: SimConfig, malformed: bool) -> None:
        self._resp = resp
        self._config = config
        self._malformed = malformed
        self._keepalives = 0
        self._garbage = 0
        self.sent = 0

    async def raw(self, data: bytes) -> None:
        await self._resp.write(data)

    async def event(self, payload: dict[str, Any]) -> None:
        await self._resp.write(events.encode(payload))
        self.sent += 1
        if self._malformed:
            line = events.MALFORMED_LINES[self._garbage % len(events.MALFORMED_LINES)]
            self._garbage += 1
            await self._resp.write(f"{line}\n\n".encode())

    async def wait(self, seconds: float, every: float) -> None:
        """Sleeps `seconds`, sending a keep-alive every `every` seconds while work goes on.

        Ticks are scheduled from the start, so the number of keep-alives does not depend on
        how late the event loop wakes up.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + seconds
        every = max(every, 0.01)
        tick = 1
        while start + tick * every < end:
            await asyncio.sleep(max(0.0, start + tick * every - loop.time()))
            await self._resp.write(events.keepalive(self._config.keepalive_style, self._keepalives))
            self._keepalives += 1
            tick += 1
        await asyncio.sleep(max(0.0, end - loop.time()))


async def _cut(request: web.Request, resp: web.StreamResponse, mode: str) -> web.StreamResponse:
    """Ends the stream without turnComplete: a clean end ("eof") or a dropped connection."""
    if mode == "eof":
        await resp.write_eof()
        return resp
    transport = request.transport
    if transport is not None:
        transport.abort()
    return resp
