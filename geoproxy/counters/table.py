"""One worker's view of one fleet-wide stick table's counters (pure: no I/O, time from an
injected clock on the Redis server's timeline).

Rules:
1. The truth is in Redis, summed over every worker of every host; a worker never waits for
   it. Each entry here holds the fleet's values as the last sync answered them (``fleet``,
   ``rates``, ``fleet_use``) plus what this worker counted since (``pending``): a fetch reads
   their sum, so a worker always sees its own events at once and the rest of the fleet's as
   of its last sync (``geoproxy.state.counters`` syncs every ``SYNC_PERIOD``).
2. Rates are kept as ``FreqCtr`` values: the fleet's counter as Redis answered it, moved by
   this worker's events as they happen; Redis moves its own by each worker's increments when
   they arrive (so an event is placed in time at most one sync late).
3. ``conn_cur`` is a gauge: each worker publishes how many requests it has tracking an entry
   (``use``), and Redis sums the fresh ones; a worker that dies stops refreshing its share,
   which then ages out (``USE_REFRESH_MS``, ``USE_STALE_MS``). The view is
   ``fleet_use - mine_synced + mine``.
4. ``take`` hands the sync what changed (writes, and entries read since the last sync, which
   the sync only reads, never creates) and the hot entries (used twice within
   ``HOT_WINDOW_MS``: read again so that their view stays one sync old); ``settle`` applies
   the answer, ``restore`` puts a failed sync's changes back: nothing is lost or counted
   twice.
5. Memory is bounded: an entry idle for the table's ``expire`` with nothing pending and no
   request tracking it is forgotten, and past ``size`` entries the least recently used idle
   one is.
6. Greenlets only switch at I/O: every method here runs to its end undisturbed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from geoproxy.counters.datatypes import StoreSpec
from geoproxy.counters.freq import FreqCtr
from geoproxy.counters.tablekey import KeyOf

USE_REFRESH_MS = 1000  # a worker republishes a non-zero gauge (and the entry's expiry) this often
USE_STALE_MS = 3000  # a gauge share older than this is a dead worker's, and no longer counts
# An entry this worker used twice within HOT_WINDOW_MS is read again at every sync while it
# stays so (at most HOT_LIMIT per sync, the most recent first), even when this worker counted
# nothing new: a client that keeps coming back finds a view at most one sync old.
HOT_WINDOW_MS = 1000
HOT_LIMIT = 64
_ON_TRACK = ("conn_cnt", "conn_rate", "http_req_cnt", "http_req_rate")
Clock = Callable[[], int]


class Entry:
    """One key of the table as this worker sees it (rule 1). ``exists`` is None until a sync
    answered for it; ``server`` is the persistence entry's server a probe found."""

    __slots__ = ("key", "fleet", "rates", "pending", "cleared", "tags_set", "mine",
                 "mine_synced", "fleet_use", "use_sent_at", "used_at", "seen", "exists",
                 "written", "server", "inflight", "inflight_sets", "used_before")  # fmt: skip

    def __init__(self, key: str) -> None:
        self.key = key
        self.fleet: dict[str, int] = {}
        self.rates: dict[str, FreqCtr] = {}
        self.pending: dict[str, int] = {}
        self.cleared: set[str] = set()
        self.tags_set: dict[str, int] = {}
        # what a sync under way carries: counted here until the fleet's answer includes it
        self.inflight: dict[str, int] = {}
        self.inflight_sets: dict[str, int] = {}
        self.mine = 0  # requests of this worker tracking the entry now
        self.mine_synced = 0
        self.fleet_use = 0
        self.use_sent_at = 0
        self.used_at = 0
        self.used_before = 0  # the use before the last: two within HOT_WINDOW_MS make it hot
        self.seen = 0  # when the fleet last wrote it (Redis clock, ms)
        self.exists: bool | None = None
        self.written = False  # this worker wrote it since its last sync
        self.server: str | None = None

    @property
    def is_known(self) -> bool:
        """Whether the entry is in the table from this worker's view: the fleet had it at the
        last sync, or this worker wrote it since (writing creates it)."""
        return self.exists is True


@dataclass(slots=True)
class SyncRecord:
    """What one entry sends in one sync (rule 4): increments (counters and rates), absolute
    values (tags, and counters cleared since: the increments after the clear), and this
    worker's gauge share when it changed or is due again."""

    entry: Entry
    write: bool
    adds: dict[str, int] = field(default_factory=dict)
    sets: dict[str, int] = field(default_factory=dict)
    use: int | None = None


@dataclass(frozen=True, slots=True)
class EntryReply:
    """The fleet's answer for one entry: ``status`` 1 found (``fields`` its counters, tags and
    rates as ``curr/prev@tick``, ``use`` the summed gauge, ``seen`` its last write), 0 not in
    the table (``server``: a persistence entry of that key), -1 refused (``nopurge``, full)."""

    status: int
    fields: dict[str, str] = field(default_factory=dict)
    use: int = 0
    seen: int = 0
    server: str | None = None


class CounterTable:
    """The counters of table ``name`` in this worker (see the module rules)."""

    def __init__(self, name: str, spec: StoreSpec, *, size: int, expire_ms: int,
                 nopurge: bool, key_of: KeyOf, clock: Clock) -> None:
        self.name = name
        self.spec = spec
        self.size = size
        self.expire_ms = expire_ms
        self.nopurge = nopurge
        self.key_of = key_of
        self.clock = clock
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.changed: dict[str, Entry] = {}  # written or read since the last take
        self.held: dict[str, Entry] = {}  # tracked by a request of this worker now
        self.fleet_used = 0  # entries in the fleet's table, as the last sync answered
        self.fresh: set[str] = set()  # entries this worker created that no sync confirmed yet
        stored = spec.stores
        self._on_track = tuple(f for f in _ON_TRACK if stored(f))

    # -- finding entries ---------------------------------------------------------------------

    def entry(self, key: str) -> Entry:
        """The local entry of ``key``, made when missing (and the LRU order touched)."""
        entries = self.entries
        found = entries.get(key)
        if found is None:
            if len(entries) >= self.size:
                self._evict_one()
            found = entries[key] = Entry(key)
        else:
            entries.move_to_end(key)
        found.used_before = found.used_at
        found.used_at = self.clock()
        return found

    def lookup(self, key: str) -> Entry | None:
        """The entry of ``key`` when it is in the table (``src_*``, ``table_*``, ``in_table``):
        a read. An unknown key is asked of the fleet at the next sync, which never creates
        it; until then it is not found."""
        found = self.entry(key)
        if not found.written:
            self.changed[key] = found
        return found if found.is_known else None

    # -- events --------------------------------------------------------------------------------

    def track(self, key: str) -> Entry:
        """A request starts tracking ``key`` (``track-sc*``): the gauge, ``conn_cnt``,
        ``conn_rate``, ``http_req_cnt`` and ``http_req_rate`` count it (HAProxy counts the
        request at once, as it is the first time the entry sees it)."""
        entry = self.entry(key)
        entry.mine += 1
        self.held[key] = entry
        now = entry.used_at
        for name in self._on_track:
            self._add(entry, name, 1, now)
        self._written(entry)
        return entry

    def untrack(self, entry: Entry, bytes_in: int, bytes_out: int) -> None:
        """The request tracking ``entry`` ended, having moved these bytes."""
        entry.mine -= 1
        if entry.mine <= 0:
            entry.mine = 0
            self.held.pop(entry.key, None)
        now = self.clock()
        entry.used_at = now
        if bytes_in:
            self._add(entry, "bytes_in_cnt", bytes_in, now)
            self._add(entry, "bytes_in_rate", bytes_in, now)
        if bytes_out:
            self._add(entry, "bytes_out_cnt", bytes_out, now)
            self._add(entry, "bytes_out_rate", bytes_out, now)
        self._written(entry)

    def count(self, entry: Entry, event: str, amount: int = 1) -> None:
        """Count ``event`` (``http_err``, ``http_fail``, ``conn``, ``http_req``...): its
        ``_cnt`` and ``_rate`` fields, where stored."""
        now = self.clock()
        self._add(entry, f"{event}_cnt", amount, now)
        self._add(entry, f"{event}_rate", amount, now)
        self._written(entry)

    def inc_gpc(self, entry: Entry, index: int) -> int:
        """``sc-inc-gpc*``, ``sc_inc_gpc*``: the counter's rate and the counter; returns the
        counter's new value, else the rate's current count, else 0 (HAProxy's answer)."""
        now = self.clock()
        name, rate = f"gpc{index}", f"gpc{index}_rate"
        answer = 0
        if rate in self.spec.rates:
            self._add(entry, rate, 1, now)
            answer = entry.rates[rate].curr
        if name in self.spec.counts:
            self._add(entry, name, 1, now)
            answer = self._count(entry, name)
        self._written(entry)
        return answer

    def clear_gpc(self, entry: Entry, index: int) -> int | None:
        """``sc_clr_gpc*``: the counter's value before it is set to 0; None when not stored."""
        name = f"gpc{index}"
        if name not in self.spec.counts:
            return None
        before = self._count(entry, name)
        entry.cleared.add(name)
        entry.pending[name] = 0
        self._written(entry)
        return before

    def set_gpt(self, entry: Entry, index: int, value: int) -> None:
        """``sc-set-gpt*``: the tag takes ``value`` (an unsigned 32-bit integer)."""
        name = f"gpt{index}"
        if name in self.spec.tags:
            entry.tags_set[name] = value & 0xFFFFFFFF
            self._written(entry)

    def _add(self, entry: Entry, name: str, amount: int, now: int) -> None:
        period = self.spec.rates.get(name)
        if period is not None:
            rate = entry.rates.get(name)
            if rate is None:
                rate = entry.rates[name] = FreqCtr()
            rate.update(now, period, amount)
        elif name not in self.spec.counts:
            return
        pending = entry.pending
        pending[name] = pending.get(name, 0) + amount

    def _written(self, entry: Entry) -> None:
        if entry.exists is not True:
            self.fresh.add(entry.key)
        entry.written = True
        entry.exists = True
        self.changed[entry.key] = entry

    # -- reading -------------------------------------------------------------------------------

    def value(self, entry: Entry, name: str) -> int | None:
        """Field ``name`` of ``entry`` as this worker sees it now (rule 1); None when the
        table does not store it."""
        period = self.spec.rates.get(name)
        if period is not None:
            rate = entry.rates.get(name)
            return 0 if rate is None else rate.read(self.clock(), period)
        if name in self.spec.counts:
            return self._count(entry, name)
        if name in self.spec.tags:
            found = entry.tags_set.get(name)
            if found is None:
                found = entry.inflight_sets.get(name)
            return found if found is not None else entry.fleet.get(name, 0)
        if name == "conn_cur" and self.spec.conn_cur:
            return self.trackers(entry)
        return None

    def trackers(self, entry: Entry) -> int:
        """Requests tracking ``entry`` now: fleet-wide when ``conn_cur`` is stored, else this
        worker's."""
        if not self.spec.conn_cur:
            return entry.mine
        return max(entry.fleet_use - entry.mine_synced + entry.mine, 0)

    @staticmethod
    def _count(entry: Entry, name: str) -> int:
        pending = entry.pending.get(name, 0)
        if name in entry.cleared:
            return pending
        base = entry.inflight_sets.get(name)
        if base is None:
            base = entry.fleet.get(name, 0) + entry.inflight.get(name, 0)
        return base + pending

    def used(self) -> int:
        """Entries in the table (``table_cnt``): fleet-wide as of the last sync, and those
        this worker created since."""
        return self.fleet_used + len(self.fresh)

    # -- the sync (rule 4) ---------------------------------------------------------------------

    def take(self, limit: int) -> list[SyncRecord]:
        """At most ``limit`` records of what to send, taken out of the entries."""
        now = self.clock()
        self._forget_idle(now)
        for key, entry in self.held.items():
            if key not in self.changed and now - entry.use_sent_at >= USE_REFRESH_MS:
                self.changed[key] = entry
        self._add_hot(now)
        records: list[SyncRecord] = []
        changed = self.changed
        while changed and len(records) < limit:
            _, entry = changed.popitem()
            records.append(self._record(entry, now))
        return records

    def _add_hot(self, now: int) -> None:
        """The hot entries among the most recently used (rule 4)."""
        hot = 0
        for key in reversed(self.entries):
            entry = self.entries[key]
            if now - entry.used_at > HOT_WINDOW_MS or hot >= HOT_LIMIT:
                return
            if entry.used_at - entry.used_before <= HOT_WINDOW_MS and entry.exists is not False:
                hot += 1
                self.changed.setdefault(key, entry)

    def _record(self, entry: Entry, now: int) -> SyncRecord:
        gauge = self.spec.conn_cur
        changed_use = gauge and entry.mine != entry.mine_synced
        # a tracked entry is written again every USE_REFRESH_MS: its gauge share stays fresh
        # and its expiry is pushed back, as HAProxy keeps a tracked entry from expiring
        due = entry.mine > 0 and now - entry.use_sent_at >= USE_REFRESH_MS
        record = SyncRecord(entry, entry.written or changed_use or due)
        if not record.write:
            return record
        cleared = entry.cleared
        for name, amount in entry.pending.items():
            if name in cleared:
                record.sets[name] = amount
            elif amount:
                record.adds[name] = amount
        record.sets.update(entry.tags_set)
        entry.inflight, entry.inflight_sets = record.adds, record.sets
        entry.pending = {}
        entry.cleared = set()
        entry.tags_set = {}
        entry.written = False
        if changed_use or due:
            if gauge:
                record.use = entry.mine
            entry.use_sent_at = now
        return record

    def settle(self, records: list[SyncRecord], replies: list[EntryReply], used: int) -> None:
        """Apply the fleet's answers to the records ``take`` gave (rule 4)."""
        now = self.clock()
        self.fleet_used = used
        for record, reply in zip(records, replies, strict=True):
            entry = record.entry
            entry.inflight, entry.inflight_sets = {}, {}
            self.fresh.discard(entry.key)
            if reply.status < 0:  # refused: the table is full and keeps its entries
                entry.exists = False
                continue
            if record.use is not None:
                entry.mine_synced = record.use
            if reply.status == 0:
                entry.exists = entry.written  # written while the sync was out: it will be
                entry.server = reply.server
                entry.fleet = {}
                entry.rates = {name: FreqCtr() for name in entry.rates}
                self._reapply(entry, now)
                continue
            entry.exists = True
            entry.seen = reply.seen
            entry.fleet_use = reply.use
            fleet: dict[str, int] = {}
            rates: dict[str, FreqCtr] = {}
            for name, text in reply.fields.items():
                if name in self.spec.rates:
                    rates[name] = FreqCtr.parse(text)
                else:
                    try:
                        fleet[name] = int(text)
                    except ValueError:
                        continue
            entry.fleet, entry.rates = fleet, rates
            self._reapply(entry, now)

    def _reapply(self, entry: Entry, now: int) -> None:
        """Move the fleet's rates by what this worker counted while the sync was out."""
        for name, amount in entry.pending.items():
            period = self.spec.rates.get(name)
            if period is not None and amount:
                rate = entry.rates.get(name)
                if rate is None:
                    rate = entry.rates[name] = FreqCtr()
                rate.update(now, period, amount)

    def restore(self, records: list[SyncRecord]) -> None:
        """A sync failed: its records' changes wait for the next one (rule 4)."""
        for record in records:
            entry = record.entry
            entry.inflight, entry.inflight_sets = {}, {}
            if record.write:
                pending = entry.pending
                for name, amount in record.adds.items():
                    if name not in entry.cleared:
                        pending[name] = pending.get(name, 0) + amount
                for name, value in record.sets.items():
                    if name.startswith("gpt"):
                        entry.tags_set.setdefault(name, value)
                    elif name not in entry.cleared:
                        entry.cleared.add(name)
                        pending[name] = value + pending.get(name, 0)
                entry.written = True
                if record.use is not None:
                    entry.use_sent_at = 0
            self.changed.setdefault(entry.key, entry)

    # -- memory (rule 5) -----------------------------------------------------------------------

    def _evictable(self, entry: Entry) -> bool:
        return entry.mine == 0 and not entry.written and entry.key not in self.changed

    def _evict_one(self) -> None:
        for tries, (key, entry) in enumerate(self.entries.items()):
            if self._evictable(entry):
                del self.entries[key]
                return
            if tries >= 8:
                return  # all busy: let the table grow by the requests under way

    def _forget_idle(self, now: int) -> None:
        """Forget the idle entries among the least recently used (at most 256 per call: the
        next sync goes on)."""
        if not self.expire_ms:
            return
        idle = []
        for tries, (key, entry) in enumerate(self.entries.items()):
            if now - entry.used_at < self.expire_ms or tries >= 256:
                break
            if self._evictable(entry):
                idle.append(key)
        for key in idle:
            del self.entries[key]
