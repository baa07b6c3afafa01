"""Observability shared by the web, gateway and worker processes.

``context`` holds the request id of the request being served (a contextvar);
``logs`` the JSON/text log formatters and the redaction filter; ``tracing``
the OpenTelemetry set-up, which stays off (and unimported) unless configured;
``middleware`` the Django side of request ids.
"""
