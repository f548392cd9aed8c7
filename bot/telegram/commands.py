"""The command menu Telegram shows next to the input field, English and Chinese, as data."""

from __future__ import annotations

from typing import Final

__all__ = ["COMMANDS"]

# The command menu Telegram shows next to the input field, per language.
COMMANDS: Final[tuple[tuple[str, str, str], ...]] = (
    ("start", "Start and see what I can do", "开始，看看我能做什么"),
    ("new", "Start a new video project", "新建视频项目"),
    ("export", "Render the video and send it here", "渲染视频并发到这里"),
    ("status", "What is on the timeline", "查看时间线"),
    ("credits", "Your credits", "查看积分"),
    ("cancel", "Stop what I am doing", "停止当前任务"),
    ("lang", "Reply language: en, zh, zh-hant or auto", "回复语言：en、zh、zh-hant 或 auto"),
    ("help", "How to use this bot", "使用帮助"),
)
