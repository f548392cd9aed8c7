"""What the simulated upload endpoint accepts, and what it can tell about a file."""

from __future__ import annotations

import struct
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from backend.sim.config import SimConfig

KIND_BY_EXTENSION: dict[str, str] = {
    **dict.fromkeys(("mp4", "mov", "avi", "webm", "mkv"), "video"),
    **dict.fromkeys(("jpg", "jpeg", "png", "gif", "webp", "heic"), "image"),
    **dict.fromkeys(("mp3", "wav", "m4a", "aac"), "audio"),
}
ACCEPTED = (
    "mp4",
    "mov",
    "avi",
    "webm",
    "mkv",
    "jpg",
    "png",
    "gif",
    "webp",
    "mp3",
    "wav",
    "m4a",
    "aac",
)
MIME_BY_EXTENSION: dict[str, str] = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
}


def extension(name: str) -> str:
    return PurePosixPath(name).suffix.lower().lstrip(".")


def kind_of(name: str) -> str | None:
    """'image' | 'video' | 'audio', or None when the extension is not accepted."""
    return KIND_BY_EXTENSION.get(extension(name))


def name_from_url(url: str) -> str:
    path = unquote(urlsplit(url).path)
    return PurePosixPath(path).name or "file"


def limit_for(kind: str, config: SimConfig) -> int:
    return {"image": config.image_bytes, "video": config.video_bytes}.get(kind, config.audio_bytes)


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG, GIF or JPEG header; None when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None
