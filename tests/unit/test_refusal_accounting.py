"""Refusals at the token gate are counted by reason, and logged one line per reason and family
at most per interval, with how many like it were held back."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from service.app.auth import Refusal
from service.app.observer import NoObserver, ProcessingObserver
from service.app.orders.family import order_family
from service.app.purchase_orders.family import purchase_order_family
from service.entrypoints.logs import RepeatLimiter
from service.entrypoints.metrics import ServiceMetrics

INTERVAL = 0.3
REFUSALS = "order_service_gate_refusals_total"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, list[str]]]:
    """A logger of its own whose handler holds repeats back for INTERVAL seconds."""
    logger = logging.getLogger(f"tests.refusals.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = Lines()
    handler.addFilter(RepeatLimiter(INTERVAL))
    logger.addHandler(handler)
    yield logger, handler.lines
    logger.removeHandler(handler)


def refuse(logger: logging.Logger, family: str, reason: str, command_id: str) -> None:
    logger.warning(
        "refused %s (command_id %s): %s",
        f"{family}.commands",
        command_id,
        reason,
        extra={"limit_key": f"refused {family} {reason}"},
    )


def test_different_limit_keys_pass_in_the_same_instant(
    logged: tuple[logging.Logger, list[str]],
) -> None:
    logger, lines = logged
    refuse(logger, "orders", "no_token", "c-1")
    refuse(logger, "orders", "wrong_tenant", "c-2")
    refuse(logger, "purchase-orders", "no_token", "c-3")
    # The format string is the same for all three: without limit_key only the first would pass.
    assert lines == [
        "refused orders.commands (command_id c-1): no_token",
        "refused orders.commands (command_id c-2): wrong_tenant",
        "refused purchase-orders.commands (command_id c-3): no_token",
    ]


def test_the_same_key_is_held_back_and_counted_on_its_next_line(
    logged: tuple[logging.Logger, list[str]],
) -> None:
    logger, lines = logged
    refuse(logger, "orders", "invalid_token", "c-1")
    for n in range(2, 6):
        refuse(logger, "orders", "invalid_token", f"c-{n}")
    # Another wording with the same key is the same message: held back too.
    logger.warning(
        "token of %s cannot be trusted", "c-6", extra={"limit_key": "refused orders invalid_token"}
    )
    refuse(logger, "orders", "missing_scope", "c-7")  # its own key: not held back
    assert lines == [
        "refused orders.commands (command_id c-1): invalid_token",
        "refused orders.commands (command_id c-7): missing_scope",
    ]
    time.sleep(INTERVAL * 1.5)
    refuse(logger, "orders", "invalid_token", "c-8")
    refuse(logger, "orders", "missing_scope", "c-9")
    assert re.fullmatch(
        r"refused orders\.commands \(command_id c-8\): invalid_token"
        r" \(5 more like this in the last \d+s\)",
        lines[2],
    )
    assert lines[3] == "refused orders.commands (command_id c-9): missing_scope"
    assert len(lines) == 4
    refuse(logger, "orders", "invalid_token", "c-10")  # a new interval began with c-8
    assert len(lines) == 4


def test_records_without_a_limit_key_are_limited_by_format_string_as_before(
    logged: tuple[logging.Logger, list[str]],
) -> None:
    logger, lines = logged
    logger.warning("broker unreachable: %s", "first")
    logger.warning("broker unreachable: %s", "second")
    logger.warning("database unreachable: %s", "third")
    logger.info("below warning: %s", "never held")
    logger.info("below warning: %s", "never held")
    assert lines == [
        "broker unreachable: first",
        "database unreachable: third",
        "below warning: never held",
        "below warning: never held",
    ]


def test_idle_keys_are_forgotten_without_losing_a_count() -> None:
    limiter = RepeatLimiter(INTERVAL)
    limiter.MAX_KEYS = 4

    def record(key: str) -> logging.LogRecord:
        return logging.makeLogRecord(
            {"name": "refusals", "levelno": logging.WARNING, "msg": "refused", "limit_key": key}
        )

    assert limiter.filter(record("no_token"))
    assert not limiter.filter(record("no_token"))
    assert all(limiter.filter(record(f"reason_{n}")) for n in range(1, 10))  # none idle yet
    time.sleep(INTERVAL * 1.5)
    assert all(limiter.filter(record(f"reason_{n}")) for n in range(10, 20))
    # The idle keys went at the first new key; the one holding a line back stayed.
    assert len(limiter._last) == 1 + 10
    last = record("no_token")
    assert limiter.filter(last)
    assert re.fullmatch(r"refused \(1 more like this in the last \d+s\)", last.getMessage())


def metrics() -> ServiceMetrics:
    return ServiceMetrics([purchase_order_family(), order_family()])


def refusals(m: ServiceMetrics, family: str, reason: str) -> float | None:
    return m.registry.get_sample_value(REFUSALS, {"family": family, "reason": reason})


def test_refusals_are_counted_by_family_and_reason() -> None:
    m = metrics()
    observer: ProcessingObserver = m
    for _ in range(3):
        observer.refused("orders", Refusal.NO_TOKEN)
    observer.refused("orders", Refusal.WRONG_TENANT)
    observer.refused("purchase-orders", Refusal.NO_TOKEN)
    assert refusals(m, "orders", "no_token") == 3
    assert refusals(m, "orders", "wrong_tenant") == 1
    assert refusals(m, "purchase-orders", "no_token") == 1
    # Every reason known today is there from 0, so increase() sees its first refusal.
    for family in ("orders", "purchase-orders"):
        for reason in Refusal:
            assert refusals(m, family, reason.value) is not None
    assert refusals(m, "purchase-orders", "actor_mismatch") == 0
    rendered = m.render().decode()
    assert "# TYPE order_service_gate_refusals_total counter" in rendered
    assert f'{REFUSALS}{{family="orders",reason="no_token"}} 3.0' in rendered
    assert f'{REFUSALS}{{family="orders",reason="wrong_tenant"}} 1.0' in rendered


def test_no_observer_takes_refusals() -> None:
    observer: ProcessingObserver = NoObserver()
    observer.refused("orders", Refusal.NO_TOKEN)  # taken, and nothing comes of it
