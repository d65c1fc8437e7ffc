"""The dashboard's view cache: fresh, stale-while-revalidate, kept warm while watched."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from local_telemetry.dashboard.page_cache import PageCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting_build(values: list[int]) -> Callable[[], Awaitable[int]]:
    async def build() -> int:
        values.append(len(values) + 1)
        return values[-1]

    return build


def test_fresh_views_are_served_without_building() -> None:
    async def scenario() -> None:
        clock = Clock()
        cache = PageCache(fresh=10, keep=300, watch=300, clock=clock)
        built: list[int] = []
        build = counting_build(built)
        assert await cache.view(("a",), build) == 1
        clock.now += 9
        assert await cache.view(("a",), build) == 1
        assert built == [1]
        assert await cache.view(("b",), build) == 2  # another key is its own view

    asyncio.run(scenario())


def test_stale_views_are_served_while_one_rebuild_runs() -> None:
    async def scenario() -> None:
        clock = Clock()
        cache = PageCache(fresh=10, keep=300, watch=300, clock=clock)
        built: list[int] = []
        build = counting_build(built)
        await cache.view(("a",), build)
        clock.now += 11
        assert await cache.view(("a",), build) == 1  # stale, served at once
        assert await cache.view(("a",), build) == 1  # one rebuild only
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert built == [1, 2]
        assert await cache.view(("a",), build) == 2
        clock.now += 301  # older than keep: built while the request waits
        assert await cache.view(("a",), build) == 3

    asyncio.run(scenario())


def test_warm_rebuilds_watched_views_and_drops_forgotten_ones() -> None:
    async def scenario() -> None:
        clock = Clock()
        cache = PageCache(fresh=10, keep=300, watch=60, clock=clock)
        watched: list[int] = []
        forgotten: list[int] = []
        await cache.view(("watched",), counting_build(watched))
        await cache.view(("forgotten",), counting_build(forgotten))
        clock.now += 5
        assert await cache.warm() == 0  # both fresh
        clock.now += 30
        await cache.view(("watched",), counting_build(watched))  # someone looks again
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        clock.now += 40  # 'forgotten' last opened 75 s ago: dropped
        assert await cache.warm() == 1
        assert watched[-1] == len(watched) >= 2
        assert forgotten == [1]
        assert await cache.view(("forgotten",), counting_build(forgotten)) == 2

    asyncio.run(scenario())


def test_the_least_recently_used_view_makes_room() -> None:
    async def scenario() -> None:
        clock = Clock()
        cache = PageCache(entries=2, clock=clock)
        first: list[int] = []
        await cache.view(("1",), counting_build(first))
        clock.now += 1
        await cache.view(("2",), counting_build([]))
        clock.now += 1
        await cache.view(("1",), counting_build(first))  # used: stays
        clock.now += 1
        await cache.view(("3",), counting_build([]))  # evicts "2"
        again: list[int] = []
        await cache.view(("2",), counting_build(again))
        assert again == [1]
        assert first == [1]

    asyncio.run(scenario())


def test_pinned_views_are_built_by_warm_and_never_dropped() -> None:
    async def scenario() -> None:
        clock = Clock()
        cache = PageCache(fresh=10, keep=300, watch=60, entries=2, clock=clock)
        built: list[int] = []
        cache.pin(("standard",), counting_build(built))
        assert await cache.warm() == 1  # built before anyone asks
        assert await cache.view(("standard",), counting_build(built)) == 1
        clock.now += 1000  # nobody looked for a long time: still kept, rebuilt
        assert await cache.warm() == 1
        assert built == [1, 2]
        for name in ("x", "y", "z"):  # other views come and go around it
            await cache.view((name,), counting_build([]))
        assert await cache.view(("standard",), counting_build(built)) == 2

    asyncio.run(scenario())
