"""The values the router hands out: what it decided and why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Lang = Literal["en", "zh", "mixed"]
Resolution = Literal["480p", "720p", "1080p", "1440p", "2160p"]
Aspect = Literal["9:16", "16:9", "1:1", "4:5"]
Quality = Literal["low", "high"]
Format = Literal["mp4", "mov", "gif", "webm"]


class Intent(StrEnum):
    """A direct action the bot runs itself, or CHAT for the agent's stream."""

    EXPORT = "export"
    CREDITS = "credits"
    STATUS = "status"
    UPLOAD = "upload"
    CHAT = "chat"


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """What an export request said about the file; None where it said nothing.

    `resolution` and `format` belong to the export call; `aspect` is the draft's canvas,
    which only an edit changes; `quality` is a preference the caller maps to its settings.
    """

    resolution: Resolution | None = None
    aspect: Aspect | None = None
    quality: Quality | None = None
    format: Format | None = None

    def __bool__(self) -> bool:
        return any((self.resolution, self.aspect, self.quality, self.format))

    def as_dict(self) -> dict[str, str]:
        """The options that were given, by field name."""
        pairs = (
            ("resolution", self.resolution),
            ("aspect", self.aspect),
            ("quality", self.quality),
            ("format", self.format),
        )
        return {name: value for name, value in pairs if value is not None}


NO_OPTIONS = ExportOptions()


@dataclass(frozen=True, slots=True)
class Decision:
    """The router's verdict on one message, explainable from the command line."""

    intent: Intent
    score: float
    reason: str
    lang: Lang
    urls: tuple[str, ...] = ()
    options: ExportOptions = NO_OPTIONS  # filled for EXPORT only

    @property
    def direct(self) -> bool:
        """True when the bot acts without asking the agent."""
        return self.intent is not Intent.CHAT


class GuiAction(StrEnum):
    """What an instruction written for the agent's web editor asks the user to do."""

    EXPORT = "export"
    STATUS = "status"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class GuiHint:
    """The action the agent's editor-speak implies, with the phrase that implied it."""

    action: GuiAction
    cue: str = ""
