"""Provisioning of Postgres and a Kafka-protocol broker, shared by `make run` and the tests."""
