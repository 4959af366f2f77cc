"""Deployment artifacts: Prometheus rules, Grafana dashboard, Kubernetes manifests, Dockerfile, entrypoint.

Every metric a rule or panel references must be exported by ``torghut.metrics``; PromQL is parsed with a
real parser (``promql-parser``); Kubernetes manifests are rendered by ``kubectl kustomize`` and validated
offline against the Kubernetes JSON schemas (``kubernetes-validate``), CRDs structurally; the Docker build
context is rebuilt from ``.dockerignore`` and a wheel is built from it. Nothing here is skipped: a missing
tool fails the test with the way to install it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from torghut.metrics import exported_series_names
from torghut.strategies.catalog import load_catalog
from torghut.strategies.registry import RegistryConfig, default_registry

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "torghut-engine.json"
K8S = ROOT / "k8s"
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"

# PromQL words that look like identifiers but are not metric names.
PROMQL_WORDS = frozenset(
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio
    by without on ignoring group_left group_right bool and or unless offset atan2
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year
    days_in_month delta deriv exp floor histogram_quantile histogram_count histogram_sum holt_winters hour
    idelta increase irate label_join label_replace ln log2 log10 minute month predict_linear rate resets
    round scalar sgn sort sort_desc sqrt time timestamp vector year avg_over_time min_over_time
    max_over_time sum_over_time count_over_time quantile_over_time stddev_over_time last_over_time
    present_over_time inf nan le
    """.split()
)
# Series Prometheus itself provides for every target.
PROMETHEUS_BUILTINS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$strategy": ".*"}

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w(])|([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers left after removing strings, matchers, ranges,
    grouping label lists, function calls, keywords and numbers.

    >>> sorted(metric_names('sum by (le) (rate(a_bucket{x="y"}[5m])) / on () b_total > 0.5'))
    ['a_bucket', 'b_total']
    """
    text = _STRINGS.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group(1) or match.group(2)
        if name.lower() in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]?", name):
            continue
        names.add(name)
    return names


def parser_metric_names(expr: str) -> set[str]:
    """Metric names from the real PromQL parser (``promql-parser``, a pinned test dependency)."""
    import promql_parser

    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def load_rules() -> dict[str, Any]:
    return yaml.safe_load(RULES.read_text())


def rule_exprs() -> list[tuple[str, str]]:
    out = []
    for group in load_rules()["groups"]:
        for rule in group["rules"]:
            out.append((rule.get("alert") or rule["record"], rule["expr"]))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            out.append((f"{panel['title']} / {target['refId']}", expr))
    return out


def recorded_names() -> set[str]:
    return {rule["record"] for group in load_rules()["groups"] for rule in group["rules"] if "record" in rule}


# ---------------------------------------------------------------------------------------------- PromQL


def test_metric_name_extraction_handles_tricky_shapes() -> None:
    expr = (
        "min(torghut_signal_lag_seconds) > 900 and on () (day_of_week() >= 1 and day_of_week() <= 5)"
        " and on () (hour() >= 14 and hour() < 21)"
    )
    assert metric_names(expr) == {"torghut_signal_lag_seconds"}
    expr = (
        'histogram_quantile(0.99, sum by (strategy_id, le) (rate(strategy_latency_ms_bucket{a="b,c"}[5m])))'
    )
    assert metric_names(expr) == {"strategy_latency_ms_bucket"}
    assert metric_names("time() - max by (source) (torghut_cursor_event_ts_seconds)") == {
        "torghut_cursor_event_ts_seconds"
    }
    assert metric_names("torghut:strategy_error_ratio:rate15m > 0.01") == {
        "torghut:strategy_error_ratio:rate15m"
    }


ALL_EXPRS = [pytest.param(expr, id=name) for name, expr in rule_exprs() + dashboard_exprs()]


@pytest.mark.parametrize("expr", ALL_EXPRS)
def test_every_referenced_metric_is_exported(expr: str) -> None:
    exported = exported_series_names() | PROMETHEUS_BUILTINS | recorded_names()
    names = metric_names(expr)
    assert names, f"no metric found in {expr!r}"
    assert names <= exported, f"not exported by torghut.metrics: {sorted(names - exported)}"


@pytest.mark.parametrize("expr", ALL_EXPRS)
def test_promql_parses_and_regex_agrees_with_the_parser(expr: str) -> None:
    assert parser_metric_names(expr) == metric_names(expr)


@pytest.mark.parametrize("expr", ALL_EXPRS)
def test_promql_shape(expr: str) -> None:
    # The minimal check that needs no parser: balanced brackets outside strings, no dangling operator.
    text = _STRINGS.sub('""', expr)
    stack = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in text:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], f"unbalanced {char!r} in {expr!r}"
    assert not stack, f"unclosed {stack} in {expr!r}"
    assert not re.search(r"[-+*/<>=,]\s*$", text.strip()), f"dangling operator in {expr!r}"


def test_rules_cover_the_design_slos() -> None:
    rules = {name: expr for name, expr in rule_exprs()}
    alerts = {r["alert"]: r for g in load_rules()["groups"] for r in g["rules"] if "alert" in r}
    assert "strategy_latency_ms_bucket" in rules["torghut:strategy_latency_ms:p99_5m"]
    assert "0.99" in rules["torghut:strategy_latency_ms:p99_5m"]
    assert rules["TorghutStrategyLatencyP99High"].strip().endswith("> 50")
    assert {"strategy_errors_total", "strategy_events_total"} <= metric_names(
        rules["torghut:strategy_error_ratio:rate15m"]
    )
    assert "[15m]" in rules["torghut:strategy_error_ratio:rate15m"]
    assert rules["TorghutStrategyErrorRatioHigh"].strip().endswith("> 0.01")
    assert "torghut_runtime_unhandled_exceptions_total" in rules["TorghutRuntimeUnhandledException"]
    stale = alerts["TorghutSignalsStaleDuringMarketHours"]
    assert stale["for"] == "15m" and "> 900" in stale["expr"] and stale["labels"]["severity"] == "critical"
    assert "day_of_week() >= 1 and day_of_week() <= 5" in stale["expr"]
    assert "hour() >= 14 and hour() < 21" in stale["expr"]
    reject = alerts["TorghutOrderRejectionRateHigh"]
    assert reject["for"] == "10m" and reject["expr"].strip().endswith("> 0.2")
    assert "[15m]" in rules["torghut:order_rejection_ratio:rate15m"]
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"]


def test_dashboard_is_well_formed() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "torghut-engine"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    referenced = set().union(*(metric_names(e) for _, e in dashboard_exprs()))
    design = {"strategy_events_total", "strategy_intents_total", "strategy_errors_total"}
    assert (
        design | {"strategy_latency_ms_bucket", "intent_conflict_total", "allocator_reject_total"}
        <= referenced
    )


# ------------------------------------------------------------------------------------------ Kubernetes


def kustomize(path: Path) -> list[dict[str, Any]]:
    """The manifests ``kubectl kustomize path`` renders (what ``kubectl apply -k`` would apply)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is needed to render k8s/ (`kubectl kustomize`): .ci/run installs it "
            "(apt-get install kubectl, or Debian's kubernetes-client)"
        )
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def base_docs() -> list[dict[str, Any]]:
    return kustomize(K8S)


@pytest.fixture(scope="module")
def shared_docs() -> list[dict[str, Any]]:
    return kustomize(K8S / "overlays" / "shared-recovery")


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def core_docs(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (
        d
        for d in docs
        if "." not in d["apiVersion"].split("/")[0] or d["apiVersion"].startswith(("apps/", "batch/"))
    )


@pytest.mark.parametrize("overlay", ["base", "shared-recovery"])
def test_manifests_validate_against_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate

    docs = kustomize(K8S if overlay == "base" else K8S / "overlays" / "shared-recovery")
    checked = 0
    for doc in core_docs(docs):
        kubernetes_validate.validate(doc, "1.30", strict=True)
        checked += 1
    assert checked >= 5


def test_custom_resources_are_structurally_sound(base_docs: list[dict[str, Any]]) -> None:
    monitor = by_kind(base_docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = by_kind(base_docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"] and "metrics" in ports

    rule = by_kind(base_docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == load_rules(), (
        "k8s/base/prometheus-rule.yaml must carry deploy/prometheus/rules.yaml"
    )
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r)
            assert set(r) <= {"alert", "record", "expr", "for", "labels", "annotations"}

    app = yaml.safe_load((K8S / "argocd-application.yaml").read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    assert app["spec"]["source"]["path"] == "k8s"
    assert app["spec"]["destination"]["namespace"] == "torghut"
    assert {"project", "source", "destination"} <= set(app["spec"])


def test_statefulset_is_a_bytewax_cluster(base_docs: list[dict[str, Any]]) -> None:
    sts = by_kind(base_docs, "StatefulSet")
    service = by_kind(base_docs, "Service")
    spec = sts["spec"]
    assert spec["serviceName"] == service["metadata"]["name"] == "torghut-engine"
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert spec["podManagementPolicy"] == "Parallel"
    [engine] = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in engine["env"]}
    assert env["TORGHUT_REPLICAS"]["value"] == str(spec["replicas"]), "scale TORGHUT_REPLICAS with replicas"
    assert env["BYTEWAX_WORKERS_PER_PROCESS"]["value"] == "1"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert {p["containerPort"] for p in engine["ports"]} == {2101, 9464}
    assert engine["args"][:4] == ["torghut", "run", "--config", "/etc/torghut/engine.yaml"]
    assert "0.0.0.0:9464" in engine["args"]
    for name, secret in (
        ("APCA_API_KEY_ID", "torghut-alpaca"),
        ("APCA_API_SECRET_KEY", "torghut-alpaca"),
        ("TORGHUT_DATABASE_URL", "torghut-postgres"),
        ("TA_CLICKHOUSE_PASSWORD", "torghut-clickhouse"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == secret
        assert "value" not in env[name]
    security = engine["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    [claim] = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in engine["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env["BYTEWAX_RECOVERY_DIRECTORY"]["value"]
    [init] = spec["template"]["spec"]["initContainers"]
    assert init["args"] == ["init-recovery"]
    init_env = {e["name"]: e.get("value") for e in init["env"]}
    assert int(init_env["TORGHUT_RECOVERY_PARTITIONS"]) >= spec["replicas"]


def test_shared_recovery_overlay_uses_one_volume_and_a_job(shared_docs: list[dict[str, Any]]) -> None:
    sts = by_kind(shared_docs, "StatefulSet")
    assert "volumeClaimTemplates" not in sts["spec"]
    assert "initContainers" not in sts["spec"]["template"]["spec"]
    pvc = by_kind(shared_docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["recovery"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    job = by_kind(shared_docs, "Job")
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert "python -m bytewax.recovery" in container["args"][0]
    assert (
        job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        == "torghut-recovery"
    )
    images = {c["image"] for c in [container, *sts["spec"]["template"]["spec"]["containers"]]}
    assert len(images) == 1


def engine_environment(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The engine container's environment as Kubernetes builds it: ``envFrom`` ConfigMaps, then ``env``.

    Values from Secrets and the downward API are placeholders naming their source (``<secret:name/key>``).
    """
    sts = by_kind(docs, "StatefulSet")
    [engine] = sts["spec"]["template"]["spec"]["containers"]
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in engine.get("envFrom", []):
        data = maps[source["configMapRef"]["name"]]
        # Kubernetes skips keys that are not valid variable names (engine.yaml) when exporting a map.
        env.update({k: v for k, v in data.items() if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)})
    for item in engine["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = f"<secret:{ref['name']}/{ref['key']}>"
        else:
            env[item["name"]] = f"<field:{item['valueFrom']['fieldRef']['fieldPath']}>"
    return env


def mounted_file(docs: list[dict[str, Any]], path: str) -> str:
    """The content the StatefulSet's projected config volume gives the engine at ``path``."""
    sts = by_kind(docs, "StatefulSet")
    [engine] = sts["spec"]["template"]["spec"]["containers"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    for mount in engine["volumeMounts"]:
        for source in volumes[mount["name"]].get("projected", {}).get("sources", []):
            for item in source["configMap"]["items"]:
                if f"{mount['mountPath']}/{item['path']}" == path:
                    return str(maps[source["configMap"]["name"]][item["key"]])
    msg = f"nothing mounts {path}"
    raise AssertionError(msg)


def test_the_engine_container_reads_a_complete_service_configuration(
    base_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """``torghut run --config /etc/torghut/engine.yaml`` with the pod's environment: what it would run."""
    from torghut.dataflow.service_config import load_service_config

    sts = by_kind(base_docs, "StatefulSet")
    [engine] = sts["spec"]["template"]["spec"]["containers"]
    config_path = engine["args"][engine["args"].index("--config") + 1]
    config_file = tmp_path / "engine.yaml"
    config_file.write_text(mounted_file(base_docs, config_path))
    env = engine_environment(base_docs)

    config = load_service_config(config_file, env)

    source = config.source
    assert source.kind == "clickhouse"
    assert (source.host, source.port, source.secure) == (
        "torghut-clickhouse.torghut.svc.cluster.local",
        8123,
        False,
    )
    assert source.user == "torghut" and source.table == "torghut.ta_signals"
    assert source.password.get_secret_value() == "<secret:torghut-clickhouse/password>"
    assert config.postgres.dsn.get_secret_value() == "<secret:torghut-postgres/dsn>"
    # Recovery is on, in the volume the StatefulSet mounts, at bytewax's own variables' settings.
    mounts = {m["name"]: m["mountPath"] for m in engine["volumeMounts"]}
    assert config.recovery_dir == Path(mounts["recovery"]) == Path(env["BYTEWAX_RECOVERY_DIRECTORY"])
    assert config.snapshot_interval_s == float(env["BYTEWAX_SNAPSHOT_INTERVAL"]) == 30
    assert config.recovery_backup_interval_s == 0
    # The catalog is the strategies ConfigMap as mounted, and it loads.
    assert str(config.catalog) == env["TRADING_STRATEGY_CONFIG_PATH"]
    catalog_text = mounted_file(base_docs, str(config.catalog))
    assert catalog_text == (ROOT / "examples" / "strategies.yaml").read_text()
    catalog_file = tmp_path / "strategies.yaml"
    catalog_file.write_text(catalog_text)
    catalog = load_catalog(catalog_file, default_registry(RegistryConfig(entry_points=False)))
    assert len(catalog.enabled()) >= 3
    assert config.adapter_kind == "paper" and config.engine.trading.trading_mode == "paper"
    assert config.engine.trading.trading_strategy_runtime_mode == env["TRADING_STRATEGY_RUNTIME_MODE"]
    assert config.engine.runtime.circuit_errors == 3
    # Prometheus scrapes the address the container serves on.
    assert engine["args"][engine["args"].index("--metrics-address") + 1].endswith(":9464")


# ------------------------------------------------------------------------------------ entrypoint script


def run_entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "PYTHON": sys.executable, **env}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=full, check=False
    )


def test_entrypoint_builds_addresses_from_the_pod_ordinal() -> None:
    result = run_entrypoint(
        "sh", "-c", 'printf "%s|%s" "$BYTEWAX_PROCESS_ID" "$BYTEWAX_ADDRESSES"',
        POD_NAME="torghut-engine-2", POD_NAMESPACE="trading", TORGHUT_REPLICAS="3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    process_id, addresses = result.stdout.split("|")
    assert process_id == "2"
    assert addresses.split(";") == [f"torghut-engine-{i}.torghut-engine.trading.svc:2101" for i in range(3)]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POD_NAME": "torghut-engine-3", "POD_NAMESPACE": "t", "TORGHUT_REPLICAS": "3"}, "not below"),
        ({"POD_NAME": "torghut-engine", "POD_NAMESPACE": "t", "TORGHUT_REPLICAS": "3"}, "pod ordinal"),
        ({"POD_NAME": "torghut-engine-0", "POD_NAMESPACE": "t", "TORGHUT_REPLICAS": "x"}, "TORGHUT_REPLICAS"),
        ({"POD_NAME": "torghut-engine-0", "TORGHUT_REPLICAS": "1"}, "POD_NAMESPACE"),
    ],
)
def test_entrypoint_refuses_bad_settings(env: dict[str, str], message: str) -> None:
    result = run_entrypoint("true", **env)
    assert result.returncode != 0
    assert message in result.stderr


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


TINY_FLOW = """
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource
from bytewax.connectors.stdio import StdOutSink

flow = Dataflow("tiny")
items = op.input("in", flow, TestingSource([(f"k{i % 4}", i) for i in range(40)], batch_size=5))
sums = op.stateful_map("sum", items, lambda state, v: ((state or 0) + v, f"{(state or 0) + v}"))
op.output("out", sums, StdOutSink())
"""


def _run_cluster(flow_dir: Path, recovery: list[Path]) -> list[str]:
    ports = _free_ports(len(recovery))
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
    env = {**os.environ, "PYTHONPATH": str(flow_dir)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bytewax.run",
                "tinyflow:flow",
                "-i",
                str(i),
                "-a",
                addresses,
                "-r",
                str(directory),
                "-s",
                "1",
                "-b",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, directory in enumerate(recovery)
    ]
    lines: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        lines += [line for line in out.splitlines() if "'" in line]
    return lines


@pytest.mark.slow
def test_per_pod_recovery_partitions_form_a_complete_set(tmp_path: Path) -> None:
    """init-recovery spreads the partitions over the first pods' volumes; bytewax runs, resumes and rescales."""
    volumes = [tmp_path / f"recovery-{i}" for i in range(3)]
    for i, volume in enumerate(volumes):
        result = run_entrypoint(
            "init-recovery", POD_NAME=f"torghut-engine-{i}", BYTEWAX_RECOVERY_DIRECTORY=str(volume),
            TORGHUT_RECOVERY_PARTITIONS="5", TORGHUT_RECOVERY_INIT_REPLICAS="2",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    held = [sorted(p.name for p in v.glob("part-*.sqlite3")) for v in volumes]
    assert held == [
        ["part-0.sqlite3", "part-2.sqlite3", "part-4.sqlite3"],
        ["part-1.sqlite3", "part-3.sqlite3"],
        [],
    ]
    again = run_entrypoint(
        "init-recovery", POD_NAME="torghut-engine-0", BYTEWAX_RECOVERY_DIRECTORY=str(volumes[0]),
        TORGHUT_RECOVERY_PARTITIONS="5", TORGHUT_RECOVERY_INIT_REPLICAS="2",
    )  # fmt: skip
    assert again.returncode == 0 and "already initialized" in again.stdout

    flow_dir = tmp_path / "flow"
    flow_dir.mkdir()
    (flow_dir / "tinyflow.py").write_text(TINY_FLOW)
    first = _run_cluster(flow_dir, volumes[:2])
    assert len(first) == 40
    # A finished flow resumed from its snapshots emits nothing, also with a third (empty) process.
    assert _run_cluster(flow_dir, volumes[:2]) == []
    assert _run_cluster(flow_dir, volumes) == []


# ------------------------------------------------------------------------------------------- Dockerfile


def dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        patterns.append((negate, line.lstrip("!").rstrip("/")))
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def is_ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent directory matches too."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, pattern in patterns:
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def build_context(dest: Path) -> Path:
    patterns = dockerignore_patterns()
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".git/", ".venv/")) or path.is_dir() or is_ignored(rel, patterns):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dest


def copy_sources() -> list[str]:
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            args = [w for w in words[1:] if not w.startswith("--")]
            sources += args[:-1]
    return sources


def test_dockerignore_matching() -> None:
    patterns = [(False, "*"), (True, "torghut"), (False, "**/__pycache__")]
    assert is_ignored("tests/test_x.py", patterns)
    assert not is_ignored("torghut/metrics.py", patterns)
    assert is_ignored("torghut/__pycache__/metrics.cpython-311.pyc", patterns)


def test_docker_context_holds_everything_the_dockerfile_copies(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    sources = copy_sources()
    assert {"pyproject.toml", "README.md", "torghut", "deploy/docker/entrypoint.sh"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
        assert (context / source).exists(), f"COPY {source}: excluded by .dockerignore"
    assert not (context / "tests").exists() and not (context / ".venv").exists()
    package_files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "torghut").rglob("*") if p.is_file()}
    package_files = {f for f in package_files if "__pycache__" not in f}
    missing = sorted(f for f in package_files if not (context / f).exists())
    assert not missing, f"package files excluded from the image: {missing[:5]}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("# syntax=docker/dockerfile:1")
    assert "FROM python:3.11-slim" in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M)
    assert 'ENTRYPOINT ["torghut-entrypoint"]' in dockerfile


@pytest.mark.slow
def test_the_docker_context_builds_a_complete_wheel(tmp_path: Path) -> None:
    # With build isolation, as `pip install .` in the Dockerfile does (pip fetches the build backend).
    context = build_context(tmp_path / "context")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
         str(tmp_path / "wheels"), str(context)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [wheel] = (tmp_path / "wheels").glob("torghut_engine-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "torghut/metrics.py" in names and "torghut/py.typed" in names
    assert any(n.endswith(".sql") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "torghut = torghut.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
