"""A `getUpdates` request that steps over updates the library cannot parse.

When one item of a batch fails to parse, PTB logs it and asks again for the same offset,
so a single malformed update would stop the bot forever. Batches pass through untouched
(parsing each one twice would cost a fifth of the bot's CPU at a steady rate); only when
the offset just served is asked for again is the batch checked, and each item that fails
replaced by a bare update with the same id: the offset moves past it and the handlers
never see it.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from telegram import Update
from telegram.request import RequestData

from bot.telegram.aiohttp_request import AiohttpRequest

log = logging.getLogger(__name__)
_NOTHING = object()


def parsable_updates(items: list[Any]) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        try:
            Update.de_json(copy.deepcopy(item), None)
        except Exception:  # any parse failure inside PTB, whatever its type
            update_id = item.get("update_id") if isinstance(item, dict) else None
            log.warning("unparsable update skipped", extra={"update_id": update_id})
            if isinstance(update_id, int):
                kept.append({"update_id": update_id})
        else:
            kept.append(item)
    return kept


class TolerantUpdatesRequest(AiohttpRequest):
    """Used only for `getUpdates`; checks a batch PTB asks for a second time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._served: object = _NOTHING  # the offset of the last non-empty batch

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, *args: Any, **kw: Any
    ) -> tuple[int, bytes]:
        status, payload = await super().do_request(url, method, request_data, *args, **kw)
        if status != 200:
            return status, payload
        try:
            body = json.loads(payload)
        except ValueError:
            return status, payload
        if not (isinstance(body, dict) and isinstance(body.get("result"), list)):
            return status, payload
        offset = request_data.parameters.get("offset") if request_data else None
        again, self._served = offset == self._served, offset if body["result"] else _NOTHING
        if again and body["result"]:
            body["result"] = parsable_updates(body["result"])
            payload = json.dumps(body).encode()
        return status, payload
