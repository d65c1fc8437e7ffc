"""Assembled dashboard views, kept fresh in the background while someone looks at them.

A 30-day view over a million runs takes about 200 ms to aggregate (two KPI reads); the
page must render in well under 100 ms. So a view is built once and then:

- served as it is while younger than ``fresh`` seconds;
- served while older (up to ``keep`` seconds) while one background task rebuilds it
  (stale-while-revalidate: nobody waits for a rebuild they did not need);
- rebuilt before it gets old by the ``dashboard-views`` job as long as someone opened it in
  the last ``watch`` seconds, so a dashboard left open on a wall stays instant; views
  nobody opened for ``watch`` seconds are dropped;
- *pinned* views (the overview's standard periods, without filters) are built at start
  and kept fresh always, so the page people open first never waits for a build. On a
  million runs that costs about 2% of one core (a 30-day view takes ~190 ms every ~8 s).

The page shows the instant its data was built for (``window-end``), so what is shown is
never silently older than it says. Relative periods ("last 30 days") are keyed by their
name; each rebuild moves their window to the new now. A first view of a window is built
while the request waits (the cold figure in bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[Any, ...]
Build = Callable[[], Awaitable[Any]]

FRESH_SECONDS = 10.0
KEEP_SECONDS = 300.0
WATCH_SECONDS = 300.0
ENTRIES = 64
WARM_INTERVAL_SECONDS = 5.0


@dataclass
class _Entry:
    value: Any
    build: Build
    built: float
    used: float
    pinned: bool = False


_UNBUILT = object()


@dataclass
class PageCache:
    """Views by key (see the module docstring); one per application."""

    fresh: float = FRESH_SECONDS
    keep: float = KEEP_SECONDS
    watch: float = WATCH_SECONDS
    entries: int = ENTRIES
    clock: Callable[[], float] = time.monotonic
    builds: int = 0
    _items: dict[Key, _Entry] = field(default_factory=dict)
    _rebuilding: dict[Key, asyncio.Task[None]] = field(default_factory=dict)

    async def view(self, key: Key, build: Build) -> Any:
        """The view ``key``: cached, cached while it is rebuilt, or built now."""
        if self.fresh <= 0:  # caching off: every request computes its view
            return await build()
        now = self.clock()
        entry = self._items.get(key)
        if entry is not None and entry.value is not _UNBUILT and now - entry.built <= self.keep:
            entry.used = now
            entry.build = build
            if now - entry.built > self.fresh:
                self._rebuild_soon(key)
            return entry.value
        value = await build()
        self.builds += 1
        self._store(key, value, build, now)
        return value

    def pin(self, key: Key, build: Build) -> None:
        """Keep the view ``key`` built and fresh whether or not anyone opens it (the
        dashboard's standard views: instant from the first request on)."""
        if self.fresh <= 0:
            return
        self._items[key] = _Entry(_UNBUILT, build, float("-inf"), self.clock(), pinned=True)

    async def warm(self) -> int:
        """Rebuild the pinned and the watched views that are no longer fresh (one at a
        time); drop the unwatched ones. Returns how many were rebuilt."""
        now = self.clock()
        rebuilt = 0
        for key, entry in list(self._items.items()):
            if not entry.pinned and now - entry.used > self.watch:
                del self._items[key]
            elif now - entry.built > self.fresh * 0.8 and key not in self._rebuilding:
                await self._rebuild(key)
                rebuilt += 1
        return rebuilt

    async def stop(self) -> None:
        """Cancel rebuilds still running (at shutdown)."""
        tasks = list(self._rebuilding.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _store(self, key: Key, value: Any, build: Build, now: float) -> None:
        """Keep ``value`` as built at ``now`` (evicting the least recently used view)."""
        previous = self._items.get(key)
        if previous is None and len(self._items) >= self.entries:
            unpinned = [k for k, e in self._items.items() if not e.pinned]
            if unpinned:
                del self._items[min(unpinned, key=lambda k: self._items[k].used)]
        pinned = previous is not None and previous.pinned
        self._items[key] = _Entry(value, build, now, now, pinned)

    def _rebuild_soon(self, key: Key) -> None:
        if key not in self._rebuilding:
            task = asyncio.create_task(self._rebuild(key), name="dashboard-view")
            self._rebuilding[key] = task
            task.add_done_callback(lambda _: self._rebuilding.pop(key, None))

    async def _rebuild(self, key: Key) -> None:
        entry = self._items.get(key)
        if entry is None:
            return
        started = self.clock()
        try:
            value = await entry.build()
        except Exception:
            log.exception("rebuilding dashboard view %r failed", key)
            return
        self.builds += 1
        current = self._items.get(key)
        if current is not None:
            current.value, current.built = value, started
