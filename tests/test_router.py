"""The router's rules one by one: normalisation, keywords, typos, each context cue,
slash commands, links, language, and the reader of the agent's GUI language."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from router import (
    Decision,
    ExportOptions,
    GuiAction,
    Intent,
    classify,
    detect_lang,
    extract_urls,
    normalize,
    read_agent_text,
)


def intent_of(text: str) -> Intent:
    return classify(text).intent


# ------------------------------------------------------------------ normalisation


def test_normalize_folds_width_case_and_script() -> None:
    assert normalize("ＥＸＰＯＲＴ") == "export"
    assert normalize("Export") == "export"
    assert normalize("導出影片") == "导出视频"
    assert normalize("餘額 積分 狀態 上傳") == "余额积分状态上传"
    assert normalize("don’t") == "don't"


def test_normalize_leaves_latin_alone_and_survives_bad_input() -> None:
    assert normalize("plain ascii") == "plain ascii"
    assert normalize("a\x00b\ud800c") == "a b c"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Ｅｘｐｏｒｔ", Intent.EXPORT),
        ("EXPORT!!!", Intent.EXPORT),
        ("  export   the   video  ", Intent.EXPORT),
        ("導出", Intent.EXPORT),
        ("匯出影片", Intent.EXPORT),
        ("下載", Intent.EXPORT),
        ("餘額", Intent.CREDITS),
        ("積分", Intent.CREDITS),
        ("點數", Intent.CREDITS),
        ("狀態", Intent.STATUS),
        ("時間軸", Intent.STATUS),
        ("上傳", Intent.UPLOAD),
        ("ＵＰＬＯＡＤ", Intent.UPLOAD),
    ],
)
def test_width_case_and_traditional_chinese(text: str, intent: Intent) -> None:
    assert intent_of(text) is intent


# ------------------------------------------------------------------ keywords


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("export", Intent.EXPORT),
        ("export 1080p MP4", Intent.EXPORT),
        ("please export the final video", Intent.EXPORT),
        ("send me the video", Intent.EXPORT),
        ("download", Intent.EXPORT),
        ("导出", Intent.EXPORT),
        ("帮我导出一下视频", Intent.EXPORT),
        ("把视频发给我", Intent.EXPORT),
        ("credits", Intent.CREDITS),
        ("how many credits left", Intent.CREDITS),
        ("what's my balance", Intent.CREDITS),
        ("积分", Intent.CREDITS),
        ("还有多少积分", Intent.CREDITS),
        ("余额", Intent.CREDITS),
        ("status", Intent.STATUS),
        ("show tracks", Intent.STATUS),
        ("what's on my timeline", Intent.STATUS),
        ("状态", Intent.STATUS),
        ("看看时间线", Intent.STATUS),
        ("upload", Intent.UPLOAD),
        ("上传视频", Intent.UPLOAD),
        ("hello", Intent.CHAT),
        ("add some upbeat background music", Intent.CHAT),
        ("加一段背景音乐", Intent.CHAT),
    ],
)
def test_keywords_in_both_languages(text: str, intent: Intent) -> None:
    assert intent_of(text) is intent


@pytest.mark.parametrize(
    ("text", "intent", "lang"),
    [
        ("export 一下", Intent.EXPORT, "mixed"),
        ("balance 多少", Intent.CREDITS, "mixed"),
        ("帮我 upload https://example.com/a.mp4", Intent.UPLOAD, "mixed"),
        ("status 一下", Intent.STATUS, "mixed"),
    ],
)
def test_mixed_language(text: str, intent: Intent, lang: str) -> None:
    decision = classify(text)
    assert decision.intent is intent
    assert decision.lang == lang


# ------------------------------------------------------------------ typos


@pytest.mark.parametrize(
    ("typo", "intent"),
    [
        ("exprot", Intent.EXPORT),
        ("exoprt the video", Intent.EXPORT),
        ("dowload", Intent.EXPORT),
        ("donwload it", Intent.EXPORT),
        ("balnce", Intent.CREDITS),
        ("credtis", Intent.CREDITS),
        ("stauts", Intent.STATUS),
        ("uplaod", Intent.UPLOAD),
    ],
)
def test_typos_are_tolerated(typo: str, intent: Intent) -> None:
    decision = classify(typo)
    assert decision.intent is intent
    assert decision.reason.startswith("typo")
    assert decision.score < classify(intent.value).score


@pytest.mark.parametrize(
    "word", ["report", "expert", "statue", "edit", "unload", "states", "stats", "expo", "credo"]
)
def test_real_words_near_keywords_do_not_match(word: str) -> None:
    assert intent_of(word) is Intent.CHAT
    assert intent_of(f"show the {word}") is Intent.CHAT


def test_short_words_need_exact_spelling() -> None:
    assert intent_of("expt") is Intent.CHAT
    assert intent_of("stat") is Intent.CHAT


# ------------------------------------------------------------------ context cues


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("don't export yet", "negation"),
        ("do not export", "negation"),
        ("cancel the export", "negation"),
        ("先别导出", "negation"),
        ("不要导出，先加字幕", "negation"),
        ("不要上傳", "negation"),
        ("export later", "postponement"),
        ("export it tomorrow", "postponement"),
        ("稍后再导出", "postponement"),
        ("待会再上传", "postponement"),
        ("add music and then export", "sequence"),
        ("after you add the title, export it", "sequence"),
        ("加完字幕再导出", "sequence"),
        ("先加字幕然后导出", "sequence"),
        ("color balance", "other sense"),
        ("fix the white balance", "other sense"),
        ("status quo", "other sense"),
        ("credit card", "other sense"),
        ("download speed", "other sense"),
        ("add end credits", "other sense"),
        ("调一下白平衡", "no keyword"),
        ("信用卡余额多少", "other sense"),
        ("下载速度太慢了", "other sense"),
        ("how do I export?", "question"),
        ("为什么导出失败", "question"),
        ("怎么上传视频", "question"),
    ],
)
def test_context_cues_send_keywords_to_chat(text: str, kind: str) -> None:
    decision = classify(text)
    assert decision.intent is Intent.CHAT
    assert kind in decision.reason


@pytest.mark.parametrize(
    "text",
    [
        'add a title saying "EXPORT SALE"',
        "put the text “Download now” on screen",
        "add the words 'upload complete' at the end",
        "加个标题“导出大促”",
        "字幕写「上传成功」",
        "标题用《积分商城》",
    ],
)
def test_keywords_inside_quotes_are_content(text: str) -> None:
    decision = classify(text)
    assert decision.intent is Intent.CHAT
    assert decision.reason.startswith("quoted text")


def test_apostrophes_are_not_quotes() -> None:
    assert intent_of("what's my balance") is Intent.CREDITS
    assert intent_of("i'd like to export my video") is Intent.EXPORT


@pytest.mark.parametrize(
    "text",
    [
        "check the status of my amazon orders",
        "download all the photos off my phone",
        "my balance hasn't changed",
        "export the clip where the dog jumps",
        "把这个视频导出后发到抖音",
        "make the ending longer so the export looks more cinematic with slow fade out",
    ],
)
def test_incidental_keywords_stay_chat(text: str) -> None:
    assert intent_of(text) is Intent.CHAT


def test_two_actions_in_one_message_are_left_to_the_agent() -> None:
    decision = classify("credits and export")
    assert decision.intent is Intent.CHAT
    assert "several actions" in decision.reason


def test_timeline_is_an_object_when_another_action_is_named() -> None:
    assert intent_of("export the timeline") is Intent.EXPORT
    assert intent_of("timeline") is Intent.STATUS


def test_long_messages_are_chat() -> None:
    assert intent_of("export " * 20) is Intent.CHAT
    assert intent_of("export " + "x" * 5000) is Intent.CHAT


# ------------------------------------------------------------------ slash commands


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("/export", Intent.EXPORT),
        ("/export@SomeBot", Intent.EXPORT),
        ("/EXPORT", Intent.EXPORT),
        ("/credits", Intent.CREDITS),
        ("/credits@NemoVideoBot", Intent.CREDITS),
        ("/balance", Intent.CREDITS),
        ("/status", Intent.STATUS),
        ("/status@x_bot extra words", Intent.STATUS),
        ("/upload", Intent.UPLOAD),
        ("/start", Intent.CHAT),
        ("/help", Intent.CHAT),
        ("/exporter", Intent.CHAT),
        ("a /export in the middle", Intent.CHAT),
    ],
)
def test_slash_commands(text: str, intent: Intent) -> None:
    assert intent_of(text) is intent


def test_slash_command_is_certain() -> None:
    decision = classify("/export")
    assert decision.score == 1.0
    assert decision.reason == "command /export"


# ------------------------------------------------------------------ links


def test_upload_returns_the_links() -> None:
    decision = classify("upload https://example.com/a.mp4 and https://example.com/b.mov.")
    assert decision.intent is Intent.UPLOAD
    assert decision.urls == ("https://example.com/a.mp4", "https://example.com/b.mov")


def test_links_next_to_chinese_and_punctuation() -> None:
    decision = classify("上传https://example.com/clip.mp4，谢谢")
    assert decision.intent is Intent.UPLOAD
    assert decision.urls == ("https://example.com/clip.mp4",)
    assert classify("/upload http://x.org/v?id=1&t=2").urls == ("http://x.org/v?id=1&t=2",)


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("see (https://example.com/x.mp4)", ("https://example.com/x.mp4",)),
        ("HTTPS://EXAMPLE.COM/A", ("HTTPS://EXAMPLE.COM/A",)),
        ("twice https://a.io/x https://a.io/x", ("https://a.io/x",)),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", ("https://en.wikipedia.org/wiki/Foo_(bar)",)),
        ("ftp://example.com/x and http:// alone", ()),
        ("no links here", ()),
    ],
)
def test_extract_urls(text: str, urls: tuple[str, ...]) -> None:
    assert extract_urls(text) == urls


def test_a_link_with_another_action_is_chat() -> None:
    decision = classify("export https://example.com/a.mp4")
    assert decision.intent is Intent.CHAT
    assert decision.urls == ("https://example.com/a.mp4",)


def test_a_bare_link_goes_to_the_agent_with_its_url() -> None:
    decision = classify("https://example.com/clip.mp4")
    assert decision.intent is Intent.CHAT
    assert decision.urls == ("https://example.com/clip.mp4",)


# ------------------------------------------------------------------ language


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("export please", "en"),
        ("导出", "zh"),
        ("導出影片", "zh"),
        ("导出 MP4", "zh"),
        ("export 一下", "mixed"),
        ("上传 https://example.com/a.mp4", "zh"),
        ("", "en"),
        ("1234", "en"),
    ],
)
def test_detect_lang(text: str, lang: str) -> None:
    assert detect_lang(text) == lang
    assert classify(text).lang == lang


# ------------------------------------------------------------------ the decision value


def test_decision_is_a_frozen_explainable_value() -> None:
    decision = classify("export")
    assert isinstance(decision, Decision)
    assert decision.direct
    assert 0.0 <= decision.score <= 1.0
    assert "export" in decision.reason
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.intent = Intent.CHAT  # type: ignore[misc]
    assert not classify("hello").direct


def test_classify_is_safe_across_threads() -> None:
    texts = ["export", "exprot", "积分", "don't export", "stauts", "hello"] * 200
    expected = [classify(t) for t in texts]
    results: list[list[Decision]] = [[] for _ in range(4)]

    def work(slot: int) -> None:
        results[slot] = [classify(t) for t in texts]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r == expected for r in results)


# ------------------------------------------------------------------ the agent's GUI language


@pytest.mark.parametrize(
    ("text", "action", "cue"),
    [
        ("Done! Click Export to render your video.", GuiAction.EXPORT, "click export"),
        (
            'When you are happy, click the "Export" button.',
            GuiAction.EXPORT,
            'click the "export" button',
        ),
        (
            "Press the download button in the top right.",
            GuiAction.EXPORT,
            "press the download button",
        ),
        ("完成了，点击导出即可下载。", GuiAction.EXPORT, "点击导出"),
        ("請點擊「導出」按鈕", GuiAction.EXPORT, "点击「导出"),
        ("Open the timeline to see the new clip.", GuiAction.STATUS, "open the timeline"),
        ("You can preview in timeline now.", GuiAction.STATUS, "preview in timeline"),
        ("打开时间线看看效果", GuiAction.STATUS, "打开时间线"),
        ("可以在时间线中预览", GuiAction.STATUS, "在时间线中预览"),
        ("Drag the clip to the start.", GuiAction.NONE, ""),
        ("拖拽片段到开头", GuiAction.NONE, ""),
        ("I added lo-fi music at 35% volume.", GuiAction.NONE, ""),
        ("Don't click export yet, the render is still running.", GuiAction.NONE, ""),
        ("", GuiAction.NONE, ""),
    ],
)
def test_read_agent_text(text: str, action: GuiAction, cue: str) -> None:
    hint = read_agent_text(text)
    assert hint.action is action
    assert hint.cue == cue


def test_export_instruction_wins_over_a_timeline_hint() -> None:
    hint = read_agent_text("Preview in the timeline, then click Export.")
    assert hint.action is GuiAction.EXPORT


# ------------------------------------------------------------------ requests never shown
# Each class of phrasing is a rule of the language; these lines are not in rules.toml.


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        # the objects an action takes, and function words around it
        ("upload my pics asap", Intent.UPLOAD),
        ("can you upload the selfies for me", Intent.UPLOAD),
        ("export the slideshow of our trip", Intent.EXPORT),
        ("上传几张图片", Intent.UPLOAD),
        ("积分够用吗", Intent.CREDITS),
        # upload phrasings, and direction: to me is an export, to you an upload
        ("here are my pictures from the wedding", Intent.UPLOAD),
        ("attaching the product shots", Intent.UPLOAD),
        ("sending you the files now", Intent.UPLOAD),
        ("I'm sending over the raw videos", Intent.UPLOAD),
        ("这几张是我拍的图", Intent.UPLOAD),
        ("我给你传几段视频", Intent.UPLOAD),
        ("视频发我", Intent.EXPORT),
        ("把成片传给我", Intent.EXPORT),
        ("send me the finished video", Intent.EXPORT),
        # the bot's own name is like a mention
        ("@NemoVideoBot here are the photos", Intent.UPLOAD),
        ("nemobot export please", Intent.EXPORT),
    ],
)
def test_objects_phrasings_and_direction(text: str, intent: Intent) -> None:
    assert intent_of(text) is intent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("leave everything as it is and export", Intent.EXPORT),
        ("别的都别动，就导出吧", Intent.EXPORT),
        ("don't change anything, just export", Intent.EXPORT),
        ("I can't remember if I have any credits left", Intent.CREDITS),
        ("有没有积分", Intent.CREDITS),
        ("积分够不够", Intent.CREDITS),
        ("积分是不是用完了", Intent.CREDITS),
        ("Before we go on, show me the timeline", Intent.STATUS),
        ("Perfect, that's it. Could you send the final cut over?", Intent.EXPORT),
        ("don't export, add music first", Intent.CHAT),
        ("don't go ahead and export", Intent.CHAT),
        ("先别导出，我还要加几张照片", Intent.CHAT),
        ("once the music is in, export", Intent.CHAT),
        ("trim the intro first, then export", Intent.CHAT),
        ("add subtitles and export", Intent.CHAT),
        ("不加水印，导出", Intent.CHAT),
        ("the status of my order", Intent.CHAT),
        ("download the song from youtube", Intent.CHAT),
        ("delivery status", Intent.CHAT),
        ("my balance didn't update", Intent.CHAT),
        ("怎么查积分", Intent.CHAT),
        ("download a funny meme for me", Intent.CHAT),
        ("export a vertical version", Intent.EXPORT),
        ("让这张照片动起来，做成8秒视频", Intent.CHAT),
        ("我传几张截图给你", Intent.UPLOAD),
        ("looks good, then export", Intent.CHAT),
        ("what's the status of the export", Intent.STATUS),
        ("i have no photos", Intent.CHAT),
        ("我发你几张图", Intent.UPLOAD),
    ],
)
def test_cues_read_anywhere_and_negation_by_scope(text: str, intent: Intent) -> None:
    assert intent_of(text) is intent


def test_word_cap_and_clauses() -> None:
    fourteen = "please could you now export the finished video for me right away thanks so"
    assert len(fourteen.split()) == 14
    assert intent_of(fourteen) is Intent.EXPORT
    assert intent_of(fourteen + " much") is Intent.CHAT
    assert intent_of("Looks great. Export it.") is Intent.EXPORT
    assert intent_of("credits? and export") is Intent.CHAT


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("ex\u200bport it", Intent.EXPORT),
        ("\ufeffexport\u2060 now", Intent.EXPORT),
        ("what’s my balance", Intent.CREDITS),
        ("don’t export yet", Intent.CHAT),
        ("导 出", Intent.EXPORT),
        ("进 度", Intent.STATUS),
        ("expoooort pleaseee", Intent.EXPORT),
        ("re-export in 1080p", Intent.EXPORT),
        ("rerender it", Intent.EXPORT),
        ("uploading the clips now", Intent.UPLOAD),
        ("I exported it yesterday", Intent.CHAT),
        ("here are the pictrues", Intent.UPLOAD),
        ("uplaoding now", Intent.UPLOAD),
        ("專案進度如何", Intent.STATUS),
        ("幫我匯出影片", Intent.EXPORT),
    ],
)
def test_normalisation_of_what_people_type(text: str, intent: Intent) -> None:
    assert intent_of(text) is intent


def test_traditional_chinese_is_converted_word_by_word() -> None:
    assert normalize("專案") == "项目"
    assert normalize("影片") == "视频"
    assert normalize("ex\u200bport") == "export"


@pytest.mark.parametrize(
    ("text", "intent", "reason"),
    [
        ("/export later", Intent.CHAT, "postponement"),
        ("/export, not now", Intent.CHAT, "postponement"),
        ("/export 1080p", Intent.EXPORT, "command /export"),
        ("can i download it?", Intent.EXPORT, "keyword 'download'"),
        ("send me that", Intent.CHAT, "no keyword"),
        ("send me that song", Intent.CHAT, "no keyword"),
        ("send me it", Intent.EXPORT, "phrase"),
    ],
)
def test_risky_lines_are_decided(text: str, intent: Intent, reason: str) -> None:
    decision = classify(text)
    assert decision.intent is intent
    assert reason in decision.reason


# ------------------------------------------------------------------ export options


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("export 1080p please", ExportOptions(resolution="1080p")),
        ("export 4k vertical", ExportOptions(resolution="2160p", aspect="9:16")),
        ("帮我导出成竖屏", ExportOptions(aspect="9:16")),
        ("export it as mov in high quality", ExportOptions(quality="high", format="mov")),
        ("export in full hd, landscape", ExportOptions(resolution="1080p", aspect="16:9")),
        ("導出 1080p 橫屏", ExportOptions(resolution="1080p", aspect="16:9")),
        ("/export 720p square", ExportOptions(resolution="720p", aspect="1:1")),
        ("export", ExportOptions()),
    ],
)
def test_export_options_are_returned_typed(text: str, options: ExportOptions) -> None:
    decision = classify(text)
    assert decision.intent is Intent.EXPORT
    assert decision.options == options
    assert bool(decision.options) is bool(options.as_dict())


def test_options_belong_to_exports_only() -> None:
    assert classify("upload 4k footage").options == ExportOptions()
    assert classify("make it vertical").options == ExportOptions()
    assert classify("export 4k vertical").options.as_dict() == {
        "resolution": "2160p",
        "aspect": "9:16",
    }
