"""Secrets kept out of anything written: logs, exceptions, replies.

One pattern for every secret shape the product handles, masked even when nobody
registered the value, plus the exact values a caller knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

SECRET_PATTERN = re.compile(
    # A Telegram bot token; no boundary before it, as it follows "/bot" in Bot API URLs.
    r"(?<![0-9])\d{6,12}:[A-Za-z0-9_-]{30,}"
    # NemoVideo tokens (nmv_usr_…, nmv_op_…) and claim tokens.
    r"|(?i:nmv|clm)_[A-Za-z0-9_-]{4,}"
    # A JWT: base64url JSON header and payload (both start with `{"`, so `eyJ`), signature.
    r"|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    # Whatever follows a bearer scheme.
    r"|\b(?i:bearer)\s+\S+"
)


def redact(text: str, known: Iterable[str | None] = ()) -> str:
    """`text` with the `known` secret values and every secret-shaped string masked."""
    for secret in sorted({s for s in known if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return SECRET_PATTERN.sub(MASK, text)
