"""Console admins for consumers, applications, API keys, plans and subscriptions."""

from . import consumers, keys, plans

__all__ = ["consumers", "keys", "plans"]
