"""What counts as "PostgreSQL is unavailable" (as opposed to a bug in a query)."""

from __future__ import annotations

import asyncpg

# Connection refused or lost, the server shutting down or refusing connections,
# too many clients, a query cancelled by its timeout.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionFailureError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.ObjectInUseError,
)
