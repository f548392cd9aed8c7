"""Every sentence the bot says, English and Chinese side by side.

Kept as data in one place so a translator can read and fix it without reading the
conversation logic. Placeholders use `str.format` names; `t()` fills them. Traditional
Chinese (`zh-hant`) is made from the Simplified texts by OpenCC's Taiwan phrasing
conversion (s2twp), with Taiwan's 「」 quotes and the few overrides below.
"""

from __future__ import annotations

import functools
import re
from typing import Final

import opencc

from backend import MIB

__all__ = [
    "LANGS",
    "TEXTS",
    "base_lang",
    "fmt_duration",
    "fmt_elapsed",
    "fmt_size",
    "fmt_span",
    "localize",
    "normalize_lang",
    "progress_bar",
    "script_lang",
    "t",
]

LANGS: Final = ("en", "zh", "zh-hant")

# key: (English, Chinese)
TEXTS: Final[dict[str, tuple[str, str]]] = {
    # --- first contact and help ---------------------------------------------------------
    "setup": ("⚙️ Setting things up…", "⚙️ 正在准备…"),
    "ready": ("✅ Ready!", "✅ 准备好了！"),
    "setup_failed": ("⚠️ Setting up did not finish.", "⚠️ 准备未能完成。"),
    "welcome": (
        "I make videos with you, just by chatting. Things to try:\n"
        "• Send a photo and say “animate this photo”\n"
        "• “Make a 10-second video of a city at night”\n"
        "• “Add lo-fi background music”, then /export",
        "我可以陪你聊着天做视频。试试这些：\n"
        "• 发一张照片，然后说“让这张照片动起来”\n"
        "• “做一个10秒的城市夜景视频”\n"
        "• “加上轻松的背景音乐”，然后 /export 导出",
    ),
    "welcome_back": (
        "Welcome back! Your project is still here: /status shows it, /new starts a fresh one.",
        "欢迎回来！你的项目还在：/status 查看，/new 新建一个。",
    ),
    "help": (
        "Send me photos, videos or audio, and tell me what video you want.\n"
        "/export – render the video and send it here\n"
        "/status – what is on the timeline\n"
        "/credits – your credits\n"
        "/new – start a new project\n"
        "/cancel – stop what I am doing\n"
        "/lang en|zh|zh-hant|auto – reply language",
        "发给我照片、视频或音频，再告诉我你想要什么样的视频。\n"
        "/export – 渲染视频并发到这里\n"
        "/status – 查看时间线上的内容\n"
        "/credits – 查看积分\n"
        "/new – 新建项目\n"
        "/cancel – 停止当前任务\n"
        "/lang en|zh|zh-hant|auto – 回复语言",
    ),
    "new_project": (
        "🆕 New project started. Send a photo or video, or describe the video you want.",
        "🆕 已新建项目。发一张照片或一段视频，或者描述你想要的视频。",
    ),
    "lang_set": ("Language set to English.", "语言已设为中文。"),
    "lang_auto": (
        "I'll reply in the language you write in.",
        "我会用你使用的语言回复。",
    ),
    "lang_usage": (
        "Usage: /lang en, /lang zh, /lang zh-hant or /lang auto.",
        "用法：/lang en、/lang zh、/lang zh-hant 或 /lang auto。",
    ),
    # --- one job at a time --------------------------------------------------------------
    "busy": (
        "⏳ Still working on {job}. Your message is queued and comes next; /cancel to stop.",
        "⏳ 还在处理{job}。你的消息已排队，稍后处理；发送 /cancel 可停止。",
    ),
    "queue_flood": (
        "✋ {count} messages are already waiting, so I did not take the {dropped} sent after "
        "them. Please send those again once I've caught up.",
        "✋ 已有 {count} 条消息在排队，之后发来的 {dropped} 条我没有接收。请等我处理完后再发一次。",
    ),
    "job_chat": ("your message “{snippet}”", "你的消息“{snippet}”"),
    "job_export": ("the export", "导出"),
    "job_upload": ("your files", "你的文件"),
    "job_status": ("the project status", "项目状态"),
    "job_new": ("a new project", "新项目"),
    "job_resume": ("an export from before", "之前的导出"),
    "job_other": ("your previous request", "你之前的请求"),
    "stopped": ("⏹ Stopped.", "⏹ 已停止。"),
    "stopped_chat": (
        "⏹ I stopped following the agent's answer. The agent may still finish this edit on "
        "the server, and it is charged if it does: /status shows where the project stands.",
        "⏹ 我已停止接收智能体的回答。智能体可能仍会在服务器上完成这次编辑，完成的话会照常扣除积分："
        "发送 /status 查看项目现状。",
    ),
    "project_now": ("📋 The project right now: {summary}", "📋 项目现在是这样：{summary}"),
    "interrupted": (
        "⚠️ I was restarted while working on {job}, so it may not have finished. "
        "/status shows where the project stands; send it again if needed.",
        "⚠️ 处理{job}时我被重启了，可能没有完成。发送 /status 查看项目进度，需要的话请再发一次。",
    ),
    "stopped_suffix": (" … (stopped)", " …（已停止）"),
    "export_cancelled": (
        "⏹ Export cancelled; the render was stopped on the server.",
        "⏹ 已取消导出，服务器上的渲染也已停止。",
    ),
    "cancel_elsewhere": (
        "⏳ I'm in the middle of a step that can't be stopped from here; it ends shortly.",
        "⏳ 我正在处理的这一步无法从这里停止，很快就会结束。",
    ),
    "nothing_to_cancel": ("Nothing is running right now.", "目前没有正在进行的任务。"),
    # --- direct actions -----------------------------------------------------------------
    "credits": (
        "💳 Credits: {available} available · {frozen} reserved · {total} total",
        "💳 积分：可用 {available} · 冻结 {frozen} · 总计 {total}",
    ),
    "status": ("📋 {summary}", "📋 {summary}"),
    "status_empty": (
        "📋 Your project is empty so far. Send a photo, video or audio file, "
        "or describe the video you want.",
        "📋 项目还是空的。发一张照片、一段视频或音频，或者描述你想要的视频。",
    ),
    "status_hint": ("When you're happy with it: /export", "满意的话：/export 导出"),
    "export_canvas": (
        "📐 The video comes out at the project's canvas, {canvas}. "
        "To change it, ask me before exporting, e.g. “{ask}”.",
        "📐 视频按项目画布 {canvas} 导出。要改的话，导出前跟我说，比如“{ask}”。",
    ),
    "export_canvas_unknown": ("the size set in the project", "项目里设定的尺寸"),
    "export_ask": ("make it {what}", "改成{what}"),
    "export_format": (
        "🎞 Videos come as MP4 here ({asked} is not offered).",
        "🎞 这里导出的视频都是 MP4 格式（不提供 {asked}）。",
    ),
    "nothing_to_export": (
        "There's nothing to export yet: the timeline is empty. Send a photo or video, "
        "or describe the video you'd like, then /export again.",
        "还没有可导出的内容：时间线是空的。"
        "先发一张照片或视频，或描述你想要的视频，然后再 /export。",
    ),
    "export_progress": (
        "🎬 Rendering… {percent}% ({elapsed})",
        "🎬 渲染中… {percent}%（{elapsed}）",
    ),
    "export_left": ("about {left} left", "预计还需 {left}"),
    "export_waiting": (
        "the video service isn't answering, still trying",
        "视频服务暂时没有响应，仍在重试",
    ),
    "export_done": ("✅ Rendered in {elapsed}.", "✅ 渲染完成，用时 {elapsed}。"),
    "export_failed_line": ("❌ Render failed", "❌ 渲染失败"),
    "export_stopped_line": ("⏹ Render stopped", "⏹ 渲染已停止"),
    "export_timeout_line": ("⌛ Render took too long", "⌛ 渲染超时"),
    "export_caption": ("Here's your video 🎉", "你的视频做好了 🎉"),
    "export_unchanged": (
        "Nothing changed since your last export, so here is that video again (no credits "
        "spent). /export once more renders it anew.",
        "自上次导出以来项目没有变化，这是上次做好的视频（没有花费积分）。"
        "再发一次 /export 会重新渲染。",
    ),
    "export_deadline": (
        "⌛ The render took longer than {duration}, so I stopped it on the server. "
        "Please try /export again later.",
        "⌛ 渲染超过了 {duration}，我已在服务器上停止它。请稍后再试 /export。",
    ),
    "export_cancelled_remote": (
        "The render was cancelled on the server. /export to start it again.",
        "渲染在服务器上被取消了。发送 /export 重新开始。",
    ),
    "render_failed": (
        "❌ The render failed{detail}. Your project is unchanged: try /export again, "
        "or change something first.",
        "❌ 渲染失败{detail}。项目没有变化：可以再试一次 /export，或先修改一下。",
    ),
    "reason_timeout": ("it took too long on the server", "服务器上耗时过长"),
    "reason_memory": ("the render server ran out of memory", "渲染服务器内存不足"),
    "reason_format": (
        "a file in the project has a format the renderer can't read",
        "项目中有文件的格式无法渲染",
    ),
    "reason_missing": ("a file in the project could not be loaded", "项目中有素材无法加载"),
    "reason_crash": ("the render worker stopped unexpectedly", "渲染进程意外停止"),
    "upload_ask": (
        "Send me the file here (photo, video or audio), or paste a link to it.\n"
        "Accepted: {formats}. Limits: images {image_mb} MB, videos {video_mb} MB, "
        "audio {audio_mb} MB.",
        "直接把文件（照片、视频或音频）发到这里，或者贴一个链接。\n"
        "支持：{formats}。大小上限：图片 {image_mb} MB，视频 {video_mb} MB，音频 {audio_mb} MB。",
    ),
    "upload_received": ("📥 Got {count}:\n{lines}", "📥 收到 {count}：\n{lines}"),
    "files_count_one": ("1 file", "1 个文件"),
    "files_count_many": ("{n} files", "{n} 个文件"),
    "file_line": ("• {name}: {kind}{details}", "• {name}：{kind}{details}"),
    "kind_image": ("image", "图片"),
    "kind_video": ("video", "视频"),
    "kind_audio": ("audio", "音频"),
    "kind_other": ("file", "文件"),
    "next_image": (
        "Next, try “animate this photo” or “make a 10-second video from it”.",
        "接下来试试“让这张照片动起来”或“用它做一个10秒的视频”。",
    ),
    "next_video": (
        "Next, try “add background music”, “add a title” or “cut it to 15 seconds”.",
        "接下来试试“加背景音乐”“加个标题”或“剪到15秒”。",
    ),
    "next_audio": (
        "Next, try “use this as background music”.",
        "接下来试试“用它做背景音乐”。",
    ),
    "file_rejected_type": (
        "⚠️ {name}: I can't use this type of file. Accepted: {formats}.",
        "⚠️ {name}：不支持这种文件类型。支持：{formats}。",
    ),
    "file_rejected_content": (
        "⚠️ {name}: this file is empty or not what its name says, so I did not upload it. "
        "Accepted: {formats}.",
        "⚠️ {name}：文件是空的，或内容与文件名不符，没有上传。支持：{formats}。",
    ),
    "file_unreadable": (
        "⚠️ {name}: I could not fetch this file from Telegram. Please send it again.",
        "⚠️ {name}：无法从 Telegram 获取这个文件，请重新发送。",
    ),
    "file_rejected_size": (
        "⚠️ {name} is {size}; the limit for {kind} files is {limit}. "
        "Try compressing or trimming it.",
        "⚠️ {name} 大小为 {size}，{kind}文件上限是 {limit}。可以先压缩或剪短。",
    ),
    # --- the agent's stream -------------------------------------------------------------
    "still_working": ("⏳ Still working… ({elapsed})", "⏳ 仍在处理…（{elapsed}）"),
    "progress_done": ("✓ Done", "✓ 完成"),
    "tool_video": ("🎬 Generating video…", "🎬 正在生成视频…"),
    "tool_image": ("🖼 Generating image…", "🖼 正在生成图片…"),
    "tool_audio": ("🎵 Working on the music…", "🎵 正在处理音乐…"),
    "tool_text": ("🔤 Adding text…", "🔤 正在添加文字…"),
    "tool_edit": ("✂️ Editing the timeline…", "✂️ 正在编辑时间线…"),
    "tool_analyze": ("🔍 Looking at your media…", "🔍 正在分析你的素材…"),
    "tool_other": ("⚙️ Working…", "⚙️ 处理中…"),
    "changes": ("✅ Done. What changed:\n{changes}", "✅ 完成。变化如下：\n{changes}"),
    "no_changes": (
        "The agent finished without changing the timeline.",
        "智能体已完成，但时间线没有变化。",
    ),
    "gui_export": (
        "👉 Tap 🎬 Export below when you're ready and I'll render it here.",
        "👉 准备好了就点下面的“🎬 导出”，我会在这里渲染。",
    ),
    "gui_export_terminal": (
        "👉 Type /export when you're ready and I'll render it here.",
        "👉 准备好了就输入 /export，我会在这里渲染。",
    ),
    "gui_status": ("📋 The timeline now:\n{summary}", "📋 当前时间线：\n{summary}"),
    "auto_export": ("🎬 Exporting as you asked…", "🎬 按你的要求开始导出…"),
    # --- errors -------------------------------------------------------------------------
    "session_restarted": (
        "ℹ️ Your previous project had expired on the server, so I started a new one.",
        "ℹ️ 你之前的项目在服务器上已过期，我已为你新建了一个项目。",
    ),
    "err_token": (
        "🔑 My access to the video service was refused and could not be renewed. "
        "Please try again in a minute.",
        "🔑 视频服务拒绝了访问，且无法自动续期。请一分钟后再试。",
    ),
    "err_token_operator": (
        "🔑 The video service rejected this bot's access token. Please tell the bot's operator.",
        "🔑 视频服务拒绝了本机器人的访问令牌。请联系机器人的管理员。",
    ),
    "err_credits_anonymous": (
        "💳 You're out of free credits. Register for free to get more and keep this project:",
        "💳 免费积分用完了。免费注册即可获得更多积分，并保留这个项目：",
    ),
    "err_credits_registered": (
        "💳 You're out of credits. Top up your NemoVideo account to keep going:",
        "💳 积分用完了。请为你的 NemoVideo 账户充值后继续：",
    ),
    "err_unsupported": (
        "⚠️ I can't use that type of file. Accepted: {formats}.",
        "⚠️ 不支持这种文件类型。支持：{formats}。",
    ),
    "err_too_large": (
        "⚠️ That file is too large ({size}; the limit is {limit}). Try compressing or trimming it.",
        "⚠️ 文件太大（{size}，上限 {limit}）。可以先压缩或剪短。",
    ),
    "err_export_blocked": (
        "🔒 Exporting isn't available on this account's plan. It's not about credits: "
        "register or upgrade on nemovideo.com to export.",
        "🔒 当前账户的套餐不支持导出。这与积分无关：请在 nemovideo.com 注册或升级后再导出。",
    ),
    "err_rate_limited": (
        "🐢 The video service is busy. Please try again in {seconds} s.",
        "🐢 视频服务正忙，请 {seconds} 秒后再试。",
    ),
    "err_unavailable": (
        "📡 The video service can't be reached right now. Please try again in a few minutes.",
        "📡 暂时连不上视频服务，请过几分钟再试。",
    ),
    "err_stream_cut": (
        "📡 The agent's answer was cut off before it finished. I did not resend your "
        "message; here is what changed in your project:\n{changes}",
        "📡 智能体的回答在完成前被截断了。我没有重发你的消息；你的项目变化如下：\n{changes}",
    ),
    "err_stream_cut_unchanged": (
        "📡 The agent's answer was cut off before it finished, and your project did not "
        "change. I did not resend your message; send it again if needed.",
        "📡 智能体的回答在完成前被截断了，你的项目没有变化。"
        "我没有重发你的消息；需要的话请再发一次。",
    ),
    "err_stream_broken": (
        "📡 The connection to the agent broke mid-answer. I did not resend your message; "
        "here is your project now:\n{summary}",
        "📡 与智能体的连接中断了。我没有重发你的消息；你的项目现在是这样：\n{summary}",
    ),
    "err_protocol": (
        "🤔 The video service sent an answer I couldn't read. Please try again. (ref {ref})",
        "🤔 视频服务返回了无法识别的内容，请再试一次。（编号 {ref}）",
    ),
    "err_model": (
        "⚠️ The agent ran into a problem ({code}). Please try again or rephrase.",
        "⚠️ 智能体出了点问题（{code}）。请再试一次或换个说法。",
    ),
    "err_crash": (
        "⚠️ The agent stopped unexpectedly. Your project is safe; please try again.",
        "⚠️ 智能体意外中断。你的项目没有丢失，请再试一次。",
    ),
    "err_store": (
        "🧠 I can't reach my memory right now, so I can't work on your project. "
        "Please try again in a minute (reference {ref}).",
        "🧠 我暂时无法访问记忆存储，没法处理你的项目。请一分钟后再试（编号 {ref}）。",
    ),
    "err_unknown": (
        "😵 Sorry, something went wrong on my side. If it keeps happening, "
        "mention reference {ref}.",
        "😵 抱歉，我这边出了点问题。如果反复出现，请提供编号 {ref}。",
    ),
    # --- buttons ------------------------------------------------------------------------
    "btn_export": ("🎬 Export", "🎬 导出"),
    "btn_status": ("📋 Status", "📋 查看"),
    "btn_credits": ("💳 Credits", "💳 积分"),
    "btn_new": ("🆕 New project", "🆕 新项目"),
    "btn_register": ("Register for free", "免费注册"),
    "btn_topup": ("Top up", "充值"),
    # --- the terminal chat --------------------------------------------------------------
    "term_banner": (
        "nemobot chat: type a message and press Enter. /upload PATH… attaches files, "
        "/help lists commands, Ctrl-C stops an answer, /quit or Ctrl-D leaves.",
        "nemobot 终端聊天：输入消息后回车。/upload 路径… 上传文件，/help 查看命令，"
        "Ctrl-C 停止回答，/quit 或 Ctrl-D 退出。",
    ),
    "term_help": (
        "Tell me what video you want; your files go along with /upload.\n"
        "/upload PATH… [message] – send files (or a link), with words for the agent\n"
        "/export – render the video and save it on this computer\n"
        "/status – what is on the timeline\n"
        "/credits – your credits\n"
        "/new – start a new project\n"
        "/cancel – stop what I am doing\n"
        "/lang en|zh|zh-hant|auto – reply language\n"
        "/quit – leave (Ctrl-D too); Ctrl-C stops an answer or clears the line",
        "告诉我你想要什么样的视频；文件用 /upload 发送。\n"
        "/upload 路径… [消息] – 发送文件（或链接），可附上给智能体的话\n"
        "/export – 渲染视频并保存到本机\n"
        "/status – 查看时间线上的内容\n"
        "/credits – 查看积分\n"
        "/new – 新建项目\n"
        "/cancel – 停止当前任务\n"
        "/lang en|zh|zh-hant|auto – 回复语言\n"
        "/quit – 退出（也可按 Ctrl-D）；Ctrl-C 停止回答或清空输入行",
    ),
    "term_unknown_command": (
        "Unknown command {command}; /help lists the commands.",
        "未知命令 {command}；/help 查看所有命令。",
    ),
    "term_again_to_quit": (
        "(Ctrl-C again, /quit or Ctrl-D leaves.)",
        "（再按一次 Ctrl-C、输入 /quit 或按 Ctrl-D 退出。）",
    ),
    "term_goodbye": (
        "👋 Bye. Your project is kept; start nemobot again to go on.",
        "👋 再见。你的项目已保存，再次启动 nemobot 即可继续。",
    ),
    "term_goodbye_offline": ("👋 Bye.", "👋 再见。"),
    "term_goodbye_export": (
        "👋 Bye. Your export goes on rendering; start nemobot again to get the video.",
        "👋 再见。导出仍在渲染；再次启动 nemobot 即可拿到视频。",
    ),
    "term_gui_export": (
        "👉 Type /export when you're ready and I'll render it here.",
        "👉 准备好了就输入 /export，我会在这里渲染。",
    ),
    "term_offline_video": (
        "ℹ️ Offline: the built-in simulator's video is always a 1-second placeholder, "
        "whatever the timeline says.",
        "ℹ️ 离线模式：内置模拟器的视频总是一段 1 秒的占位视频，与时间线内容无关。",
    ),
    "term_offline": (
        "Offline mode: using the built-in simulator at {url}.",
        "离线模式：使用内置模拟器 {url}。",
    ),
    "term_unreachable": (
        "Cannot reach the NemoVideo API at {url} ({reason}). "
        "To use the built-in simulator instead: `nemobot chat --offline`, "
        'or `make run ARGS="chat --offline"` from the source folder.',
        "无法连接 NemoVideo API {url}（{reason}）。改用内置模拟器：`nemobot chat --offline`，"
        '或在源码目录中运行 `make run ARGS="chat --offline"`。',
    ),
    "term_saved": ("🎬 Video saved: {path}", "🎬 视频已保存：{path}"),
    "term_save_failed": (
        "Could not download the video ({reason}). Its address: {url}",
        "视频下载失败（{reason}）。地址：{url}",
    ),
    "term_no_file": ("No such file: {path}", "文件不存在：{path}"),
    "term_upload_usage": (
        "Usage: /upload PATH [PATH…] [message]",
        "用法：/upload 路径 [路径…] [消息]",
    ),
    # --- Telegram only -----------------------------------------------------------------
    "open_video": ("▶️ Open the video", "▶️ 打开视频"),
    "video_link": (
        "Your video is ready, but I couldn't send the file here, so here is its link.",
        "视频做好了，但文件无法在这里发送，请用链接打开。",
    ),
    "video_unreachable": (
        "⚠️ Your video is ready, but its address is not one I may open or show, so I cannot "
        "send it here. Try /export again, or ask the operator.",
        "⚠️ 视频做好了，但它的地址不是我可以打开或展示的，所以无法在这里发送。"
        "请重试 /export，或联系管理员。",
    ),
    "timeline_caption": (
        "🖼 Canvas {width}×{height} ({aspect}) · {duration}",
        "🖼 画布 {width}×{height}（{aspect}）· {duration}",
    ),
    "timeline_caption_plain": ("🖼 Length {duration}", "🖼 时长 {duration}"),
    "tl_heading": ("Timeline · {tracks}", "时间线 · {tracks}"),
    "tl_tracks_one": ("1 track", "1 条轨道"),
    "tl_tracks_many": ("{n} tracks", "{n} 条轨道"),
    "tl_video": ("Video", "视频"),
    "tl_audio": ("Audio", "音频"),
    "tl_text": ("Text", "文字"),
    "tl_other": ("Other", "其他"),
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


# Where the converted Simplified text is not what a Traditional reader expects (the
# conversion was read through once, text by text).
_HANT_OVERRIDES: Final = {"lang_set": "語言已設為繁體中文。"}
_HANT_FIXES: Final = (
    ("併發到", "並發到"),
    ("型別", "類型"),
    ("賬戶", "帳戶"),
    ("訪問令牌", "存取權杖"),
    ("訪問", "存取"),
)

_S2TWP = opencc.OpenCC("s2twp")
_T2S = opencc.OpenCC("t2s")
_S2T = opencc.OpenCC("s2t")
_TAIWAN_QUOTES = str.maketrans({"“": "「", "”": "」", "‘": "『", "’": "』"})
_TRADITIONAL_CODES = re.compile(r"hant|tw|hk|mo", re.IGNORECASE)


def normalize_lang(lang: str | None) -> str:
    """`zh-Hant`, `zh-TW`, `zh-HK` are Traditional Chinese, other `zh*` Simplified, anything
    else English: the languages the bot speaks."""
    if not lang or not lang.lower().startswith("zh"):
        return "en"
    return "zh-hant" if _TRADITIONAL_CODES.search(lang) else "zh"


def base_lang(lang: str | None) -> str:
    """`en` or `zh`: the language of texts made elsewhere, before `localize`."""
    return "en" if normalize_lang(lang) == "en" else "zh"


def script_lang(text: str, neutral: str = "zh") -> str:
    """`zh-hant` when a Chinese text is written mostly in Traditional characters, `zh` when
    mostly in Simplified ones, else (你好 reads the same in both) `neutral`."""
    traditional = sum(a != b for a, b in zip(text, _T2S.convert(text), strict=False))
    simplified = sum(a != b for a, b in zip(text, _S2T.convert(text), strict=False))
    if traditional == simplified:
        return neutral
    return "zh-hant" if traditional > simplified else "zh"


@functools.cache
def _hant(simplified: str) -> str:
    text: str = _S2TWP.convert(simplified).translate(_TAIWAN_QUOTES)
    for wrong, right in _HANT_FIXES:
        text = text.replace(wrong, right)
    return text


def localize(text: str, lang: str | None) -> str:
    """Chinese text made elsewhere (timeline summaries) in the reader's script."""
    return _hant(text) if normalize_lang(lang) == "zh-hant" else text


def t(key: str, lang: str | None, /, **values: object) -> str:
    """The text for `key` in `lang`, with its placeholders filled."""
    en, zh = TEXTS[key]
    code = normalize_lang(lang)
    if code == "en":
        template = en
    elif code == "zh":
        template = zh
    else:
        template = _HANT_OVERRIDES.get(key) or _hant(zh)
    return template.format(**values) if values else template


def fmt_elapsed(seconds: float) -> str:
    """`m:ss`, the way a progress line shows time."""
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def fmt_duration(seconds: float) -> str:
    """A media duration: `7.5 s` below a minute, `m:ss` above."""
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    return fmt_elapsed(seconds)


def fmt_span(seconds: float, lang: str) -> str:
    """A configured length of time, exactly as set: `15 min`, `1 min 30 s`, `0.8 s`."""
    minute, second = ("分钟", "秒") if lang == "zh" else (" min", " s")
    whole_minutes, rest = divmod(round(seconds, 1), 60)
    rest_text = f"{rest:.1f}".removesuffix(".0") + second
    if not whole_minutes:
        return rest_text
    minutes = f"{int(whole_minutes)}{minute}"
    return f"{minutes} {rest_text}" if rest else minutes


def fmt_size(size: int | None) -> str:
    """Bytes as people read them."""
    if size is None:
        return "?"
    if size >= MIB:
        return f"{size / MIB:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} B"


def progress_bar(percent: float, width: int = 12) -> str:
    """`▓▓▓▓▓░░░░░░░`: `percent` of `width` cells filled."""
    filled = round(width * min(max(percent, 0.0), 100.0) / 100)
    return "▓" * filled + "░" * (width - filled)
