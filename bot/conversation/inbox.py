"""Inbound messages as stored in a chat's shared inbox, and back.

A queued message may be run by another process than the one that accepted it, so it is
kept as plain JSON: the message's fields, and for each file the front end's reference
from which that process's front end rebuilds the reader.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.io import Attachment, FileUnreadable, Inbound, ReaderFor

__all__ = ["decode_item", "encode_item"]


def encode_item(token: str, msg: Inbound) -> str:
    """The message as one JSON text; `token` tells the accepting process its own messages."""
    body = {
        "token": token,
        "chat_id": msg.chat_id,
        "user_id": msg.user_id,
        "text": msg.text,
        "lang": msg.language_code,
        "update_id": msg.update_id,
        "callback_data": msg.callback_data,
        "is_group": msg.is_group,
        "files": [
            {"name": a.name, "mime": a.mime, "size": a.size, "ref": dict(a.ref or {})}
            for a in msg.attachments
        ],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def decode_item(raw: str, reader_for: ReaderFor | None) -> tuple[str, Inbound]:
    """The token and message of a stored item; ValueError when it is not one of ours."""
    try:
        body = json.loads(raw)
        files = tuple(_attachment(f, reader_for) for f in body.get("files") or ())
        msg = Inbound(
            chat_id=int(body["chat_id"]),
            user_id=int(body["user_id"]),
            text=str(body.get("text") or ""),
            language_code=_opt_str(body.get("lang")),
            attachments=files,
            update_id=_opt_int(body.get("update_id")),
            callback_data=_opt_str(body.get("callback_data")),
            is_group=bool(body.get("is_group", False)),
        )
        return str(body["token"]), msg
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError("not a queued message") from exc


def _attachment(body: Mapping[str, Any], reader_for: ReaderFor | None) -> Attachment:
    ref = body.get("ref") or None
    if not isinstance(ref, Mapping | None):
        raise TypeError("file reference must be an object")
    read = reader_for(ref) if ref and reader_for is not None else _unavailable
    size = body.get("size")
    return Attachment(
        name=str(body["name"]),
        mime=_opt_str(body.get("mime")),
        size=int(size) if size is not None else None,
        read=read,
        ref=ref,
    )


async def _unavailable() -> bytes:
    """A queued file this process cannot read: its front end left no way to fetch it."""
    raise FileUnreadable("no front end here can fetch this file")


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))
