"""docker-compose.yml: valid for the compose specification and in step with the code.

There is no Docker engine here, so the file is checked statically: against the compose spec's
JSON schema (check-jsonschema's vendored copy), and against what the code says exists (bmrs
subcommands and their options, Celery queues, settings, Celery time limits).
"""

from __future__ import annotations

import re

import pytest

from tests.support.deploy import (
    COMPOSE_FILE,
    SECRET_NAME,
    THIRD_PARTY_ENV,
    allowed_container_env,
    celery_conf,
    code_queues,
    compose_bmrs_services,
    env_example_entries,
    interpolated_names,
    load_compose,
    parse_bmrs_args,
    parse_duration_s,
    run_tool,
    secret_env_names,
    task_time_limits_s,
    worker_queues,
)

WORKER_SERVICES = ("worker", "worker-realtime")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def test_compose_file_is_valid_for_the_compose_specification() -> None:
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_an_invalid_file(tmp_path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("stop_grace_period:", "stop_grace_periods:", 1))
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken))
    assert result.returncode != 0
    assert "stop_grace_periods" in result.stdout + result.stderr


def test_every_bmrs_service_runs_an_existing_bmrs_subcommand_with_valid_options(compose) -> None:
    services = compose_bmrs_services(compose)
    assert set(services) >= {"worker", "worker-realtime", "beat", "iris-listener", "flower", "sim"}
    for name, service in services.items():
        command = service["command"]
        assert isinstance(command, list), f"{name}: give command as a list (exec form)"
        subcommand, _ = parse_bmrs_args(command)
        assert subcommand != "up", f"{name}: one role per container, not `bmrs up`"


def test_every_celery_queue_has_a_consuming_service(compose) -> None:
    consumed: dict[str, set[str]] = {}
    for name, service in compose_bmrs_services(compose).items():
        if service["command"][0] == "worker":
            for queue in worker_queues(service["command"]):
                consumed.setdefault(queue, set()).add(name)
    assert set(consumed) == code_queues(), f"queues without a consumer: {code_queues() - set(consumed)}"
    # A long backfill must never starve realtime, IRIS or dashboard work.
    assert consumed["backfill"].isdisjoint(consumed["realtime"] | consumed["iris"] | consumed["dashboard"])


def test_exactly_one_beat_and_one_iris_listener(compose) -> None:
    services = compose_bmrs_services(compose)
    for role in ("beat", "listen"):
        running = [name for name, svc in services.items() if svc["command"][0] == role]
        assert len(running) == 1, f"`bmrs {role}` runs in {running}"
        service = services[running[0]]
        assert "scale" not in service and "replicas" not in service.get("deploy", {})


def test_workers_stop_with_celery_soft_shutdown_inside_their_grace_period(compose) -> None:
    conf = celery_conf()
    for name in WORKER_SERVICES:
        service = compose["services"][name]
        assert service["environment"].get("REMAP_SIGTERM") == "SIGQUIT", name
        grace = parse_duration_s(service["stop_grace_period"])
        for setting, limit in task_time_limits_s(service["environment"]).items():
            assert grace > limit, f"{name}: stop_grace_period {grace:g}s <= {setting} {limit:g}s"
        assert grace > float(conf.worker_soft_shutdown_timeout or 0)
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_workers_are_health_checked_by_a_celery_ping_of_their_own_node(compose) -> None:
    for name in WORKER_SERVICES:
        test = compose["services"][name]["healthcheck"]["test"]
        command = test[1] if test[0] == "CMD-SHELL" else " ".join(test[1:])
        assert re.search(r"celery -A worker\.cluster\.celery_app inspect ping .*celery@\$\$HOSTNAME", command), command


def test_flower_has_basic_auth_from_the_environment_and_a_healthcheck(compose) -> None:
    flower = compose["services"]["flower"]
    assert "5555:5555" in [str(port) for port in flower["ports"]]
    assert "/healthcheck" in " ".join(flower["healthcheck"]["test"])
    _, ctx = parse_bmrs_args(flower["command"])
    assert ctx.params["port"] == 5555
    # The credentials come from .env (env_file), never from the compose file itself.
    assert "FLOWER_BASIC_AUTH" not in flower.get("environment", {})
    assert any(e["path"] == ".env" for e in flower["env_file"])
    assert "FLOWER_BASIC_AUTH" in {name for name, _, active in env_example_entries() if active}


def test_redis_has_a_password_persistence_noeviction_and_a_healthcheck(compose) -> None:
    redis = compose["services"]["redis"]
    script = redis["command"][-1]
    assert "--appendonly yes" in script and "--maxmemory-policy noeviction" in script
    assert "requirepass $$REDIS_PASSWORD" in script
    assert any(v.endswith(":/data") and not v.startswith(".") for v in redis["volumes"])
    assert redis["volumes"][0].split(":")[0] in compose["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert "ports" not in redis, "Redis must not be published outside the compose network"


def test_bmrs_services_wait_for_a_healthy_redis_and_share_the_warehouse_volume(compose) -> None:
    for name, service in compose_bmrs_services(compose).items():
        if name == "sim":
            continue
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert "warehouse:/data" in service["volumes"], name
        assert service["environment"]["BMRS_DATA_DIR"] == "/data"
        assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379/\d+", service["environment"]["BMRS_BROKER_URL"])


def test_demo_profile_adds_the_simulator_and_the_cluster_points_at_it(compose) -> None:
    from worker.sim.server import BASE_PATH

    sim = compose["services"]["sim"]
    assert sim["profiles"] == ["demo"]
    _, ctx = parse_bmrs_args(sim["command"])
    assert ctx.params["host"] == "0.0.0.0", "the simulator must listen beyond its own container"
    active = {name: value for name, value, is_active in env_example_entries() if is_active}
    assert active["BMRS_ELEXON_BASE_URL"] == f"http://sim:{ctx.params['port']}{BASE_PATH}"
    for name in WORKER_SERVICES:
        dependency = compose["services"][name]["depends_on"]["sim"]
        assert dependency == {"condition": "service_healthy", "required": False}
    # Only the demo profile has a simulator: everything else runs without a profile.
    assert [n for n, s in compose["services"].items() if s.get("profiles")] == ["sim"]


def test_every_interpolated_variable_is_listed_in_env_example() -> None:
    listed = {name for name, _, _ in env_example_entries()}
    used = interpolated_names(COMPOSE_FILE.read_text())
    assert used, "the compose file interpolates nothing: the parser is wrong"
    assert used <= listed, f"add to .env.example: {sorted(used - listed)}"


def test_container_environments_hold_only_settings_and_documented_third_party_variables(compose) -> None:
    allowed = allowed_container_env()
    for name, service in compose_bmrs_services(compose).items():
        extra = set(service.get("environment", {})) - allowed
        assert not extra, f"{name}: {sorted(extra)} are neither settings nor in THIRD_PARTY_ENV {sorted(THIRD_PARTY_ENV)}"


def test_no_secret_value_is_written_in_the_compose_file(compose) -> None:
    secret_names = secret_env_names() | {"REDIS_PASSWORD", "REDISCLI_AUTH"}
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key in secret_names or SECRET_NAME.search(key):
                # Only a reference to .env, and with no fallback value that would be a secret.
                assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", str(value)), f"{name}.{key} = {value!r}"
    text = COMPOSE_FILE.read_text()
    # Credentials inside URLs must be interpolated too.
    for userinfo in re.findall(r"://([^@/\s]*)@", text):
        assert "${" in userinfo, f"literal credentials in a URL: {userinfo!r}"
