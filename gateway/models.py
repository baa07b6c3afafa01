"""What gateway workers report about their upstream targets, for the admin console.

Health lives in each gateway worker's memory (``gateway.health``); every few
seconds each worker writes its view here, off the request path, one row per
(worker, upstream, target). Rows of a worker that stopped reporting go stale
and are ignored (and cleaned up on its next start or by any reporter).
"""

from __future__ import annotations

from django.db import models

from apim.models import Tenant, Upstream


class TargetHealthReport(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="health_reports")
    gateway = models.CharField(max_length=200, help_text="The reporting worker: host:pid.")
    target_url = models.CharField(max_length=500)
    state = models.CharField(max_length=16)
    circuit = models.CharField(max_length=16)
    consecutive_failures = models.PositiveIntegerField(default=0)
    in_flight = models.PositiveIntegerField(default=0)
    ejected_until = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "am_target_health_reports"
        ordering = ["target_url", "gateway"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "upstream", "target_url"], name="am_health_one_row_per_worker")
        ]

    def __str__(self) -> str:
        return f"{self.target_url} {self.state} ({self.gateway})"
