"""What counts as "PostgreSQL is unavailable" (as opposed to a bug in a query)."""

from __future__ import annotations

import asyncpg

# Every driver-level failure: connection refused, lost or dropped in the middle of a
# query (PostgresConnectionError: ConnectionDoesNotExistError, ConnectionFailureError),
# the client's own state broken by it (InterfaceError, InternalClientError), a wait
# past its deadline (TimeoutError: store/db.py), the server shutting down or refusing
# connections, too many clients. A query the server refuses for what it says (a
# constraint, a syntax error) is a bug or a domain error, not this.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.ObjectInUseError,
)
