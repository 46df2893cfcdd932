"""The result cache (TTL + LRU, from cachetools) and the ``cacheable`` decorator.

Query results are kept with the agent's version, a counter every change to the agent bumps in
Redis. An answer is served only after the current version was read and found equal, so it is
never older than a write that finished before the query started, whichever process wrote
(invariant 5).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import TTLCache
from cachetools.keys import hashkey

from memory import validation
from tiers.errors import MemoryConfigException

log = logging.getLogger(__name__)
MISS = object()


def _seconds(value: Any, what: str) -> float:
    """A TTL: a finite number of seconds above zero (NaN would keep nothing, infinity forever)."""
    return validation.seconds(value, what, error=MemoryConfigException)


class ResultCache:
    def __init__(self, maxsize: int, ttl: float, timer: Callable[[], float] = time.monotonic):
        self._maxsize = maxsize
        self._timer = timer
        self._cache: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
        self.hits = 0
        self.misses = 0

    @property
    def ttl(self) -> float:
        return self._cache.ttl

    def get(self, key: Hashable) -> Any:
        """The value kept under ``key`` or MISS, counting a miss (callers count hits)."""
        value = self._cache.get(key, MISS)
        if value is MISS:
            self.misses += 1
        return value

    def hit(self) -> None:
        self.hits += 1

    def miss(self) -> None:
        self.misses += 1

    def put(self, key: Hashable, value: Any) -> None:
        self._cache[key] = value

    def clear(self) -> None:
        self._cache.clear()

    def set_ttl(self, seconds: float) -> None:
        """Start a fresh cache with the new TTL (cachetools fixes a cache's TTL at creation)."""
        self._cache = TTLCache(maxsize=self._maxsize, ttl=_seconds(seconds, "cache TTL"), timer=self._timer)

    def __len__(self) -> int:
        return len(self._cache)

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        return {
            "size": len(self._cache),
            "max_size": self._maxsize,
            "ttl": self.ttl,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hits / lookups if lookups else 0.0,
        }


def cacheable(ttl: float = 60, maxsize: int = 256, timer: Callable[[], float] = time.monotonic) -> Callable:
    """Cache a function's results by its arguments for ``ttl`` seconds.

    Calls with unhashable arguments run uncached. The wrapper has ``cache_clear()`` and
    ``cache_info()``. A bad ``ttl``, ``maxsize`` or ``timer`` is a MemoryConfigException.
    """
    ttl = _seconds(ttl, "ttl")
    maxsize = validation.count(maxsize, "maxsize", minimum=1, error=MemoryConfigException)
    if not callable(timer):
        raise MemoryConfigException(f"timer must be a callable returning seconds, got {validation.shown(timer)}")

    def decorate(func: Callable) -> Callable:
        cache = ResultCache(maxsize, ttl, timer)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                key = hashkey(*args, **kwargs)
                hash(key)
            except TypeError:
                log.debug("%s called with unhashable arguments; not cached", func.__qualname__)
                return func(*args, **kwargs)
            value = cache.get(key)
            if value is MISS:
                value = func(*args, **kwargs)
                cache.put(key, value)
            else:
                cache.hit()
            return value

        wrapper.cache_clear = cache.clear  # type: ignore[attr-defined]
        wrapper.cache_info = cache.stats  # type: ignore[attr-defined]
        return wrapper

    return decorate
