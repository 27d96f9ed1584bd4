"""The wire contract of the order-lifecycle service: every message it reads or writes, the
topics they travel on and the Kafka headers beside them.

Import from the submodules; this package exports nothing itself:

    from contracts import orders, purchase_orders
    from contracts.headers import AUTHORIZATION, TRACEPARENT
    from contracts.topics import DocumentTopics

- `contracts.purchase_orders`, `contracts.orders`: each family's commands and events (and the
  unions and TypeAdapters that read any of them: PURCHASE_ORDER_COMMAND, ORDER_EVENT, ...), its
  rejection and payload models;
- `contracts.inventory`: inventory movements; `contracts.previews`: dry-run previews;
- `contracts.state`: each document's current state on the compacted `.state` topics;
- `contracts.replies`: the reply to a command that asked for one (`reply_to`);
- `contracts.readers`: tolerant readers, for messages a later contract version wrote;
- `contracts.common`: what every message shares (actors, error details);
- `contracts.topics`: topic names; `contracts.headers`: header names.

Why nothing here: the two families name dozens of models each, so one flat namespace would be
long and easy to let drift from the modules, and importing it would build every model even for
a reader of topic or header names only (those modules need nothing but the standard library).

Depends on pydantic (with its `email` extra: e-mail addresses are read by its rules),
pydantic-extra-types (country and currency codes, from pycountry) and the standard library
only. The JSON Schemas and the AsyncAPI document checked in here are written by the service
repository's `make contracts`; the command client and the contract kit are in
`contract_tools`, in the same distribution.
"""

__all__: list[str] = []

__version__ = "0.2.0"
"""The contract's version (and the distribution's): a minor version only adds what readers of
the previous one tolerate; see contract_tools.compatibility.breaking_changes."""
