"""HAProxy's CSV export (``;csv`` after the stats URI): a ``# `` header line with the column
names, then one line per row, empty cells where a figure does not apply. The columns are the
subset of HAProxy's that geoproxy has, with HAProxy's names and in HAProxy's order, each line
ending with a comma as HAProxy's do."""

from __future__ import annotations

from collections.abc import Sequence

from geoproxy.admin.rows import CSV_COLUMNS, Proxy, StatsRow


def _cell(value: object) -> str:
    if value is None:
        return ""
    # HAProxy writes free text (check descriptions) as is; a comma would shift the columns
    return str(value).replace(",", " ")


def csv_line(row: StatsRow) -> str:
    return "".join(_cell(getattr(row, column)) + "," for column in CSV_COLUMNS)


def render_csv(proxies: Sequence[Proxy]) -> str:
    lines = ["# " + "".join(column + "," for column in CSV_COLUMNS)]
    lines += [csv_line(row) for proxy in proxies for row in proxy.rows]
    return "\n".join(lines) + "\n"
