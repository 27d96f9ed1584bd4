"""The consumer's own configuration, from the environment: only what it uses.

It reads the same variable names as the command service where the two share a thing (the
brokers, the topic prefix, the database), so one environment can run both, but it has no other
tie to the service's settings.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field

from contracts.topics import INVENTORY_MOVEMENTS
from examples.kafka_settings import KafkaClientSettings

# What `make run` starts; the default matches so the example works beside it with no setup.
DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:54329/orders"


class ConsumerSettings(KafkaClientSettings):
    database_url: str = Field(
        default=DEV_DATABASE_URL,
        # Its own database if given; else the service's, where its tables keep to their schema.
        validation_alias=AliasChoices("inventory_database_url", "database_url"),
        description="Where the stock is kept: INVENTORY_DATABASE_URL, else DATABASE_URL.",
    )
    inventory_consumer_group: str = "reference-inventory"
    inventory_dedup_hours: Annotated[float, Field(gt=0)] = Field(
        default=168.0,
        description="How long applied movement ids are remembered; keep it at least as long as"
        " inventory.movements keeps messages.",
    )

    @property
    def movements_topic(self) -> str:
        return f"{self.topic_prefix}{INVENTORY_MOVEMENTS}"
