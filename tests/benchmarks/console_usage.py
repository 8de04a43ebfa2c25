"""The console's usage page at an organisation's size, on PostgreSQL. A benchmark, not a
timed test:

    python -m tests.benchmarks.console_usage [--consumers 200] [--deployments 10] [--days 365]

Starts a PostgreSQL server of its own (as the tests do), migrates it, and loads a year of
hourly ledger rows for every consumer x deployment (dense: a row for every hour, 17.5
million rows at the defaults), and the day rollup from them with the migration's own
backfill statement. Then it starts `model-gateway serve` on that database with those
consumers (each with quotas, so that the page's quota section reads all of them) and
deployments, signs in to the console, and times the usage page over HTTP: the last whole
month by day (stacked by deployment, and by consumer), the year by month, and the CSV.
Each is fetched once to warm up, then --repeat times; the median and the slowest are
printed."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from sqlalchemy import text

from gateway.config import DatabaseConfig
from gateway.database.engine import make_engine
from gateway.database.migrate import prepare
from policies.auth import hash_key
from tests.conftest import PostgresServer, free_port

ADMIN_KEY = "bench-admin-key"


async def load(url: str, consumers: int, deployments: int, days: int) -> tuple[int, float]:
    """The hourly rows (one statement a month, generated in the server) and the day
    rollup; the rows loaded and the seconds it took."""
    engine = make_engine(DatabaseConfig(url=url, password_env="PG_TEST_PASSWORD"))
    started = time.monotonic()
    try:
        await prepare(engine, migrate=True)
        end = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
        start = end - datetime.timedelta(days=days)
        chunk = start
        while chunk < end:
            upto = min(end, chunk + datetime.timedelta(days=31))
            async with engine.begin() as c:
                # Figures that vary by consumer, deployment and hour, deterministically.
                await c.execute(text(
                    "INSERT INTO usage (consumer, deployment, hour, requests, errors, prompt_tokens,"
                    " cached_tokens, completion_tokens, reasoning_tokens, cost_micros) "
                    "SELECT 'team-' || lpad(c::text, 3, '0'), 'model-' || lpad(d::text, 2, '0'), ts,"
                    " 1 + (c * 7 + d * 13 + h) % 40, (c + h) % 3, 200 + (c * 31 + d * 17 + h) % 5000,"
                    " (c + d + h) % 100, 50 + (c * 11 + d * 5 + h) % 900, 0,"
                    " 100 + (c * 101 + d * 37 + h) % 20000 "
                    "FROM generate_series(1, :consumers) c, generate_series(1, :deployments) d,"
                    " generate_series(CAST(:start AS timestamptz), CAST(:upto AS timestamptz) - "
                    "interval '1 hour', interval '1 hour') ts,"
                    " LATERAL (SELECT CAST(extract(epoch FROM ts) / 3600 AS bigint) AS h) hours"),
                    {"consumers": consumers, "deployments": deployments, "start": chunk, "upto": upto})
            chunk = upto
            print(f"  hourly rows to {upto:%Y-%m-%d}: {time.monotonic() - started:.0f} s", flush=True)
        backfill = importlib.import_module("gateway.database.migrations.versions.0003_usage_rollups")
        async with engine.begin() as c:
            await c.execute(text(backfill.backfill("postgresql")))
        async with engine.connect() as c:
            await c.execution_options(isolation_level="AUTOCOMMIT")
            await c.execute(text("VACUUM ANALYZE usage"))
            await c.execute(text("VACUUM ANALYZE usage_days"))
            rows = int((await c.execute(text("SELECT count(*) FROM usage"))).scalar_one())
            day_rows = int((await c.execute(text("SELECT count(*) FROM usage_days"))).scalar_one())
        print(f"  loaded {rows:,} hourly rows and {day_rows:,} day rows in "
              f"{time.monotonic() - started:.0f} s", flush=True)
        return rows, time.monotonic() - started
    finally:
        await engine.dispose()


def gateway_config(port: int, consumers: int, deployments: int) -> dict[str, Any]:
    pricing = {"currency": "USD", "input_per_million": 2.5, "output_per_million": 10.0}
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "admin": {"api_keys": {"ops": hash_key(ADMIN_KEY)}},
        "consumers": [{"name": f"team-{c:03d}", "api_keys": [hash_key(f"key-{c}")],
                       "deployments": ["*"],
                       "quotas": {"tokens_per_day": 10_000_000, "cost_per_month": 5000}}
                      for c in range(1, consumers + 1)],
        "deployments": [{"name": f"model-{d:02d}", "model": "m", "pricing": pricing, "backends": [
            {"url": "http://127.0.0.1:9/v1", "api": "openai"}]} for d in range(1, deployments + 1)],
    }


def signed_in(url: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(url + "/ui/login", timeout=60).read().decode()
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({"key": ADMIN_KEY, "csrf": token}).encode()
    opener.open(urllib.request.Request(url + "/ui/login", data=form,
                                       headers={"Sec-Fetch-Site": "same-origin"}), timeout=60).read()
    return opener


def timed(opener: urllib.request.OpenerDirector, url: str, repeat: int) -> tuple[float, float, int]:
    opener.open(url, timeout=120).read()  # warm-up: the first page loads the templates
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        with opener.open(url, timeout=120) as answer:
            size = len(answer.read())
            assert answer.status == 200
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consumers", type=int, default=200)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    server = PostgresServer()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        os.environ["PG_TEST_PASSWORD"] = PostgresServer.PASSWORD
        url = asyncio.run(server.create_database("console_bench"))
        print(f"loading {args.consumers} consumers x {args.deployments} deployments x "
              f"{args.days} days of hours into PostgreSQL", flush=True)
        rows, _ = asyncio.run(load(url, args.consumers, args.deployments, args.days))
        folder = Path(tempfile.mkdtemp(prefix="console-bench-"))
        port = free_port()
        path = folder / "gw.json"
        config = gateway_config(port, args.consumers, args.deployments)
        config["ledger"] = {"spool_dir": str(folder / "spool")}
        path.write_text(json.dumps(config))
        env = {**os.environ, "MODEL_GATEWAY_DATABASE__URL": url,
               "MODEL_GATEWAY_DATABASE__PASSWORD_ENV": "PG_TEST_PASSWORD"}
        procs.append(subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(path)],
                                      env=env, stdout=subprocess.DEVNULL,
                                      stderr=(folder / "gw.log").open("w")))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/readyz", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.2)
        opener = signed_in(base)
        today = datetime.datetime.now(datetime.UTC).date()
        last_month = (today.replace(day=1) - datetime.timedelta(days=1)).strftime("%Y-%m")
        first_month = (today - datetime.timedelta(days=args.days - 31)).strftime("%Y-%m")
        cases = {
            f"month {last_month} by day, stacked by deployment":
                f"/ui/usage?from={last_month}&to={last_month}&by=day&stack=deployment",
            f"month {last_month} by day, stacked by consumer":
                f"/ui/usage?from={last_month}&to={last_month}&by=day&stack=consumer",
            f"month {last_month}, one consumer":
                f"/ui/usage?from={last_month}&to={last_month}&consumer=team-007",
            f"year {first_month} to {today:%Y-%m} by month":
                f"/ui/usage?from={first_month}&to={today:%Y-%m}&by=month",
            f"CSV of month {last_month} by consumer":
                f"/ui/usage.csv?from={last_month}&to={last_month}&by=day&stack=consumer",
        }
        print(f"\n{rows:,} hourly rows; the usage page over HTTP, {args.repeat} runs after a warm-up:")
        for name, path_ in cases.items():
            median, slowest, size = timed(opener, base + path_, args.repeat)
            print(f"  {name:55s} median {median * 1000:6.0f} ms, slowest {slowest * 1000:6.0f} ms"
                  f" ({size / 1024:.0f} KiB)")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        server.remove()


if __name__ == "__main__":
    main()
