"""The values the router hands out: what it decided and why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Lang = Literal["en", "zh", "mixed"]


class Intent(StrEnum):
    """A direct action the bot runs itself, or CHAT for the agent's stream."""

    EXPORT = "export"
    CREDITS = "credits"
    STATUS = "status"
    UPLOAD = "upload"
    CHAT = "chat"


@dataclass(frozen=True, slots=True)
class Decision:
    """The router's verdict on one message, explainable from the command line."""

    intent: Intent
    score: float
    reason: str
    lang: Lang
    urls: tuple[str, ...] = ()

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
