"""Usage records, rollups and dashboards (the analytics issue builds them)."""
