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
    bmrs_group,
    code_queues,
    compose_bmrs_services,
    env_example_entries,
    interpolated_names,
    load_compose,
    parse_bmrs_args,
    parse_duration_s,
    run_tool,
    secret_env_names,
    setting_env_names,
    stop_limits_s,
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


def test_workers_stop_within_their_grace_period(compose) -> None:
    for name in WORKER_SERVICES:
        service = compose["services"][name]
        # SIGTERM stays Celery's warm stop, bounded by worker.cluster.shutdown (no remap).
        assert "REMAP_SIGTERM" not in service["environment"], name
        grace = parse_duration_s(service["stop_grace_period"])
        for setting, limit in stop_limits_s(service["environment"]).items():
            assert grace > limit, f"{name}: stop_grace_period {grace:g}s <= {setting} {limit:g}s"
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_workers_are_health_checked_by_a_celery_ping_of_their_own_node(compose) -> None:
    for name in WORKER_SERVICES:
        test = compose["services"][name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "-m", "worker.health", "worker"], test


def test_bmrs_health_offers_every_check_of_python_m_worker_health() -> None:
    """The compose file runs `python -m worker.health ROLE` (it loads less); users have
    `bmrs health ROLE`: the same checks, so the two must offer the same roles."""
    import argparse

    from worker.health import build_parser

    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(subparsers.choices) == set(bmrs_group().commands["health"].commands)
    assert set(subparsers.choices) == {"worker", "beat", "listener", "url", "port"}


def test_every_service_has_a_healthcheck_that_runs_the_same_on_docker_and_podman(compose) -> None:
    """podman 4.3's Docker API splits exec-form arguments on spaces, and `podman exec` has no
    $HOSTNAME: exec form only with space-free arguments, else CMD-SHELL; no $HOSTNAME at all."""
    for name, service in compose["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck: `up --wait` and depends_on cannot see it is up"
        if test[0] == "CMD":
            spaced = [arg for arg in test[1:] if re.search(r"\s", arg)]
            assert not spaced, f"{name}: exec-form arguments with spaces are split by podman: {spaced}"
        else:
            assert test[0] == "CMD-SHELL" and len(test) == 2, f"{name}: {test}"
        assert "HOSTNAME" not in " ".join(test), f"{name}: $HOSTNAME is unset under podman exec"
        # start_interval needs Docker 25's API (1.44): compose refuses the file on older engines.
        assert "start_interval" not in service["healthcheck"], name


def test_every_service_has_a_stop_grace_period(compose) -> None:
    """Without one podman kills a service at once on stop (Docker waits 10 s)."""
    for name, service in compose["services"].items():
        assert parse_duration_s(service.get("stop_grace_period", "0s")) >= 10, name


def test_each_service_gets_only_the_secrets_its_role_needs(compose) -> None:
    expected = {
        "redis": {"REDIS_PASSWORD", "REDISCLI_AUTH"},
        "worker": {"BMRS_BROKER_URL", "BMRS_ALERT_WEBHOOK"},
        "worker-realtime": {"BMRS_BROKER_URL", "BMRS_ALERT_WEBHOOK"},
        "beat": {"BMRS_BROKER_URL"},
        "iris-listener": {"BMRS_BROKER_URL", "BMRS_IRIS_CLIENT_SECRET", "BMRS_IRIS_CONNECTION_STRING"},
        "flower": {"BMRS_BROKER_URL", "FLOWER_BASIC_AUTH"},
        "sim": set(),
    }
    assert set(expected) == set(compose["services"])
    secret_names = secret_env_names() | {"REDIS_PASSWORD", "REDISCLI_AUTH", "BMRS_BROKER_URL"}
    for name, service in compose["services"].items():
        # env_file would hand every container all of .env, the other roles' secrets included.
        assert "env_file" not in service, f"{name}: env_file gives it every secret in .env"
        environment = service.get("environment") or {}
        # NAME_FILE (a mounted file holding the secret) counts as the secret NAME.
        held = {key.removesuffix("_FILE") for key in environment if key in secret_names or SECRET_NAME.search(key)}
        assert held == expected[name], f"{name} gets the secrets {sorted(held)}, expected {sorted(expected[name])}"
        mounts = [str(v) for v in service.get("volumes", [])]
        if any(m.startswith("./secrets:") for m in mounts):
            assert name in ("worker", "worker-realtime", "iris-listener"), f"{name} mounts ./secrets"


def test_every_non_secret_setting_reaches_the_bmrs_services_from_env(compose) -> None:
    """Settings are passed by name (compose looks each up in .env), one list for all roles;
    the simulator's own settings (BMRS_SIM_*) go to the simulator."""
    settings = set(setting_env_names()) - secret_env_names()
    simulator = {name for name in settings if name.startswith("BMRS_SIM_")}
    fixed = {"BMRS_BROKER_URL", "BMRS_DATA_DIR"}
    for name, service in compose_bmrs_services(compose).items():
        environment = service["environment"]
        passed = {key for key, value in environment.items() if value is None and key in settings}
        if name == "sim":
            assert simulator <= set(environment), f"sim: missing {sorted(simulator - set(environment))}"
            continue
        expected = settings - fixed - simulator
        assert passed == expected, f"{name}: missing {sorted(expected - passed)}, extra {sorted(passed - expected)}"


def test_flower_is_published_on_the_host_loopback_by_default(compose) -> None:
    (port,) = compose["services"]["flower"]["ports"]
    match = re.fullmatch(r"\$\{FLOWER_BIND:-([^}]*)\}:5555:5555", str(port))
    assert match, f"publish Flower as ${{FLOWER_BIND:-127.0.0.1}}:5555:5555, not {port!r}"
    assert match.group(1) == "127.0.0.1"
    assert ("FLOWER_BIND", "127.0.0.1", False) in env_example_entries()
    for name, service in compose["services"].items():
        if name != "flower":
            assert "ports" not in service, f"{name} is published outside the compose network"


def test_redis_does_not_run_as_root(compose) -> None:
    redis = compose["services"]["redis"]
    # The official image switches to its redis user only when it runs redis-server itself; a
    # `sh -c` command keeps root unless it drops it (tests/test_deploy_runtime.py runs it).
    assert redis["command"][0] == "sh"
    assert str(redis.get("user", "root")).split(":")[0] in ("root", "0"), "the script needs root to chown /data"
    script = redis["command"][-1]
    (launch,) = [line for line in script.splitlines() if "redis-server" in line]
    assert launch.startswith("exec $$as_redis redis-server "), launch
    for tool in ("su-exec redis", "gosu redis", "setpriv --reuid=redis --regid=redis"):
        assert tool in script, tool


def test_flower_has_basic_auth_from_env_and_a_healthcheck(compose) -> None:
    flower = compose["services"]["flower"]
    assert "/healthcheck" in " ".join(flower["healthcheck"]["test"])
    _, ctx = parse_bmrs_args(flower["command"])
    assert ctx.params["port"] == 5555
    # The credentials come from .env, never from the compose file itself.
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]*\}", flower["environment"]["FLOWER_BASIC_AUTH"])
    assert "FLOWER_BASIC_AUTH" in {name for name, _, active in env_example_entries() if active}
    # In the demo profile it starts after the simulator, which is how it recognises the demo.
    assert flower["depends_on"]["sim"] == {"condition": "service_healthy", "required": False}


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
                # Only a reference to .env (by name, or interpolated with no fallback value
                # that would be a secret).
                if value is not None:
                    assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", str(value)), f"{name}.{key} = {value!r}"
    text = COMPOSE_FILE.read_text()
    # Credentials inside URLs must be interpolated too.
    for userinfo in re.findall(r"://([^@/\s]*)@", text):
        assert "${" in userinfo, f"literal credentials in a URL: {userinfo!r}"
