"""The simulator's endpoints over real HTTP: envelopes, codes, state and the SSE shapes."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from backend.sim import SimConfig, sample_mp4
from bot.cli import sim as cmd_sim
from tests.sim_fixtures import ATTRIBUTION, Api, PNG_1x1, fast, parse_stream, running


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running(fast(no_text_every=0, render_seconds=0.6)) as a:
        yield a


# ---- anonymous token and auth ----------------------------------------------------------------
async def test_anonymous_token_requires_client_id(api: Api) -> None:
    r = await api.http.post("/api/auth/anonymous-token")
    assert r.status_code == 400
    assert r.json() == {"code": 400, "message": "X-Client-Id header is required", "data": None}


async def test_anonymous_token_answer(api: Api) -> None:
    data = await api.login()
    assert set(data) == {"token", "user_id", "expires_at", "credits"}
    assert re.fullmatch(r"nmv_usr_[0-9a-f]{32}", data["token"])
    assert re.fullmatch(r"anon_[0-9a-f]{16}", data["user_id"])
    assert data["credits"] == 100
    expires = datetime.strptime(data["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expires.timestamp() - (time.time() + 7 * 86400)) < 5
    again = await api.login()
    assert again["user_id"] == data["user_id"] and again["token"] != data["token"]
    other = await api.login("another-client")
    assert other["user_id"] != data["user_id"]


async def test_bearer_token_checked(api: Api) -> None:
    r = await api.http.get("/api/credits/balance/simple")
    assert r.status_code == 401
    assert r.json() == {"code": 1001, "message": "missing bearer token", "data": None}
    r = await api.http.get("/api/credits/balance/simple", headers=api.headers("nmv_usr_nope"))
    assert r.status_code == 401
    assert r.json() == {"code": 1001, "message": "token expired or invalid", "data": None}
    api.token = "nmv_usr_nope"
    r = await api.render_status("render_x")
    assert r.status_code == 401
    assert r.json() == {
        "success": False,
        "data": None,
        "error": "token expired or invalid",
        "code": 1001,
    }


async def test_token_expires_after_ttl() -> None:
    async with running(SimConfig(token_ttl_s=0.3)) as api:
        await api.login()
        assert (await api.credits()).status_code == 200
        await asyncio.sleep(0.4)
        r = await api.credits()
        assert r.status_code == 401 and r.json()["code"] == 1001
        api.sim.expire_token("nmv_usr_unknown")  # unknown tokens are ignored


async def test_operator_token_is_a_registered_user() -> None:
    async with running(SimConfig(operator_token="nmv_usr_operator_secret")) as api:
        api.token = "nmv_usr_operator_secret"
        r = await api.credits()
        assert r.json()["data"] == {"available": 25000, "frozen": 0, "total": 25000}
        sid = await api.new_session()
        r = await api.http.post(
            "/api/tasks/me/with-session/nemo_agent", json={}, headers=api.headers()
        )
        assert r.json()["data"]["user_id"] == "usr_operator"
        assert api.sim.session(sid) is not None


# ---- sessions, state, credits ----------------------------------------------------------------
async def test_new_session_and_fresh_state(api: Api) -> None:
    data = await api.login()
    r = await api.http.post(
        "/api/tasks/me/with-session/nemo_agent",
        json={"task_name": "project", "language": "en"},
        headers=api.headers(),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 0 and body["message"] == "success"
    assert set(body["data"]) == {"task_id", "session_id", "user_id"}
    sid = body["data"]["session_id"]
    assert isinstance(sid, str) and re.fullmatch(r"\d{19}", sid)
    assert body["data"]["task_id"].startswith("task_")
    assert body["data"]["user_id"] == data["user_id"]
    r = await api.state(sid)
    assert r.status_code == 200
    state = r.json()["data"]
    assert state["session_id"] == sid and state["task_id"] == body["data"]["task_id"]
    assert state["task_name"] == "project"
    assert state["state"] == {
        "draft": {"t": []},
        "video_infos": [],
        "generated_media": [],
        "canvas_config": {"width": 1080, "height": 1920, "ratio": "9:16"},
        "video_analyses": [],
    }


async def test_unknown_or_foreign_session_is_1002(api: Api) -> None:
    await api.login()
    r = await api.state("123")
    assert r.status_code == 404
    assert r.json() == {"code": 1002, "message": "session not found: 123", "data": None}
    sid = await api.new_session()
    await api.login("someone-else")
    r = await api.state(sid)
    assert r.status_code == 404 and r.json()["code"] == 1002
    r = await api.chat_raw(sid, "hello")
    assert r.status_code == 404 and r.json()["code"] == 1002


async def test_business_errors_in_http_200_style() -> None:
    async with running(SimConfig(error_style="ok")) as api:
        await api.login()
        r = await api.state("404")
        assert r.status_code == 200
        assert r.json()["code"] == 1002
        r = await api.http.get("/api/credits/balance/simple", headers=api.headers("bad"))
        assert r.status_code == 401  # token errors stay HTTP 401


async def test_credits_balance(api: Api) -> None:
    await api.login()
    r = await api.credits()
    assert r.status_code == 200
    assert r.json() == {
        "code": 0,
        "message": "success",
        "data": {"available": 100, "frozen": 0, "total": 100},
    }


async def test_malformed_bodies_are_422(api: Api) -> None:
    await api.login()
    r = await api.http.post(
        "/api/tasks/me/with-session/nemo_agent", content=b"{nope", headers=api.headers()
    )
    assert r.status_code == 422 and r.json()["code"] == 422
    r = await api.http.post("/run_sse", json={"session_id": "1"}, headers=api.headers())
    assert r.status_code == 422
    assert r.json()["message"] == "session_id and new_message.parts are required"


# ---- uploads ---------------------------------------------------------------------------------
async def test_multipart_upload_several_files(api: Api) -> None:
    await api.login()
    sid = await api.new_session()
    video = sample_mp4()
    r = await api.upload(
        sid,
        ("beach.png", PNG_1x1, "image/png"),
        ("clip.mp4", video, "video/mp4"),
        ("song.mp3", b"ID3" + b"\0" * 100, "audio/mpeg"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 0 and body["data"]["session_state_applied"] is True
    files = body["data"]["files"]
    assert [f["filename"] for f in files] == ["beach.png", "clip.mp4", "song.mp3"]
    assert [f["file_type"] for f in files] == ["image", "video", "audio"]
    assert [f["size"] for f in files] == [len(PNG_1x1), len(video), 103]
    for f in files:
        assert set(f) == {
            "filename",
            "file_type",
            "cdn_url",
            "duration",
            "width",
            "height",
            "fps",
            "hash",
            "size",
        }
    assert (files[0]["width"], files[0]["height"], files[0]["duration"]) == (1, 1, None)
    assert files[1]["fps"] == 30.0 and files[1]["duration"] == 10.0
    served = await api.http.get(files[0]["cdn_url"])
    assert served.status_code == 200 and served.content == PNG_1x1
    assert served.headers["content-type"] == "image/png"
    infos = (await api.state(sid)).json()["data"]["state"]["video_infos"]
    assert [i["cdn_url"] for i in infos] == [f["cdn_url"] for f in files]


async def test_upload_rejects_unsupported_type(api: Api) -> None:
    await api.login()
    sid = await api.new_session()
    r = await api.upload(sid, ("notes.txt", b"hello", "text/plain"))
    assert r.status_code == 415
    body = r.json()
    assert body["code"] == 4001 and body["message"] == "unsupported file type: notes.txt"
    assert body["data"]["accepted"][:3] == ["mp4", "mov", "avi"]
    assert (await api.state(sid)).json()["data"]["state"]["video_infos"] == []


async def test_upload_rejects_too_large_file() -> None:
    async with running(SimConfig(image_bytes=1000)) as api:
        await api.login()
        sid = await api.new_session()
        r = await api.upload(
            sid, ("ok.png", PNG_1x1, "image/png"), ("big.jpg", b"\xff" * 5000, "image/jpeg")
        )
        assert r.status_code == 413
        assert r.json() == {
            "code": 4002,
            "message": "file too large: big.jpg (5000 bytes, limit 1000)",
            "data": {"filename": "big.jpg", "size": 5000, "limit": 1000},
        }
        assert (await api.state(sid)).json()["data"]["state"]["video_infos"] == []


async def test_upload_by_url_and_bad_requests(api: Api) -> None:
    await api.login()
    sid = await api.new_session()
    url = f"/api/upload-video/nemo_agent/me/{sid}"
    r = await api.http.post(
        url,
        json={"urls": ["https://example.com/a/cat.jpg?x=1"], "source_type": "url"},
        headers=api.headers(),
    )
    assert r.status_code == 200
    (f,) = r.json()["data"]["files"]
    assert (f["filename"], f["file_type"], f["size"]) == ("cat.jpg", "image", None)
    r = await api.http.post(
        url, json={"urls": ["https://example.com/doc.pdf"]}, headers=api.headers()
    )
    assert r.status_code == 415 and r.json()["code"] == 4001
    r = await api.http.post(url, json={"urls": "x"}, headers=api.headers())
    assert r.status_code == 422
    r = await api.http.post(url, content=b"raw", headers=api.headers())
    assert r.status_code == 422


# ---- chat stream -----------------------------------------------------------------------------
async def test_chat_stream_framing_and_event_shapes(api: Api) -> None:
    await api.login()
    sid = await api.new_session()
    r = await api.chat_raw(sid, 'add a title "Urban Dreams"')
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    body = r.content.decode()
    assert body.endswith("\n\n") and "event:" not in body and "\nid:" not in body
    blocks = [b for b in body.split("\n\n") if b]
    assert all(b.startswith("data: {") and "\n" not in b for b in blocks)
    for block in blocks:  # compact JSON, exactly as the ADK server writes it
        payload = block[len("data: ") :]
        assert payload == json.dumps(json.loads(payload), ensure_ascii=False, separators=(",", ":"))
    stream = parse_stream(r.status_code, r.headers["content-type"], r.content)
    first = stream.adk[0]
    assert list(first) == [
        "content",
        "partial",
        "invocationId",
        "author",
        "actions",
        "nodeInfo",
        "id",
        "timestamp",
    ]
    assert first["author"] == "nemo_agent" and first["nodeInfo"] == {"path": ""}
    assert first["actions"] == {
        "stateDelta": {},
        "artifactDelta": {},
        "requestedAuthConfigs": {},
        "requestedToolConfirmations": {},
    }
    assert len({e["invocationId"] for e in stream.adk}) == 1
    assert re.fullmatch(r"e-[0-9a-f-]{36}", first["invocationId"])
    assert stream.calls() == [
        {
            "id": "call_1",
            "args": {"op": "add_title", "text": "Urban Dreams"},
            "name": "edit_multitrack",
        }
    ]
    response = next(e for e in stream.adk if e["actions"]["stateDelta"])
    assert response["content"]["role"] == "user"
    assert response["content"]["parts"][0]["functionResponse"] == {
        "id": "call_1",
        "name": "edit_multitrack",
        "response": {"ok": True},
    }
    last = stream.adk[-1]
    assert last["turnComplete"] is True and "partial" not in last
    reply = 'Done! Added the title "Urban Dreams" (0-3s).'
    assert last["content"]["parts"] == [{"text": reply}]
    partials = stream.texts(partial=True)
    assert partials[0] == "Working on it… "
    assert "".join(partials[1:]) == reply
    assert stream.texts(partial=False) == ["Working on it… ", reply]


async def test_chat_edits_change_the_draft(api: Api) -> None:
    await api.login()
    sid = await api.new_session()
    r = await api.upload(sid, ("beach.png", PNG_1x1, "image/png"))
    image_url = r.json()["data"]["files"][0]["cdn_url"]
    video = await api.chat(sid, "animate this photo into a 10s clip")
    (call,) = video.calls()
    assert call["name"] == "generate_video"
    assert call["args"] == {
        "prompt": "animate this photo into a 10s clip",
        "duration": 10.0,
        "source": image_url,
    }
    assert video.texts(partial=False)[-1] == (
        "Done! Generated a 10s clip: beach. You can preview it in the timeline."
    )
    music = await api.chat(sid, "add some lofi music at 40%")
    title = await api.chat(sid, "add a title Urban Dreams")
    assert title.texts(partial=False)[-1] == 'Done! Added the title "Urban Dreams" (0-3s).'
    draft = await api.draft(sid)
    assert title.deltas()[-1] == {"draft": draft}
    assert music.deltas()[-1]["draft"]["t"][1]["m"] == {"title": "Lo-fi Chill", "volume": 40}
    assert [t["tt"] for t in draft["t"]] == [0, 1, 7]
    v, a, t = draft["t"]
    assert v["m"] == {"title": "beach"}
    (seg,) = v["sg"]
    assert (seg["st"], seg["d"], seg["m"]["title"]) == (0, 10000, "beach")
    media = (await api.http.get(seg["src"])).content
    assert media == sample_mp4()
    assert a["sg"][0]["d"] == 10000 and a["sg"][0]["m"]["volume"] == 40
    assert t["m"] == {"title": "Urban Dreams"}
    assert t["sg"][0]["m"] == {"title": "Urban Dreams", "text": "Urban Dreams"}
    assert (t["sg"][0]["st"], t["sg"][0]["d"]) == (0, 3000)
    assert draft["d"] == 10000
    generated = (await api.state(sid)).json()["data"]["state"]["generated_media"]
    assert [g["duration"] for g in generated] == [10.0]
    credits = (await api.credits()).json()["data"]
    assert credits == {"available": 90, "frozen": 0, "total": 90}


async def test_one_message_can_make_several_edits(api: Api) -> None:
    await api.login()
    sid = await api.new_session()
    s = await api.chat(sid, 'make a video of a cat surfing with piano music and a title "Surf"')
    assert [c["name"] for c in s.calls()] == [
        "generate_video",
        "edit_multitrack",
        "edit_multitrack",
    ]
    draft = await api.draft(sid)
    assert [(t["tt"], t["m"]["title"]) for t in draft["t"]] == [
        (0, "cat surfing"),
        (1, "Soft Piano"),
        (7, "Surf"),
    ]


async def test_chinese_replies(api: Api) -> None:
    await api.login()
    sid = await api.new_session()
    s = await api.chat(sid, "添加标题 城市之梦")
    assert s.texts(partial=False) == ["正在处理…", "好的！已添加标题“城市之梦”（0-3 秒）。"]
    s = await api.chat(sid, "加点背景音乐")
    draft = await api.draft(sid)
    assert [t["tt"] for t in draft["t"]] == [7, 1]
    zh = await api.new_session("zh")
    s = await api.chat(zh, "hello")
    assert s.texts(partial=False) == [
        "我可以让照片动起来、生成视频片段、添加标题或背景音乐。你想做什么？"
    ]


async def test_chat_only_turns_and_gui_speak(api: Api) -> None:
    await api.login()
    sid = await api.new_session()
    s = await api.chat(sid, "export it")
    assert s.calls() == [] and s.deltas() == []
    assert s.texts(partial=False) == [
        "The timeline is still empty: upload a photo or ask me to generate a clip."
    ]
    await api.chat(sid, "generate a city timelapse")
    s = await api.chat(sid, "export it")
    assert s.texts(partial=False)[-1] == (
        "Your draft is ready: click the Export button at the top right to render it."
    )
    s = await api.chat(sid, "导出")
    assert s.texts(partial=False)[-1] == "点击右上角的“导出”按钮即可导出视频。"


async def test_some_edit_turns_close_without_text() -> None:
    # seed 7, every 3: edit turn n is silent when (n + 7) % 3 == 0, i.e. turns 2, 5, ...
    async with running(fast()) as api:
        await api.login()
        sid = await api.new_session()
        first = await api.chat(sid, "generate a city timelapse")
        chat = await api.chat(sid, "hello")  # not an edit: does not count
        second = await api.chat(sid, "add music")
        third = await api.chat(sid, 'add a title "X"')
        assert first.texts() and chat.texts() and third.texts()
        assert second.texts() == []
        assert [c["name"] for c in second.calls()] == ["edit_multitrack"]
        last = second.adk[-1]
        assert "content" not in last and last["turnComplete"] is True
        assert second.deltas()[-1]["draft"]["t"][1]["tt"] == 1


async def test_keepalives_while_a_long_job_runs() -> None:
    config = SimConfig(generate_seconds=0.55, keepalive_every_s=0.1, chunk_delay_s=0.0)
    async with running(config) as api:
        await api.login()
        sid = await api.new_session()
        s = await api.chat(sid, "generate a city timelapse")
        blocks = s.blocks
        call = next(i for i, b in enumerate(blocks) if "functionCall" in b)
        response = next(i for i, b in enumerate(blocks) if "functionResponse" in b)
        between = blocks[call + 1 : response]
        assert between == [
            'data: {"type":"heartbeat"}',
            "data: ",
            ": keep-alive",
            'data: {"type":"heartbeat"}',
            "data: ",
        ]


async def test_partial_chunks_are_streamed_over_time() -> None:
    async with running(SimConfig(chunk_delay_s=0.05, no_text_every=0)) as api:
        await api.login()
        sid = await api.new_session()
        arrivals: list[float] = []
        start = time.monotonic()
        async with api.chat_stream(sid, "hello") as r:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    arrivals.append(time.monotonic() - start)
        assert len(arrivals) >= 5
        assert arrivals[-1] - arrivals[0] >= 0.05 * (len(arrivals) - 2)


async def test_out_of_credits_blocks_generation_only(api: Api) -> None:
    data = await api.login()
    sid = await api.new_session()
    api.sim.set_credits(api.token, 5)
    r = await api.chat_raw(sid, "generate a city timelapse")
    assert r.status_code == 403
    assert r.json() == {
        "code": 2001,
        "message": "insufficient credits",
        "data": {
            "available": 5,
            "required": 10,
            "user_id": data["user_id"],
            "anonymous": True,
            "register_url": f"https://nemovideo.com/register?bind={data['user_id']}",
        },
    }
    assert (await api.draft(sid)) == {"t": []}
    s = await api.chat(sid, "add music")
    assert s.status == 200 and s.deltas()


# ---- renders ---------------------------------------------------------------------------------
async def _session_with_draft(api: Api) -> tuple[str, dict[str, object]]:
    await api.login()
    sid = await api.new_session()
    await api.chat(sid, "generate a city timelapse")
    return sid, await api.draft(sid)


async def test_render_lifecycle_and_download(api: Api) -> None:
    sid, draft = await _session_with_draft(api)
    r = await api.start_render(sid, draft, "render_a1")
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    data = body["data"]
    assert set(data) == {"id", "status", "progress", "outputUrl", "createdAt", "completedAt"}
    assert (data["id"], data["status"], data["progress"], data["outputUrl"]) == (
        "render_a1",
        "pending",
        0.0,
        None,
    )
    seen = {"pending"}
    progress: list[float] = []
    for _ in range(40):
        await asyncio.sleep(0.05)
        data = (await api.render_status("render_a1")).json()["data"]
        seen.add(data["status"])
        progress.append(data["progress"])
        if data["status"] == "completed":
            break
    assert seen == {"pending", "processing", "completed"}
    assert progress == sorted(progress) and progress[-1] == 100.0
    assert data["outputUrl"] == f"{api.sim.base_url}/renders/render_a1.mp4"
    assert data["completedAt"] is not None
    video = await api.http.get(data["outputUrl"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert 1000 < len(video.content) < 20000
    assert _top_level_boxes(video.content) == ["ftyp", "moov", "free", "mdat"]
    assert (await api.http.get("/renders/render_zz.mp4")).status_code == 404


def _top_level_boxes(data: bytes) -> list[str]:
    """The MP4's top-level box types; the sizes must tile the file exactly."""
    boxes: list[str] = []
    offset = 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        assert size >= 8, f"bad box size at {offset}"
        boxes.append(data[offset + 4 : offset + 8].decode("ascii"))
        offset += size
    assert offset == len(data)
    return boxes


async def test_render_requires_attribution_headers(api: Api) -> None:
    sid, draft = await _session_with_draft(api)
    for missing in ATTRIBUTION:
        headers = {k: v for k, v in api.headers().items() if k != missing}
        r = await api.start_render(sid, draft, f"render_{missing}", **headers)
        assert r.status_code == 402
        assert r.json() == {
            "success": False,
            "data": None,
            "error": f"missing attribution headers: {missing}",
        }
    sent = api.sim.requests_to("/api/render/proxy/lambda")
    assert [r.headers.get("X-Skill-Source") for r in sent] == [None, "nemobot", "nemobot"]
    assert all(r.method == "POST" for r in sent)


async def test_render_request_errors(api: Api) -> None:
    sid, draft = await _session_with_draft(api)
    r = await api.start_render(sid, {"t": [{"tt": 0, "sg": []}]}, "render_e1")
    assert r.status_code == 400
    assert r.json() == {"success": False, "data": None, "error": "draft has no segments to render"}
    r = await api.start_render("999", draft, "render_e2")
    assert r.status_code == 404
    assert r.json() == {
        "success": False,
        "data": None,
        "error": "session not found: 999",
        "code": 1002,
    }
    r = await api.start_render(sid, draft, "")
    assert r.status_code == 400 and r.json()["error"] == "'id' is required"
    assert (await api.start_render(sid, draft, "render_e3")).status_code == 200
    r = await api.start_render(sid, draft, "render_e3")
    assert r.status_code == 409
    assert r.json()["error"] == "render id already used: render_e3"
    r = await api.render_status("render_missing")
    assert r.status_code == 404
    assert r.json() == {"success": False, "data": None, "error": "render not found"}


async def test_render_cancel(api: Api) -> None:
    sid, draft = await _session_with_draft(api)
    await api.start_render(sid, draft, "render_c1")
    r = await api.http.post("/api/render/proxy/lambda/render_c1/cancel", headers=api.headers())
    assert r.status_code == 200
    assert r.json()["data"]["status"] == "cancelled"
    await asyncio.sleep(0.7)
    assert (await api.render_status("render_c1")).json()["data"]["status"] == "cancelled"
    assert (await api.http.get("/renders/render_c1.mp4")).status_code == 404
    r = await api.http.post("/api/render/proxy/lambda/render_c1/cancel", headers=api.headers())
    assert r.status_code == 409
    assert r.json() == {"success": False, "data": None, "error": "render already cancelled"}
    r = await api.http.post("/api/render/proxy/lambda/nope/cancel", headers=api.headers())
    assert r.status_code == 404


@pytest.mark.parametrize("shape", ["B", "C"])
async def test_render_answer_shapes(shape: str) -> None:
    config = fast(render_seconds=0.2, render_shape=shape)
    async with running(config) as api:
        sid, draft = await _session_with_draft(api)
        first = (await api.start_render(sid, draft, "render_s")).json()
        await asyncio.sleep(0.3)
        done = (await api.render_status("render_s")).json()
        url = f"{api.sim.base_url}/renders/render_s.mp4"
        if shape == "B":
            assert first == {
                "success": True,
                "data": {
                    "taskId": "render_s",
                    "status": "pending",
                    "progress": 0.0,
                    "output": None,
                },
            }
            assert done["data"]["output"] == {
                "url": url,
                "duration": 1.0,
                "size": len(sample_mp4()),
            }
            assert done["data"]["status"] == "completed"
        else:
            assert first == {"id": "render_s", "status": "pending", "progress": 0.0, "output": None}
            assert done == {
                "id": "render_s",
                "status": "completed",
                "progress": 100.0,
                "output": {"url": url},
            }


async def test_export_cost_is_frozen_then_spent() -> None:
    config = fast(render_seconds=0.2, export_cost=5, no_text_every=0)
    async with running(config) as api:
        sid, draft = await _session_with_draft(api)
        await api.start_render(sid, draft, "render_f")
        assert (await api.credits()).json()["data"] == {"available": 85, "frozen": 5, "total": 90}
        await asyncio.sleep(0.3)
        assert (await api.credits()).json()["data"] == {"available": 85, "frozen": 0, "total": 85}
        await api.start_render(sid, draft, "render_g")
        await api.http.post("/api/render/proxy/lambda/render_g/cancel", headers=api.headers())
        assert (await api.credits()).json()["data"] == {"available": 85, "frozen": 0, "total": 85}


# ---- claim link, request log, determinism, CLI -----------------------------------------------
async def test_claim_token(api: Api) -> None:
    await api.login()
    sid = await api.new_session()
    task = (await api.state(sid)).json()["data"]["task_id"]
    r = await api.http.post(
        "/api/auth/claim-token", json={"task_id": task, "session_id": sid}, headers=api.headers()
    )
    assert r.status_code == 200
    data = r.json()["data"]
    assert re.fullmatch(r"clm_[0-9a-f]{32}", data["claim_token"])
    assert data["expires_in"] == 604800
    r = await api.http.post(
        "/api/auth/claim-token",
        json={"task_id": "task_x", "session_id": sid},
        headers=api.headers(),
    )
    assert r.status_code == 404
    assert r.json() == {"code": 1002, "message": "task not found: task_x", "data": None}


async def test_request_log_records_headers(api: Api) -> None:
    await api.login()
    await api.credits()
    log = api.sim.requests
    assert [(r.method, r.path) for r in log] == [
        ("POST", "/api/auth/anonymous-token"),
        ("GET", "/api/credits/balance/simple"),
    ]
    assert log[1].headers["x-skill-platform"] == "telegram"
    assert log[1].headers["Authorization"] == f"Bearer {api.token}"
    r = await api.http.get("/_sim/requests")
    assert [x["path"] for x in r.json()["requests"]] == [
        "/api/auth/anonymous-token",
        "/api/credits/balance/simple",
    ]


async def _ids(seed: int) -> list[str]:
    async with running(fast(seed=seed)) as api:
        token = (await api.login("fixed-client"))["token"]
        sid = await api.new_session()
        s = await api.chat(sid, "generate a city timelapse")
        return [token, sid, s.adk[0]["invocationId"], s.adk[0]["id"]]


async def test_deterministic_by_seed() -> None:
    assert await _ids(7) == await _ids(7)
    assert await _ids(8) != await _ids(7)


async def test_cli_serves_until_stopped() -> None:
    parser = argparse.ArgumentParser()
    cmd_sim.add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--seed", "3", "--render-seconds", "1.5"])
    config = cmd_sim.config_from_args(args)
    assert (config.seed, config.render_seconds, config.initial_credits) == (3, 1.5, 100)
    defaults = parser.parse_args([])
    assert (defaults.host, defaults.port) == ("127.0.0.1", 8088)
    with socket_port() as port:
        args.port = port
    stop = asyncio.Event()
    task = asyncio.create_task(cmd_sim.serve(args, stop))
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            try:
                r = await http.get(f"http://127.0.0.1:{args.port}/_sim/health")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.02)
        assert r.json() == {"ok": True}
    stop.set()
    await asyncio.wait_for(task, 5)


class socket_port:
    """A free TCP port on 127.0.0.1 (released on exit, so the server can bind it)."""

    def __enter__(self) -> int:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        port: int = self._sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


async def test_concurrent_sessions_stream_independently(api: Api) -> None:
    await api.login()
    sids = [await api.new_session() for _ in range(5)]
    streams = await asyncio.gather(
        *(api.chat(sid, f'add a title "T{i}"') for i, sid in enumerate(sids))
    )
    for i, (sid, s) in enumerate(zip(sids, streams, strict=True)):
        assert s.adk[-1]["turnComplete"] is True
        assert len({e["invocationId"] for e in s.adk}) == 1
        assert (await api.draft(sid))["t"][0]["m"] == {"title": f"T{i}"}


async def test_unknown_files_are_404(api: Api) -> None:
    for path in ("/media/gen_0.mp4", "/cdn/1/abc/x.png", "/renders/r.mp4"):
        assert (await api.http.get(path)).status_code == 404


def test_nemobot_sim_command_runs_and_stops_on_sigint() -> None:
    with socket_port() as port:
        pass
    command = [sys.executable, "-m", "bot", "sim", "--port", str(port), "--seed", "5"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == (
                f"NemoVideo simulator listening on http://127.0.0.1:{port} (seed 5); "
                "Ctrl-C stops it"
            )
            r = httpx.post(
                f"http://127.0.0.1:{port}/api/auth/anonymous-token", headers={"X-Client-Id": "c"}
            )
            assert r.json()["data"]["credits"] == 100
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
