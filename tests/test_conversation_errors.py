"""Every backend error gets its own friendly reply; nothing raw ever reaches the user."""

from __future__ import annotations

import logging
import re

import opencc
import pytest
from aiohttp import web

from bot.io import Button
from tests.conversation_fixtures import (
    FileStub,
    HarnessFactory,
    assert_clean,
    png_bytes,
    quick_sim_config,
)
from tests.web_fixtures import serving

MB = 1024 * 1024


async def test_expired_token_is_renewed_silently_and_stored(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    old = await h.token()
    h.sim.expire_token(old)
    texts = await h.say("make a 5 second video of a meadow")
    assert "Generated a 5s clip" in texts[-1]
    new = await h.token()
    assert new != old, "the renewed token is saved to the store"
    assert h.sim.user_for(new) is not None
    assert_clean(h.out.texts())
    assert not [t for t in h.out.texts() if "🔑" in t]


async def test_rejected_token_mid_call_is_renewed(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    old = await h.token()
    h.sim.set_fault("token_expired")
    texts = await h.say("/credits")
    assert texts[0].startswith("💳 Credits:")
    assert await h.token() != old


async def test_rejected_operator_token(make_harness: HarnessFactory) -> None:
    h = await make_harness(nemo_token="nmv_usr_not_a_real_operator_token")
    texts = await h.say("/credits")
    assert texts == [
        "🔑 The video service rejected this bot's access token. Please tell the bot's operator."
    ]
    assert (await h.state()).token is None, "an operator token is never stored per chat"


async def test_operator_token_is_used_and_not_stored(make_harness: HarnessFactory) -> None:
    sim_config = quick_sim_config(operator_token="nmv_usr_operator_token_1234")
    h = await make_harness(sim_config=sim_config, nemo_token="nmv_usr_operator_token_1234")
    texts = await h.say("/credits")
    assert texts == ["💳 Credits: 25000 available · 0 reserved · 25000 total"]
    assert (await h.state()).token is None
    assert not h.sim.requests_to("/api/auth/anonymous-token")


async def test_lost_session_is_replaced_and_the_user_told(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    old = (await h.state()).session_id
    h.sim.set_fault("session_lost")
    texts = await h.say("make a 5 second video of a canyon")
    assert texts[0] == (
        "ℹ️ Your previous project had expired on the server, so I started a new one."
    )
    assert "Generated a 5s clip" in texts[1], "the request ran in the new project"
    new = (await h.state()).session_id
    assert new and new != old
    assert h.sim.session(new) is not None


async def test_lost_session_on_status(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("session_lost")
    texts = await h.say("/status")
    assert texts[0].startswith("ℹ️ Your previous project had expired")
    assert texts[1].startswith("📋 Your project is empty so far")


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "💳 You're out of free credits. Register for free to get more"),
        ("zh", "💳 免费积分用完了。免费注册即可获得更多积分"),
    ],
)
async def test_out_of_credits_gives_the_registration_link(
    make_harness: HarnessFactory, lang: str, expected: str
) -> None:
    h = await make_harness()
    await h.say("/start", lang=lang)
    h.sim.set_credits(await h.token(), 5)
    user = h.sim.user_for(await h.token())
    assert user is not None
    mark = len(h.out.ops)
    texts = await h.say("make a 5 second video of a desert", lang=lang)
    assert texts[-1].startswith(expected)
    link = f"bind={user.user_id}"
    assert link in texts[-1]
    buttons = [op for op in h.out.visible(mark) if getattr(op, "buttons", ())]
    button: Button = buttons[-1].buttons[0]  # type: ignore[attr-defined]
    assert button.url and link in button.url and "register" in button.url
    assert_clean(texts)


async def test_unsupported_file_is_refused_before_reading(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    notes = FileStub("notes.txt", "text/plain", b"hello")
    texts = await h.say(files=(notes,))
    assert notes.reads == 0
    assert len(texts) == 1
    assert texts[0].startswith("⚠️ notes.txt: I can't use this type of file. Accepted: ")
    for ext in ("mp4", "mov", "jpg", "png", "mp3", "wav"):
        assert ext in texts[0]
    assert not h.sim.requests_to("/api/upload-video/")


async def test_oversized_file_is_refused_before_reading(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    big = FileStub("big.png", "image/png", b"x", declared_size=25 * MB)
    ok = FileStub("ok.png", "image/png", png_bytes())
    texts = await h.say(files=(big, ok))
    assert big.reads == 0 and ok.reads == 1
    assert texts[0] == (
        "⚠️ big.png is 25.0 MB; the limit for image files is 20.0 MB. "
        "Try compressing or trimming it."
    )
    assert texts[1].startswith("📥 Got 1 file:\n• ok.png: image")
    assert len(h.sim.requests_to("/api/upload-video/")) == 1


async def test_file_larger_than_announced_is_refused(make_harness: HarnessFactory) -> None:
    h = await make_harness(max_image_mb=0.001)
    liar = FileStub("liar.png", "image/png", png_bytes(200, 200, noise=True), declared_size=None)
    texts = await h.say(files=(liar,))
    assert any(
        t.startswith("⚠️ liar.png is ") and "the limit for image files is 1 KB" in t for t in texts
    ), texts
    assert not h.sim.requests_to("/api/upload-video/")


async def test_file_refused_by_the_service(make_harness: HarnessFactory) -> None:
    h = await make_harness(sim_config=quick_sim_config(image_bytes=500))
    await h.say("/start")
    texts = await h.say(
        files=(FileStub("photo.png", "image/png", png_bytes(100, 100, noise=True)),)
    )
    assert texts[0].startswith("⚠️ That file is too large (")
    assert texts[0].endswith("Try compressing or trimming it.")


async def test_export_blocked_is_not_a_credits_problem(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("make a 5 second video of a glacier")
    h.sim.set_fault("export_blocked")
    texts = await h.say("/export")
    assert texts == [
        "🔒 Exporting isn't available on this account's plan. It's not about credits: "
        "register or upgrade on nemovideo.com to export."
    ]
    assert (await h.state()).pending == []


async def test_rate_limited_twice(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("rate_limit_once", times=2, retry_after=7)
    texts = await h.say("/credits")
    assert texts == ["🐢 The video service is busy. Please try again in 7 s."]
    assert (await h.say("/credits"))[0].startswith("💳 Credits:")


async def test_rate_limited_once_is_retried_quietly(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("rate_limit_once", times=1, retry_after=0)
    assert (await h.say("/credits"))[0].startswith("💳 Credits: 100")


async def test_backend_errors_and_outage(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("server_error", times=3, status=503)
    texts = await h.say("/credits")
    assert texts == [
        "📡 The video service can't be reached right now. Please try again in a few minutes."
    ]
    await h.sim.stop()
    texts = await h.say("/status", lang="zh")
    assert texts == ["📡 暂时连不上视频服务，请过几分钟再试。"]
    # First contact while the service is down: the set-up line is closed, then explained.
    mark = len(h.out.ops)
    texts = await h.say("hello there my friend", chat_id=99)
    assert [(p.text, p.done) for p in h.out.progress(mark)] == [
        ("⚙️ Setting things up…", False),
        ("⚠️ Setting up did not finish.", True),
    ]
    assert texts == [
        "📡 The video service can't be reached right now. Please try again in a few minutes."
    ]


async def test_broken_stream_is_not_resent_and_state_reported(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("stream_cut", after=3)
    texts = await h.say("make a 5 second video of the northern lights")
    assert len(h.sim.requests_to("/run_sse")) == 1, "the message is never sent twice"
    report = texts[-1]
    assert report.startswith("📡 The connection to the agent broke mid-answer.")
    assert "Timeline (1 track): 1. Video" in report and "(0-5s)" in report


async def test_model_error_and_agent_crash(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("model_error")
    texts = await h.say("make a 5 second video of a river")
    assert texts[-1] == (
        "⚠️ The agent ran into a problem (MALFORMED_FUNCTION_CALL). Please try again or rephrase."
    )
    h.sim.set_fault("agent_crash")
    texts = await h.say("make a 5 second video of a river")
    assert texts[-1] == (
        "⚠️ The agent stopped unexpectedly. Your project is safe; please try again."
    )
    assert_clean(h.out.texts())


async def test_render_failure(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.say("make a 5 second video of a city")
    h.sim.set_fault("render_fail", at=0.3, message="render worker crashed")
    texts = await h.say("/export")
    assert texts == [
        "❌ The render failed (the render worker stopped unexpectedly). Your project is "
        "unchanged: try /export again, or change something first."
    ]
    assert (await h.state()).pending == []
    assert not h.out.videos()


async def test_plain_text_render_errors_are_translated(make_harness: HarnessFactory) -> None:
    """The service's own words (English, with its server paths) never reach the user."""
    h = await make_harness()
    await h.say("做一个5秒的城市视频", lang="zh")
    reason = "Error: ENOENT: no such file or directory, open '/var/task/assets/clip_3.mp4'"
    h.sim.set_fault("render_fail", at=0.3, message=reason)
    texts = await h.say("/export", lang="zh")
    assert texts == [
        "❌ 渲染失败（项目中有素材无法加载）。项目没有变化：可以再试一次 /export，或先修改一下。"
    ]
    h.sim.set_fault("render_fail", at=0.3, message="lambda said: 0x7f3a at /opt/render/x.js:12")
    texts = await h.say("/export", lang="zh")
    assert texts == ["❌ 渲染失败。项目没有变化：可以再试一次 /export，或先修改一下。"], "no detail"


async def test_unreadable_answer_has_a_reference_in_the_log(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", html)
    async with serving(app) as html_url:
        h = await make_harness()
        await h.say("/start")
        h.app.client._base = html_url  # the service starts answering HTML
        caplog.set_level(logging.ERROR, logger="bot.conversation")
        texts = await h.say("/credits")
    match = re.fullmatch(
        r"🤔 The video service sent an answer I couldn't read\. Please try again\. "
        r"\(ref ([0-9A-F]{6})\)",
        texts[0],
    )
    assert match, texts
    assert any(f"ref={match.group(1)}" in r.getMessage() for r in caplog.records)


async def test_unknown_failure_is_an_apology_with_a_logged_reference(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness()
    await h.say("/start")

    class Broken(FileStub):
        def attachment(self):  # type: ignore[no-untyped-def]
            base = super().attachment()

            async def read() -> bytes:
                raise RuntimeError("disk on fire at /srv/secret/path")

            return type(base)(name=base.name, mime=base.mime, size=base.size, read=read)

    caplog.set_level(logging.ERROR)
    texts = await h.say(files=(Broken("x.png", "image/png", png_bytes()),))
    match = re.fullmatch(
        r"😵 Sorry, something went wrong on my side\. If it keeps happening, "
        r"mention reference ([0-9A-F]{6})\.",
        texts[0],
    )
    assert match, texts
    records = [r for r in caplog.records if f"ref={match.group(1)}" in r.getMessage()]
    assert records and records[0].exc_info is not None, "the log has the traceback"
    assert "disk on fire" not in texts[0] and "Traceback" not in texts[0]
    # The chat keeps working.
    assert (await h.say("/credits"))[0].startswith("💳 Credits:")


async def test_stream_closed_without_turn_complete_is_reported_as_cut(
    make_harness: HarnessFactory,
) -> None:
    """The stream ends cleanly mid-answer, with no turnComplete and no error line: the user
    is told the answer was cut and what changed, and the message is not sent again."""
    h = await make_harness()
    await h.say("/start")
    h.sim.set_fault("stream_cut", after=3, mode="eof")
    texts = await h.say("make a 5 second video of the northern lights")
    assert len(h.sim.requests_to("/run_sse")) == 1, "the message is never sent twice"
    report = texts[-1]
    assert report.startswith("📡 The agent's answer was cut off before it finished."), texts
    assert "Video" in report, report
    assert (await h.state()).last_draft, "the state read after the cut is kept"
    h.sim.set_fault("stream_cut", after=1, mode="eof")
    texts = await h.say("hmm", lang="zh")
    assert texts[-1].startswith("📡 智能体的回答在完成前被截断了"), texts
    await h.say("/lang zh-hant")
    h.sim.set_fault("stream_cut", after=3, mode="eof")
    report = (await h.say("make a 5 second video of the sea"))[-1]
    assert report.startswith("📡 智慧體的回答"), report
    assert "影片" in report, "what changed is said too"
    assert opencc.OpenCC("s2t").convert(report) == report, "in Traditional characters only"


async def test_the_log_line_of_a_message_answered_with_an_error_says_so(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness()
    await h.say("/start")
    caplog.set_level(logging.INFO, logger="bot.conversation")

    def outcomes() -> list[str]:
        handled = [r for r in caplog.records if r.getMessage() == "message handled"]
        return [str(getattr(r, "outcome", "")) for r in handled]

    caplog.clear()
    await h.say("/credits")
    await h.say("make a 5 second video of a lake")
    assert outcomes() == ["ok", "ok"]
    await h.sim.stop()
    caplog.clear()
    await h.say("/credits")
    await h.say("make it longer")
    assert outcomes() == ["error", "error"], "an error reply is not an ok"
