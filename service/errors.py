"""The one exception hierarchy of the service. Rejections of commands are data, not exceptions."""

from __future__ import annotations

from collections.abc import Sequence


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigurationError(ServiceError):
    """The settings cannot work: a missing binary, an unusable URL, a bad value."""


class ProvisioningError(ServiceError):
    """A server of the stack could not be started or reached."""


class MigrationError(ServiceError):
    """The database schema is ahead of this build or a migration failed."""


class TransientError(ServiceError):
    """A failure that may succeed when retried: lost connection, serialization failure, deadlock."""


class BrokerUnavailableError(TransientError):
    """The Kafka-protocol broker did not take a message in time."""


class UnansweredClaimError(ServiceError):
    """A unit of work claimed inbox keys as new and did not answer them: a defect. Nothing it
    wrote commits, so no key is ever recorded with an outcome it was not given."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        super().__init__(
            f"{len(self.keys)} inbox key(s) claimed and left unanswered: {_some(self.keys)}"
        )


class VersionSequenceError(ServiceError):
    """A batch's changes give documents versions out of sequence (a deleted document's id used
    again, two events with one version): a defect in a family's rules. Nothing is written."""

    def __init__(self, kind: str, documents: Sequence[tuple[str, str]]) -> None:
        self.kind = kind
        self.documents = tuple(documents)
        named = _some([f"{tenant_id}/{document_id}" for tenant_id, document_id in documents])
        super().__init__(f"{kind} documents with versions out of sequence: {named}")


class ProcessingAbandonedError(ServiceError):
    """The service is stopping while a command waits to be retried; its offset stays uncommitted."""


class PersonalDataNotOpenedError(ServiceError):
    """A change to an order's personal data that cannot be stored as it is: the order was loaded
    sealed (its commands never read that data: domain.orders.reads_personal_data) and one
    changed it, or a sealed stand-in reached an order loaded opened. A defect: the batch fails
    before anything is written, and the command is parked if it persists."""

    def __init__(self, order: tuple[str, str], role: str) -> None:
        """`role`: the address (`shipping_address`, `billing_address`) that cannot be stored, or
        `records` when an order loaded sealed has no records to keep."""
        self.order = order
        self.role = role
        super().__init__(
            f"order {order[1]} of tenant {order[0]}: {role} cannot be stored; its personal"
            " data was loaded sealed and changed, or a sealed stand-in reached an order loaded"
            " opened"
        )


def _some(names: Sequence[str], shown: int = 5) -> str:
    """The first few of `names` for a message (a batch may name a thousand), and how many more."""
    listed = ", ".join(names[:shown])
    return listed if len(names) <= shown else f"{listed} and {len(names) - shown} more"
