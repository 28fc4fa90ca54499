"""Which hub subscriptions have nobody left to push to: a feed whose last chat left it, or
whose every follower paused (blocked the bot, removed it), on both backends."""

from __future__ import annotations

from bot.store import Store


async def feed_with_hub(store: Store, url: str) -> int:
    feed_id = await store.feeds.add(url, title="", site_url="", now_ms=0)
    added = await store.websub.add(
        feed_id,
        hub="https://hub.test/",
        topic=url,
        token=f"token-{feed_id}",
        callback=f"https://bot.test/websub/token-{feed_id}",
        secret="secret",
        now_ms=0,
    )
    assert added is not None
    return feed_id


async def follow(store: Store, chat_id: int, feed_id: int) -> None:
    await store.chats.upsert(chat_id, kind="private", title="", language="en", now_ms=0)
    await store.chats.subscribe(chat_id, feed_id, thread_id=None, now_ms=0)


async def orphans(store: Store, created_before: int = 1) -> list[int]:
    return sorted(s.feed_id for s in await store.websub.orphaned(created_before=created_before))


async def test_a_feed_is_orphaned_when_no_active_chat_follows_it(store: Store) -> None:
    followed = await feed_with_hub(store, "https://a.test/followed")
    paused_only = await feed_with_hub(store, "https://a.test/paused")
    nobody = await feed_with_hub(store, "https://a.test/nobody")
    await follow(store, 1, followed)
    await follow(store, 2, followed)
    await follow(store, 2, paused_only)
    assert await orphans(store) == [nobody]
    assert await orphans(store, created_before=0) == []  # too new to tell

    await store.chats.pause(2)
    assert await orphans(store) == [paused_only, nobody]
    assert await store.websub.followed_by_paused_chats_only(paused_only)
    assert not await store.websub.followed_by_paused_chats_only(followed)  # chat 1 active
    assert not await store.websub.followed_by_paused_chats_only(nobody)  # being subscribed

    await store.chats.resume(2)
    assert await orphans(store) == [nobody]
    assert not await store.websub.followed_by_paused_chats_only(paused_only)
