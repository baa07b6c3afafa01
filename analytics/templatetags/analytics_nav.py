"""``{% analytics_visible as visible %}``: whether the admin's analytics link leads anywhere for this user.

The dashboard is not a model, so Django's app list cannot hide it by permission;
a staff user with no owner/admin/viewer membership would follow the link only to
get 403. One query, on admin pages only.
"""

from __future__ import annotations

from typing import Any

from django import template

from analytics.dashboard import viewable_tenants

register = template.Library()


@register.simple_tag(takes_context=True)
def analytics_visible(context: dict[str, Any]) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    return viewable_tenants(request).exists()
