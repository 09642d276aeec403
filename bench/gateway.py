"""What the gateway adds: latency and throughput through it against straight to the service.

One run starts its own PostgreSQL and NATS, migrates the registry's database, and serves the
registry and the gateway with uvicorn in child processes (`pinpoint serve`). It measures, for a
read (`GET /v1/households/{id}`) and a write (`POST /v1/households`):

- latency: single requests one after another (median, p95, p99);
- throughput: requests/s from `--concurrency` clients;

each through the gateway (a bearer token: verified, rate-limited, forwarded with a freshly
signed internal identity) and, as the baseline of the same run, straight to the registry with
a minted internal token. The two paths alternate in rounds, so drift on a noisy machine falls
on both alike. Figures are printed as ratios gateway / direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.support import Served, delays_ms, local_servers, serve
from services.gateway.settings import DEV_SIGNING_KEY, GatewaySettings
from services.gateway.tokens import load_signing_key, sign_token
from services.registry.migrations import SCRIPT_LOCATION
from shared.auth import IDENTITY_HEADER, Caller, Role, mint_internal_token
from shared.migrations import upgrade
from shared.settings import DEV_INTERNAL_KEY

CALLER = Caller(subject="bench@2401", role=Role.district_officer, area="2401")
HOUSEHOLD = {
    "area_code": "240101",
    "address": "99 หมู่ 1 ตำบลหน้าเมือง",
    "survey_year": 2566,
    "failed_indicators": ["2560-04", "2560-20"],
}


async def _wait_answering(client: httpx.AsyncClient, path: str) -> None:
    for _ in range(200):
        if (await client.get(path)).status_code == 200:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{client.base_url} never became ready")


Call = Callable[[httpx.AsyncClient, int], Awaitable[None]]


async def read(client: httpx.AsyncClient, index: int, households: list[str]) -> None:
    response = await client.get(f"/v1/households/{households[index % len(households)]}")
    if response.status_code != 200:
        raise RuntimeError(f"read failed: {response.status_code} {response.text}")


async def write(client: httpx.AsyncClient, index: int) -> None:
    response = await client.post("/v1/households", json=HOUSEHOLD)
    if response.status_code != 201:
        raise RuntimeError(f"write failed: {response.status_code} {response.text}")


async def latencies(client: httpx.AsyncClient, call: Call, count: int) -> list[float]:
    samples = []
    for index in range(count):
        started = time.perf_counter()
        await call(client, index)
        samples.append(time.perf_counter() - started)
    return samples


async def throughput(client: httpx.AsyncClient, call: Call, count: int, concurrency: int) -> float:
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await call(client, index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def compare(
    clients: dict[str, httpx.AsyncClient],
    call: Call,
    args: argparse.Namespace,
    served: dict[str, Served],
) -> dict[str, Any]:
    """Latency and throughput of one call on both paths, alternating in rounds; and the CPU
    each served process spends per request on each path (steady whatever else runs here)."""
    samples: dict[str, list[float]] = {name: [] for name in clients}
    rates: dict[str, list[float]] = {name: [] for name in clients}
    cpu: dict[str, dict[str, float]] = {name: dict.fromkeys(served, 0.0) for name in clients}
    per_round = args.requests // args.rounds
    for _ in range(args.rounds):
        for name, client in clients.items():
            before = {process: s.cpu_seconds() for process, s in served.items()}
            samples[name] += await latencies(client, call, per_round)
            rates[name].append(await throughput(client, call, per_round, args.concurrency))
            for process, s in served.items():
                cpu[name][process] += s.cpu_seconds() - before[process]
    latency = {name: delays_ms(s, 0.95, 0.99) for name, s in samples.items()}
    per_second = {name: round(statistics.median(r)) for name, r in rates.items()}
    requests = 2 * per_round * args.rounds
    cpu_ms = {
        name: {process: round(seconds * 1000 / requests, 3) for process, seconds in used.items()}
        for name, used in cpu.items()
    }
    return {
        "latency": latency,
        "requests_per_s": per_second,
        "cpu_ms_per_request": cpu_ms,
        "median_ratio": round(latency["gateway"]["median_ms"] / latency["direct"]["median_ms"], 2),
        "p99_ratio": round(latency["gateway"]["p99_ms"] / latency["direct"]["p99_ms"], 2),
        "throughput_ratio": round(per_second["gateway"] / per_second["direct"], 2),
        "cpu_ratio": round(sum(cpu["gateway"].values()) / sum(cpu["direct"].values()), 2),
    }


async def main(args: argparse.Namespace) -> None:
    with local_servers() as (root, postgres, broker):
        running: list[Served] = []
        try:
            database_url = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/registry"
            await asyncio.to_thread(upgrade, SCRIPT_LOCATION, database_url)
            registry = serve(
                "registry",
                {
                    "PINPOINT_DATABASE_URL": database_url,
                    "PINPOINT_NATS_URL": broker.url,
                    "PINPOINT_CONSUMER_ENABLED": "false",
                },
                root / "registry.log",
            )
            running.append(registry)
            gateway = serve(
                "gateway",
                {
                    "PINPOINT_REGISTRY_URL": registry.url,
                    # The bench measures forwarding, not the limit: let every request through.
                    "PINPOINT_RATE_LIMIT_PER_SECOND": "1000000",
                    "PINPOINT_RATE_LIMIT_BURST": "1000000",
                },
                root / "gateway.log",
            )
            running.append(gateway)
            settings = GatewaySettings()
            bearer = sign_token(
                load_signing_key(DEV_SIGNING_KEY),
                CALLER,
                issuer=settings.issuer,
                audience=settings.audience,
                ttl_seconds=3600,
            )
            limits = httpx.Limits(
                max_connections=args.concurrency, max_keepalive_connections=args.concurrency
            )
            direct_headers = {
                IDENTITY_HEADER: mint_internal_token(CALLER, DEV_INTERNAL_KEY, ttl_seconds=3600)
            }
            async with (
                httpx.AsyncClient(
                    base_url=registry.url, headers=direct_headers, limits=limits, timeout=30
                ) as direct,
                httpx.AsyncClient(
                    base_url=gateway.url,
                    headers={"Authorization": f"Bearer {bearer}"},
                    limits=limits,
                    timeout=30,
                ) as through,
            ):
                await _wait_answering(direct, "/readyz")
                # Only the registry is behind this gateway: its readiness would wait for all three.
                await _wait_answering(through, "/healthz")
                households = []
                for _ in range(args.households):
                    created = await direct.post("/v1/households", json=HOUSEHOLD)
                    households.append(created.json()["id"])
                clients = {"direct": direct, "gateway": through}
                processes = {"registry": registry, "gateway": gateway}

                async def read_one(client: httpx.AsyncClient, index: int) -> None:
                    await read(client, index, households)

                for client in clients.values():  # warm both paths: pools, caches, JIT-free Python
                    await throughput(client, read_one, 200, args.concurrency)
                results = {
                    "read GET /v1/households/{id}": await compare(
                        clients, read_one, args, processes
                    ),
                    "write POST /v1/households": await compare(clients, write, args, processes),
                }
            print(
                json.dumps(
                    {
                        "requests_per_path_and_measure": args.requests,
                        "concurrency": args.concurrency,
                        **results,
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
        finally:
            for served in running:
                served.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per path, measure and call")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the two paths")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--households", type=int, default=500, help="households to read")
    asyncio.run(main(parser.parse_args()))
