"""Pre-flight checks on a file before any byte of it is sent."""

from __future__ import annotations

from enum import StrEnum

from backend.config import ACCEPTED_EXTENSIONS, UploadLimits
from backend.errors import FileTooLarge, UnsupportedFile


class FileKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


_KIND_BY_EXTENSION: dict[str, FileKind] = {
    **dict.fromkeys(("mp4", "mov", "avi", "webm", "mkv"), FileKind.VIDEO),
    **dict.fromkeys(("jpg", "jpeg", "png", "gif", "webp", "heic"), FileKind.IMAGE),
    **dict.fromkeys(("mp3", "wav", "m4a", "aac"), FileKind.AUDIO),
}

# MIME types of the accepted formats, for files that arrive without a usable name.
_KIND_BY_MIME: dict[str, FileKind] = {
    **dict.fromkeys(
        (
            "video/mp4",
            "video/quicktime",
            "video/x-msvideo",
            "video/avi",
            "video/msvideo",
            "video/webm",
            "video/x-matroska",
        ),
        FileKind.VIDEO,
    ),
    **dict.fromkeys(
        (
            "image/jpeg",
            "image/jpg",
            "image/pjpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "image/heic",
            "image/heif",
        ),
        FileKind.IMAGE,
    ),
    **dict.fromkeys(
        (
            "audio/mpeg",
            "audio/mp3",
            "audio/wav",
            "audio/x-wav",
            "audio/wave",
            "audio/vnd.wave",
            "audio/mp4",
            "audio/x-m4a",
            "audio/m4a",
            "audio/aac",
            "audio/x-aac",
            "audio/aacp",
        ),
        FileKind.AUDIO,
    ),
}

_MAJORS = frozenset(kind.value for kind in FileKind)

# Say nothing about the content: no reason to refuse on them.
_GENERIC_MIME = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def extension(name: str) -> str:
    """Lower-case extension without the dot ("" when none)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in base.strip("."):
        return ""
    return base.rsplit(".", 1)[-1].strip().lower()


def _clean_mime(mime: str | None) -> str:
    return (mime or "").split(";", 1)[0].strip().lower()


def _mime_major(mime: str) -> str:
    return mime.split("/", 1)[0]


def file_kind(name: str, mime: str | None = None) -> FileKind | None:
    """What a file is: by its name's extension, else by its MIME type; None if neither says.

    Says nothing about whether the service takes the file (`preflight` does)."""
    kind = _KIND_BY_EXTENSION.get(extension(name))
    if kind is not None:
        return kind
    clean_mime = _clean_mime(mime)
    kind = _KIND_BY_MIME.get(clean_mime)
    if kind is not None:
        return kind
    major = _mime_major(clean_mime)
    return FileKind(major) if major in _MAJORS else None


def preflight(name: str, mime: str | None, size: int, limits: UploadLimits) -> FileKind:
    """The file's kind if the service will take it; UnsupportedFile / FileTooLarge if not.

    The extension decides the kind; the MIME type decides it when the name has no known
    extension, and refuses the file when it plainly says something else (a PDF named
    `.mp4`, an image named `.mov`). Video and audio containers overlap (`audio/mp4`
    for `.m4a`, `video/mp4` for sound only), so those two never contradict each other.
    """
    ext = extension(name)
    clean_mime = _clean_mime(mime)
    kind = _KIND_BY_EXTENSION.get(ext)
    if kind is None:
        kind = _KIND_BY_MIME.get(clean_mime)
        if kind is None or ext:
            shown = f".{ext}" if ext else (clean_mime or "unknown type")
            raise UnsupportedFile(
                f"unsupported file type: {shown}", accepted=ACCEPTED_EXTENSIONS, code=None
            )
    elif clean_mime not in _GENERIC_MIME:
        major = _mime_major(clean_mime)
        media_majors = {FileKind.IMAGE: {"image"}, FileKind.VIDEO: {"video", "audio"}}
        allowed = media_majors.get(kind, {"audio", "video"})
        if major not in allowed:
            raise UnsupportedFile(
                f"file type mismatch: .{ext} sent as {clean_mime}",
                accepted=ACCEPTED_EXTENSIONS,
                code=None,
            )
    limit = {
        FileKind.IMAGE: limits.image_bytes,
        FileKind.VIDEO: limits.video_bytes,
        FileKind.AUDIO: limits.audio_bytes,
    }[kind]
    if size > limit:
        raise FileTooLarge(
            f"{kind.value} of {size} bytes exceeds the {limit} byte limit",
            size=size,
            limit=limit,
            code=None,
        )
    return kind
