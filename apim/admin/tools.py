"""Operator actions: one service call per object, as a changelist action and as a change-page button.

An ``ObjectTool`` names a service (``api_publish``) once; ``service_action``
turns it into a changelist action and ``ObjectToolsMixin`` into a POST-only
button on the change page. Both run the service on each object on its own, so
one illegal transition is reported without undoing the others, and both log
the change and tell the operator what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from .mixins import SERVICE_ERRORS, error_text


def _always(obj: models.Model) -> bool:
    return True


@dataclass(frozen=True)
class ObjectTool:
    """An operator action on one object.

    ``name`` is the URL segment and the action's name; ``past`` completes
    "Published 2 APIs"; ``is_available`` hides the button when the action is
    not legal for the object's current state (the service still decides).
    """

    name: str
    label: str
    past: str
    service: Callable[..., Any]
    arg: str
    is_available: Callable[[Any], bool] = _always

    def run(self, obj: models.Model, actor: Any) -> Any:
        return self.service(**{self.arg: obj}, actor=actor)


def run_tool(modeladmin: Any, request: HttpRequest, objects: Any, tool: ObjectTool) -> list[tuple[Any, Any]]:
    """Apply ``tool`` to each object the user may change; report refusals; return the successes."""
    done: list[tuple[Any, Any]] = []
    for obj in objects:
        if not modeladmin.has_change_permission(request, obj):
            modeladmin.message_user(request, f"You may not change {obj}.", messages.ERROR)
            continue
        try:
            result = tool.run(obj, request.user)
        except SERVICE_ERRORS as exc:
            modeladmin.message_user(request, error_text(exc), messages.ERROR)
            continue
        modeladmin.log_change(request, obj, f"{tool.label}.")
        done.append((obj, result))
    if done:
        opts = modeladmin.model._meta
        noun = opts.verbose_name if len(done) == 1 else opts.verbose_name_plural
        names = ", ".join(str(obj) for obj, _ in done)
        modeladmin.message_user(request, f"{tool.past} {len(done)} {noun}: {names}.", messages.SUCCESS)
    return done


def service_action(tool: ObjectTool) -> Callable[..., None]:
    """A changelist action running ``tool`` on every selected object."""

    def action(modeladmin: Any, request: HttpRequest, queryset: models.QuerySet) -> None:
        run_tool(modeladmin, request, queryset, tool)

    action.__name__ = tool.name
    return admin.action(permissions=["change"], description=f"{tool.label} selected %(verbose_name_plural)s")(action)


class ObjectToolsMixin:
    """Adds each of ``object_tools`` as a POST-only view and a button on the change page."""

    object_tools: tuple[ObjectTool, ...] = ()
    change_form_template = "admin/apim/change_form_tools.html"

    def get_urls(self) -> list:
        opts = self.model._meta  # type: ignore[attr-defined]
        view = self.admin_site.admin_view(require_POST(self.object_tool_view))  # type: ignore[attr-defined]
        tool_urls = [
            path(
                f"<path:object_id>/{tool.name}/",
                view,
                {"tool_name": tool.name},
                name=f"{opts.app_label}_{opts.model_name}_{tool.name}",
            )
            for tool in self.object_tools
        ]
        return tool_urls + super().get_urls()  # type: ignore[misc]

    def object_tool_view(self, request: HttpRequest, object_id: str, tool_name: str) -> HttpResponse:
        tool = next(t for t in self.object_tools if t.name == tool_name)
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is None:
            raise Http404("No such object.")
        if not self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            raise PermissionDenied
        done = run_tool(self, request, [obj], tool)
        return self.object_tool_response(request, obj, tool, done)

    def object_tool_response(
        self, request: HttpRequest, obj: models.Model, tool: ObjectTool, done: list[tuple[Any, Any]]
    ) -> HttpResponse:
        """Back to the change page; admins whose tools produce something to show override this."""
        opts = obj._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None):
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        buttons = []
        if obj is not None and self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            opts = obj._meta
            buttons = [
                {
                    "label": tool.label,
                    "url": reverse(f"admin:{opts.app_label}_{opts.model_name}_{tool.name}", args=[obj.pk]),
                }
                for tool in self.object_tools
                if tool.is_available(obj)
            ]
        extra_context = {**(extra_context or {}), "apim_object_tools": buttons}
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
