"""The simulator's in-memory world: users, tokens, sessions, uploads and renders."""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backend.sim.config import SimConfig

ANONYMOUS_PREFIX = "anon_"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class User:
    user_id: str
    anonymous: bool
    available: int
    frozen: int = 0


@dataclass
class Token:
    value: str
    user_id: str
    expires_at: float
    client_id: str | None

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


@dataclass
class Upload:
    filename: str
    file_type: str
    cdn_url: str
    size: int | None
    hash: str
    data: bytes | None = None
    mime: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "file_type": self.file_type,
            "cdn_url": self.cdn_url,
            "duration": self.duration,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "hash": self.hash,
            "size": self.size,
        }


@dataclass
class SimSession:
    session_id: str
    task_id: str
    task_name: str
    language: str
    user_id: str
    draft: dict[str, Any] = field(default_factory=lambda: {"t": []})
    uploads: list[Upload] = field(default_factory=list)
    generated_media: list[dict[str, Any]] = field(default_factory=list)
    edit_turns: int = 0
    turns: int = 0

    def state_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "state": {
                "draft": self.draft,
                "video_infos": [u.as_json() for u in self.uploads],
                "generated_media": list(self.generated_media),
                "canvas_config": {"width": 1080, "height": 1920, "ratio": "9:16"},
                "video_analyses": [],
            },
        }


TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class Render:
    """A render whose status is a function of the time since it started."""

    id: str
    session_id: str
    user_id: str
    started: float
    created_at: str
    seconds: float
    pending_s: float
    quality: str
    cost: int = 0
    fail_at: float | None = None
    fail_message: str = ""
    stuck_at: float | None = None
    cancelled: tuple[float, float] | None = None  # (progress, wall time)
    settled: bool = False

    def snapshot(self, now: float | None = None) -> tuple[str, float, str | None]:
        """(status, progress 0-100, error) at monotonic time `now`."""
        if self.cancelled is not None:
            return "cancelled", self.cancelled[0], None
        elapsed = (time.monotonic() if now is None else now) - self.started
        pending_end = min(self.pending_s, self.seconds / 2)
        if elapsed < pending_end:
            return "pending", 0.0, None
        span = max(self.seconds - pending_end, 1e-6)
        frac = min((elapsed - pending_end) / span, 1.0)
        if self.fail_at is not None and frac >= self.fail_at:
            return "failed", round(self.fail_at * 100, 1), self.fail_message
        if self.stuck_at is not None:
            return "processing", round(min(frac * 100, self.stuck_at), 1), None
        if frac >= 1.0:
            return "completed", 100.0, None
        return "processing", round(frac * 100, 1), None

    def completed_at(self) -> str | None:
        status, _, _ = self.snapshot()
        if status != "completed":
            return None
        created = datetime.strptime(self.created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return iso(created.timestamp() + self.seconds)


class World:
    """Everything the simulated service remembers; ids come from one seeded generator."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.sessions: dict[str, SimSession] = {}
        self.renders: dict[str, Render] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.claims: dict[str, tuple[str, str]] = {}

    def hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def anonymous_token(self, client_id: str) -> tuple[Token, User]:
        user_id = ANONYMOUS_PREFIX + hashlib.sha256(client_id.encode()).hexdigest()[:16]
        user = self.users.get(user_id)
        if user is None:
            user = User(user_id, anonymous=True, available=self.config.initial_credits)
            self.users[user_id] = user
        token = Token(
            value=f"nmv_usr_{self.hex(128)}",
            user_id=user_id,
            expires_at=time.time() + self.config.token_ttl_s,
            client_id=client_id,
        )
        self.tokens[token.value] = token
        return token, user

    def operator_user(self) -> User:
        user = self.users.get("usr_operator")
        if user is None:
            user = User("usr_operator", anonymous=False, available=self.config.operator_credits)
            self.users[user.user_id] = user
        return user

    def new_session(self, user: User, task_name: str, language: str) -> SimSession:
        session = SimSession(
            session_id=str(self.rng.randrange(10**18, 10**19)),
            task_id=f"task_{self.hex(64)}",
            task_name=task_name,
            language=language,
            user_id=user.user_id,
        )
        self.sessions[session.session_id] = session
        return session

    def settle(self, render: Render) -> None:
        """Moves a finished render's frozen credits: spent when completed, refunded otherwise."""
        status, _, _ = render.snapshot()
        if render.settled or status not in TERMINAL:
            return
        render.settled = True
        user = self.users.get(render.user_id)
        if user is None or not render.cost:
            return
        user.frozen -= render.cost
        if status != "completed":
            user.available += render.cost

    def settle_user(self, user: User) -> None:
        for render in self.renders.values():
            if render.user_id == user.user_id:
                self.settle(render)
