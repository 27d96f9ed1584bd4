-- A unit price keeps the scale its sender gave it ("12.50" stays "12.50", not "12.5000"), so an
-- order reads back exactly as it was decided, and its events say the same whether the order
-- was loaded from this table or still in memory. The contract allows at most four decimals.
ALTER TABLE order_items ALTER COLUMN unit_price TYPE numeric;
ALTER TABLE order_items ADD CONSTRAINT order_items_unit_price_scale
    CHECK (scale(unit_price) <= 4 AND unit_price < 1e14);
