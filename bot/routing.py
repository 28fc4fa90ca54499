"""Who is alerted about a new story: the feed's instant-mode chats that its keywords let in."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.filters import KeywordIndex
from bot.models import Delivery, NewStory, Recipient

# Decides, for one new story and the feed's instant-mode recipients, who is alerted.
Router = Callable[[NewStory, Sequence[Recipient]], list[Delivery]]


def story_text(title: str, summary: str) -> str:
    """The text keywords are matched against: the title and the summary."""
    return f"{title}\n{summary}" if summary else title


def make_router(index: KeywordIndex) -> Router:
    """A Router that scans each story once with every chat's keywords (Aho-Corasick)."""

    def route(story: NewStory, recipients: Sequence[Recipient]) -> list[Delivery]:
        matches = index.match(story_text(story.entry.title, story.summary))
        # verdicts() answers chats the story's keywords do not touch without a search.
        verdicts = matches.verdicts(r.chat_id for r in recipients)
        deliveries = []
        for recipient in recipients:
            verdict = verdicts[recipient.chat_id]
            if verdict.alert:
                keyword = verdict.keyword.display() if verdict.keyword else None
                deliveries.append(Delivery(recipient.chat_id, recipient.thread_id, keyword))
        return deliveries

    return route
