"""Plain data passed between the pipeline's stages (see README, "One story's way")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    """One feed entry after normalization, before dedupe."""

    feed_id: int
    timestamp_id: int  # publication time in epoch ms (else update time, else first seen)
    identity: str  # stable hash of guid; else normalized link + title; else title + text
    title: str  # plain text, never empty
    link: str  # absolute URL, or "" when the entry has none
    lead_html: str  # the richer of content and description, as HTML
    link_key: str = ""  # normalized link, for cross-feed duplicate detection
    title_key: str = ""  # normalized title, for cross-feed duplicate detection
    image_url: str = ""  # the story's picture (absolute http(s) URL), or "" when it has none


@dataclass(frozen=True, slots=True)
class Story:
    """A story as stored: what alerts and digests are made of."""

    id: int
    feed_id: int
    feed_title: str
    timestamp_id: int
    title: str
    link: str
    summary: str


@dataclass(frozen=True, slots=True)
class NewStory:
    """An entry its feed had never listed before, as just recorded in the seen set."""

    id: int
    entry: Entry
    summary: str


@dataclass(frozen=True, slots=True)
class Recipient:
    """A chat subscribed to a feed (in a forum topic, when thread_id is set)."""

    chat_id: int
    thread_id: int | None
    mode: str  # instant or digest


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert owed: this chat (in this topic) gets this story, because of this keyword."""

    chat_id: int
    thread_id: int | None
    keyword: str | None
