"""Every text the bot shows to people, in English and Chinese, in one place.

Texts are Telegram HTML: values are escaped by `t()` unless their name ends in `_html`
(already-safe markup built by the caller). Chinese is used for `zh*` language codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.errors import FailureKind, FeedFailure
from bot.text import escape

TEXTS: dict[str, dict[str, str]] = {
    # --- /start, /help -----------------------------------------------------------------
    "help": {
        "en": (
            "<b>News Notifier</b> watches news feeds (RSS, Atom) and tells this chat about "
            "new stories, each with a short summary of its lead paragraph and, when the story "
            "has one, its picture.\n\n"
            "<b>Feeds</b>\n"
            "/subscribe <code>URL</code> — follow a feed, e.g. "
            "<code>/subscribe https://feeds.bbci.co.uk/news/rss.xml</code>; a site's address "
            "works too (its feed is found)\n"
            "/unsubscribe <code>URL or NUMBER</code> — stop following one (no argument: buttons)\n"
            "/list — this chat's feeds, numbered\n"
            "/mode <code>NUMBER instant|digest</code> — alerts as they come, or digest only\n\n"
            "<b>Keywords</b>\n"
            "/keywords — show the filter\n"
            "/keywords add <code>WORD...</code> — only stories with these words alert "
            '(spaces or commas between them); <code>-WORD</code> excludes, <code>"two words"</code> '
            "is a phrase\n"
            "/keywords remove <code>WORD...</code>, /keywords clear\n\n"
            "<b>Digest</b>\n"
            "/digest — the last 24 hours now\n"
            "/digest at <code>HH:MM [Area/City]</code> — every day, e.g. "
            "<code>/digest at 08:00 Europe/Berlin</code>\n"
            "/digest off — stop the daily digest\n\n"
            "/settings — buttons for this chat's pictures, link previews, silent alerts (and "
            "digests), language and digest time\n"
            "/export, /import — your feeds as an OPML file\n\n"
            "<b>Channels and groups</b>\n"
            "Manage one from here by naming it first: its @username or its id, e.g. "
            "<code>/subscribe @mychannel URL</code>, <code>/list @mychannel</code>, "
            "<code>/settings -1001234567890</code>; <code>/import @mychannel</code> as the "
            "file's caption. You must administer it, and I must be able to post there."
        ),
        "zh": (
            "<b>新闻提醒机器人</b>关注新闻订阅源（RSS、Atom），有新报道时通知本聊天，"
            "并附上导语段落的简短摘要；报道带图片时也附上图片。\n\n"
            "<b>订阅源</b>\n"
            "/subscribe <code>网址</code> — 订阅，例如 "
            "<code>/subscribe https://feeds.bbci.co.uk/zhongwen/simp/rss.xml</code>；"
            "也可以发网站地址（会自动找到它的订阅源）\n"
            "/unsubscribe <code>网址或编号</code> — 取消订阅（不带参数时显示按钮）\n"
            "/list — 本聊天的订阅列表（带编号）\n"
            "/mode <code>编号 instant|digest</code> — 即时提醒，或只进每日摘要\n\n"
            "<b>关键词</b>\n"
            "/keywords — 查看过滤条件\n"
            "/keywords add <code>词...</code> — 只提醒含这些词的报道（词之间用空格或逗号分隔）；"
            '<code>-词</code> 表示排除，<code>"两个 词"</code> 表示短语\n'
            "/keywords remove <code>词...</code>，/keywords clear\n\n"
            "<b>每日摘要</b>\n"
            "/digest — 立即发送过去 24 小时的摘要\n"
            "/digest at <code>HH:MM [地区/城市]</code> — 每天定时发送，例如 "
            "<code>/digest at 08:00 Asia/Shanghai</code>\n"
            "/digest off — 停止每日摘要\n\n"
            "/settings — 用按钮设置本聊天的图片、链接预览、静音提醒（含摘要）、语言和摘要时间\n"
            "/export、/import — 以 OPML 文件导出、导入订阅\n\n"
            "<b>频道和群组</b>\n"
            "在命令后先写上频道或群组的 @用户名 或数字 ID，就能在这里管理它，例如 "
            "<code>/subscribe @mychannel 网址</code>、<code>/list @mychannel</code>、"
            "<code>/settings -1001234567890</code>；导入时文件的说明文字写 "
            "<code>/import @mychannel</code>。你必须是它的管理员，而且我必须能在那里发消息。"
        ),
    },
    "start.resumed": {
        "en": "Welcome back: this chat's {count} subscription(s) are active again.",
        "zh": "欢迎回来：本聊天的 {count} 个订阅已恢复。",
    },
    # --- permissions -----------------------------------------------------------------
    "auth.not_admin": {
        "en": "Sorry, only this chat's administrators can change its settings. "
        "Anyone can use /list, /keywords and /digest.",
        "zh": "抱歉，只有本群管理员可以修改设置。所有人都可以使用 /list、/keywords 和 /digest。",
    },
    "auth.not_allowed": {
        "en": "Sorry, this bot is private: its operator has not allowed your account.",
        "zh": "抱歉，这是私人机器人：运营者没有允许你的账号使用。",
    },
    "auth.operators_only": {
        "en": "This command is for the bot's operators only.",
        "zh": "此命令仅供机器人运营者使用。",
    },
    # --- a command aimed at another chat (bot/telegram/targets.py) ------------------------
    "target.header": {"en": "For <b>{name}</b>:", "zh": "针对<b>{name}</b>："},
    "target.anonymous": {
        "en": "A command that names another chat (<code>{target}</code>) must show who sends "
        "it, so that I can check that you administer that chat. Send it from your private "
        "chat with me.",
        "zh": "指定其他聊天（<code>{target}</code>）的命令需要知道是谁发送的，以确认你是该聊天的"
        "管理员。请在与我的私聊中发送。",
    },
    "target.not_found": {
        "en": "I can't find the group or channel <code>{target}</code>. Give its @username or "
        "its numeric id (such as <code>-1001234567890</code>); a private one must have me "
        "as a member first.",
        "zh": "找不到群组或频道 <code>{target}</code>。请给出它的 @用户名 或数字 ID（例如 "
        "<code>-1001234567890</code>）；私有的群组或频道需要先把我加进去。",
    },
    "target.not_admin": {
        "en": "You are not an administrator of {chat}, so you cannot manage it from here. "
        "One of its administrators can, or can make you one.",
        "zh": "你不是{chat}的管理员，不能在这里管理它。它的管理员可以管理，或把你设为管理员。",
    },
    "target.bot_missing": {
        "en": "I cannot post in {chat}. Add me (@{bot}) there: to a channel as an "
        "administrator allowed to post messages, to a group as a member allowed to send "
        "messages. Then send the command again.",
        "zh": "我无法在{chat}发消息。请把我（@{bot}）加进去：在频道中设为有“发布消息”权限的"
        "管理员，在群组中设为可以发消息的成员。然后重新发送命令。",
    },
    # --- /settings (bot/telegram/settings.py) ---------------------------------------------
    "settings.menu": {
        "en": "<b>Settings</b>\n"
        "🖼 Pictures: {pictures_html}\n"
        "🔗 Link previews: {previews_html}\n"
        "🔕 Silent alerts and digests: {silent_html}\n"
        "🌐 Language: {language_html}\n"
        "🗞 Daily digest: {digest_html}\n\n"
        "Press a button to change one. Another digest time or zone: "
        "<code>/digest at HH:MM Area/City</code>, e.g. <code>/digest at 07:30 Europe/Berlin</code>.",
        "zh": "<b>设置</b>\n"
        "🖼 图片：{pictures_html}\n"
        "🔗 链接预览：{previews_html}\n"
        "🔕 静音提醒和摘要：{silent_html}\n"
        "🌐 语言：{language_html}\n"
        "🗞 每日摘要：{digest_html}\n\n"
        "按下按钮即可修改。其他摘要时间或时区：<code>/digest at HH:MM 地区/城市</code>，"
        "例如 <code>/digest at 07:30 Asia/Shanghai</code>。",
    },
    "settings.on": {"en": "on", "zh": "开"},
    "settings.off": {"en": "off", "zh": "关"},
    "settings.language_auto": {"en": "automatic ({name})", "zh": "自动（{name}）"},
    "settings.language.en": {"en": "English", "zh": "English"},
    "settings.language.zh": {"en": "中文", "zh": "中文"},
    "settings.digest_at": {"en": "every day at {time} ({zone})", "zh": "每天 {time}（{zone}）"},
    "settings.digest_off": {
        "en": "off (the times below are in {zone})",
        "zh": "关（下面的时间为 {zone} 时间）",
    },
    "settings.pictures_on": {"en": "🖼 Turn pictures on", "zh": "🖼 开启图片"},
    "settings.pictures_off": {"en": "🖼 Turn pictures off", "zh": "🖼 关闭图片"},
    "settings.link_preview_on": {"en": "🔗 Show link previews", "zh": "🔗 显示链接预览"},
    "settings.link_preview_off": {"en": "🔗 Hide link previews", "zh": "🔗 隐藏链接预览"},
    "settings.silent_on": {"en": "🔕 Make them silent", "zh": "🔕 静音"},
    "settings.silent_off": {"en": "🔔 With sound again", "zh": "🔔 恢复提示音"},
    "settings.automatic": {"en": "Automatic", "zh": "自动"},
    "settings.no_digest": {"en": "No digest", "zh": "不发摘要"},
    # --- /subscribe ------------------------------------------------------------------
    "subscribe.usage": {
        "en": "Send the feed's address after the command, for example:\n"
        "<code>/subscribe https://example.com/feed.xml</code>",
        "zh": "请在命令后附上订阅源地址，例如：\n<code>/subscribe https://example.com/feed.xml</code>",
    },
    "subscribe.done": {
        "en": "Subscribed to <b>{title}</b>. New stories will arrive here; "
        "the {count} already in the feed are not sent.",
        "zh": "已订阅<b>{title}</b>。之后的新报道会发到这里；订阅源中已有的 {count} 篇不会发送。",
    },
    "subscribe.already": {
        "en": "This chat is already subscribed to <b>{title}</b>.",
        "zh": "本聊天已经订阅了<b>{title}</b>。",
    },
    # --- /subscribe with a web page's address (bot/feeds/discover.py) ----------------------
    "subscribe.found": {
        "en": "Found the feed of that page: <b>{title}</b>\n{url}\nSubscribed. New stories will "
        "arrive here; the {count} already in the feed are not sent.",
        "zh": "找到了该网页的订阅源：<b>{title}</b>\n{url}\n已订阅。之后的新报道会发到这里；"
        "订阅源中已有的 {count} 篇不会发送。",
    },
    "subscribe.found_already": {
        "en": "The feed of that page is <b>{title}</b>\n{url}\nThis chat is already subscribed to it.",
        "zh": "该网页的订阅源是<b>{title}</b>\n{url}\n本聊天已经订阅了它。",
    },
    "discover.choose": {
        "en": "That page leads to {count} feeds. Which one should this chat follow?",
        "zh": "该网页有 {count} 个订阅源。本聊天要订阅哪一个？",
    },
    "discover.option": {
        "en": "{number}. <b>{title}</b>\n{url}",
        "zh": "{number}. <b>{title}</b>\n{url}",
    },
    "discover.expired": {
        "en": "These buttons have expired. Send /subscribe with the page's address again.",
        "zh": "这些按钮已过期。请重新发送 /subscribe 和网页地址。",
    },
    "discover.link_failed": {
        "en": "That page names its feed at <code>{url}</code>. {reason_html}",
        "zh": "该网页指明的订阅源地址是 <code>{url}</code>。{reason_html}",
    },
    "preview.choose": {
        "en": "{page} leads to {count} feeds. Preview one of them:\n{commands_html}",
        "zh": "{page} 有 {count} 个订阅源。请预览其中一个：\n{commands_html}",
    },
    "subscribe.too_many": {
        "en": "This chat has {limit} subscriptions, the most allowed. Remove one with /unsubscribe first.",
        "zh": "本聊天已有 {limit} 个订阅，已达上限。请先用 /unsubscribe 取消一个。",
    },
    # --- /unsubscribe, /list, /mode --------------------------------------------------
    "list.empty": {
        "en": "This chat has no subscriptions yet. Add one with <code>/subscribe URL</code>.",
        "zh": "本聊天还没有订阅。用 <code>/subscribe 网址</code> 添加一个。",
    },
    "list.header": {"en": "<b>Subscriptions</b> ({count})", "zh": "<b>订阅列表</b>（{count}）"},
    "list.item": {
        "en": "{number}. <b>{title}</b> — {mode}\n{url}",
        "zh": "{number}. <b>{title}</b> — {mode}\n{url}",
    },
    "list.failing": {
        "en": "   ⚠️ failing: {error} ({failures} {failures:check|checks} in a row)",
        "zh": "   ⚠️ 获取失败：{error}（连续 {failures} 次）",
    },
    "list.paused": {
        "en": "   ⏸ paused after failing for days: {error}",
        "zh": "   ⏸ 连续多日失败，已暂停：{error}",
    },
    "list.gone": {"en": "   ⛔ gone (HTTP 410)", "zh": "   ⛔ 已失效（HTTP 410）"},
    "mode.instant": {"en": "instant", "zh": "即时"},
    "mode.digest": {"en": "digest only", "zh": "仅摘要"},
    "unsubscribe.usage": {
        "en": "Send the feed's number from /list or its address, for example "
        "<code>/unsubscribe 2</code>.",
        "zh": "请发送 /list 中的编号或订阅源地址，例如 <code>/unsubscribe 2</code>。",
    },
    "unsubscribe.choose": {
        "en": "Which feed should this chat stop following?",
        "zh": "要取消哪个订阅？",
    },
    "preview.empty": {
        "en": "<code>{given}</code> holds no stories to show: an empty feed, or not a feed.",
        "zh": "<code>{given}</code> 中没有可显示的新闻：订阅源是空的，或不是订阅源。",
    },
    "preview.no_file": {
        "en": "There is no file <code>{given}</code>. Give a feed file that exists, or an "
        "address starting with http:// or https://.",
        "zh": "没有文件 <code>{given}</code>。请给出存在的订阅源文件，或以 http:// 或 https:// "
        "开头的地址。",
    },
    "unsubscribe.more": {
        "en": "The first {shown} of {count} are shown; for the others use "
        "<code>/unsubscribe NUMBER</code> (numbers as in /list).",
        "zh": "这里只列出前 {shown} 个（共 {count} 个）；其余的请用 "
        "<code>/unsubscribe 编号</code>（编号见 /list）。",
    },
    "unsubscribe.done": {
        "en": "Unsubscribed from <b>{title}</b>.",
        "zh": "已取消订阅<b>{title}</b>。",
    },
    "unsubscribe.cancel": {"en": "Cancel", "zh": "取消"},
    "unsubscribe.cancelled": {"en": "Nothing changed.", "zh": "没有改动。"},
    "sub.unknown_number": {
        "en": "There is no subscription number {given}: this chat has {count}. See /list.",
        "zh": "没有编号为 {given} 的订阅：本聊天共有 {count} 个。请查看 /list。",
    },
    "sub.unknown_url": {
        "en": "This chat is not subscribed to {given}. See /list.",
        "zh": "本聊天没有订阅 {given}。请查看 /list。",
    },
    "mode.usage": {
        "en": "Send a number from /list and a mode, for example <code>/mode 2 digest</code> "
        "(instant: alerts as they come; digest: only in the daily digest).",
        "zh": "请发送 /list 中的编号和模式，例如 <code>/mode 2 digest</code>"
        "（instant：即时提醒；digest：只进每日摘要）。",
    },
    "mode.done": {"en": "<b>{title}</b>: {mode}.", "zh": "<b>{title}</b>：{mode}。"},
    # --- /keywords -------------------------------------------------------------------
    "keywords.none": {
        "en": "No keyword filter: every new story alerts this chat.\n"
        "Add some with <code>/keywords add WORD...</code> (<code>-WORD</code> excludes, "
        '<code>"two words"</code> is a phrase).',
        "zh": "没有关键词过滤：每篇新报道都会提醒。\n用 <code>/keywords add 词...</code> 添加"
        '（<code>-词</code> 表示排除，<code>"两个 词"</code> 表示短语）。',
    },
    "keywords.show": {
        "en": "<b>Keyword filter</b>\nAlert only on: {includes}\nNever alert on: {excludes}",
        "zh": "<b>关键词过滤</b>\n只提醒包含：{includes}\n从不提醒包含：{excludes}",
    },
    "keywords.any": {"en": "(any story)", "zh": "（所有报道）"},
    "keywords.nothing": {"en": "(nothing)", "zh": "（无）"},
    "keywords.usage": {
        "en": "Use <code>/keywords</code>, <code>/keywords add WORD...</code>, "
        "<code>/keywords remove WORD...</code> or <code>/keywords clear</code>.",
        "zh": "用法：<code>/keywords</code>、<code>/keywords add 词...</code>、"
        "<code>/keywords remove 词...</code> 或 <code>/keywords clear</code>。",
    },
    "keywords.added": {"en": "Added: {added}", "zh": "已添加：{added}"},
    "keywords.already": {
        "en": "Already in the filter: {already}",
        "zh": "已在过滤条件中：{already}",
    },
    "keywords.removed": {"en": "Removed: {removed}", "zh": "已删除：{removed}"},
    "keywords.not_found": {
        "en": "Not in the filter: {missing}",
        "zh": "过滤条件中没有：{missing}",
    },
    "keywords.cleared": {
        "en": "Keyword filter cleared: every new story alerts this chat again.",
        "zh": "已清除关键词过滤：每篇新报道都会再次提醒。",
    },
    "keywords.too_many": {
        "en": "A chat can have at most {limit} keywords. Remove some first.",
        "zh": "每个聊天最多 {limit} 个关键词，请先删除一些。",
    },
    "keywords.too_long": {
        "en": "Keywords can be at most {limit} characters long: {keyword}",
        "zh": "关键词最长 {limit} 个字符：{keyword}",
    },
    "keywords.empty": {
        "en": 'Give at least one word, for example <code>/keywords add climate "central bank"</code>.',
        "zh": '请至少给出一个词，例如 <code>/keywords add 气候 "央行 利率"</code>。',
    },
    "keywords.unbalanced_quote": {
        "en": "A quotation mark is not closed. Put phrases in pairs of quotes: "
        '<code>"two words"</code>.',
        "zh": '引号没有闭合。短语请用成对的引号：<code>"两个 词"</code>。',
    },
    # --- /digest ---------------------------------------------------------------------
    "digest.usage": {
        "en": "Use <code>/digest</code> (now), <code>/digest at HH:MM [Area/City]</code> "
        "(every day, e.g. <code>/digest at 08:00 Europe/Berlin</code>) or "
        "<code>/digest off</code>.",
        "zh": "用法：<code>/digest</code>（立即）、<code>/digest at HH:MM [地区/城市]</code>"
        "（每天，例如 <code>/digest at 08:00 Asia/Shanghai</code>）或 <code>/digest off</code>。",
    },
    "digest.bad_time": {
        "en": "<code>{given}</code> is not a time of day. Use 24-hour HH:MM, "
        "for example <code>/digest at 07:30</code>.",
        "zh": "<code>{given}</code> 不是有效的时间。请用 24 小时制 HH:MM，例如 <code>/digest at 07:30</code>。",
    },
    "digest.bad_zone": {
        "en": "<code>{given}</code> is not a time zone I know. Use an Area/City name such as "
        "<code>Europe/Berlin</code>, <code>America/New_York</code> or <code>Asia/Shanghai</code>.",
        "zh": "不认识时区 <code>{given}</code>。请使用“地区/城市”格式，例如 "
        "<code>Asia/Shanghai</code>、<code>Europe/Berlin</code>。",
    },
    "digest.scheduled": {
        "en": "The daily digest will arrive every day at {time} ({zone}). Next: {next}.",
        "zh": "每日摘要将在每天 {time}（{zone}）发送。下一次：{next}。",
    },
    "digest.off": {"en": "The daily digest is off.", "zh": "已关闭每日摘要。"},
    "digest.queued": {
        "en": "The digest of the last 24 hours is on its way there.",
        "zh": "过去 24 小时的摘要正在发往那里。",
    },
    "digest.was_off": {
        "en": "The daily digest was not on. Turn it on with <code>/digest at HH:MM</code>.",
        "zh": "每日摘要本来就没有开启。用 <code>/digest at HH:MM</code> 开启。",
    },
    "digest.no_subscriptions": {
        "en": "This chat has no subscriptions yet, so there is nothing to digest. "
        "Add one with <code>/subscribe URL</code>.",
        "zh": "本聊天还没有订阅，暂无摘要。用 <code>/subscribe 网址</code> 添加一个。",
    },
    # --- feed health notices ---------------------------------------------------------
    "notice.feed_paused": {
        "en": "⏸ <b>{title}</b> has failed for days ({error}), so checks are paused. "
        "This chat will be told if it recovers. {url}",
        "zh": "⏸ <b>{title}</b> 已连续多日获取失败（{error}），已暂停检查。恢复时会通知本聊天。{url}",
    },
    "notice.feed_gone": {
        "en": "⛔ <b>{title}</b> is gone for good (HTTP 410). Remove it with /unsubscribe. {url}",
        "zh": "⛔ <b>{title}</b> 已永久失效（HTTP 410），请用 /unsubscribe 取消订阅。{url}",
    },
    "notice.feed_recovered": {
        "en": "▶️ <b>{title}</b> answers again; new stories will arrive as before.",
        "zh": "▶️ <b>{title}</b> 已恢复，新报道会照常发送。",
    },
    # --- /export, /import (OPML) ---------------------------------------------------
    "export.caption": {
        "en": "This chat's {count} feed(s) as an OPML file. Any feed reader, or another chat "
        "with /import, can take them from it.",
        "zh": "本聊天的 {count} 个订阅源（OPML 文件）。任何阅读器或其他聊天都可以用 /import 导入。",
    },
    "import.usage": {
        "en": "Send an OPML file (exported from your feed reader) with the caption /import, "
        "or answer a message that has the file with /import.",
        "zh": "请发送 OPML 文件（从阅读器导出）并附上说明文字 /import，或回复带有该文件的消息并发送 /import。",
    },
    "import.busy": {
        "en": "An import is already running in this chat; its summary will arrive here when it ends.",
        "zh": "本聊天已有一个导入正在进行，完成后会在这里发送汇总。",
    },
    "import.download_failed": {
        "en": "I could not download that file from Telegram. Please send it again.",
        "zh": "无法从 Telegram 下载该文件，请重新发送。",
    },
    "import.progress": {
        "en": "Importing {total} feed(s): checked {done} of {total}…",
        "zh": "正在导入 {total} 个订阅源：已检查 {done}/{total}…",
    },
    "import.progress_done": {
        "en": "Import: checked {done} of {total} feed(s).",
        "zh": "导入：已检查 {done}/{total} 个订阅源。",
    },
    "import.interrupted": {
        "en": "⏹ This import of {total} feed(s) stopped: the bot was restarted before it "
        "finished. To finish it, send the same file again with /import: the feeds it already "
        "added are skipped.",
        "zh": "⏹ 这次导入（共 {total} 个订阅源）已中断：机器人在完成前重新启动了。"
        "要完成导入，请用 /import 重新发送同一个文件，已添加的订阅源会被跳过。",
    },
    "import.summary": {
        "en": "<b>Import finished</b>: {total} feed(s) in the file\n"
        "✅ added: {added}\n➖ already subscribed: {already}\n❌ failed: {failed}",
        "zh": "<b>导入完成</b>：文件中有 {total} 个订阅源\n"
        "✅ 新增：{added}\n➖ 已订阅：{already}\n❌ 失败：{failed}",
    },
    "import.failed_group": {"en": "<b>{reason}</b>: {count}", "zh": "<b>{reason}</b>：{count}"},
    "import.failed_example": {"en": "  • {url}", "zh": "  • {url}"},
    "import.failed_more": {"en": "  … and {count} more", "zh": "  …… 另有 {count} 个"},
    "import.failed_other": {
        "en": "… and {count} more failed for other reasons (see the log).",
        "zh": "…… 另有 {count} 个因其他原因失败（见日志）。",
    },
    "import.stopped": {
        "en": "⏸ The bot was stopping, so {count} feed(s) were not checked. Send the file again "
        "to finish: feeds already added are kept.",
        "zh": "⏸ 机器人正在停止，有 {count} 个订阅源未检查。请重新发送文件以完成导入，已添加的订阅会保留。",
    },
    "import.reason.subscribe.too_many": {
        "en": "this chat reached {limit} subscriptions",
        "zh": "本聊天已达 {limit} 个订阅的上限",
    },
    "import.reason.error.argument_too_long": {"en": "address too long", "zh": "地址太长"},
    "import.reason.error.internal": {
        "en": "internal error (logged for the operator)",
        "zh": "内部错误（已记录）",
    },
    "opml.too_large": {
        "en": "That file is too large ({size_kb} KB): an OPML file may have at most {limit_kb} KB.",
        "zh": "文件太大（{size_kb} KB）：OPML 文件最多 {limit_kb} KB。",
    },
    "opml.too_many": {
        "en": "That file lists {count} feeds; at most {limit} can be imported at once. "
        "Split it into smaller files.",
        "zh": "该文件列出了 {count} 个订阅源，一次最多导入 {limit} 个。请拆分成较小的文件。",
    },
    "opml.not_xml": {
        "en": "That file is not an OPML file: it is not even valid XML ({detail}). "
        "Export your feeds as OPML from your feed reader and send that file.",
        "zh": "该文件不是 OPML 文件：它不是有效的 XML（{detail}）。请从阅读器导出 OPML 文件后发送。",
    },
    "opml.not_opml": {
        "en": "That file is not an OPML file (it is <code>&lt;{root}&gt;</code>, not "
        "<code>&lt;opml&gt;</code>). Export your feeds as OPML from your feed reader and send that file.",
        "zh": "该文件不是 OPML 文件（根元素是 <code>&lt;{root}&gt;</code>，而不是 <code>&lt;opml&gt;</code>）。"
        "请从阅读器导出 OPML 文件后发送。",
    },
    "opml.is_a_feed": {
        "en": "That file is a news feed itself (<code>&lt;{root}&gt;</code>), not an OPML list of feeds. "
        "Subscribe to a feed with <code>/subscribe URL</code>.",
        "zh": "该文件本身是一个订阅源（<code>&lt;{root}&gt;</code>），而不是 OPML 订阅列表。"
        "订阅单个源请用 <code>/subscribe 网址</code>。",
    },
    "opml.doctype": {
        "en": "That file declares a DOCTYPE, which OPML files never need; it was refused for safety.",
        "zh": "该文件包含 DOCTYPE 声明，OPML 文件从不需要它；出于安全考虑已拒绝。",
    },
    "opml.no_feeds": {
        "en": "That OPML file lists no feeds (no outline with an <code>xmlUrl</code>).",
        "zh": "该 OPML 文件中没有订阅源（没有带 <code>xmlUrl</code> 的 outline）。",
    },
    # --- /stats (operators) ------------------------------------------------------------
    "stats.report": {
        "en": "<b>Bot stats</b>\n"
        "Chats: {chats_active} active, {chats_paused} paused\n"
        "Subscriptions (active chats): {subscriptions}\n"
        "Feeds: {feeds_healthy} healthy, {feeds_failing} failing, {feeds_paused} paused, "
        "{feeds_gone} gone\n"
        "Stories found today (UTC): {stories_today}\n"
        "Outbox: {outbox_pending} pending\n"
        "Messages sent in the last hour: {sent_last_hour}\n"
        "Flood waits (last {hours} h): {flood_waits}\n"
        "Send errors (last {hours} h): {errors}\n"
        "Updates dropped (a chat sending too fast, last {hours} h): {too_fast}\n"
        "Sends with no answer (last {hours} h): {unanswered}, "
        "{assumed_delivered} of them taken as delivered\n"
        "Database: {database_mb} MB ({database_kind})",
        "zh": "<b>机器人统计</b>\n"
        "聊天：{chats_active} 个活跃，{chats_paused} 个已暂停\n"
        "订阅（活跃聊天）：{subscriptions}\n"
        "订阅源：{feeds_healthy} 个正常，{feeds_failing} 个失败中，{feeds_paused} 个已暂停，"
        "{feeds_gone} 个已失效\n"
        "今日发现的报道（UTC）：{stories_today}\n"
        "待发送队列：{outbox_pending}\n"
        "过去一小时发送的消息：{sent_last_hour}\n"
        "限流等待（过去 {hours} 小时）：{flood_waits}\n"
        "发送错误（过去 {hours} 小时）：{errors}\n"
        "因聊天发送过快而丢弃的更新（过去 {hours} 小时）：{too_fast}\n"
        "未获应答的发送（过去 {hours} 小时）：{unanswered}，其中 {assumed_delivered} 条视为已送达\n"
        "数据库：{database_mb} MB（{database_kind}）",
    },
    # --- the digest (bot/digests/render.py) --------------------------------------------
    "digest.header": {
        "en": "<b>Daily digest</b> · {date} ({zone})",
        "zh": "<b>每日摘要</b> · {date}（{zone}）",
    },
    "digest.matches_heading": {
        "en": "<b>★ Matches your keywords</b>",
        "zh": "<b>★ 匹配你的关键词</b>",
    },
    "digest.more": {"en": "… and {count} more", "zh": "…… 还有 {count} 条"},
    "digest.empty": {
        "en": "No new stories in the last 24 hours.",
        "zh": "过去 24 小时没有新报道。",
    },
    "digest.continued": {"en": "(continued)", "zh": "（续）"},
    "stats.database.sqlite": {"en": "file + WAL", "zh": "文件 + WAL"},
    "stats.database.postgresql": {"en": "PostgreSQL", "zh": "PostgreSQL"},
    "stats.no_errors": {"en": "none", "zh": "无"},
    "stats.instances": {"en": "Instances: {count}", "zh": "实例：{count} 个"},
    "stats.instance": {
        "en": "• <code>{id}</code> ({host}, pid {pid}): {role}, last heartbeat {ago} s ago",
        "zh": "• <code>{id}</code>（{host}，pid {pid}）：{role}，上次心跳 {ago} 秒前",
    },
    "stats.role.none": {"en": "running", "zh": "运行中"},
    # --- generic ---------------------------------------------------------------------
    "error.internal": {
        "en": "Something went wrong on my side; nothing was changed. Please try again in a minute.",
        "zh": "机器人内部出错，没有做任何改动。请稍后再试。",
    },
    "error.database_unavailable": {
        "en": "My database cannot be reached right now; nothing was changed. Please try again in a minute.",
        "zh": "机器人的数据库暂时无法连接，没有做任何改动。请稍后再试。",
    },
    "error.argument_too_long": {
        "en": "That is too long ({length} characters). Please send something shorter.",
        "zh": "内容太长（{length} 个字符），请发送短一些的内容。",
    },
    "unknown_command": {
        "en": "I don't know that command. /help lists what I can do.",
        "zh": "我不认识这个命令。/help 列出了所有命令。",
    },
    # --- a chat sending faster than it can be answered (bot/telegram/ordering.py) ----------
    "flood.slow_down": {
        "en": "⏳ Slow down, please: I can answer at most {per_minute} commands a minute in this "
        "chat, so I skipped the ones that came faster. Send again what you still need, one at "
        "a time.",
        "zh": "⏳ 请慢一点：在本聊天中我每分钟最多回复 {per_minute} 条命令，发得更快的命令已跳过。"
        "还需要的命令请逐条重新发送。",
    },
    "flood.slow_down_button": {
        "en": "Too fast: wait a moment, then press again.",
        "zh": "太快了：请稍等片刻再按。",
    },
}

# Command menu registered with Telegram at start (setMyCommands), per language.
COMMANDS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("subscribe", "Follow a feed: /subscribe URL"),
        ("unsubscribe", "Stop following a feed"),
        ("list", "This chat's feeds"),
        ("mode", "Instant alerts or digest only: /mode N instant|digest"),
        ("keywords", "Keyword filter: add, remove, clear"),
        ("digest", "Digest now, or daily: /digest at HH:MM"),
        ("settings", "Pictures, link previews, silent alerts, language, digest time"),
        ("export", "Feeds as an OPML file"),
        ("import", "Subscribe to the feeds of an OPML file"),
        ("help", "What this bot does"),
    ],
    "zh": [
        ("subscribe", "订阅：/subscribe 网址"),
        ("unsubscribe", "取消订阅"),
        ("list", "本聊天的订阅"),
        ("mode", "即时提醒或仅摘要：/mode 编号 instant|digest"),
        ("keywords", "关键词过滤：add、remove、clear"),
        ("digest", "立即摘要，或每日：/digest at HH:MM"),
        ("settings", "图片、链接预览、静音提醒、语言、摘要时间"),
        ("export", "导出 OPML 文件"),
        ("import", "从 OPML 文件导入订阅"),
        ("help", "使用说明"),
    ],
}


def language_of(code: str | None) -> str:
    """Chinese for zh* language codes (zh, zh-hans, zh-TW…), English otherwise."""
    return "zh" if code and code.lower().startswith("zh") else "en"


def t(language: str, key: str, **values: Any) -> str:
    """The text `key` in `language`, with values escaped (names ending in _html are not).

    A template may pick a word by a number: `{count:story|stories}` is "story" when the
    value `count` is 1, "stories" otherwise.
    """
    text = template(language, key)
    if "|" in text:
        text = _PLURAL.sub(lambda m: m[2] if str(values.get(m[1])) == "1" else m[3], text)
    safe = {
        name: (value if name.endswith("_html") else escape(str(value)))
        for name, value in values.items()
    }
    return text.format(**safe)


def template(language: str, key: str) -> str:
    """The raw template `key` in `language` (English when it has none): for callers that
    fill it many times themselves (the digest renderer)."""
    variants = TEXTS[key]
    return variants.get(language) or variants["en"]


def _plain(language: str, key: str, **values: str) -> str:
    """A text meant as a value of another: not escaped here, t() escapes it there."""
    return template(language, key).format(**values)


_PLURAL = re.compile(r"\{(\w+):([^{}|]*)\|([^{}|]*)\}")


# --- why a feed failed ------------------------------------------------------------------
# One table for every FailureKind (bot/errors.py): `reason` is the short form (/list health
# lines, the paused notice, an import's failure groups), `reply` the sentence /subscribe
# answers with, which says what to do. {status}: the HTTP status; {given}: the address as
# typed; {limit_mb}: the size cap; {what}: what a document is instead of a feed; {name}: an
# exception's class name.


@dataclass(frozen=True, slots=True)
class FailureText:
    reason: str
    reply: str


FAILURES: dict[FailureKind, dict[str, FailureText]] = {
    FailureKind.INVALID_URL: {
        "en": FailureText(
            "not a web address",
            "That is not a web address I can use: <code>{given}</code>\n"
            "Send a full address starting with http:// or https://, for example "
            "<code>/subscribe https://example.com/feed.xml</code>",
        ),
        "zh": FailureText(
            "不是有效网址",
            "这不是可用的网址：<code>{given}</code>\n请发送以 http:// 或 https:// 开头的完整地址，"
            "例如 <code>/subscribe https://example.com/feed.xml</code>",
        ),
    },
    FailureKind.BAD_SCHEME: {
        "en": FailureText(
            "not http(s)",
            "Only http:// and https:// feeds are supported, not <code>{scheme}</code>.",
        ),
        "zh": FailureText(
            "不是 http(s) 地址",
            "只支持 http:// 和 https:// 的订阅源，不支持 <code>{scheme}</code>。",
        ),
    },
    FailureKind.ADDRESS_NOT_ALLOWED: {
        "en": FailureText(
            "private or local network address",
            "That address points to a private or local network, which this bot may not fetch from.",
        ),
        "zh": FailureText(
            "私有或本地网络地址", "该地址指向私有或本地网络，本机器人不允许从那里获取内容。"
        ),
    },
    FailureKind.DNS: {
        "en": FailureText(
            "site name not found (DNS)",
            "The site's name could not be found (DNS). Check the address for typos.",
        ),
        "zh": FailureText("找不到域名（DNS）", "找不到该网站的域名（DNS）。请检查地址是否有误。"),
    },
    FailureKind.CONNECTION: {
        "en": FailureText(
            "connection", "The site could not be reached (connection failed). Try again later."
        ),
        "zh": FailureText("连接失败", "无法连接到该网站，请稍后再试。"),
    },
    FailureKind.TLS: {
        "en": FailureText(
            "broken HTTPS certificate",
            "The site's secure connection (HTTPS certificate) is broken.",
        ),
        "zh": FailureText("HTTPS 证书有问题", "该网站的安全连接（HTTPS 证书）有问题。"),
    },
    FailureKind.TIMEOUT: {
        "en": FailureText("no answer in time", "The site did not answer in time. Try again later."),
        "zh": FailureText("响应超时", "该网站没有及时响应，请稍后再试。"),
    },
    FailureKind.TOO_LARGE: {
        "en": FailureText("feed too large", "The feed is too large (over {limit_mb} MB)."),
        "zh": FailureText("订阅源太大", "订阅源太大（超过 {limit_mb} MB）。"),
    },
    FailureKind.TOO_MANY_REDIRECTS: {
        "en": FailureText(
            "too many redirects", "The address redirects too many times (or in a loop)."
        ),
        "zh": FailureText("重定向过多", "该地址重定向次数过多（或形成循环）。"),
    },
    FailureKind.HTTP_STATUS: {
        "en": FailureText("HTTP {status}", "The site answered HTTP {status} instead of a feed."),
        "zh": FailureText("HTTP {status}", "网站返回了 HTTP {status}，而不是订阅源。"),
    },
    FailureKind.GONE: {
        "en": FailureText(
            "gone for good (HTTP 410)", "The site says this feed is gone for good (HTTP 410)."
        ),
        "zh": FailureText("已永久删除（HTTP 410）", "网站表示该订阅源已永久删除（HTTP 410）。"),
    },
    FailureKind.NOT_A_FEED: {
        "en": FailureText(
            "not a feed: {what}",
            "That address does not give a news feed (RSS, Atom or RDF): it is {what}. "
            "Look for an RSS or Atom link on the site.",
        ),
        "zh": FailureText(
            "不是订阅源：{what}",
            "该地址不是新闻订阅源（RSS、Atom 或 RDF）：它是{what}。请在网站上寻找 RSS 或 Atom 链接。",
        ),
    },
    FailureKind.INTERNAL: {
        "en": FailureText(
            "internal error{name}", "Something went wrong on the bot's side{name}. Try again later."
        ),
        "zh": FailureText("内部错误{name}", "机器人内部出错{name}，请稍后再试。"),
    },
    FailureKind.UNKNOWN: {
        "en": FailureText("{code}", "The feed could not be used ({code})."),
        "zh": FailureText("{code}", "无法使用该订阅源（{code}）。"),
    },
}

# What a document is instead of a feed: the {what} of NOT_A_FEED (bot.errors.NOT_A_FEED_KINDS).
NOT_A_FEED_WHAT: dict[str, dict[str, str]] = {
    "html": {"en": "an HTML page", "zh": "HTML 网页"},
    "json": {"en": "a JSON document", "zh": "JSON 文档"},
    "empty": {"en": "an empty document", "zh": "空文档"},
    "other": {"en": "a document of another kind", "zh": "其他类型的文档"},
    "unreadable": {"en": "an unreadable document ({cause})", "zh": "无法读取的文档（{cause}）"},
}


def failure_reason(language: str, failure: FeedFailure) -> str:
    """Why a feed failed, short (a value for another text: not escaped here)."""
    return _failure_text(language, failure).reason.format(**_failure_values(language, failure))


def failure_reply(language: str, failure: FeedFailure, *, given: str = "") -> str:
    """The answer to a /subscribe whose feed failed, in Telegram HTML."""
    values = _failure_values(language, failure)
    parts = urlsplit(given) if given else None
    values["given"] = given[:200]
    values["scheme"] = f"{parts.scheme}:" if parts and parts.scheme else given[:20]
    safe = {name: escape(str(value)) for name, value in values.items()}
    return _failure_text(language, failure).reply.format(**safe)


def _failure_text(language: str, failure: FeedFailure) -> FailureText:
    variants = FAILURES[failure.kind]
    return variants.get(language) or variants["en"]


def _failure_values(language: str, failure: FeedFailure) -> dict[str, object]:
    values: dict[str, object] = {"status": failure.status or 0, "code": failure.code}
    if failure.kind is FailureKind.TOO_LARGE:
        cap = int(failure.detail) if failure.detail.isdecimal() else 0
        values["limit_mb"] = round(cap / 1_048_576, 1)
    elif failure.kind is FailureKind.NOT_A_FEED:
        what = NOT_A_FEED_WHAT.get(failure.what, NOT_A_FEED_WHAT["other"])
        values["what"] = (what.get(language) or what["en"]).format(cause=failure.cause or "?")
    elif failure.kind is FailureKind.INTERNAL:
        name = failure.detail
        values["name"] = (f"（{name}）" if language == "zh" else f" ({name})") if name else ""
    return values
