"""The ``userlist`` section (manual 3.4): users and groups for ``http_auth(L)`` and
``http_auth_group(L)``.

    userlist admins
        group ops users alice,bob
        user alice password $6$...            # a crypt(3) hash
        user carol insecure-password s3cret groups ops

Rules: a user has one ``password`` or ``insecure-password`` (none: it never authenticates);
a group named by a user must be declared in the section (before or after, as HAProxy
resolves them at the end); names are unique within the section.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geoproxy.config.context import Line
from geoproxy.config.model import Location
from geoproxy.rules.auth import User, Userlist, resolve_groups


@dataclass(slots=True)
class UserlistDraft:
    name: str
    location: Location
    users: list[User] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    user_groups: list[tuple[str, str, Location]] = field(default_factory=list)

    def freeze(self) -> Userlist:
        return Userlist(self.name, resolve_groups(self.users, self.groups),
                        tuple(self.groups))

    def undeclared_groups(self) -> list[tuple[Location, str]]:
        """(where, message) for each group a user names that the section lacks."""
        return [(location, f"userlist '{self.name}': no such group '{group}' specified in "
                           f"user '{user}'.")
                for user, group, location in self.user_groups if group not in self.groups]


def parse_userlist_line(draft: UserlistDraft, line: Line) -> None:
    if line.keyword == "group":
        _group(draft, line)
    elif line.keyword == "user":
        _user(draft, line)
    else:
        line.fail(f"unknown keyword '{line.keyword}' in 'userlist' section (expected "
                  "'group' or 'user').")


def _group(draft: UserlistDraft, line: Line) -> None:
    name = line.arg(0)
    if not name:
        line.fail("'group' expects <name> as arguments.")
    if name in draft.groups:
        line.fail(f"userlist '{draft.name}': group '{name}' already exists.")
    members: list[str] = []
    index = 1
    while index < len(line.args):
        if line.arg(index) != "users" or not line.arg(index + 1):
            line.fail(f"'group' only supports 'users' option (got '{line.arg(index)}').")
        members.extend(m for m in line.arg(index + 1).split(",") if m)
        index += 2
    draft.groups[name] = members


def _user(draft: UserlistDraft, line: Line) -> None:
    name = line.arg(0)
    if not name:
        line.fail("'user' expects <name> as arguments.")
    if any(user.name == name for user in draft.users):
        line.fail(f"userlist '{draft.name}': user '{name}' already exists.")
    password, insecure = "", False
    groups: list[str] = []
    index = 1
    while index < len(line.args):
        word, value = line.arg(index), line.arg(index + 1)
        if word in ("password", "insecure-password") and index + 1 < len(line.args):
            password, insecure = value, word == "insecure-password"
        elif word == "groups" and value:
            groups.extend(g for g in value.split(",") if g)
            draft.user_groups.extend((name, g, line.location) for g in value.split(",") if g)
        else:
            line.fail(f"'user' only supports 'password', 'insecure-password' and 'groups' "
                      f"options (got '{word}').")
        index += 2
    if not password and not insecure:
        line.warn(f"userlist '{draft.name}': user '{name}' has no password: it can never "
                  "authenticate.")
        password = "*"  # no crypt(3) hash is "*": never matches
    draft.users.append(User(name, password, insecure, tuple(groups)))
