"""geoproxy.resolve (pure parts): which address each server of an FQDN group gets, when a
failed resolution takes them away, family preference, and the groups."""

from __future__ import annotations

import socket

import pytest

from geoproxy.config import parse_text
from geoproxy.config.model import ResolvePrefer, ServerResolution
from geoproxy.proxy.buffering import BufferedBody
from geoproxy.resolve.groups import resolution_groups
from geoproxy.resolve.lookup import order
from geoproxy.resolve.policy import after_failure, assign

SLOTS = [("w1", None), ("w2", None), ("w3", None)]


def test_slots_take_distinct_addresses_in_order_and_the_rest_stay_without() -> None:
    assert assign(SLOTS, ["10.0.0.1", "10.0.0.2"]) == {
        "w1": "10.0.0.1", "w2": "10.0.0.2", "w3": ""}


def test_a_server_keeps_its_address_while_the_answer_holds_it() -> None:
    current = [("w1", "10.0.0.1"), ("w2", "10.0.0.2"), ("w3", "")]
    assert assign(current, ["10.0.0.2", "10.0.0.3"]) == {
        "w1": "10.0.0.3", "w2": "10.0.0.2", "w3": ""}


def test_an_obsolete_address_is_kept_within_hold_obsolete() -> None:
    current = [("w1", "10.0.0.1"), ("w2", None)]
    assert assign(current, ["10.0.0.2"], kept=frozenset({"10.0.0.1"})) == {
        "w1": "10.0.0.1", "w2": "10.0.0.2"}


def test_allow_dup_ip_gives_every_slot_the_first_address() -> None:
    assert assign(SLOTS, ["10.0.0.1", "10.0.0.2"], allow_dup=True) == {
        "w1": "10.0.0.1", "w2": "10.0.0.1", "w3": "10.0.0.1"}


def test_a_failure_keeps_the_addresses_within_its_hold_then_takes_them() -> None:
    hold = {"nx": 30.0, "other": 30.0, "timeout": 10.0}
    current = {"w1": "10.0.0.1"}
    assert after_failure(current, "nx", last_valid=100.0, now=120.0, hold=hold) is None
    assert after_failure(current, "timeout", last_valid=100.0, now=120.0, hold=hold) == {
        "w1": ""}
    assert after_failure(current, "refused", last_valid=0.0, now=5.0, hold=hold) == {"w1": ""}


@pytest.mark.parametrize(("prefer", "networks", "expected"), [
    (ResolvePrefer.IPV6, (), ("::1",)),
    (ResolvePrefer.IPV4, (), ("10.0.0.1", "192.168.0.1")),
    (ResolvePrefer.IPV4, ("192.168.0.0/16",), ("192.168.0.1", "10.0.0.1")),
])
def test_the_preferred_family_and_networks_come_first(
    prefer: ResolvePrefer, networks: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    found = [(socket.AF_INET, "10.0.0.1"), (socket.AF_INET6, "::1"),
             (socket.AF_INET, "10.0.0.1"), (socket.AF_INET, "192.168.0.1")]
    assert order(found, ServerResolution("dns", prefer, networks=networks)) == expected


def test_the_other_family_is_used_when_the_preferred_one_has_no_address() -> None:
    found = [(socket.AF_INET, "10.0.0.1")]
    assert order(found, ServerResolution("dns", ResolvePrefer.IPV6)) == ("10.0.0.1",)


def test_servers_sharing_an_fqdn_and_resolvers_form_one_group() -> None:
    config = parse_text(
        "defaults\n    mode http\nfrontend f\n    bind :80\n    default_backend b\n"
        "backend b\n    server-template w 3 app.local:80 resolvers default\n"
        "    server x other.local:80 resolvers default\n    server y 10.0.0.1:80\n",
        "t.cfg", env={})
    groups = resolution_groups(config, config.backends[0])
    assert [(g.name, g.fqdn, [s.name for s in g.servers]) for g in groups] == [
        ("w1", "app.local", ["w1", "w2", "w3"]), ("x", "other.local", ["x"])]


def test_a_buffered_body_reads_the_buffered_bytes_then_the_rest() -> None:
    class Rest:
        def __init__(self) -> None:
            self.parts = [b"cd", b"e"]

        def read(self, size: int = -1) -> bytes:
            return self.parts.pop(0) if self.parts else b""

    body = BufferedBody(b"ab", Rest(), rest_done=False)
    assert [body.read(1), body.read(5), body.read(5), body.read(5), body.read(5)] == [
        b"a", b"b", b"cd", b"e", b""]
    assert BufferedBody(b"xyz", Rest(), rest_done=True).read() == b"xyz"
