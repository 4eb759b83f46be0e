"""Every metric the dashboard and the alert rules query is one the worker really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streamgen.engine.adapters import AdapterStats
from streamgen.telemetry.adapter_metrics import AdapterCollector
from streamgen.telemetry.lane_metrics import LaneMetrics
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.progress_metrics import ProgressMetrics
from streamgen.telemetry.share_metrics import ShareMetrics
from streamgen.telemetry.tenant_metrics import TenantMetrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
# Series Prometheus itself adds to every scrape job.
BUILT_IN = {"up"}
METRIC = re.compile(
    r"(?<![\w:$.])([a-zA-Z_:][\w:]*)\s*(?=\{|\[|\)|$|\s*(?:[-+*/<>=!]|and\b|or\b|unless\b))"
)


def exported() -> set[str]:
    metrics = Metrics(CollectorRegistry())
    LaneMetrics(metrics.registry)  # declared apart, on the same registry (worker_hooks.py)
    ProgressMetrics(metrics.registry)  # the same, by run.py with worker.progress on
    TenantMetrics(metrics.registry)  # the same, by worker_hooks.py
    ShareMetrics(metrics.registry)  # the same, by share_assembly.py with worker.mode=share
    stats = AdapterStats(0, 0, 0, 0, 0, 0)
    metrics.registry.register(AdapterCollector(lambda: stats))  # the same, by run.py
    return metrics.series_names()


def metric_names(expr: str) -> set[str]:
    """Names in selector position: followed by a label matcher, a range, or an operator —
    never the function names (followed by "(") or label names inside by()/{}."""
    without_labels = re.sub(r"\{[^}]*\}", "{}", expr)
    without_groupings = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels
    )
    without_strings = re.sub(r'"[^"]*"', '""', without_groupings)
    return {
        name
        for name in METRIC.findall(without_strings)
        if name not in {"and", "or", "unless", "bool", "offset"} and not name.isdigit()
    }


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard: dict[str, Any] = json.loads(
        (DEPLOY / "grafana/dashboards/streamgen.json").read_text()
    )
    out = []
    for panel in dashboard["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        out.extend((panel["title"], t["expr"]) for t in panel["targets"])
    return out


def alert_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def test_the_name_parser_finds_selectors_only() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, model) (rate(streamgen_batch_size_bucket"
        '{model="x"}[5m]))) / clamp_min(count(up{job="w"} == 1), 1) and on (instance) foo > 0'
    )
    assert metric_names(expr) == {"streamgen_batch_size_bucket", "up", "foo"}


@pytest.mark.parametrize(("where", "expr"), dashboard_exprs() + alert_exprs())
def test_every_queried_series_is_exported(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    unknown = names - exported() - BUILT_IN
    assert not unknown, f"{where}: {sorted(unknown)} not exported by streamgen.telemetry.metrics"


def test_dashboard_covers_what_operators_asked_for() -> None:
    titles = " | ".join(title for title, _ in dashboard_exprs()).lower()
    for topic in (
        "lag per partition",
        "gpu-seconds backlog",
        "throughput",
        "batch size",
        "latency",
        "dead letter",
        "gpu utilisation",
        "cancelled",
        "lag per lane",
        "per tenant",
    ):
        assert topic in titles


def test_alert_rules_are_complete() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {
        "StreamgenLagGrowing",
        "StreamgenDeadLetterRate",
        "StreamgenWorkerDown",
        "StreamgenGpuIdleWhileLagging",
    } <= set(alerts)
    for name, rule in alerts.items():
        assert rule.get("for"), f"{name} fires on a single evaluation"
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]


def test_prometheus_scrapes_the_worker_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert "streamgen-worker" in jobs  # the job the WorkerDown alert names


def test_kubernetes_grace_period_outlasts_the_drain() -> None:
    deployment = yaml.safe_load((DEPLOY / "k8s/worker.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    drain = float(env["STREAMGEN_WORKER_DRAIN_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] > drain + 5
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "preStop" in container["lifecycle"]
    scaled = yaml.safe_load((DEPLOY / "k8s/keda-scaledobject.yaml").read_text())
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert {"lagThreshold", "activationLagThreshold", "limitToPartitionsWithLag"} <= set(
        trigger["metadata"]
    )
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_kubernetes_readiness_waits_for_the_warm_up_and_the_cache_is_a_volume() -> None:
    from streamgen.configuration import load_settings

    deployment = yaml.safe_load((DEPLOY / "k8s/worker.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = load_settings(env=env)  # every setting the manifest sets is valid
    assert settings.engine.warmup_shapes and settings.engine.cuda_graphs
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = mounts[settings.engine.compile_cache_dir]
    assert volume in {v["name"] for v in pod["volumes"]}
