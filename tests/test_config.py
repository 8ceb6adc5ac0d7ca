"""router.yaml loading: the default file works; every mistake names file, key path and expectation."""

from __future__ import annotations

import pytest

from otlp_router import config
from otlp_router.settings import ConfigError, parse_duration, parse_size
from tests.support import ROOT

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


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        config.parse(text, "my.yaml")
    return err.value


def test_the_default_router_yaml_is_valid() -> None:
    cfg = config.load(ROOT / "router.yaml")
    assert cfg.http and (cfg.http.host, cfg.http.port) == ("127.0.0.1", 4318)
    assert cfg.grpc and (cfg.grpc.host, cfg.grpc.port) == ("127.0.0.1", 4317)
    assert set(cfg.destinations) == {"local", "raw"}
    assert cfg.admin is not None and cfg.spool.durable


def test_only_the_listed_protocols_are_enabled() -> None:
    cfg = config.parse(VALID)
    assert cfg.http is not None and cfg.grpc is None


def test_env_substitution(monkeypatch) -> None:
    monkeypatch.setenv("OUT_DIR", "/data/here")
    cfg = config.parse(VALID.replace("/tmp/x", "\"${env:OUT_DIR}\""))
    assert str(cfg.destinations["out"].destination.dir) == "/data/here"


def test_missing_env_variable_is_an_error() -> None:
    e = _error(VALID.replace("/tmp/x", "\"${env:SURELY_NOT_SET_123}\""))
    assert e.path == "destinations.out.dir" and "SURELY_NOT_SET_123" in str(e)


def test_env_default_is_used_when_unset() -> None:
    cfg = config.parse(VALID.replace("/tmp/x", "\"${env:SURELY_NOT_SET_123:-/fallback}\""))
    assert str(cfg.destinations["out"].destination.dir) == "/fallback"


def test_unknown_key_names_its_path_and_the_known_keys() -> None:
    e = _error(VALID.replace("dir: /tmp/x", "dir: /tmp/x, colour: red"))
    assert e.file == "my.yaml" and e.path == "destinations.out.colour"
    assert "unknown key" in e.problem and "dir" in e.problem


def test_wrong_type_says_what_was_expected() -> None:
    e = _error(VALID.replace("dir: /tmp/x", "dir: [a]"))
    assert e.path == "destinations.out.dir" and e.problem == "expected a string, got a list"


def test_missing_required_field() -> None:
    e = _error(VALID.replace("dir: /tmp/x", "format: otlp_json"))
    assert e.path == "destinations.out.dir" and e.problem == "is required"


def test_unknown_destination_type_lists_the_choices() -> None:
    e = _error(VALID.replace("type: file", "type: kafka"))
    assert e.path == "destinations.out.type" and "file" in e.problem and "kafka" in e.problem


def test_route_naming_an_unknown_destination() -> None:
    e = _error(VALID.replace("destinations: [out]", "destinations: [nowhere]"))
    assert e.path == "routes[0].destinations[0]" and "nowhere" in e.problem


def test_bad_endpoint() -> None:
    e = _error(VALID.replace("127.0.0.1:4318", "localhost"))
    assert e.path == "receivers.otlp.http.endpoint" and "host:port" in e.problem


def test_invalid_yaml() -> None:
    assert "not valid YAML" in str(_error("routes: [\n"))


def test_durations_accept_seconds_and_unit_strings() -> None:
    assert parse_duration(5) == 5.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("5s") == 5.0
    assert parse_duration("1m") == 60.0
    assert parse_duration("2h") == 7200.0
    assert parse_duration("7d") == 7 * 86400.0
    assert parse_duration("soon") is None and parse_duration(-1) is None


def test_bad_duration_names_the_key() -> None:
    text = VALID + "shutdown_timeout: soon\n"
    e = _error(text)
    assert e.path == "shutdown_timeout" and "duration" in e.problem


def test_sizes() -> None:
    assert parse_size(1024) == 1024
    assert parse_size("16MiB") == 16 * 1024 * 1024
    assert parse_size("512KB") == 512_000
    assert parse_size("lots") is None


def test_a_world_readable_file_with_literal_secrets_is_warned_about(tmp_path, caplog) -> None:
    text = VALID.replace("out: {type: file, dir: /tmp/x}", "out: {type: otlp_http, endpoint: 'http://x/v1/traces', "
                                                          "headers: {Authorization: 'Bearer literal-token-123'}}")
    path = tmp_path / "router.yaml"
    path.write_text(text)
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="otlp_router.config"):
        config.load(path)
    assert "readable by every user" in caplog.text and "literal-token-123" not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level("WARNING", logger="otlp_router.config"):
        config.load(path)
    assert caplog.text == ""
