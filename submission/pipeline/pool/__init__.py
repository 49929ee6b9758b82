"""Processes: the supervisor and its workers (one per GPU), the Ray pool, and the fault injector."""
