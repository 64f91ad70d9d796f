"""Benchmarks of the ingestion pipeline: one command each, results in ``bench/results``."""
