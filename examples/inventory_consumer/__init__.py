"""A reference inventory consumer: how a downstream team turns inventory.movements into stock
levels exactly once. An example of the contract in use, not part of the command service.

Run it with `python -m examples.inventory_consumer run` (and `... stock SKU` to read a level).
"""
