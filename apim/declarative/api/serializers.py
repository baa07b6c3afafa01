"""Shapes of the declarative config endpoints (for validation of query parameters and for the schema)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from apim.declarative.importer import OPS


class ConfigImportQuerySerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False, help_text="Compute and return the diff; write nothing.")
    prune = serializers.BooleanField(default=False, help_text="Delete objects the document does not name.")


@extend_schema_serializer(component_name="ConfigFieldChange")
class ConfigFieldChangeSerializer(serializers.Serializer):
    old = serializers.JSONField(help_text="The stored value (secrets redacted).")
    new = serializers.JSONField(help_text="The document's value (secrets redacted).")


@extend_schema_serializer(component_name="ConfigChange")
class ConfigChangeSerializer(serializers.Serializer):
    op = serializers.ChoiceField(choices=OPS, help_text="keep: not in the document and not pruned.")
    kind = serializers.CharField(help_text="upstream, target, api, route, policy or plan.")
    name = serializers.CharField(help_text="The object by its natural key, e.g. 'api orders v1'.")
    path = serializers.CharField(help_text="Where the object is in the document, e.g. apis[0].routes[1].")
    fields = serializers.DictField(child=ConfigFieldChangeSerializer(), help_text="For updates: field → old/new.")


@extend_schema_serializer(component_name="ConfigImportResult")
class ConfigImportOutputSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    prune = serializers.BooleanField()
    changed = serializers.BooleanField(help_text="False when the tenant already matched the document.")
    summary = serializers.DictField(child=serializers.IntegerField(), help_text="Count per op.")
    changes = ConfigChangeSerializer(many=True)
    text = serializers.CharField(help_text="The diff as the command prints it.")
