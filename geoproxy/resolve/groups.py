"""Which servers share one resolution (pure).

HAProxy resolves each FQDN once per resolvers section and shares the answer among the servers
that name it; servers of one backend sharing an FQDN (a ``server-template``) then take
distinct addresses unless ``resolve-opts allow-dup-ip`` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoproxy.config.model import Backend, Config, Resolvers, Server, ServerResolution


@dataclass(frozen=True, slots=True)
class Group:
    """Servers of ``backend`` resolved together: ``name`` is the first one's (it names the
    lease), ``servers`` in configuration order."""

    backend: str
    name: str
    fqdn: str
    servers: tuple[Server, ...]
    resolvers: Resolvers

    @property
    def resolution(self) -> ServerResolution:
        resolution = self.servers[0].resolution
        assert resolution is not None
        return resolution


def resolution_groups(config: Config, backend: Backend) -> list[Group]:
    """The groups of ``backend``'s servers that have ``resolvers`` (configuration order)."""
    found: dict[tuple[str, str], list[Server]] = {}
    for server in backend.servers:
        resolution = server.resolution
        if resolution is None or resolution.resolvers is None:
            continue
        found.setdefault((server.host, resolution.resolvers), []).append(server)
    groups = []
    for (fqdn, section), servers in found.items():
        resolvers = config.resolvers_section(section)
        if resolvers is not None:
            groups.append(Group(backend.name, servers[0].name, fqdn, tuple(servers), resolvers))
    return groups
