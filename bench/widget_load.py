"""Load test of the widget's calls against the server as a deployment runs it.

For each --workers value: a fresh PostgreSQL database, `proca_server setup`, a seeded org (with
an active key, so contacts are really encrypted), campaign and page, `proca_server serve
--workers N`; then, with wrk and the Lua scripts in bench/wrk/:

1. warm-up (a few seconds of signatures),
2. sustained addActionContact: --duration seconds at --connections, as fast as they go, then
   paced at each --paced-rate (total signatures per second from the same connections),
3. burst: exactly --burst-requests signatures at --burst-connections,
4. the counter query over GET: --get-duration seconds at --get-connections,
5. optionally (--profile DIR) a further sustained run with py-spy recording one worker,

then compares the database (actions, supporters, contacts) with the 2xx answers, stops the
server, reads PostgreSQL's per-database statistics and drops the database. Reports numbers;
decides nothing. Every step has a time limit.

The server runs with the environment of this program, over which the benchmark's own settings
win (DATABASE_URL, PROCA_ENV=dev, LOG_LEVEL, ACCESS_LOG, ...). Its log goes to a file in the
run's log directory. By default it logs at WARNING with no access log (ACCESS_LOG=false);
--access-log turns uvicorn's line per request on (ACCESS_LOG=true) and, unless --log-level
says otherwise, logs at INFO, where those lines are written (the server's defaults, as an
operator who sets neither runs it). To measure the access log alone:
`--access-log` against `--no-access-log --log-level info`.

    .venv/bin/python bench/widget_load.py --workers 2,3,4 --duration 30
"""

# A load harness: it runs psql, wrk, pgbench and the server by design, with our own arguments.
# ruff: noqa: S603, S607, S608

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WRK_ADD = BENCH / "wrk" / "add_action_contact.lua"
WRK_GET = BENCH / "wrk" / "get_count.lua"
WRK_STATIC = BENCH / "wrk" / "static.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- PostgreSQL -------------------------------------------------------------------------


def psql(url: str, sql: str, timeout: float = 60) -> str:
    out = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def db_counts(url: str) -> dict[str, int]:
    row = psql(
        url,
        "SELECT (SELECT count(*) FROM actions), (SELECT count(*) FROM supporters), "
        "(SELECT count(*) FROM contacts), "
        "(SELECT count(*) FROM contacts WHERE crypto_nonce IS NOT NULL), "
        "(SELECT count(DISTINCT email) FROM supporters), "
        "(SELECT count(*) FROM sources)",
    )
    names = [
        "actions",
        "supporters",
        "contacts",
        "contacts_encrypted",
        "distinct_emails",
        "sources",
    ]
    return dict(zip(names, (int(x) for x in row.split("|")), strict=True))


STAT_COLUMNS = [
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "blks_read",
    "blks_hit",
    "deadlocks",
]


def db_stats(admin_url: str, dbname: str) -> dict[str, int]:
    row = psql(
        admin_url,
        f"SELECT {', '.join(STAT_COLUMNS)} FROM pg_stat_database WHERE datname = '{dbname}'",
    )
    return dict(zip(STAT_COLUMNS, (int(x) for x in row.split("|")), strict=True))


# --- CPU accounting -------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def cpu_by_name(names: tuple[str, ...]) -> float:
    """CPU seconds of every process whose command name starts with one of `names`."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(names):
                total += cpu_seconds(int(entry.name))
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def wait_quiet(limit: float, threshold: float = 0.3) -> float:
    """Wait (at most `limit` seconds) until the machine is nearly idle over two seconds; the
    machine is shared with other people's test runs. Returns the busy cores last seen."""
    deadline = time.monotonic() + limit
    while True:
        b0 = machine_busy_seconds()
        time.sleep(2.0)
        busy = (machine_busy_seconds() - b0) / 2.0
        if busy <= threshold or time.monotonic() >= deadline:
            if busy > threshold:
                log(f"  machine still busy ({busy:.2f} cores): measuring anyway")
            return busy
        log(f"  machine busy ({busy:.2f} cores): waiting")


def postgres_pids(dbname: str | None) -> list[int]:
    """PostgreSQL's processes that work for `dbname`: its backends (their process title names
    the database) and the shared auxiliary processes (WAL writer, checkpointer, ...), but not
    the backends of other databases (other people's tests share this server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        is_backend = "127.0.0.1(" in title or "[local]" in title or "::1(" in title
        if dbname is None or not is_backend or f" {dbname} " in title:
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, timeout=10
    )
    return [int(x) for x in out.stdout.split()]


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children(p))
    return tree


class CpuWatch:
    """CPU cores used by the server, PostgreSQL (for this database) and the whole machine
    over a phase.

    PostgreSQL backends come and go (the pool closes its overflow connections), so they are
    sampled every half second and each one's last reading is kept."""

    def __init__(self, server_pids: list[int], dbname: str | None = None) -> None:
        self.server_pids = server_pids
        self.dbname = dbname
        self._stop = threading.Event()
        self._pg_first: dict[int, float] = {}
        self._pg_last: dict[int, float] = {}
        self._thread: threading.Thread | None = None

    def _sample_pg(self, first: bool) -> None:
        for pid in postgres_pids(self.dbname):
            value = cpu_seconds(pid)
            if first:
                self._pg_first[pid] = value
            self._pg_last[pid] = max(value, self._pg_last.get(pid, 0.0))

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample_pg(first=False)

    def begin(self) -> None:
        self._server0 = sum(cpu_seconds(p) for p in self.server_pids)
        self._machine0 = machine_busy_seconds()
        self._sample_pg(first=True)
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def end(self) -> dict[str, float]:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._sample_pg(first=False)
        wall = time.monotonic() - self.t0
        pg = sum(last - self._pg_first.get(pid, 0.0) for pid, last in self._pg_last.items())
        server = sum(cpu_seconds(p) for p in self.server_pids) - self._server0
        machine = machine_busy_seconds() - self._machine0
        return {
            "server": round(server / wall, 2),
            "postgres": round(pg / wall, 2),
            "machine": round(machine / wall, 2),
            "wall_s": round(wall, 2),
        }


# --- wrk ------------------------------------------------------------------------------


def run_wrk(
    script: Path,
    url: str,
    *,
    threads: int,
    connections: int,
    duration: float,
    timeout_s: float,
    env: dict[str, str],
    watch: CpuWatch | None = None,
    during: Any = None,
    quiet_limit: float = 0,
) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(duration)}s",
        f"--timeout={int(timeout_s)}s",
        "-s",
        str(script),
        url,
    ]
    if watch and quiet_limit > 0:
        wait_quiet(quiet_limit)
    log(f"  $ {' '.join(cmd)}  ({', '.join(f'{k}={v}' for k, v in env.items())})")
    if watch:
        watch.begin()
    rusage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    helper = None
    if during is not None:
        helper = threading.Thread(target=during, args=(proc.pid,), daemon=True)
        helper.start()
    err_lines: list[str] = []

    def read_stderr() -> None:
        # with a quota, each wrk thread says when its answers are in; wrk's main thread
        # sleeps for all of -d unless interrupted, so interrupt it when all are done
        done = 0
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("BENCH_THREAD_DONE"):
                done += 1
                if done == threads and proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            else:
                err_lines.append(line)

    out_chunks: list[str] = []

    def read_stdout() -> None:
        assert proc.stdout is not None
        out_chunks.append(proc.stdout.read())

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stderr, read_stdout)]
    for reader in readers:
        reader.start()
    # wrk cannot outlive its -d: allow a margin for start-up and the last answers
    try:
        proc.wait(timeout=duration + timeout_s + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError("wrk did not finish in time") from None
    for reader in readers:
        reader.join(timeout=5)
    out, err = "".join(out_chunks), "".join(err_lines)
    cpu = watch.end() if watch else None
    rusage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if helper:
        helper.join(timeout=duration + 60)
    result: dict[str, Any] | None = None
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line[len("BENCH_RESULT ") :])
    if result is None:
        raise RuntimeError(f"wrk gave no result: {out}\n{err}")
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    result["ok_rate"] = result["ok"] / (result["duration_us"] / 1e6)
    if cpu:
        wrk_cpu = (rusage1.ru_utime + rusage1.ru_stime) - (rusage0.ru_utime + rusage0.ru_stime)
        cpu["wrk"] = round(wrk_cpu / cpu["wall_s"], 2)
        # what else ran on the machine meanwhile (other people's tests spoil a run)
        cpu["other"] = round(cpu["machine"] - cpu["server"] - cpu["postgres"] - cpu["wrk"], 2)
        result["cpu_cores"] = cpu
    return result


# --- the server -----------------------------------------------------------------------


class Server:
    def __init__(self, python: str, env: dict[str, str], port: int, workers: int, logdir: Path):
        self.python, self.env, self.port, self.workers = python, env, port, workers
        self.log_path = logdir / f"server-{workers}w.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        cmd = [self.python, "-m", "proca_server", "serve", "--port", str(self.port)]
        cmd += ["--workers", str(self.workers)]
        log(f"  $ {' '.join(cmd)}")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200 and len(self.worker_pids()) >= self.workers:
                        time.sleep(1.0)  # let the other workers finish their start-up
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server did not become healthy in time")

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        if self.workers == 1:
            return [self.proc.pid]
        pids = []
        for pid in children(self.proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline or b"multiprocessing" in cmdline:
                pids.append(pid)
        # the resource tracker is also a multiprocessing child; workers are the busy ones
        return [
            p for p in pids if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
        ]

    def all_pids(self) -> list[int]:
        assert self.proc is not None
        return process_tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# --- one full run ---------------------------------------------------------------------


def setup_and_seed(python: str, env: dict[str, str]) -> dict[str, int]:
    """`proca_server setup` and bench/seed.py on the database of `env`: the seeded ids (org,
    campaign, page)."""
    for command in (["-m", "proca_server", "setup"], [str(BENCH / "seed.py")]):
        done = subprocess.run(
            [python, *command],
            cwd=ROOT,
            env=env,
            timeout=120,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-2000:]}")
    return {k: int(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def profile_worker(pid: int, seconds: int, outdir: Path, python_bin: Path) -> Any:
    py_spy = shutil.which("py-spy") or str(python_bin.parent / "py-spy")

    def record(_wrk_pid: int) -> None:
        time.sleep(2)  # past the connection ramp-up
        outdir.mkdir(parents=True, exist_ok=True)
        base = outdir / f"worker-{pid}"
        cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200"]
        cmd += ["--format", "raw", "-o", f"{base}.txt", "--nonblocking"]
        log(f"  $ {' '.join(cmd)}")
        subprocess.run(cmd, capture_output=True, timeout=seconds + 60, check=False)

    return record


def one_run(args: argparse.Namespace, workers: int, logdir: Path) -> dict[str, Any]:
    dbname = f"bench_{int(time.time())}_{os.getpid()}_{workers}w"
    admin = args.pg_url.rstrip("/") + "/postgres"
    url = args.pg_url.rstrip("/") + "/" + dbname
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PROCA_ENV": "dev",
        "FINGERPRINT_SEED": "bench",
        "LOG_LEVEL": args.log_level or ("info" if args.access_log else "warning"),
        "ACCESS_LOG": "true" if args.access_log else "false",
        # one load generator is one address: the velocity check runs on every signature,
        # with a limit this load never reaches
        "SIGNATURE_LIMIT_PER_ADDRESS": "1000000000",
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith("SIGNATURE_LIMIT_")})
    if args.pool_size:
        env["POOL_SIZE"] = str(args.pool_size)
    report: dict[str, Any] = {
        "workers": workers,
        "database": dbname,
        "log_level": env["LOG_LEVEL"],
        "access_log": args.access_log,
    }
    log(f"workers={workers}: database {dbname}")
    psql(admin, f'CREATE DATABASE "{dbname}"')
    server: Server | None = None
    stats_before: dict[str, int] = {}
    try:
        ids = setup_and_seed(args.python, env)
        page = str(ids["page"])
        server = Server(args.python, env, args.port, workers, logdir)
        server.start()
        report["worker_pids"] = server.worker_pids()
        base_url = f"http://127.0.0.1:{args.port}"
        api = f"{base_url}/api?id={page}"
        stats_before = db_stats(admin, dbname)
        ok_total = 0
        run_tag = f"r{int(time.time())}w{workers}"

        def signatures(phase: str, connections: int, duration: float, **kw: Any) -> dict[str, Any]:
            nonlocal ok_total
            before = db_counts(url)["actions"]
            env_wrk = {"BENCH_PAGE": page, "BENCH_RUN": f"{run_tag}{phase}"}
            env_wrk.update(kw.pop("extra_env", {}))
            result = run_wrk(
                WRK_ADD,
                api,
                threads=args.threads,
                connections=connections,
                duration=duration,
                env=env_wrk,
                **kw,
            )
            time.sleep(1.0)  # requests cut off by wrk's stop may still commit
            result["db_actions_added"] = db_counts(url)["actions"] - before
            ok_total += result["ok"]
            return result

        if args.warmup > 0:
            log("warm-up")
            report["warmup"] = signatures("w", args.connections, args.warmup, timeout_s=10)

        if args.duration > 0:
            log("sustained addActionContact")
            report["sustained"] = signatures(
                "s",
                args.connections,
                args.duration,
                timeout_s=10,
                watch=CpuWatch(server.all_pids(), dbname),
                quiet_limit=args.wait_quiet,
            )

        for rate in [int(r) for r in str(args.paced_rate).split(",") if r and int(r) > 0]:
            log(f"paced addActionContact: {rate}/s")
            report[f"paced_{rate}"] = signatures(
                f"r{rate}",
                args.connections,
                args.paced_duration or args.duration,
                timeout_s=10,
                extra_env={"BENCH_RATE": str(rate), "BENCH_THREADS": str(args.threads)},
                watch=CpuWatch(server.all_pids(), dbname),
                quiet_limit=args.wait_quiet,
            )

        if args.burst_requests > 0:
            log("burst addActionContact")
            quota = args.burst_requests // args.threads
            report["burst"] = signatures(
                "b",
                args.burst_connections,
                args.burst_limit,
                timeout_s=args.burst_limit,
                extra_env={"BENCH_QUOTA": str(quota)},
                watch=CpuWatch(server.all_pids(), dbname),
                quiet_limit=args.wait_quiet,
            )
            report["burst"]["expected"] = quota * args.threads

        if args.profile:
            outdir = Path(args.profile)
            outdir.mkdir(parents=True, exist_ok=True)
            pid = server.worker_pids()[0]
            seconds = max(5, int(args.profile_duration) - 4)
            log(f"profile: py-spy on worker {pid} for {seconds}s, signatures")
            report["profile"] = signatures(
                "p",
                args.connections,
                args.profile_duration,
                timeout_s=10,
                during=profile_worker(pid, seconds, outdir / "signature", Path(args.python)),
            )
            report["profile"]["py_spy_raw"] = str(outdir / "signature" / f"worker-{pid}.txt")
            connections = int(str(args.get_connections).split(",")[0])
            log(f"profile: py-spy on worker {pid} for {seconds}s, GET at {connections}")
            report["profile_get"] = run_wrk(
                WRK_GET,
                api,
                threads=args.threads,
                connections=connections,
                duration=args.profile_duration,
                timeout_s=10,
                env={"BENCH_PAGE": page},
                during=profile_worker(pid, seconds, outdir / "get_count", Path(args.python)),
            )
            report["profile_get"]["py_spy_raw"] = str(outdir / "get_count" / f"worker-{pid}.txt")

        for connections in [int(c) for c in str(args.get_connections).split(",") if c]:
            log(f"GET counter at {connections} connections")
            report[f"get_count_c{connections}"] = run_wrk(
                WRK_GET,
                api,
                threads=args.threads,
                connections=connections,
                duration=args.get_duration,
                timeout_s=10,
                env={"BENCH_PAGE": page},
                watch=CpuWatch(server.all_pids(), dbname),
                quiet_limit=args.wait_quiet,
            )

        if args.floor:
            # the HTTP stack alone: OPTIONS /api reaches a FastAPI route, no GraphQL, no database
            log("HTTP floor: OPTIONS /api")
            report["http_floor"] = run_wrk(
                WRK_STATIC,
                api,
                threads=args.threads,
                connections=args.floor_connections,
                duration=args.get_duration,
                timeout_s=10,
                env={"BENCH_METHOD": "OPTIONS", "BENCH_PATH": "/api"},
                watch=CpuWatch(server.all_pids(), dbname),
                quiet_limit=args.wait_quiet,
            )

        time.sleep(1.5)
        counts = db_counts(url)
        report["db"] = counts
        report["ok_total"] = ok_total
    finally:
        if server is not None:
            server.stop()
            # errors the clients may not have seen (e.g. answers still pending when wrk stopped)
            text = server.log_path.read_text(errors="replace")
            report["server_log"] = {
                "path": str(server.log_path),
                "error_lines": text.count(" ERROR "),
                "pool_timeouts": text.count("QueuePool limit"),
                "too_many_clients": text.count("too many clients"),
            }
        try:
            time.sleep(0.5)
            stats_after = db_stats(admin, dbname)
            if "db" in report:
                report["pg_stat_per_action"] = {
                    k: round(
                        (stats_after[k] - stats_before[k]) / max(report["db"]["actions"], 1), 2
                    )
                    for k in STAT_COLUMNS
                }
        except Exception as exc:
            report["pg_stat_error"] = str(exc)
        finally:
            if not args.keep_db:
                psql(admin, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return report


# --- output ---------------------------------------------------------------------------


def ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def describe(name: str, r: dict[str, Any]) -> list[str]:
    lat = r["latency_us"]
    sock = r["socket_errors"]
    sock_txt = ", ".join(f"{k} {v}" for k, v in sock.items() if v) or "none"
    non2xx = {k: v for k, v in r["statuses"].items() if not k.startswith("2")}
    lines = [
        f"  {name}: {r['requests']} answers in {r['duration_us'] / 1e6:.1f}s = "
        f"{r['rate']:.0f} req/s ({r['ok_rate']:.0f} ok/s)",
        f"    latency ms: p50 {ms(lat['p50'])}  p90 {ms(lat['p90'])}  p99 {ms(lat['p99'])}  "
        f"p99.9 {ms(lat['p999'])}  max {ms(lat['max'])}",
        f"    statuses {r['statuses']}  non-2xx {sum(non2xx.values())}  "
        f"GraphQL errors {r['gql_errors']}  socket errors: {sock_txt}",
    ]
    if "db_actions_added" in r:
        lines.append(
            f"    sent {r['issued']}, ok {r['ok']}, actions added in the database "
            f"{r['db_actions_added']}"
            + (f" (expected exactly {r['expected']})" if "expected" in r else "")
        )
    if "supporter_count" in r:
        lines.append(f"    last supporterCount seen: {r['supporter_count']}")
    if "cpu_cores" in r:
        c = r["cpu_cores"]
        lines.append(
            f"    CPU cores used: server {c['server']}, postgres {c['postgres']}, wrk {c['wrk']}, "
            f"machine {c['machine']} of {os.cpu_count()}, other {c['other']}"
            + ("  ** other processes were busy: figures disturbed **" if c["other"] > 0.3 else "")
        )
    for s in r.get("samples", []):
        lines.append(f"    sample: {s[:300]}")
    return lines


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"== {report['workers']} worker(s), LOG_LEVEL={report['log_level']}, "
        f"ACCESS_LOG={str(report['access_log']).lower()}"
    ]
    phases = ["sustained"] + [k for k in report if k.startswith("paced_")] + ["burst"]
    phases += [k for k in report if k.startswith("get_count")]
    for phase in [*phases, "http_floor", "profile", "profile_get"]:
        if phase in report:
            lines += describe(phase, report[phase])
    if "db" in report:
        db = report["db"]
        lines.append(
            f"  database: actions {db['actions']}, supporters {db['supporters']}, contacts "
            f"{db['contacts']} ({db['contacts_encrypted']} encrypted), distinct emails "
            f"{db['distinct_emails']}, sources {db['sources']}; ok answers in all phases "
            f"{report['ok_total']}"
        )
    if "server_log" in report:
        log_info = report["server_log"]
        lines.append(
            f"  server log: {log_info['error_lines']} ERROR lines, {log_info['pool_timeouts']} "
            f"connection-pool timeouts, {log_info['too_many_clients']} 'too many clients' "
            f"({log_info['path']})"
        )
    if "pg_stat_per_action" in report:
        p = report["pg_stat_per_action"]
        lines.append(
            "  PostgreSQL per stored action (whole run): "
            + ", ".join(f"{k} {v}" for k, v in p.items())
        )
    return "\n".join(lines)


def main() -> None:
    venv_python = ROOT / ".venv" / "bin" / "python"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", default="2", help="worker counts, comma-separated (2,3,4)")
    p.add_argument("--duration", type=float, default=30, help="sustained test seconds")
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument(
        "--paced-rate",
        default="1000",
        help="also sustain signatures at these total rates per second (comma-separated; "
        "--connections clients, --duration seconds each); 0 = skip",
    )
    p.add_argument(
        "--paced-duration",
        type=float,
        default=0,
        help="seconds of each paced phase (default: --duration; with --duration 0 the paced "
        "phases run without the flat-out phase before them)",
    )
    p.add_argument("--burst-requests", type=int, default=1000)
    p.add_argument("--burst-connections", type=int, default=500)
    p.add_argument("--burst-limit", type=float, default=120, help="seconds allowed for the burst")
    p.add_argument("--get-duration", type=float, default=15)
    p.add_argument(
        "--get-connections", default="10,100", help="comma-separated: one GET run per value"
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=60,
        help="before each measured phase wait up to this many seconds for an idle machine",
    )
    p.add_argument("--port", type=int, default=4870)
    p.add_argument("--pool-size", type=int, default=0, help="POOL_SIZE for the server")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--python", default=str(venv_python) if venv_python.exists() else sys.executable)
    p.add_argument("--profile", metavar="DIR", help="also run py-spy on one worker, raw into DIR")
    p.add_argument("--profile-duration", type=float, default=20)
    p.add_argument(
        "--floor", action="store_true", help="also measure OPTIONS /api (the HTTP stack alone)"
    )
    p.add_argument("--floor-connections", type=int, default=50)
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the server's access log, a line per request (ACCESS_LOG; default: off)",
    )
    p.add_argument(
        "--log-level",
        help="the server's LOG_LEVEL (default: info with --access-log, else warning)",
    )
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--json", metavar="FILE", help="write all figures as JSON")
    args = p.parse_args()

    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    if not port_free(args.port):
        sys.exit(f"port {args.port} is in use")
    logdir = Path(tempfile.mkdtemp(prefix="proca-bench-"))
    log(f"logs in {logdir}; load average {os.getloadavg()}")
    reports = []
    for n in [int(x) for x in args.workers.split(",") if x.strip()]:
        report = one_run(args, n, logdir)
        reports.append(report)
        print(summary(report), flush=True)
    if len(reports) > 1:
        best = max(reports, key=lambda r: r.get("sustained", {}).get("ok_rate", 0))
        print(
            f"best sustained: {best['workers']} workers, "
            f"{best.get('sustained', {}).get('ok_rate', 0):.0f} signatures/s",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
