"""The deployment files (Dockerfile, docker-compose.yml, .env.example, .dockerignore) say what
the code needs, checked without building or starting anything, against the settings the code
really reads. tests/deploy/test_image.py builds the image and runs it."""

import ast
import ipaddress
import json
import os
import re
import socket
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings

from core import healthcheck
from tests.support.processes import run_python

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "csmsite" / "settings"
ENV_LINE = re.compile(r"^#?\s?([A-Z][A-Z0-9_]*)=(.*)$")
# ${NAME}, ${NAME:-default}, ${NAME:?message}; `$$` escapes a dollar for the container's shell.
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)")
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|ACCESS_KEY")


def settings_variables() -> dict[str, str]:
    """Every environment variable the settings package (csmsite/settings/) reads: NAME → the
    env_* reader."""
    names = {}
    for module in sorted(SETTINGS.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id.startswith("env_")
            ):
                first = node.args[0]
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{module.name} line {node.lineno}: the variable name must be a literal"
                )
                names[first.value] = node.func.id
    return names


def test_the_settings_are_found():
    # The walk above sees every module of the package: a moved file must not empty it.
    readers = settings_variables()
    assert {"SECRET_KEY", "DATABASE_URL", "CSM_MODEL", "VOICE_UPLOAD_MAX_BYTES"} <= set(readers)
    assert {"LOG_FORMAT", "ALLOWED_HOSTS", "AWS_STORAGE_BUCKET_NAME"} <= set(readers)


def env_example() -> dict[str, str]:
    """NAME → documented value, from `NAME=value` and commented-out `# NAME=value` lines."""
    entries = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = ENV_LINE.match(line)
        if match:
            assert match.group(1) not in entries, f"{match.group(1)} twice in .env.example"
            entries[match.group(1)] = match.group(2)
    return entries


def compose_text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(compose_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


# --- .env.example ----------------------------------------------------------------------------


def test_every_variable_the_settings_read_is_in_env_example():
    missing = sorted(set(settings_variables()) - set(env_example()))
    assert not missing, f"add to .env.example (and the README's table): {missing}"


def test_env_example_names_only_variables_that_something_reads():
    readers = settings_variables()
    secret_files = {f"{name}_FILE" for name, reader in readers.items() if reader == "env_secret"}
    compose_variables = set(COMPOSE_VARIABLE.findall(compose_text()))
    unknown = sorted(set(env_example()) - set(readers) - secret_files - compose_variables)
    assert not unknown, f".env.example names variables nothing reads: {unknown}"


def test_every_variable_docker_compose_interpolates_is_in_env_example():
    missing = sorted(set(COMPOSE_VARIABLE.findall(compose_text())) - set(env_example()))
    assert not missing, f"add to .env.example: {missing}"


def _settings_dump(env: dict[str, str]) -> dict[str, str]:
    script = (
        "import json, csmsite.settings as s; "
        "print(json.dumps({k: repr(getattr(s, k)) for k in dir(s) if k.isupper()}))"
    )
    result = run_python("-c", script, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_documented_defaults_are_the_real_ones(tmp_path):
    # given a clean environment (no setting of the test run's own), and the same VAR_DIR (where
    # the generated secret key lives)
    readers = settings_variables()
    clean = {
        name: value
        for name, value in os.environ.items()
        if name not in readers and name.removesuffix("_FILE") not in readers
    }
    # Empty means the default, and keeps a developer's .env (which fills only variables that
    # are not set at all) out of both runs.
    clean.update(dict.fromkeys(readers, ""))
    clean["VAR_DIR"] = str(tmp_path)
    # Paths are documented relative to the project; the settings make them absolute.
    relative = {"VAR_DIR", "MEDIA_ROOT", "DATABASE_URL"}
    documented = {
        name: value
        for name, value in env_example().items()
        if value and name in readers and name not in relative
    }

    # when the settings load with every documented default set explicitly, and with none
    defaults = _settings_dump(clean)
    explicit = _settings_dump({**clean, **documented})

    # then they are the same settings
    differences = {
        name: (defaults.get(name), explicit.get(name))
        for name in defaults.keys() | explicit.keys()
        if defaults.get(name) != explicit.get(name)
    }
    assert not differences, f"default ≠ .env.example (default, documented): {differences}"


# --- docker-compose.yml ------------------------------------------------------------------------


def test_compose_has_the_services_of_a_deployment(compose):
    services = compose["services"]
    assert {"web", "worker", "postgres", "redis"} <= set(services)
    assert "manage.py serve" in " ".join(services["web"]["command"])
    worker = services["worker"]["command"]
    assert worker[:4] == ["celery", "-A", "csmsite", "worker"]
    # Web and worker run the same image with the same settings and storage.
    for name in ["web", "worker"]:
        service = services[name]
        assert service["build"] == "."
        assert service["image"] == services["web"]["image"]
        assert service["env_file"] == [{"path": ".env", "required": False}]
        assert service["environment"]["DATABASE_URL"].startswith("postgres://")
        assert "@postgres:5432/" in service["environment"]["DATABASE_URL"]
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def _gpu_devices(service: dict) -> list[dict]:
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    return [d for d in devices.get("devices", []) if "gpu" in d.get("capabilities", [])]


def test_the_web_server_has_a_gpu_reserved_and_each_server_process_its_own(compose):
    services = compose["services"]
    (web_gpu,) = _gpu_devices(services["web"])
    assert web_gpu["driver"] == "nvidia"
    (second_gpu,) = _gpu_devices(services["web-gpu1"])
    assert second_gpu["device_ids"] == ["1"]
    assert web_gpu["device_ids"] == ["${WEB_GPU:-0}"]
    assert services["web-gpu1"]["profiles"] == ["gpu1"]


def _default(value: str) -> str:
    """The default of a compose variable, `${NAME:-default}`."""
    return re.fullmatch(r"\$\{[A-Z0-9_]+:-(.+)\}", value)[1]


def test_the_load_balancer_is_the_only_way_in_and_the_only_proxy_believed(compose):
    services = compose["services"]
    lb = services["lb"]
    # HAProxy, pinned, with the project's configuration (tests/scaleout/test_load_balancer.py
    # runs the same file)
    assert re.fullmatch(r"haproxy:3\.\d+\.\d+", lb["image"])
    assert "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    # is the only published port
    assert [name for name, service in services.items() if service.get("ports")] == ["lb"]
    assert lb["ports"] == ["${WEB_PUBLISH:-127.0.0.1:8000}:8000"]
    # and the server processes, on its network, believe forwarded addresses from it alone
    address = lb["networks"]["lb"]["ipv4_address"]
    (subnet,) = compose["networks"]["lb"]["ipam"]["config"]
    assert ipaddress.ip_address(_default(address)) in ipaddress.ip_network(
        _default(subnet["subnet"])
    )
    # and the proxy in front of it (a TLS proxy on the host, from the network's gateway)
    upstream = lb["environment"]["LB_UPSTREAM_PROXIES"]
    assert upstream == "${LB_UPSTREAM_PROXIES-172.31.250.1}"
    gateway = next(ipaddress.ip_network(_default(subnet["subnet"])).hosts())
    assert ipaddress.ip_address(upstream.removesuffix("}").split("-")[-1]) == gateway
    for name in ["web", "web-gpu1"]:
        assert "lb" in services[name]["networks"]
        assert services[name]["environment"]["TRUSTED_PROXIES"] == f"{address},{upstream}"
    # and it sends requests to both, by their service names
    config = (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    servers = re.findall(r'^\s*server (\S+) "\$\{LB_\w+-([\w-]+):8000\}"$', config, re.M)
    assert servers == [("web", "web"), ("web-gpu1", "web-gpu1")]


def _named_volume_at(compose: dict, service: str, target: str) -> str:
    for mount in compose["services"][service].get("volumes", []):
        source, _, rest = mount.partition(":")
        if rest.split(":")[0] == target:
            assert source in compose["volumes"], f"{service}:{target} is not a named volume"
            return source
    raise AssertionError(f"{service} has no volume at {target}")


def test_everything_that_must_survive_a_recreated_container_is_on_a_named_volume(compose):
    services = compose["services"]
    _named_volume_at(compose, "postgres", "/var/lib/postgresql/data")
    _named_volume_at(compose, "redis", "/data")
    for name in ["web", "worker"]:
        environment = services[name]["environment"]
        media = _named_volume_at(compose, name, environment["MEDIA_ROOT"])
        cache = _named_volume_at(compose, name, environment["XDG_CACHE_HOME"])
        assert environment["HF_HOME"].startswith(environment["XDG_CACHE_HOME"] + "/")
        assert media == _named_volume_at(
            compose, "web", services["web"]["environment"]["MEDIA_ROOT"]
        )
        assert cache == "model-cache"


def test_the_object_store_is_an_optional_profile(compose):
    services = compose["services"]
    assert services["minio"]["profiles"] == ["s3"]
    assert services["minio-bucket"]["profiles"] == ["s3"]
    _named_volume_at(compose, "minio", "/data")
    # The default `docker compose up` starts no object store.
    assert all("profiles" not in services[name] for name in ["web", "worker", "postgres", "redis"])


def test_secrets_are_passed_at_run_time_never_built_in(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if isinstance(build, dict):
            # Build arguments end up in the image's history.
            secret = [arg for arg in build.get("args", {}) if SECRET_NAME.search(arg)]
            assert not secret, f"{name}: {secret}"
    # HF_TOKEN reaches the containers from .env when they start (env_file), by no other way.
    assert "HF_TOKEN" not in json.dumps(compose)
    assert "HF_TOKEN" in env_example()
    # Compose refuses to start without a real SECRET_KEY rather than generating one per container.
    assert "${SECRET_KEY:?" in compose_text()


# --- Dockerfile and .dockerignore --------------------------------------------------------------


def test_dockerfile_runs_as_a_user_with_a_health_check():
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "no USER: the server would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    # The user is set before the command that starts the server.
    assert keywords.index("USER") < keywords.index("CMD")
    (healthcheck_args,) = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
    script = re.search(r'"(/app/[^"]+\.py)"', healthcheck_args).group(1)
    assert (ROOT / script.removeprefix("/app/")).is_file()
    # The final image is a CUDA one (stages: uv, build, the image).
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms[-1] == "${CUDA_IMAGE}"
    assert any(
        keyword == "ARG" and rest.startswith("CUDA_IMAGE=nvidia/cuda:")
        for keyword, rest in instructions
    )
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text()


def test_no_token_or_secret_is_built_into_the_image():
    instructions = dockerfile_instructions()
    assert not [rest for _, rest in instructions if "HF_TOKEN" in rest]
    for keyword, rest in instructions:
        if keyword in {"ARG", "ENV"}:
            assert not SECRET_NAME.search(rest), rest
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored
    assert ".git" in ignored


def test_the_image_gets_the_code_of_every_app():
    # COPY . . takes the project as it is, less what .dockerignore leaves out.
    assert ("COPY", ". .") in dockerfile_instructions()
    ignored = {entry.strip("/") for entry in (ROOT / ".dockerignore").read_text().split()}
    project_apps = [app for app in django_settings.INSTALLED_APPS if (ROOT / app).is_dir()]
    assert {"core", "accounts", "voices", "speech", "ingest", "api", "web"} <= set(project_apps)
    for needed in [*project_apps, "csmsite", "csmsite/settings", "templates", "manage.py"]:
        assert needed not in ignored, needed
    # Production's settings go in; the test suite's, which only tests may use, stay out.
    assert "csmsite/settings/test.py" in ignored


# --- The health check ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        ("", None),
        ("*", None),
        ("speech.example.com,127.0.0.1", "speech.example.com"),
        (" .example.com , localhost", "example.com"),
        ("*,localhost", "localhost"),
        ("[::1]", "[::1]"),
    ],
)
def test_health_check_sends_a_host_the_server_accepts(allowed, expected):
    assert healthcheck.host_header(allowed) == expected


def test_health_check_against_the_server(live_server_url, settings):
    # given a production server that answers only its own domain name
    settings.ALLOWED_HOSTS = ["speech.example.com"]
    url = f"{live_server_url}/healthz"

    # then the health check, which sends the first allowed name, finds it healthy
    assert healthcheck.check(url, allowed_hosts="speech.example.com,10.0.0.5")
    # where a plain request to 127.0.0.1 would have been refused
    assert not healthcheck.check(url, allowed_hosts="")
    # and so is one that answers with an error, or not at all
    assert not healthcheck.check(f"{live_server_url}/no-such-page", allowed_hosts="localhost")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    assert not healthcheck.check(f"http://127.0.0.1:{closed_port}/healthz", allowed_hosts="")
