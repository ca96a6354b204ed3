"""The Helm chart, rendered and linted by the real helm binary."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stowage_e2e.install import (
    RELEASE,
    Manifest,
    generated_crds,
    lint,
    of_kind,
    render,
)

pytestmark = pytest.mark.unit

# Values that exercise every optional template.
EVERYTHING_ON: dict[str, Any] = {
    "helperNamespace": {"create": True, "name": "stowage-helpers"},
    "metrics": {"serviceMonitor": {"enabled": True}},
    "operator": {"tolerations": [{"operator": "Exists"}], "nodeSelector": {"a": "b"}},
    "csi": {"node": {"tolerations": [{"operator": "Exists"}], "nodeSelector": {"a": "b"}}},
}


def test_lint_is_clean_with_defaults_and_every_option() -> None:
    for values in ({}, EVERYTHING_ON):
        result = lint(values)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"operator": {"logLevel": "loud"}}, "/operator/logLevel"),
        ({"operator": {"logFormat": "xml"}}, "/operator/logFormat"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"metrics": {"port": 70000}}, "/metrics/port"),
        ({"metrics": {"port": "9090"}}, "/metrics/port"),
        ({"crds": {"keep": "yes"}}, "/crds/keep"),
        ({"operatr": {"logLevel": "debug"}}, "operatr"),
        ({"helperNamespace": {"create": True}}, "/helperNamespace"),
        ({"helperNamespace": {"name": "Not_A_Label"}}, "/helperNamespace/name"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    result = lint(values)
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


def rules_of(manifests: list[Manifest]) -> list[dict[str, Any]]:
    return [rule for role in of_kind(manifests, "ClusterRole") for rule in role["rules"]] + [
        rule for role in of_kind(manifests, "Role") for rule in role["rules"]
    ]


@pytest.mark.parametrize("values", [{}, EVERYTHING_ON])
def test_roles_grant_no_wildcards(values: dict[str, Any]) -> None:
    rules = rules_of(render(values))
    assert rules
    for rule in rules:
        for field in ("verbs", "resources", "apiGroups"):
            assert rule[field], f"empty {field} in {rule}"
            assert not any("*" in entry for entry in rule[field]), rule
        assert "nonResourceURLs" not in rule


def test_secrets_are_only_read_by_name_and_written_in_the_helper_namespace() -> None:
    """Cluster-wide, Secrets are read one by name (never listed or watched); the only Secrets
    written are the node side's copies of backend credentials, in the helper namespace, where
    the node side reads them by name."""
    manifests = render(EVERYTHING_ON)
    allowed = {"ClusterRole": [["get"]], "Role": [["create", "patch"], ["get"]]}
    for kind, verbs in allowed.items():
        for role in of_kind(manifests, kind):
            for rule in role["rules"]:
                if "secrets" in rule["resources"]:
                    assert rule["verbs"] in verbs, role["metadata"]
                    assert role["metadata"].get("namespace") in (None, "stowage-helpers")


def test_every_role_is_bound_to_the_service_account_of_its_component() -> None:
    manifests = render(EVERYTHING_ON)
    accounts = {
        (account["metadata"]["namespace"], account["metadata"]["name"])
        for account in of_kind(manifests, "ServiceAccount")
    }
    for role_kind, binding_kind in (("ClusterRole", "ClusterRoleBinding"), ("Role", "RoleBinding")):
        roles = {role["metadata"]["name"] for role in of_kind(manifests, role_kind)}
        bindings = of_kind(manifests, binding_kind)
        assert {binding["roleRef"]["name"] for binding in bindings} == roles
        for binding in bindings:
            assert binding["roleRef"]["kind"] == role_kind
            for subject in binding["subjects"]:
                assert (subject["namespace"], subject["name"]) in accounts


def test_the_opt_in_helper_namespace_allows_privileged_pods() -> None:
    (namespace,) = of_kind(render(EVERYTHING_ON), "Namespace")
    assert namespace["metadata"]["name"] == "stowage-helpers"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def operator_deployment(values: dict[str, Any] | None = None) -> Manifest:
    (deployment,) = of_kind(render(values), "Deployment")
    return deployment


def containers_of(workload: Manifest) -> dict[str, Manifest]:
    return {c["name"]: c for c in workload["spec"]["template"]["spec"]["containers"]}


def test_operator_pod_meets_pod_security_restricted() -> None:
    deployment = operator_deployment()
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(field)
    assert all(set(volume) <= {"name", "emptyDir"} for volume in pod["volumes"])
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert not context.get("privileged")
        assert all("hostPort" not in port for port in container.get("ports", []))
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_operator_probes_use_the_health_port_and_settings_reach_the_env() -> None:
    deployment = operator_deployment(
        {"operator": {"logLevel": "debug", "healthPort": 8181}, "metrics": {"port": 9191}}
    )
    container = containers_of(deployment)["operator"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": 8181, "metrics": 9191}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert env["STOWAGE_LOG_LEVEL"] == "debug"
    assert env["STOWAGE_HEALTH_PORT"] == "8181"
    assert env["STOWAGE_METRICS_PORT"] == "9191"
    assert env["STOWAGE_HELPER_IMAGE"] == "localhost/stowage/helper:0.1.0"


def test_the_csi_driver_has_its_controller_beside_the_operator_and_a_node_plugin() -> None:
    manifests = render(
        {
            "csi": {
                "kubeletDir": "/srv/kubelet/",
                "provisioner": {"workerThreads": 7, "kubeApiQps": 30, "kubeApiBurst": 60},
            }
        }
    )
    (driver,) = of_kind(manifests, "CSIDriver")
    assert driver["metadata"]["name"] == "csi.stowage.io"
    assert driver["spec"]["attachRequired"] is False
    assert driver["spec"]["volumeLifecycleModes"] == ["Persistent"]
    (deployment,) = of_kind(manifests, "Deployment")
    containers = containers_of(deployment)
    assert set(containers) == {"operator", "csi-controller", "csi-provisioner"}
    assert containers["csi-controller"]["args"] == [
        "csi",
        "--controller",
        "--endpoint",
        "/csi/csi.sock",
    ]
    provisioner = containers["csi-provisioner"]["args"]
    assert "--csi-address=/csi/csi.sock" in provisioner
    assert "--extra-create-metadata" in provisioner  # the claim's names reach CreateVolume
    assert {"--worker-threads=7", "--kube-api-qps=30", "--kube-api-burst=60"} <= set(provisioner)
    (node_plugin,) = of_kind(manifests, "DaemonSet")
    (container,) = containers_of(node_plugin).values()
    assert "--kubelet-dir=/srv/kubelet" in container["args"]
    assert {
        "name": "kubelet-dir",
        "mountPath": "/srv/kubelet",
        "mountPropagation": "Bidirectional",
    } in container["volumeMounts"]
    assert {  # a tmpfs volume outlives the plugin's container
        "name": "stowage-root",
        "mountPath": "/var/lib/stowage",
        "mountPropagation": "Bidirectional",
    } in container["volumeMounts"]
    assert node_plugin["spec"]["template"]["spec"]["serviceAccountName"] == f"{RELEASE}-helper"
    # on every node, tainted or not: a pod there that tolerates the taint may use a volume
    assert node_plugin["spec"]["template"]["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_without_the_csi_driver_the_operator_runs_alone() -> None:
    manifests = render({"csi": {"enabled": False}})
    assert not of_kind(manifests, "CSIDriver")
    assert not of_kind(manifests, "DaemonSet")
    (deployment,) = of_kind(manifests, "Deployment")
    assert set(containers_of(deployment)) == {"operator"}


def strip_added_metadata(crd: Manifest, added: Manifest) -> Manifest:
    """The rendered CRD without what the chart adds; asserts the generated metadata survived."""
    stripped = copy.deepcopy(crd)
    metadata = stripped["metadata"]
    for field in ("labels", "annotations"):
        rendered = metadata.pop(field, {})
        generated = added["metadata"].get(field, {})
        assert generated.items() <= rendered.items()
        if generated:
            metadata[field] = generated
    return stripped


def test_crd_templates_are_the_generated_crds() -> None:
    generated = {crd["metadata"]["name"]: crd for crd in generated_crds()}
    assert generated, "crds/ holds no CRD"
    rendered = {
        crd["metadata"]["name"]: crd for crd in of_kind(render(), "CustomResourceDefinition")
    }
    assert rendered.keys() == generated.keys()
    for name, crd in rendered.items():
        assert strip_added_metadata(crd, generated[name]) == generated[name]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_crds_are_optional_and_keeping_them_too() -> None:
    assert not of_kind(render({"crds": {"install": False}}), "CustomResourceDefinition")
    for crd in of_kind(render({"crds": {"keep": False}}), "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def test_service_monitor_scrapes_the_metrics_service() -> None:
    manifests = render(EVERYTHING_ON)
    (monitor,) = of_kind(manifests, "ServiceMonitor")
    services = of_kind(manifests, "Service")
    (metrics,) = [s for s in services if s["spec"]["ports"][0]["name"] == "metrics"]
    assert monitor["spec"]["selector"]["matchLabels"] == metrics["spec"]["selector"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
