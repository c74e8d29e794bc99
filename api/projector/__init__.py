"""The projector: deliveries, attempts and dead letters from the log into PostgreSQL."""
