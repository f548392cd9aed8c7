"""Files: each checked before it is read, the good ones uploaded to the session (or links
handed over), and a reply saying what arrived."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import filetype

from backend import (
    ACCEPTED_EXTENSIONS,
    MIB,
    FileKind,
    FileTooLarge,
    UnsupportedFile,
    UploadedFile,
    UploadFile,
    UploadLimits,
    file_kind,
    preflight,
)
from bot.conversation.session import Sessions, session_id
from bot.conversation.state import Turn
from bot.conversation.text import formats
from bot.io import Attachment, ChatAction, FileUnreadable, SendText
from bot.texts import fmt_duration, fmt_size, t

__all__ = ["Uploads"]

log = logging.getLogger("bot.conversation")


@dataclass(eq=False)
class Uploads:
    """Uploads, and the request for a file; `limits` caps each kind's size."""

    sessions: Sessions
    limits: UploadLimits

    async def ask(self, turn: Turn) -> None:
        """Say which files are welcome, and how large."""
        await turn.out.send(
            SendText(
                t(
                    "upload_ask",
                    turn.lang,
                    formats=formats(ACCEPTED_EXTENSIONS),
                    image_mb=_mb(self.limits.image_bytes),
                    video_mb=_mb(self.limits.video_bytes),
                    audio_mb=_mb(self.limits.audio_bytes),
                )
            )
        )

    async def files(self, turn: Turn, attachments: Sequence[Attachment], has_text: bool) -> bool:
        """Check every file before reading it, then send all good ones in one upload;
        False when none was good."""
        checked: list[tuple[Attachment, FileKind]] = []
        for item in attachments:
            kind = await self._preflight(turn, item.name, item.mime, item.size or 0)
            if kind is not None:
                checked.append((item, kind))
        files: list[UploadFile] = []
        kinds: list[FileKind] = []
        for item, kind in checked:
            try:
                data = await item.read()
            except FileUnreadable:
                log.info("file unreadable", extra={"chat_id": turn.chat_id})
                await turn.out.send(SendText(t("file_unreadable", turn.lang, name=item.name)))
                continue
            if await self._preflight(turn, item.name, item.mime, len(data)) is None:
                continue
            if not content_is(kind, data):
                log.info("file content refused", extra={"chat_id": turn.chat_id, "kind": kind})
                await turn.out.send(
                    SendText(
                        t(
                            "file_rejected_content",
                            turn.lang,
                            name=item.name,
                            formats=formats(ACCEPTED_EXTENSIONS),
                        )
                    )
                )
                continue
            files.append(UploadFile(name=item.name, mime=item.mime, data=data, size=len(data)))
            kinds.append(kind)
        if not files:
            return False
        api = await self.sessions.api(turn)
        await turn.out.send(ChatAction("typing"))
        await turn.sending()
        uploaded = await api.upload_files(session_id(turn), files)
        sizes = [f.size for f in files]
        await self._confirm(turn, uploaded, kinds, sizes, suggest=not has_text)
        return True

    async def urls(self, turn: Turn, urls: Sequence[str], has_text: bool = False) -> None:
        """Hand links to the session; the service fetches them. With words after the links,
        no next step is suggested: the words are it."""
        api = await self.sessions.api(turn)
        await turn.out.send(ChatAction("typing"))
        await turn.sending()
        uploaded = await api.upload_urls(session_id(turn), urls)
        await self._confirm(turn, uploaded, [], [], suggest=not has_text)

    async def _preflight(
        self, turn: Turn, name: str, mime: str | None, size: int
    ) -> FileKind | None:
        try:
            return preflight(name, mime, size, self.limits)
        except UnsupportedFile as exc:
            accepted = exc.accepted or ACCEPTED_EXTENSIONS
            await turn.out.send(
                SendText(t("file_rejected_type", turn.lang, name=name, formats=formats(accepted)))
            )
        except FileTooLarge as exc:
            kind = file_kind(name, mime) or "other"
            await turn.out.send(
                SendText(
                    t(
                        "file_rejected_size",
                        turn.lang,
                        name=name,
                        size=fmt_size(exc.size if exc.size is not None else size),
                        kind=t(f"kind_{kind}", turn.lang),
                        limit=fmt_size(exc.limit),
                    )
                )
            )
        return None

    async def _confirm(
        self,
        turn: Turn,
        uploaded: Sequence[UploadedFile],
        kinds: Sequence[FileKind],
        sizes: Sequence[int],
        *,
        suggest: bool,
    ) -> None:
        lang = turn.lang
        lines: list[str] = []
        seen: list[str] = []
        for i, f in enumerate(uploaded):
            kind = _kind_word(f.file_type) or (str(kinds[i]) if i < len(kinds) else "other")
            seen.append(kind)
            details: list[str] = []
            if f.duration:
                details.append(fmt_duration(f.duration))
            if f.width and f.height:
                details.append(f"{f.width}×{f.height}")
            size = f.size if f.size is not None else (sizes[i] if i < len(sizes) else None)
            if size is not None:
                details.append(fmt_size(size))
            lines.append(
                t(
                    "file_line",
                    lang,
                    name=f.filename or "?",
                    kind=t(f"kind_{kind}", lang),
                    details=f" ({', '.join(details)})" if details else "",
                )
            )
        count = (
            t("files_count_one", lang)
            if len(uploaded) == 1
            else t("files_count_many", lang, n=len(uploaded))
        )
        text = t("upload_received", lang, count=count, lines="\n".join(lines))
        if suggest:
            nxt = "next_image" if "image" in seen else "next_video" if "video" in seen else None
            nxt = nxt or ("next_audio" if "audio" in seen else None)
            if nxt:
                text = f"{text}\n\n{t(nxt, lang)}"
        log.info("files uploaded", extra={"chat_id": turn.chat_id, "count": len(uploaded)})
        await turn.out.send(SendText(text))


# What the content may turn out to be for each kind the name promised. Video and audio
# containers overlap (an `.m4a` is an MP4, a sound-only `.mp4` says `audio/mp4`).
_CONTENT_MAJORS: dict[FileKind, frozenset[str]] = {
    FileKind.IMAGE: frozenset({"image"}),
    FileKind.VIDEO: frozenset({"video", "audio"}),
    FileKind.AUDIO: frozenset({"audio", "video"}),
}


def content_is(kind: FileKind, data: bytes) -> bool:
    """Whether the bytes are, by their magic numbers, the kind of file the name said:
    an empty file or a text file renamed `.jpg` is nothing the service can use."""
    major = _major_type(data)
    return major is not None and major in _CONTENT_MAJORS[kind]


# Atoms a QuickTime file written before `ftyp` existed may start with.
_QUICKTIME_ATOMS = frozenset((b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"))


def _major_type(data: bytes) -> str | None:
    """`image`, `video` or `audio` by content: filetype's guess, then what it misses
    (an MP3 frame with a CRC or of MPEG-2.5, a Matroska DocType whose size takes more
    than one byte, QuickTime without `ftyp`). An MP3 guess needs a valid frame header,
    as filetype takes any two bytes of sync for one."""
    if not data:
        return None
    guess = filetype.guess(data)
    if guess is not None:
        mime = str(guess.mime)
        if mime == "audio/mpeg" and not data.startswith(b"ID3"):
            return "audio" if _mpeg_audio_frame(data) else None
        return mime.split("/", 1)[0]
    if data.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska and WebM
        return "video"
    if data[4:8] in _QUICKTIME_ATOMS:
        return "video"
    return "audio" if _mpeg_audio_frame(data) else None


def _mpeg_audio_frame(data: bytes) -> bool:
    """An MPEG audio frame header: 11 bits of sync, then no reserved version, layer,
    bitrate or sample rate."""
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return False
    version, layer = (data[1] >> 3) & 3, (data[1] >> 1) & 3
    bitrate, rate = data[2] >> 4, (data[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _mb(size: int) -> str:
    return f"{size / MIB:g}"


def _kind_word(file_type: str) -> str | None:
    """The kind named in the service's file type (`image/png`, `video`)."""
    low = file_type.lower()
    for word in ("image", "video", "audio"):
        if word in low:
            return word
    return None
