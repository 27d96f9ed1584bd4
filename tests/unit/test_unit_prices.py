"""A unit price's places count as written: trailing zeros and exponents included."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.orders import OrderItem


def item(price: str) -> OrderItem:
    return OrderItem.model_validate(
        {"sku": "SKU-1", "quantity": 1, "unit_price": price, "currency": "EUR"}
    )


@pytest.mark.parametrize("price", ["12.50", "12.5000", "0", "1E+2", "99999999999999.9999"])
def test_prices_within_four_places_keep_their_text(price: str) -> None:
    assert str(item(price).unit_price) == price


@pytest.mark.parametrize("price", ["12.500000000", "0E-16384", "0E-7", "0.00001", "1.00000"])
def test_more_places_as_written_are_refused_naming_the_rule(price: str) -> None:
    with pytest.raises(ValidationError) as refused:
        item(price)
    [error] = refused.value.errors()
    assert error["loc"] == ("unit_price",)
    assert error["type"] == "decimal_max_places"
    assert "no more than 4 decimal places" in error["msg"]
