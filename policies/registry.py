"""The policy types an attachment may name.

The policy-engine issue replaces this list with registered handler modules
(each with its config schema); until then an attachment is checked for a known
type name and a JSON-object config.
"""

BUILTIN_POLICY_TYPES: tuple[tuple[str, str], ...] = (
    ("key-auth", "Key authentication"),
    ("jwt", "JWT authentication"),
    ("acl", "Access control (groups and scopes)"),
    ("rate-limit", "Rate limit"),
    ("quota", "Quota"),
    ("ip-restriction", "IP restriction"),
    ("request-size-limit", "Request size limit"),
    ("cors", "CORS"),
    ("request-transformer", "Request transformer"),
    ("response-transformer", "Response transformer"),
    ("request-validator", "Request validator"),
)
