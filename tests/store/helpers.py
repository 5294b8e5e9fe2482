"""Helpers the store tests share."""

import asyncio

import asyncpg

from shorty.store.links import LinkStore


def with_store(url, action, **store_args):
    """Run ``action(LinkStore(pool, **store_args))`` on a small pool; its result."""

    async def go():
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            return await action(LinkStore(pool, **store_args))
        finally:
            await pool.close()

    return asyncio.run(go())
