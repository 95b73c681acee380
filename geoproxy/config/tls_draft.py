"""The ``global`` TLS settings as the parser reads them, before a bind line needs them.

HAProxy applies ``crt-base``, ``ca-base`` and ``ssl-default-bind-*`` when it reads a bind line,
so they hold for the binds that come after them (the global section comes first in practice);
``kw_ssl.py`` reads this draft from the ``Line`` of each bind.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TlsGlobalsDraft:
    crt_base: str | None = None
    ca_base: str | None = None
    # ssl-default-bind-options: version flags and bounds as a bind's own options say them
    bind_flags: set[str] = field(default_factory=set)
    bind_min: int | None = None
    bind_max: int | None = None
    bind_ciphers: str | None = None
    bind_ciphersuites: str | None = None
    bind_curves: str | None = None
    dh_param_file: str | None = None
    server_verify: str = "required"
    # ssl-default-server-*: what a server's TLS uses when its line does not say
    server_ciphers: str | None = None
    server_ciphersuites: str | None = None
    server_min: int | None = None
    server_max: int | None = None
    server_flags: set[str] = field(default_factory=set)
