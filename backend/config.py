"""Client settings: plain values the composition root fills from the one Settings object."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata

MIB = 1024 * 1024

# Upload formats the service accepts (lower case, no dot); HEIC is in one doc only.
ACCEPTED_EXTENSIONS: tuple[str, ...] = (
    "mp4", "mov", "avi", "webm", "mkv",
    "jpg", "jpeg", "png", "gif", "webp", "heic",
    "mp3", "wav", "m4a", "aac",
)  # fmt: skip


def _package_version() -> str:
    try:
        return metadata.version("nemobot")
    except metadata.PackageNotFoundError:
        return "0.1.0"


VERSION = _package_version()


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Per-kind size caps; the published docs disagree, so they are settings."""

    image_bytes: int = 20 * MIB
    video_bytes: int = 500 * MIB
    audio_bytes: int = 100 * MIB


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Everything the client needs to know about the backend and about us."""

    base_url: str = "https://mega-api-prod.nemovideo.ai"
    platform: str = "telegram"
    skill_source: str = "nemobot"
    version: str = VERSION
    user_agent: str = f"nemobot/{VERSION}"
    operator_token: str | None = field(default=None, repr=False)
    # Wait before the one retry after a 429 whose answer names no `Retry-After`.
    rate_limit_wait: float = 30.0
    # Longest `Retry-After` waited for; a server asking for more gets RateLimited at once.
    max_retry_after: float = 120.0
    chat_timeout: float = 900.0
    request_timeout: float = 30.0
    limits: UploadLimits = field(default_factory=UploadLimits)
    # Longest silence (no byte at all, keep-alives included) tolerated inside a chat stream.
    chat_read_timeout: float = 300.0
    # Web front of the service: claim and registration links point here.
    web_base: str = "https://nemovideo.com"
    app_name: str = "nemo_agent"
