"""``manage.py gateway`` refuses to start when the metrics directory cannot be prepared, and says why."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


def test_unwritable_metrics_directory_is_a_clear_error(tmp_path, monkeypatch):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(not_a_directory))
    with pytest.raises(CommandError, match="PROMETHEUS_MULTIPROC_DIR"):
        call_command("gateway", "--workers", "2", "--port", "1")
