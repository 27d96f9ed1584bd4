"""The command client's reader: a message on an answer topic that is not an answer of the
contract fails in a way the reader skips, so it never stops answering."""

from __future__ import annotations

import pytest

from contract_tools.client import CommandClient


async def test_the_client_skips_what_is_not_an_answer_and_keeps_reading() -> None:
    client = CommandClient("unused:9092", tenant_id="t")
    for value in (b"\xff not json", b"{}", b'{"command_id": "not-a-uuid"}'):
        with pytest.raises((ValueError, KeyError)):
            client._take("purchase-orders.events", value)
