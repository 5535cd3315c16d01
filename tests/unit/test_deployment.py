"""The compose file is a working production stack: KRaft Kafka, topics first, workers configured
only with variables the config module reads."""

from pathlib import Path

import yaml

from streams.config import ENV_VARS, load_settings

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
        assert ours and set(ours) <= set(ENV_VARS), f"{name}: {sorted(set(ours) - set(ENV_VARS))}"
        load_settings(ours)  # raises ConfigError on a malformed value


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


def test_every_shipguard_variable_the_kubernetes_manifests_set_is_read_by_the_config_module_and_valid():
    manifests = k8s()
    env = dict(manifests[("ConfigMap", "shipguard")]["data"])
    env.update(manifests[("Secret", "shipguard-salt")]["stringData"])
    assert set(env) <= set(ENV_VARS), sorted(set(env) - set(ENV_VARS))
    load_settings(env)
