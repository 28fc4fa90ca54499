"""One story to 10,000 chats through the real Sender, python-telegram-bot and the fake Bot API.

    .venv/bin/python -m bench.fanout [--chats 10000] [--seconds 20] [--rounds 2]
                                     [--parts a,b,before,pacer,profile] [--use-drain]

The database is a temporary SQLite Store holding one feed, one story (the seed story), the
chats and one pending outbox alert per chat, as `StoryStore.record_check` leaves them. The
Sender (bot/delivery/sender.py) drains that outbox through a `telegram.Bot` on the given
transport to the fake Bot API (tests/fakes/telegram_api/) over loopback. The fake runs in
a child process, so time.process_time() here is the bot's CPU alone (event loop and the
aiosqlite thread); the child also hands back its list of accepted messages (chat id, time),
which is what the figures are computed from.

a   Telegram's limits on: the fake's default FloodLimits (30/s overall, 1/s per chat) and the
    Sender's default DeliverySettings (30/s). The sender runs for `--seconds`, then
    Sender.stop(). Reported: messages accepted per second over that window, 429 answers,
    and messages per second in 1 s bins, drawn into bench/fanout_rate.png (and
    bench/out/fanout_rate.png).
b   Limits lifted: the fake's limits off, the Sender's global pace 100,000/s and 64 messages
    in flight. Every message is sent, once through AiohttpRequest (what the bot uses) and
    once through PTB's default HTTPXRequest, `--rounds` times in alternating order.
    Reported: messages per second from Sender.start() until every row is marked sent, and
    the bot's CPU milliseconds per message.
before
    As b, today's Sender against itself with two changes of 2026-11-26 undone: posting
    urlencoded forms instead of JSON (form_bodies), then also building a telegram.Message
    from every answer (MessageParsingBot), as Bot.send_message does.
pacer
    As a, today's Pacer against NaivePacer, `--rounds` times: a baseline written here, the
    Pacer before its catch-up change (each next slot planned from the moment a message
    starts, so every late wake-up is lost for good).
profile
    One aiohttp run of b under cProfile: where the event loop's time goes.

After every run: each message the fake accepted went to a different chat, and exactly those
chats' outbox rows are marked status='sent' (the others still 'pending'). A run of b waits
for the end by watching Sender.stats; `--use-drain` waits with Sender.drain() instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import telegram
from telegram.request import BaseRequest, HTTPXRequest

import bot.delivery.transport as transport_module
from bench.common import Verdicts, answer_commands, machine, start_child
from bot.clock import SystemClock
from bot.config import DeliverySettings, load_settings
from bot.delivery.pacing import Pacer
from bot.delivery.sender import Sender
from bot.delivery.transport import AiohttpRequest
from bot.store import Store
from tests.fakes.telegram_api import FakeTelegram, FakeTelegramProcess, FloodLimits

BENCH_DIR = Path(__file__).resolve().parent
PNG_NAMES = (BENCH_DIR / "fanout_rate.png", BENCH_DIR / "out" / "fanout_rate.png")
JSON_PATH = BENCH_DIR / "out" / "fanout.json"

# The seed story (../shared/seed/voa-kremlin-20250226.md) as the pipeline stores it.
FEED_URL = "https://feeds.example.org/voachinese.xml"
FEED_TITLE = "美国之音中文网"
STORY_TITLE = "克里姆林宫称正在准备俄美专家级会谈，为特普峰会铺路"
STORY_LINK = (
    "https://www.voachinese.com/a/"
    "kremlin-says-russia-and-us-are-preparing-more-talks-20250226/7988895.html"
)
STORY_SUMMARY = (
    "克里姆林宫周三（2月26日）表示，作为上周美俄高级别会谈及弗拉基米尔·普京（Vladimir Putin）"
    "和唐纳德·特朗普（Donald Trump）总统早些时候通话的后续行动，正在为俄罗斯和美国之间的专家级"
    "会谈做准备。"
)
STORY_TIMESTAMP_ID = 1740591053000

LIFTED_PER_SECOND = 100_000.0  # the Sender's global pace in (b): no pacing in effect
LIFTED_IN_FLIGHT = 64
DRAIN_LIMIT = 600.0  # seconds a (b) run may take before it counts as stuck

Transport = Callable[[int], BaseRequest]


def aiohttp_transport(pool: int) -> BaseRequest:
    """What bot/telegram/app.py builds for the sender's bot (telegram_request)."""
    return AiohttpRequest(
        connection_pool_size=pool,
        read_timeout=10.0,
        write_timeout=20.0,
        connect_timeout=10.0,
        pool_timeout=5.0,
    )


def httpx_transport(pool: int) -> BaseRequest:
    """PTB's default transport, with the same pool and timeouts as AiohttpRequest gets."""
    return HTTPXRequest(
        connection_pool_size=pool,
        read_timeout=10.0,
        write_timeout=20.0,
        connect_timeout=10.0,
        pool_timeout=5.0,
    )


# --------------------------------------------------------------------------------------------
# The Sender as it was before two changes that landed (part "before"), and the Pacer as it
# was before its catch-up change (part "pacer")


class MessageParsingBot:
    """The Sender's sendMessage as it was before 2026-11-26: through Bot.send_message, which
    builds a telegram.Message from every answer (the Sender now calls do_api_request)."""

    def __init__(self, bot: telegram.Bot) -> None:
        self.bot = bot

    async def do_api_request(self, endpoint: str, api_kwargs: dict[str, Any]) -> Any:
        assert endpoint == "sendMessage"
        return await self.bot.send_message(**api_kwargs)


_json_body = transport_module._encode_body


def _form_body(request_data: Any) -> tuple[bytes | Any | None, str | None]:
    """AiohttpRequest's body as it was before 2026-11-26: HTTPXRequest's urlencoded form of
    RequestData.json_parameters (it now posts JSON)."""
    if request_data is None or request_data.contains_files:
        return _json_body(request_data)  # multipart, unchanged
    parameters = request_data.url_encoded_parameters()
    if not parameters:
        return None, None
    return parameters.encode(), "application/x-www-form-urlencoded"


@contextlib.contextmanager
def form_bodies(enabled: bool) -> Any:
    """AiohttpRequest posts urlencoded forms while this is open (a patch of this process)."""
    if enabled:
        transport_module._encode_body = _form_body
    try:
        yield
    finally:
        transport_module._encode_body = _json_body


class NaivePacer(Pacer):
    """A baseline, not the bot's code: the Pacer before its catch-up change (P4, landed in
    bot/delivery/pacing.py). It plans the next global slot from the moment a message starts,
    so each wake-up's lateness (timer granularity, a busy or starved event loop) is lost for
    good and the rate settles below 30/s. Today's Pacer plans from the slot a message
    missed when it is late by less than a gap."""

    def book(self, chat_id: int, now: float) -> None:
        super().book(chat_id, now)
        self.next_global = now + self.global_gap


@dataclass(frozen=True)
class Variant:
    name: str
    transport: Transport
    sender: type[Sender] = Sender
    parse_messages: bool = False  # build a telegram.Message from each answer (before)
    form_body: bool = False  # post urlencoded forms (before)


AIOHTTP = Variant("aiohttp (AiohttpRequest)", aiohttp_transport)
HTTPX = Variant("httpx (PTB HTTPXRequest)", httpx_transport)


def before_and_now() -> tuple[Variant, ...]:
    """Today's Sender, then undoing the two changes of 2026-11-26 one after the other."""
    return (
        Variant("today's Sender, aiohttp", aiohttp_transport),
        Variant("form body (before)", aiohttp_transport, form_body=True),
        Variant(
            "form body + Message parsing (before)",
            aiohttp_transport,
            parse_messages=True,
            form_body=True,
        ),
    )


# --------------------------------------------------------------------------------------------
# The fake Bot API in a child process that can also hand back what it accepted


class RecordingFake(FakeTelegramProcess):
    """FakeTelegramProcess whose child also answers "sent": [(chat id, sent_at), ...]."""

    def start(self, timeout: float = 60.0) -> None:
        self.port = start_child(
            self,
            _serve_in_process,
            (self.private_chats, self.options),
            timeout,
            "the fake Bot API process",
        )

    def sent(self) -> list[tuple[int, float]]:
        self._connection.send("sent")
        return self._connection.recv()

    def __enter__(self) -> RecordingFake:
        self.start()
        return self


def _serve_in_process(connection: Any, private_chats: list[int], options: dict[str, Any]) -> None:
    asyncio.run(_serve(connection, private_chats, options))


async def _serve(connection: Any, private_chats: list[int], options: dict[str, Any]) -> None:
    async with FakeTelegram(**options) as fake:
        for user_id in private_chats:
            fake.private_chat(fake.add_user(user_id))
        connection.send(fake.port)
        await answer_commands(
            connection,
            {
                "stats": lambda: {**fake.stats(), "cpu": time.process_time()},
                "sent": lambda: [(m.chat_id, m.sent_at) for m in fake.sent],
            },
        )
    with contextlib.suppress(OSError):
        connection.send("stopped")


# --------------------------------------------------------------------------------------------
# The store: one feed, one story, the chats and their pending alerts


async def seed_store(store: Store, chat_ids: Collection[int]) -> int:
    """Write what record_check leaves after the story arrived; returns the story id."""
    now_ms = int(time.time() * 1000)
    async with store.db.transaction() as conn:
        row = await conn.fetchone(
            "INSERT INTO feeds (url, title, next_check_at, primed_at, created_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (FEED_URL, FEED_TITLE, now_ms, now_ms, now_ms),
        )
        assert row is not None
        feed_id = row[0]
        row = await conn.fetchone(
            "INSERT INTO stories (feed_id, identity, timestamp_id, title, link, summary,"
            " first_seen_at, last_present_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                feed_id,
                "guid:7988895",
                STORY_TIMESTAMP_ID,
                STORY_TITLE,
                STORY_LINK,
                STORY_SUMMARY,
                now_ms,
                now_ms,
            ),
        )
        assert row is not None
        story_id = row[0]
        await conn.executemany(
            "INSERT INTO chats (id, kind, title, language, created_at)"
            " VALUES (?, 'private', '', 'zh', ?)",
            [(chat_id, now_ms) for chat_id in chat_ids],
        )
        await conn.executemany(
            "INSERT INTO subscriptions (chat_id, feed_id, created_at) VALUES (?, ?, ?)",
            [(chat_id, feed_id, now_ms) for chat_id in chat_ids],
        )
        await conn.executemany(
            "INSERT INTO outbox (chat_id, kind, story_id, status, not_before, created_at)"
            " VALUES (?, 'alert', ?, 'pending', ?, ?)",
            [(chat_id, story_id, now_ms, now_ms) for chat_id in chat_ids],
        )
    return int(story_id)


async def outbox_status(store: Store) -> dict[str, set[int]]:
    """Chat ids by outbox status."""
    rows = await store.db.fetchall("SELECT status, chat_id FROM outbox")
    by_status: dict[str, set[int]] = {}
    for status, chat_id in rows:
        by_status.setdefault(status, set()).add(chat_id)
    return by_status


@dataclass
class Check:
    accepted: int  # messages the fake accepted
    unique_chats: int  # distinct chats among them
    marked_sent: int  # outbox rows with status 'sent'
    pending: int
    other: int  # rows neither sent nor pending (dropped, failed)
    ok: bool
    problems: list[str]


def check_delivery(
    sent: list[tuple[int, float]], by_status: dict[str, set[int]], sender_sent: int
) -> Check:
    chats = Counter(chat_id for chat_id, _ in sent)
    accepted = set(chats)
    marked = by_status.get("sent", set())
    pending = by_status.get("pending", set())
    other = sum(len(ids) for status, ids in by_status.items() if status not in ("sent", "pending"))
    problems = []
    twice = [chat_id for chat_id, count in chats.items() if count > 1]
    if twice:
        problems.append(f"{len(twice)} chats got the story more than once, e.g. {twice[:5]}")
    if accepted - marked:
        problems.append(f"{len(accepted - marked)} accepted messages not marked sent")
    if marked - accepted:
        problems.append(f"{len(marked - accepted)} rows marked sent that the fake never accepted")
    if other:
        problems.append(f"{other} rows dropped or failed")
    if sender_sent != len(sent):
        problems.append(f"Sender counted {sender_sent} sent, the fake accepted {len(sent)}")
    return Check(
        accepted=len(sent),
        unique_chats=len(accepted),
        marked_sent=len(marked),
        pending=len(pending),
        other=other,
        ok=not problems,
        problems=problems,
    )


# --------------------------------------------------------------------------------------------
# (a) Telegram's limits on


@dataclass
class LimitedResult:
    seconds: float
    in_window: int  # accepted within [start, start + seconds]
    after_stop: int  # accepted after the window (in flight when stop was asked)
    rate: float  # in_window / seconds
    steady_rate: float  # (n - 1) / (last - first) over the window's messages
    first_latency_ms: float  # start() to the first accepted message
    retry_after: int  # 429 answers (the fake's count)
    flood_waits: int  # 429s the Sender saw
    bins: list[int]  # accepted per 1 s bin from start
    cpu_ms_per_message: float
    load: float  # the machine's 1-minute load average at the end of the run
    check: Check


async def run_limited(
    fake: RecordingFake,
    settings: DeliverySettings,
    seconds: float,
    n: int,
    pacer: type[Pacer] = Pacer,
) -> LimitedResult:
    with tempfile.TemporaryDirectory(prefix="fanout-") as folder:
        store = await Store.open(os.path.join(folder, "bench.sqlite3"))
        try:
            await seed_store(store, range(1, n + 1))
            request = aiohttp_transport(settings.max_in_flight + 4)
            bot = telegram.Bot(fake.token, base_url=fake.base_url, request=request)
            async with bot:
                clock = SystemClock()
                sender = Sender(store, bot, settings, clock, pacer=pacer(settings), seed=1)
                before = fake.stats()
                cpu = time.process_time()
                start = time.time()
                await sender.start()
                await asyncio.sleep(seconds)
                await sender.stop()
                cpu = time.process_time() - cpu
                after = fake.stats()
            sent = fake.sent()
            check = check_delivery(sent, await outbox_status(store), sender.stats.sent)
        finally:
            await store.close()
    end = start + seconds
    times = sorted(t for _, t in sent)
    window = [t for t in times if t <= end]
    bins = [0] * math.ceil(seconds)
    for t in window:
        bins[min(int(t - start), len(bins) - 1)] += 1
    steady = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 else 0.0
    return LimitedResult(
        seconds=seconds,
        in_window=len(window),
        after_stop=len(times) - len(window),
        rate=len(window) / seconds,
        steady_rate=steady,
        first_latency_ms=(times[0] - start) * 1000 if times else math.nan,
        retry_after=after["retry_after"] - before["retry_after"],
        flood_waits=sender.stats.flood_waits,
        bins=bins,
        cpu_ms_per_message=cpu * 1000 / max(1, len(times)),
        load=os.getloadavg()[0],
        check=check,
    )


def plot(result: LimitedResult, limit: float, chats: int, machine: str, load: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    seconds = [i + 0.5 for i in range(len(result.bins))]
    ax.bar(seconds, result.bins, width=0.85, color="#4878a8", label="messages accepted (1 s bins)")
    ax.axhline(limit, color="#c0392b", linestyle="--", linewidth=1.2, label=f"{limit:g}/s limit")
    goal = 0.95 * limit
    ax.axhline(goal, color="#555555", linestyle=":", linewidth=1.0, label=f"goal {goal:g}/s")
    ax.set_xlim(0, len(result.bins))
    ax.set_ylim(0, limit * 1.35)
    ax.set_xlabel("seconds since Sender.start()")
    ax.set_ylabel("messages per second")
    ax.set_title(
        f"One story to {chats:,} chats under Telegram's limits: {result.rate:.2f} messages/s "
        f"over {result.seconds:g} s, {result.retry_after} answers 429",
        fontsize=10,
    )
    ax.legend(loc="upper right", ncol=3, fontsize=8)
    footer = f"{machine}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average {load:.1f}"
    fig.text(0.99, 0.01, footer, ha="right", va="bottom", fontsize=7, color="#666666")
    fig.tight_layout()
    for path in PNG_NAMES:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# (b) Limits lifted


async def all_done(sender: Sender, n: int, within: float) -> bool:
    """Wait until the Sender has dealt with all `n` rows (without touching the outbox)."""
    deadline = time.monotonic() + within
    stats = sender.stats
    while stats.sent + stats.failed + stats.dropped < n:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


@dataclass
class LiftedResult:
    variant: str
    load: float  # the machine's 1-minute load average at the end of the run
    messages: int
    wall_seconds: float  # Sender.start() until every row is marked sent
    last_accept_seconds: float  # Sender.start() until the fake accepted the last message
    cpu_seconds: float  # the whole process
    loop_cpu_seconds: float  # the event loop's thread alone (the rest: aiosqlite's thread)
    fake_cpu_seconds: float  # the fake Bot API's process, for comparison
    refills: int  # outbox queries the Sender made (pending_after)
    check: Check

    @property
    def per_second(self) -> float:
        return self.messages / self.wall_seconds

    @property
    def cpu_ms_per_message(self) -> float:
        return self.cpu_seconds * 1000 / self.messages

    @property
    def loop_cpu_ms_per_message(self) -> float:
        return self.loop_cpu_seconds * 1000 / self.messages

    @property
    def loop_busy(self) -> float:
        """Share of the wall time the event loop's thread was on a CPU."""
        return self.loop_cpu_seconds / self.wall_seconds

    @property
    def fake_cpu_ms_per_message(self) -> float:
        return self.fake_cpu_seconds * 1000 / self.messages


async def run_lifted(
    fake: RecordingFake,
    settings: DeliverySettings,
    variant: Variant,
    n: int,
    profiler: cProfile.Profile | None = None,
    use_drain: bool = False,
) -> LiftedResult:
    with tempfile.TemporaryDirectory(prefix="fanout-") as folder:
        store = await Store.open(os.path.join(folder, "bench.sqlite3"))
        try:
            await seed_store(store, range(1, n + 1))
            refills = 0
            pending_after = store.outbox.pending_after

            async def counted(after_id: int, limit: int) -> Any:
                nonlocal refills
                refills += 1
                return await pending_after(after_id, limit)

            store.outbox.pending_after = counted  # type: ignore[method-assign]
            request = variant.transport(settings.max_in_flight + 4)
            bot = telegram.Bot(fake.token, base_url=fake.base_url, request=request)
            async with bot:
                sending = (
                    cast(telegram.Bot, MessageParsingBot(bot)) if variant.parse_messages else bot
                )
                sender = variant.sender(store, sending, settings, SystemClock(), seed=1)
                fake_cpu = fake.stats()["cpu"]
                if profiler:
                    profiler.enable()
                cpu, loop_cpu = time.process_time(), time.thread_time()
                start = time.time()
                await sender.start()
                if use_drain:
                    drained = await sender.drain(within=DRAIN_LIMIT)
                else:
                    drained = await all_done(sender, n, DRAIN_LIMIT)
                await sender.stop()  # flushes the last "sent" marks
                wall = time.time() - start
                cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
                if profiler:
                    profiler.disable()
                fake_cpu = fake.stats()["cpu"] - fake_cpu
            if not drained:
                raise SystemExit(f"{variant.name}: not done within {DRAIN_LIMIT:.0f} s")
            sent = fake.sent()
            check = check_delivery(sent, await outbox_status(store), sender.stats.sent)
        finally:
            await store.close()
    return LiftedResult(
        variant=variant.name,
        load=os.getloadavg()[0],
        messages=len(sent),
        wall_seconds=wall,
        last_accept_seconds=max(t for _, t in sent) - start,
        cpu_seconds=cpu,
        loop_cpu_seconds=loop_cpu,
        fake_cpu_seconds=fake_cpu,
        refills=refills,
        check=check,
    )


# --------------------------------------------------------------------------------------------
# Running it all


def print_check(check: Check, verdicts: Verdicts, label: str) -> None:
    verdicts.check(
        f"check: {label}: none twice, exactly the accepted marked sent",
        check.ok,
        f"{check.accepted} accepted by the fake, {check.unique_chats} distinct chats, "
        f"{check.marked_sent} rows marked sent, {check.pending} pending, {check.other} other"
        + ("" if check.ok else "; " + "; ".join(check.problems)),
    )


def limited(
    n: int, seconds: float, defaults: DeliverySettings, machine_text: str, verdicts: Verdicts
) -> Any:
    print(
        f"(a) Telegram's limits on: fake FloodLimits() defaults, Sender DeliverySettings defaults "
        f"(global_per_second={defaults.global_per_second:g}, "
        f"max_in_flight={defaults.max_in_flight}), {seconds:g} s"
    )
    options = {"limits": FloodLimits(), "record_requests": False}
    with RecordingFake(private_chats=range(1, n + 1), **options) as fake:
        result = asyncio.run(run_limited(fake, defaults, seconds, n))
    goal = 0.95 * defaults.global_per_second
    print(
        f"  {result.in_window} messages accepted in {seconds:g} s: {result.rate:.2f}/s; "
        f"steady {result.steady_rate:.2f}/s first to last; first message after "
        f"{result.first_latency_ms:.0f} ms; {result.after_stop} more finished during stop()"
    )
    print(
        f"  429 answers: {result.retry_after}; Sender flood waits: "
        f"{result.flood_waits}; bot CPU {result.cpu_ms_per_message:.2f} ms/msg; "
        f"load {result.load:.1f}"
    )
    print(f"  per 1 s bin: {' '.join(str(b) for b in result.bins)}")
    verdicts.check(f"goal: (a) >= {goal:.1f}/s", result.rate >= goal, f"{result.rate:.2f}/s")
    verdicts.check("goal: (a) no 429", result.retry_after == 0, f"{result.retry_after} x 429")
    print_check(result.check, verdicts, "(a)")
    plot(result, defaults.global_per_second, n, machine_text, result.load)
    print(f"  plot: {', '.join(str(p.relative_to(BENCH_DIR.parent)) for p in PNG_NAMES)}")
    return result


def pacers(
    n: int, seconds: float, rounds: int, defaults: DeliverySettings, verdicts: Verdicts
) -> list[Any]:
    """Part a with today's Pacer and with NaivePacer (the baseline), alternating."""
    print()
    print(
        f"(pacer) part a with today's Pacer and with NaivePacer (a baseline written in the"
        f" bench: the Pacer before its catch-up change), {seconds:g} s each"
    )
    options = {"limits": FloodLimits(), "record_requests": False}
    results = []
    for round_number in range(rounds):
        order = (Pacer, NaivePacer) if round_number % 2 == 0 else (NaivePacer, Pacer)
        for pacer in order:
            with RecordingFake(private_chats=range(1, n + 1), **options) as fake:
                result = asyncio.run(run_limited(fake, defaults, seconds, n, pacer))
            print(
                f"  round {round_number + 1}: {pacer.__name__:<12} {result.rate:6.2f}/s over "
                f"{seconds:g} s (steady {result.steady_rate:.2f}/s), {result.retry_after} x 429, "
                f"most in one 1 s bin {max(result.bins)}, load {result.load:.1f}"
            )
            label = f"(pacer) round {round_number + 1} {pacer.__name__}"
            verdicts.check(f"goal: {label} no 429", result.retry_after == 0)
            print_check(result.check, verdicts, label)
            results.append({"pacer": pacer.__name__, **asdict(result)})
    for pacer in (Pacer, NaivePacer):
        rates = [r["rate"] for r in results if r["pacer"] == pacer.__name__]
        span = f"{min(rates):.2f}-{max(rates):.2f}/s"
        print(f"  {pacer.__name__:<12} rate over {len(rates)} runs: {span}")
    return results


def lifted_settings(defaults: DeliverySettings) -> DeliverySettings:
    return replace(defaults, global_per_second=LIFTED_PER_SECOND, max_in_flight=LIFTED_IN_FLIGHT)


def run_variant(
    variant: Variant,
    n: int,
    settings: DeliverySettings,
    *,
    profiler: cProfile.Profile | None = None,
    use_drain: bool = False,
) -> LiftedResult:
    """One run of b on a fresh fake and a fresh store."""
    options = {"limits": FloodLimits(enabled=False), "record_requests": False}
    with (
        RecordingFake(private_chats=range(1, n + 1), **options) as fake,
        form_bodies(variant.form_body),
    ):
        return asyncio.run(run_lifted(fake, settings, variant, n, profiler, use_drain))


def compare(
    title: str,
    variants: Sequence[Variant],
    n: int,
    rounds: int,
    defaults: DeliverySettings,
    use_drain: bool,
    verdicts: Verdicts,
) -> list[LiftedResult]:
    """Every variant once per round (order reversed every other round); best round each."""
    settings = lifted_settings(defaults)
    print()
    print(
        f"{title}: fake FloodLimits(enabled=False), Sender global_per_second="
        f"{settings.global_per_second:g}, max_in_flight={settings.max_in_flight}, "
        f"{n} messages per run{', waiting with Sender.drain()' if use_drain else ''}"
    )
    results: list[LiftedResult] = []
    for round_number in range(rounds):
        order = variants if round_number % 2 == 0 else variants[::-1]
        for variant in order:
            result = run_variant(variant, n, settings, use_drain=use_drain)
            print(
                f"  round {round_number + 1}: {variant.name:<25} {result.per_second:6.0f} msg/s "
                f"{result.cpu_ms_per_message:6.3f} CPU ms/msg (event loop "
                f"{result.loop_cpu_ms_per_message:.3f}; fake {result.fake_cpu_ms_per_message:.3f})"
                f"  event loop on a CPU {100 * result.loop_busy:.0f}% of "
                f"{result.wall_seconds:.2f} s  {result.refills} outbox reads  "
                f"load {result.load:.1f}"
            )
            print_check(result.check, verdicts, f"round {round_number + 1} {variant.name}")
            results.append(result)
    best = {
        v.name: max((r for r in results if r.variant == v.name), key=lambda r: r.per_second)
        for v in variants
    }
    print(
        f"  fastest of {rounds} rounds per variant  msg/s  bot CPU ms/msg  (event loop)  "
        f"loop on CPU  fake CPU ms/msg"
    )
    for result in best.values():
        print(
            f"  {result.variant:<32} {result.per_second:6.0f} {result.cpu_ms_per_message:15.3f} "
            f"{result.loop_cpu_ms_per_message:13.3f} {100 * result.loop_busy:11.0f}% "
            f"{result.fake_cpu_ms_per_message:15.3f}"
        )
    return results


def lifted(
    n: int, rounds: int, defaults: DeliverySettings, use_drain: bool, verdicts: Verdicts
) -> list[LiftedResult]:
    results = compare(
        "(b) limits lifted", (AIOHTTP, HTTPX), n, rounds, defaults, use_drain, verdicts
    )
    ours = max((r for r in results if r.variant == AIOHTTP.name), key=lambda r: r.per_second)
    theirs = max((r for r in results if r.variant == HTTPX.name), key=lambda r: r.per_second)
    print(
        f"  aiohttp: {ours.per_second / theirs.per_second:.1f}x the messages per second of "
        f"httpx, {theirs.cpu_ms_per_message / ours.cpu_ms_per_message:.1f}x less CPU per "
        "message"
    )
    verdicts.check(
        "goal: (b) aiohttp >= 1000 msg/s (fastest round)",
        ours.per_second >= 1000,
        f"{ours.per_second:.0f} msg/s",
    )
    return results


# Where main-thread CPU goes, by the file a function lives in (first match wins).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Sender and Pacer (bot/delivery/sender.py, pacing.py)", ("bot/delivery/sender", "pacing")),
    ("rendering the alert (format.py, zoneinfo, datetime)", ("format.py", "zoneinfo", "datetime")),
    ("store and aiosqlite, event-loop side", ("bot/store/", "aiosqlite", "sqlite3")),
    ("AiohttpRequest (bot/delivery/transport.py)", ("bot/delivery/transport",)),
    (
        "PTB: parsing the returned Message",
        (
            "telegram/_message",
            "telegram/_telegramobject",
            "telegram/_utils/argumentparsing",
            "telegram/_chat",
            "telegram/_user",
            "telegram/_messageentity",
            "telegram/_utils/datetime",
            "telegram/_linkpreview",
        ),
    ),
    ("PTB: building the request, Bot.send_message", ("telegram/",)),
    ("form encoding (urllib.parse.urlencode, for PTB)", ("urllib/parse",)),
    ("json", ("json/",)),
    ("aiohttp, yarl, multidict (HTTP client)", ("aiohttp/", "yarl/", "multidict/")),
    ("asyncio event loop, selectors, sockets", ("asyncio/", "selectors", "socket", "contextvars")),
)


def area_of(filename: str) -> str:
    for area, needles in AREAS:
        if any(needle in filename for needle in needles):
            return area
    return "other"


def breakdown(stats: pstats.Stats) -> dict[str, float]:
    """Own time per area; a builtin's time goes to the areas of its callers."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    areas: Counter[str] = Counter()
    for (filename, _line, name), (_cc, _nc, tottime, _ct, callers) in table.items():
        if filename != "~":
            areas[area_of(filename)] += tottime
            continue
        if "epoll" in name or "select" in name:  # waiting, or the loop's own work
            areas["asyncio event loop, selectors, sockets"] += tottime
            continue
        spread = sum(c[2] for c in callers.values()) or 1.0
        for (caller_file, _l, _n), caller in callers.items():
            areas[area_of(caller_file)] += tottime * caller[2] / spread
    return dict(areas.most_common())


def profile(n: int, defaults: DeliverySettings, verdicts: Verdicts, top: int = 25) -> None:
    print()
    print("(profile) b under cProfile, aiohttp; event-loop thread only, times inflated ~3x")
    profiler = cProfile.Profile()
    result = run_variant(AIOHTTP, n, lifted_settings(defaults), profiler=profiler)
    print(
        f"  {result.per_second:.0f} msg/s, {result.cpu_ms_per_message:.3f} CPU ms/msg "
        f"({result.loop_cpu_ms_per_message:.3f} on the event loop's thread), "
        f"{result.refills} outbox reads"
    )
    print_check(result.check, verdicts, "(profile)")
    path = JSON_PATH.with_name("fanout.prof")
    profiler.dump_stats(path)
    stats = pstats.Stats(profiler)
    areas = breakdown(stats)
    total = sum(areas.values())
    print(f"  event-loop own time by area ({total:.2f} s profiled; pstats: bench/out/{path.name}):")
    for area, seconds in areas.items():
        print(f"    {area:<55} {seconds:6.2f} s {100 * seconds / total:5.1f}%")
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for name in ("_run", "_refill", "_flush", "_schedule", "_deliver", "_attempt", "_render"):
        for (filename, _line, func), (_cc, calls, own, cumulative, _callers) in table.items():
            if func == name and filename.endswith("bot/delivery/sender.py"):
                print(f"    Sender.{name:<10} calls {calls:6d}  own {own:5.2f} s  with callees "
                      f"{cumulative:5.2f} s")  # fmt: skip
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())


PARTS = ("a", "b", "before", "pacer", "profile")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of part a")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of parts b and before")
    parser.add_argument(
        "--parts", default="a,b", help=f"comma-separated, from {','.join(PARTS)} (default a,b)"
    )
    parser.add_argument(
        "--use-drain", action="store_true", help="b waits with Sender.drain(), not Sender.stats"
    )
    args = parser.parse_args()
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    if not parts or any(part not in PARTS for part in parts):
        parser.error(f"--parts takes a comma-separated list from {', '.join(PARTS)}")

    defaults = load_settings(environ={}).delivery
    machine_text = machine()
    now = datetime.now(UTC)
    print(
        f"bench.fanout: {args.chats} chats; {machine_text}; {now:%Y-%m-%d %H:%M} UTC; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    record: dict[str, Any] = {"machine": machine_text, "date": now.isoformat(), "chats": args.chats}

    def rows(results: list[LiftedResult]) -> list[dict[str, Any]]:
        return [
            {
                **asdict(r),
                "per_second": r.per_second,
                "cpu_ms_per_message": r.cpu_ms_per_message,
                "loop_busy": r.loop_busy,
            }
            for r in results
        ]

    verdicts = Verdicts()
    if "a" in parts:
        record["a"] = asdict(limited(args.chats, args.seconds, defaults, machine_text, verdicts))
    if "b" in parts:
        record["b"] = rows(lifted(args.chats, args.rounds, defaults, args.use_drain, verdicts))
    if "before" in parts:
        title = "(before) the Sender before and after the changes of 2026-11-26"
        variants = before_and_now()
        record["before"] = rows(
            compare(title, variants, args.chats, args.rounds, defaults, args.use_drain, verdicts)
        )
    if "pacer" in parts:
        record["pacer"] = pacers(args.chats, args.seconds, args.rounds, defaults, verdicts)
    path = JSON_PATH if parts == ["a", "b"] else JSON_PATH.with_stem(f"fanout-{'-'.join(parts)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False))
    print(f"\nfigures: {path.relative_to(BENCH_DIR.parent)}")
    if "profile" in parts:
        profile(args.chats, defaults, verdicts)
    return verdicts.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
