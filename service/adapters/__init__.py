"""Infrastructure: Postgres storage and migrations, Kafka producer and topics, the outbox relay."""
