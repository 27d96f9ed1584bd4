"""Topic names of the wire contract. Kafka key = the document id on every document topic."""

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

    @classmethod
    def for_family(cls, family: str, prefix: str = "") -> DocumentTopics:
        base = f"{prefix}{family}"
        return cls(
            commands=f"{base}.commands",
            events=f"{base}.events",
            rejections=f"{base}.rejections",
            dead_letters=f"{base}.commands.dlq",
            previews=f"{base}.previews",
        )

    def all(self) -> tuple[str, ...]:
        return (self.commands, self.events, self.rejections, self.dead_letters, self.previews)

