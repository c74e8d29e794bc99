"""Avro schemas (`.avsc`), the single-object codec, the log-backed registry and the catalog."""
