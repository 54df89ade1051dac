"""What ``--durability`` costs: enqueue and fetch+ack with and without WAIT/WAITAOF.

``python -m tests.bench durability [--jobs=N]`` (run only when named). Starts a primary and a
replica of its own (both ``appendonly yes``, ``appendfsync everysec`` so WAITAOF has real work),
then per setting prints single enqueues per second (one round trip each, as a web request would
enqueue) and fetch + ack_many throughput at batch 100. ``aof`` needs Redis >= 7.2 (skipped with
the reason otherwise), so the settings run a second time on ``bin/valkey-server`` (``scripts/dev
setup``) when it is there. Figures, not assertions; the replica runs on the same machine, so the
replication lag measured is a loopback's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import redis

from steadfetch.chaos.env.binaries import ComponentMissing, valkey_server_binary
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Fetcher, Keys, Producer, RedisConnection
from steadfetch.fetcher.durability import Durability, parse_durability

SETTINGS = ("none", "replicas=1,timeout=1s", "aof,timeout=1s", "aof,replicas=1,timeout=1s")
FLAGS = ["--appendfsync", "everysec", "--repl-diskless-sync-delay", "0"]


async def _measure(url: str, durability: Durability | None, jobs: int) -> tuple[float, float]:
    """(single enqueues per second, fetch+ack jobs per second at batch 100)."""
    conn = RedisConnection.from_url(url, durability=durability)
    try:
        producer = Producer(conn)
        started = time.perf_counter()
        for n in range(jobs):
            await producer.enqueue("bench", n)
        enqueue_rate = jobs / (time.perf_counter() - started)
        fetcher = Fetcher(conn, "bench-durability", ["default"], block_timeout=0.1)
        done, started = 0, time.perf_counter()
        while done < jobs:
            taken = await fetcher.fetch(100)
            await fetcher.ack_many(taken)
            done += len(taken)
        return enqueue_rate, jobs / (time.perf_counter() - started)
    finally:
        await conn.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_durability")
    parser.add_argument("--jobs", type=int, default=5_000, help="jobs per setting")
    args, _ = parser.parse_known_args([a for a in argv if a.startswith("--")])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"durability cost, {args.jobs} jobs per setting, load {load}")
    servers: list[str | None] = [None]  # the redis-server found as usual
    try:
        servers.append(valkey_server_binary())
    except ComponentMissing as exc:
        print(f"  (no second run on valkey: {exc})")
    for binary in servers:
        _bench_on(binary, args.jobs)


def _bench_on(binary: str | None, jobs: int) -> None:
    """Every setting against a primary and a replica of ``binary`` (None: redis-server)."""
    with RedisServer(appendonly=True, extra_args=FLAGS, binary=binary) as primary:
        replica_args = [*FLAGS, "--replicaof", "127.0.0.1", str(primary.port)]
        with RedisServer(appendonly=True, extra_args=replica_args, binary=binary):
            admin = redis.Redis(port=primary.port)
            while admin.info("replication").get("slave0", {}).get("state") != "online":
                time.sleep(0.05)
            info = admin.info("server")
            version = info["redis_version"]
            name = f"{info.get('server_name', 'redis')} {info.get('valkey_version', version)}"
            print(f" {name}:")
            for setting in SETTINGS:
                durability = None if setting == "none" else parse_durability(setting)
                if durability is not None and durability.aof and _older(version, (7, 2)):
                    print(f"  {setting:<28} skipped: WAITAOF needs Redis >= 7.2")
                    continue
                admin.delete(*Keys().queue_keys(["default"]))
                enqueue_rate, fetch_rate = asyncio.run(_measure(primary.url, durability, jobs))
                print(
                    f"  {setting:<28} enqueue {enqueue_rate:>8,.0f}/s   "
                    f"fetch+ack (batch 100) {fetch_rate:>9,.0f} jobs/s",
                    flush=True,
                )
            admin.close()


def _older(version: str, than: tuple[int, int]) -> bool:
    major, minor = (int(x) for x in version.split(".")[:2])
    return (major, minor) < than


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
