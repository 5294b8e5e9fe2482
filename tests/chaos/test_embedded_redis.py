"""The embedded Redis keeps its streams through a crash (issue #14 defect 6): it is
append-only, fsynced every second, and a SIGKILLed one starts again from its AOF."""

from __future__ import annotations

import os
import signal
import time

import psutil
import redis

from shorty import embedded
from tests.e2e.processes import RedisServer


def test_a_killed_embedded_redis_comes_back_with_its_stream_and_group(tmp_path):
    server, _ = embedded.start_redis(tmp_path)
    try:
        assert server.config_get("appendonly") == {"appendonly": "yes"}
        assert server.config_get("appendfsync") == {"appendfsync": "everysec"}
        server.xadd("shorty:clicks", {"code": "abc"})
        server.xgroup_create("shorty:clicks", "ingest", id="0")
        server.xreadgroup("ingest", "worker-1", {"shorty:clicks": ">"})  # one pending
        time.sleep(1.5)  # one fsync, the most a crash may lose
        pid = server.info("server")["process_id"]
        os.kill(pid, signal.SIGKILL)  # no save at shutdown: only the AOF has it
        psutil.Process(pid).wait(10) if psutil.pid_exists(pid) else None
    finally:
        server.connection_pool.disconnect()
    again, _ = embedded.start_redis(tmp_path)  # not attached to the dead one's socket
    try:
        assert again.info("server")["process_id"] != pid
        assert again.xlen("shorty:clicks") == 1
        (group,) = again.xinfo_groups("shorty:clicks")
        assert (group["name"], group["pending"]) == (b"ingest", 1)
    finally:
        again._cleanup()


def test_a_folder_with_only_a_snapshot_keeps_its_data_and_becomes_append_only(tmp_path):
    before = RedisServer(tmp_path / "old")  # what an older shorty dev left: a snapshot
    before.start()
    client = redis.Redis.from_url(before.url)
    client.set("shorty:kept", "1")
    client.close()
    before.stop()  # saves dump.rdb
    (tmp_path / "old" / "dump.rdb").rename(tmp_path / "redis.rdb")
    assert not (tmp_path / embedded.AOF_FILE).exists()
    server, _ = embedded.start_redis(tmp_path)
    try:
        assert server.get("shorty:kept") == b"1"  # started append-only, it would be empty
        assert server.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        server._cleanup()
    assert (tmp_path / embedded.AOF_FILE).exists()
