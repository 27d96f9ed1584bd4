"""The wire contract of the order-lifecycle service: every message it reads or writes.

Other services import these models; `python -m contracts.generate` writes the JSON Schemas and
the AsyncAPI document checked in beside them.
"""

from contracts.common import Actor, ErrorDetail
from contracts.purchase_orders import (
    PURCHASE_ORDER_COMMAND,
    PURCHASE_ORDER_EVENT,
    ChangePurchaseOrderStatus,
    CreatePurchaseOrder,
    PurchaseOrderCreated,
    PurchaseOrderRejection,
    PurchaseOrderStatusChanged,
)
from contracts.topics import DocumentTopics, all_topics

__all__ = [
    "PURCHASE_ORDER_COMMAND",
    "PURCHASE_ORDER_EVENT",
    "Actor",
    "ChangePurchaseOrderStatus",
    "CreatePurchaseOrder",
    "DocumentTopics",
    "ErrorDetail",
    "PurchaseOrderCreated",
    "PurchaseOrderRejection",
    "PurchaseOrderStatusChanged",
    "all_topics",
]
