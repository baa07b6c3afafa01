"""Declarative config, like Kong's decK: a tenant's catalog as one YAML document.

``export`` writes the document, ``importer`` compares a document with the
database and applies the difference through the services (so validation, the
audit trail and config-changed events happen exactly as for the admin and the
REST API), ``document`` parses and checks its shape, ``secrets`` keeps secrets
out of it. Natural keys only (names, ``name``+``version``, URLs, policy types),
never database ids, so a document moves between tenants and installations.
"""
