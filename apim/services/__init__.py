"""Services: every write to the core domain goes through one of these."""
