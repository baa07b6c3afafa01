"""Real upstreams on loopback for the metrics tests."""

from tests.gateway.servers import echo_server, refused_port  # noqa: F401 - fixtures re-exported for this package
