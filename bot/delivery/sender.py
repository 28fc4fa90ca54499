"""The sender: drains the outbox under Telegram's limits and through its errors.

Limits are kept here, not by python-telegram-bot's AIORateLimiter, because that limiter
pauses every chat on one flood wait and does not pace private chats. Here:
- one global pace (about 30 messages a second, evenly spaced, so no window ever bursts);
- one pace per chat (1 a second; 20 a minute for groups and channels), and one message in
  flight per chat, so a chat's messages keep their order;
- a 429 `retry_after` delays only the chat it names.

Each row is marked sent only after Telegram accepted it (in small batches, a few
milliseconds apart), so a hard kill can at most resend what was in flight.

A send that failed before it reached Telegram (bot.delivery.outcome.NotSent, or an error
answer) is retried with backoff. A send that went out and got no answer (OutcomeUnknown:
the wait for the answer ran out, the connection closed first) may have been delivered all
the same, as a slow Telegram carries out what it received: it is sent once more at most,
and after a second send with no answer it is taken as delivered. So a slow Telegram costs
at most one extra copy of a message, and none while it answers within
`answer_timeout_seconds`. The count lives on the outbox row, so a restart keeps it, and a
stop that cuts a wait for an answer short counts as a send with no answer.

That last try is held until Telegram has answered a request that went out after the
message's unanswered one (proof that the path works again): otherwise a retry sent into the
same run of dropped connections was taken as delivered though Telegram never read it (the
two-hour soak, bench/README). Other chats' sends bring that proof; a quiet bot asks getMe.

An alert whose story has a picture goes as a photo (sendPhoto by URL, the alert as its
caption) when its chat has pictures on. Telegram fetches the picture itself; when it
refuses it (cannot fetch it, wrong type, too large, bad dimensions), the row is marked
photo_refused before the same alert goes as text, so that it is sent once: a kill between
the two sends the text at the next start, not the photo again. A photo sent with no answer
follows the rule above, like any send.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import warnings
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import timedelta

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBUserWarning

from bot.clock import Clock
from bot.config import DeliverySettings
from bot.delivery.format import format_alert
from bot.delivery.outcome import OutcomeUnknown
from bot.delivery.pacing import Pacer
from bot.metrics import Metrics
from bot.store import DatabaseUnavailableError, OutboxItem, Store, StoryText
from bot.text import CAPTION_LIMIT, MESSAGE_LIMIT, html_to_plain
from bot.usecases.chats import Chats

log = logging.getLogger(__name__)

# PTB asks callers to prefer Bot.send_message (send_photo, get_me) over
# do_api_request("sendMessage", "sendPhoto" or "getMe"); the sender means it (see _attempt).
warnings.filterwarnings(
    "ignore", message=r"Please use 'Bot\.(send(Message|Photo)|getMe)'", category=PTBUserWarning
)

REFILL_BATCH = 5000
# Rows held in memory at most (about 330 bytes each): past this the outbox is read on as
# rows are sent. A backlog after a long outage can be millions of rows; at 30 messages a
# second, 100,000 rows are almost an hour of sending, so holding more gains nothing.
MAX_QUEUED = 100_000
FLUSH_EVERY = 0.05  # seconds between two writes of "sent" marks
MAX_BACKOFF = 300.0  # seconds between two tries of one message through an outage
STORY_CACHE = 20_000
# Sends with no answer after which a message is taken as delivered: the first is retried
# (Telegram may not have it) once the path is proven to work (_PathProof), a
# second is not (it would risk a third copy).
UNANSWERED_LIMIT = 2
REFILL_GAP = 0.5  # seconds between two loads of new outbox rows

# Error texts (lower case) that mean the chat can no longer receive messages from the bot.
UNREACHABLE = (
    "chat not found",
    "bot was blocked",
    "bot was kicked",
    "user is deactivated",
    "not enough rights to send",
    "have no rights to send",
    "bot is not a member",
    "chat_write_forbidden",
    "need administrator rights",
    "peer_id_invalid",
)

# Error texts (lower case) of a photo Telegram would not take: it could not fetch the URL,
# the URL is no image, or the image is too large or oddly shaped. The alert goes as text.
# A caption too long or with a bad entity is our bug, but the text still gets the story out.
PHOTO_REFUSED = (
    "failed to get http url content",
    "wrong file identifier/http url specified",
    "wrong remote file identifier",
    "wrong type of the web page content",
    "photo_invalid",  # PHOTO_INVALID_DIMENSIONS too
    "photo_save_file_invalid",
    "photo_ext_invalid",
    "photo_content_type_invalid",
    "photo_content_url_empty",
    "image_process_failed",
    "webpage_curl_failed",
    "webpage_media_empty",
    "file is too big",
    "message caption is too long",
)


# Link previews on (True) or off, as Telegram's parameter: built once, not per message.
PREVIEWS = {shown: LinkPreviewOptions(is_disabled=not shown) for shown in (True, False)}


@dataclass
class SenderStats:
    sent: int = 0
    flood_waits: int = 0
    retries: int = 0
    failed: int = 0  # given up after retrying for too long
    dropped: int = 0  # chat unreachable
    plain_fallbacks: int = 0  # HTML refused ("can't parse entities"): a bug, sent as text
    photos: int = 0  # alerts sent as photos (also counted in `sent`)
    photo_fallbacks: int = 0  # photos Telegram refused: their alerts went as text
    migrated: int = 0
    unanswered: int = 0  # sends that went out with no answer (Telegram may have them)
    assumed_delivered: int = 0  # messages given up after UNANSWERED_LIMIT such sends
    probes: int = 0  # getMe sent to prove the path for a held last try (Sender._prove_path)
    errors: dict[str, int] = field(default_factory=dict)


class Sender:
    def __init__(
        self,
        store: Store,
        bot: Bot,
        settings: DeliverySettings,
        clock: Clock,
        *,
        pacer: Pacer | None = None,
        link_preview: bool = False,
        default_zone: str = "UTC",
        chats: Chats | None = None,
        seed: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.bot = bot
        self.settings = settings
        self.clock = clock
        # telegram.link_preview, for the chats that never chose in /settings.
        self.link_preview = link_preview
        self.default_zone = default_zone
        # A chat that cannot be reached is paused, a migrated group moved, by their owner.
        self.chats = chats or Chats(store, clock)
        self.stats = SenderStats()
        self.metrics = metrics or Metrics()
        self.rng = random.Random(seed)

        self._queues: dict[int, deque[OutboxItem]] = {}
        self._heap: list[tuple[float, int, int]] = []  # (ready at, sequence, chat id)
        self._scheduled: set[int] = set()  # chats with an entry in the heap
        self._busy: set[int] = set()  # chats with a message in flight
        self.pacer = pacer or Pacer(settings)
        self._seq = 0
        self._loaded_max_id = 0
        self._stories: dict[int, StoryText] = {}
        self._sent_ids: list[int] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._refill_lock = asyncio.Lock()
        self._flushing = asyncio.Lock()
        self._last_refill = 0.0
        self._new_rows = asyncio.Event()  # the outbox has rows the sender has not loaded
        self._changed = asyncio.Event()  # a send finished: a chat or a slot became free
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        # The last load stopped at MAX_QUEUED: more rows wait, read on every second.
        self._backlog = False
        self._proof = _PathProof()  # which last tries of unanswered messages may go
        self._prover: asyncio.Task[None] | None = None  # asks getMe (_prove_path)

    # --- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start sending: the whole outbox is read afresh (a leader elected again may have
        missed rows, and what it held in memory was another leader's to send meanwhile)."""
        self._queues.clear()
        self._heap.clear()
        self._scheduled.clear()
        self._busy.clear()
        self._loaded_max_id = 0
        self._backlog = False
        self._proof.restart()
        self._stopping = False
        self._new_rows.set()
        self._loop_task = asyncio.create_task(self._run(), name="sender")
        self._flush_task = asyncio.create_task(self._flush_loop(), name="sender-flush")

    def halt(self) -> None:
        """Start no more sends, now (the leadership is gone); stop() then winds it down."""
        self._stopping = True
        self._changed.set()

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def wake(self) -> None:
        """New rows are in the outbox: look now rather than at the next periodic refill."""
        self._new_rows.set()

    async def stop(self, grace: float | None = None) -> None:
        """Send nothing new; let messages in flight finish (bounded); record what was sent."""
        self._stopping = True
        self._changed.set()
        if self._loop_task:
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._prover:  # held rows stay pending with their count, for the next start
            self._prover.cancel()
            await asyncio.gather(self._prover, return_exceptions=True)
            self._prover = None
        if self._tasks:
            timeout = self.settings.shutdown_grace_seconds if grace is None else grace
            _done, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._flush_task:
            self._flush_task.cancel()
            await asyncio.gather(self._flush_task, return_exceptions=True)
        await self._flush()

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values()) + len(self._busy)

    async def drain(self, within: float) -> bool:
        """Wait until nothing is queued or in flight (tests, benchmarks). True if drained."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            await self._refill()
            if not self.queued and not self._tasks:
                await self._flush()
                return True
            await asyncio.sleep(0.02)
        return False

    # --- scheduling -------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_refill = 0.0
        while not self._stopping:
            now = loop.time()
            # New rows: loaded when their writer says so (in-process, or a NOTIFY from any
            # bot on PostgreSQL), at most every REFILL_GAP: a busy poller wakes the sender
            # after every check, and each load waits behind the checks' writes. A backlog
            # past MAX_QUEUED is read on every second, up to the room left.
            since = now - self._last_refill
            if (self._new_rows.is_set() and since >= REFILL_GAP) or (self._backlog and since > 1):
                self._new_rows.clear()
                try:
                    await self._refill()
                except Exception:
                    log.exception("event=outbox_refill_failed")
                self._last_refill = loop.time()
                continue
            if not self._heap:
                await self._sleep(1.0)
                continue
            ready_at, _seq, chat_id = self._heap[0]
            start_at = max(ready_at, self.pacer.next_global)
            if start_at > now:
                await self._sleep(start_at - now)
                continue
            if self._slots.locked():  # max_in_flight reached: wait for one to finish
                await self._sleep(1.0)
                continue
            await self._slots.acquire()  # free: returns at once, the heap cannot change
            heapq.heappop(self._heap)
            self._scheduled.discard(chat_id)
            queue = self._queues.get(chat_id)
            if not queue:
                self._slots.release()
                continue
            item = queue.popleft()
            if not queue:
                del self._queues[chat_id]  # no idle queue per chat ever sent to
            now = loop.time()
            if self._must_wait(item, now):  # a reply took the slot, or no proof yet
                self._queues.setdefault(chat_id, deque()).appendleft(item)
                self._slots.release()
                self._schedule(chat_id)
                continue
            self.pacer.book(chat_id, now)
            self._busy.add(chat_id)
            task = asyncio.create_task(self._deliver(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _sleep(self, seconds: float) -> None:
        """Sleep until `seconds` pass, new rows arrive, or a send finishes."""
        self._changed.clear()
        waits = [asyncio.ensure_future(self._changed.wait())]
        if self._new_rows.is_set():
            # Rows are waiting but the last load was under REFILL_GAP ago: wake for them
            # when the gap has passed, not at once (that would spin).
            seconds = min(seconds, max(0.0, REFILL_GAP - (loop_time() - self._last_refill)))
        else:
            waits.append(asyncio.ensure_future(self._new_rows.wait()))
        try:
            await asyncio.wait(
                waits, timeout=min(seconds, 1.0), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waits:
                waiter.cancel()

    def _schedule(self, chat_id: int, at: float | None = None) -> None:
        queue = self._queues.get(chat_id)
        if (
            chat_id in self._scheduled
            or chat_id in self._busy
            or chat_id in self._proof.awaiting
            or not queue
        ):
            return
        after = self._proof.needed_after(queue[0])
        if after is not None:
            if at:
                self.pacer.hold(chat_id, at)  # its backoff still runs meanwhile
            self._await_proof(chat_id, queue[0], after)
            return
        ready = max(at or 0.0, self.pacer.chat_ready_at(chat_id))
        self._seq += 1
        heapq.heappush(self._heap, (ready, self._seq, chat_id))
        self._scheduled.add(chat_id)

    async def _refill(self) -> None:
        # drain() refills too: without the lock both could load the same rows twice.
        async with self._refill_lock:
            await self._refill_unlocked()

    async def _refill_unlocked(self) -> None:
        loop = asyncio.get_running_loop()
        # Rows are loaded in id order, so the ones left in the outbox are the newest.
        room = MAX_QUEUED - self.queued  # a pass over every queue: once per refill
        self._backlog = room <= 0
        while room > 0:
            limit = min(REFILL_BATCH, room)
            items = await self.store.outbox.pending_after(self._loaded_max_id, limit)
            if not items:
                return
            self._loaded_max_id = items[-1].id
            missing = {i.story_id for i in items if i.story_id and i.story_id not in self._stories}
            if missing:
                if len(self._stories) + len(missing) > STORY_CACHE:
                    self._stories.clear()
                self._stories.update(await self.store.outbox.stories(sorted(missing)))
            now_ms = self.clock.now_ms()
            for item in items:
                self._queues.setdefault(item.chat_id, deque()).append(item)
                delay = max(0.0, (item.not_before - now_ms) / 1000)
                self._schedule(item.chat_id, loop.time() + delay if delay else None)
            self._changed.set()  # drain() refills too: the send loop must see the new rows
            room -= len(items)
            if len(items) < limit:
                return
            self._backlog = room <= 0

    # --- proof that the path to Telegram works ---------------------------------------

    def _must_wait(self, item: OutboxItem, now: float) -> bool:
        """A reply to its chat took the slot, or (a safeguard: _schedule parks such a chat)
        it is a last try still waiting for proof."""
        return (
            self.pacer.chat_ready_at(item.chat_id) > now
            or self._proof.needed_after(item) is not None
        )

    def _proved(self, request: int) -> None:
        """Telegram answered `request`: the last tries held for a request before it may go."""
        released = self._proof.answer(request)
        for chat_id in released:
            self._schedule(chat_id)
        if released:
            self._changed.set()

    def _await_proof(self, chat_id: int, item: OutboxItem, after: int) -> None:
        """Park the chat (its later messages wait behind its head, others go on) until an
        answer to a request after `after`; make sure a probe will ask if none comes."""
        self._proof.awaiting[chat_id] = after
        log.info("event=send_awaits_proof outbox=%d chat=%d", item.id, chat_id)
        if self._prover is None or self._prover.done():
            self._prover = asyncio.create_task(self._prove_path(), name="sender-probe")

    async def _prove_path(self) -> None:
        """Ask Telegram getMe (not a message: it costs no copy and no message budget) when
        held last tries still lack their proof after their backoff, as in a quiet bot with
        one message where no other send brings it. One probe at a time serves every held
        message. A probe with no answer is asked again after a growing backoff, so a slow or
        unreachable Telegram only delays the last tries; a stop cancels it and leaves them
        pending."""
        loop = asyncio.get_running_loop()
        failures = 0
        not_before = 0.0
        while self._proof.awaiting and not self._stopping:
            held_until = min(self.pacer.chat_ready_at(chat) for chat in self._proof.awaiting)
            due = max(not_before, held_until)
            if due > loop.time():
                # A second at most: chats parked meanwhile may be due sooner, or proven.
                await asyncio.sleep(min(due - loop.time(), 1.0))
                continue
            request = self._proof.went_out()
            self.stats.probes += 1
            try:
                await self.bot.do_api_request("getMe", api_kwargs={})
            except Exception as error:
                if not (isinstance(error, TelegramError) and _is_answer(error)):
                    failures += 1
                    wait = self._backoff(failures)
                    not_before = loop.time() + wait
                    log.warning(
                        "event=path_probe_failed error=%s retry_in=%.1fs",
                        type(error).__name__,
                        wait,
                    )
                    continue
            self._proved(request)  # an error answer proves the path as well as a success
            failures, not_before = 0, 0.0

    # --- one message ----------------------------------------------------------------

    async def _deliver(self, item: OutboxItem) -> None:
        chat_id = item.chat_id
        try:
            await self._attempt(item)
        except Exception:  # a bug here must not kill the sender; the row stays pending
            log.exception("event=deliver_crashed outbox=%d chat=%d", item.id, chat_id)
            self._requeue(item, self._backoff(item.attempts))
        finally:
            self._busy.discard(chat_id)
            self._slots.release()
            self._schedule(chat_id)
            self._changed.set()

    def _render(self, item: OutboxItem, story: StoryText, *, caption: bool) -> str:
        """An alert's HTML, as a message or as a photo's caption (1024 characters)."""
        return format_alert(
            title=story.title,
            summary=story.summary,
            link=story.link,
            feed_title=story.feed_title,
            timestamp_id=story.timestamp_id,
            zone=item.timezone or self.default_zone,
            keyword=item.keyword,
            limit=CAPTION_LIMIT if caption else MESSAGE_LIMIT,
        )

    async def _story(self, item: OutboxItem) -> StoryText | None:
        """An alert's story; None when it is gone (the row is then no longer pending)."""
        story = self._stories.get(item.story_id or -1)
        if story is None:  # its story was purged, or is being loaded after a restart
            missing = await self.store.outbox.stories([item.story_id or -1])
            if not missing:
                await self.store.outbox.give_up(item.id, status="dropped", error="story gone")
                return None
            self._stories.update(missing)
            story = missing[item.story_id or -1]
        return story

    async def _message(self, item: OutboxItem) -> _Message | None:
        """What to send for `item`; None when there is nothing left to send (its row or its
        story is gone), after which the row is no longer pending."""
        if item.has_text:  # read now, not at refill: digest texts are large
            text = await self.store.outbox.text(item.id)
            if text is None:
                log.warning("event=outbox_row_gone outbox=%d chat=%d", item.id, item.chat_id)
                return None
            return _Message(text)
        story = await self._story(item)
        if story is None:
            return None
        photo = story.image_url if item.pictures and not item.photo_refused else ""
        return _Message(self._render(item, story, caption=bool(photo)), photo)

    def _request(
        self, item: OutboxItem, message: _Message, *, plain: bool, thread: bool
    ) -> tuple[str, dict[str, object]]:
        """The Bot API method and parameters that send `message`."""
        text = html_to_plain(message.text) if plain else message.text
        parameters: dict[str, object] = {"chat_id": item.chat_id}
        if message.photo:
            method = "sendPhoto"
            parameters.update(photo=message.photo, caption=text)
        else:
            method = "sendMessage"
            preview = self.link_preview if item.link_preview is None else item.link_preview
            parameters.update(text=text, link_preview_options=PREVIEWS[preview])
        if item.silent:
            parameters["disable_notification"] = True
        if not plain:
            parameters["parse_mode"] = ParseMode.HTML
        if thread and item.thread_id is not None:
            parameters["message_thread_id"] = item.thread_id
        return method, parameters

    async def _attempt(self, item: OutboxItem, *, plain: bool = False, thread: bool = True) -> None:
        if item.unanswered >= UNANSWERED_LIMIT:  # a stop cut its last wait short (_cut_short)
            await self._assume_delivered(item, item.unanswered, "stopped waiting for the answer")
            return
        message = await self._message(item)
        if message is None:
            return
        method, parameters = self._request(item, message, plain=plain, thread=thread)
        self._proof.unanswered_at.pop(item.id, None)  # its proof, if it had to wait, is used
        request = self._proof.went_out()
        try:
            # Not Bot.send_message: it turns each answer into a telegram.Message, which the
            # sender never reads, and that is a quarter of its CPU per message (bench/README,
            # Fan-out). do_api_request posts through the same request object and rate
            # limiter and raises the same errors.
            await self.bot.do_api_request(method, api_kwargs=parameters)
        except asyncio.CancelledError:
            await self._cut_short(item)
            raise
        except TelegramError as error:
            if _is_answer(error):
                self._proved(request)
            self.metrics.send_failed(error)
            await self._failed(item, message, error, request, plain=plain, thread=thread)
        else:
            self._proved(request)
            self.stats.sent += 1
            self.stats.photos += bool(message.photo)
            self.metrics.messages_sent.labels(item.kind).inc()
            self._sent_ids.append(item.id)

    async def _failed(
        self,
        item: OutboxItem,
        message: _Message,
        error: TelegramError,
        request: int,
        *,
        plain: bool,
        thread: bool,
    ) -> None:
        """What failed `request` means for its message: wait, move, pause, fall back, retry."""
        if isinstance(error, RetryAfter):
            wait = _seconds(error.retry_after)
            self.stats.flood_waits += 1
            await self._count("flood_wait")
            log.warning("event=flood_wait chat=%d retry_after=%.0f", item.chat_id, wait)
            self._requeue(item, wait, count_attempt=False)
        elif isinstance(error, ChatMigrated):
            await self._migrate(item, error.new_chat_id)
        elif isinstance(error, Forbidden):
            await self._unreachable(item, str(error))
        elif isinstance(error, BadRequest):
            if message.photo and _photo_refused(error):
                await self._photo_refused(item, error, plain=plain, thread=thread)
            else:
                await self._bad_request(item, error, plain=plain, thread=thread)
        elif isinstance(error, OutcomeUnknown):
            await self._unanswered(item, error, request)
        else:  # not sent (NotSent), 5xx answers, others
            await self._transient(item, error)

    async def _photo_refused(
        self, item: OutboxItem, error: BadRequest, *, plain: bool, thread: bool
    ) -> None:
        """Telegram would not take the alert's photo: the same alert goes as text. The row
        says so first, so that whatever happens next (a kill, a retry) sends text."""
        self.stats.photo_fallbacks += 1
        await self._count("photo_refused")
        log.warning(
            "event=photo_refused outbox=%d chat=%d error=%r (sent as text)",
            item.id,
            item.chat_id,
            str(error),
        )
        await self.store.outbox.photo_refused(item.id, str(error))
        await self._attempt(replace(item, photo_refused=True), plain=plain, thread=thread)

    async def _bad_request(
        self, item: OutboxItem, error: BadRequest, *, plain: bool, thread: bool
    ) -> None:
        message = str(error).lower()
        if any(reason in message for reason in UNREACHABLE):
            await self._unreachable(item, str(error))
        elif "can't parse entities" in message and not plain:
            # Our HTML should always be valid: this is a bug. The reader still gets the story.
            self.stats.plain_fallbacks += 1
            await self._count("error.parse_entities")
            log.error(
                "event=html_refused outbox=%d chat=%d error=%r (bug: sent as plain text)",
                item.id,
                item.chat_id,
                str(error),
            )
            await self._attempt(item, plain=True, thread=thread)
        elif ("thread not found" in message or "topic" in message) and thread and item.thread_id:
            # The forum topic was deleted or closed: the chat itself still gets the story.
            log.warning("event=topic_gone chat=%d thread=%s", item.chat_id, item.thread_id)
            await self._attempt(item, plain=plain, thread=False)
        else:
            self.stats.failed += 1
            await self._count("error.bad_request")
            log.error(
                "event=send_refused outbox=%d chat=%d error=%r", item.id, item.chat_id, str(error)
            )
            await self.store.outbox.give_up(item.id, status="failed", error=str(error))

    async def _unreachable(self, item: OutboxItem, reason: str) -> None:
        chat_id = item.chat_id
        queued = self._queues.pop(chat_id, deque())
        dropped = (await self.chats.pause(chat_id)).dropped
        self.stats.dropped += max(dropped, len(queued) + 1)
        await self._count("error.unreachable")
        log.warning("event=chat_unreachable chat=%d reason=%r dropped=%d", chat_id, reason, dropped)

    async def _migrate(self, item: OutboxItem, new_chat_id: int) -> None:
        old = item.chat_id
        await self.chats.migrate(old, new_chat_id)
        self.stats.migrated += 1
        moved = [
            replace(i, chat_id=new_chat_id, chat_kind="supergroup")
            for i in [item, *self._queues.pop(old, deque())]
        ]
        self._queues.setdefault(new_chat_id, deque()).extendleft(reversed(moved))
        self._schedule(new_chat_id)

    async def _unanswered(self, item: OutboxItem, error: OutcomeUnknown, request: int) -> None:
        """The send (`request`) went out and no answer came: Telegram may have delivered it.

        Sending again may make a second copy, so that is done once at most, and only after
        an answer to a later request (_PathProof); after that the message is taken as
        delivered (sent) rather than risk a third.
        """
        self.stats.unanswered += 1
        await self._count("unanswered")
        if item.unanswered + 1 < UNANSWERED_LIMIT:
            self._proof.unanswered_at[item.id] = request
            await self._transient(item, error, unanswered=True)
            return
        await self._assume_delivered(item, item.unanswered + 1, str(error))

    async def _cut_short(self, item: OutboxItem) -> None:
        """The sender is stopping and cancelled this send while it waited for the answer:
        Telegram may have it, so it counts as a send with no answer, and the next start
        sends it once more at most (or takes it as delivered, see _attempt)."""
        self.stats.unanswered += 1
        await self._count("unanswered")
        log.warning("event=send_cut_short outbox=%d chat=%d", item.id, item.chat_id)
        # A database that cannot be reached (the leadership went with it) keeps the row as
        # it was: the next leader sends it once more, within the in-flight rule.
        with contextlib.suppress(DatabaseUnavailableError):
            await self.store.outbox.retry_later(
                item.id,
                not_before=self.clock.now_ms(),
                error="stopped while waiting for Telegram's answer",
                unanswered=True,
            )

    async def _assume_delivered(self, item: OutboxItem, unanswered: int, reason: str) -> None:
        """Stop sending a message whose sends went out unanswered `unanswered` times."""
        self.stats.assumed_delivered += 1
        await self._count("assumed_delivered")
        log.warning(
            "event=send_assumed_delivered outbox=%d chat=%d unanswered=%d error=%r",
            item.id,
            item.chat_id,
            unanswered,
            reason,
        )
        await self.store.outbox.assume_delivered(
            item.id, now_ms=self.clock.now_ms(), unanswered=unanswered, error=reason
        )

    async def _transient(
        self, item: OutboxItem, error: TelegramError, *, unanswered: bool = False
    ) -> None:
        """Try again after a backoff; `unanswered`: this send got no answer (counted apart)."""
        kind = type(error).__name__
        if not unanswered:
            self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
            await self._count(f"error.{kind}")
        age_hours = (self.clock.now_ms() - item.created_at) / 3_600_000
        if age_hours >= self.settings.retry_hours:
            self.stats.failed += 1
            log.error(
                "event=send_given_up outbox=%d chat=%d after=%.1fh error=%r",
                item.id,
                item.chat_id,
                age_hours,
                str(error),
            )
            await self.store.outbox.give_up(item.id, status="failed", error=str(error))
            return
        delay = self._backoff(item.attempts)
        self.stats.retries += 1
        log.warning(
            "event=send_retry outbox=%d chat=%d error=%s retry_in=%.1fs",
            item.id,
            item.chat_id,
            kind,
            delay,
        )
        await self.store.outbox.retry_later(
            item.id,
            not_before=self.clock.now_ms() + int(delay * 1000),
            error=str(error),
            unanswered=unanswered,
        )
        retried = replace(
            item, attempts=item.attempts + 1, unanswered=item.unanswered + int(unanswered)
        )
        self._requeue(retried, delay, count_attempt=False)

    def _backoff(self, attempts: int) -> float:
        """Exponential, with full jitter so a recovering API is not hit by every chat at once."""
        ceiling = min(MAX_BACKOFF, 1.0 * 2 ** min(attempts, 16))
        return self.rng.uniform(ceiling / 2, ceiling)

    def _requeue(self, item: OutboxItem, delay: float, *, count_attempt: bool = True) -> None:
        """Put the message back at the head of its chat's queue; the chat waits `delay`."""
        if count_attempt:
            item = replace(item, attempts=item.attempts + 1)
        loop = asyncio.get_running_loop()
        self._queues.setdefault(item.chat_id, deque()).appendleft(item)
        self.pacer.hold(item.chat_id, loop.time() + delay)

    # --- bookkeeping ------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await self._flush()
            except Exception:
                log.exception("event=mark_sent_failed")

    async def flush(self) -> None:
        """Record what was sent and not yet marked (kept while the database was away)."""
        await self._flush()

    @property
    def unrecorded(self) -> int:
        """Messages sent whose "sent" marks are not written yet."""
        return len(self._sent_ids)

    async def _flush(self) -> None:
        # One flush at a time: a flush that finds nothing left to write must still wait for
        # the one writing (drain() and stop() promise that every delivery is recorded when
        # they return; on PostgreSQL a read on another connection would not wait for it).
        async with self._flushing:
            if not self._sent_ids:
                return
            ids, self._sent_ids = self._sent_ids, []
            try:
                await self.store.outbox.mark_sent(ids, self.clock.now_ms())
            except BaseException:
                self._sent_ids[:0] = ids  # try again next time; never forget a delivery
                raise

    async def _count(self, name: str) -> None:
        try:
            await self.store.outbox.bump_counter(name, self.clock.now_ms())
        except Exception:
            log.exception("event=counter_failed name=%s", name)


class _PathProof:
    """Whether the last try of an unanswered message may go: requests to Telegram (messages
    and probes) are numbered as they go out, and that try waits until a request numbered
    after its unanswered one got an answer, proof that the path works again. Backoff alone
    is not enough: dropped connections come in runs, and a last try that falls in the same
    run is taken as delivered though Telegram never read it (bench/README, Two hours)."""

    def __init__(self) -> None:
        self.requests = 0  # numbered so far
        self.answered = 0  # the highest number that got an answer
        self.run_from = 0  # the number at the sender's start (restart)
        self.unanswered_at: dict[int, int] = {}  # outbox id -> its unanswered request
        self.awaiting: dict[int, int] = {}  # chat id -> the request its held head waits past

    def restart(self) -> None:
        """The sender starts (again) and reads the outbox afresh: a row left with one
        unanswered send, by this run or an earlier one, needs an answer from now on."""
        self.run_from = self.requests
        self.unanswered_at.clear()
        self.awaiting.clear()

    def went_out(self) -> int:
        self.requests += 1
        return self.requests

    def needed_after(self, item: OutboxItem) -> int | None:
        """The request an answered one must follow before `item` goes; None: it may go."""
        if not 0 < item.unanswered < UNANSWERED_LIMIT:
            return None
        after = self.unanswered_at.get(item.id, self.run_from)
        return after if self.answered <= after else None

    def answer(self, request: int) -> list[int]:
        """Telegram answered `request`: the held chats whose head may go now."""
        if request <= self.answered:
            return []
        self.answered = request
        released = [chat for chat, after in self.awaiting.items() if after < request]
        for chat_id in released:
            del self.awaiting[chat_id]
        return released


@dataclass(frozen=True, slots=True)
class _Message:
    """One message to send: HTML text, and the picture it is the caption of ("": none)."""

    text: str
    photo: str = ""


def _is_answer(error: TelegramError) -> bool:
    """Whether the Bot API itself answered (an API error: 400, 403, 429...). A NetworkError
    is no answer, or a transport failure, or a 5xx from Telegram's front whose Bot API
    behind did not answer: none shows that a request would get through."""
    return not isinstance(error, NetworkError)


def _photo_refused(error: BadRequest) -> bool:
    message = str(error).lower()
    return any(reason in message for reason in PHOTO_REFUSED)


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
