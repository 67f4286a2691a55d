"""Running the harvest as a service: the Celery app and tasks, shutdown, the broker
transport, the time base, and the checks (preflight, doctor, status)."""
