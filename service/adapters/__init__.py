"""Infrastructure: Postgres storage, migrations, Kafka producer and topic admin, the outbox relay."""
