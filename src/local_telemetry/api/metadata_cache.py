"""Cache of distinct agent names and job types for ``GET /api/v1/metadata``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class MetadataCache:
    """Holds the last answer for ``ttl`` seconds; a write with a new name drops it.

    ``observe`` is called after every committed write, so a new agent or job type shows
    up at once instead of after the TTL.
    """

    def __init__(
        self,
        load: Callable[[], tuple[list[str], list[str]]],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: tuple[list[str], list[str]] | None = None
        self._names: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
        self._loaded_at = 0.0
        self._generation = 0  # bumped by observe(); a load that raced a write is not kept

    def get(self) -> tuple[list[str], list[str], bool]:
        """(agent names, job types, whether the answer came from the cache)."""
        with self._lock:
            value = self._value
            if value is not None and self._clock() - self._loaded_at < self._ttl:
                return value[0], value[1], True
            generation = self._generation
        agents, job_types = self._load()
        with self._lock:
            if generation == self._generation:
                self._value = (agents, job_types)
                self._names = (frozenset(agents), frozenset(job_types))
                self._loaded_at = self._clock()
        return agents, job_types, False

    def invalidate(self) -> None:
        """Drop the cached answer (runs were deleted: a name may be gone)."""
        with self._lock:
            self._value = None
            self._generation += 1

    def observe(self, agent_name: str, job_type: str) -> None:
        """Drop the cached answer if this committed run brings a name it lacks."""
        agents, job_types = self._names
        if agent_name in agents and job_type in job_types:
            return
        with self._lock:
            self._value = None
            self._generation += 1
