"""Client TLS settings shared by the OTLP exporters."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from otlp_router.settings import Section


@dataclass(frozen=True)
class ClientTls:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False

    @classmethod
    def read(cls, section: Section) -> "ClientTls":
        tls = cls(section.str("ca_file", None), section.str("cert_file", None), section.str("key_file", None),
                  section.bool("insecure_skip_verify", False))
        if (tls.cert_file is None) != (tls.key_file is None):
            section.fail("cert_file and key_file go together (a client certificate needs its key)")
        section.done()
        return tls

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def read_files(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """(root CAs, client key, client certificate) as bytes, for grpc.ssl_channel_credentials."""
        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()
        return read(self.ca_file), read(self.key_file), read(self.cert_file)
