"""Sources and sinks: replay files, ClickHouse, Kafka, PostgreSQL, Alpaca, the paper broker."""
