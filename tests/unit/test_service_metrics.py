"""What /metrics carries beside the service's own counters: the standard process and Python
series, the build, and lag only for partitions this instance owns."""

from __future__ import annotations

from aiokafka import TopicPartition
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import contracts
from service.app.purchase_orders.family import purchase_order_family
from service.entrypoints.app import _FinishBatchBeforeRevoke
from service.entrypoints.metrics import ServiceMetrics
from service.entrypoints.runtime import ConsumerStatus


def names(metrics: ServiceMetrics) -> set[str]:
    text = generate_latest(metrics.registry).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def test_the_standard_process_and_python_series_and_the_build_are_served() -> None:
    metrics = ServiceMetrics([purchase_order_family()])
    served = names(metrics)
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= served
    assert "python_gc_objects_collected_total" in served
    text = generate_latest(metrics.registry).decode()
    [build] = [line for line in text.splitlines() if line.startswith("order_service_build_info{")]
    assert f'contract="{contracts.__version__}"' in build


async def test_a_revoked_partitions_lag_series_goes_with_it() -> None:
    metrics = ServiceMetrics([purchase_order_family()])
    metrics.lag("purchase-orders.commands", 0, 12)
    metrics.lag("purchase-orders.commands", 1, 7)
    listener = _FinishBatchBeforeRevoke(ConsumerStatus(), "purchase-orders", metrics)
    await listener.on_partitions_revoked({TopicPartition("purchase-orders.commands", 0)})
    text = generate_latest(metrics.registry).decode()
    lag = [line for line in text.splitlines() if line.startswith("order_service_consumer_lag")]
    assert lag == [
        'order_service_consumer_lag_messages{partition="1",topic="purchase-orders.commands"} 7.0'
    ]
    # Revoking what was never reported is no error.
    await listener.on_partitions_revoked({TopicPartition("purchase-orders.commands", 2)})
