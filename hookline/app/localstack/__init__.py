"""A real Apache Kafka (KRaft, one node) and PostgreSQL started in a folder of the project's.

Used by the tests, `hookline up` and the benchmarks when no broker or database is configured.
"""
