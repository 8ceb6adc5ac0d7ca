"""The deployment files: Dockerfile, .dockerignore, deploy/otlp-router.service,
deploy/router.yaml, LICENSE and the license pyproject.toml declares.

No Docker engine here, so the image is checked by reading the Dockerfile; the
unit by reading it and with `systemd-analyze` when installed; the image's and
the unit's config by loading it, and by running a router on it (ports and
directories moved into the test's directory) under the kernel's
memory-deny-write-execute, as the unit's MemoryDenyWriteExecute=yes asks."""

from __future__ import annotations

import ctypes
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import grpc
import pytest
import yaml

from otlp_router.config import RouterConfig, load
from tests.support import ROOT, RouterProcess, make_request

UNIT = ROOT / "deploy" / "otlp-router.service"
DOCKERFILE = ROOT / "Dockerfile"
LOCAL_HOSTS = {"0.0.0.0", "127.0.0.1"}


# --- readers -------------------------------------------------------------------------------------

def read_unit(path: Path = UNIT) -> dict[str, list[tuple[str, str]]]:
    """[Section] → [(key, value), ...] in order (keys may repeat), continuation lines joined."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"{path.name}: {line!r} before any [Section]"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def unit_value(section: list[tuple[str, str]], key: str) -> str:
    values = unit_values(section, key)
    assert values, f"{UNIT.name}: {key}= missing"
    return values[-1]          # systemd: the last assignment wins


_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60,
               "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600}


def systemd_seconds(value: str) -> float:
    """A systemd time span ("30", "30s", "1min 30s", "500ms") in seconds."""
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value.strip())
    assert parts and re.fullmatch(r"(?:\s*\d+(?:\.\d+)?\s*[a-z]*)+\s*", value), f"not a time span: {value!r}"
    for number, unit in parts:
        assert unit in _TIME_UNITS or unit == "", f"unknown time unit {unit!r} in {value!r}"
        total += float(number) * _TIME_UNITS.get(unit, 1)
    return total


def read_dockerfile(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """[(INSTRUCTION, arguments), ...]: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue                 # comment lines may sit inside a continued instruction too
        line = pending + stripped
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, f"{path.name} ends inside a continued line"
    return instructions


def docker_args(value: str) -> list[str]:
    """Exec form (a JSON array) or shell form (run by /bin/sh -c)."""
    if value.startswith("["):
        args = json.loads(value)
        assert isinstance(args, list) and all(isinstance(a, str) for a in args), value
        return args
    return ["/bin/sh", "-c", value]


def docker_command() -> list[str]:
    """What the container runs: ENTRYPOINT + CMD, both required in exec form (else SIGTERM goes to sh)."""
    instr = read_dockerfile()
    entrypoint = [v for k, v in instr if k == "ENTRYPOINT"]
    cmd = [v for k, v in instr if k == "CMD"]
    for value in entrypoint[-1:] + cmd[-1:]:
        assert value.startswith("["), f"exec form needed, so that the router gets SIGTERM itself: {value!r}"
    return (docker_args(entrypoint[-1]) if entrypoint else []) + (docker_args(cmd[-1]) if cmd else [])


def docker_copies() -> dict[str, str]:
    """Path in the image → path in the build context, for every COPY / ADD from the context."""
    copies: dict[str, str] = {}
    workdir = PurePosixPath("/")
    for word, rest in read_dockerfile():
        if word == "WORKDIR":
            workdir = workdir / rest
        if word not in ("COPY", "ADD"):
            continue
        args = docker_args(rest) if rest.startswith("[") else shlex.split(rest)
        if any(a.startswith("--from") for a in args):
            continue
        args = [a for a in args if not a.startswith("--")]
        *sources, dest = args
        for source in sources:
            target = workdir / dest
            if dest.endswith("/") or len(sources) > 1:
                target = target / PurePosixPath(source).name
            copies[str(target)] = source
    return copies


def config_path_of(command: list[str]) -> str:
    assert "run" in command, f"the router is not started with `run`: {command}"
    for flag in ("-c", "--config"):
        if flag in command:
            return command[command.index(flag) + 1]
    raise AssertionError(f"no -c CONFIG in {command}")


def image_config() -> tuple[str, Path]:
    """(where the image's command reads its config, the file in the checkout copied there)."""
    in_image = config_path_of(docker_command())
    copies = docker_copies()
    assert in_image in copies, f"the command reads {in_image}, which no COPY puts into the image ({copies})"
    return in_image, ROOT / copies[in_image]


def load_elsewhere(path: Path, cwd: Path) -> RouterConfig:
    """Load from another working directory: the service does not start in the checkout."""
    here = Path.cwd()
    os.chdir(cwd)
    try:
        return load(path)
    finally:
        os.chdir(here)


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)] + [k for k in value if isinstance(k, str)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


# --- the systemd unit ----------------------------------------------------------------------------

def test_unit_has_the_required_settings() -> None:
    unit = read_unit()
    assert {"Unit", "Service", "Install"} <= unit.keys()
    service = unit["Service"]
    expected = {
        "Type": "simple",                      # the router does not speak sd_notify
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure",
        "StateDirectory": "otlp-router",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "KillSignal": "SIGTERM",
    }
    for key, value in expected.items():
        assert unit_value(service, key) == value, f"{key}= should be {value}"
    exec_start = shlex.split(unit_value(service, "ExecStart"))
    assert exec_start[0] == "/usr/local/bin/otlp-router" and exec_start[1] == "run", exec_start
    families = set(" ".join(unit_values(service, "RestrictAddressFamilies")).split())
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX"}, families   # AF_UNIX: the workers' sockets
    # a user of its own: DynamicUser, or a User= that is not root
    user = unit_values(service, "User")
    assert unit_values(service, "DynamicUser")[-1:] == ["yes"] or (user and user[-1] not in ("root", "0"))
    assert int(unit_value(service, "LimitNOFILE").split(":")[0]) >= 4096
    assert unit_value(unit["Install"], "WantedBy") == "multi-user.target"


def test_unit_config_path_state_directory_and_stop_timeout_agree(tmp_path: Path) -> None:
    service = read_unit()["Service"]
    config_path = config_path_of(shlex.split(unit_value(service, "ExecStart")))
    in_image, source = image_config()
    # One file for both: the unit reads at the path the image holds it, the README installs it there.
    assert config_path == in_image == "/etc/otlp-router/router.yaml"
    state = PurePosixPath("/var/lib") / unit_value(service, "StateDirectory")
    assert unit_value(service, "WorkingDirectory") == str(state)
    config = load_elsewhere(source, tmp_path)
    # ProtectSystem=strict: only the StateDirectory is writable.
    assert PurePosixPath(config.spool.dir).is_relative_to(state), (config.spool.dir, state)
    for name, raw in config.raw_destinations.items():
        if "dir" in raw:
            assert PurePosixPath(raw["dir"]).is_relative_to(state), f"destination {name} writes outside {state}"
    # The workers drain within shutdown_timeout; the supervisor waits up to 10 s more for them.
    assert systemd_seconds(unit_value(service, "TimeoutStopSec")) > config.shutdown_timeout + 10, \
        "TimeoutStopSec must leave the drain (shutdown_timeout + 10 s) time to finish before SIGKILL"


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd); the unit was read only")
    return found


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    # verify wants ExecStart's program to exist: it lives at /usr/local/bin on the target, not here.
    stub = tmp_path / "otlp-router"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = UNIT.read_text().replace("/usr/local/bin/otlp-router", str(stub))
    assert str(stub) in text
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    # verify exits 0 on values it ignores ("Failed to parse ..., ignoring"): any line about the unit fails.
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_unit_sandbox_exposure_is_low() -> None:
    analyze = _systemd_analyze()
    result = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", str(UNIT)],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if "--offline" in result.stderr and ("unrecognized" in result.stderr or "Unknown" in result.stderr):
        pytest.skip("this systemd-analyze has no `security --offline` (systemd < 250)")
    # exit 1 above 2.0 (systemd's "OK" band: 1.x); the table says which setting costs what
    assert result.returncode == 0, result.stdout + result.stderr


# --- the image -----------------------------------------------------------------------------------

def test_dockerfile_base_install_and_user() -> None:
    instr = read_dockerfile()
    froms = [v for k, v in instr if k == "FROM"]
    assert len(froms) >= 1 and re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", froms[-1].split()[0]), froms
    runs = " ".join(v for k, v in instr if k == "RUN")
    assert re.search(r"pip install (\S+ )*(/src|\.|/wheels/\*\.whl)(\s|$)", runs), "the package is installed with pip install"
    # the wheel is built (Rust core and all) from the checkout's sources in a build stage
    assert re.search(r"pip wheel (\S+ )*/src(\s|$)", runs) and "native" in docker_copies().values()
    users = [v for k, v in instr if k == "USER"]
    assert users, "no USER: the router would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    if user.isdigit():   # a numeric USER must be the account the image creates
        assert re.search(rf"useradd\b[^&;]*--uid {user}\b", runs), f"no useradd --uid {user}"
    # what the COPYs take from the build context is there and not excluded by .dockerignore
    ignored = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
               if p.strip() and not p.startswith("#")]
    for target, source in docker_copies().items():
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the checkout"
        excluded = [p for p in ignored if not p.startswith("!") and
                    (fnmatch.fnmatch(source, p) or fnmatch.fnmatch(source, p.lstrip("*/")))]
        assert not excluded, f"COPY {source} but .dockerignore excludes it ({excluded})"


def test_image_config_loads_and_names_no_outside_host(tmp_path: Path) -> None:
    in_image, source = image_config()
    assert source == ROOT / "deploy" / "router.yaml"
    config = load_elsewhere(source, tmp_path)
    assert not (tmp_path / "data").exists()     # loading creates nothing
    endpoints = {"http": config.http, "grpc": config.grpc, "admin": config.admin}
    for name, endpoint in endpoints.items():
        assert endpoint is not None, f"the image's config has no {name} endpoint"
        assert endpoint.host in LOCAL_HOSTS, (name, endpoint.host)
    assert (config.http.port, config.grpc.port, config.admin.port) == (4318, 4317, 8888)
    assert config.http.host == config.grpc.host == config.admin.host == "0.0.0.0"   # reachable from outside
    # Relative paths resolve against the working directory: the image's must be absolute.
    assert config.spool.dir.is_absolute() and str(config.spool.dir).startswith("/var/lib/otlp-router/")
    raw = yaml.safe_load(source.read_text())
    for name, destination in raw["destinations"].items():
        # otlp_* and s3 always reach a host (s3 without endpoint: AWS); the image ships with local ones only
        assert destination["type"] in ("file", "discard"), f"destination {name} reaches a host"
        if "dir" in destination:
            assert destination["dir"].startswith("/var/lib/otlp-router/"), destination
    for value in strings(raw):
        for host in re.findall(r"[a-z][a-z0-9+.-]*://\[?([^/:\]\s]+)", value, re.I):
            assert host in LOCAL_HOSTS, f"{value!r} names a host"
        for host in re.findall(r"^\[?([^\s:\]/]+)\]?:\d+$", value):
            assert host in LOCAL_HOSTS, f"{value!r} names a host"
    # docker stop sends SIGKILL 10 s after SIGTERM unless told otherwise
    assert config.shutdown_timeout < 10


def test_dockerfile_exposes_ports_has_a_volume_and_a_healthcheck_on_the_admin_port(tmp_path: Path) -> None:
    instr = read_dockerfile()
    _, source = image_config()
    config = load_elsewhere(source, tmp_path)
    assert config.http and config.grpc and config.admin
    exposed = {int(p.split("/")[0]) for k, v in instr if k == "EXPOSE" for p in v.split()}
    assert exposed == {config.http.port, config.grpc.port, config.admin.port}, exposed
    volumes = [p for k, v in instr if k == "VOLUME" for p in (json.loads(v) if v.startswith("[") else v.split())]
    assert any(config.spool.dir.is_relative_to(v) for v in volumes), f"the spool {config.spool.dir} is in no VOLUME"
    checks = [v for k, v in instr if k == "HEALTHCHECK"]
    assert len(checks) == 1 and " CMD " in f" {checks[0]}", checks
    command = docker_args(checks[0].split(" CMD ", 1)[1] if " CMD " in checks[0] else checks[0][4:])
    assert command[0] in ("python", "python3"), "slim images have no curl or wget: python -c with urllib"
    assert f"http://127.0.0.1:{config.admin.port}/healthz" in " ".join(command)


def test_healthcheck_command_tells_up_from_down(start_router, tmp_path: Path) -> None:
    """The HEALTHCHECK's python -c, pointed at a router here, exits 0; at a closed port, not."""
    check = next(v for k, v in read_dockerfile() if k == "HEALTHCHECK").split(" CMD ", 1)[1]
    command = docker_args(check)
    router = start_router()
    up = [sys.executable if c in ("python", "python3") else c.replace(":8888/", f":{router.admin_port}/")
          for c in command]
    assert subprocess.run(up, timeout=30, stdin=subprocess.DEVNULL).returncode == 0
    router.stop()
    down = subprocess.run(up, timeout=30, stdin=subprocess.DEVNULL, capture_output=True)
    assert down.returncode != 0


# --- the config under MemoryDenyWriteExecute ----------------------------------------------------

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1


def _deny_write_execute() -> None:
    """In the child: what MemoryDenyWriteExecute=yes asks (Linux 6.3+ prctl; kept across fork and exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


def test_router_on_the_image_config_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    probe = "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"
    try:
        denied = subprocess.run([sys.executable, "-c", probe], preexec_fn=_deny_write_execute,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"no PR_SET_MDWE on this kernel (Linux 6.3+): {e}")
    assert denied.returncode != 0 and "PermissionError" in denied.stderr, "the prctl should refuse W+X memory"

    # deploy/router.yaml, with its ports and directories moved here; two workers (their sockets, ctypes).
    _, source = image_config()
    text = source.read_text().replace("/var/lib/otlp-router", str(tmp_path / "state"))
    text = re.sub(r"0\.0\.0\.0:\d+", "127.0.0.1:0", text)
    router = RouterProcess(text + "\nworkers: 2\n", tmp_path, timeout=60, preexec_fn=_deny_write_execute)
    try:
        status, _, _ = router.get_admin("/healthz")
        assert status == 200
        body = make_request(spans=5).SerializeToString()
        status, _, _ = router.post("/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        assert status == 200
        with grpc.insecure_channel(f"127.0.0.1:{router.grpc_port}") as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            _, call = export.with_call(make_request(seed=2).SerializeToString(), timeout=10)
            assert call.code() == grpc.StatusCode.OK
        assert router.stop(timeout=60) == 0
    finally:
        router.kill()
    assert "Traceback" not in router.stderr and " ERROR " not in router.stderr, router.stderr
    assert (tmp_path / "state" / "spool").is_dir()


# --- license -------------------------------------------------------------------------------------

# SHA-256 of the Apache License 2.0 text (https://www.apache.org/licenses/LICENSE-2.0.txt, as the
# OpenTelemetry projects ship it), whitespace runs collapsed to one space.
APACHE_2_0 = "0ffddef9e48f8a09aed5caf2d44f7ba1c1be2d9b8e0a6f693b1635b2d5566645"


def test_license_is_apache_2_0_and_pyproject_declares_it() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    assert hashlib.sha256(" ".join(text.split()).encode()).hexdigest() == APACHE_2_0, \
        "LICENSE is not the full, unmodified Apache-2.0 text"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # {text = ...} builds with every setuptools>=68; the SPDX string needs setuptools>=77
    assert project.get("license") in ("Apache-2.0", {"text": "Apache-2.0"}), project.get("license")
    for classifier in project.get("classifiers", []):
        if classifier.startswith("License ::"):
            assert classifier == "License :: OSI Approved :: Apache Software License", classifier


def test_changelog_has_unreleased_and_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(r"^## \[Unreleased\]", changelog, re.M)
    assert re.search(rf"^## \[{re.escape(version)}\]", changelog, re.M), f"no section for {version}"

