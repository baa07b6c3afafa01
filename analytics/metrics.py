"""Counters for the usage pipeline: nothing is lost without being counted.

``apim_usage_records_dropped_total{reason}`` is the number the issue promises
is never silent: ``buffer_full`` (the gateway's buffer and spill were both
exhausted), ``spill_failed`` (the spill file could not be written),
``spill_corrupt`` (a damaged spill file), ``invalid`` / ``out_of_range``
(the ingest side refused a record). Labels stay low-cardinality: no tenant,
no consumer.
"""

from __future__ import annotations

from prometheus_client import Counter

RECORDS_DROPPED = Counter(
    "apim_usage_records_dropped",
    "Usage records that could not be kept, by reason.",
    ["reason"],
)
RECORDS_SPILLED = Counter(
    "apim_usage_records_spilled",
    "Usage records written to the local spill file because the sink was unavailable.",
)
RECORDS_REPLAYED = Counter(
    "apim_usage_records_replayed",
    "Usage records read back from spill files and handed to the sink.",
)
RECORDS_FLUSHED = Counter(
    "apim_usage_records_flushed",
    "Usage records the gateway handed to its sink (Redis stream or database).",
)
RECORDS_INGESTED = Counter(
    "apim_usage_records_ingested",
    "New usage rows written to the database (duplicates not counted).",
)
STREAM_FULL = Counter(
    "apim_usage_stream_full",
    "Batches the usage stream refused because it held APIM_USAGE_STREAM_MAXLEN entries (kept and spilled, not lost).",
)
STREAM_DEAD_LETTERS = Counter(
    "apim_usage_stream_dead_letters",
    "Usage stream entries moved to the dead-letter stream (undecodable or refused by the database).",
)
