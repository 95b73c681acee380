"""Which policy runs a backend: ``balance`` and ``hash-type`` turned into a ``Policy``.

Rules:
1. One policy per backend per process, built once (at start-up or on reload) and kept: it holds
   the round-robin position and the tables built for the eligible sets it has seen.
2. Static algorithms (static-rr, and the hashing ones with ``hash-type map-based``) get the
   configured weights here, once; every other algorithm reads the weights of each call.
"""

from __future__ import annotations

import random

from geoproxy.balance.exprhash import ExpressionHash
from geoproxy.balance.first import First
from geoproxy.balance.hashfuncs import HASH_FUNCTIONS
from geoproxy.balance.hashing import (
    HashPolicy,
    HeaderHash,
    KeyHash,
    SourceHash,
    UriHash,
    UrlParamHash,
)
from geoproxy.balance.leastconn import LeastConn
from geoproxy.balance.policy import Policy
from geoproxy.balance.random import RandomDraws
from geoproxy.balance.roundrobin import RoundRobin, StaticRoundRobin
from geoproxy.config.model import Backend, BalanceAlgorithm


def policy_for(backend: Backend, rng: random.Random) -> Policy:
    """The balancing policy of ``backend``, for this process. ``rng`` feeds ``random``."""
    algorithm = backend.balance.algorithm
    configured = {server.name: server.weight for server in backend.servers}
    if algorithm is BalanceAlgorithm.ROUNDROBIN:
        return RoundRobin()
    if algorithm is BalanceAlgorithm.STATIC_RR:
        return StaticRoundRobin(configured)
    if algorithm is BalanceAlgorithm.LEASTCONN:
        return LeastConn()
    if algorithm is BalanceAlgorithm.FIRST:
        return First()
    if algorithm is BalanceAlgorithm.RANDOM:
        return RandomDraws(backend.balance.draws, rng)
    return HashPolicy(_key_hash(backend), backend.hash.method, configured)


def _key_hash(backend: Backend) -> KeyHash:
    balance, settings = backend.balance, backend.hash
    function = HASH_FUNCTIONS[settings.function]
    algorithm = balance.algorithm
    if algorithm is BalanceAlgorithm.SOURCE:
        return SourceHash(settings.avalanche)
    if algorithm is BalanceAlgorithm.HASH:
        return ExpressionHash(balance.expression or "src", function, settings.avalanche)
    if algorithm is BalanceAlgorithm.URI:
        return UriHash(
            function, settings.avalanche, balance.uri_len, balance.uri_depth, balance.uri_whole
        )
    if balance.param is None:
        raise ValueError(f"backend {backend.name}: balance {algorithm.value} needs a name")
    if algorithm is BalanceAlgorithm.URL_PARAM:
        return UrlParamHash(function, settings.avalanche, balance.param)
    if algorithm is BalanceAlgorithm.HDR:
        return HeaderHash(function, settings.avalanche, balance.param, balance.use_domain_only)
    raise ValueError(f"backend {backend.name}: unknown balance algorithm {algorithm.value}")
