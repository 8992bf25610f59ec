"""PostgreSQL's own ceiling for the rows of a signature, measured with pgbench.

Creates a fresh database, migrates it (`python -m proca_server setup`, then bench/seed.py for
an org with a key, a campaign and a page), and runs pgbench with the scripts
of bench/pgbench/ (-M prepared, like the server's asyncpg driver):

- signature.sql: supporter + contact (300-byte payload) + action in one transaction,
- signature_counters.sql: the same plus the server's counter statement (its full write set),
- signature_hot_source.sql: the same as signature.sql plus an upsert of one shared `sources`
  row per transaction (the hot-row pattern, for comparison).

With `--group N` each transaction stores N signatures of the script instead of one (the script
is repeated inside its BEGIN/COMMIT with its own random numbers): what grouping the signatures
that arrive together into one commit saves PostgreSQL.

Prints transactions per second, signatures per second and latency per script, then drops the
database.

    .venv/bin/python bench/pg_ceiling.py [--clients 16] [--duration 20] [--scripts signature,...]
        [--group 10]
"""

# A load harness: it runs psql, wrk, pgbench and the server by design, with our own arguments.
# ruff: noqa: S603, S608

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import resource  # noqa: E402

from widget_load import CpuWatch, psql, setup_and_seed, wait_quiet  # noqa: E402

SCRIPTS = ["signature", "signature_counters", "signature_hot_source"]


def grouped(script: str, n: int) -> str:
    """The script with n signatures in its one transaction: each `\\set n …` line and the
    statements between BEGIN and COMMIT repeated n times, `:n` renamed `:n0` … in each copy."""
    lines = [line for line in script.splitlines() if not line.startswith("--")]
    sets = [line for line in lines if line.startswith("\\set n ")]
    begin, commit = lines.index("BEGIN;"), lines.index("COMMIT;")
    body = "\n".join(lines[begin + 1 : commit])
    out = [line.replace("\\set n ", f"\\set n{k} ", 1) for k in range(n) for line in sets]
    out.append("BEGIN;")
    out += [re.sub(r":n\b", f":n{k}", body) for k in range(n)]
    out.append("COMMIT;")
    return "\n".join(out) + "\n"


def pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    sys.exit("pgbench not found")


def main() -> None:
    venv_python = ROOT / ".venv" / "bin" / "python"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--jobs", type=int, default=2, help="pgbench threads")
    p.add_argument("--duration", type=int, default=20)
    p.add_argument(
        "--rate", type=int, default=0, help="pgbench -R: transactions per second (0: flat out)"
    )
    p.add_argument("--scripts", default=",".join(SCRIPTS))
    p.add_argument("--group", type=int, default=1, help="signatures per transaction")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--python", default=str(venv_python) if venv_python.exists() else sys.executable)
    p.add_argument("--wait-quiet", type=float, default=60, help="see widget_load.py")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()

    dbname = f"bench_pg_{int(time.time())}_{os.getpid()}"
    admin = args.pg_url.rstrip("/") + "/postgres"
    url = args.pg_url.rstrip("/") + "/" + dbname
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PROCA_ENV": "dev",
        "FINGERPRINT_SEED": "bench",
        "LOG_LEVEL": "warning",
    }
    psql(admin, f'CREATE DATABASE "{dbname}"')
    logdir = Path(tempfile.mkdtemp(prefix="pgbench-log-"))
    results = []
    try:
        ids = setup_and_seed(args.python, env)  # setup migrates
        key = psql(url, f"SELECT id FROM public_keys WHERE org_id = {int(ids['org'])}")
        sign_key = psql(url, "SELECT id FROM public_keys WHERE private IS NOT NULL LIMIT 1")
        source = psql(
            url,
            "INSERT INTO sources (source, medium, campaign, content, location, inserted_at, "
            "updated_at) VALUES ('newsletter', 'email', 'spring', '', "
            "'https://campaign.example.org/sign', localtimestamp(0), localtimestamp(0)) "
            "RETURNING id",
        )
        variables = {
            "campaign": ids["campaign"],
            "page": ids["page"],
            "org": ids["org"],
            "key": key,
            "sign_key": sign_key,
            "source": source,
        }
        for name in [s.strip() for s in args.scripts.split(",") if s.strip()]:
            script = BENCH / "pgbench" / f"{name}.sql"
            if args.group > 1:
                name = f"{name}_x{args.group}"
                text = grouped(script.read_text(), args.group)
                script = Path(tempfile.mkdtemp(prefix="pgbench-script-")) / f"{name}.sql"
                script.write_text(text)
            before = psql(url, "SELECT count(*) FROM actions")
            cmd = [
                pgbench_binary(),
                "-n",
                "-M",
                "prepared",
                "-c",
                str(args.clients),
                "-j",
                str(args.jobs),
                "-T",
                str(args.duration),
                "-f",
                str(script),
                *(["-R", str(args.rate)] if args.rate else []),
                "-l",
                f"--log-prefix={logdir / name}",
                *[f"-D{k}={v}" for k, v in variables.items()],
                url,
            ]
            if args.wait_quiet > 0:
                wait_quiet(args.wait_quiet)
            print(f"$ {' '.join(cmd)}", file=sys.stderr, flush=True)
            watch = CpuWatch([], dbname)
            watch.begin()
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.duration + 60, check=False
            )
            cpu = watch.end()
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu["pgbench"] = round(
                (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / cpu["wall_s"], 2
            )
            if out.returncode != 0:
                raise RuntimeError(f"pgbench failed: {out.stderr}{out.stdout}")
            tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
            lat_match = re.search(r"latency average = ([\d.]+) ms", out.stdout)
            failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
            added = int(psql(url, "SELECT count(*) FROM actions")) - int(before)
            # per-transaction log: client, transaction no, latency (us; with -R from the
            # scheduled start), script, epoch, us
            latencies = sorted(
                int(line.split()[2]) / 1000
                for log_file in logdir.glob(f"{name}.*")
                for line in log_file.read_text().splitlines()
                if line.strip()
            )
            result = {
                "script": name,
                "clients": args.clients,
                "duration_s": args.duration,
                "tps": tps,
                "latency_avg_ms": float(lat_match.group(1)) if lat_match else None,
                "failed": int(failed.group(1)) if failed else 0,
                "rate": args.rate or None,
                "latency_ms": {
                    f"p{q}": round(
                        latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))], 1
                    )
                    for q in (50, 90, 99, 99.9)
                }
                if latencies
                else None,
                "actions_added": added,
                "cpu_cores": {k: cpu[k] for k in ("postgres", "pgbench", "machine")},
            }
            # signatures per second from the rows added (several per transaction with --group)
            per_s = added / args.duration
            result["signatures_per_s"] = round(per_s)
            results.append(result)
            print(
                f"{name}: {tps:.0f} tps, {per_s:.0f} signatures/s, latency avg "
                f"{result['latency_avg_ms']} ms ({result['latency_ms']}), "
                f"failed {result['failed']}, "
                f"actions added {added}, {args.clients} clients, {args.duration}s; CPU cores: "
                f"postgres {cpu['postgres']}, pgbench {cpu['pgbench']}, machine {cpu['machine']}"
                f" ({1000 * cpu['postgres'] * cpu['wall_s'] / max(added, 1):.2f} ms of "
                "PostgreSQL CPU per signature)",
                flush=True,
            )
    finally:
        if not args.keep_db:
            psql(admin, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
