"""The README's example configuration loads: it cannot show a config that fails.

Only what ties it to the outside world is replaced: external endpoints and the
S3 bucket by 127.0.0.1 ones, absolute secret files by files of the test, and
the `${env:…}` variables are set. Relative paths (the TLS files, ./data/…)
stay as written and resolve against the config file's directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from otlp_router import config
from otlp_router.destinations.storage import StorageDestination
from tests.certs import make_pki
from tests.support import ROOT

README = ROOT / "README.md"


def readme_yaml_blocks() -> list[str]:
    """Every ```yaml block of the README that is a router configuration (has destinations)."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    return [b for b in blocks if re.search(r"^destinations:", b, re.M)]


def localize(text: str, tmp: Path) -> str:
    """The block with external endpoints on 127.0.0.1 and absolute secret files under `tmp`."""
    text = re.sub(r"https://[A-Za-z0-9.-]+(:\d+)?", "http://127.0.0.1:9", text)
    text = re.sub(r"\b(?!127\.)\d{1,3}(?:\.\d{1,3}){3}:(\d+)", r"127.0.0.1:\1", text)
    for secret in re.findall(r"/run/secrets/[A-Za-z0-9._-]+", text):
        target = tmp / "secrets" / Path(secret).name
        target.parent.mkdir(exist_ok=True)
        target.write_text("s" * 32 + "\n")
        text = text.replace(secret, str(target))
    raw = yaml.safe_load(text)
    for d in raw["destinations"].values():
        if d.get("type") == "s3":  # no AWS: a local endpoint (nothing is sent while loading)
            d.setdefault("endpoint", "http://127.0.0.1:9")
    return yaml.safe_dump(raw, sort_keys=False)


def test_the_readme_has_an_example_configuration() -> None:
    blocks = readme_yaml_blocks()
    assert blocks, "no ```yaml block with destinations in README.md"
    assert all("${env:" in b for b in blocks[:1])  # the example shows substitution; the test sets them


@pytest.mark.parametrize("index", range(len(readme_yaml_blocks())))
def test_every_readme_example_configuration_loads(index: int, tmp_path: Path, monkeypatch) -> None:
    block = readme_yaml_blocks()[index]
    for name in set(re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)", block)):
        monkeypatch.setenv(name, f"value-of-{name.lower()}-0123456789")
    pki = make_pki(tmp_path / "pki")
    # The TLS files the example names, relative: next to the config file, where they resolve.
    for name, source in {"server.pem": pki.server_cert, "server.key": pki.server_key, "ca.pem": pki.ca}.items():
        (tmp_path / name).write_bytes(source.read_bytes())
    text = localize(block, tmp_path)
    assert "api.axiom.co" not in text and "10.0.0.1" not in text

    cfg = config.parse(text, str(tmp_path / "router.yaml"))

    raw = yaml.safe_load(block)
    assert set(cfg.destinations) == set(raw["destinations"])
    assert [r.name for r in cfg.routing.routes] + ([cfg.routing.default.name] if cfg.routing.default else []) \
        == [r["name"] for r in raw["routes"]]
    # Relative paths are the config file's directory's, not the working directory's.
    assert cfg.spool.dir == tmp_path / "data" / "spool"
    for name, d in raw["destinations"].items():
        if d.get("type") == "file":
            built = cfg.destinations[name].destination
            directory = built.store.dir if isinstance(built, StorageDestination) else built.dir
            assert directory == tmp_path / d["dir"]
    if cfg.http is not None and cfg.http.tls is not None:
        assert Path(cfg.http.tls.cert_file) == tmp_path / "server.pem"
