"""The fake Bot API server, exercised through the real python-telegram-bot Bot.

Each test is a claim other tests rely on: if the fake accepts what Telegram refuses (or the
other way round), end-to-end tests of the bot prove nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
import warnings
from collections.abc import AsyncIterator

import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    EndPointNotFound,
    Forbidden,
    NetworkError,
    RetryAfter,
)
from telegram.ext import CommandHandler
from telegram.warnings import PTBDeprecationWarning

from bot.delivery.outcome import OutcomeUnknownTimedOut
from bot.delivery.transport import AiohttpRequest
from tests.fakes.telegram_api import (
    ApiSpec,
    FakeTelegram,
    FakeTelegramProcess,
    FloodLimits,
    finish_entities,
    parse_html,
    render_html,
    utf16_len,
)

SPEC = ApiSpec.load()  # parsed once for the whole module; the fake accepts a ready spec


class ManualClock:
    """A clock the test moves, so flood-control tests neither sleep nor flake."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(spec=SPEC) as server:
        yield server


def make_bot(fake: FakeTelegram) -> telegram.Bot:
    return telegram.Bot(
        fake.token,
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        request=AiohttpRequest(),
        get_updates_request=AiohttpRequest(read_timeout=2.0),
    )


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with make_bot(fake) as client:
        yield client


def seconds(error: RetryAfter) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB_TIMEDELTA."""
    with warnings.catch_warnings():
        # Reading it as an int warns that it will become a timedelta; either is fine here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# ---- HTML parse mode -----------------------------------------------------------------------


async def test_valid_html_is_recorded_as_the_user_sees_it(fake, bot):
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    html = (
        '<b>Title &amp; more</b>\nSummary 😀 <a href="https://example.org/a?b=1&amp;c=2">link</a>'
    )

    message = await bot.send_message(chat.id, html, parse_mode="HTML")

    [sent] = fake.messages(chat.id)
    assert sent.text == "Title & more\nSummary 😀 link"
    assert sent.source == html
    assert sent.parse_mode == "HTML"
    assert {"type": "bold", "offset": 0, "length": 12} in sent.entities
    # The emoji is two UTF-16 code units, so the link starts at 24, not 23.
    link = {"type": "text_link", "offset": 24, "length": 4, "url": "https://example.org/a?b=1&c=2"}
    assert link in sent.entities
    assert sent.html == (
        '<b>Title &amp; more</b>\nSummary 😀 <a href="https://example.org/a?b=1&amp;c=2">link</a>'
    )
    # PTB got a real Message back: same text, entities, sender and chat.
    assert message.text == sent.text
    assert message.message_id == sent.message_id
    assert message.from_user.id == fake.bot_user.id
    assert message.chat.id == chat.id
    assert [e.to_dict() for e in message.entities] == sent.entities


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>unclosed", 'can\'t find end tag corresponding to start tag "b"'),
        ("<div>block</div>", 'unsupported start tag "div" at byte offset 0'),
        ("1 < 2", 'unsupported start tag "" at byte offset 2'),
        ("a&nbsp;b", 'unsupported html entity "&nbsp;" at byte offset 1'),
        ("<b><i>x</b></i>", 'unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("é <foo>", 'unsupported start tag "foo" at byte offset 3'),  # bytes, not characters
    ],
)
async def test_invalid_html_is_refused_with_telegrams_words(fake, bot, html, error):
    chat = fake.private_chat(fake.add_user(1001))

    with pytest.raises(BadRequest) as caught:
        await bot.send_message(chat.id, html, parse_mode="HTML")

    assert str(caught.value).lower() == f"can't parse entities: {error}".lower()
    assert fake.messages(chat.id) == []
    assert fake.requests[-1].status == 400


async def test_length_is_counted_in_utf16_after_parsing(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))

    # 4096 characters once "&lt;" is parsed, although the source is four times longer.
    await bot.send_message(chat.id, "&lt;" * 4096, parse_mode="HTML")
    # 2048 emoji are 4096 UTF-16 code units: the limit exactly.
    await bot.send_message(chat.id, "😀" * 2048)
    # 2049 emoji are only 2049 characters but 4098 code units: too long for Telegram.
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(chat.id, "😀" * 2049)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(chat.id, "<b>" + "x" * 4097 + "</b>", parse_mode="HTML")

    assert len(fake.messages(chat.id)) == 2


async def test_text_empty_after_parsing_is_refused(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(chat.id, "<b> </b>\n", parse_mode="HTML")


def test_parser_handles_every_documented_tag():
    text, entities = parse_html(
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>"
        '<strike>k</strike><del>d</del><span class="tg-spoiler">p</span>'
        "<tg-spoiler>q</tg-spoiler><code>c</code><pre>p</pre>"
        '<pre><code class="language-python">x = 1</code></pre>'
        "<blockquote>bq</blockquote><blockquote expandable>ex</blockquote>"
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>&#65;&#x42;&quot;'
    )
    assert text == 'bsieunskdpqcpx = 1bqex👍AB"'
    kinds = [e["type"] for e in entities]
    assert kinds == [
        "bold", "bold", "italic", "italic", "underline", "underline", "strikethrough",
        "strikethrough", "strikethrough", "spoiler", "spoiler", "code", "pre", "pre",
        "blockquote", "expandable_blockquote", "custom_emoji",
    ]  # fmt: skip
    assert entities[13]["language"] == "python"


def test_html_round_trips_through_render():
    source = '<b>bold <i>both</i></b> <a href="https://e.org/">x</a> <code>1 &lt; 2</code>'
    text, entities = finish_entities(*parse_html(source))
    assert render_html(text, entities) == source


def test_telegram_trims_whitespace_and_moves_entities():
    text, entities = finish_entities(*parse_html("\n  <b>Hi</b> there \n"))
    assert text == "Hi there"
    assert entities == [{"offset": 0, "length": 2, "type": "bold"}]
    assert utf16_len("a😀") == 3


async def test_lenient_entities_can_be_chosen(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    fake.strict_html_entities = False
    await bot.send_message(chat.id, "a&nbsp;b AT&T", parse_mode="HTML")
    assert fake.messages(chat.id)[0].text == "a&nbsp;b AT&T"


# ---- parameters checked against the spec ---------------------------------------------------


async def test_unknown_parameter_is_refused(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    with pytest.raises(BadRequest, match=r'(?i)unknown parameter "colour"'):
        await bot.send_message(chat.id, "hi", api_kwargs={"colour": "red"})


async def test_missing_required_parameter_is_refused(fake, bot):
    fake.private_chat(fake.add_user(1001))
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot._post("sendMessage", {"chat_id": 1001})
    with pytest.raises(BadRequest, match=r"(?i)chat_id is empty"):
        await bot._post("sendMessage", {"text": "hi"})
    with pytest.raises(BadRequest, match=r'(?i)"message_id" is required'):
        await bot._post("deleteMessage", {"chat_id": 1001})


async def test_wrong_types_are_refused(fake, bot):
    fake.private_chat(fake.add_user(1001))
    bad_calls = {
        "Boolean": {"chat_id": 1001, "text": "x", "disable_notification": "maybe"},
        "Integer": {"chat_id": 1001, "text": "x", "message_thread_id": "seven"},
        "JSON": {"chat_id": 1001, "text": "x", "reply_markup": "{not json"},
        "unknown field": {
            "chat_id": 1001,
            "text": "x",
            "reply_markup": {"inline_keyboard": [[{"text": "a", "callback": "b"}]]},
        },
        "array": {"chat_id": 1001, "text": "x", "entities": {"type": "bold"}},
    }
    for kind, params in bad_calls.items():
        with pytest.raises(BadRequest, match=r"(?i)wrong type of parameter"):
            await bot._post("sendMessage", params)
        assert fake.requests[-1].status == 400, kind
    assert fake.sent == []


async def test_telegrams_rules_inside_objects_are_kept(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    no_action = InlineKeyboardMarkup([[InlineKeyboardButton("text only")]])
    with pytest.raises(BadRequest, match=r"(?i)text buttons are unallowed"):
        await bot.send_message(chat.id, "x", reply_markup=no_action)
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="x" * 65)]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(chat.id, "x", reply_markup=too_long)


@pytest.mark.parametrize("text", ["", "   "])
async def test_a_button_needs_a_text(fake, bot, text):
    chat = fake.private_chat(fake.add_user(1001))
    nameless = InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data="u:1")]])
    with pytest.raises(BadRequest):
        await bot.send_message(chat.id, "x", reply_markup=nameless)
    assert fake.requests[-1].description == "Bad Request: BUTTON_TEXT_INVALID"
    assert fake.sent == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not a url", "Wrong HTTP URL"),
        ("feed", "Wrong HTTP URL"),
        ("http://localhost:8080/feed", "Wrong HTTP URL"),
        ("https://", "Wrong HTTP URL"),
        ("https://news..test/", "Wrong HTTP URL"),
        ("ftp://news.test/feed.xml", "Unsupported URL protocol"),
        ("javascript:alert(1)", "Wrong port number specified in the URL"),
    ],
)
async def test_a_url_button_needs_a_url(fake, bot, url, problem):
    chat = fake.private_chat(fake.add_user(1001))
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Open", url=url)]])
    with pytest.raises(BadRequest):
        await bot.send_message(chat.id, "x", reply_markup=markup)
    expected = f"Bad Request: inline keyboard button URL '{url}' is invalid: {problem}"
    assert fake.requests[-1].description == expected
    assert fake.sent == []


async def test_url_buttons_take_web_and_telegram_links(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    urls = ["https://news.test/a?b=c#d", "news.test", "http://例子.测试:8080/", "tg://user?id=1"]
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(str(n), url=u)] for n, u in enumerate(urls)]
    )
    await bot.send_message(chat.id, "links", reply_markup=markup)
    [sent] = fake.messages(chat.id)
    assert [button["url"] for button in sent.buttons] == urls


async def test_at_most_100_entities_in_one_text_counted_after_parsing(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    fake.limits.enabled = False
    hundred = " ".join(f"<b>{n}</b>" for n in range(100))
    await bot.send_message(chat.id, hundred, parse_mode="HTML")
    assert len(fake.messages(chat.id)[-1].entities) == 100
    # An empty tag makes no entity: still 100 after parsing.
    await bot.send_message(chat.id, hundred + " <i></i>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)too many entities: 101"):
        await bot.send_message(chat.id, hundred + " <i>one more</i>", parse_mode="HTML")
    explicit = [{"type": "bold", "offset": n, "length": 1} for n in range(101)]
    with pytest.raises(BadRequest, match=r"(?i)too many entities: 101"):
        await bot.do_api_request(
            "sendMessage", api_kwargs={"chat_id": chat.id, "text": "x" * 101, "entities": explicit}
        )
    assert len(fake.messages(chat.id)) == 2


async def test_an_unknown_chat_action_is_refused(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    assert await bot.send_chat_action(chat.id, "typing")
    assert await bot.send_chat_action(chat.id, "upload_document")
    with pytest.raises(BadRequest):
        await bot.send_chat_action(chat.id, "dancing")
    assert fake.requests[-1].description == "Bad Request: wrong parameter action in request"


async def test_unknown_method_is_not_found(fake, bot):
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy", api_kwargs={"chat_id": 1})
    assert fake.request_counts["sendtelepathy"] == 1


async def test_wrong_token_is_unauthorized(fake):
    other = telegram.Bot("42:wrong", base_url=fake.base_url, request=AiohttpRequest())
    with pytest.raises(telegram.error.InvalidToken):
        await other.initialize()
    await other.shutdown()


async def test_unknown_chat_is_not_found(fake, bot):
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(424242, "hello?")


# ---- flood control -------------------------------------------------------------------------


async def test_three_quick_messages_to_one_chat_hit_flood_control():
    async with FakeTelegram(spec=SPEC, clock=ManualClock()) as fake, make_bot(fake) as bot:
        await three_quick_messages(fake, bot)


async def three_quick_messages(fake: FakeTelegram, bot: telegram.Bot) -> None:
    chat = fake.private_chat(fake.add_user(1001))
    await bot.send_message(chat.id, "one")
    await bot.send_message(chat.id, "two")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(chat.id, "three")
    assert seconds(caught.value) >= 1
    assert fake.flood.refused[chat.id] == 1
    assert fake.retry_after_count == 1
    assert [m.text for m in fake.messages(chat.id)] == ["one", "two"]
    # Another chat is not held back by the first one's limit.
    other = fake.private_chat(fake.add_user(1002))
    await bot.send_message(other.id, "hi")


async def test_flood_limits_per_chat_group_and_overall():
    clock = ManualClock()
    async with FakeTelegram(spec=SPEC, clock=clock) as fake, make_bot(fake) as bot:
        group = fake.add_group(-100, "Group")
        for _ in range(20):  # one a second for 20 seconds: within the per-chat limit
            await bot.send_message(group.id, "news")
            clock.now += 1
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(group.id, "the 21st within a minute")
        assert 30 <= seconds(caught.value) <= 41

        clock.now += 60
        users = [fake.private_chat(fake.add_user(2000 + n)) for n in range(31)]
        for chat in users[:30]:
            await bot.send_message(chat.id, "fan-out")
        with pytest.raises(RetryAfter):
            await bot.send_message(users[30].id, "the 31st within a second")
        clock.now += 1
        await bot.send_message(users[30].id, "a second later")


async def test_limits_can_be_switched_off(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    fake.limits.enabled = False
    await asyncio.gather(*(bot.send_message(chat.id, str(n)) for n in range(50)))
    assert len(fake.messages(chat.id)) == 50
    assert fake.retry_after_count == 0


async def test_forced_retry_after_hits_one_chat_only(fake, bot):
    slow = fake.private_chat(fake.add_user(1001))
    other = fake.private_chat(fake.add_user(1002))
    fake.force_retry_after(slow.id, 17)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(slow.id, "x")
    assert seconds(caught.value) == 17
    assert fake.retry_after_by_chat == {slow.id: 1}
    await bot.send_message(other.id, "fine")
    await bot.send_message(slow.id, "fine now")


# ---- chat faults ---------------------------------------------------------------------------


async def test_blocked_chat_is_forbidden_and_tells_the_bot(fake, bot):
    alice = fake.add_user(1001)
    chat = fake.private_chat(alice)
    fake.block(chat.id)

    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(chat.id, "hello")

    [update] = await bot.get_updates()
    assert update.my_chat_member.new_chat_member.status == "kicked"
    assert update.my_chat_member.old_chat_member.status == "member"
    assert update.my_chat_member.chat.id == chat.id


async def test_kicked_deactivated_and_channel_faults(fake, bot):
    admin = fake.add_user(7, "Admin")
    group = fake.add_group(-200, "G", admins=[admin])
    fake.kick(group.id)
    with pytest.raises(Forbidden, match=r"(?i)bot was kicked from the group chat"):
        await bot.send_message(group.id, "x")

    user = fake.private_chat(fake.add_user(1001))
    fake.deactivate_user(user.id)
    with pytest.raises(Forbidden, match=r"(?i)user is deactivated"):
        await bot.send_message(user.id, "x")

    channel = fake.add_channel(-1001234, "Channel", bot_status="member")
    with pytest.raises(Forbidden, match=r"(?i)not a member of the channel"):
        await bot.send_message(channel.id, "x")

    known = fake.private_chat(fake.add_user(1003))
    fake.forget_chat(known.id)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(known.id, "x")


async def test_migrated_group_answers_with_the_new_id(fake, bot):
    group = fake.add_group(-300, "Old group")
    fake.migrate(group.id, -1009999)

    with pytest.raises(ChatMigrated) as caught:
        await bot.send_message(group.id, "x")

    assert caught.value.new_chat_id == -1009999
    await bot.send_message(-1009999, "to the supergroup")
    updates = await bot.get_updates()
    assert updates[0].message.migrate_to_chat_id == -1009999
    assert updates[1].message.migrate_from_chat_id == -300


async def test_api_down_gives_network_errors_then_recovers():
    clock = ManualClock()
    async with FakeTelegram(spec=SPEC, clock=clock) as fake, make_bot(fake) as bot:
        await api_down(fake, bot, clock)


async def api_down(fake: FakeTelegram, bot: telegram.Bot, clock: ManualClock) -> None:
    chat = fake.private_chat(fake.add_user(1001))
    fake.limits.enabled = False
    fake.fail_next(2, status=502)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(chat.id, "x")
    await bot.send_message(chat.id, "back")

    fake.fail_for(0.3, status=500, methods={"sendMessage"})
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(chat.id, "x")
    await bot.get_me()  # other methods still answer
    clock.now += 0.35
    await bot.send_message(chat.id, "after the window")
    assert [m.text for m in fake.messages(chat.id)] == ["back", "after the window"]


async def test_dropped_connection_before_and_after_processing(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    fake.limits.enabled = False
    fake.drop_next(1)
    with pytest.raises(NetworkError):
        await bot.send_message(chat.id, "lost")
    assert fake.messages(chat.id) == []

    fake.drop_next(1, after_processing=True)
    with pytest.raises(NetworkError):
        await bot.send_message(chat.id, "delivered, answer lost")
    assert [m.text for m in fake.messages(chat.id)] == ["delivered, answer lost"]


async def test_slow_answers(fake, bot):
    fake.delay(0.3, methods={"getMe"})
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.3


async def test_a_slow_telegram_carries_out_what_the_client_stopped_waiting_for(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    fake.answer_slowly(0.5, for_seconds=1.0, methods={"sendMessage"})
    with pytest.raises(OutcomeUnknownTimedOut):
        await bot.send_message(chat.id, "given up on", read_timeout=0.1)
    assert fake.messages(chat.id) == []  # not yet: Telegram is slow
    [message] = await fake.wait_for_messages(chat.id, 1, timeout=5)
    assert message.text == "given up on"
    await bot.get_me()  # other methods answer at once meanwhile
    await asyncio.sleep(1.0)  # the slow spell is over
    started = time.monotonic()
    await bot.send_message(chat.id, "quick again", read_timeout=0.4)
    assert time.monotonic() - started < 0.4


# ---- updates -------------------------------------------------------------------------------


async def test_long_poll_returns_an_injected_command(fake, bot):
    alice = fake.add_user(1001, "Alice", language_code="zh-hans")
    chat = fake.private_chat(alice)

    poll = asyncio.create_task(bot.get_updates(timeout=10, read_timeout=5))
    await asyncio.sleep(0.2)
    assert not poll.done()  # waiting: there is nothing yet
    started = time.monotonic()
    fake.user_command(chat, alice, "subscribe", "https://example.org/feed.xml")
    [update] = await poll

    assert time.monotonic() - started < 5  # answered when the update came, not at timeout
    assert update.message.text == "/subscribe https://example.org/feed.xml"
    assert update.message.from_user.language_code == "zh-hans"
    handler = CommandHandler("subscribe", lambda u, c: None)
    args, _ = handler.check_update(update)
    assert args == ["https://example.org/feed.xml"]
    # The offset confirms the update: it is not delivered again.
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
    await fake.wait_until_updates_consumed(1)


async def test_long_poll_times_out_empty(fake, bot):
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert time.monotonic() - started >= 0.9


async def test_group_command_with_bot_name_and_forum_topic(fake, bot):
    member = fake.add_user(1001)
    group = fake.add_group(-1001, "Forum", forum=True)
    fake.user_command(group, member, "list", thread_id=77)
    fake.user_command(group, member, "list", mention=False)
    fake.user_command(group, member, "list@someone_else_bot", mention=False)

    updates = await bot.get_updates()
    handler = CommandHandler("list", lambda u, c: None)

    assert updates[0].message.text == f"/list@{bot.username}"
    assert updates[0].message.message_thread_id == 77
    assert updates[0].message.is_topic_message
    assert handler.check_update(updates[0])
    assert handler.check_update(updates[1])
    assert not handler.check_update(updates[2])
    # A reply in the topic goes there; an unknown topic is refused as Telegram does.
    await bot.send_message(group.id, "in topic", message_thread_id=77)
    with pytest.raises(BadRequest, match=r"(?i)message thread not found"):
        await bot.send_message(group.id, "nowhere", message_thread_id=78)
    assert [m.text for m in fake.messages(group.id, thread_id=77)] == ["in topic"]


async def test_channel_post_and_button_press(fake, bot):
    channel = fake.add_channel(-100555, "News")
    fake.channel_post(channel, "/digest")
    [post] = await bot.get_updates()
    assert post.channel_post.text == "/digest"

    alice = fake.add_user(1001)
    chat = fake.private_chat(alice)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Unsubscribe 1", callback_data="u:1")]])
    await bot.send_message(chat.id, "Pick one", reply_markup=markup)
    [sent] = fake.messages(chat.id)
    fake.press_button(sent, alice, data="u:1")
    with pytest.raises(ValueError, match="no button"):
        fake.press_button(sent, alice, data="u:2")

    [press] = await bot.get_updates(offset=post.update_id + 1)
    assert press.callback_query.data == "u:1"
    assert press.callback_query.message.message_id == sent.message_id
    assert await press.callback_query.answer("Removed")
    assert fake.callback_answers[press.callback_query.id]["text"] == "Removed"
    with pytest.raises(BadRequest, match=r"(?i)query id is invalid"):
        await press.callback_query.answer("twice")


async def test_a_callback_answer_holds_at_most_200_characters(fake, bot):
    alice = fake.add_user(1001)
    chat = fake.private_chat(alice)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Press", callback_data="p")]])
    await bot.send_message(chat.id, "Pick", reply_markup=markup)
    [sent] = fake.messages(chat.id)
    fake.press_button(sent, alice, data="p")
    [press] = await bot.get_updates()
    with pytest.raises(BadRequest):
        await press.callback_query.answer("名" * 201, show_alert=True)
    assert fake.requests[-1].description == "Bad Request: MESSAGE_TOO_LONG"
    assert press.callback_query.id not in fake.callback_answers  # still unanswered
    assert await press.callback_query.answer("名" * 200, show_alert=True)


async def test_my_chat_member_when_added_and_removed(fake, bot):
    owner = fake.add_user(5, "Owner")
    group = fake.add_group(-400, "G", creator=owner, bot_status="left")
    fake.add_bot(group.id, owner, status="administrator")
    fake.kick(group.id, owner)
    added, removed = await bot.get_updates()
    assert added.my_chat_member.new_chat_member.status == "administrator"
    assert removed.my_chat_member.new_chat_member.status == "kicked"
    assert removed.my_chat_member.from_user.id == owner.id


async def test_second_poller_conflicts_with_the_first(fake, bot):
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    assert await bot.get_updates(timeout=0) == ()
    with pytest.raises(telegram.error.Conflict, match=r"(?i)terminated by other getupdates"):
        await first


# ---- other methods -------------------------------------------------------------------------


async def test_document_upload_and_download_round_trip(fake, bot):
    alice = fake.add_user(1001)
    chat = fake.private_chat(alice)
    payload = bytes(range(256)) * 40

    message = await bot.send_document(
        chat.id, payload, filename="export.opml", caption="<b>Your feeds</b>", parse_mode="HTML"
    )
    file = await bot.get_file(message.document.file_id)

    assert bytes(await file.download_as_bytearray()) == payload
    [sent] = fake.messages(chat.id)
    assert sent.text == "Your feeds" and sent.document["file_name"] == "export.opml"

    # A file a user sends can be fetched the same way.
    update = fake.user_document(chat, alice, b"<opml/>", "mine.opml", mime_type="text/x-opml")
    document = update["message"]["document"]
    user_file = await bot.get_file(document["file_id"])
    assert bytes(await user_file.download_as_bytearray()) == b"<opml/>"
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("no-such-file")


async def test_edit_and_delete(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    message = await bot.send_message(chat.id, "<i>draft</i>", parse_mode="HTML")
    edited = await bot.edit_message_text(
        "<b>final</b>", chat.id, message.message_id, parse_mode="HTML"
    )
    assert edited.text == "final" and edited.edit_date is not None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("<b>final</b>", chat.id, message.message_id, parse_mode="HTML")
    [sent] = fake.messages(chat.id)
    assert sent.html == "<b>final</b>" and sent.edits == ["draft"]

    assert await bot.delete_message(chat.id, message.message_id)
    assert sent.deleted
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(chat.id, message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat.id, 999)


async def test_commands_per_language(fake, bot):
    await bot.set_my_commands([("start", "Start"), ("list", "Your feeds")])
    await bot.set_my_commands([("start", "开始")], language_code="zh")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "list"]
    assert [c.description for c in await bot.get_my_commands(language_code="zh")] == ["开始"]
    assert fake.my_commands("zh") == ["start"]
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await bot.set_my_commands([("Bad-Name", "x")])


async def test_members_and_admins(fake, bot):
    owner, admin, member = fake.add_user(1), fake.add_user(2), fake.add_user(3)
    group = fake.add_group(-500, "G", supergroup=True, admins=[admin], creator=owner)
    fake.user_message(group, member, "hello")

    assert (await bot.get_chat_member(group.id, owner.id)).status == "creator"
    assert (await bot.get_chat_member(group.id, admin.id)).status == "administrator"
    assert (await bot.get_chat_member(group.id, member.id)).status == "member"
    admins = await bot.get_chat_administrators(group.id)
    assert {a.user.id for a in admins} == {owner.id, admin.id}
    info = await bot.get_chat(group.id)
    assert info.type == "supergroup" and info.title == "G"
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert fake.pending_updates == []


async def test_the_bots_own_rights_and_chats_by_username(fake, bot):
    """What a bot asks before acting on a chat it was told of by name: the chat (getChat by
    @username), and its own member record there (can_post_messages, restrictions)."""
    me = (await bot.get_me()).id
    posting = fake.add_channel(-1001, "Posting", username="posting")
    mute = fake.add_channel(-1002, "Mute", username="mute", bot_can_post=False)
    quiet = fake.add_group(-1003, "Quiet", supergroup=True, bot_status="restricted")

    assert (await bot.get_chat("@Posting")).id == posting.id
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.get_chat("@nobody_here")
    member = await bot.get_chat_member(posting.id, me)
    assert member.status == "administrator" and member.can_post_messages is True
    assert (await bot.get_chat_member(mute.id, me)).can_post_messages is False
    restricted = await bot.get_chat_member(quiet.id, me)
    assert restricted.status == "restricted" and restricted.can_send_messages is False
    await bot.send_message(posting.id, "x")
    with pytest.raises(BadRequest, match=r"(?i)need administrator rights"):
        await bot.send_message(mute.id, "x")
    with pytest.raises(BadRequest, match=r"(?i)not enough rights"):
        await bot.send_message(quiet.id, "x")


async def test_wait_for_messages_reports_what_arrived(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))

    async def send_later() -> None:
        await asyncio.sleep(0.1)
        await bot.send_message(chat.id, "late")

    task = asyncio.create_task(send_later())
    [message] = await fake.wait_for_messages(chat.id, 1, timeout=2)
    await task
    assert message.text == "late"
    with pytest.raises(AssertionError, match="got 1: \\['late'\\]"):
        await fake.wait_for_messages(chat.id, 2, timeout=0.2)


async def test_requests_are_recorded_with_their_outcome(fake, bot):
    chat = fake.private_chat(fake.add_user(1001))
    await bot.send_message(chat.id, "a", disable_notification=True)
    with pytest.raises(BadRequest):
        await bot.send_message(chat.id, "<x>", parse_mode="HTML")

    ok, refused = fake.requests_for("sendMessage")
    assert ok.params == {"chat_id": chat.id, "text": "a", "disable_notification": True}
    assert ok.status == 200 and ok.description is None
    assert refused.status == 400 and "can't parse entities" in refused.description


async def test_the_fake_can_run_in_a_child_process():
    # Benchmarks use this so that the fake's CPU is not counted as the bot's.
    server = FakeTelegramProcess(private_chats=[1001, 1002], limits=FloodLimits(enabled=False))
    await asyncio.to_thread(server.start)
    try:
        bot = telegram.Bot(server.token, base_url=server.base_url, request=AiohttpRequest())
        async with bot:
            await asyncio.gather(*(bot.send_message(1001, f"<b>{n}</b>", parse_mode="HTML")
                                   for n in range(10)))  # fmt: skip
            with pytest.raises(BadRequest, match=r"(?i)chat not found"):
                await bot.send_message(1003, "unknown chat")
        stats = await asyncio.to_thread(server.stats)
    finally:
        await asyncio.to_thread(server.stop)
    assert stats["messages"] == 10
    assert stats["by_method"]["sendmessage"] == 11
    assert stats["cpu"] > 0
