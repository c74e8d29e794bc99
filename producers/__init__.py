"""The library services publish domain events with, and the PostgreSQL transactional outbox.

`Publisher` (blocking) and `AsyncPublisher` (asyncio) validate an event against its type's
schema and return once Kafka acknowledged it; `write_outbox` + `OutboxRelay` publish events
written in a service's own PostgreSQL transaction.
"""
