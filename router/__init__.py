"""The router: events joined with the subscriptions table, one delivery command per match.

Consume-transform-produce in Kafka transactions: the commands of a batch and the offsets of
the events they came from commit together, so every command is emitted exactly once.
"""
