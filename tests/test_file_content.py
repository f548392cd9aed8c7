"""Files are judged by their bytes: what phones and editors really write is taken, whatever
the magic-number library knows of it; text, garbage and other kinds are not."""

from __future__ import annotations

import pytest

from backend import FileKind
from backend.sim import sample_mp4
from bot.conversation.files import content_is
from tests.conversation_fixtures import png_bytes


def mp3_frames(second_byte: int, count: int = 6) -> bytes:
    """MPEG audio frames (128 kbit/s, 44.1 kHz: 417 bytes each) behind one header kind:
    0xFB plain MPEG-1 Layer III, 0xFA the same with a CRC, 0xF2/0xF3 MPEG-2, 0xE3 MPEG-2.5."""
    header = bytes((0xFF, second_byte, 0x90, 0x64))
    return (header + b"\x00" * 413) * count


def ebml(doctype: bytes, size_field: bytes) -> bytes:
    """A Matroska/WebM header; muxers code the DocType's size in one byte or more."""
    body = bytes.fromhex("4286810142F7810142F2810442F38108") + b"\x42\x82" + size_field + doctype
    return (
        b"\x1a\x45\xdf\xa3" + bytes((0x80 | len(body),)) + body + b"\x18\x53\x80\x67" + b"\0" * 64
    )


def quicktime_without_ftyp() -> bytes:
    """Old QuickTime files start with their atoms, no `ftyp`."""
    return b"\x00\x00\x00\x08wide" + b"\x00\x00\x10\x00mdat" + b"\x00" * 4088


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (FileKind.AUDIO, mp3_frames(0xFB)),
        (FileKind.AUDIO, mp3_frames(0xFA)),
        (FileKind.AUDIO, mp3_frames(0xF3)),
        (FileKind.AUDIO, mp3_frames(0xF2)),
        (FileKind.AUDIO, mp3_frames(0xE3)),
        (FileKind.VIDEO, ebml(b"matroska", b"\x88")),
        (FileKind.VIDEO, ebml(b"matroska", b"\x40\x08")),
        (FileKind.VIDEO, ebml(b"matroska", b"\x01\x00\x00\x00\x00\x00\x00\x08")),
        (FileKind.VIDEO, ebml(b"webm", b"\x84")),
        (FileKind.VIDEO, quicktime_without_ftyp()),
        (FileKind.VIDEO, sample_mp4()),
        (FileKind.IMAGE, png_bytes()),
    ],
)
def test_real_media_is_taken(kind: FileKind, data: bytes) -> None:
    assert content_is(kind, data)


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (FileKind.AUDIO, b""),
        (FileKind.AUDIO, b"\xff" * 5000),  # all bits set: no valid frame header
        (FileKind.AUDIO, b"\xff\xfb" + b"\xff" * 600),  # a sync, then a forbidden bitrate
        (FileKind.AUDIO, png_bytes()),
        (FileKind.VIDEO, b"#!/bin/sh\nrm -rf /\n" * 10),
        (FileKind.VIDEO, b"\x00\x00\x00\x08note" + b"text" * 100),
        (FileKind.IMAGE, mp3_frames(0xFA)),
        (FileKind.IMAGE, ebml(b"matroska", b"\x40\x08")),
    ],
)
def test_disguised_or_broken_bytes_are_not(kind: FileKind, data: bytes) -> None:
    assert not content_is(kind, data)
