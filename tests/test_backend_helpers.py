"""Pure helpers: error mapping, answer parsers, pre-flight checks, draft summaries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend import (
    ACCEPTED_EXTENSIONS,
    SECRET_PATTERN,
    BackendUnavailable,
    Credentials,
    ExportBlocked,
    FileKind,
    FileTooLarge,
    MissingClientId,
    NemoError,
    OutOfCredits,
    ProtocolError,
    RateLimited,
    RenderFailed,
    RenderStatus,
    SessionNotFound,
    StreamBroken,
    StreamTimeout,
    TokenExpired,
    UnsupportedFile,
    UploadLimits,
    describe_changes,
    file_kind,
    is_exportable,
    preflight,
    redact,
    summarize_draft,
)
from backend.errors import map_error, scrub
from backend.models import parse_datetime, parse_render, parse_state
from backend.redaction import MASK

# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "endpoint", "expected"),
    [
        (200, {"code": 0, "data": {}}, "", None),
        (200, {"success": True, "data": {}}, "render", None),
        (204, None, "", None),
        (200, {"code": 1001}, "", TokenExpired),
        (200, {"code": 1010}, "", TokenExpired),
        (200, {"code": "1011"}, "", TokenExpired),
        (401, None, "", TokenExpired),
        (200, {"code": 1002}, "", SessionNotFound),
        (200, {"code": 2001}, "", OutOfCredits),
        (200, {"code": 4001}, "", UnsupportedFile),
        (200, {"code": 4002, "data": {"size": 9, "limit": 5}}, "", FileTooLarge),
        (400, None, "anonymous-token", MissingClientId),
        (400, {"code": 400, "message": "bad"}, "state", NemoError),
        (402, None, "render", ExportBlocked),
        (429, None, "", RateLimited),
        (500, None, "", BackendUnavailable),
        (504, {"message": "gateway"}, "", BackendUnavailable),
        (200, {"success": False, "error": "x"}, "render", RenderFailed),
        (500, {"success": False, "error": "x"}, "render", BackendUnavailable),
        (404, {"detail": "Session not found"}, "chat", SessionNotFound),
        (404, None, "", NemoError),
        (200, {"code": 9999}, "", NemoError),
    ],
)
def test_map_error(status: int, body: Any, endpoint: str, expected: type[NemoError] | None) -> None:
    error = map_error(status, body, endpoint=endpoint)
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        assert error is not None and error.status == status


def test_error_details() -> None:
    big = map_error(200, {"code": 4002, "data": {"size": 9, "limit": 5}})
    assert isinstance(big, FileTooLarge) and (big.size, big.limit) == (9, 5)
    bad = map_error(200, {"code": 4001})
    assert isinstance(bad, UnsupportedFile) and bad.accepted == ACCEPTED_EXTENSIONS
    limited = map_error(429, None, retry_after=12)
    assert isinstance(limited, RateLimited) and limited.retry_after == 12
    poor = map_error(200, {"code": 2001}, anonymous=True, credits_link="https://l/?bind=a")
    assert isinstance(poor, OutOfCredits) and poor.anonymous and poor.link == "https://l/?bind=a"
    registered = map_error(200, {"code": 2001}, credits_link="https://l/")
    assert isinstance(registered, OutOfCredits) and registered.link is None
    assert issubclass(StreamTimeout, StreamBroken) and issubclass(StreamBroken, BackendUnavailable)
    for cls in (TokenExpired, ProtocolError, RenderFailed, MissingClientId):
        assert issubclass(cls, NemoError)


def test_server_text_is_scrubbed_and_capped() -> None:
    error = map_error(401, {"message": "token nmv_usr_abcdefgh123 and Bearer xyz"})
    assert error is not None and "nmv_usr_abcdefgh123" not in str(error)
    assert "xyz" not in str(error)
    assert scrub("k=SECRET", ["SECRET"]) == "k=***"
    assert len(scrub("x" * 5000)) <= 300


JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)


@pytest.mark.parametrize(
    "secret",
    [
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",  # Telegram bot token
        "nmv_usr_abcdefgh123",
        "nmv_op_Operator0001",
        "NMV_USR_shouted1234",
        "clm_claimtoken99",
        JWT,
        JWT.rsplit(".", 1)[0] + ".",  # unsigned
    ],
)
def test_every_secret_shape_is_masked(secret: str) -> None:
    for text in (secret, f"token={secret}&x=1", f"https://api.telegram.org/bot{secret}/getMe"):
        masked = redact(text)
        assert secret not in masked and MASK in masked
    assert SECRET_PATTERN.search(f"Authorization: Bearer {secret}")


def test_bearer_values_and_known_secrets_are_masked() -> None:
    assert redact("Authorization: bearer opaque-value") == "Authorization: ***"
    assert redact("id cid-123 and cid-1234", ["cid-123", "cid-1234"]) == "id *** and ***"
    assert redact("nothing here", [None, ""]) == "nothing here"


def test_ordinary_text_is_left_alone() -> None:
    text = (
        "At 12:30 on nemovideo.com (v1.2.3), eyJ is short, nmv alone, a.b.c, "
        "chat 123456789 said: make it 10 s long"
    )
    assert redact(text) == text


def test_credentials_repr_hides_token_and_client_id() -> None:
    creds = Credentials("nmv_usr_hideme999", "cid-4711", datetime(2026, 1, 1, tzinfo=UTC), True)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "hideme" not in text and "4711" not in text and "2026-01-01" in text


# --- parsers ----------------------------------------------------------------------------------


def test_parse_datetime_forms() -> None:
    assert parse_datetime("2026-03-18T00:00:00Z") == datetime(2026, 3, 18, tzinfo=UTC)
    assert parse_datetime(1_800_000_000) == parse_datetime(1_800_000_000_000)
    assert parse_datetime("nonsense") is None and parse_datetime(None) is None


def test_parse_state_tolerates_odd_shapes() -> None:
    assert parse_state({"state": {"draft": '{"t": []}'}}).draft == {"t": []}
    assert parse_state({"state": None}).draft == {}
    assert parse_state({"state": {"draft": [1]}}).draft == {}
    with pytest.raises(ProtocolError):
        parse_state([1, 2])


def test_parse_render_edge_cases() -> None:
    unknown = parse_render({"status": "warming_up"}, "rid")
    assert unknown.status is RenderStatus.PROCESSING and unknown.id == "rid"
    failed = parse_render({"success": True, "data": {"status": "failed"}})
    assert failed.status is RenderStatus.FAILED and failed.error == "render failed"
    nested_error = parse_render({"status": "error", "error": {"message": "disk"}})
    assert nested_error.error == "disk"
    clamp = parse_render({"status": "processing", "progress": 250})
    assert clamp.progress == 100
    with pytest.raises(ProtocolError):
        parse_render("not an object")


# --- pre-flight -------------------------------------------------------------------------------

LIMITS = UploadLimits(image_bytes=100, video_bytes=1000, audio_bytes=500)


@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("a.MP4", "video/mp4", FileKind.VIDEO),
        ("clip.mov", None, FileKind.VIDEO),
        ("x.mkv", "application/octet-stream", FileKind.VIDEO),
        ("p.jpeg", "image/jpeg", FileKind.IMAGE),
        ("p.heic", "image/heic", FileKind.IMAGE),
        ("s.m4a", "audio/mp4", FileKind.AUDIO),
        ("s.mp4", "audio/mp4", FileKind.VIDEO),
        ("photo", "image/png", FileKind.IMAGE),
        ("voice", "audio/mpeg; codecs=mp3", FileKind.AUDIO),
    ],
)
def test_preflight_accepts(name: str, mime: str | None, kind: FileKind) -> None:
    assert preflight(name, mime, 10, LIMITS) is kind


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("doc.pdf", "application/pdf"),
        ("voice.ogg", "audio/ogg"),
        ("noext", None),
        ("noext", "application/zip"),
        ("fake.mp4", "application/pdf"),
        ("pic.png", "video/mp4"),
        ("movie.mov", "image/png"),
        (".mp4", None),
        ("x.mp4.exe", "application/x-msdownload"),
    ],
)
def test_preflight_refuses_types(name: str, mime: str | None) -> None:
    with pytest.raises(UnsupportedFile) as info:
        preflight(name, mime, 10, LIMITS)
    assert set(info.value.accepted) >= {"mp4", "jpg", "png", "mp3", "heic"}


def test_preflight_size_limits_per_kind() -> None:
    assert preflight("a.png", None, 100, LIMITS) is FileKind.IMAGE
    with pytest.raises(FileTooLarge) as info:
        preflight("a.png", None, 101, LIMITS)
    assert (info.value.size, info.value.limit) == (101, 100)
    assert preflight("a.mp4", None, 1000, LIMITS) is FileKind.VIDEO
    with pytest.raises(FileTooLarge):
        preflight("a.wav", None, 501, LIMITS)
    assert UploadLimits().video_bytes == 500 * 1024 * 1024


# --- drafts -----------------------------------------------------------------------------------

EXAMPLE = {
    "t": [
        {"tt": 0, "sg": [{"d": 10000, "n": "city timelapse"}]},
        {"tt": 1, "sg": [{"d": 10000, "n": "Lo-fi", "v": 0.35}]},
        {"tt": 7, "sg": [{"d": 3000, "text": "Urban Dreams"}]},
    ],
    "m": {"title": "Demo", "width": 1080, "height": 1920},
}


def test_summary_matches_the_documented_example() -> None:
    assert summarize_draft(EXAMPLE) == (
        "Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: Lo-fi (0-10s, 35%) "
        '3. Title: "Urban Dreams" (0-3s)'
    )


def test_summary_in_chinese() -> None:
    text = summarize_draft(EXAMPLE, "zh")
    assert text.startswith("时间线（3 条轨道）：1. 视频：city timelapse")
    assert "背景音乐：Lo-fi" in text and "“Urban Dreams”" in text and "0-3秒" in text


def test_summary_of_what_the_capture_adds() -> None:
    assert summarize_draft({"t": [{"tt": 7, "sg": [{"d": 3000}]}]}) == (
        "Timeline (1 track): 1. Title (0-3s)"
    )


def test_summary_with_several_segments_and_unknown_types() -> None:
    draft = {
        "t": [
            {"tt": 0, "sg": [{"d": 2500}, {"d": 4000}, {"s": 8000, "d": 2000}]},
            {"tt": 42, "sg": [{"d": 1000, "name": "mystery"}]},
            {"tt": 1, "sg": []},
        ]
    }
    assert summarize_draft(draft) == (
        "Timeline (3 tracks): 1. Video: 3 clips (0-10s) 2. Track: mystery (0-1s) 3. BGM: empty"
    )


def test_empty_and_odd_drafts() -> None:
    for draft in (None, {}, {"t": None}, {"t": "x"}, {"t": [1, None, "a"]}, [], "draft"):
        assert summarize_draft(draft) == "Timeline is empty."  # type: ignore[arg-type]
        assert summarize_draft(draft, "zh") == "时间线为空。"  # type: ignore[arg-type]
        assert not is_exportable(draft)  # type: ignore[arg-type]


def test_exportable_needs_a_segment() -> None:
    assert is_exportable(EXAMPLE)
    assert not is_exportable({"t": [{"tt": 0, "sg": []}, {"tt": 1}]})
    assert is_exportable({"t": [{"tt": 1}, {"sg": [{}]}]})


def test_describe_changes() -> None:
    before = {"t": [EXAMPLE["t"][0]]}
    assert describe_changes(before, before) is None
    assert describe_changes(None, {}) is None
    assert describe_changes(before, EXAMPLE) == (
        'Added BGM: Lo-fi (0-10s, 35%). Added Title: "Urban Dreams" (0-3s). '
        'Canvas set to 1080×1920. Project title set to "Demo".'
    )
    assert describe_changes(EXAMPLE, before) == (
        'Removed BGM: Lo-fi (0-10s, 35%). Removed Title: "Urban Dreams" (0-3s).'
    )
    longer = {"t": [{"tt": 0, "sg": [{"d": 10000, "n": "city timelapse"}, {"d": 5000}]}]}
    assert describe_changes(before, longer) == "Changed Video: city timelapse (+1) (0-15s)."
    assert describe_changes(before, {**before, "x": 1}) == "The project was updated."
    zh = describe_changes(before, EXAMPLE, "zh")
    assert zh is not None and zh.startswith("已添加背景音乐：Lo-fi")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=20,
)
drafty = st.dictionaries(
    st.sampled_from(["t", "m", "x"]),
    st.lists(
        st.dictionaries(
            st.sampled_from(["tt", "sg", "n", "v"]),
            json_values
            | st.lists(
                st.dictionaries(st.sampled_from(["d", "s", "n", "text", "v"]), json_values),
                max_size=3,
            ),
        ),
        max_size=4,
    )
    | json_values,
)


@settings(max_examples=300, deadline=None)
@given(drafty | json_values, drafty | json_values, st.sampled_from(["en", "zh", "mixed"]))
def test_helpers_never_crash(before: Any, after: Any, lang: str) -> None:
    assert isinstance(summarize_draft(after, lang), str)
    change = describe_changes(before, after, lang)
    assert change is None or isinstance(change, str)
    assert isinstance(is_exportable(after), bool)


def test_non_finite_and_huge_numbers() -> None:
    odd = {
        "t": [{"tt": float("inf"), "sg": [{"d": float("inf"), "v": float("nan")}, {"d": 10**400}]}]
    }
    assert summarize_draft(odd) == "Timeline (1 track): 1. Track: 2 clips"
    assert describe_changes({"m": {"width": 10**400}}, odd) is not None


def test_backend_imports_nothing_from_the_application() -> None:
    import subprocess
    import sys

    code = (
        "import sys, backend; "
        "bad = sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'bot', 'router', 'telegram', 'redis'}); "
        "print(','.join(bad))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == ""


@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("clip.MOV", None, FileKind.VIDEO),
        ("dir.v2/photo.jpeg", "application/octet-stream", FileKind.IMAGE),
        ("song.m4a", "audio/mp4", FileKind.AUDIO),
        ("voice", "audio/ogg; codecs=opus", FileKind.AUDIO),  # by the MIME major type
        ("", "image/heif", FileKind.IMAGE),
        ("scan.pdf", "application/pdf", None),
        ("noext", None, None),
        ("clip.mp4", "image/png", FileKind.VIDEO),  # the name decides when it knows
    ],
)
def test_file_kind_from_name_then_mime(name: str, mime: str | None, kind: FileKind | None) -> None:
    assert file_kind(name, mime) == kind
