"""What every REST endpoint shares: auth, tenant resolution, roles, paging, errors, idempotency."""
