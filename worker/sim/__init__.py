"""The Elexon simulator: the Insights API's paths and shapes, offline and deterministic."""
