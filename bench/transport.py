"""Client CPU per sendMessage: PTB's default HTTPXRequest against our AiohttpRequest.

    .venv/bin/python -m bench.transport [--messages 3000] [--in-flight 48] [--rounds 2]

Both transports send the same alert-sized HTML messages through a python-telegram-bot Bot
to the fake Bot API with flood limits off. The fake runs in a child process, so
time.process_time() in this process is the client's CPU alone. Each round runs every
transport once, alternating the order; the table shows the best round per transport
(least disturbed by the rest of the machine).

A third row, "none", answers every call from memory without any network: it is the CPU
python-telegram-bot itself spends per send_message (building the request, parsing the
returned Message), which no transport can remove. A transport's own cost is its row
minus that one.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import telegram
from telegram.request import BaseRequest, HTTPXRequest

from bench.common import Verdicts
from bot.delivery.transport import AiohttpRequest
from tests.fakes.telegram_api import FakeTelegramProcess, FloodLimits

CHATS = 1000
WARM_UP = 200  # messages sent before measuring: connections open, caches filled
ALERT = (
    "<b>Kremlin says talks with Washington will continue &amp; sets no date</b>\n"
    "Russia and the United States will hold further talks on restoring embassy operations, "
    "the Kremlin said on Wednesday, without giving a date for the next meeting…\n"
    '<a href="https://www.voanews.com/a/kremlin-talks/7987654.html">Read more</a> · VOA'
)


@dataclass(frozen=True)
class Result:
    transport: str
    messages: int
    wall_seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.wall_seconds

    @property
    def cpu_ms_per_message(self) -> float:
        return self.cpu_seconds * 1000 / self.messages


class CannedRequest(BaseRequest):
    """Answers every call with the same Message, without a network: PTB's own cost."""

    ANSWER = json.dumps(
        {
            "ok": True,
            "result": {
                "message_id": 1,
                "date": 1740591542,
                "chat": {"id": 1, "type": "private", "first_name": "User"},
                "from": {"id": 1, "is_bot": True, "first_name": "Bot", "username": "bot"},
                "text": "Kremlin says talks with Washington will continue",
                "entities": [{"type": "bold", "offset": 0, "length": 49}],
            },
        }
    ).encode()
    ME = json.dumps(
        {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Bot", "username": "bot"}}
    ).encode()

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(self, url: str, *args: object, **kwargs: object) -> tuple[int, bytes]:
        await asyncio.sleep(0)  # yield like a real transport does
        return 200, self.ME if url.endswith("/getMe") else self.ANSWER


TRANSPORTS: dict[str, Callable[[], BaseRequest]] = {
    "httpx (PTB default)": HTTPXRequest,
    "aiohttp (AiohttpRequest)": AiohttpRequest,
    "none (PTB's own cost)": CannedRequest,
}


async def send_all(bot: telegram.Bot, count: int, in_flight: int) -> None:
    """`count` sendMessage calls with `in_flight` of them outstanding at any time."""
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:  # shared iterator: each number is taken by one worker
            await bot.send_message(number % CHATS + 1, ALERT, parse_mode="HTML")

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def measure(fake: FakeTelegramProcess, name: str, count: int, in_flight: int) -> Result:
    request = TRANSPORTS[name]()
    bot = telegram.Bot(fake.token, base_url=fake.base_url, request=request)
    async with bot:
        await send_all(bot, WARM_UP, in_flight)
        wall, cpu = time.perf_counter(), time.process_time()
        await send_all(bot, count, in_flight)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Result(name, count, wall, cpu)


def run(count: int, in_flight: int, rounds: int, verdicts: Verdicts) -> list[Result]:
    options = {"limits": FloodLimits(enabled=False), "record_requests": False}
    with FakeTelegramProcess(private_chats=range(1, CHATS + 1), **options) as fake:
        results: list[Result] = []
        names = list(TRANSPORTS)
        for round_number in range(rounds):
            order = names if round_number % 2 == 0 else names[::-1]
            for name in order:
                before = fake.stats()
                result = asyncio.run(measure(fake, name, count, in_flight))
                after = fake.stats()
                delivered = after["messages"] - before["messages"]
                if name.startswith("none"):
                    delivered = count + WARM_UP  # answered from memory, nothing reached the fake
                    server_ms = 0.0
                else:
                    verdicts.check(
                        f"check: round {round_number + 1} {name}: every message reached the fake",
                        delivered == count + WARM_UP,
                        f"{delivered} of {count + WARM_UP}",
                    )
                    server_ms = (after["cpu"] - before["cpu"]) * 1000 / max(1, delivered)
                print(f"round {round_number + 1}: {name:<26} {result.per_second:7.0f} msg/s  "
                      f"{result.cpu_ms_per_message:.3f} client CPU ms/msg  "
                      f"(fake: {server_ms:.3f} CPU ms/msg)")  # fmt: skip
                results.append(result)
    return results


def best_per_transport(results: list[Result]) -> list[Result]:
    by_name = itertools.groupby(sorted(results, key=lambda r: r.transport), lambda r: r.transport)
    best = {name: min(group, key=lambda r: r.cpu_seconds) for name, group in by_name}
    return [best[name] for name in TRANSPORTS]


def print_table(results: list[Result], in_flight: int) -> None:
    print()
    print(f"sendMessage x {results[0].messages}, {in_flight} in flight, best round")
    print(f"{'transport':<26} {'msg/s':>8} {'client CPU ms/msg':>18}")
    for result in results:
        print(
            f"{result.transport:<26} {result.per_second:>8.0f} {result.cpu_ms_per_message:>18.3f}"
        )
    httpx, ours, ptb = results
    own = ptb.cpu_ms_per_message
    print(
        f"aiohttp uses {httpx.cpu_ms_per_message / ours.cpu_ms_per_message:.1f}x less client CPU "
        f"per message and is {ours.per_second / httpx.per_second:.1f}x faster; "
        f"transport alone: httpx {httpx.cpu_ms_per_message - own:.3f} ms, "
        f"aiohttp {ours.cpu_ms_per_message - own:.3f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    verdicts = Verdicts()
    results = run(args.messages, args.in_flight, args.rounds, verdicts)
    print_table(best_per_transport(results), args.in_flight)
    return verdicts.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
