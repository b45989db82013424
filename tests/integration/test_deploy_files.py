"""Deployment files checked against the code they deploy: CLI, settings, metrics, limits.

Most checks parse docker-compose.yml and the files under deploy/ in Python. The external
validators run where installed and are skipped with the reason otherwise: docker-compose,
hadolint and kubernetes-validate come with the `test` extra, promtool with Debian's
`prometheus` package, kubectl (for kustomize) with the machine image. The last tests run
deploy/submit_samples.py against a real API and worker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from tests.support import ThreadedServer, start_worker, stop_worker, use_settings
from worker.celery_app import TASK_TIME_LIMIT_S
from worker.cli import app as cli_app
from worker.config import load_config
from worker.metrics import exported_metric_names
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "sluice-dashboard.json"
SUBMIT_SCRIPT = DEPLOY / "submit_samples.py"

SLUICE_IMAGE = "sluice:local"
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
# Oldest Kubernetes release the manifests target, and the newest that kubernetes-validate has.
K8S_VERSIONS = ("1.29.0", "latest")
METRIC_TOKEN = re.compile(r"\bsluice_[a-z_]+")
RECORDED_TOKEN = re.compile(r"\bsluice:[a-z_:]+")


# --- helpers -------------------------------------------------------------------------------

def find_tool(name: str) -> str | None:
    """Find a command in the virtualenv's bin folder first, then on PATH."""
    search_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=search_path)


def run_tool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def interpolate(value: Any) -> Any:
    """Replace Compose's ${NAME:-default} and ${NAME} with the default (or nothing)."""
    if isinstance(value, str):
        return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    return value


def load_compose() -> dict[str, Any]:
    document: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()))
    return document


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def sluice_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the Sluice image through its `sluice` entrypoint."""
    return {name: service for name, service in compose["services"].items()
            if service.get("image") == SLUICE_IMAGE and "entrypoint" not in service}


def load_k8s() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in load_k8s() if doc["kind"] == kind}


def pod_templates() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment and Job."""
    for doc in load_k8s():
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for workload, pod in pod_templates():
        for container in pod["containers"]:
            yield f"{workload}/{container['name']}", container


def container_of(deployment: str) -> dict[str, Any]:
    pod = k8s_objects("Deployment")[deployment]["spec"]["template"]["spec"]
    container: dict[str, Any] = pod["containers"][0]
    return container


def check_sluice_arguments(args: list[str]) -> None:
    """Parse `sluice ARGS` with the real CLI's parser, and raise AssertionError if invalid."""
    # A click group. Recent typer releases ship their own copy of click, so no isinstance.
    group: Any = typer.main.get_command(cli_app)
    assert args, "no subcommand given"
    assert args[0] in group.commands, (
        f"sluice has no subcommand {args[0]!r}; it has {sorted(group.commands)}")
    try:
        group.commands[args[0]].make_context(args[0], list(args[1:]))
    except Exception as exc:  # click's usage errors, from click or typer's copy of it
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise AssertionError(f"`sluice {' '.join(args)}`: {message}") from exc


def unknown_metrics(expression: str) -> set[str]:
    """Names in `expression` that look like Sluice metrics but are not exported."""
    return set(METRIC_TOKEN.findall(expression)) - exported_metric_names()


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"])
            for panel in dashboard["panels"] for target in panel.get("targets", [])]


def documented_labels() -> dict[str, set[str]]:
    """Labels of each metric as the table in docs/metrics.md lists them."""
    labels = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`sluice_"):
            labels[cells[0].strip("`")] = set(re.findall(r"`([a-z_]+)`", cells[2]))
    return labels


def labels_in(expression: str) -> set[str]:
    """Label names used in matchers and in by/without clauses of `expression`."""
    names = set()
    for selector in re.findall(r"\{([^}]*)\}", expression):
        names.update(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", selector))
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expression):
        names.update(name.strip() for name in grouping.split(",") if name.strip())
    return names


def unknown_labels(expression: str) -> set[str]:
    """Labels in `expression` that none of its Sluice metrics carries (besides `le`)."""
    documented = documented_labels()
    carried = {"le"}
    for token in METRIC_TOKEN.findall(expression):
        base = re.sub(r"_(bucket|sum|count)$", "", token)
        carried |= documented.get(base, documented.get(token, set()))
    if not METRIC_TOKEN.search(expression):
        return set()
    return labels_in(expression) - carried


# --- docker-compose.yml -------------------------------------------------------------------

def test_compose_passes_docker_compose_config() -> None:
    tool = find_tool("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed (pip install -e '.[test]')")

    result = run_tool(tool, "-f", str(COMPOSE_FILE), "config", "--quiet")

    assert result.returncode == 0, result.stderr


def test_compose_commands_are_sluice_subcommands() -> None:
    services = sluice_services(load_compose())
    assert {"migrate", "api", "worker", "beat", "flower", "simulator"} <= set(services)

    for name, service in services.items():
        try:
            check_sluice_arguments(service["command"])
        except AssertionError as exc:
            pytest.fail(f"service {name}: {exc}")


def test_command_check_rejects_unknown_option() -> None:
    with pytest.raises(AssertionError, match="No such option: --beats"):
        check_sluice_arguments(["worker", "--beats"])
    with pytest.raises(AssertionError, match="--concurrency"):
        check_sluice_arguments(["worker", "--concurrency", "0"])
    with pytest.raises(AssertionError, match="no subcommand 'scheduler'"):
        check_sluice_arguments(["scheduler"])


def test_compose_demo_data_runs_submit_script() -> None:
    service = load_compose()["services"]["demo-data"]

    assert service["entrypoint"][:2] == ["python", "/app/deploy/submit_samples.py"]
    assert SUBMIT_SCRIPT.is_file()
    assert service["profiles"] == ["demo"], "demo data must not be submitted by a plain `up`"
    arguments = run_tool(sys.executable, str(SUBMIT_SCRIPT), "--help")
    for option in service["command"][::2]:
        assert option in arguments.stdout, f"submit_samples.py has no option {option}"


def test_compose_sluice_variables_are_settings() -> None:
    fields = set(Settings.model_fields)

    for name, service in load_compose()["services"].items():
        environment = compose_environment(service)
        sluice_values = {key.removeprefix("SLUICE_").lower(): value
                         for key, value in environment.items() if key.startswith("SLUICE_")}
        unknown = set(sluice_values) - fields
        assert not unknown, f"service {name} sets variables of no setting: {unknown}"
        Settings.model_validate(sluice_values)  # raises on values the settings reject


def test_compose_depends_on_existing_services() -> None:
    services = load_compose()["services"]

    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        if isinstance(depends_on, list):
            depends_on = {target: {"condition": "service_started"} for target in depends_on}
        for target, rule in depends_on.items():
            assert target in services, f"{name} depends on unknown service {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target} to be healthy, but it has no healthcheck")


def test_compose_sluice_processes_wait_for_migration() -> None:
    services = load_compose()["services"]

    for name in ("api", "worker", "beat", "flower"):
        rule = services[name]["depends_on"]["migrate"]
        assert rule["condition"] == "service_completed_successfully", name
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"


def test_compose_health_checks() -> None:
    services = load_compose()["services"]

    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    port = Settings().worker_metrics_port
    for name in ("worker", "beat"):
        assert f":{port}/healthz" in " ".join(services[name]["healthcheck"]["test"]), name


def test_compose_volumes_are_declared() -> None:
    compose = load_compose()
    declared = set(compose.get("volumes", {}))
    used = set()

    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing path {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)

    assert declared == used, f"declared but unused volumes: {declared - used}"


def test_compose_worker_stop_grace_exceeds_task_limit() -> None:
    services = load_compose()["services"]

    for name in ("worker", "beat"):
        grace = services[name]["stop_grace_period"]
        assert grace.endswith("s"), grace
        assert int(grace.removesuffix("s")) > TASK_TIME_LIMIT_S, name


def test_compose_flower_auth_is_a_placeholder() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    auth = raw["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"]

    assert auth.startswith("${FLOWER_BASIC_AUTH:-"), "credentials must come from a variable"
    assert "change-me" in auth


# --- deploy/Dockerfile ----------------------------------------------------------------------

def test_dockerfile_runs_sluice_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines()
                    if line.strip() and not line.startswith((" ", "#"))]
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    environment = re.findall(r"\b(SLUICE_[A-Z_]+)=", text)

    assert instructions[0][1].startswith("python:3.11-slim")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["sluice"]') in [(k, rest.strip()) for k, rest in instructions]
    assert "pip install --no-cache-dir --no-deps -e /app" in text
    for variable in environment:
        assert variable.removeprefix("SLUICE_").lower() in Settings.model_fields, variable


def test_dockerignore_keeps_migrations() -> None:
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()

    for needed in ("migrations", "alembic.ini", "deploy", "worker", "models", "pyproject.toml"):
        assert needed not in ignored


def test_dockerfile_passes_hadolint() -> None:
    tool = find_tool("hadolint")
    if tool is None:
        pytest.skip("hadolint not installed (pip install -e '.[test]')")

    result = run_tool(tool, str(DEPLOY / "Dockerfile"))

    assert result.returncode == 0, result.stdout + result.stderr


# --- Prometheus and Grafana -----------------------------------------------------------------

def test_metric_check_flags_unexported_names() -> None:
    # The counter's series is sluice_llm_cost_usd_total, and the bare name is never exported.
    assert unknown_metrics("rate(sluice_llm_cost_usd[5m])") == {"sluice_llm_cost_usd"}
    assert unknown_metrics("rate(sluice_llm_cost_usd_total[5m])") == set()
    assert unknown_labels('sum by (tenant) (sluice_jobs{state="queued"})') == {"tenant"}


def test_alert_rules_use_exported_metrics() -> None:
    rules = alert_rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}

    for rule in rules:
        name = rule.get("alert") or rule["record"]
        assert not unknown_metrics(rule["expr"]), f"{name}: {unknown_metrics(rule['expr'])}"
        assert not unknown_labels(rule["expr"]), f"{name}: {unknown_labels(rule['expr'])}"
        missing = set(RECORDED_TOKEN.findall(rule["expr"])) - recorded
        assert not missing, f"{name} uses recording rules that do not exist: {missing}"


def test_dashboard_uses_exported_metrics() -> None:
    recorded = {rule["record"] for rule in alert_rules() if "record" in rule}

    for title, expression in dashboard_expressions():
        assert not unknown_metrics(expression), f"{title}: {unknown_metrics(expression)}"
        assert not unknown_labels(expression), f"{title}: {unknown_labels(expression)}"
        missing = set(RECORDED_TOKEN.findall(expression)) - recorded
        assert not missing, f"{title} uses recording rules that do not exist: {missing}"


def test_alerts_cover_required_conditions() -> None:
    alerts = {rule["alert"]: rule for rule in alert_rules() if "alert" in rule}

    expected = {"SluiceQueueBackingUp", "SluiceReviewBacklogAgeing", "SluiceProviderRateLimited",
                "SluiceCostBurnAboveBudget", "SluiceNoJobsFinishing", "SluiceProviderCircuitOpen"}
    assert expected <= set(alerts)
    assert 'outcome="rate_limited"' in alerts["SluiceProviderRateLimited"]["expr"]
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
        assert "for" in rule, f"{name} has no `for`, so one bad scrape fires it"


def test_every_alert_has_a_rule_test() -> None:
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}

    alerts = {rule["alert"] for rule in alert_rules() if "alert" in rule}
    assert alerts - tested == set(), "alerts without a promtool test case"


def test_dashboard_covers_required_panels() -> None:
    text = " ".join(expression for _, expression in dashboard_expressions())

    for needed in ("sluice_jobs", "sluice_queue_depth", "sluice_job_duration_seconds_bucket",
                   "sluice_llm_latency_seconds_bucket", "sluice_llm_tokens_total",
                   "sluice_llm_cost_usd_total", 'outcome="rate_limited"',
                   "sluice_ratelimit_wait_seconds", "sluice_circuit_open",
                   "sluice_review_backlog", "sluice_review_oldest_age_seconds",
                   "sluice_intake_requests_total"):
        assert needed in text, f"no dashboard query uses {needed}"
    assert "histogram_quantile(0.5," in text
    assert "histogram_quantile(0.95," in text


def test_dashboard_layout() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    cells: dict[tuple[int, int], str] = {}

    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids repeat"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_grafana_provisioning_matches_compose() -> None:
    grafana = load_compose()["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/sluice.yml").read_text())["providers"][0]
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]

    dashboard_target = mounts["./deploy/grafana/sluice-dashboard.json"]
    assert Path(dashboard_target).parent == Path(provider["options"]["path"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in load_compose()["services"]


def test_prometheus_scrapes_api_and_workers() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = load_compose()["services"]

    api_target = jobs["sluice-api"]["static_configs"][0]["targets"][0]
    assert api_target == "api:8000"
    assert "--port" in services["api"]["command"]
    assert services["api"]["command"][services["api"]["command"].index("--port") + 1] == "8000"
    discovery = jobs["sluice-worker"]["dns_sd_configs"][0]
    assert set(discovery["names"]) == {"worker", "beat"}
    assert discovery["port"] == Settings().worker_metrics_port
    assert config["rule_files"] == ["alerts.yml"]
    compose_mounts = [volume.split(":")[1] for volume in services["prometheus"]["volumes"]]
    assert "/etc/prometheus/alerts.yml" in compose_mounts


@pytest.fixture
def promtool() -> str:
    tool = find_tool("promtool")
    if tool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return tool


def test_promtool_checks_config_and_rules(promtool: str) -> None:
    result = run_tool(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests(promtool: str) -> None:
    result = run_tool(promtool, "test", "rules", "alerts_test.yml", cwd=DEPLOY / "prometheus")

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_parses_dashboard_queries(promtool: str, tmp_path: Path) -> None:
    # promtool has no command for a bare expression, so each query becomes a recording rule.
    rules = [{"record": f"dashboard:query_{index}",
              "expr": expression.replace("$__rate_interval", "5m")}
             for index, (_, expression) in enumerate(dashboard_expressions())]
    rules_file = tmp_path / "dashboard-rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = run_tool(promtool, "check", "rules", str(rules_file))

    assert result.returncode == 0, result.stdout + result.stderr


# --- deploy/k8s --------------------------------------------------------------------------

def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == manifests
    assert kustomization["namespace"] == "sluice"


def test_kustomize_builds() -> None:
    tool = find_tool("kubectl")
    if tool is None:
        pytest.skip("kubectl not installed")

    result = run_tool(tool, "kustomize", str(K8S))

    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc]
    assert kinds.count("Deployment") == 4


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_kubernetes_schemas(version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    if version == "latest":
        version = kubernetes_validate.latest_version()

    errors = []
    for doc in load_k8s():
        if doc["kind"] in KEDA_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")

    assert not errors, f"invalid against Kubernetes {version}: {errors}"


def test_schema_check_rejects_misspelt_field() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = k8s_objects("Deployment")["sluice-api"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_k8s_container_arguments_are_sluice_subcommands() -> None:
    for name, container in containers():
        assert container["image"] == "sluice", name
        assert "command" not in container, f"{name} must keep the image's sluice entrypoint"
        try:
            check_sluice_arguments(container["args"])
        except AssertionError as exc:
            pytest.fail(f"{name}: {exc}")


def test_k8s_settings_are_real_and_valid() -> None:
    values = {}
    for kind in ("ConfigMap", "Secret"):
        for name, doc in k8s_objects(kind).items():
            data = doc.get("data", {}) | doc.get("stringData", {})
            for key, value in data.items():
                if key.startswith("SLUICE_"):
                    field = key.removeprefix("SLUICE_").lower()
                    assert field in Settings.model_fields, f"{kind} {name}: {key}"
                    values[field] = value

    Settings.model_validate(values)
    assert values["config_file"] == "/etc/sluice/sluice.toml"


def test_k8s_config_file_is_valid(tmp_path: Path) -> None:
    text = k8s_objects("ConfigMap")["sluice-config"]["data"]["sluice.toml"]
    path = tmp_path / "sluice.toml"
    path.write_text(text)

    config = load_config(path)

    assert not config.uses_simulator()
    for provider in config.providers.values():
        assert provider.api_key_env is None or provider.api_key_env in (
            k8s_objects("Secret")["sluice-secrets"]["stringData"])


def test_k8s_references_resolve() -> None:
    config_maps, secrets = set(k8s_objects("ConfigMap")), set(k8s_objects("Secret"))

    for workload, pod in pod_templates():
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, workload
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, workload
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, workload
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{workload} mounts unknown {mount['name']}"


def probe_port(probe: dict[str, Any]) -> int | str:
    handler = probe.get("httpGet") or probe.get("tcpSocket")
    assert handler, f"probe without httpGet or tcpSocket: {probe}"
    port: int | str = handler["port"]
    return port


def test_k8s_probe_ports_are_container_ports() -> None:
    for name, container in containers():
        ports = container.get("ports", [])
        known = {port["containerPort"] for port in ports} | {port["name"] for port in ports}
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            if kind in container:
                assert probe_port(container[kind]) in known, f"{name} {kind}"


@pytest.mark.parametrize(("deployment", "port"), [("sluice-api", 8000)])
def test_k8s_api_probes(deployment: str, port: int) -> None:
    container = container_of(deployment)
    ports = {item["name"]: item["containerPort"] for item in container["ports"]}

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == port
    assert ports[container["livenessProbe"]["httpGet"]["port"]] == port


@pytest.mark.parametrize("deployment", ["sluice-worker", "sluice-beat"])
def test_k8s_worker_probes_and_grace(deployment: str) -> None:
    pod = k8s_objects("Deployment")[deployment]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {item["name"]: item["containerPort"] for item in container["ports"]}
    metrics_port = Settings().worker_metrics_port

    assert pod["terminationGracePeriodSeconds"] > TASK_TIME_LIMIT_S
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert ports[container["livenessProbe"]["httpGet"]["port"]] == metrics_port
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == metrics_port


def test_k8s_beat_is_a_single_recreated_scheduler() -> None:
    beat = k8s_objects("Deployment")["sluice-beat"]
    args = beat["spec"]["template"]["spec"]["containers"][0]["args"]
    others = [container["args"] for name, container in containers()
              if not name.startswith("sluice-beat/")]

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert "--beat" in args
    assert all("--beat" not in other for other in others), "only one scheduler may run"


def test_k8s_pods_run_as_non_root() -> None:
    for workload, pod in pod_templates():
        assert pod["securityContext"]["runAsNonRoot"] is True, workload
        assert pod["securityContext"]["runAsUser"] != 0, workload


def test_k8s_containers_have_resources() -> None:
    for workload, pod in pod_templates():
        for container in pod["containers"]:
            resources = container["resources"]
            for section in ("requests", "limits"):
                assert set(resources[section]) >= {"cpu", "memory"}, f"{workload} {section}"


def test_k8s_selectors_match_pods() -> None:
    deployments = k8s_objects("Deployment")
    pod_labels = [doc["spec"]["template"]["metadata"]["labels"] for doc in deployments.values()]

    for doc in deployments.values():
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    for kind, path in (("Service", ("spec", "selector")),
                       ("PodDisruptionBudget", ("spec", "selector", "matchLabels"))):
        for name, doc in k8s_objects(kind).items():
            selector = doc[path[0]][path[1]]
            if len(path) == 3:
                selector = selector[path[2]]
            assert any(selector.items() <= labels.items() for labels in pod_labels), (
                f"{kind} {name} selects no pod")


def test_k8s_disruption_budgets_cover_api_and_worker() -> None:
    budgets = k8s_objects("PodDisruptionBudget")
    components = {doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
                  for doc in budgets.values()}

    assert {"api", "worker"} <= components


def test_k8s_migration_job() -> None:
    job = k8s_objects("Job")["sluice-migrate"]
    pod = job["spec"]["template"]["spec"]

    assert pod["containers"][0]["args"] == ["migrate"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")


def test_keda_scales_workers_on_the_task_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.celery_app import _celery_settings

    use_settings(monkeypatch, redis_url="redis://127.0.0.1:6379/0")
    queue = _celery_settings()["task_default_queue"]
    scaled = k8s_objects("ScaledObject")["sluice-worker"]
    trigger = scaled["spec"]["triggers"][0]
    authentication = k8s_objects("TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    worker = k8s_objects("Deployment")[scaled["spec"]["scaleTargetRef"]["name"]]

    assert worker["metadata"]["name"] == "sluice-worker"
    assert "replicas" not in worker["spec"], "KEDA owns the worker replica count"
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == queue
    assert int(trigger["metadata"]["listLength"]) >= 1
    assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    for reference in authentication["spec"]["secretTargetRef"]:
        secret = k8s_objects("Secret")[reference["name"]]
        assert reference["key"] in secret["stringData"]


# --- deploy/submit_samples.py against a real API and worker ---------------------------------

def run_submit_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SUBMIT_SCRIPT), *args], capture_output=True,
                          text=True, timeout=180, check=False)


def test_submit_script_runs_samples_to_completion(
    sluice_env: dict[str, str], tmp_path: Path
) -> None:
    from worker.api import create_app

    worker = start_worker({**sluice_env, "SLUICE_DATA_DIR": str(tmp_path)},
                          tmp_path / "worker.log", 4)
    try:
        with ThreadedServer(create_app()) as api:
            result = run_submit_script("--api-url", api.url, "--per-dataset", "2",
                                       "--timeout-s", "120")
    finally:
        stop_worker(worker)

    assert result.returncode == 0, result.stderr
    assert "submitted 6 jobs" in result.stderr
    assert "all 6 jobs settled" in result.stderr


def test_submit_script_reports_unreachable_api() -> None:
    result = run_submit_script("--api-url", "http://127.0.0.1:9", "--per-dataset", "1")

    assert result.returncode == 2
    assert "failed to reach the API at http://127.0.0.1:9" in result.stderr


def test_submit_script_rejects_negative_count() -> None:
    result = run_submit_script("--per-dataset", "-1")

    assert result.returncode == 2
    assert "--per-dataset must be 0 or more, got -1" in result.stderr


def test_compose_uses_bundled_workflows() -> None:
    # demo-data submits to the workflows of the bundled config, which compose relies on.
    from worker.config import default_config_path
    from worker.demo.run import DATASETS

    workflows = tomllib.loads(default_config_path().read_text())["workflows"]

    assert set(DATASETS.values()) <= set(workflows)
    assert "SLUICE_CONFIG_FILE" not in compose_environment(load_compose()["services"]["api"])
