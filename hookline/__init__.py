"""hookline's runtime plumbing: settings, Kafka and PostgreSQL clients, the local stack, the CLI."""

__version__ = "0.1.0"
