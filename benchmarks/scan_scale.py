"""A whole vaultscan scan of a large synthetic organization, against the fake AWS
(benchmarks/fakeaws: real wire protocols, fixed per-call latency, AWS's request quotas as
token buckets with real throttling errors) and a scratch PostgreSQL database.

Prints wall time, API calls per account by operation, throttles met and absorbed, peak
RSS of the scanning process (and of the writer process, if the scan used one), time spent
writing to PostgreSQL (inside record_outcomes, in the writer process or thread; the
writer process's time inside statements and its CPU; the writer thread's wall and CPU),
and the physical bound: the least time the same quotas and latency allow (see
`physical_bound`). --writer-thread keeps the writes in the scanning process. The last line
is

  scale: accounts=N wall_s=W bound_s=B ratio=R peak_rss_mb=M throttles=T failed_checks=F

Run: .venv/bin/python benchmarks/scan_scale.py --accounts 1000 [--concurrency 8]
With --incremental: a full scan, then an incremental scan of the unchanged organization
into the same database (with --replicas N, both shared by N processes: calls and CPU
seconds are summed over the replicas); the last line is

  incremental: accounts=N simulator=S calls_fraction=C wall_fraction=W cpu_fraction=U ...
The fake server is a child process, always stopped on exit; the database is dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from fakeaws.org import FakeOrg  # noqa: E402
from fakeaws.quotas import IAM_RATE, ORGANIZATIONS_RATES, STS_ASSUME_ROLE_RATE  # noqa: E402

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scanner.config import Settings

ADMIN_URL = os.environ.get("VAULTSCAN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REGIONS = "us-east-1,eu-west-1,ap-southeast-2"
# The longest chain of calls one account needs, one after the other: AssumeRole, then
# ListBackupVaults, DescribeKey of a vault key, then the simulator/key-policy reads.
ACCOUNT_CHAIN_CALLS = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--ous", type=int, default=0, help="default: accounts/15, at least 4")
    parser.add_argument("--regions", default=REGIONS)
    parser.add_argument("--roles", default="2-2", help="designated roles per account, min-max")
    parser.add_argument("--keys", default="1-2", help="KMS keys per account and region")
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--concurrency", type=int, default=0, help="0: the scanner's default")
    parser.add_argument("--simulator", choices=["aws", "engine"], default="aws")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="processes sharing the scan (share_scans): this one leads, the others join",
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="a full scan, then an incremental scan of the unchanged organization into the "
        "same database; prints the calls, wall and CPU time of each and their fractions",
    )
    parser.add_argument(
        "--writer-thread",
        action="store_true",
        help="record in the scanning process's writer thread, as scans of fewer than "
        "scanner.runner.WRITER_PROCESS_MIN_ACCOUNTS accounts do (default: a writer process "
        "from that many accounts on)",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--memory-breakdown",
        nargs="?",
        const="full",
        choices=["full", "light"],
        help="where the scanner's memory goes (benchmarks/memory_breakdown.py): RSS, Python "
        "heap and malloc over time, tracemalloc's largest sites, the structures that grow "
        "with the organization; 'light' without tracemalloc (no slow-down)",
    )
    return parser.parse_args(argv)


# --- the fake AWS ------------------------------------------------------------------------


class FakeServer:
    """The fake AWS child process: its endpoint and, once stopped, its CPU seconds."""

    def __init__(self, process: subprocess.Popen[str], endpoint: str) -> None:
        self.process = process
        self.endpoint = endpoint
        self.cpu_s = float("nan")

    def read_cpu(self) -> float:
        """User + system CPU seconds the server has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        self.cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return self.cpu_s


@contextmanager
def fake_aws(args: argparse.Namespace) -> Iterator[FakeServer]:
    command = [
        sys.executable,
        str(HERE / "fakeaws" / "server.py"),
        f"--accounts={args.accounts}",
        f"--ous={args.ous}",
        f"--regions={args.regions}",
        f"--roles={args.roles}",
        f"--keys={args.keys}",
        f"--latency-ms={args.latency_ms}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"fake AWS did not start: {line!r}")
        server = FakeServer(process, f"http://127.0.0.1:{int(line.split()[1])}")
        yield server
    finally:
        process.kill()
        process.wait(timeout=10)


def fake_stats(endpoint: str) -> dict[str, Counter[str]]:
    with urllib.request.urlopen(f"{endpoint}/_fake/stats", timeout=10) as answer:
        raw = json.load(answer)
    return {name: Counter(values) for name, values in raw.items()}


# --- PostgreSQL ----------------------------------------------------------------------------


@contextmanager
def scratch_database() -> Iterator[str]:
    import psycopg

    name = f"vaultscan_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    user, host, port = (
        info.get("user", "postgres"),
        info.get("host", "127.0.0.1"),
        info.get("port", "5432"),
    )
    try:
        yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class WriteTimer:
    """Wall time spent in the storage functions the scan calls, summed over threads, and
    the CPU time of the calling threads meanwhile (the rest is waiting: for PostgreSQL, or
    for the interpreter lock the scan's threads hold). A scan of many accounts records
    them in a writer process (scanner.writer_process): its own figures (wall inside
    record_outcomes, of which inside statements, CPU, peak RSS) come from the recorders,
    and the writer thread's time is then handing batches over and waiting for them."""

    NAMES = ("start_run", "record_outcomes", "finish_run", "mark_interrupted")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.calls = 0
        self.by_name: Counter[str] = Counter()
        self.scan_waited: Counter[str] = Counter()  # the scan's own waits for the writer
        self.writer_thread = Counter()  # seconds, cpu_s, batches: the writer thread's writes
        self.recorders: list[Any] = []

    def install(self) -> None:
        import scanner.recording as recording
        import storage.repository as repository
        import storage.work_queue as work_queue

        for name in self.NAMES:
            setattr(repository, name, self._timed(name, getattr(repository, name)))
        # a shared scan records through the work queue (in this process: the leader's share)
        work_queue.record_claimed = self._timed("record_claimed", work_queue.record_claimed)
        # what the database costs the scan itself: add() waiting while the writer's backlog
        # is full, and the final flush
        recorder = recording.BackgroundRecorder
        for name in ("add", "flush"):
            setattr(recorder, name, self._waited(name, getattr(recorder, name)))
        recorder._write = self._thread_timed(recorder._write)
        created = recorder.__init__

        def keep(instance: Any, *args: Any, **kwargs: Any) -> None:
            created(instance, *args, **kwargs)
            self.recorders.append(instance)

        recorder.__init__ = keep

    def process_figures(self) -> Any:
        """The writer processes' figures, summed over recorders (None: none was used)."""
        from scanner.writer_process import WriterFigures

        used = [r.process.figures for r in self.recorders if r.process is not None]
        if not used:
            return None
        total = WriterFigures()
        for figures in used:
            summed = ("batches", "write_seconds", "statement_seconds", "cpu_seconds")
            for name in (*summed, "handover_seconds"):
                setattr(total, name, getattr(total, name) + getattr(figures, name))
            total.children += figures.children
            total.peak_rss_mb = max(total.peak_rss_mb, figures.peak_rss_mb)
        return total

    def total_seconds(self) -> float:
        """All storage calls, with the writer process's writes."""
        process = self.process_figures()
        return self.seconds + (process.write_seconds if process else 0.0)

    def write_seconds(self) -> float:
        """Wall time of the writes of finished accounts: inside record_outcomes, in this
        process or in the writer process."""
        process = self.process_figures()
        in_process = self.by_name["record_outcomes"] + self.by_name["record_claimed"]
        return in_process + (process.write_seconds if process else 0.0)

    def _thread_timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.writer_thread["seconds"] += time.perf_counter() - start
                self.writer_thread["cpu_s"] += time.thread_time() - start_cpu
                self.writer_thread["batches"] += 1

        return timed

    def _waited(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def waited(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.scan_waited[name] += time.perf_counter() - start

        return waited

    def _timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.cpu_seconds += time.thread_time() - start_cpu
                self.seconds += elapsed
                self.by_name[name] += elapsed
                self.calls += 1

        return timed


# --- the bound -------------------------------------------------------------------------


def _pages(count: int, size: int = 20) -> int:
    return max(1, math.ceil(count / size))


def organization_calls(org: FakeOrg) -> Counter[str]:
    """The fewest Organizations calls that read the tree and the SCP attachments."""
    calls: Counter[str] = Counter({"DescribeOrganization": 1, "ListRoots": 1, "ListPolicies": 1})
    for parent, children in org.children.items():
        calls["ListOrganizationalUnitsForParent"] += _pages(len(children))
        calls["ListAccountsForParent"] += _pages(len(org.accounts_by_parent.get(parent, [])))
    for targets in org.scp_targets.values():
        calls["ListTargetsForPolicy"] += _pages(len(targets))
    calls["DescribePolicy"] = len(org.scp_targets)
    return calls


def physical_bound(org: FakeOrg, latency: float, iam_calls_per_account: float) -> dict[str, float]:
    """Seconds the quotas and latency impose, whatever the client does: each quota-bound
    stream (every Organizations operation has its own bucket, sts:AssumeRole one for the
    scanner's account) needs (calls - burst) / rate; they can all run at once, so the
    slowest one sets the pace; the last account found then needs its own chain of calls
    (ACCOUNT_CHAIN_CALLS one after another, and its IAM reads within the account's IAM
    bucket)."""
    streams = {
        f"organizations:{op}": max(0.0, calls - ORGANIZATIONS_RATES[op]) / ORGANIZATIONS_RATES[op]
        for op, calls in organization_calls(org).items()
    }
    streams["sts:AssumeRole"] = max(0.0, org.accounts - STS_ASSUME_ROLE_RATE) / STS_ASSUME_ROLE_RATE
    tail = max(ACCOUNT_CHAIN_CALLS * latency, max(0.0, iam_calls_per_account - IAM_RATE) / IAM_RATE)
    slowest = max(streams, key=lambda name: streams[name])
    return {
        "bound": streams[slowest] + tail,
        "slowest": slowest,
        "slowest_s": streams[slowest],
        "tail_s": tail,
        **streams,
    }


# --- the scan ----------------------------------------------------------------------------


def _time_discovery() -> list[float]:
    """Seconds each Organizations discovery took (filled in when the scan runs it)."""
    import scanner.aws.organizations as organizations
    import scanner.runner as runner
    import scanner.walk_feed as walk_feed

    seconds: list[float] = []
    discover = organizations.discover

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return discover(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    # patched where it is looked up: the walk feed (a scan) and the runner (a shared scan)
    organizations.discover = walk_feed.discover = runner.discover = timed
    return seconds


def _choose_writer(args: argparse.Namespace) -> None:
    if args.writer_thread:
        import scanner.runner as runner

        runner.WRITER_PROCESS_MIN_ACCOUNTS = sys.maxsize


def _scan_setup(
    args: argparse.Namespace, endpoint: str, database_url: str, **extra: Any
) -> tuple[Settings, Engine, WriteTimer]:
    """Point the SDK at the fake AWS, migrate the scratch database, and build the scan's
    settings (with `extra` settings) and its engine; the write timer is installed."""
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="scanner",
        AWS_SECRET_ACCESS_KEY="scanner",
        AWS_DEFAULT_REGION="us-east-1",
    )
    from scanner.config import load_settings
    from storage.db import make_engine
    from storage.migrate import upgrade

    upgrade(database_url)
    os.environ["SCALE_DATABASE_URL"] = database_url
    overrides: dict[str, Any] = {
        "regions": args.regions.split(","),
        "keys": {"default": "alias/vaultscan-backup"},
        "simulator": args.simulator,
        "database": {"url": database_url},
        **extra,
    }
    if args.concurrency:
        overrides["concurrency"] = args.concurrency
    if args.replicas > 1:
        overrides["share_scans"] = True
    _choose_writer(args)
    timer = WriteTimer()
    timer.install()
    return load_settings(overrides=overrides), make_engine(database_url), timer


def incremental_pair(args: argparse.Namespace, endpoint: str, database_url: str) -> int:
    """A full scan, then an incremental scan of the same (unchanged) organization into
    the same database: calls, wall, CPU and database writes of each, and the fractions."""
    from scanner.aws.calls import CallRecorder
    from scanner.runner import run_scan

    settings, engine, timer = _scan_setup(
        args, endpoint, database_url, incremental={"enabled": True}
    )
    figures = {}
    for name in ("full", "incremental"):
        recorder = CallRecorder()
        writes_before, cpu, start = timer.total_seconds(), _process_cpu(), time.perf_counter()
        helpers = [_helper(args, index) for index in range(1, args.replicas)]
        try:
            report = run_scan(
                settings,
                engine=engine,
                trigger="benchmark",
                recorder=recorder,
                keep_results=False,
                full=name == "full",
            )
        finally:
            joined = [_stop_helper(helper) for helper in helpers]
        figures[name] = {
            "wall": time.perf_counter() - start,
            "cpu": _process_cpu() - cpu + sum(helper["cpu_s"] for helper in joined),
            "db": timer.total_seconds() - writes_before,
            "calls": sum((Counter(helper["calls"]) for helper in joined), Counter(recorder.counts)),
            "unchanged": report.unchanged_accounts,
            "totals": report.totals,
            "per_replica": [len(report.summary.outcomes)]
            + [helper["recorded"] for helper in joined],
        }
    engine.dispose()
    _print_pair(args, figures)
    return 0


def _print_pair(args: argparse.Namespace, figures: dict[str, dict[str, Any]]) -> None:
    print(
        f"organization: {args.accounts} accounts in {args.ous} OUs, regions {args.regions}, "
        f"designated roles {args.roles}, keys {args.keys}, latency {args.latency_ms:g} ms, "
        f"simulator {args.simulator}"
    )
    for name, run in figures.items():
        calls = run["calls"]
        org = sum(v for k, v in calls.items() if k.startswith("organizations:"))
        totals = run["totals"]
        print(
            f"{name:11s}: wall {run['wall']:7.1f} s  cpu {run['cpu']:7.1f} s  "
            f"db writes {run['db']:6.1f} s  calls {sum(calls.values()):6d} "
            f"(organizations {org}, iam:SimulatePrincipalPolicy "
            f"{calls.get('iam:SimulatePrincipalPolicy', 0)})  unchanged accounts "
            f"{run['unchanged']}  checks {totals.checks_total} failed {totals.checks_failed} "
            f"status {totals.status}  accounts per replica {run['per_replica']}"
        )
    full, incremental = figures["full"], figures["incremental"]
    print("incremental calls by action:")
    for action, count in sorted(incremental["calls"].items()):
        print(f"  {action:40s} {count:6d} (full {full['calls'].get(action, 0)})")

    def fraction(key: str) -> float:
        return incremental[key] / full[key] if full[key] else float("nan")

    calls = sum(incremental["calls"].values()) / max(1, sum(full["calls"].values()))
    print(
        f"incremental: accounts={args.accounts} simulator={args.simulator} "
        f"replicas={args.replicas} calls_fraction={calls:.3f} wall_fraction={fraction('wall'):.3f} "
        f"cpu_fraction={fraction('cpu'):.3f} db_fraction={fraction('db'):.3f}"
    )


def scan(args: argparse.Namespace, endpoint: str, database_url: str) -> dict[str, Any]:
    from scanner.aws.calls import CallRecorder
    from scanner.runner import run_scan

    settings, engine, timer = _scan_setup(args, endpoint, database_url)
    discovery = _time_discovery()
    recorder = CallRecorder()
    breakdown = _memory_breakdown(args)
    cpu_before = _process_cpu()
    start = time.perf_counter()
    helpers = [_helper(args, index) for index in range(1, args.replicas)]
    try:
        report = run_scan(
            settings,
            engine=engine,
            trigger="benchmark",
            recorder=recorder,
            keep_results=False,
            progress=breakdown.progress if breakdown else None,
        )
    finally:
        helper_rss = [_stop_helper(helper)["rss_mb"] for helper in helpers]
    if breakdown:
        breakdown.finish()
    wall = time.perf_counter() - start
    cpu = _process_cpu() - cpu_before
    stored = stored_bytes(engine)
    if args.replicas > 1:
        from storage.work_queue import work_counts

        print(f"accounts per replica: {work_counts(engine, report.run_id)}")
        print(f"helper replicas' peak RSS: {[f'{rss:.0f} MB' for rss in helper_rss]}")
    engine.dispose()
    return {
        "report": report,
        "wall": wall,
        "recorder": recorder,
        "timer": timer,
        "concurrency": settings.concurrency,
        "discovery_s": discovery,
        "stored_bytes": stored,
        "cpu_s": cpu,
        "breakdown": breakdown,
    }


def print_writes(timer: WriteTimer, wall: float) -> None:
    """Where writing finished accounts went: the writer process's time in the database
    and its CPU, or the writer thread's; then the writer thread's side and the rest."""
    process = timer.process_figures()
    writes = timer.write_seconds()
    if process is not None:
        print(
            f"PostgreSQL writes (writer process): {writes:.2f} s inside record_outcomes in "
            f"{process.batches} batches = {100 * writes / wall:.1f}% of wall, of which "
            f"{process.statement_seconds:.2f} s inside statements; the process's CPU "
            f"{process.cpu_seconds:.2f} s ({process.children} started)"
        )
    else:
        print(
            f"PostgreSQL writes (writer thread): {writes:.2f} s inside record_outcomes = "
            f"{100 * writes / wall:.1f}% of wall"
        )
    thread = timer.writer_thread
    print(
        f"writer thread: {thread['seconds']:.2f} s in {thread['batches']:.0f} batches = "
        f"{100 * thread['seconds'] / wall:.1f}% of wall"
        + (
            f" (pickling and handing over until the process has read it "
            f"{process.handover_seconds:.2f} s, then waiting for its answer)"
            if process
            else ""
        )
        + f", its CPU {thread['cpu_s']:.2f} s"
    )
    print(
        f"storage calls in this process: {timer.seconds:.2f} s in {timer.calls} calls "
        f"({', '.join(f'{k} {v:.2f} s' for k, v in timer.by_name.items())}); "
        f"CPU of the calling threads meanwhile {timer.cpu_seconds:.2f} s"
    )


def _memory_breakdown(args: argparse.Namespace) -> Any:
    if not args.memory_breakdown:
        return None
    from memory_breakdown import Breakdown

    return Breakdown(trace=args.memory_breakdown == "full").start()


def stored_bytes(engine: Any) -> dict[str, int]:
    """On-disk size (table, TOAST and indexes) of the tables verdicts are stored in."""
    from sqlalchemy import text

    tables = ("check_results", "evidence_documents")
    with engine.connect() as conn:
        return {
            table: conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar()
            for table in tables
            if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar()
        }


def _process_cpu() -> float:
    """User + system CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cores_available() -> int:
    return len(os.sched_getaffinity(0))


HELPER = """
import json, resource, sys, time
from sqlalchemy import text
from scanner.aws.calls import CallRecorder
from scanner.aws.session import AwsSessions
from scanner.config import load_settings
from scanner.shared_scan import join_shared_scans
from scanner.writer_process import own_peak_rss_mb
from storage.db import make_engine
from storage.work_queue import open_shared_runs
settings = load_settings(overrides={"share_scans": True, "simulator": sys.argv[2],
    "regions": sys.argv[3].split(","), "keys": {"default": "alias/vaultscan-backup"}})
engine = make_engine(settings.database.url)
started = time.time()
ended = text("SELECT count(*) FROM scan_runs WHERE status <> 'running' "
    "AND started_at > to_timestamp(:t)")
def leader_finished():  # the leader claimed every account before this replica came
    with engine.connect() as conn:
        return conn.execute(ended, {"t": started}).scalar() > 0
while not open_shared_runs(engine) and not leader_finished():
    time.sleep(0.05)
recorder = CallRecorder()
sessions = AwsSessions(settings, recorder=recorder)
done = join_shared_scans(settings, engine, host=sys.argv[1], sessions=sessions)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"recorded": done, "rss_mb": own_peak_rss_mb(),
    "cpu_s": usage.ru_utime + usage.ru_stime, "calls": recorder.counts}), flush=True)
"""


def _helper(args: argparse.Namespace, index: int) -> subprocess.Popen[str]:
    """Another replica: a process that joins the scan this one starts."""
    env = dict(os.environ)
    env["VAULTSCAN_DATABASE__URL"] = env["SCALE_DATABASE_URL"]
    return subprocess.Popen(
        [sys.executable, "-c", HELPER, f"replica-{index}", args.simulator, args.regions],
        cwd=HERE.parent,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _stop_helper(helper: subprocess.Popen[str]) -> dict[str, Any]:
    """What the helper replica printed: accounts recorded, peak RSS (MB), CPU seconds
    (its whole life, startup included) and API calls by action."""
    try:
        output, _ = helper.communicate(timeout=300)
        return json.loads(output.splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        helper.kill()
        helper.wait(timeout=10)
        return {"recorded": 0, "rss_mb": float("nan"), "cpu_s": float("nan"), "calls": {}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.ous = args.ous or max(4, args.accounts // 15)
    org = FakeOrg(accounts=args.accounts, ous=args.ous, regions=args.regions.split(","))
    if args.incremental:
        with fake_aws(args) as server, scratch_database() as database_url:
            return incremental_pair(args, server.endpoint, database_url)
    with fake_aws(args) as server, scratch_database() as database_url:
        server_cpu_before = server.read_cpu()  # building the synthetic organization
        result = scan(args, server.endpoint, database_url)
        stats = fake_stats(server.endpoint)
        server_cpu = server.read_cpu() - server_cpu_before
    report, wall = result["report"], result["wall"]
    totals = report.totals
    recorder = result["recorder"]
    members = max(1, args.accounts)
    per_account = {
        action: count / members
        for action, count in sorted(recorder.counts.items())
        if not action.startswith("organizations:")
    }
    iam_per_account = sum(v for k, v in per_account.items() if k.startswith("iam:"))
    bound = physical_bound(org, args.latency_ms / 1000, iam_per_account)
    throttles = sum(stats["throttled"].values())
    errored_accounts = totals.accounts_errored if totals else -1
    failed = (totals.checks_failed + totals.checks_errored) if totals else -1
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    timer = result["timer"]

    print(
        f"organization: {args.accounts} accounts in {args.ous} OUs, regions {args.regions}, "
        f"designated roles {args.roles}, keys {args.keys}, latency {args.latency_ms:g} ms, "
        f"simulator {args.simulator}, concurrency {result['concurrency']}, replicas {args.replicas}"
    )
    discovery = sum(result["discovery_s"])
    print(f"wall: {wall:.1f} s  (discovery {discovery:.1f} s, accounts read meanwhile)")
    print(
        f"accounts: total={totals.accounts_total if totals else '?'} "
        f"scanned={totals.accounts_scanned if totals else '?'} errored={errored_accounts}"
    )
    print(
        f"checks: total={totals.checks_total if totals else '?'} "
        f"passed={totals.checks_passed if totals else '?'} failed+errored={failed}"
    )
    print("API calls per member account:")
    for action, value in per_account.items():
        print(f"  {action:36s} {value:8.2f}")
    print(f"  {'total':36s} {sum(per_account.values()):8.2f}")
    org_calls = {k: v for k, v in recorder.counts.items() if k.startswith("organizations:")}
    print(f"organizations calls: {dict(sorted(org_calls.items()))}")
    print(f"throttles met (answered by the fake): {throttles} {dict(stats['throttled'])}")
    print(
        f"throttles absorbed: {throttles if failed == 0 and errored_accounts == 0 else 'NO'} "
        f"(errored accounts {errored_accounts}, failed/errored checks {failed})"
    )
    process = timer.process_figures()
    print(
        f"peak RSS (scanner process): {peak_rss_mb:.0f} MB"
        + (f"; writer process {process.peak_rss_mb:.0f} MB" if process else "")
    )
    print_writes(timer, wall)
    waited = timer.scan_waited
    print(
        f"scan waited for the writer: {sum(waited.values()):.2f} s = "
        f"{100 * sum(waited.values()) / wall:.1f}% of wall "
        f"(add, backlog full: {waited['add']:.2f} s; final flush: {waited['flush']:.2f} s)"
    )
    stored = result["stored_bytes"]
    print(
        f"stored verdicts: {sum(stored.values()) / members / 1024:.0f} KiB per account "
        f"({', '.join(f'{k} {v / 2**20:.1f} MiB' for k, v in stored.items())})"
    )
    print(
        f"physical bound: {bound['bound']:.1f} s = slowest stream {bound['slowest']} "
        f"{bound['slowest_s']:.1f} s + last account {bound['tail_s']:.2f} s"
    )
    for name, seconds in bound.items():
        if ":" in name and seconds > 0.05:
            print(f"  {name:45s} {seconds:7.1f} s")
    ratio = wall / bound["bound"] if bound["bound"] else float("inf")
    cpu, cores = result["cpu_s"], cores_available()
    calls = sum(recorder.counts.values())
    print(
        f"CPU: scanner {cpu:.1f} s ({1000 * cpu / members:.1f} ms per account, "
        f"{1000 * cpu / max(1, calls):.2f} ms per API call, {calls} calls), "
        f"fake AWS {server_cpu:.1f} s"
    )
    # the least wall time this machine allows: the scan's CPU spread over every core
    floor, shared_floor = cpu / cores, (cpu + server_cpu) / cores
    reachable = "reachable" if shared_floor <= bound["bound"] else "NOT reachable"
    print(
        f"CPU floor on this machine ({cores} cores): scanner {floor:.1f} s, scanner + fake "
        f"AWS {shared_floor:.1f} s; the quota bound {bound['bound']:.1f} s is {reachable} here"
    )
    if result["breakdown"]:
        from memory_breakdown import print_breakdown

        print_breakdown(result["breakdown"], report)
    if args.json:
        print(
            json.dumps(
                {
                    "wall_s": wall,
                    "bound": bound,
                    "per_account": per_account,
                    "throttled": stats["throttled"],
                    "db_s": timer.write_seconds(),
                    "writer_process_cpu_s": process.cpu_seconds if process else None,
                    "cpu_s": cpu,
                    "fake_cpu_s": server_cpu,
                }
            )
        )
    print(
        f"scale: accounts={args.accounts} wall_s={wall:.1f} bound_s={bound['bound']:.1f} "
        f"ratio={ratio:.2f} peak_rss_mb={peak_rss_mb:.0f} throttles={throttles} "
        f"failed_checks={failed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
