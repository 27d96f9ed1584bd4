"""A state board: every live purchase order and customer order, as the compacted state topics
and the events topics tell it. An example of the contract in use (it imports `contracts` only),
not part of the command service.

    python -m examples.state_board run [--tenant demo]

It reads the state topics (`purchase-orders.state`, `orders.state`) to their ends as they are
when it starts, so it knows every live document without replaying history, then follows the
events topics (and the state topics) from there, printing each change.

The consistency rule it keeps, per document (key `<tenant_id>/<document id>`):

- An entry at version v is exactly the document after its v-th change: a state message
  carries the whole document, and so do `created` and `updated` events; a status change (or a
  scheduled redaction, which changes nothing shown) is applied only to version v-1, so that
  nothing between is missed. Other events (a receipt, an invoice, shipping details) the board
  does not re-derive: the document waits at its version (`behind`) until its state arrives,
  which the service publishes right after each event.
- A record of a version the board already holds or passed is skipped, whichever topic it
  comes from: events and states travel on different topics and partitions, so either may
  arrive first, and the relay may publish a record twice after a broker fault.
- A tombstone (a null value on a state topic), a `deleted` event or an `order.redacted` event
  removes the document for good: the service never shows a deleted document, nor an order any
  of whose personal data was erased, again, and no older record brings it back.
- Across documents nothing is ordered: the board is eventually consistent, each document on
  its own.

Events appended before the board started are not read again: it records the events topics'
ends before reading the state topics, whose states reflect everything up to them.
"""
