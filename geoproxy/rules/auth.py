"""``userlist`` sections and HTTP Basic authentication, as HAProxy checks it (pure but for
crypt(3)).

Rules (configuration manual 3.4, ``auth.c``):
1. A user's ``password`` is a crypt(3) hash, checked with the system's crypt(3) as HAProxy
   does (so every scheme the system's libcrypt knows: yescrypt ``$y$``, SHA-512 ``$6$``,
   SHA-256 ``$5$``, bcrypt ``$2b$``, MD5 ``$1$``, DES); ``insecure-password`` is compared as
   text.
2. Groups come from ``group NAME users U1,U2`` and from ``user NAME groups G1,G2``.
3. ``http_auth(L)`` is true when the request's ``Authorization: Basic`` credentials name a
   user of L with the right password; ``http_auth_group(L)`` then yields the user's name, and
   an ACL on it matches when the user is in one of the ACL's groups.
4. Checking a hash is slow on purpose (HAProxy warns about it): results are kept per process,
   bounded, so a client's repeated requests cost one crypt(3).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Final

from geoproxy.rules import syscrypt

_CACHE_LIMIT: Final = 4096
_checked: dict[tuple[str, str, str], bool] = {}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str
    insecure: bool = False
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Userlist:
    """One ``userlist`` section: its users (with their groups resolved, rule 2)."""

    name: str
    users: tuple[User, ...]
    groups: tuple[str, ...] = ()

    def check(self, authorization: str | None) -> User | None:
        """The user the credentials name, when the password is right (rule 3)."""
        credentials = basic_credentials(authorization)
        if credentials is None:
            return None
        name, password = credentials
        for user in self.users:
            if user.name == name:
                return user if _password_ok(user, password) else None
        return None

    def group_of(self, authorization: str | None) -> AuthenticatedUser | None:
        user = self.check(authorization)
        return None if user is None else AuthenticatedUser(user.name, frozenset(user.groups))


class AuthenticatedUser(str):
    """``http_auth_group``'s sample: the user's name, carrying its groups for ACLs."""

    groups: frozenset[str]

    def __new__(cls, name: str, groups: frozenset[str]) -> AuthenticatedUser:
        made = super().__new__(cls, name)
        made.groups = groups
        return made


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` value, or None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _password_ok(user: User, password: str) -> bool:
    if user.insecure:
        return hmac.compare_digest(user.password.encode(), password.encode())
    key = (user.name, user.password, password)
    known = _checked.get(key)
    if known is None:
        hashed = syscrypt.crypt(password, user.password)
        known = hashed is not None and hmac.compare_digest(hashed, user.password)
        if len(_checked) >= _CACHE_LIMIT:
            _checked.clear()
        _checked[key] = known
    return known


def resolve_groups(users: list[User], group_members: dict[str, list[str]]) -> tuple[User, ...]:
    """Users with the groups that name them added to their own (rule 2)."""
    resolved = []
    for user in users:
        groups = list(user.groups)
        for group, members in group_members.items():
            if user.name in members and group not in groups:
                groups.append(group)
        resolved.append(User(user.name, user.password, user.insecure, tuple(groups)))
    return tuple(resolved)
