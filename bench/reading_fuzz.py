"""Differential fuzz of the tree reader: the shared documents changed at random, then read
by bot/feeds/tree_reader.py and by feedparser.parse, compared key by key for every key the
bot reads (tests/feeds/test_tree_reader.py's comparison).

    .venv/bin/python bench/reading_fuzz.py --seed 1                   # 3 changes of each document
    .venv/bin/python bench/reading_fuzz.py --seed 2 --walk            # every document walked
    .venv/bin/python bench/reading_fuzz.py --seed 3 --changes 8 --in-items 0.3

Each shared document that is XML gets `--copies` mutated copies, each with 1 to `--changes`
changes (tests/feeds/test_tree_reader.py `mutated`: children copied, removed or moved, new
elements the bot reads with odd texts and attributes, xml:base, emptied texts, a relevant
element inside an irrelevant one, foreign attributes), aimed at items or entries with the
probability `--in-items`, else anywhere. A copy that feedparser.parse itself crashes on is
counted and skipped. Found this way: an xml:base on an element the walk left out, and an
image holding what feedparser does not expect there (both fixed).
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import feedparser
from lxml import etree

from bench.common import Verdicts
from bot.feeds import tree_reader
from bot.feeds.plain_reader import NotPlain
from tests.feeds.test_tree_reader import DOCUMENTS, differences, mutated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--changes", type=int, default=4)
    parser.add_argument("--in-items", type=float, default=0.8)
    parser.add_argument("--walk", action="store_true", help="no plain reader: every one walked")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.walk:

        def not_plain(root: object) -> None:
            raise NotPlain("--walk")

        tree_reader.read_plain = not_plain  # type: ignore[assignment]
    xml = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    cases = declined = crashed = 0
    wrong: list[str] = []
    for path in DOCUMENTS:
        try:
            root = etree.fromstring(path.read_bytes(), xml)
        except etree.XMLSyntaxError:
            continue
        for _ in range(args.copies):
            changed = mutated(copy.deepcopy(root), rng, args.changes, args.in_items)
            body = etree.tostring(changed, xml_declaration=True, encoding="utf-8")
            try:
                want = feedparser.parse(
                    body, response_headers={}, sanitize_html=False, resolve_relative_uris=False
                )
            except Exception:  # feedparser's own crash (e.g. TypeError in _end_width)
                crashed += 1
                continue
            cases += 1
            got = tree_reader.read_feed(body, {})
            if got is None:
                declined += 1
                continue
            found = differences(want, got)
            if found:
                wrong.append(f"{path.name}: {found[:2]}")
    print(
        f"seed {args.seed}: {cases} mutated documents compared, {declined} left to feedparser,"
        f" {len(wrong)} read differently; feedparser.parse crashed on {crashed} more"
    )
    for line in wrong[:10]:
        print("  " + line[:600])
    verdicts = Verdicts()
    verdicts.check("every mutated document read as feedparser reads it", not wrong, f"{len(wrong)}")
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
