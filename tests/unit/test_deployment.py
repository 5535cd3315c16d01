"""The compose file is a working production stack: KRaft Kafka, topics first, workers configured
only with variables the config module reads."""

from pathlib import Path

import yaml

from streams.config import ENV_VARS, load_settings
from streams.dashboard.server import DASHBOARD_ENV_VARS, dashboard_env

# The dashboard's own variables are read in streams/dashboard/server.py until they move into config.
READ_BY_SHIPGUARD = set(ENV_VARS) | set(DASHBOARD_ENV_VARS)

REPO = Path(__file__).resolve().parents[2]


def compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


def test_kafka_runs_in_kraft_mode_from_the_official_image_without_auto_created_topics():
    kafka = compose()["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false" and "healthcheck" in kafka


def test_workers_start_after_the_topics_exist_and_keep_their_store_on_a_volume():
    services = compose()["services"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    worker = services["worker"]
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    data_dir = worker["environment"]["SHIPGUARD_DATA_DIR"]
    assert any(volume.endswith(":" + data_dir) for volume in worker["volumes"])
    assert worker["environment"]["SHIPGUARD_STORE"] == "rocksdb"


def test_every_shipguard_variable_the_compose_file_sets_is_read_by_the_config_module_and_valid():
    for name, service in compose()["services"].items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        ours = {k: v for k, v in env.items() if k.startswith("SHIPGUARD_")}
        if name == "kafka":
            assert not ours
            continue
        assert ours and set(ours) <= READ_BY_SHIPGUARD, f"{name}: {sorted(set(ours) - READ_BY_SHIPGUARD)}"
        load_settings(ours)  # raises ConfigError on a malformed value
        dashboard_env(ours)


def k8s():
    docs = []
    for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_the_kubernetes_workers_are_a_statefulset_with_a_volume_for_the_rocksdb_store():
    manifests = k8s()
    config = manifests[("ConfigMap", "shipguard")]["data"]
    worker = manifests[("StatefulSet", "shipguard-worker")]["spec"]
    container = worker["template"]["spec"]["containers"][0]
    assert config["SHIPGUARD_STORE"] == "rocksdb"
    claim = worker["volumeClaimTemplates"][0]["metadata"]["name"]
    assert {"name": claim, "mountPath": config["SHIPGUARD_DATA_DIR"]} in container["volumeMounts"]
    assert {"configMapRef": {"name": "shipguard"}} in container["envFrom"]
    assert ("Job", "shipguard-topics") in manifests


def test_a_worker_that_ends_itself_is_restarted_by_compose_and_by_kubernetes():
    # the worker exits 70 when a batch fails (a broker unreachable past its requests' timeout)
    assert compose()["services"]["worker"]["restart"] in ("always", "unless-stopped", "on-failure")
    workers = k8s()[("StatefulSet", "shipguard-worker")]
    assert workers["spec"]["template"]["spec"].get("restartPolicy", "Always") == "Always"


def test_every_shipguard_variable_the_kubernetes_manifests_set_is_read_by_the_config_module_and_valid():
    manifests = k8s()
    env = dict(manifests[("ConfigMap", "shipguard")]["data"])
    env.update(manifests[("Secret", "shipguard-salt")]["stringData"])
    assert set(env) <= set(ENV_VARS), sorted(set(env) - set(ENV_VARS))
    load_settings(env)


def test_the_dashboard_runs_from_the_worker_image_after_the_topics_with_its_port_on_loopback():
    services = compose()["services"]
    dashboard, worker = services["dashboard"], services["worker"]
    assert dashboard["build"] == worker["build"]
    command = dashboard["command"]
    assert command[0] == "dashboard" and command[command.index("--port") + 1] == "8080"
    assert command[command.index("--host") + 1] == "0.0.0.0", "reachable from outside its container"
    assert dashboard["ports"] == ["127.0.0.1:8080:8080"]
    assert "/healthz" in " ".join(dashboard["healthcheck"]["test"])
    assert dashboard["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    env = dashboard["environment"]
    assert env["SHIPGUARD_BROKER"] == worker["environment"]["SHIPGUARD_BROKER"]
    assert env["SHIPGUARD_DASHBOARD_TOKEN"].startswith("${SHIPGUARD_DASHBOARD_TOKEN"), "from the shell, not committed"


def test_the_kubernetes_dashboard_is_one_deployment_behind_a_service_with_its_token_from_a_secret():
    manifests = k8s()
    spec = manifests[("Deployment", "shipguard-dashboard")]["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert args[0] == "dashboard" and args[args.index("--host") + 1] == "0.0.0.0"
    port = int(args[args.index("--port") + 1])
    assert {"name": "http", "containerPort": port} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"configMapRef": {"name": "shipguard"}} in container["envFrom"]
    assert {"secretRef": {"name": "shipguard-dashboard"}} in container["envFrom"]
    assert spec["replicas"] == 1 and pod["securityContext"]["runAsNonRoot"] is True
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"] == labels
    service = manifests[("Service", "shipguard-dashboard")]["spec"]
    assert service["selector"] == labels and service["ports"][0]["targetPort"] == "http"
    secret = manifests[("Secret", "shipguard-dashboard")]["stringData"]
    assert set(secret) == {"SHIPGUARD_DASHBOARD_TOKEN"}


def test_every_shipguard_variable_the_dashboard_manifests_set_is_read_by_shipguard_and_valid():
    manifests = k8s()
    env = dict(manifests[("ConfigMap", "shipguard")]["data"])
    env.update(manifests[("Secret", "shipguard-dashboard")]["stringData"])
    assert set(env) <= READ_BY_SHIPGUARD, sorted(set(env) - READ_BY_SHIPGUARD)
    load_settings(env)
    assert dashboard_env(env)[0] == "replace-me-from-your-secret-store"
