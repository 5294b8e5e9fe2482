"""What counts as "PostgreSQL is unavailable" (as opposed to a bug in a query)."""

from __future__ import annotations

import asyncpg

from shorty.resilience.breaker import BreakerOpen

# Every driver-level failure: connection refused, lost or dropped in the middle of a
# query (PostgresConnectionError: ConnectionDoesNotExistError, ConnectionFailureError),
# the client's own state broken by it (InterfaceError, InternalClientError), a wait
# past its deadline (TimeoutError: store/db.py), the server shutting down or refusing
# connections, too many clients. A query the server refuses for what it says (a
# constraint, a syntax error) is a bug or a domain error, not this. ``BreakerOpen``:
# the PostgreSQL breaker refused the call without asking (store/db.py).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    BreakerOpen,
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
