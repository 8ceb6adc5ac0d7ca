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
    except config_module.ConfigFileError as e:  # missing or unreadable: not a matter of its content
        print(f"otlp-router: {e}", file=sys.stderr)
        return None
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
    if server.WorkerRole.from_env() is None:  # a worker's supervisor says it for all of them
        # One stable last line, as `otlp-router ready` is the first: the drain is over.
        print("otlp-router stopped", file=sys.stderr, flush=True)
    # Everything that had to be kept is in the spool by now; a store call still
    # running in a thread (an unreachable S3 endpoint) must not hold the exit past
    # shutdown_timeout, as joining its thread at interpreter exit would.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _local_directory(destination: object) -> Path | None:
    """The directory a local destination's check would write its probe into, if it is one."""
    from otlp_router.destinations.file import FileDestination
    from otlp_router.destinations.storage import LocalStorageDestination
    from otlp_router.destinations.stores.local import LocalStore

    if isinstance(destination, FileDestination):
        return destination.dir
    if isinstance(destination, LocalStorageDestination) and isinstance(destination.store, LocalStore):
        return destination.store.dir / destination.prefix if destination.prefix else destination.store.dir
    return None


def check_would_create(directory: Path) -> tuple[bool, str] | None:
    """For a directory that does not exist yet: whether it could be created, and why (None
    when it exists). `check` creates nothing: the router makes it when it first writes."""
    if directory.is_dir():
        return None
    parent = directory
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return False, f"{directory} cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return False, f"{directory} cannot be created: {parent} is not writable"
    return True, f"{directory} does not exist yet; would create it under {parent} (writable)"


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    print(f"{args.config}: configuration is valid")

    async def check_all() -> int:
        failed = 0
        for name, d in config.destinations.items():
            directory = _local_directory(d.destination)
            planned = check_would_create(directory) if directory is not None else None
            if planned is not None:
                ok, detail = planned
            else:
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
        for dest in entry.get("sampled_out", []):
            print(f"  -> {dest}: sampled out")
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
        if not entry["destinations"] and not entry.get("sampled_out"):
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
        except BrokenPipeError:
            raise  # the reader went away (`| head`): main() ends quietly
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


def _started_with(pid: int) -> Path | None | bool:
    """The config file the process `pid` runs `otlp-router run` with, from /proc (Linux);
    False if it is not an otlp-router at all (a stale pid file), None if that cannot be told."""
    try:
        argv = [a.decode(errors="surrogateescape") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    if not any("otlp_router" in a or "otlp-router" in a for a in argv) or "run" not in argv:
        return False
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("-c", "--config", default="router.yaml")
    known, _ = options.parse_known_args(argv[argv.index("run") + 1:])
    return Path(cwd, known.config)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def cmd_reload(args: argparse.Namespace) -> int:
    """Validate the config, then ask the running router to re-read it (SIGHUP).

    As with the Collector, a reload re-reads the file the router was started with: a
    signal cannot carry a file name. So a different file is refused here rather than
    validated and then silently not used."""
    import signal

    config = _load(args.config)
    if config is None:
        return 2
    pid_file = config.spool.dir / "otlp-router.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)  # is it there?
    except (OSError, ValueError) as e:
        print(f"otlp-router: no running router found through {pid_file}: {e}", file=sys.stderr)
        return 1
    running = _started_with(pid)
    if running is False:
        print(f"otlp-router: pid {pid} in {pid_file} is not an otlp-router (a stale pid file?); nothing sent",
              file=sys.stderr)
        return 1
    if running is not None and not _same_file(args.config, running):
        print(f"otlp-router: the router (pid {pid}) was started with {running}, not {args.config}, and a reload "
              f"re-reads the file it was started with; nothing sent. Copy {args.config} over {running} and "
              f"reload again, or restart the router with -c {args.config}.", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as e:
        print(f"otlp-router: cannot signal the router (pid {pid}): {e.strerror or e}", file=sys.stderr)
        return 1
    which = running if running is not None else "the file it was started with"
    print(f"{args.config} is valid; asked the router (pid {pid}) to reload: it re-reads {which} "
          "and logs `reloaded …` or `reload refused …`")
    return 0


_CONFIG_HELP = "the router's configuration file (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otlp-router", description="OTLP receiver and router for LLM traces.")
    parser.add_argument("--version", action="version", version=f"otlp-router {__version__}")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="the least severe log lines shown (default: %(default)s)")
    parser.add_argument("--log-format", default="text", choices=("text", "json"),
                        help="log lines as text or JSON objects (default: %(default)s)")
    # The same options after the subcommand (`otlp-router run --log-level debug`); SUPPRESS
    # keeps the subcommand from resetting what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=("debug", "info", "warning", "error"),
                        help="the least severe log lines shown (default: info)")
    common.add_argument("--log-format", default=argparse.SUPPRESS, choices=("text", "json"),
                        help="log lines as text or JSON objects (default: text)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=f"{summary}. {description}", parents=[common])

    run = command("run", "receive and route until stopped",
                  "SIGTERM or SIGINT stop accepting, answer what is in flight and drain the destinations within "
                  "shutdown_timeout (the durable spool keeps the rest); SIGHUP reloads the config file.")
    run.add_argument("-c", "--config", default="router.yaml", help=_CONFIG_HELP)
    run.set_defaults(func=cmd_run)

    check = command("check", "validate the config and test every destination",
                    "Sends an empty OTLP export to OTLP destinations and puts and removes a probe object in S3 "
                    "buckets and directories (a directory that does not exist yet is not created: its nearest "
                    "existing parent must be writable); one line per destination, exit 1 if any fails.")
    check.add_argument("-c", "--config", default="router.yaml", help=_CONFIG_HELP)
    check.set_defaults(func=cmd_check)

    explain = command("explain", "show what the router would do with each item of an OTLP JSON file",
                      "For every span, log record and metric of FILE (one export request, pretty-printed or not, "
                      "or JSON lines): the routes it matches, the destinations it reaches or is sampled out at, "
                      "and how it looks there after mapping, privacy, redaction and sampling. Nothing is sent.")
    explain.add_argument("-c", "--config", default="router.yaml", help=_CONFIG_HELP)
    explain.add_argument("--json", action="store_true", help="one JSON object per item")
    explain.add_argument("file", help="an OTLP JSON export request, or JSON lines of them")
    explain.set_defaults(func=cmd_explain)

    decode = command("decode", "print stored exports as JSON lines",
                     "Reads .cbor.zstd, .json and .jsonl[.gz|.zst] exports, local files or s3://bucket/key, and "
                     "prints them as JSON lines (bytes as base64). A reader that stops early (| head) ends it "
                     "quietly, with exit status 0.")
    decode.add_argument("objects", nargs="+", metavar="OBJECT", help="a file or s3://bucket/key")
    decode.add_argument("--endpoint", help="S3-compatible endpoint URL (R2, MinIO, GCS, B2)")
    decode.add_argument("--region", default="us-east-1", help="S3 region (default: %(default)s)")
    decode.add_argument("--access-key-id", help="S3 access key (default: the AWS credential chain)")
    decode.add_argument("--secret-access-key", help="S3 secret key (default: the AWS credential chain)")
    decode.add_argument("--addressing-style", choices=("auto", "path", "virtual"), help="S3 addressing style")
    decode.set_defaults(func=cmd_decode)

    replay = command("replay", "send dead-lettered batches again",
                     "Batches a destination rejected for good are kept as dead letters; replay sends them to "
                     "their destination again (e.g. after fixing it) and removes each one delivered.")
    replay.add_argument("-c", "--config", default="router.yaml", help=_CONFIG_HELP)
    replay.add_argument("destinations", nargs="*", help="destination names (default: all)")
    replay.set_defaults(func=cmd_replay)

    reload = command("reload", "validate the config and make the running router re-read it",
                     "Sends SIGHUP to the router whose pid is in spool.dir/otlp-router.pid. The router re-reads "
                     "the file it was started with, so a different file is refused and nothing is sent.")
    reload.add_argument("-c", "--config", default="router.yaml", help=_CONFIG_HELP)
    reload.set_defaults(func=cmd_reload)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader of our output stopped early (`| head`): it had what it wanted, so
        # exit 0 rather than 141, which would fail `set -o pipefail` scripts. Point stdout
        # at /dev/null so the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
