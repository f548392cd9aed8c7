"""Contract test against the real thing: Google ADK's API server with a scripted agent.

No model and no credentials: a `BaseAgent` subclass yields the events. Our chat iterator
must read its text, hide its function calls, surface its model-error event and its
crash line, exactly as it would behind the NemoVideo gateway.
"""

from __future__ import annotations

import asyncio
import socket
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from google.adk.cli.fast_api import get_fast_api_app

from backend import (
    AgentCrash,
    ChatEvent,
    ClientConfig,
    Credentials,
    KeepAlive,
    ModelError,
    SessionNotFound,
    StateDelta,
    TextDelta,
    ToolCall,
    ToolResult,
    TurnComplete,
    build_client,
)

AGENT = textwrap.dedent(
    '''
    """A scripted stand-in for the NemoVideo agent: fixed events, no model."""

    from collections.abc import AsyncGenerator

    from google.adk.agents import BaseAgent
    from google.adk.agents.invocation_context import InvocationContext
    from google.adk.events import Event, EventActions
    from google.genai import types


    TITLE_DRAFT = {"t": [{"tt": 7, "sg": [{"d": 3000}]}]}


    class ScriptedAgent(BaseAgent):
        async def _run_async_impl(
            self, ctx: InvocationContext
        ) -> AsyncGenerator[Event, None]:
            said = "".join(
                part.text or "" for part in (ctx.user_content.parts or [])
            ) if ctx.user_content else ""

            def event(**kwargs):
                return Event(author=self.name, invocation_id=ctx.invocation_id, **kwargs)

            def model(*parts):
                return types.Content(role="model", parts=list(parts))

            if said == "llmerr":
                yield event(error_code="MALFORMED_FUNCTION_CALL", error_message="bad call")
                return
            if said == "boom":
                yield event(content=model(types.Part(text="Starting")), partial=True)
                raise RuntimeError("scripted failure")
            yield event(content=model(types.Part(text="Working on ")), partial=True)
            yield event(content=model(types.Part(text="it")), partial=True)
            yield event(content=model(types.Part(text="Working on it")))
            yield event(
                content=model(
                    types.Part(
                        function_call=types.FunctionCall(
                            id="call_1", name="edit_multitrack", args={"op": said}
                        )
                    )
                )
            )
            yield event(
                content=types.Content(
                    role="user",
                    parts=[
                        types.Part(
                            function_response=types.FunctionResponse(
                                id="call_1", name="edit_multitrack", response={"ok": True}
                            )
                        )
                    ],
                ),
                actions=EventActions(state_delta={"draft": TITLE_DRAFT}),
            )
            yield event(content=model(types.Part(text=f"Done: {said}")), turn_complete=True)


    root_agent = ScriptedAgent(name="nemo_agent")
    '''
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def adk_server(tmp_path: Path) -> AsyncIterator[str]:
    package = tmp_path / "agents" / "nemo_agent"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from . import agent\n")
    (package / "agent.py").write_text(AGENT)
    port = free_port()
    app = get_fast_api_app(
        agents_dir=str(tmp_path / "agents"),
        session_service_uri="memory://",
        artifact_service_uri="memory://",
        memory_service_uri="memory://",
        use_local_storage=False,
        web=False,
        host="127.0.0.1",
        port=port,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    assert server.started, "ADK API server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def new_session(base_url: str) -> str:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{base_url}/apps/nemo_agent/users/me/sessions", json={})
        answer.raise_for_status()
        return str(answer.json()["id"])


async def run(base_url: str, session_id: str, text: str) -> list[ChatEvent]:
    client = build_client(ClientConfig(base_url=base_url, chat_timeout=30))
    api = client.bind(Credentials("nmv_usr_adkcontract01", "cid", None, anonymous=True))
    try:
        return [event async for event in api.chat(session_id, text)]
    finally:
        await client.aclose()


async def test_reads_text_and_hides_function_calls(adk_server: str) -> None:
    session_id = await new_session(adk_server)
    events = await run(adk_server, session_id, "add title")
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert shown == "Working on itDone: add title"
    assert [e for e in events if isinstance(e, ToolCall)] == [
        ToolCall("edit_multitrack", {"op": "add title"})
    ]
    assert [e for e in events if isinstance(e, ToolResult)] == [
        ToolResult("edit_multitrack", {"ok": True})
    ]
    assert StateDelta({"draft": {"t": [{"tt": 7, "sg": [{"d": 3000}]}]}}) in events
    assert events[-1] == TurnComplete()
    assert not any(isinstance(e, ModelError | AgentCrash | KeepAlive) for e in events)
    # Function calls never reach the user's text.
    assert "edit_multitrack" not in shown


async def test_surfaces_the_model_error_event(adk_server: str) -> None:
    session_id = await new_session(adk_server)
    events = await run(adk_server, session_id, "llmerr")
    assert ModelError("MALFORMED_FUNCTION_CALL", "bad call") in events
    assert not any(isinstance(e, TextDelta) for e in events)


async def test_surfaces_the_crash_line(adk_server: str) -> None:
    session_id = await new_session(adk_server)
    events = await run(adk_server, session_id, "boom")
    assert events[0] == TextDelta("Starting")
    assert isinstance(events[-1], AgentCrash)
    assert "scripted failure" in events[-1].message


async def test_unknown_session_is_session_not_found(adk_server: str) -> None:
    with pytest.raises(SessionNotFound):
        await run(adk_server, "no-such-session", "hi")
