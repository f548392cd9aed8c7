"""Switchable faults: each one a name, an optional session scope and a few parameters.

A fault with `times` set fires that many times and then disarms itself; `times=None` keeps it
armed until cleared. Every fault accepts `path` (a substring the request path must contain).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# name -> default parameters (times: how often it fires; None = until cleared).
#   token_expired          the token of the next matching call dies -> HTTP 401, code 1001
#   session_lost           the next call on the session finds it gone -> code 1002 (and after)
#   no_credits             chat and export answer 2001, the balance reads 0
#   rate_limit_once        HTTP 429 with Retry-After: retry_after
#   stream_cut             /run_sse stops after `after` events; mode "abort" drops the
#                          connection mid-chunk, "eof" ends cleanly; never a turnComplete
#   malformed_events       a garbage line after every event
#   quiet_stream           only keep-alives (every `every` s) for `seconds`, then the answer
#   agent_crash            after `after` events the crash line; style details|plain|broken
#   model_error            after `after` events an errorCode/errorMessage event, then the end
#   render_fail            the next render fails at fraction `at` with `message`
#   render_never_finishes  the next render stays "processing", capped at `progress`
#   slow                   every answer waits `seconds` first
#   server_error           HTTP `status` (5xx) with a plain-text body
#   export_blocked         render start answers HTTP 402
FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    "token_expired": {"times": 1},
    "session_lost": {"times": 1},
    "no_credits": {"times": None},
    "rate_limit_once": {"times": 1, "retry_after": 1},
    "stream_cut": {"times": 1, "after": 2, "mode": "abort"},
    "malformed_events": {"times": None},
    "quiet_stream": {"times": 1, "seconds": 2.0, "every": 0.5},
    "agent_crash": {"times": 1, "after": 1, "style": "details", "message": "simulated agent crash"},
    "model_error": {
        "times": 1,
        "after": 0,
        "code": "MALFORMED_FUNCTION_CALL",
        "message": "simulated model error",
    },
    "render_fail": {"times": 1, "at": 0.5, "message": "render worker crashed"},
    "render_never_finishes": {"times": 1, "progress": 95.0},
    "slow": {"times": None, "seconds": 1.0},
    "server_error": {"times": 1, "status": 503},
    "export_blocked": {"times": None},
}
FAULT_NAMES: tuple[str, ...] = tuple(FAULT_DEFAULTS)


class UnknownFault(ValueError):
    """Raised for a fault name the simulator does not know."""


@dataclass
class Fault:
    """One armed fault."""

    name: str
    session_id: str | None
    params: dict[str, Any]
    remaining: int | None
    fired: int = 0

    def applies(self, session_id: str | None, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.session_id is not None and self.session_id != session_id:
            return False
        wanted = self.params.get("path")
        return not (wanted and str(wanted) not in path)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "session_id": self.session_id,
            "params": dict(self.params),
            "remaining": self.remaining,
            "fired": self.fired,
        }


@dataclass
class Faults:
    """The armed faults; thread-safe so a test thread may arm them while the server runs."""

    _items: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, name: str, session_id: str | None = None, **params: Any) -> Fault:
        """Arms `name` (replacing the same fault with the same scope)."""
        if name not in FAULT_DEFAULTS:
            raise UnknownFault(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        merged = {**FAULT_DEFAULTS[name], **params}
        times = merged.pop("times")
        fault = Fault(
            name=name,
            session_id=None if session_id is None else str(session_id),
            params=merged,
            remaining=None if times is None else int(times),
        )
        with self._lock:
            self._items = [
                f for f in self._items if not (f.name == name and f.session_id == fault.session_id)
            ]
            self._items.append(fault)
        return fault

    def clear(self, name: str | None = None, session_id: str | None = None) -> None:
        """Disarms everything, or only the faults matching `name` and/or `session_id`."""
        with self._lock:
            self._items = [
                f
                for f in self._items
                if not (
                    (name is None or f.name == name)
                    and (session_id is None or f.session_id == session_id)
                )
            ]

    def peek(self, name: str, session_id: str | None = None, path: str = "") -> Fault | None:
        """The armed fault that would fire, without using it up (session scope wins)."""
        with self._lock:
            return self._find(name, session_id, path)

    def take(self, name: str, session_id: str | None = None, path: str = "") -> Fault | None:
        """The fault that fires now, counted against its `times`."""
        with self._lock:
            fault = self._find(name, session_id, path)
            if fault is not None:
                log.info("simulated fault %s fired (session %s)", name, session_id)
                fault.fired += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
            return fault

    def _find(self, name: str, session_id: str | None, path: str) -> Fault | None:
        scoped = [f for f in self._items if f.name == name and f.applies(session_id, path)]
        scoped.sort(key=lambda f: f.session_id is None)
        return scoped[0] if scoped else None

    def active(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._items if f.remaining is None or f.remaining > 0]

    def as_json(self) -> list[dict[str, Any]]:
        return [f.as_json() for f in self.active()]


def parse_fault_request(body: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """Validates the JSON body of `POST /_sim/faults`: {name, session_id?, params?}."""
    name = body.get("name")
    if not isinstance(name, str):
        raise UnknownFault("fault body needs a string 'name'")
    sid = body.get("session_id")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise UnknownFault("'params' must be an object")
    return name, None if sid is None else str(sid), {str(k): v for k, v in params.items()}
