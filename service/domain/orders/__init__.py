"""Customer orders: types, rule tables, decisions, state changes and stock positions (pure)."""

from service.domain.decisions import Accepted, Rejected
from service.domain.orders.decide import Decision, decide
from service.domain.orders.evolve import Transition, evolve, fold
from service.domain.orders.model import (
    Actor,
    Address,
    CancelReason,
    ChangeOrderStatus,
    CreateOrder,
    DeletedOrder,
    DeleteOrder,
    Item,
    Order,
    OrderCommand,
    OrderCreated,
    OrderDeleted,
    OrderDetails,
    OrderEvent,
    OrderStatusChanged,
    OrderUpdated,
    Part,
    State,
    Status,
    UpdateOrder,
)
from service.domain.orders.rules import TRANSITIONS

__all__ = [
    "TRANSITIONS",
    "Accepted",
    "Actor",
    "Address",
    "CancelReason",
    "ChangeOrderStatus",
    "CreateOrder",
    "Decision",
    "DeleteOrder",
    "DeletedOrder",
    "Item",
    "Order",
    "OrderCommand",
    "OrderCreated",
    "OrderDeleted",
    "OrderDetails",
    "OrderEvent",
    "OrderStatusChanged",
    "OrderUpdated",
    "Part",
    "Rejected",
    "State",
    "Status",
    "Transition",
    "UpdateOrder",
    "decide",
    "evolve",
    "fold",
]
