"""geoproxy: an HTTP/1.1 load balancer that reads HAProxy's configuration and shares its routing
state (health, admin state, in-flight counts, queues, stick tables) through Redis."""

__version__ = "0.1.0"
