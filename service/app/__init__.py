"""Use cases: parse a command at the edge, decide it in one transaction, queue its outcome."""
