"""Shared fixtures live in tests/support/<area>.py; add a module here to register it."""

pytest_plugins = [
    "tests.support.env",
    "tests.support.redis",
    "tests.support.iris",
    "tests.support.servicebus",
    "tests.support.fake_sheets",
    "tests.support.simulator",
    "tests.support.replay",
    "tests.support.fake_bigquery",
    "tests.support.cluster",
]
