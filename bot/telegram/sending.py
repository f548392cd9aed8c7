"""Spending Telegram's send budget the way the people waiting would want it spent.

Telegram takes about 30 messages a second from a bot, about one a second in a private chat
and 20 a minute in a group, and answers more with 429 and `retry_after`. Every Bot API call
that shows something first waits here for a slot:

- by class: chats with an answer (or error reply, video) waiting first, then those with a
  job's first sign of life, then those with progress edits; typing only while the last
  second used less than a share of the budget, so it never delays anything that matters.
  Within a chat, messages go in the order they were asked for;
- between chats of one class, the chat whose job started first goes first (a chat that
  has waited longest is finished before newer ones are begun, so under a crowd answers
  complete progressively); a chat's backlog counts as begun a pace later for each turn
  it has had while its backlog lasted, so no chat waits behind another chat's backlog;
  each chat at its own pace, none sent to faster than Telegram allows;
- never into a 429 on purpose: at most `per_second` slots in any window of a second, and a
  chat told `retry_after` gets nothing before exactly that long. Replicas sharing one bot
  token share its budget: with `shared`, each slot is also taken from a window counted in
  the store, a few at a time (while the store cannot be reached, each process keeps to
  its own budget).

A waiting request that became pointless (an edit superseded by a newer one) is withdrawn by
cancelling its wait; a slot granted but not used is given back.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum

from bot.store.base import Lease

__all__ = ["Priority", "SendLimits", "SendScheduler", "SharedSends"]

# (slots wanted, most in a window, the window's seconds) -> slots granted from the budget
# every process of the bot shares.
SharedSends = Callable[[int, int, float], Awaitable[Lease]]
SHARED_BATCH = 5  # requests chosen for one round trip to the shared budget
SHARED_TIMEOUT_S = 0.5  # a store slower than this to answer counts as failed
OWN_BUDGET_S = 5.0  # the shared budget failed: this process keeps to its own this long

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """What a send is for; lower goes first."""

    ANSWER = 0  # a final answer, an error reply, a delivered video, any complete message
    FIRST = 1  # the first visible sign of life of a job (a message that will grow)
    PROGRESS = 2  # an edit showing progress; newer ones make waiting ones pointless
    TYPING = 3  # a chat action: only with budget to spare


@dataclass(frozen=True)
class SendLimits:
    """Telegram's documented limits. The margins cover how much later one request may reach
    Telegram than the one before it (a loaded event loop on either side)."""

    per_second: int = 30
    private_interval_s: float = 1.0
    group_interval_s: float = 3.0  # 20 a minute
    margin_s: float = 0.05  # on the one-second window of all chats
    chat_margin_s: float = 0.1  # on a chat's interval: costs that chat alone
    typing_share: float = 0.5

    @classmethod
    def unlimited(cls) -> SendLimits:
        """No pacing at all (to measure the bot's own capacity)."""
        return cls(10**9, private_interval_s=0.0, group_interval_s=0.0, margin_s=0, chat_margin_s=0)


@dataclass(eq=False)
class _Request:
    chat: _Chat
    priority: Priority
    future: asyncio.Future[None]
    since: float  # when the job asking for it started: older jobs go first
    seq: int = 0
    granted_at: float | None = None
    chat_was_free_at: float = 0.0


@dataclass(eq=False)
class _Chat:
    chat_id: int
    interval: float
    paced_at: float = 0.0  # no message before this: the chat's pace
    flood_until: float = 0.0  # nothing at all before this: Telegram's retry_after
    streak: int = 0  # turns had while more of its requests waited: its backlog's place
    held: bool = False  # its next request waits for a shared slot: no other turn till then
    waiting: dict[Priority, collections.deque[_Request]] = field(default_factory=dict)
    listed: set[Priority] = field(default_factory=set)  # in the class's turn queue
    asleep: set[Priority] = field(default_factory=set)  # in the wake-up heap

    def has(self, priority: Priority) -> bool:
        return bool(self.waiting.get(priority))

    def free_at(self, priority: Priority) -> float:
        if priority is Priority.TYPING:  # chat actions do not count against the pace
            return self.flood_until
        return max(self.paced_at, self.flood_until)


class SendScheduler:
    """Slots for Bot API calls; `await slot(chat, priority)` before each call, then
    `retry_after(chat, s)` if Telegram still refused it."""

    def __init__(
        self,
        limits: SendLimits | None = None,
        *,
        on_429: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedSends | None = None,
    ) -> None:
        self.limits = limits or SendLimits()
        self._on_429 = on_429
        self._clock = clock
        self._shared = shared
        # Requests chosen to go next, waiting (in order) for slots of the shared budget.
        self._held: collections.deque[_Request] = collections.deque()
        self._leasing: asyncio.Task[None] | None = None
        self._shared_full_until = 0.0  # the shared window has no slot before this
        self._own_until = 0.0  # the shared budget failed: this process's own until this
        self._shared_logged_at = float("-inf")
        self._chats: dict[int, _Chat] = {}
        # Per class, the chats waiting for a turn: (when its job began, order, chat).
        self._turns: dict[Priority, list[tuple[float, int, _Chat]]] = {p: [] for p in Priority}
        self._wakeups: list[tuple[float, int, Priority, _Chat]] = []
        # When each chat granted a slot (or told to wait) may be forgotten if idle by then:
        # a chat's pace is remembered only while it matters.
        self._expiries: list[tuple[float, int, _Chat]] = []
        self._order = itertools.count()
        self._sent: collections.deque[float] = collections.deque()  # slot times, last window
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._floods = 0  # 429s since the last log line about them
        self._flood_logged_at = float("-inf")

    # ------------------------------------------------------------------ callers
    def now(self) -> float:
        """The scheduler's clock, for the `since` of `slot`."""
        return self._clock()

    async def slot(self, chat_id: int, priority: Priority, *, since: float | None = None) -> None:
        """Wait for this chat's turn to send one call of this class; `since` is when the
        job asking started (`now()` if not given). Cancelling the wait withdraws the
        request (and gives back a slot granted but not yet used)."""
        chat = self._chat(chat_id)
        future = asyncio.get_running_loop().create_future()
        started = self._clock() if since is None else since
        request = _Request(chat, priority, future, started, next(self._order))
        chat.waiting.setdefault(priority, collections.deque()).append(request)
        self._list(chat, priority)
        self._pump()
        try:
            await request.future
        except asyncio.CancelledError:
            self._withdraw(request)
            raise

    def retry_after(self, chat_id: int, seconds: float) -> None:
        """Telegram refused a call to this chat: nothing more before `seconds` from now."""
        now = self._clock()
        chat = self._chat(chat_id)
        chat.flood_until = max(chat.flood_until, now + seconds)
        heapq.heappush(self._expiries, (chat.flood_until, next(self._order), chat))
        self._floods += 1
        if self._on_429 is not None:
            self._on_429()
        # One line per minute at most, however many 429s a burst brings; each was handled.
        if now - self._flood_logged_at >= 60.0:
            log.info(
                "flood control: Telegram asked to slow down",
                extra={"refused": self._floods, "retry_after": seconds, "chat_id": chat_id},
            )
            self._floods = 0
            self._flood_logged_at = now

    def waiting(self) -> int:
        return sum(len(q) for chat in self._chats.values() for q in chat.waiting.values())

    def chats(self) -> int:
        """Chats whose pace or requests are remembered: those active within their
        interval (or `retry_after`), not every chat ever seen."""
        return len(self._chats)

    # ------------------------------------------------------------------ bookkeeping
    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            limits = self.limits
            interval = limits.group_interval_s if chat_id < 0 else limits.private_interval_s
            chat = self._chats[chat_id] = _Chat(chat_id, interval + limits.chat_margin_s)
        return chat

    def _list(self, chat: _Chat, priority: Priority) -> None:
        if priority not in chat.listed and priority not in chat.asleep:
            chat.listed.add(priority)
            oldest = min(r.since for r in chat.waiting[priority])
            # A backlog's next message counts as begun a pace (at least a second) later
            # per turn the backlog has had: other chats' jobs of that time go in between.
            begun = oldest + chat.streak * max(chat.interval, 1.0)
            heapq.heappush(self._turns[priority], (begun, next(self._order), chat))

    def _relist(self, chat: _Chat) -> None:
        for priority, queue in chat.waiting.items():
            if queue:
                self._list(chat, priority)

    def _withdraw(self, request: _Request) -> None:
        chat = request.chat
        queue = chat.waiting.get(request.priority)
        if queue is not None and request in queue:
            queue.remove(request)
        elif request in self._held:
            self._held.remove(request)
            chat.held = False
            self._relist(chat)
        elif request.granted_at is not None:
            # Granted but never used: the window and the chat's pace get the slot back.
            with_slot = request.granted_at
            if with_slot in self._sent:
                self._sent.remove(with_slot)
            if request.priority is not Priority.TYPING:
                chat.paced_at = min(chat.paced_at, max(request.chat_was_free_at, with_slot))
        self._forget_if_idle(chat)
        self._pump()

    def _forget_if_idle(self, chat: _Chat) -> None:
        idle = not (chat.listed or chat.asleep or chat.held or any(chat.waiting.values()))
        current = self._chats.get(chat.chat_id) is chat  # not one made since it was forgotten
        if idle and current and chat.free_at(Priority.ANSWER) <= self._clock():
            del self._chats[chat.chat_id]

    # ------------------------------------------------------------------ granting
    def _window_used(self, now: float) -> int:
        window = 1.0 + self.limits.margin_s
        sent = self._sent
        while sent and now - sent[0] >= window:
            sent.popleft()
        return len(sent)

    def _pump(self) -> None:
        """Grant every slot that can go now, then sleep until the next one can."""
        now = self._clock()
        self._wake(now)
        while self._expiries and self._expiries[0][0] <= now:
            self._forget_if_idle(heapq.heappop(self._expiries)[2])
        if self._shared is None or now < self._own_until:
            while self._window_used(now) < self.limits.per_second:
                request = self._next(now)
                if request is None:
                    break
                self._grant(request, now)
        elif self._leasing is None and now >= self._shared_full_until:
            # The next few requests, chosen as they would be granted, ask the shared
            # budget in one round trip; the others keep their places meanwhile.
            room = min(SHARED_BATCH, self.limits.per_second - self._window_used(now))
            while len(self._held) < room and (request := self._next(now)) is not None:
                request.chat.held = True
                self._held.append(request)
            if self._held:
                self._leasing = asyncio.get_running_loop().create_task(self._lease(len(self._held)))
        self._arm(now)

    async def _lease(self, want: int) -> None:
        """Slots of the shared budget for the held requests, granted in order."""
        assert self._shared is not None
        try:
            limits = self.limits  # the same window as this process's own
            async with asyncio.timeout(SHARED_TIMEOUT_S):
                lease = await self._shared(want, limits.per_second, 1.0 + limits.margin_s)
        except Exception as exc:  # each process keeps to its own budget meanwhile
            lease = Lease(0)
            now = self._clock()
            self._own_until = now + OWN_BUDGET_S
            if now - self._shared_logged_at >= 60.0:
                self._shared_logged_at = now
                log.warning(
                    "shared send budget unreachable: this process keeps to its own",
                    extra={"error": type(exc).__name__},
                )
        except BaseException:
            self._put_back_held()  # cancelled (the bot stopping): nothing is left held
            raise
        finally:
            self._leasing = None
        now = self._clock()
        if lease.granted == 0:
            self._shared_full_until = now + lease.wait_s
        for _ in range(min(lease.granted, len(self._held))):
            self._grant(self._held.popleft(), now)
        self._put_back_held()
        self._pump()

    def _put_back_held(self) -> None:
        """Requests left without a shared slot go back to their places, to be chosen again
        in turn."""
        while self._held:
            request = self._held.pop()
            request.chat.held = False
            request.chat.waiting[request.priority].appendleft(request)
            self._relist(request.chat)

    def _wake(self, now: float) -> None:
        while self._wakeups and self._wakeups[0][0] <= now:
            _, _, priority, chat = heapq.heappop(self._wakeups)
            chat.asleep.discard(priority)
            if chat.has(priority):
                self._list(chat, priority)
            else:
                self._forget_if_idle(chat)

    def _next(self, now: float) -> _Request | None:
        for priority in (Priority.ANSWER, Priority.FIRST, Priority.PROGRESS):
            request = self._take_turn(priority, now)
            if request is not None:
                return request
        if self._window_used(now) < self.limits.per_second * self.limits.typing_share:
            return self._take_turn(Priority.TYPING, now)
        return None

    def _take_turn(self, priority: Priority, now: float) -> _Request | None:
        """The next chat in turn for this class that may send now; those that may not yet
        sleep until they may."""
        turns = self._turns[priority]
        while turns:
            chat = heapq.heappop(turns)[2]
            chat.listed.discard(priority)
            if not chat.has(priority) or chat.held:
                continue  # a held chat is listed again once its request is granted
            if (free_at := chat.free_at(priority)) > now:
                chat.asleep.add(priority)
                heapq.heappush(self._wakeups, (free_at, next(self._order), priority, chat))
                continue
            return self._oldest(chat, priority)
        return None

    @staticmethod
    def _oldest(chat: _Chat, priority: Priority) -> _Request:
        """A chat whose turn came sends in the order it asked: its most urgent request
        won the chat the turn, but an older message of it goes first."""
        if priority is Priority.TYPING:
            return chat.waiting[priority].popleft()
        queues = [q for p, q in chat.waiting.items() if q and p is not Priority.TYPING]
        oldest = min(queues, key=lambda q: q[0].seq)
        return oldest.popleft()

    def _grant(self, request: _Request, now: float) -> None:
        chat = request.chat
        chat.held = False
        if request.future.done():  # cancelled, its withdrawal still to run: not granted
            self._relist(chat)
            return
        request.granted_at = now
        request.chat_was_free_at = chat.paced_at
        self._sent.append(now)
        if request.priority is not Priority.TYPING:
            chat.paced_at = max(chat.paced_at, now + chat.interval)
            # A chat that still has messages waiting has a backlog: after this turn it
            # waits behind chats that have had fewer; one that asks once at a time keeps
            # its job's place.
            backlog = any(q for p, q in chat.waiting.items() if p is not Priority.TYPING)
            chat.streak = chat.streak + 1 if backlog else 0
        self._relist(chat)
        request.future.set_result(None)
        heapq.heappush(self._expiries, (chat.free_at(Priority.ANSWER), next(self._order), chat))

    def _arm(self, now: float) -> None:
        """One timer for the next moment something may be granted."""
        self._window_used(now)  # slots aged out of the window are not a moment to wake at
        due = float("inf")
        if self._wakeups:
            due = self._wakeups[0][0]
        # The shared window full: ask again once its oldest slot ages out.
        sharing = self._shared is not None and now >= self._own_until
        if sharing and self._leasing is None and now < self._shared_full_until:
            due = min(due, self._shared_full_until) if self._has_listed() else due
        # A full window (or one too full for typing) frees up as its oldest slot ages out.
        if self._sent and (self._turns[Priority.TYPING] or self._has_listed()):
            due = min(due, self._sent[0] + 1.0 + self.limits.margin_s)
        if due == float("inf") or due >= self._timer_at > now:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = asyncio.get_running_loop().call_later(max(0.0, due - now) + 0.001, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self._pump()

    def _has_listed(self) -> bool:
        return any(self._turns[p] for p in Priority)
