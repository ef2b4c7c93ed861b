"""deploy/kubernetes validated offline against the real schemas: Kubernetes' own (per version, from
the kubernetes-validate package) and KEDA's CRDs (tests/deploy/keda); their SQL run on PostgreSQL."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml

from jobs.registry import JOB_TYPES
from tests import factories as f

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
KEDA_CRDS = Path(__file__).resolve().parent / "keda"
#: The oldest Kubernetes we support and the newest whose schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
#: The built-in pools (`contentforge worker --pool NAME`).
POOLS = {"light": {"metadata", "thumbnail", "optimize"}, "heavy": {"transcode", "transcript"}}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _all_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted(MANIFESTS.glob("*.yaml")) if p.name != "kustomization.yaml"
            for d in _docs(p)]


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _all_docs() if d["kind"] == kind]


def _k8s_validate(doc: dict[str, Any], version: str) -> None:
    """Kubernetes' JSON schema of the kind, strict: unknown fields are errors (kubectl --validate=strict)."""
    kubernetes_validate.validate(doc, version, strict=True)


def _strict(schema: Any) -> Any:
    """An openAPIV3Schema as the API server reads it with strict field validation: an object with
    declared properties accepts no other field unless it says x-kubernetes-preserve-unknown-fields."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def _keda_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    """A validator for one KEDA kind from its CRD; metadata checked as Kubernetes' ObjectMeta."""
    files = {"ScaledObject": "keda.sh_scaledobjects.yaml", "TriggerAuthentication": "keda.sh_triggerauthentications.yaml"}
    crd = yaml.safe_load((KEDA_CRDS / files[kind]).read_text())
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(served["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"$ref": "https://kubernetes.io/api/_definitions.json#/$defs/"
                                                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    schema["properties"]["apiVersion"]["enum"] = [api_version]
    schema["properties"]["kind"]["enum"] = [kind]
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    definitions = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{K8S_VERSIONS[-1]}-local-strict/_definitions.json", K8S_VERSIONS[-1])
    registry = referencing.Resource.from_contents(definitions) @ referencing.Registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _keda_validate(doc: dict[str, Any]) -> None:
    _keda_validator(doc["kind"], doc["apiVersion"]).validate(doc)


def _validate(doc: dict[str, Any], version: str = K8S_VERSIONS[-1]) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        _keda_validate(doc)
    else:
        _k8s_validate(doc, version)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def _deployment(name: str) -> dict[str, Any]:
    (d,) = [d for d in _kind("Deployment") if d["metadata"]["name"] == name]
    return d


# --------------------------------------------------------------------------- schemas

@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("file", "doc"), _all_docs(), ids=lambda x: x if isinstance(x, str) else x["kind"])
def test_every_manifest_is_valid_against_its_schema(file: str, doc: dict[str, Any], version: str) -> None:
    """Each document of deploy/kubernetes passes its kind's real schema (Kubernetes' or KEDA's CRD)."""
    _validate(doc, version)


def test_the_manifests_hold_the_deployment() -> None:
    """Light and heavy pools, two schedulers, the webhook dispatcher, a migration Job, a ScaledObject per pool."""
    kinds = sorted((d["kind"], d["metadata"]["name"]) for _, d in _all_docs())
    assert kinds == [
        ("ConfigMap", "contentforge-config"),
        ("Deployment", "contentforge-scheduler"),
        ("Deployment", "contentforge-webhooks"),
        ("Deployment", "contentforge-worker-heavy"),
        ("Deployment", "contentforge-worker-light"),
        ("Job", "contentforge-migrate"),
        ("ScaledObject", "contentforge-worker-heavy"),
        ("ScaledObject", "contentforge-worker-light"),
        ("Secret", "contentforge-secrets"),
        ("TriggerAuthentication", "contentforge-postgresql"),
    ]
    assert _deployment("contentforge-scheduler")["spec"]["replicas"] == 2
    (job,) = _kind("Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "migrate"]


def test_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    """kustomization.yaml lists every manifest file; the example Secret is left for operators to make."""
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(listed) == sorted(files)


# A wrong field for each kind of schema: each must be refused, or the validation above proves nothing.
BROKEN = [
    ("worker-light.yaml", "Deployment", "an unknown field (resources.limit)",
     lambda d: _container(d)["resources"].__setitem__("limit", {"cpu": "1"}), "'limit' was unexpected"),
    ("worker-heavy.yaml", "Deployment", "replicas as a word",
     lambda d: d["spec"].__setitem__("replicas", "two"), "'two' is not of type 'integer'"),
    ("scheduler.yaml", "Deployment", "a container without its name",
     lambda d: _container(d).pop("name"), "'name' is a required property"),
    ("migrate-job.yaml", "Job", "restartPolicy in the Job spec",
     lambda d: d["spec"].__setitem__("restartPolicy", "Never"), "'restartPolicy' was unexpected"),
    ("config.yaml", "ConfigMap", "a number as a ConfigMap value",
     lambda d: d["data"].__setitem__("CONTENTFORGE_METRICS_PORT", 9191), "9191 is not of type 'string'"),
    ("secret.example.yaml", "Secret", "a list as stringData",
     lambda d: d.__setitem__("stringData", ["DATABASE_URL=postgresql://x"]), "is not of type 'object'"),
    ("keda.yaml", "ScaledObject", "minReplicas (KEDA's field is minReplicaCount)",
     lambda d: d["spec"].__setitem__("minReplicas", 1), "'minReplicas' was unexpected"),
    ("keda.yaml", "ScaledObject", "a trigger without its type",
     lambda d: d["spec"]["triggers"][0].pop("type"), "'type' is a required property"),
    ("keda.yaml", "ScaledObject", "a number as trigger metadata (a map of strings)",
     lambda d: d["spec"]["triggers"][0]["metadata"].__setitem__("targetQueryValue", 20),
     "20 is not of type 'string'"),
    ("keda.yaml", "ScaledObject", "labels as a list (Kubernetes' ObjectMeta)",
     lambda d: d["metadata"].__setitem__("labels", ["not", "a", "map"]), "is not of type 'object'"),
    ("keda.yaml", "TriggerAuthentication", "a secret reference without its key",
     lambda d: d["spec"]["secretTargetRef"][0].pop("key"), "'key' is a required property"),
]


@pytest.mark.parametrize(("file", "kind", "what", "breaks", "message"), BROKEN, ids=[b[2] for b in BROKEN])
def test_a_broken_manifest_is_refused(file: str, kind: str, what: str, breaks, message: str) -> None:
    """The same document with one deliberately wrong field fails its schema, which names the fault."""
    doc = next(d for d in _docs(MANIFESTS / file) if d["kind"] == kind)
    _validate(doc)  # valid as written
    broken = copy.deepcopy(doc)
    breaks(broken)
    # kubernetes_validate.ValidationError is a jsonschema.ValidationError carrying its message.
    with pytest.raises(jsonschema.ValidationError) as refused:
        _validate(broken)
    assert message in refused.value.message


# --------------------------------------------------------------------------- consistency

def test_each_pool_runs_its_pool_and_is_scaled_on_its_own_job_types() -> None:
    """Each worker Deployment runs `--pool X`; its ScaledObject targets it and counts X's job types;
    together the pools serve every job type (noop, test-only, aside)."""
    served: list[str] = []
    for pool, types in POOLS.items():
        name = f"contentforge-worker-{pool}"
        container = _container(_deployment(name))
        assert container["args"] == ["worker", "--pool", pool]
        assert _env(container)["CONTENTFORGE_WORKER_POOL"] == pool
        (scaled,) = [s for s in _kind("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name]
        assert scaled["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "postgresql"
        query = trigger["metadata"]["query"]
        m = re.fullmatch(r"SELECT ready FROM app_private\.pool_backlog\('\{([a-z_,]+)\}'\)", query)
        assert m, query
        assert set(m[1].split(",")) == types
        served += m[1].split(",")
        auth = trigger["authenticationRef"]["name"]
        assert auth in {t["metadata"]["name"] for t in _kind("TriggerAuthentication")}
    assert sorted(served) == sorted(set(JOB_TYPES) - {"noop"})


def test_workers_drain_within_their_termination_grace() -> None:
    """Kubernetes waits longer than the worker drains (CONTENTFORGE_SHUTDOWN_GRACE_SECONDS); heavy
    drains longest and gets the most memory; probes use the metrics port the worker serves."""
    light, heavy = (_deployment(f"contentforge-worker-{p}") for p in ("light", "heavy"))
    for d in (light, heavy):
        grace = float(_env(_container(d))["CONTENTFORGE_SHUTDOWN_GRACE_SECONDS"])
        assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= grace + 10
        c = _container(d)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["metrics"] == 9191
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert (heavy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            > light["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])

    def gib(q: str) -> float:
        return float(q.removesuffix("Gi")) if q.endswith("Gi") else float(q.removesuffix("Mi")) / 1024

    for kind in ("requests", "limits"):
        assert gib(_container(heavy)["resources"][kind]["memory"]) > gib(_container(light)["resources"][kind]["memory"])


def test_every_process_reads_the_services_from_the_secret() -> None:
    """Every container takes DATABASE_URL, REDIS_URL and STORAGE_URL from the one Secret; KEDA's
    connection comes from a key of that Secret too."""
    (secret,) = _kind("Secret")
    keys = set(secret["stringData"])
    assert {"DATABASE_URL", "REDIS_URL", "STORAGE_URL"} <= keys
    pods = [d["spec"]["template"]["spec"] for d in _kind("Deployment") + _kind("Job")]
    for pod in pods:
        for c in pod.get("initContainers", []) + pod["containers"]:
            refs = [e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e]
            assert refs == [secret["metadata"]["name"]], c["name"]
            assert c["image"] == "contentforge:latest"
    (auth,) = _kind("TriggerAuthentication")
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in keys


# --------------------------------------------------------------------------- the SQL KEDA runs

def test_every_scaler_query_runs_on_the_migrated_schema(conn) -> None:
    """Each ScaledObject's query runs on PostgreSQL with every migration applied, returns one
    non-negative count, and counts a ready job of its pool (and only of its pool)."""
    queries = {s["metadata"]["name"]: s["spec"]["triggers"][0]["metadata"]["query"] for s in _kind("ScaledObject")}

    def counts() -> dict[str, int]:
        out = {}
        for name, query in queries.items():
            rows = conn.execute(query).fetchall()
            assert len(rows) == 1 and list(rows[0]) == ["ready"], rows
            assert isinstance(rows[0]["ready"], int) and rows[0]["ready"] >= 0
            out[name] = rows[0]["ready"]
        return out

    before = counts()
    tenant, user = f.tenant(conn), f.user(conn)
    asset = f.asset(conn, tenant, user)
    conn.execute("SELECT * FROM public.enqueue_asset_jobs(asset_id => %s, job_types => %s)", (asset, ["thumbnail"]))
    after = counts()
    assert after["contentforge-worker-light"] == before["contentforge-worker-light"] + 1
    assert after["contentforge-worker-heavy"] == before["contentforge-worker-heavy"]
