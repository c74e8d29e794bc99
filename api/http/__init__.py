"""The admin HTTP API (aiohttp): subscriptions, history, jobs, event types."""
