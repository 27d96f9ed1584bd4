"""Topic names of the wire contract. Kafka key = the document id on every document topic but
`.state`, which is keyed `<tenant_id>/<document id>` (see contracts.state)."""

from __future__ import annotations

from dataclasses import dataclass

PURCHASE_ORDERS = "purchase-orders"
ORDERS = "orders"
INVENTORY_MOVEMENTS = "inventory.movements"


@dataclass(frozen=True)
class DocumentTopics:
    """The topics of one document family, with the deployment's optional prefix applied."""

    commands: str
    events: str
    rejections: str
    dead_letters: str
    previews: str
    state: str
    """Each document's current state; compacted (`cleanup.policy=compact`)."""

    @classmethod
    def for_family(cls, family: str, prefix: str = "") -> DocumentTopics:
        base = f"{prefix}{family}"
        return cls(
            commands=f"{base}.commands",
            events=f"{base}.events",
            rejections=f"{base}.rejections",
            dead_letters=f"{base}.commands.dlq",
            previews=f"{base}.previews",
            state=f"{base}.state",
        )

    def all(self) -> tuple[str, ...]:
        return (
            self.commands,
            self.events,
            self.rejections,
            self.dead_letters,
            self.previews,
            self.state,
        )

    def compacted(self) -> tuple[str, ...]:
        """The topics that must be created with `cleanup.policy=compact`: Kafka keeps the latest
        record of each key there, instead of deleting records by age."""
        return (self.state,)
