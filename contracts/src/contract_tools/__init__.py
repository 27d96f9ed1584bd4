"""Tools around the wire contract in `contracts`, kept out of it because they need more than
pydantic: the command client (`client`, the `client` extra: aiokafka) and the contract kit
(`conformance`, the `kit` extra: jsonschema).

Import from the submodules; this package exports nothing itself, like `contracts`.
"""

__all__: list[str] = []
