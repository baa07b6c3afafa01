"""The ASGI data plane (the gateway issue builds it)."""
