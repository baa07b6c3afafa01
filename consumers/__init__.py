"""Consumers, their applications and API keys, plans and subscriptions."""
