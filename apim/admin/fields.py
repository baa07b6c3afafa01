"""Form fields the console needs that Django's admin does not provide."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib.auth import get_user_model


class UsernameField(forms.ModelChoiceField):
    """Pick a user by typing their username.

    Tenant operators must not get a drop-down of every account on the
    installation (that would leak other tenants' users), so they name the
    user instead; an unknown or inactive username is a form error.
    """

    widget = forms.TextInput
    default_error_messages = {"invalid_choice": "No active user has this username."}

    def __init__(self, **kwargs: Any) -> None:
        user_model = get_user_model()
        super().__init__(
            queryset=user_model._default_manager.filter(is_active=True),
            to_field_name=user_model.USERNAME_FIELD,
            **kwargs,
        )

    def prepare_value(self, value: Any) -> Any:
        # An existing row's initial data holds the user's primary key, not the username.
        if isinstance(value, int):
            user = get_user_model()._default_manager.filter(pk=value).first()
            return user.get_username() if user is not None else ""
        return super().prepare_value(value)


class DefaultingJSONField(forms.JSONField):
    """A JSON box whose empty value is the model default (``[]`` or ``{}``).

    Django turns an empty JSON box into ``None``, which a non-null JSON column
    refuses with an IntegrityError at save time; operators expect an empty box
    to mean "none".
    """

    def __init__(self, *, empty_factory: Callable[[], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.empty_factory = empty_factory

    def to_python(self, value: Any) -> Any:
        result = super().to_python(value)
        return self.empty_factory() if result is None else result
