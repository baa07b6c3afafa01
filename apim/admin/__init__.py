"""The console: Django's admin over the catalog, scoped by tenant, writing through services.

Importing the package registers the admins (``admin.autodiscover`` imports it).
Shared behaviour lives in ``mixins`` (scoping, service-backed writes) and
``tools`` (operator actions and change-page buttons).
"""

from . import audit, catalog, tenancy, tokens

__all__ = ["audit", "catalog", "tenancy", "tokens"]
