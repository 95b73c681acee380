"""The whole-configuration check of stick-table references (HAProxy's argument resolution):
every ``track-sc*`` rule, ``sc_*``/``src_*``/``table_*`` fetch and ``in_table``/``table_*``
converter must name a table that exists, the default being the table of the proxy holding
the rule; and two proxies of one name may not both declare a table (tables are named after
their proxy). HAProxy's messages, with the line of the rule at fault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from geoproxy.config.model import (
    Acl,
    Backend,
    Config,
    Diagnostic,
    Frontend,
    Location,
)
from geoproxy.counters.registry import stick_tables
from geoproxy.rules.conv_counters import converter_tables
from geoproxy.rules.fetch_counters import table_arguments
from geoproxy.rules.spec import SampleExpr, TrackSc


def table_errors(config: Config) -> list[Diagnostic]:
    """Every stick-table reference error of ``config``, once each."""
    tables = set(stick_tables(config))
    found: dict[tuple[Location, str], Diagnostic] = {}
    for diagnostic in _conflicts(config):
        found[(diagnostic.location, diagnostic.message)] = diagnostic
    proxies: tuple[Frontend | Backend, ...] = (*config.frontends, *config.backends)
    for proxy in proxies:
        for diagnostic in _references(proxy, tables):
            found.setdefault((diagnostic.location, diagnostic.message), diagnostic)
    return list(found.values())


def _conflicts(config: Config) -> Iterator[Diagnostic]:
    for backend in config.backends:
        frontend = config.frontend(backend.name)
        if frontend is None or frontend.location == backend.location:  # a listen: one table
            continue
        if frontend.stick_table is not None and backend.stick_table is not None:
            yield Diagnostic(backend.stick_table.location, "stick-table", (
                f"stick-table name '{backend.name}' conflicts with table declared in frontend "
                f"'{frontend.name}' at {frontend.stick_table.location}."))


def _references(proxy: Frontend | Backend, tables: set[str]) -> Iterator[Diagnostic]:
    name = proxy.name
    for item, location, in_acl in _walk(proxy, proxy.location, False):
        if isinstance(item, TrackSc):
            table = item.table or name
            if table not in tables:
                yield Diagnostic(location, "track-sc", (
                    f"Proxy '{name}': unable to find table '{table}' referenced by "
                    f"track-sc{item.slot}."))
            continue
        fetch = item.fetch
        kind = "ACL keyword" if in_acl else "sample fetch keyword"
        for table_name in table_arguments(fetch.name, fetch.args):
            # a named table is the last argument; HAProxy calls the implicit one arg 1
            position = len(fetch.args) if table_name is not None else 1
            if (table_name or name) not in tables:
                yield Diagnostic(location, fetch.name, (
                    f"unable to find table '{table_name or name}' referenced in arg "
                    f"{position} of {kind} '{fetch.name}' in proxy '{name}'."))
        for converter in item.converters:
            for position, table_name in converter_tables(converter.name, converter.args):
                if (table_name or name) not in tables:
                    yield Diagnostic(location, converter.name, (
                        f"unable to find table '{table_name or name}' referenced in arg "
                        f"{position} of conversion keyword '{converter.name}' for sample "
                        f"fetch keyword '{fetch.name}' in proxy '{name}'."))


def _walk(value: object, location: Location, in_acl: bool
          ) -> Iterator[tuple[SampleExpr | TrackSc, Location, bool]]:
    """Every sample expression and ``track-sc`` action under ``value``, with the location
    of the line holding it and whether an ACL test reads it."""
    if isinstance(value, SampleExpr):
        yield value, location, in_acl
        return
    if isinstance(value, TrackSc):
        yield value, location, in_acl
        yield value.key, location, False
        return
    if isinstance(value, tuple | list):
        for item in value:
            yield from _walk(item, location, in_acl)
        return
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    if isinstance(value, Acl):
        in_acl = True
    here = getattr(value, "location", None)
    if isinstance(here, Location):
        location = here
    for field in dataclasses.fields(value):
        if field.name in ("stick_table", "servers", "location"):
            continue
        yield from _walk(getattr(value, field.name), location, in_acl)
