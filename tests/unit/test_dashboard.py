"""The Grafana dashboard shipped with the service asks only for metrics the service has."""

from __future__ import annotations

import json
import re
from importlib import resources

from service.app.orders.family import order_family
from service.app.purchase_orders.family import purchase_order_family
from service.entrypoints.metrics import ServiceMetrics

HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    text = (
        resources.files("service.entrypoints").joinpath("dashboards/order-service.json").read_text()
    )
    dashboard = json.loads(text)
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\border_service_[a-z_]+", target["expr"])
    }
    metrics = ServiceMetrics([purchase_order_family(), order_family()])
    metrics.watch_relay(dict)
    families = list(metrics.registry.collect())
    # A labelled gauge has no sample until it is first set, but its family is registered.
    exported = {family.name for family in families} | {
        sample.name for family in families for sample in family.samples
    }
    missing = {
        name
        for name in queried
        if name not in exported
        and not any(name + suffix in exported for suffix in HISTOGRAM_SERIES)
    }
    assert not missing
    assert len(queried) >= 12  # every metric of the README's table has a panel
