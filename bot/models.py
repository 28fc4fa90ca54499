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
