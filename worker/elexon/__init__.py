"""The Elexon data core: catalog, client, settlement calendar, parse and hash, dedup, coverage.

Nothing here knows about Celery; the cluster (``worker.cluster``) and the CLI build on it.
"""
