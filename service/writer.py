"""Where validated rows go to be committed.

`write()` returns only once the row is durably committed: the 200 the client gets is a
promise that the session is stored.
"""

from __future__ import annotations

from service.errors import InvalidSchema
from service.session_row import SessionRow
from service.store import RowRejected, SessionStore


class DirectWriter:
    """One transaction per session."""

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    async def write(self, row: SessionRow) -> None:
        try:
            await self._store.upsert([row])
        except RowRejected as err:
            raise InvalidSchema(f"body: rejected by the database ({err})") from err
