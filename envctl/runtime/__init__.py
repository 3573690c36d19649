"""Running a stack: bringing it up in dependency order, readiness, status, logs, teardown,
who owns a run (leases), the reaper and gc for runs whose owner is gone."""
