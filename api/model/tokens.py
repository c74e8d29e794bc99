"""API tokens by id, read from the compacted `hookline.tokens` topic (every API process's
view of them).

A `CompactedTable` like the jobs table: read to the end offsets taken at start before ready,
then follow live, so a token created or revoked through one API process reaches every other
one as fast as the table follows (milliseconds: the reader's poll returns at the first record).
Every reader applies `stays_revoked`, under which a revoked token stays revoked.
Authentication finds a token by its hash through an index derived from each snapshot, so it
always agrees with the rows themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.records import ApiToken
from core.tokens import stays_revoked
from hookline.runtime.settings import Settings
from hookline.runtime.table import CompactedTable
from schemas.records_avro import RecordCodec

TokenKey = tuple[str, str]
"""A token's place in its tenant's list: creation time (ISO text) and id, oldest first."""


def token_key(token: ApiToken) -> TokenKey:
    return (token.created_at.isoformat(), token.id)


def page_of_tokens(
    tokens: Iterable[ApiToken], *, tenant: str, limit: int, after: TokenKey | None
) -> tuple[list[ApiToken], TokenKey | None]:
    """The tenant's tokens not revoked, oldest first, after `after`; and the key to continue
    from (None: this is the last page)."""
    rows = sorted(
        (
            token
            for token in tokens
            if token.tenant == tenant
            and token.revoked_at is None
            and (after is None or token_key(token) > after)
        ),
        key=token_key,
    )
    page = rows[:limit]
    return page, (token_key(page[-1]) if len(rows) > limit else None)


@dataclass(frozen=True, slots=True)
class _HashIndex:
    rows: Mapping[str, ApiToken]
    by_hash: dict[str, ApiToken]


def _index(rows: Mapping[str, ApiToken]) -> _HashIndex:
    by_hash: dict[str, ApiToken] = {}
    for token in rows.values():
        seen = by_hash.get(token.token_hash)
        # two ids with one hash (never written by the API): a revoked one decides
        if seen is None or token.revoked_at is not None:
            by_hash[token.token_hash] = token
    return _HashIndex(rows, by_hash)


class TokenTable(CompactedTable[ApiToken]):
    def __init__(self, settings: Settings, codec: RecordCodec, *, client_id: str) -> None:
        super().__init__(
            settings,
            settings.topic("tokens"),
            client_id=client_id,
            decode=codec.decode_token,
            latest=stays_revoked,
        )
        self._by_hash = _index({})

    def find(self, token_hash: str) -> ApiToken | None:
        """The token whose SHA-256 is `token_hash`, as of the current snapshot."""
        rows = self.snapshot()
        index = self._by_hash
        if index.rows is not rows:  # the snapshot is swapped whole on every change
            index = self._by_hash = _index(rows)
        return index.by_hash.get(token_hash)

    def wait_for(self, token: ApiToken, *, timeout_s: float) -> bool:
        """Wait until the table holds `token` as written (a revoke: revoked)."""

        def holds(rows: Mapping[str, ApiToken]) -> bool:
            row = rows.get(token.id)
            if row is None:
                return False
            return token.revoked_at is None or row.revoked_at is not None

        return self.wait_until(holds, timeout_s=timeout_s)
