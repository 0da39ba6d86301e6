"""The `smppgw` command: serve, check-config, hash-password, fake-provider."""

from __future__ import annotations

import argparse
import gc
import getpass
import logging
import signal
import sys
from typing import Any

from smppgw import __version__


def _load(path: str) -> Any:
    from smppgw import config as cfg

    try:
        return cfg.load(path)
    except cfg.ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.workers is not None and args.worker is None:
        return _supervise(args)
    from twisted.internet import asyncioreactor

    asyncioreactor.install()  # before anything imports the reactor: httpx shares this loop
    from twisted.internet import reactor
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    from smppgw import logs
    from smppgw.app import App
    from smppgw.config import ConfigError

    config = _load(args.config)
    link = None
    if args.worker is not None:  # one of `serve --workers N`'s processes, started by the parent
        from smppgw.workers import ParentLink, worker_config

        config = worker_config(config, args.worker)
        logs.tag_process(worker=args.worker)
        link = ParentLink(args.parent_fd) if args.parent_fd is not None else None
    logs.setup(config.log.level, config.log.format)
    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)
    try:
        app = App(config, reactor, worker=args.worker, handoff_fd=args.handoff_fd)
        app.start()
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a port in use, a store that cannot be opened: say which, exit non-zero
        print(f"cannot start: {e}", file=sys.stderr)
        return 1
    if link is not None:
        app.control.announce = link.reloaded  # an admin API reload: the parent reloads the others
        reactor.callWhenRunning(link.ready)
    reactor.addSystemEventTrigger("before", "shutdown", app.stop)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(app.reload))  # re-read the file
    tune_gc()
    reactor.run()
    return 0


def _supervise(args: argparse.Namespace) -> int:
    """`serve --workers N`: check the config here (exit 2 as check-config would), then run and
    watch N worker processes (smppgw/workers.py)."""
    from twisted.internet.task import Clock

    from smppgw import logs
    from smppgw.config import ConfigError
    from smppgw.logs import event
    from smppgw.providers.build import load_checked
    from smppgw.workers import Supervisor, log, refusal, smpp_ports, worker_command

    try:
        config, _ = load_checked(args.config, Clock())
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    why = refusal(config, args.workers)
    if why is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    logs.setup(config.log.level, config.log.format)
    if config.http.worker_ports_from is None:
        event(
            log,
            "worker_metrics_shared",
            level=logging.WARNING,
            http=f"{config.http.host}:{config.http.port}",
            hint="each scrape reaches one worker at random; set [http] worker_ports_from",
        )
    try:
        ports = smpp_ports(config)  # the parent accepts here and hands each connection on in turn
    except OSError as e:
        print(f"cannot start: {e}", file=sys.stderr)
        return 1
    command = lambda i, fd, handoff: worker_command(args.config, i, fd, handoff)  # noqa: E731
    return Supervisor(args.workers, command, ports=ports).run()


GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Tune the cyclic garbage collector for a server whose work is many short-lived objects.

    Every message allocates a few dozen GC-tracked objects (records, ops, closures) that live
    from its submit_sm to its commit or receipt: at the default threshold (700) they are
    swept young, survive (they are in flight), move to the older generations and make full
    collections frequent, each walking every object the process ever loaded. Under S1 that was
    a third of the event loop's CPU (about 20 us per message, 13 full collections per 30,000
    messages). Freezing what exists after start (modules, config, Twisted, httpx: never
    garbage) takes it out of every collection, and a young threshold of 50,000 lets most
    in-flight objects be freed by their reference count before a collection sees them. Real
    cycles are still collected, later and in larger sweeps."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def cmd_check_config(args: argparse.Namespace) -> int:
    from twisted.internet.task import Clock

    from smppgw.config import ConfigError
    from smppgw.providers.build import load_checked

    try:
        config, _ = load_checked(args.config, Clock())  # the same checks as a live reload
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    print(
        f"{config.source}: ok — {len(config.accounts)} account(s), {len(config.providers)} provider(s), "
        f"{len(config.routes)} route(s); SMPP {config.server.host}:{config.server.port}, "
        f"HTTP {config.http.host}:{config.http.port}, store {config.store.type}:{config.store.where}"
    )
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    from smppgw.gateway.passwords import hash_password

    if args.stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("ESME password: ")
    if not 1 <= len(password) <= 8:
        print("error: an SMPP password is 1 to 8 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def cmd_fake_provider(args: argparse.Namespace) -> int:
    import json
    import time

    from smppgw.fakes import FAKES, fake_class

    if args.type not in FAKES:
        print(f"error: unknown provider type {args.type!r} (known: {', '.join(FAKES)})", file=sys.stderr)
        return 2
    options: dict[str, Any] = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    fake = fake_class(args.type).from_options(args.port, options)
    fake.latency = args.latency
    fake.start()
    print(f"fake {args.type} provider on {fake.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smppgw", description="SMPP 3.4 gateway to HTTP SMS providers")
    p.add_argument("--version", action="version", version=f"smppgw {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--config", default="conf/gateway.toml", help="TOML config file (default: %(default)s)")
    s.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N gateway processes sharing the Redis store; SMPP connections go to each in turn",
    )
    s.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the parent of --workers
    s.add_argument("--parent-fd", type=int, help=argparse.SUPPRESS)
    s.add_argument("--handoff-fd", type=int, help=argparse.SUPPRESS)  # the parent's SMPP connections
    s.set_defaults(func=cmd_serve)
    c = sub.add_parser("check-config", help="validate a config file; exit 2 naming file, key and expectation")
    c.add_argument("config", help="TOML config file")
    c.set_defaults(func=cmd_check_config)
    h = sub.add_parser(
        "hash-password", help="print a hash the config accepts in place of a plaintext password"
    )
    h.add_argument("--stdin", action="store_true", help="read the password from standard input")
    h.set_defaults(func=cmd_hash_password)
    f = sub.add_parser("fake-provider", help="run a fake HTTP provider on 127.0.0.1 for trying routes")
    f.add_argument("type", help="smsfly, smsclub, smsend, floppysend or smspartner")
    f.add_argument("--port", type=int, default=0)
    f.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    f.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="fake option (repeatable)"
    )
    f.set_defaults(func=cmd_fake_provider)
    from smppgw.admin.cli import add_commands

    add_commands(sub)
    sub.add_parser(
        "bench", help="benchmark a gateway on loopback (see `smppgw bench --help`)", add_help=False
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["bench", "soak"]:  # `smppgw bench soak --minutes N`
        from smppgw.bench.soak import main as soak_main

        return soak_main(argv[2:])
    if argv[:1] == ["bench"]:  # its own options (--count, --help…) go to the benchmark's parser
        from smppgw.bench.run import main as bench_main

        return bench_main(argv[1:])
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
