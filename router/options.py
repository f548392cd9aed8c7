"""Export options read from a request: "export 4k vertical", 导出成竖屏 -> typed values."""

from __future__ import annotations

from typing import cast

from router.rules import RULES
from router.text import HAN, WORD
from router.types import Aspect, ExportOptions, Format, Quality, Resolution


def read_options(norm: str) -> ExportOptions:
    """The first term of each option table found in normalised text; None where absent."""
    joined = " ".join(WORD.findall(norm))
    has_han = HAN.search(norm) is not None
    found: dict[str, str] = {}
    for table in RULES.options:
        m = table.en.search(joined) if joined else None
        if m is None and has_han:
            m = table.zh.search(norm)
        if m is not None:
            found[table.field] = table.values[m.group(0)]
    if not found:
        return ExportOptions()
    return ExportOptions(
        resolution=cast("Resolution | None", found.get("resolution")),
        aspect=cast("Aspect | None", found.get("aspect")),
        quality=cast("Quality | None", found.get("quality")),
        format=cast("Format | None", found.get("format")),
    )
