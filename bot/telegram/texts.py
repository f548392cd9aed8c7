"""What only the Telegram front end says, English and Chinese side by side, as data."""

from __future__ import annotations

from typing import Final

from bot.texts import normalize_lang

__all__ = ["COMMANDS", "TG_TEXTS", "tg_text"]

# The command menu Telegram shows next to the input field, per language.
COMMANDS: Final[tuple[tuple[str, str, str], ...]] = (
    ("start", "Start and see what I can do", "开始，看看我能做什么"),
    ("new", "Start a new video project", "新建视频项目"),
    ("export", "Render the video and send it here", "渲染视频并发到这里"),
    ("status", "What is on the timeline", "查看时间线"),
    ("credits", "Your credits", "查看积分"),
    ("cancel", "Stop what I am doing", "停止当前任务"),
    ("lang", "Reply language: en, zh or auto", "回复语言：en、zh 或 auto"),
    ("help", "How to use this bot", "使用帮助"),
)

TG_TEXTS: Final[dict[str, tuple[str, str]]] = {
    "open_video": ("▶️ Open the video", "▶️ 打开视频"),
    "video_link": (
        "Your video is ready; it is too large to send here, so here is its link.",
        "视频做好了；文件太大无法在这里发送，请用链接打开。",
    ),
    "not_allowed": (
        "Sorry, this bot is private. Ask its operator to add your user id {user_id}.",
        "抱歉，这是一个私有机器人。请让管理员添加你的用户 ID {user_id}。",
    ),
    "stats": (
        "📊 Since {since} UTC\n"
        "Chats: {chats}\nJobs running: {jobs}\nExports today: {exports}\n"
        "Errors by kind: {errors}",
        "📊 自 {since} UTC 起\n"
        "会话数：{chats}\n进行中的任务：{jobs}\n今日导出：{exports}\n"
        "错误（按类型）：{errors}",
    ),
    "no_errors": ("none", "无"),
    "telegram_file_limit": ("Telegram's download limit", "Telegram 下载上限"),
}


def tg_text(key: str, lang: str | None, /, **values: object) -> str:
    en, zh = TG_TEXTS[key]
    template = zh if normalize_lang(lang) == "zh" else en
    return template.format(**values) if values else template
