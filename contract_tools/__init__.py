"""Tools around the wire contract in `contracts`, kept out of it because they need more than
pydantic: the command client (`client`, aiokafka), the contract kit (`conformance`,
jsonschema), the AsyncAPI builder (`asyncapi`, FastStream) and `generate`, which writes the JSON
Schemas and AsyncAPI document into `contracts/` (`python -m contract_tools.generate`).

Import from the submodules; this package exports nothing itself, like `contracts`.
"""

__all__: list[str] = []
