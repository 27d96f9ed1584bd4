"""Kafka header names of the wire contract: every header the service reads or writes.

Names are compared as written here (all lower case). Values are bytes; the service writes its
own as ASCII. Spelled once, here, so the service, the command client and the AsyncAPI document
cannot drift apart on a name.
"""

from __future__ import annotations

from typing import Final

# --- On commands, written by the sender -----------------------------------------------------

AUTHORIZATION: Final = "authorization"
"""Written by a command's sender: `Bearer <JWT>`, the actor token bound to that one command.
Read by the service to decide who acted; never stored, logged, echoed, dead-lettered or
replayed."""

BEARER_SCHEME: Final = "Bearer"
"""The scheme word that starts an AUTHORIZATION value, followed by one space and the token."""

REPLY_TO: Final = "reply_to"
"""Written by a command's sender (optional): the topic to send the command's reply to
(contracts.replies). FastStream's request/reply convention. The service refuses a topic outside
its allowed prefixes (default `replies.`) and, by default, outside the sender's tenant:
`replies.<tenant_id>` or `replies.<tenant_id>_<name>`, and one that does not exist."""

CORRELATION_ID: Final = "correlation_id"
"""Written by a command's sender beside REPLY_TO (optional, at most 128 printable ASCII
characters); the service writes it back on the reply, so a sender sharing a reply topic
finds its own replies."""

# --- Carried from a command to every one of its answers -------------------------------------

TRACEPARENT: Final = "traceparent"
"""W3C trace context, written by whoever sends a command (optional); the service copies it onto
every outcome of that command, so the sender's trace reaches whoever consumes the outcome."""

TRACESTATE: Final = "tracestate"
"""W3C trace state, written and carried like TRACEPARENT (vendor-specific trace data)."""

TRACE_CONTEXT: Final = (TRACEPARENT, TRACESTATE)
"""Both trace-context headers, in the order the service adds them to an answer."""

# --- On outcomes, written by the service ----------------------------------------------------

EVENT_TYPE: Final = "event_type"
"""Written by the service on every event: its `type`, so consumers can route without parsing."""

# --- CloudEvents, written by the service on every event and every inventory movement --------
# CloudEvents 1.0 in binary content mode, Kafka protocol binding: each context attribute is a
# `ce_<name>` header and the record's value is the event's data, unchanged, so a CloudEvents
# consumer reads the service's messages as they are and nobody else has to.
# https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/kafka-protocol-binding.md

CE_SPECVERSION: Final = "ce_specversion"
"""Always CLOUDEVENTS_SPEC_VERSION."""

CE_ID: Final = "ce_id"
"""The event's event_id; a movement's movement_id. Unique per source, stable across re-sends."""

CE_SOURCE: Final = "ce_source"
"""Who produced it, a URI reference: `cloudevents_source(<family>)` for a family's events,
CLOUDEVENTS_MOVEMENT_SOURCE for inventory movements."""

CE_TYPE: Final = "ce_type"
"""The event's `type` (e.g. `purchase_order.created`); CLOUDEVENTS_MOVEMENT_TYPE for a
movement."""

CE_TIME: Final = "ce_time"
"""The message's `occurred_at`, RFC 3339 (UTC as `Z`)."""

CE_SUBJECT: Final = "ce_subject"
"""What it is about within its source: the document id (the Kafka key) of an event,
`<warehouse_id>/<sku>` of a movement."""

CONTENT_TYPE: Final = "content-type"
"""The value's media type (the binding maps it to `datacontenttype`): JSON_CONTENT_TYPE."""

CLOUDEVENTS: Final = (CE_SPECVERSION, CE_ID, CE_SOURCE, CE_TYPE, CE_TIME, CE_SUBJECT, CONTENT_TYPE)
"""Every CloudEvents header, in the order the service writes them."""

CLOUDEVENTS_SPEC_VERSION: Final = "1.0"
JSON_CONTENT_TYPE: Final = "application/json"

CLOUDEVENTS_SOURCE_ROOT: Final = "/order-lifecycle-service"
"""What every CE_SOURCE the service writes starts with."""

CLOUDEVENTS_MOVEMENT_SOURCE: Final = f"{CLOUDEVENTS_SOURCE_ROOT}/inventory"
CLOUDEVENTS_MOVEMENT_TYPE: Final = "inventory.movement"


def cloudevents_source(family: str) -> str:
    """The CE_SOURCE of a family's events, e.g. `/order-lifecycle-service/purchase-orders`."""
    return f"{CLOUDEVENTS_SOURCE_ROOT}/{family}"


# --- On dead letters (<family>.commands.dlq), written by the service ------------------------

DEAD_LETTER_PREFIX: Final = "x-dead-letter-"
"""The service's own namespace on a dead letter: a sender's headers in it are dropped when a
command is parked, so a reader never takes a sender's header for the service's."""

DEAD_LETTER_REASON: Final = "x-dead-letter-reason"
"""Written by the service on a dead letter: why the command could not be read or processed."""

DEAD_LETTER_SOURCE: Final = "x-dead-letter-source"
"""Written by the service on a dead letter: where the command was read,
`topic/partition/offset@timestamp`."""

DEAD_LETTER_KEY: Final = "x-dead-letter-key"
"""Written by the service on a sealed dead letter (customer orders): the id of the key that
seals it; purging the letter destroys that key."""

DEAD_LETTER_AUTHORITY: Final = "x-dead-letter-authority"
"""Written by the service on a dead letter: the verified claims its command was admitted with,
as JSON (`null`: none), the only authority a replay of it may carry."""

DEAD_LETTER_SIGNATURE: Final = "x-dead-letter-signature"
"""Written by the service last on a dead letter: `<key id>:<hex HMAC>` over its topic, key,
value and every header before it; read back to tell the service's letters from forgeries."""

DEAD_LETTER_HEADERS: Final = (DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, DEAD_LETTER_KEY)
"""What a dead letter says about itself (why, where from, which key), before it is signed."""

# --- On replayed commands, written by `order-service dead-letters replay` -------------------

REPLAY_PREFIX: Final = "x-replay"
"""The namespace of a replay's own headers (REPLAYED_FROM, REPLAY_AUTHORITY, REPLAY_SIGNATURE):
written afresh on every replay, never copied from a letter."""

REPLAYED_FROM: Final = "x-replayed-from"
"""Written by the replay command on a re-published command: the dead letter it came from,
`topic/partition/offset`. Such a command may be decided again if it was only parked before."""

REPLAY_AUTHORITY: Final = "x-replay-authority"
"""Written by the replay command: `{"claims": <authority or null>, "replayed_by": <operator>}`,
the authority the command was first admitted with; the operator's own grants nothing."""

REPLAY_SIGNATURE: Final = "x-replay-signature"
"""Written by the replay command: `<key id>:<hex HMAC>` binding the replay headers to this
command; the service admits a replay only when it verifies."""
