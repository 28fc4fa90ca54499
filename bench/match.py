"""Keyword matching: the Aho-Corasick index against a loop over every chat, in one run.

    .venv/bin/python bench/match.py                # 100,000 chats x 5 keywords, 1,000 stories
    .venv/bin/python bench/match.py --chats 2000   # a quick look

Stories are real entries from the feeds in ../shared/feeds/real-world (title + "\\n" +
summary cut to the summary setting's length), 40% of them Chinese or Japanese. Each chat has
5 keywords drawn from a vocabulary mined from the same feeds (English words and two-word
names, Chinese 2-4 character words), with Zipf-Mandelbrot popularity, so a few keywords are
held by thousands of chats; about 1 keyword in 20 is an exclusion. Everything is seeded: two
runs build the same data.

The loop is the fair version: each chat's keywords are folded once beforehand and each story
once per story; only the per-chat search is timed. It runs on a spread subset of the stories
(it is slow), the index is timed on that same subset for the ratio, and on it the two must give
identical verdicts for every chat.
"""

from __future__ import annotations

import argparse
import collections
import gc
import html
import json
import os
import random
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import feedparser

# Run as a script from anywhere: the project is not installed into the venv.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Verdicts, machine_with_versions
from bot.filters import Keyword, KeywordFilter, KeywordIndex, normalize
from tests.paths import SHARED

FEEDS = SHARED / "feeds/real-world"
GOAL_ALERTED_US = 1000.0  # match() + alerts() per story, mean
GOAL_SPEEDUP = 50.0  # alerts() against the loop over every chat
SUMMARY_CHARS = 300  # config/default.toml [summary] max_chars
SUMMARY_CHARS_CJK = 150  # ... max_chars_cjk
CJK_SHARE = 0.4  # of stories, and of chats that follow mostly Chinese keywords
EXCLUDE_SHARE = 0.05  # of keywords
# CPU time of this process, not wall time: the bench runs single-threaded on a machine that
# other jobs share, and their load would otherwise be counted as ours.
CLOCK = time.process_time

_HAN = re.compile(r"[\u4e00-\u9fff]+")
_TAG = re.compile(r"<[^>]+>")
_ENGLISH_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")
_NAME_PAIR = re.compile(r"\b([A-Z][a-z]+) ([A-Z][a-z]+)\b")
# Words nobody filters a news feed by; left out of the English vocabulary.
_STOPWORD_TEXT = """
    a about after all also an and any are as at be been but by can could did do does for
    from had has have he her his how if in into is it its just more most new no not of on
    one or our out over said says she so than that the their them then there these they
    this to two up was we were what when which who will with would you your year years
    first last like get got make made may many much now only other some such time very way
    well
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Characters that rarely start or end a Chinese word (particles, prepositions, pronouns).
_CHINESE_EDGE_NOISE = frozenset(
    "的了是在和与及为等也就都而或被把对从向到说称将这那其之上下有个一不以于他她它们"
)


@dataclass(frozen=True)
class Story:
    text: str  # what the pipeline matches: title, newline, summary cut to length
    cjk: bool
    full: str  # title and the whole description, to mine the vocabulary from


# --- data ------------------------------------------------------------------------------------


def _plain(markup: str) -> str:
    """Feed HTML to text, roughly: good enough for timing, not the product's summarizer."""
    return " ".join(html.unescape(_TAG.sub(" ", markup)).split())


def _is_cjk_text(text: str) -> bool:
    han = sum(1 for ch in text if "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7a3")
    return han > len(text) * 0.3


def load_entries(folder: Path) -> list[Story]:
    """Every entry with a title, as the text the pipeline would match."""
    stories: list[Story] = []
    for path in sorted(folder.glob("*.xml")):
        for entry in feedparser.parse(str(path)).entries:
            title = _plain(entry.get("title", ""))
            if not title:
                continue
            summary = _plain(entry.get("summary", ""))
            cjk = _is_cjk_text(title + summary)
            cut = summary[: SUMMARY_CHARS_CJK if cjk else SUMMARY_CHARS]
            stories.append(Story(f"{title}\n{cut}", cjk, f"{title}\n{summary}"))
    return stories


def pick_stories(entries: Sequence[Story], count: int, rng: random.Random) -> list[Story]:
    """`count` stories, CJK_SHARE of them Chinese or Japanese (entries repeat when needed)."""
    cjk = [story for story in entries if story.cjk]
    other = [story for story in entries if not story.cjk]
    n_cjk = round(count * CJK_SHARE)
    chosen = rng.choices(cjk, k=n_cjk) + rng.choices(other, k=count - n_cjk)
    rng.shuffle(chosen)
    return chosen


def _once(items: Iterable[str]) -> dict[str, int]:
    """Each item counted once, in first-seen order (a set's order would change with string
    hashing from run to run, and with it the ties in most_common())."""
    return dict.fromkeys(items, 1)


def english_vocabulary(entries: Iterable[Story], size: int) -> list[str]:
    """Frequent English words (original case) and capitalized two-word names."""
    words: collections.Counter[str] = collections.Counter()
    names: collections.Counter[str] = collections.Counter()
    for story in entries:
        if story.cjk:
            continue
        words.update(
            _once(w for w in _ENGLISH_WORD.findall(story.full) if w.lower() not in _STOPWORDS)
        )
        names.update(_once(" ".join(pair) for pair in _NAME_PAIR.findall(story.full)))
    by_fold: dict[str, str] = {}
    for word, _ in words.most_common():
        by_fold.setdefault(word.lower(), word)  # keep the most frequent spelling
    phrases = [name for name, _ in names.most_common(size // 10)]
    return (phrases + list(by_fold.values()))[:size]


def chinese_vocabulary(entries: Iterable[Story], size: int) -> list[str]:
    """2-4 character Han strings found in at least two stories, without particle edges."""
    counts: collections.Counter[str] = collections.Counter()
    for story in entries:
        runs = _HAN.findall(story.full)
        counts.update(
            _once(
                run[i : i + n] for run in runs for n in (2, 3, 4) for i in range(len(run) - n + 1)
            )
        )
    words = [
        gram
        for gram, seen in counts.most_common()
        if seen >= 2 and gram[0] not in _CHINESE_EDGE_NOISE and gram[-1] not in _CHINESE_EDGE_NOISE
    ]
    return words[:size]


def zipf_picker(vocabulary: Sequence[str], offset: float, rng: random.Random) -> Callable[[], str]:
    """Draws from `vocabulary` with Zipf-Mandelbrot popularity, 1/(rank + offset), over a
    random ranking. Offset 0 is plain Zipf: there the top keyword of a few thousand is in a
    quarter of all chats; 10 keeps it in a few percent (thousands of chats)."""
    ranked = list(vocabulary)
    rng.shuffle(ranked)
    cumulative: list[float] = []
    total = 0.0
    for rank in range(1, len(ranked) + 1):
        total += 1.0 / (rank + offset)
        cumulative.append(total)
    return lambda: rng.choices(ranked, cum_weights=cumulative)[0]


def _typed(word: str, rng: random.Random) -> str:
    """How a user might type it: some shout, some capitalize."""
    roll = rng.random()
    if roll < 0.1:
        return word.upper()
    if roll < 0.3:
        return word.capitalize()
    return word


def make_chats(
    count: int,
    per_chat: int,
    vocabularies: tuple[Sequence[str], Sequence[str]],
    offset: float,
    rng: random.Random,
) -> list[list[Keyword]]:
    """Each chat's keywords: mostly in one language, a few exclusions, new objects per chat."""
    pick_en, pick_zh = (zipf_picker(words, offset, rng) for words in vocabularies)
    chats: list[list[Keyword]] = []
    for _ in range(count):
        zh_first = rng.random() < CJK_SHARE
        texts: dict[str, None] = {}  # ordered set: a chat's keywords are distinct
        while len(texts) < per_chat:
            use_zh = zh_first if rng.random() < 0.8 else not zh_first
            texts[pick_zh() if use_zh else _typed(pick_en(), rng)] = None
        chats.append([Keyword(text, rng.random() < EXCLUDE_SHARE) for text in texts])
    return chats


def distinct_chats(count: int, per_chat: int, rng: random.Random) -> list[list[Keyword]]:
    """The worst case for rebuilding: no two keywords alike (half Latin, half Han)."""
    latin = "abcdefghijklmnopqrstuvwxyz"
    seen: set[str] = set()
    chats: list[list[Keyword]] = []
    for _ in range(count):
        keywords: list[Keyword] = []
        while len(keywords) < per_chat:
            if rng.random() < 0.5:
                text = "".join(rng.choices(latin, k=rng.randint(4, 10)))
            else:
                text = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(2, 4)))
            if text not in seen:
                seen.add(text)
                keywords.append(Keyword(text))
        chats.append(keywords)
    return chats


# --- measurements ----------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_index(chats: Sequence[Sequence[Keyword]]) -> tuple[KeywordIndex, float, float]:
    """The index over `chats`, with seconds spent in set_chat calls and in the first build."""
    index = KeywordIndex()
    began = CLOCK()
    for chat_id, keywords in enumerate(chats):
        index.set_chat(chat_id, keywords)
    loaded = CLOCK()
    index.rebuild()
    return index, loaded - began, CLOCK() - loaded


def index_memory(chats: Sequence[Sequence[Keyword]]) -> tuple[int, int]:
    """(RSS growth, tracemalloc bytes still held) for building the index; Keywords excluded."""
    gc.collect()
    before = rss_bytes()
    index, _, _ = build_index(chats)
    gc.collect()
    rss = rss_bytes() - before
    del index
    gc.collect()
    tracemalloc.start()
    index, _, _ = build_index(chats)
    traced, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del index
    return rss, traced


def time_index(index: KeywordIndex, stories: Sequence[Story]) -> dict[str, list[float]]:
    """Per-story seconds for: match() alone; match() + alerts(), every alerted chat with the
    keyword to show; match() + a verdict() call for every chat holding a keyword the story
    contains (the same answers, one Python call per chat)."""
    texts = [story.text for story in stories]
    result: dict[str, list[float]] = {"match": [], "alerted": [], "verdicts": [], "touched": []}
    for text in texts:  # warm up: a running bot has seen these characters before
        index.match(text)
    for text in texts:
        began = CLOCK()
        index.match(text)
        result["match"].append(CLOCK() - began)
    for text in texts:
        began = CLOCK()
        index.match(text).alerts()
        result["alerted"].append(CLOCK() - began)
    for text in texts:
        began = CLOCK()
        found = index.match(text)
        touched = found.alerts().keys() | found.excluded_chats()
        for chat_id in touched:
            found.verdict(chat_id)
        result["verdicts"].append(CLOCK() - began)
        result["touched"].append(float(len(touched)))
    return result


def time_loop(filters: Sequence[KeywordFilter], stories: Sequence[Story]) -> list[float]:
    """Per-story seconds for the loop: every chat's keywords searched in the folded story."""
    seconds: list[float] = []
    for story in stories:
        haystack = normalize(story.text)
        began = CLOCK()
        for chat_filter in filters:
            chat_filter.check_normalized(haystack)
        seconds.append(CLOCK() - began)
    return seconds


def disagreements(
    index: KeywordIndex, filters: Sequence[KeywordFilter], stories: Sequence[Story]
) -> int:
    """Chats x stories where the index and the loop give different verdicts (must be 0)."""
    wrong = 0
    chat_ids = range(len(filters))
    for story in stories:
        by_index = index.match(story.text).verdicts(chat_ids)
        haystack = normalize(story.text)
        wrong += sum(by_index[i] != filters[i].check_normalized(haystack) for i in chat_ids)
    return wrong


def time_changes(
    index: KeywordIndex, chats: list[list[Keyword]], probe: str, rng: random.Random, count: int
) -> tuple[float, float]:
    """Mean seconds for one `/keywords add` then the next story's match: with a keyword the
    index already holds, and with a keyword new to it (so the small automaton is rebuilt)."""
    index.rebuild()
    shared = new = 0.0
    for n in range(count):
        chat_id = rng.randrange(len(chats))
        donor = chats[rng.randrange(len(chats))][0]
        began = CLOCK()
        index.set_chat(chat_id, [*chats[chat_id], Keyword(donor.text)])
        index.match(probe)
        shared += CLOCK() - began
        began = CLOCK()
        index.set_chat(chat_id, [*chats[chat_id], Keyword(f"neverseen{n}")])
        index.match(probe)
        new += CLOCK() - began
        index.set_chat(chat_id, chats[chat_id])
    return shared / count, new / count


def time_fresh_at_limit(index: KeywordIndex, chats: list[list[Keyword]], probe: str) -> float:
    """Seconds for the slowest scan short of a full rebuild: the first one after as many new
    keywords as the small automaton takes (1/64 of the terms) have arrived since the last."""
    index.rebuild()
    backlog = max(1024, sum(len(k) for k in chats) // 64)  # KeywordIndex's default rule
    for n in range(backlog):
        chat_id = n % len(chats)
        index.set_chat(chat_id, [*chats[chat_id], Keyword(f"backlog{n}")])
    began = CLOCK()
    index.match(probe)
    return CLOCK() - began


def measure_distinct(chats: list[list[Keyword]], stories: Sequence[Story]) -> dict[str, float]:
    """The worst case for building and scanning: no two keywords of any chats alike."""
    gc.collect()
    before = rss_bytes()
    index, load_s, build_s = build_index(chats)
    gc.collect()
    rss = rss_bytes() - before
    scans = time_index(index, stories)["match"]
    fresh = time_fresh_at_limit(index, chats, stories[0].text)
    began = CLOCK()
    index.rebuild()
    return {
        "distinct_load_s": load_s,
        "distinct_build_s": build_s,
        "distinct_rebuild_s": CLOCK() - began,
        "distinct_memory_rss_mb": rss / 2**20,
        "distinct_match_us": micros(scans),
        "distinct_match_p99_us": p99(scans) * 1e6,
        "distinct_fresh_at_limit_ms": fresh * 1e3,
    }


# --- report ----------------------------------------------------------------------------------


def micros(seconds: Iterable[float]) -> float:
    return statistics.fmean(seconds) * 1e6


def p99(values: Sequence[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * 0.99))]


def machine() -> str:
    return machine_with_versions("pyahocorasick")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--keywords", type=int, default=5, help="per chat")
    parser.add_argument("--stories", type=int, default=1_000)
    parser.add_argument("--loop-stories", type=int, default=20, help="stories for the loop")
    parser.add_argument("--english-words", type=int, default=3_000)
    parser.add_argument("--chinese-words", type=int, default=2_000)
    parser.add_argument("--changes", type=int, default=200, help="keyword changes timed")
    parser.add_argument("--zipf-offset", type=float, default=10.0, help="0 = plain Zipf")
    parser.add_argument("--seed", type=int, default=20250226)
    parser.add_argument("--feeds", type=Path, default=FEEDS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    entries = load_entries(args.feeds)
    english = english_vocabulary(entries, args.english_words)
    chinese = chinese_vocabulary(entries, args.chinese_words)
    stories = pick_stories(entries, args.stories, rng)
    chats = make_chats(args.chats, args.keywords, (english, chinese), args.zipf_offset, rng)
    holders = collections.Counter(k.key for keywords in chats for k in keywords)
    print(
        f"{len(entries)} feed entries -> {len(stories)} stories "
        f"(mean {statistics.fmean(len(s.text) for s in stories):.0f} chars); "
        f"vocabulary {len(english)} English + {len(chinese)} Chinese; "
        f"{len(chats)} chats x {args.keywords} keywords, {len(holders)} distinct, "
        f"most held by {holders.most_common(1)[0][1]} chats"
    )

    index, load_s, build_s = build_index(chats)
    rss, traced = index_memory(chats)
    timings = time_index(index, stories)

    step = max(1, len(stories) // args.loop_stories)
    subset = stories[::step][: args.loop_stories]
    filters = [KeywordFilter(keywords) for keywords in chats]
    loop = time_loop(filters, subset)
    index_on_subset = time_index(index, subset)
    wrong = disagreements(index, filters, subset)
    alerts = sum(
        v.alert for s in subset for v in index.match(s.text).verdicts(range(len(chats))).values()
    )
    del filters

    probe = stories[0].text
    change_shared, change_new = time_changes(index, chats, probe, rng, args.changes)
    del index

    distinct = measure_distinct(
        distinct_chats(args.chats, args.keywords, random.Random(args.seed)), stories
    )

    figures = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "chats": len(chats),
        "keywords_per_chat": args.keywords,
        "distinct_keywords": len(holders),
        "most_held_keyword_chats": holders.most_common(1)[0][1],
        "stories": len(stories),
        "load_s": load_s,
        "build_s": build_s,
        "memory_rss_mb": rss / 2**20,
        "memory_traced_mb": traced / 2**20,
        "match_us": micros(timings["match"]),
        "match_p99_us": p99(timings["match"]) * 1e6,
        "alerted_us": micros(timings["alerted"]),
        "alerted_p99_us": p99(timings["alerted"]) * 1e6,
        "verdicts_us": micros(timings["verdicts"]),
        "verdicts_p99_us": p99(timings["verdicts"]) * 1e6,
        "touched_chats_mean": statistics.fmean(timings["touched"]),
        "touched_chats_max": max(timings["touched"]),
        "loop_stories": len(subset),
        "loop_us": micros(loop),
        "index_verdicts_on_loop_stories_us": micros(index_on_subset["verdicts"]),
        "index_alerted_on_loop_stories_us": micros(index_on_subset["alerted"]),
        "speedup_verdicts": micros(loop) / micros(index_on_subset["verdicts"]),
        "speedup_alerted": micros(loop) / micros(index_on_subset["alerted"]),
        "disagreements": wrong,
        "alerts_on_loop_stories": alerts,
        "change_shared_keyword_ms": change_shared * 1e3,
        "change_new_keyword_ms": change_new * 1e3,
        **distinct,
    }
    print_table(figures)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    verdicts = Verdicts()
    alerted = micros(timings["alerted"])
    verdicts.check(
        f"goal: match() + alerts() < {GOAL_ALERTED_US:.0f} µs a story (mean)",
        alerted < GOAL_ALERTED_US,
        f"{alerted:.0f} µs",
    )
    verdicts.check(
        f"goal: alerts() >= {GOAL_SPEEDUP:.0f}x faster than the loop",
        figures["speedup_alerted"] >= GOAL_SPEEDUP,
        f"{figures['speedup_alerted']:.0f}x",
    )
    verdicts.check(
        "check: the index's verdicts equal the loop's",
        wrong == 0,
        f"{wrong} of {len(subset) * len(chats):,} differ",
    )
    return verdicts.exit_code()


def print_table(f: dict[str, float | int | str]) -> None:
    rows = [
        ("machine", f["machine"]),
        ("index: set_chat for every chat", f"{f['load_s']:.2f} s"),
        ("index: build the automaton", f"{f['build_s']:.2f} s"),
        ("index: memory (RSS growth / tracemalloc)", _mb(f)),
        ("match() per story, mean / p99", f"{f['match_us']:.0f} / {f['match_p99_us']:.0f} µs"),
        (
            "match() + alerts(), mean / p99",
            f"{f['alerted_us']:.0f} / {f['alerted_p99_us']:.0f} µs",
        ),
        (
            "match() + verdict() per touched chat, mean / p99",
            f"{f['verdicts_us']:.0f} / {f['verdicts_p99_us']:.0f} µs",
        ),
        (
            "chats touched per story, mean / max",
            f"{f['touched_chats_mean']:.0f} / {f['touched_chats_max']:.0f}",
        ),
        (f"loop over all chats ({f['loop_stories']} stories)", f"{f['loop_us']:.0f} µs"),
        (
            "index on those stories: alerts() / verdict() each",
            f"{f['index_alerted_on_loop_stories_us']:.0f} / "
            f"{f['index_verdicts_on_loop_stories_us']:.0f} µs",
        ),
        (
            "speed-up over the loop: alerts() / verdict() each",
            f"{f['speedup_alerted']:.0f}x / {f['speedup_verdicts']:.0f}x",
        ),
        (
            "verdicts differing from the loop",
            f"{f['disagreements']} (alerts: {f['alerts_on_loop_stories']})",
        ),
        (
            "keyword change + next match: shared / new keyword",
            f"{f['change_shared_keyword_ms']:.2f} / {f['change_new_keyword_ms']:.2f} ms",
        ),
        (
            f"{f['chats'] * f['keywords_per_chat']:,} distinct keywords: set_chat / build",
            f"{f['distinct_load_s']:.2f} / {f['distinct_build_s']:.2f} s",
        ),
        (
            "  memory (RSS growth); rebuild again",
            f"{f['distinct_memory_rss_mb']:.0f} MiB; {f['distinct_rebuild_s']:.2f} s",
        ),
        (
            "  match() per story, mean / p99",
            f"{f['distinct_match_us']:.0f} / {f['distinct_match_p99_us']:.0f} µs",
        ),
        (
            "  first match after 1/64 new keywords (small automaton full)",
            f"{f['distinct_fresh_at_limit_ms']:.1f} ms",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _mb(f: dict[str, float | int | str]) -> str:
    return f"{f['memory_rss_mb']:.0f} / {f['memory_traced_mb']:.0f} MiB"


if __name__ == "__main__":
    raise SystemExit(main())
