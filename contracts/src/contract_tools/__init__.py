"""Tools around the wire contract in `contracts`, kept out of it because they need more than
pydantic: the command client (`client`, the `client` extra: aiokafka), the contract kit
(`conformance`, the `kit` extra: jsonschema) and the compatibility check between two versions of
the contract (`compatibility`, pure Python).

Import from the submodules; this package exports nothing itself, like `contracts`.
"""

__all__: list[str] = []
