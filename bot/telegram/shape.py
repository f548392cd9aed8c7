"""The parts of an update the bot reads, with the JSON types Telegram documents for them.

Telegram always sends these types; a body that breaks them was forged, and it is refused
at the door rather than failing later, deep inside a handler. Fields the bot never reads
are not checked (and extra fields are welcome: Telegram adds new ones).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

__all__ = ["well_typed"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class _User(_Part):
    id: StrictInt
    is_bot: StrictBool
    first_name: StrictStr
    language_code: StrictStr | None = None
    username: StrictStr | None = None


class _Chat(_Part):
    id: StrictInt
    type: StrictStr


class _Entity(_Part):
    type: StrictStr
    offset: StrictInt
    length: StrictInt


class _File(_Part):
    file_id: StrictStr
    file_unique_id: StrictStr
    file_size: StrictInt | None = None
    file_name: StrictStr | None = None
    mime_type: StrictStr | None = None


class _Photo(_File):
    width: StrictInt
    height: StrictInt


class _Button(_Part):
    text: StrictStr
    callback_data: StrictStr | None = None
    url: StrictStr | None = None


class _Markup(_Part):
    inline_keyboard: list[list[_Button]]


class _Replied(_Part):
    message_id: StrictInt
    sender: _User | None = Field(default=None, alias="from")


class _Message(_Replied):
    date: StrictInt
    chat: _Chat
    text: StrictStr | None = None
    caption: StrictStr | None = None
    entities: list[_Entity] = []
    caption_entities: list[_Entity] = []
    media_group_id: StrictStr | None = None
    reply_to_message: _Replied | None = None
    photo: list[_Photo] = []
    document: _File | None = None
    video: _File | None = None
    video_note: _File | None = None
    audio: _File | None = None
    voice: _File | None = None
    reply_markup: _Markup | None = None


class _Callback(_Part):
    id: StrictStr
    sender: _User = Field(alias="from")
    chat_instance: StrictStr
    data: StrictStr | None = None
    message: _Message | None = None


class _Update(_Part):
    update_id: StrictInt
    message: _Message | None = None
    callback_query: _Callback | None = None


def well_typed(body: object) -> bool:
    """True when every field the bot reads has the type Telegram documents for it."""
    if not isinstance(body, dict):
        return False
    try:
        _Update.model_validate(body)
    except (ValidationError, TypeError, ValueError):
        return False
    return True
