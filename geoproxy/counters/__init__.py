"""Stick counters (pure): what ``stick-table ... store`` keeps per entry, HAProxy's frequency
counters, and each worker's local view of a fleet-wide table (``table.py``), which
``geoproxy.state.counters`` keeps in step with Redis. Nothing here does I/O; time is a
parameter or an injected clock."""
