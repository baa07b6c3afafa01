from tests.gateway.servers import echo_server  # noqa: F401 - fixture re-exported for this package
