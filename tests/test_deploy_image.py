"""Dockerfile and .dockerignore: linted by hadolint and in step with pyproject.toml.

The image's entrypoint must be one of the package's console scripts, it must copy every package
pyproject.toml installs, run as the same non-root user the Kubernetes manifests require, and
keep data, virtualenvs, tests and secrets out of the build context.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from docker.utils.build import PatternMatcher

from tests.support.deploy import (
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    SECRET_NAME,
    bmrs_containers,
    bmrs_group,
    compose_bmrs_services,
    load_compose,
    pod_spec,
    pyproject,
    render,
    run_tool,
)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile line, continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_hadolint_finds_nothing() -> None:
    result = run_tool("hadolint", "--no-color", "--failure-threshold", "style", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints_here() -> None:
    result = run_tool("hadolint", "--no-color", "-", input_text="FROM python:latest\nRUN cd /tmp\n")
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3003" in result.stdout


def test_the_entrypoint_is_the_packages_console_script() -> None:
    scripts = pyproject()["project"]["scripts"]
    (entrypoint,) = [json.loads(args) for keyword, args in final_stage() if keyword == "ENTRYPOINT"]
    assert entrypoint[0] in scripts, f"ENTRYPOINT {entrypoint} is not one of {sorted(scripts)}"
    module, _, attribute = scripts[entrypoint[0]].partition(":")
    target = getattr(importlib.import_module(module), attribute)
    assert target is bmrs_group()
    (cmd,) = [json.loads(args) for keyword, args in final_stage() if keyword == "CMD"]
    assert cmd == ["--help"]


def test_healthcheck_programs_are_installed_by_the_package_or_its_dependencies() -> None:
    """Compose healthchecks and Kubernetes probes call these inside the image."""
    ours = set(pyproject()["project"]["scripts"])
    dependencies = {re.split(r"[<>=\[; ]", dep, maxsplit=1)[0] for dep in pyproject()["project"]["dependencies"]}
    theirs = {
        ep.name for dep in dependencies
        for ep in importlib.metadata.distribution(dep).entry_points if ep.group == "console_scripts"
    }
    programs = set()
    for service in compose_bmrs_services(load_compose()).values():
        if "healthcheck" in service:
            test = service["healthcheck"]["test"]
            programs.add(shlex.split(test[1])[0] if test[0] == "CMD-SHELL" else test[1])
    for overlay in ("overlays/dev", "overlays/prod"):
        for _, container in bmrs_containers(render(overlay)):
            for probe in ("livenessProbe", "readinessProbe"):
                command = container.get(probe, {}).get("exec", {}).get("command")
                if command:
                    programs.add(shlex.split(command[-1])[0] if command[0] == "sh" else command[0])
    assert programs, "no healthcheck found"
    assert programs <= ours | theirs | {"python"}, programs - ours - theirs


def test_every_installed_package_is_copied_into_the_build() -> None:
    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in include}
    copied = set()
    for keyword, args in instructions():
        if keyword == "COPY" and "--from" not in args:
            copied.update(source.rstrip("/") for source in args.split()[:-1])
    assert packages <= copied, f"COPY missing for {sorted(packages - copied)}"
    readme = pyproject()["project"].get("readme")
    assert {"pyproject.toml", readme} <= copied


def test_the_image_runs_as_the_non_root_user_kubernetes_requires() -> None:
    (user,) = [args for keyword, args in final_stage() if keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid, so runAsNonRoot can check it"
    for overlay in ("overlays/dev", "overlays/prod"):
        for workload, _ in bmrs_containers(render(overlay)):
            context = pod_spec(workload)["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["runAsUser"] == int(uid) and context["runAsGroup"] == int(gid)


def test_base_image_is_the_python_the_package_requires() -> None:
    requires = pyproject()["project"]["requires-python"]
    minor = re.search(r">=\s*3\.(\d+)", requires).group(1)
    (default,) = [args for keyword, args in instructions() if keyword == "ARG" and args.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(rf"PYTHON_IMAGE=python:3\.{minor}-slim(-\w+)?", default), default
    assert [args for keyword, args in instructions() if keyword == "FROM"] == [
        "${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"
    ]


def test_no_secret_is_baked_into_the_image() -> None:
    for keyword, args in instructions():
        if keyword in ("ENV", "ARG"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args):
                assert not SECRET_NAME.search(name), f"{keyword} {name}: secrets come at run time"
        if keyword == "COPY":
            assert not re.search(r"\.env\b|secrets?/|\.json\b", args), f"COPY {args}"


@pytest.mark.parametrize(
    "path", [".venv/bin/python", "data/FUELINST/2025-01-01.parquet", "tests/test_x.py", ".env", ".git/HEAD",
             "secrets/service-account.json", "worker/__pycache__/x.cpython-311.pyc"],
)
def test_dockerignore_keeps_local_state_out_of_the_build_context(path: str) -> None:
    assert ignored(path), f"{path} would be sent to the Docker daemon"


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "worker/cli/app.py", "beat/__init__.py",
                                  "iris_listener/__init__.py", "sheets/__init__.py"])
def test_dockerignore_keeps_what_the_build_copies(path: str) -> None:
    assert not ignored(path)


def ignored(path: str) -> bool:
    """Whether `docker build` leaves ``path`` out of the context (docker-py's own matcher)."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    return PatternMatcher(patterns).matches(path)


def test_the_image_installs_the_package_without_its_test_or_bench_extras(tmp_path: Path) -> None:
    """Those extras are ~400 MB of validators, a broker and benchmark tools the cluster never runs.

    The dependencies come first, in a layer of their own (so a code change does not reinstall
    them): the Dockerfile's own command turns pyproject.toml into that requirements file, run
    here on the real pyproject.toml; then the package alone (`--no-deps .`)."""
    installs = [args for keyword, args in instructions() if keyword == "RUN" and "pip install" in args]
    commands = [c.split() for args in installs for c in re.findall(r"pip install ([^&;]*)", args)]
    assert [[w for w in c if w != "--no-cache-dir"] for c in commands] == [
        ["-r", "/tmp/requirements.txt"], ["--no-deps", "."]
    ], commands
    made = re.search(r"(python -c \"[^\"]*\")\s*>\s*/tmp/requirements.txt", installs[0])
    assert made, installs[0]
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    out = subprocess.run(made.group(1), shell=True, cwd=tmp_path, capture_output=True, text=True, check=True)
    project = pyproject()["project"]
    assert out.stdout.split("\n")[:-1] == project["dependencies"]
    assert {"test", "bench"} <= set(project["optional-dependencies"])