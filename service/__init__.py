"""Order-lifecycle command service."""
