"""Warehouses a chunk is loaded into: the embedded local lake, or BigQuery."""
