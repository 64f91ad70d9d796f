"""The BMRS ingestion cluster: Celery app, tasks and the pipeline they call."""
