"""HAProxy's CSV export (``;csv`` after the stats URI, and the Runtime API's ``show stat``): a
``# `` header line with the column names, then one line per row, empty cells where a figure
does not apply. The columns are HAProxy 2.6's, in its order (clients read them by position),
empty where geoproxy has no such figure, each line ending with a comma as HAProxy's do."""

from __future__ import annotations

from collections.abc import Sequence

from geoproxy.admin.rows import CSV_COLUMNS, FILLED_COLUMNS, Proxy, StatsRow


def _cell(value: object) -> str:
    if value is None:
        return ""
    # HAProxy writes free text (check descriptions) as is; a comma would shift the columns
    return str(value).replace(",", " ")


def csv_line(row: StatsRow, hidden: frozenset[str] = frozenset()) -> str:
    """One row; ``hidden`` columns stay empty (HAProxy hides ``addr`` and ``cookie`` from a
    Runtime API session at level user)."""
    return "".join(
        (_cell(getattr(row, column)) if column in FILLED_COLUMNS and column not in hidden else "")
        + ","
        for column in CSV_COLUMNS
    )


def render_csv(proxies: Sequence[Proxy], hidden: frozenset[str] = frozenset()) -> str:
    return render_rows([row for proxy in proxies for row in proxy.rows], hidden)


def render_rows(rows: Sequence[StatsRow], hidden: frozenset[str] = frozenset()) -> str:
    lines = ["# " + "".join(column + "," for column in CSV_COLUMNS)]
    lines += [csv_line(row, hidden) for row in rows]
    return "\n".join(lines) + "\n"
