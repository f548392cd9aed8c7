"""A `getUpdates` request that steps over updates the library cannot parse.

PTB's polling loop re-fetches the same batch forever when one item fails to parse, so a
single malformed update would stop the bot. Such an item is replaced by a bare update
with the same id: the offset moves past it and the handlers never see it.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from telegram import Update
from telegram.request import HTTPXRequest

log = logging.getLogger(__name__)


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


class TolerantUpdatesRequest(HTTPXRequest):
    """Used only for `getUpdates`; filters the answer before PTB parses it."""

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        status, payload = await super().do_request(*args, **kwargs)
        if status != 200:
            return status, payload
        try:
            body = json.loads(payload)
        except ValueError:
            return status, payload
        if isinstance(body, dict) and isinstance(body.get("result"), list):
            body["result"] = parsable_updates(body["result"])
            payload = json.dumps(body).encode()
        return status, payload
