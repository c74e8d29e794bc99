"""Errors of the runtime plumbing, split by what the caller should do.

HooklineError
 ├── SettingsError        a setting is missing or malformed: stop start-up with its one line
 ├── LocalStackError      the local Kafka or PostgreSQL could not be installed or started
 ├── TopicError           a topic is missing or has the wrong policy and cannot be fixed here
 └── TableError           a table of a compacted topic cannot be read (its topic is missing, its
                          reader stopped): the service that keeps the table stops with it
"""

from __future__ import annotations


class HooklineError(Exception):
    """Root of the runtime errors; its message is one line fit to show a user."""


class SettingsError(HooklineError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class LocalStackError(HooklineError):
    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"local {component}: {reason}")
        self.component = component
        self.reason = reason


class TopicError(HooklineError):
    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"topic {topic}: {reason}")
        self.topic = topic
        self.reason = reason


class TableError(HooklineError):
    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"table of {topic}: {reason}")
        self.topic = topic
        self.reason = reason
