"""Whether two checkouts read every shared document the same: what a change to parsing
(bot/feeds/tree_reader.py, plain_reader.py) must not change.

    .venv/bin/python bench/same_readings.py --against /work/wt/old16
    .venv/bin/python bench/same_readings.py --against /work/wt/old16 --content-type text/xml

Each checkout (this one, and the one given, run with this venv's Python from its own
directory so its own bot/ is imported) reads every document of ../shared/feeds through
parse_and_normalize and summarize_all, as a poller check does: the feed's title, site, hubs,
self URL and ttl, and for each entry its identity, timestamp id, title, link, link and title
keys, picture and summary. The two readings are compared document by document; "now" is
fixed, so undated entries compare too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Verdicts

NOW_MS = 1_740_787_200_000  # 2025-03-01, later than every entry of the shared documents


def read_all(content_type: str | None) -> dict[str, Any]:
    """This checkout's reading of every shared document (run inside the checkout)."""
    from bot.config import load_settings
    from bot.errors import NotAFeedError
    from bot.feeds.pipeline import parse_and_normalize, summarize_all
    from tests.paths import SHARED

    settings = load_settings({})
    paths = sorted((SHARED / "feeds/crawl-sample").glob("*.dat"))
    paths += sorted((SHARED / "feeds/real-world").glob("*.xml"))
    readings: dict[str, Any] = {}
    for path in paths:
        try:
            feed = parse_and_normalize(
                path.read_bytes(),
                url="https://example.com/feed",
                content_type=content_type,
                feed_id=1,
                now_ms=NOW_MS,
            )
        except NotAFeedError as error:
            readings[path.name] = f"not a feed: {error}"
            continue
        summaries = summarize_all(feed.entries, settings)
        document = feed.document
        readings[path.name] = {
            "feed": [
                document.title,
                document.site_url,
                list(document.hubs),
                document.self_url,
                document.ttl_seconds,
            ],
            "entries": [
                [
                    e.identity,
                    e.timestamp_id,
                    e.title,
                    e.link,
                    e.link_key,
                    e.title_key,
                    e.image_url,
                    summaries[e.identity],
                ]
                for e in feed.entries
            ],
        }
    return readings


def reading_of(checkout: Path, content_type: str | None, out: Path) -> dict[str, Any]:
    """`checkout`'s reading: read_all's source run in a fresh process there, with the
    checkout first on sys.path so that its own bot/ is the one imported."""
    code = "\n".join(
        [
            "import json, sys",
            "from typing import Any",
            "sys.path.insert(0, '.')",
            f"NOW_MS = {NOW_MS}",
            inspect.getsource(read_all),
            f"json.dump(read_all({content_type!r}), open({str(out)!r}, 'w'), ensure_ascii=False)",
        ]
    )
    subprocess.run([sys.executable, "-c", code], cwd=checkout, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, help="the other checkout's directory")
    parser.add_argument("--content-type", help="the HTTP Content-Type every document comes with")
    args = parser.parse_args()
    if args.against is None:
        parser.error("--against is required")
    here = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        ours = reading_of(here, args.content_type, Path(scratch) / "ours.json")
        theirs = reading_of(
            args.against.resolve(), args.content_type, Path(scratch) / "theirs.json"
        )
    differ = sorted(
        name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name)
    )
    entries = sum(len(r["entries"]) for r in ours.values() if isinstance(r, dict))
    print(f"{len(ours)} documents, {entries} entries read here; {len(differ)} read differently")
    for name in differ[:10]:
        print(f"  {name}: here {str(ours.get(name))[:300]}\n  there {str(theirs.get(name))[:300]}")
    verdicts = Verdicts()
    verdicts.check(
        "every shared document read the same here and there",
        not differ and len(ours) == len(theirs),
        f"{len(differ)} differ",
    )
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
