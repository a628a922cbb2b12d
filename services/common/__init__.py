"""What all four services share: settings, logging, database pool and migrations, the
Kafka broker factory and topic administration. Imported, never copied."""
