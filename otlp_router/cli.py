"""`otlp-router` command line: run, check, reload, explain, decode, replay."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from otlp_router import __version__, config as config_module, logs
from otlp_router.receivers.listen import StartupError
from otlp_router.settings import ConfigError


def _load(path: str) -> config_module.RouterConfig | None:
    try:
        config = config_module.load(path)
    except ConfigError as e:
        print(f"otlp-router: invalid config: {e}", file=sys.stderr)
        return None
    logs.hide(config.secrets)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from otlp_router import server

    config = _load(args.config)
    if config is None:
        return 2
    argv = [sys.executable, "-m", "otlp_router", "--log-level", args.log_level, "--log-format", args.log_format,
            "run", "-c", args.config]
    try:
        server.run(config, argv)
    except StartupError as e:
        print(f"otlp-router: cannot start: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    # Everything that had to be kept is in the spool by now; a store call still
    # running in a thread (an unreachable S3 endpoint) must not hold the exit past
    # shutdown_timeout, as joining its thread at interpreter exit would.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    print(f"{args.config}: configuration is valid")

    async def check_all() -> int:
        failed = 0
        for name, d in config.destinations.items():
            try:
                result = await d.destination.check()
            except Exception as e:  # a check must report, not crash
                ok, detail = False, f"unexpected error: {e!r}"
            else:
                ok, detail = result.ok, result.detail
            failed += not ok
            print(f"  destination {name} ({d.destination.type_name}): {'ok' if ok else 'FAILED'}: {detail}")
        return failed

    return 1 if asyncio.run(check_all()) else 0


def cmd_explain(args: argparse.Namespace) -> int:
    import orjson

    from otlp_router.explain import explain
    from otlp_router.model.otlp_json import JsonDecodeError

    config = _load(args.config)
    if config is None:
        return 2
    try:
        report = explain(config, Path(args.file))
    except OSError as e:
        print(f"otlp-router: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 2
    except JsonDecodeError as e:
        print(f"otlp-router: {args.file} is not OTLP JSON: {e}", file=sys.stderr)
        return 2
    for entry in report:
        if args.json:
            print(orjson.dumps(entry).decode())
            continue
        if "rejected" in entry:
            print(f"rejected {entry['rejected']} span(s): {entry['reason']}")
            continue
        routes = ", ".join(entry["routes"]) or "(no route: unrouted)"
        if "span" in entry:
            print(f"span {entry['span']!r} trace={entry['trace_id']} span={entry['span_id']}")
        elif "log" in entry:
            print(f"log record {entry['log']!r} severity={entry['severity']} trace={entry['trace_id'] or '-'}")
        else:
            print(f"metric {entry['metric']!r}")
        print(f"  routes: {routes}")
        for dest, view in entry["destinations"].items():
            print(f"  -> {dest}:" + (f" name={view['name']!r}" if "name" in view else ""))
            for key, value in view.get("attributes", {}).items():
                print(f"       {key} = {value!r}")
            if view.get("body") is not None:
                print(f"       body = {view['body']!r}")
            if view.get("events"):
                print(f"       events: {', '.join(view['events'])}")
            for i, point in enumerate(view.get("data_points", [])):
                print(f"       data point {i}: {point}")
        if not entry["destinations"]:
            print("  -> (reaches no destination)")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from otlp_router.decode import decode_object, read_source
    from otlp_router.destinations.stores.s3 import S3Settings, S3Store
    from otlp_router.settings import Section

    def s3_reader(bucket: str, key: str) -> bytes:
        settings = {"bucket": bucket, "region": args.region, "endpoint": args.endpoint,
                    "access_key_id": args.access_key_id, "secret_access_key": args.secret_access_key,
                    "addressing_style": args.addressing_style}
        store = S3Store(S3Settings.read(Section({k: v for k, v in settings.items() if v is not None}, "decode")))
        data = store.read(key)
        if data is None:
            raise FileNotFoundError(f"s3://{bucket}/{key} does not exist")
        return data

    failed = 0
    for source in args.objects:
        try:
            for line in decode_object(source, read_source(source, s3_reader)):
                sys.stdout.buffer.write(line + b"\n")
        except Exception as e:  # one unreadable object must not hide the others
            print(f"otlp-router: {source}: {e}", file=sys.stderr)
            failed += 1
    sys.stdout.flush()
    return 1 if failed else 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Send dead-lettered batches to their destination again; remove each one delivered."""
    from otlp_router.destinations.base import ExportError
    from otlp_router.destinations.delivery import export_once
    from otlp_router.destinations.loadbalance import LoadBalancedDestination
    from otlp_router.spool.deadletter import DeadLetters

    config = _load(args.config)
    if config is None:
        return 2
    names = args.destinations or list(config.destinations)
    unknown = [n for n in names if n not in config.destinations]
    if unknown:
        print(f"otlp-router: unknown destination(s): {', '.join(unknown)}", file=sys.stderr)
        return 2

    def dead_dirs(name: str) -> list[Path]:
        """Every dead letter folder of a destination: its own, each worker's, each endpoint's."""
        roots = [config.spool.dir / name, *sorted(config.spool.dir.glob(f"worker-*/{name}"))]
        return [d for root in roots for d in (root / "dead", *sorted(root.glob("endpoints/*/dead"))) if d.is_dir()]

    async def replay() -> int:
        failed = 0
        for name in names:
            destination = config.destinations[name].destination
            letters = [letter for d in dead_dirs(name) for letter in DeadLetters(d, config.spool.dead_letter_ttl).list()]
            if not letters:
                print(f"destination {name}: no dead letters")
                continue
            # A load-balanced destination's letters go straight to their endpoints again.
            targets = destination.children if isinstance(destination, LoadBalancedDestination) else [destination]
            for target in targets:
                await target.start()
            try:
                for letter in letters:
                    items = sum(b.items for b in letter.batches)
                    try:
                        if isinstance(destination, LoadBalancedDestination):
                            for batch in letter.batches:
                                for child, part in destination.split(batch).items():
                                    await export_once(destination.children[child], [part])
                        else:
                            await export_once(destination, letter.batches)
                    except ExportError as e:
                        failed += 1
                        print(f"destination {name}: {letter.path.name}: still failing: {e}")
                        continue
                    letter.path.unlink()
                    print(f"destination {name}: {letter.path.name}: delivered {items} item(s) "
                          f"(first rejected: {letter.reason})")
            finally:
                for target in targets:
                    await target.stop()
        return failed

    return 1 if asyncio.run(replay()) else 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Validate the config, then ask the running router to load it (SIGHUP)."""
    import os
    import signal

    config = _load(args.config)
    if config is None:
        return 2
    pid_file = config.spool.dir / "otlp-router.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as e:
        print(f"otlp-router: no running router found through {pid_file}: {e}", file=sys.stderr)
        return 1
    print(f"{args.config} is valid; asked the router (pid {pid}) to reload it")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otlp-router", description="OTLP receiver and router for LLM traces.")
    parser.add_argument("--version", action="version", version=f"otlp-router {__version__}")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--log-format", default="text", choices=("text", "json"))
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="receive and route until stopped (SIGTERM/SIGINT drain first)")
    run.add_argument("-c", "--config", default="router.yaml")
    run.set_defaults(func=cmd_run)

    check = commands.add_parser("check", help="validate the config and test-connect every destination")
    check.add_argument("-c", "--config", default="router.yaml")
    check.set_defaults(func=cmd_check)

    explain = commands.add_parser("explain", help="show which routes and destinations each span of an OTLP "
                                                  "JSON file reaches, and how it looks there")
    explain.add_argument("-c", "--config", default="router.yaml")
    explain.add_argument("--json", action="store_true", help="one JSON object per span")
    explain.add_argument("file")
    explain.set_defaults(func=cmd_explain)

    decode = commands.add_parser("decode", help="print .cbor.zstd / .json / .jsonl exports (files or s3://bucket/key) "
                                                "as JSON lines")
    decode.add_argument("objects", nargs="+")
    decode.add_argument("--endpoint", help="S3-compatible endpoint URL (R2, MinIO, GCS, B2)")
    decode.add_argument("--region", default="us-east-1")
    decode.add_argument("--access-key-id")
    decode.add_argument("--secret-access-key")
    decode.add_argument("--addressing-style", choices=("auto", "path", "virtual"))
    decode.set_defaults(func=cmd_decode)

    replay = commands.add_parser("replay", help="send dead-lettered batches (rejected for good by a destination) "
                                                "again, e.g. after fixing the destination")
    replay.add_argument("-c", "--config", default="router.yaml")
    replay.add_argument("destinations", nargs="*", help="destination names (default: all)")
    replay.set_defaults(func=cmd_replay)

    reload = commands.add_parser("reload", help="validate router.yaml and make the running router load it "
                                                "(same as SIGHUP)")
    reload.add_argument("-c", "--config", default="router.yaml")
    reload.set_defaults(func=cmd_reload)

    args = parser.parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    return args.func(args)
