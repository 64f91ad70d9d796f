""".env.example: every setting the code reads, with its true default, and no secret in it.

The list is checked against :class:`worker.settings.Settings`, so a new setting that is not
documented here, a renamed one, or a changed default fails this test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, TypeAdapter

from tests.support.deploy import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    env_example_entries,
    interpolated_names,
    secret_env_names,
    setting_env_names,
)
from worker.settings import SECRET_FIELDS, Settings

PLACEHOLDER_MARK = "change-me"


def test_every_setting_is_listed() -> None:
    listed = {name for name, _, _ in env_example_entries()}
    by_field: dict[str, set[str]] = {}
    for env, field in setting_env_names().items():
        by_field.setdefault(field, set()).add(env)
    missing = sorted(min(envs) for envs in by_field.values() if not envs & listed)
    assert not missing, f"add to .env.example (with its default, commented): {missing}"


def test_every_listed_name_is_a_setting_or_a_compose_variable() -> None:
    known = set(setting_env_names()) | interpolated_names(COMPOSE_FILE.read_text())
    unknown = sorted({name for name, _, _ in env_example_entries()} - known)
    assert not unknown, f"{unknown}: not read by the code (worker/settings.py) nor by docker-compose.yml"


def test_each_name_is_assigned_once() -> None:
    names = [name for name, _, _ in env_example_entries()]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_commented_values_are_the_code_defaults() -> None:
    names = setting_env_names()
    for env, value, active in env_example_entries():
        if active or env not in names:
            continue
        field = Settings.model_fields[names[env]]
        if value == "":
            assert field.default in (None, ""), f"{env}: the default is {field.default!r}, shown as unset"
        else:
            parsed = TypeAdapter(field.annotation).validate_python(value)
            assert parsed == field.default, f"{env}={value} but the code's default is {field.default!r}"


def test_active_values_are_valid_settings() -> None:
    names = setting_env_names()
    for env, value, active in env_example_entries():
        if active and env in names:
            TypeAdapter(Settings.model_fields[names[env]].annotation).validate_python(value)


def test_secrets_are_placeholders_only() -> None:
    secrets = secret_env_names() | {"REDIS_PASSWORD"}
    for env, value, _ in env_example_entries():
        if env in secrets:
            assert value == "" or PLACEHOLDER_MARK in value, f"{env}: only a {PLACEHOLDER_MARK} placeholder here"
    assert {"FLOWER_BASIC_AUTH", "REDIS_PASSWORD"} <= {e for e, v, a in env_example_entries() if a}


def test_the_file_loads_as_the_settings_of_a_process(bmrs_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bmrs_env.delenv("BMRS_DATA_DIR")
    bmrs_env.delenv("BMRS_HTTP_RETRIES")
    settings = Settings(_env_file=ENV_EXAMPLE)
    assert settings.elexon_base_url.startswith("http://sim:")
    assert isinstance(settings.flower_basic_auth, SecretStr)
    assert settings.flower_basic_auth.get_secret_value().startswith("admin:")
    for field in SECRET_FIELDS:
        if field != "flower_basic_auth":
            assert getattr(settings, field) is None
