"""The Celery cluster: app, tasks, dispatch, shared rate limit, locks, jobs and recovery."""
