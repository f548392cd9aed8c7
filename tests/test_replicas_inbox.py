"""The chat's shared inbox: messages outlive the process that accepted them, are run once,
in order, by whichever process holds the chat, files included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from bot.conversation.inbox import decode_item, encode_item
from bot.io import Attachment, FileUnreadable, Inbound, SendText, Stream
from tests.conversation_fixtures import (
    FileStub,
    HarnessFactory,
    Recorder,
    png_bytes,
)


def test_a_message_survives_the_trip_through_the_store() -> None:
    async def read() -> bytes:
        return b"never called"

    file = Attachment("a.png", "image/png", 3, read, ref={"file_id": "F1", "size": 3})
    msg = Inbound(
        chat_id=-100,
        user_id=7,
        text="look “here”",
        language_code="zh",
        attachments=(file,),
        update_id=99,
        callback_data="a:export",
        is_group=True,
    )
    refs: list[Mapping[str, Any]] = []

    def reader_for(ref: Mapping[str, Any]) -> Any:
        refs.append(ref)
        return read

    token, back = decode_item(encode_item("tok", msg), reader_for)
    assert token == "tok" and refs == [{"file_id": "F1", "size": 3}]
    assert back == msg  # the reader rebuilt from the reference is the same function here


async def test_a_file_without_a_reference_cannot_be_read_elsewhere() -> None:
    msg = Inbound(chat_id=1, user_id=1, attachments=(FileStub("a.png", None, b"x").attachment(),))
    _, back = decode_item(encode_item("t", msg), None)
    with pytest.raises(FileUnreadable):
        await back.attachments[0].read()
    with pytest.raises(ValueError):
        decode_item('{"chat_id": 1}', None)
    with pytest.raises(ValueError):
        decode_item("not json", None)


async def test_a_crashed_holders_chat_is_taken_over_message_by_message(
    make_harness: HarnessFactory,
) -> None:
    """A holds the chat with a long answer; B accepts a message meanwhile. A dies: B finds
    the chat in its sweep, tells the user A's job was interrupted (not run twice), then
    runs its queued message, answering through its own front end."""
    a = await make_harness(lock_ttl_s=0.6, sweep_interval_s=0.2)
    await a.say("/start")
    b = await make_harness(sim=a.sim, lock_ttl_s=0.6, sweep_interval_s=0.2)
    b_front = Recorder()
    await b.conv.resume_pending(lambda _chat: b_front)
    # (The simulator finishes a session's turn before the next: this one ends within 3 s.)
    a.sim.set_fault("quiet_stream", seconds=3, every=0.2)
    job_a = a.later("make a 5 second video of a lighthouse")
    await a.out.wait_for(lambda op: isinstance(op, Stream) or "Progress" in type(op).__name__)
    await until(lambda: len(a.sim.requests_to("/run_sse")) == 1)  # A's answer is streaming
    await asyncio.wait_for(b.say('add a title "Beacon"'), 2)
    assert b.out.texts()[-1].startswith("⏳ Still working on your previous request.")
    await a.conv.aclose()  # the process dies mid-job: its lock lapses, its job is not done
    await asyncio.wait_for(job_a, 5)
    notice = await b_front.wait_for(lambda op: isinstance(op, SendText), 10)
    assert isinstance(notice, SendText)
    assert notice.text.startswith(
        "⚠️ I was restarted while working on your message “make a 5 second video of a light"
    )
    beacon = await b_front.wait_for(lambda op: isinstance(op, Stream) and op.final, 10)
    assert isinstance(beacon, Stream) and 'Added the title "Beacon"' in beacon.text
    await asyncio.wait_for(b.conv.wait_idle(), 5)
    assert len(a.sim.requests_to("/run_sse")) == 2, "the interrupted job is not run again"
    assert await b.store.chats_with_work() == []


async def test_a_queued_file_is_read_through_the_front_end_of_the_process_running_it(
    make_harness: HarnessFactory,
) -> None:
    a = await make_harness(lock_ttl_s=0.6)
    await a.say("/start")
    b = await make_harness(sim=a.sim, lock_ttl_s=0.6)
    fetched: list[Mapping[str, Any]] = []
    data = png_bytes()

    def reader_for(ref: Mapping[str, Any]) -> Any:
        async def read() -> bytes:
            fetched.append(ref)
            return data

        return read

    await a.conv.resume_pending(lambda _chat: a.out, reader_for=reader_for)
    a.sim.set_fault("quiet_stream", seconds=1.0, every=0.2)
    job_a = a.later("make a 5 second video of a lighthouse")
    await a.out.wait_for(lambda op: isinstance(op, Stream) or "Progress" in type(op).__name__)

    async def unreadable_here() -> bytes:
        raise AssertionError("read by the process that accepted it")

    photo = Attachment("still.png", "image/png", len(data), unreadable_here, ref={"id": "P1"})
    await b.conv.handle(Inbound(chat_id=1, user_id=1, attachments=(photo,)), b.out)
    await asyncio.wait_for(job_a, 10)
    got = await a.out.wait_for(lambda op: isinstance(op, SendText) and "📥 Got 1 file" in op.text)
    assert isinstance(got, SendText) and "still.png" in got.text
    assert fetched == [{"id": "P1"}]


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
