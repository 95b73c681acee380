"""What one table sends in a sync and how it takes the answer (pure; the rules are
``table.py``'s, rule 4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geoproxy.counters.entry import (
    HOT_LIMIT,
    HOT_WINDOW_MS,
    USE_REFRESH_MS,
    USE_STALE_MS,
    Buckets,
    Entry,
    EntryReply,
    SyncRecord,
    period_start,
)

if TYPE_CHECKING:
    from geoproxy.counters.table import CounterTable


def take(table: CounterTable, limit: int) -> list[SyncRecord]:
    """At most ``limit`` records of what to send, taken out of the entries."""
    now = table.clock()
    table.forget_idle(now)
    for key, entry in table.held.items():
        if key not in table.changed and now - entry.use_sent_at >= USE_REFRESH_MS:
            table.changed[key] = entry
    _add_hot(table, now)
    records: list[SyncRecord] = []
    changed = table.changed
    while changed and len(records) < limit:
        _, entry = changed.popitem()
        records.append(_record(table, entry, now))
    return records


def _add_hot(table: CounterTable, now: int) -> None:
    """The hot entries among the most recently used (rule 4)."""
    hot = 0
    for key in reversed(table.entries):
        entry = table.entries[key]
        if now - entry.used_at > HOT_WINDOW_MS or hot >= HOT_LIMIT:
            return
        if entry.used_at - entry.used_before <= HOT_WINDOW_MS and entry.exists is not False:
            hot += 1
            table.changed.setdefault(key, entry)


def _record(table: CounterTable, entry: Entry, now: int) -> SyncRecord:
    gauge = table.spec.conn_cur
    changed_use = gauge and entry.mine != entry.published
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
    for name, periods in entry.pending_buckets.items():
        for begun, amount in periods.items():
            record.adds[f"{name}@{begun}"] = amount
    record.sets.update(entry.tags_set)
    if entry.anchor and not entry.anchor_sent:
        record.anchor = entry.anchor
    record.deletes, entry.stale = entry.stale, []
    entry.inflight, entry.inflight_sets = entry.pending, record.sets
    entry.inflight_buckets = entry.pending_buckets
    entry.pending, entry.pending_buckets = {}, {}
    entry.cleared = set()
    entry.tags_set = {}
    entry.written = False
    if changed_use or due:
        if gauge:
            record.use = entry.mine
        entry.use_sent_at = now
    return record


def settle(table: CounterTable, records: list[SyncRecord], replies: list[EntryReply],
           used: int) -> None:
    """Apply what Redis answered to the records ``take`` gave (rule 4)."""
    now = table.clock()
    table.fleet_used = used
    for record, reply in zip(records, replies, strict=True):
        entry = record.entry
        entry.inflight, entry.inflight_sets, entry.inflight_buckets = {}, {}, {}
        table.fresh.discard(entry.key)
        if record.use is not None:
            entry.published = record.use
        if record.anchor:
            entry.anchor_sent = True
        if not reply.fields:
            entry.exists = entry.written  # written while the sync was out: it will be
            entry.server = reply.server
            entry.fleet, entry.buckets, entry.others_use = {}, {}, 0
            continue
        entry.exists = True
        _read_fields(table, entry, reply.fields, now)


def _read_fields(table: CounterTable, entry: Entry, fields: dict[str, str], now: int) -> None:
    """The entry as Redis holds it (rules 2 and 3), old periods and stale shares noted for
    deletion at its next write."""
    fleet: dict[str, int] = {}
    buckets: Buckets = {}
    others = 0
    mine_field = table.use_field
    stale = entry.stale
    rates = table.spec.rates
    for name, text in fields.items():
        head, at, tail = name.partition("@")
        try:
            if at:
                period = rates.get(head)
                if period is not None:
                    buckets.setdefault(head, {})[int(tail)] = int(text)
            elif name.startswith("use:"):
                count, _, written = text.partition("@")
                if now - int(written) > USE_STALE_MS:
                    stale.append(name)
                elif name != mine_field:
                    others += int(count)
            elif name == "a":
                anchor = int(text)
                if anchor != entry.anchor:
                    entry.anchor, entry.anchor_sent = anchor, True
            elif name == "t":
                entry.seen = int(text)
            else:
                fleet[name] = int(text)
        except ValueError:
            continue
    for name, periods in buckets.items():
        oldest = period_start(entry.anchor or now, rates[name], now) - rates[name]
        stale += [f"{name}@{begun}" for begun in periods if begun < oldest]
    entry.fleet, entry.buckets = fleet, buckets
    entry.others_use = others


def restore(table: CounterTable, records: list[SyncRecord]) -> None:
    """A sync failed: its records' changes wait for the next one (rule 4)."""
    for record in records:
        entry = record.entry
        entry.inflight, entry.inflight_sets, entry.inflight_buckets = {}, {}, {}
        if record.write:
            pending = entry.pending
            for name, amount in record.adds.items():
                rate, at, begun = name.partition("@")
                if at:
                    periods = entry.pending_buckets.setdefault(rate, {})
                    periods[int(begun)] = periods.get(int(begun), 0) + amount
                elif name not in entry.cleared:
                    pending[name] = pending.get(name, 0) + amount
            for name, value in record.sets.items():
                if name.startswith("gpt"):
                    entry.tags_set.setdefault(name, value)
                elif name not in entry.cleared:
                    entry.cleared.add(name)
                    pending[name] = value + pending.get(name, 0)
            entry.stale[:0] = record.deletes
            entry.written = True
            if record.use is not None:
                entry.use_sent_at = 0
        table.changed.setdefault(entry.key, entry)

