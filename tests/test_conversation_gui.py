"""The agent's editor-speak rewritten in place: a one-line instruction stays in its
sentence, a block of lines (the timeline) becomes a paragraph of its own."""

from __future__ import annotations

from bot.conversation.gui import rewrite_gui
from bot.texts import t
from router import GuiAction

TIMELINE = t("gui_status", "en", summary="Timeline (1 track): 1. Video: pier (0-5s)")


def test_a_timeline_inserted_mid_line_starts_a_paragraph() -> None:
    reply = "Done! Generated a 5s clip: pier. You can preview it in the timeline."
    assert rewrite_gui(reply, GuiAction.STATUS, TIMELINE) == (
        "Done! Generated a 5s clip: pier.\n\n"
        "📋 The timeline now:\nTimeline (1 track): 1. Video: pier (0-5s)"
    )


def test_words_after_an_inserted_timeline_start_a_paragraph_too() -> None:
    reply = "好的！已生成视频片段：码头。可以在时间线中预览。还需要什么？"
    block = t("gui_status", "zh", summary="时间线（1 条轨道）：1. 视频：码头 (0-5秒)")
    assert rewrite_gui(reply, GuiAction.STATUS, block) == (
        "好的！已生成视频片段：码头。\n\n"
        "📋 当前时间线：\n时间线（1 条轨道）：1. 视频：码头 (0-5秒)\n\n还需要什么？"
    )


def test_line_breaks_the_agent_wrote_are_kept() -> None:
    reply = "Done!\nYou can preview it in the timeline.\nAnything else?"
    assert rewrite_gui(reply, GuiAction.STATUS, TIMELINE) == f"Done!\n{TIMELINE}\nAnything else?"
    assert rewrite_gui("You can preview it in the timeline.", GuiAction.STATUS, TIMELINE) == (
        TIMELINE
    )


def test_a_one_line_instruction_stays_in_its_sentence() -> None:
    reply = "Done! Click Export to download it. Bye."
    instead = t("gui_export", "en")
    assert rewrite_gui(reply, GuiAction.EXPORT, instead) == f"Done! {instead} Bye."
