"""HAProxy's frequency counter (``freq_ctr`` over a period, ``src/freq_ctr.c`` of 2.6), in
milliseconds (pure). ``state/lua/counters_sync.lua`` holds its twin for Redis.

Rules:
1. A counter is three numbers: ``tick``, the start of its current period; ``curr``, the
   events counted since; ``prev``, the events of the period before. A new counter is all
   zeroes, so its first event opens a period at that instant (rounded down to an even
   millisecond, as HAProxy keeps the lowest bit of its tick as a lock).
2. Adding events after the period is over rotates it: ``prev`` takes ``curr``, and the period
   moves on by one; a counter idle for two periods or more starts over at the event
   (``update_freq_ctr_period``).
3. The rate over the period is ``curr`` plus the share of ``prev`` still inside a window of one
   period ending now: ``(prev * remain + curr * period) / period``, rounded down, where
   ``remain`` is what is left of the current period. One event, then none: the rate stays 1
   rather than fading (HAProxy's flapping correction for rates of 0 or 1).
4. Times come from one clock (the Redis server's, in geoproxy's fleet). A time slightly before
   ``tick`` (another host's clock a little behind) counts as inside the current period.
"""

from __future__ import annotations


class FreqCtr:
    """One frequency counter (rule 1)."""

    __slots__ = ("tick", "curr", "prev")

    def __init__(self, tick: int = 0, curr: int = 0, prev: int = 0) -> None:
        self.tick = tick
        self.curr = curr
        self.prev = prev

    def __repr__(self) -> str:
        return f"FreqCtr(tick={self.tick}, curr={self.curr}, prev={self.prev})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FreqCtr) and (self.tick, self.curr, self.prev) == (
            other.tick, other.curr, other.prev)

    def copy(self) -> FreqCtr:
        return FreqCtr(self.tick, self.curr, self.prev)

    def update(self, now: int, period: int, inc: int) -> None:
        """Count ``inc`` events at ``now`` (rule 2)."""
        if now - self.tick < period:
            self.curr += inc
            return
        self.prev, self.curr = self.curr, inc
        self.tick += period
        if now - self.tick >= period:
            self.prev = 0
            self.tick = now & ~1

    def read(self, now: int, period: int) -> int:
        """The rate at ``now``, in events per period (rule 3)."""
        remain = self.tick + period - now
        curr, past = self.curr, self.prev
        if remain < 0:
            remain += period
            past = curr if remain >= 0 else 0
            curr = 0
        elif remain > period:  # rule 4
            remain = period
        if not curr and past <= 1:
            return past
        return (past * remain + curr * period) // period

    def text(self) -> str:
        """The form Redis keeps: ``curr/prev@tick``."""
        return f"{self.curr}/{self.prev}@{self.tick}"

    @classmethod
    def parse(cls, text: str) -> FreqCtr:
        """The counter of a ``curr/prev@tick`` text (a zero counter for anything else)."""
        counts, _, tick = text.partition("@")
        curr, _, prev = counts.partition("/")
        try:
            return cls(int(tick), int(curr), int(prev))
        except ValueError:
            return cls()
