"""Which address each server of a group gets from an answer (pure; HAProxy's
``snr_resolution_cb()`` and ``resolv_get_ip_from_response()``).

Rules:
1. A server keeps its address while the answer still holds it (or while that address is
   younger than ``hold obsolete`` since the answer last held it).
2. The others take, in configuration order, the first address of the answer no server of the
   group uses; with ``allow-dup-ip`` they take the answer's first address. A server left
   without one has '' (MAINT, as HAProxy's "MAINT (resolution)").
3. A failed resolution changes nothing while the last valid answer is younger than the
   failure's ``hold`` period; after it, every server of the group loses its address.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def assign(current: Sequence[tuple[str, str | None]], answer: Sequence[str],
           kept: frozenset[str] = frozenset(), allow_dup: bool = False) -> dict[str, str]:
    """Rules 1 and 2. ``current``: (server, its address or None) in configuration order;
    ``kept``: obsolete addresses still within ``hold obsolete``."""
    result: dict[str, str] = {}
    taken: set[str] = set()
    usable = set(answer) | kept
    for name, address in current:
        if address and address in usable and (allow_dup or address not in taken):
            result[name] = address
            taken.add(address)
    for name, _ in current:
        if name in result:
            continue
        if allow_dup:
            result[name] = answer[0] if answer else ""
            continue
        free = next((address for address in answer if address not in taken), "")
        result[name] = free
        if free:
            taken.add(free)
    return {name: result[name] for name, _ in current}


def after_failure(current: Mapping[str, str | None], status: str, last_valid: float,
                  now: float, hold: Mapping[str, float]) -> dict[str, str] | None:
    """Rule 3: None while the group keeps its addresses, else every server without one."""
    if last_valid and now - last_valid <= hold.get(status, hold.get("other", 30.0)):
        return None
    return {name: "" for name in current}
