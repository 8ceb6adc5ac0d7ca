"""Issue 14: a config file cannot exhaust the router. YAML aliases are bounded
before anything expands them, the file has a size cap, a reload parses off the
event loop, and a request rate below one per second lets requests through."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from otlp_router import config
from otlp_router.receivers import intake
from otlp_router.receivers.intake import ApiKey
from otlp_router.settings import MAX_ALIAS_VALUES, MAX_CONFIG_BYTES, MAX_DEPTH, ConfigError
from tests.support import ROOT, base_config, make_request, read_otlp_json_lines, wait_for

PB = {"Content-Type": "application/x-protobuf"}

VALID = """
receivers:
  otlp:
    http: {endpoint: 127.0.0.1:4318}
routes:
  - name: all
    destinations: [out]
destinations:
  out: {type: file, dir: /tmp/x}
"""


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: each level is nine aliases of the one before (9**levels strings)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        config.parse(text, "my.yaml")
    return err.value


# --- aliases -----------------------------------------------------------------------------------------------

def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    start = time.monotonic()
    e = _error(billion_laughs(6) + VALID)  # 531441 strings once expanded
    assert "too many aliases" in str(e) and e.file == "my.yaml" and e.path == ""
    assert time.monotonic() - start < 2


def test_a_bomb_like_the_672_bytes_of_the_issue_is_refused_in_bounded_time_and_memory(tmp_path: Path) -> None:
    # In a child with a memory cap and a timeout: were the bound to regress, this
    # test fails instead of taking the machine's memory.
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs(9) + VALID)
    assert len(bomb.read_bytes()) < 1024
    child = ("import resource, sys\n"
             "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
             "from otlp_router import config\n"
             "from otlp_router.settings import ConfigError\n"
             "try:\n"
             "    config.load(sys.argv[1])\n"
             "except ConfigError as e:\n"
             "    print(e)\n")
    result = subprocess.run([sys.executable, "-c", child, str(bomb)], capture_output=True, text=True,
                            timeout=30, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "too many aliases" in result.stdout


def test_anchors_aliases_and_merge_keys_within_the_bound_still_work() -> None:
    text = """
retry_defaults: &retry {initial_interval: 1s, max_interval: 30s}
routes:
  - name: all
    destinations: [a, b]
destinations:
  a: &file {type: file, dir: /tmp/a, format: otlp_json, retry: *retry}
  b: {<<: *file, dir: /tmp/b}
"""
    # An anchor on a key nobody reads is still an unknown key: aliases do not loosen the strict reading.
    assert "retry_defaults: unknown key" in str(_error(text))
    cfg = config.parse("""
routes:
  - name: all
    destinations: [a, b]
destinations:
  a: &file {type: file, dir: /tmp/a, format: otlp_json, retry: &retry {initial_interval: 1s, max_interval: 30s}}
  b: {<<: *file, dir: /tmp/b, retry: *retry}
""", "my.yaml")
    assert cfg.destinations["a"].retry == cfg.destinations["b"].retry
    assert cfg.destinations["a"].retry.initial_interval == 1.0 and cfg.destinations["b"].retry.max_interval == 30.0
    assert cfg.raw_destinations["b"]["dir"] == "/tmp/b" and cfg.raw_destinations["b"]["format"] == "otlp_json"


def test_aliases_may_add_up_to_the_bound_and_not_one_value_more() -> None:
    # One anchored list of n scalars (n + 1 values), aliased k times: k * (n + 1) values added.
    def text(n: int, k: int) -> str:
        return (f"x-pad: &pad [{', '.join(['0'] * n)}]\n"
                f"x-uses: [{', '.join(['*pad'] * k)}]\n" + VALID)
    n = 999
    k = MAX_ALIAS_VALUES // (n + 1)
    assert "x-pad: unknown key" in str(_error(text(n, k)))     # parsed, then refused for its keys
    assert "too many aliases" in str(_error(text(n, k + 1)))


def test_a_recursive_alias_is_refused() -> None:
    e = _error("a: &a [1, *a]\n" + VALID)
    assert "recursive alias" in str(e)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    e = _error("a: " + "[" * 5000 + "]" * 5000 + "\n" + VALID)
    assert f"nested more than {MAX_DEPTH} levels deep" in str(e)
    # Depth made of aliases of deep anchors counts as expanded, too.
    chain = ["d0: &d0 " + "[" * 60 + "]" * 60]
    for i in range(1, 5):
        chain.append(f"d{i}: &d{i} " + "[" * 60 + f"*d{i - 1}" + "]" * 60)
    assert f"nested more than {MAX_DEPTH} levels deep" in str(_error("\n".join(chain) + "\n" + VALID))


# --- size ----------------------------------------------------------------------------------------------------

def _padded(size: int) -> str:
    """VALID padded with a comment to exactly `size` bytes."""
    head = VALID + "# "
    return head + "x" * (size - len(head) - 1) + "\n"


def test_a_config_file_over_the_size_cap_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(_padded(MAX_CONFIG_BYTES + 1))
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert time.monotonic() - start < 1  # refused before parsing
    assert "larger than 4 MiB" in str(err.value) and err.value.file == str(path)
    assert "larger than 4 MiB" in str(_error(_padded(MAX_CONFIG_BYTES + 1)))
    path.write_text(_padded(64 * 1024))
    assert set(config.load(path).destinations) == {"out"}


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "router.yaml"
    path.write_bytes(VALID.encode() + b"# \xff\xfe\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert "not UTF-8" in str(err.value)


# --- request rate ----------------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The token buckets' clock, and only theirs."""
    fake = FakeClock()
    monkeypatch.setattr(intake, "time", fake)
    return fake


def test_a_rate_below_one_per_second_lets_one_request_through_every_interval(clock: FakeClock) -> None:
    key = ApiKey("slow", b"k" * 16, None, 0.5)
    assert key.take() is None                        # a burst of one
    assert key.take() == pytest.approx(2.0)          # then one per 2 s, and the hint says so
    clock.now += 1.5
    assert key.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert key.take() is None
    assert key.take() == pytest.approx(2.0)
    clock.now += 100
    assert key.take() is None                        # a long idle does not bank more than one
    assert key.take() == pytest.approx(2.0)


def test_rates_of_one_per_second_and_more_keep_a_one_second_burst(clock: FakeClock) -> None:
    key = ApiKey("fast", b"k" * 16, None, 2.0)
    assert key.take() is None and key.take() is None
    assert key.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert key.take() is None
    assert key.take() == pytest.approx(0.5)
    clock.now += 10
    assert key.take() is None and key.take() is None and key.take() == pytest.approx(0.5)
    one = ApiKey("one", b"k" * 16, None, 1.0)
    assert one.take() is None and one.take() == pytest.approx(1.0)
    clock.now += 1
    assert one.take() is None
    assert ApiKey("open", b"k" * 16).take() is None


def test_a_router_with_half_a_request_per_second_answers(start_router, tmp_path: Path) -> None:
    key = "prod-key-0123456789abcdef"
    cfg = base_config(tmp_path)
    cfg["receivers"]["otlp"]["auth"] = {"api_keys": [{"name": "slow", "key": key, "max_requests_per_second": 0.5}]}
    router = start_router(cfg)
    headers = {**PB, "x-api-key": key}
    assert router.post("/v1/traces", make_request().SerializeToString(), headers)[0] == 200
    status, response_headers, _ = router.post("/v1/traces", make_request().SerializeToString(), headers)
    assert status == 429 and 1 <= int(response_headers["retry-after"]) <= 2


# --- reload ------------------------------------------------------------------------------------------------------

def _hup_and_watch_healthz(router, marker: str, timeout: float = 60.0) -> tuple[int, float]:
    """SIGHUP, then ask /healthz until `marker` is logged: (answers meanwhile, slowest answer in s)."""
    answered, slowest = 0, 0.0
    router.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while marker not in router.stderr and time.monotonic() < deadline:
        start = time.monotonic()
        status = router.get_admin("/healthz")[0]
        took = time.monotonic() - start
        if marker not in router.stderr:  # answered while the reload was still going on
            assert status == 200
            answered += 1
            slowest = max(slowest, took)
        time.sleep(0.02)
    assert marker in router.stderr, router.stderr[-3000:]
    return answered, slowest


def test_the_admin_port_answers_during_the_reload_of_a_large_config(start_router, tmp_path: Path) -> None:
    cfg = base_config(tmp_path)
    router = start_router(cfg)
    cfg["routes"] = [{"name": "renamed", "destinations": ["out"]}]
    text = yaml.safe_dump(cfg)
    # Just under the cap: a few seconds of parsing, in a worker thread.
    text += "# padding\n" * ((MAX_CONFIG_BYTES - 4096 - len(text)) // 10)
    assert len(text) < MAX_CONFIG_BYTES
    router.config_path.write_text(text)
    answered, slowest = _hup_and_watch_healthz(router, "reloaded")
    assert answered >= 3 and slowest < 1.0, (answered, slowest)
    assert router.post("/v1/traces", make_request().SerializeToString(), PB)[0] == 200


def test_an_oversized_or_bombed_config_is_refused_at_reload_and_the_old_one_keeps_running(
        start_router, tmp_path: Path) -> None:
    cfg = base_config(tmp_path)
    router = start_router(cfg)
    good = yaml.safe_dump(cfg)
    router.config_path.write_text(good + "# padding\n" * (5 * 1024 * 1024 // 10))  # the 50 MB case, smaller
    start = time.monotonic()
    router.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload refused, the running config stays" in router.stderr, timeout=20)
    assert time.monotonic() - start < 5
    assert "larger than 4 MiB" in router.stderr
    result = subprocess.run([sys.executable, "-m", "otlp_router", "reload", "-c", str(router.config_path)],
                            capture_output=True, text=True, timeout=30, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "larger than 4 MiB" in result.stderr

    # A second router for the bomb: the log holds back a repeat of "reload refused" for 10 s.
    bombed = start_router(base_config(tmp_path / "bombed"), workdir=tmp_path / "bombed")
    bombed.config_path.write_text(billion_laughs(9) + yaml.safe_dump(base_config(tmp_path / "bombed")))
    start = time.monotonic()
    bombed.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload refused, the running config stays" in bombed.stderr, timeout=20)
    assert time.monotonic() - start < 5
    assert "too many aliases" in bombed.stderr and "reloaded" not in bombed.stderr
    assert bombed.get_admin("/healthz")[0] == 200
    assert router.get_admin("/healthz")[0] == 200
    assert router.post("/v1/traces", make_request().SerializeToString(), PB)[0] == 200
    router.stop()
    assert len(read_otlp_json_lines(tmp_path / "out")) == 1
