"""Policy attachments and (with the policy-engine issue) the built-in policies."""
