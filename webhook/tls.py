"""A TLS server context whose certificate follows the files on disk, with no restart.

cert-manager and kubelet secret mounts replace the files in place. Every few seconds the files are
checked; a changed pair is loaded into a fresh context (which also proves key and certificate
match) and handed to new handshakes through the SNI callback. A half-written or mismatched pair is
logged and ignored, so handshakes keep succeeding with the previous certificate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

log = logging.getLogger("agentroll.webhook.tls")


# TLS 1.2 with forward secrecy and AEAD only (TLS 1.3 suites are all AEAD and unaffected). Go's
# TLS client, which the API server uses, offers all of these for ECDSA and RSA keys.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert_file, key_file)
    return context


def _fingerprint(*paths: Path) -> tuple:
    result = []
    for path in paths:
        try:
            st = os.stat(path)
            result.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            result.append(None)
    return tuple(result)


class ReloadingTLS:
    def __init__(self, cert_file: Path, key_file: Path, interval: float = 2.0) -> None:
        self.cert_file, self.key_file, self.interval = Path(cert_file), Path(key_file), interval
        self.current = server_context(self.cert_file, self.key_file)
        self._seen = _fingerprint(self.cert_file, self.key_file)
        self._rejected: tuple | None = None
        self.reloads = 0
        self.context = server_context(self.cert_file, self.key_file)
        self.context.sni_callback = self._select

    def _select(self, ssl_object, server_name, _context) -> None:
        ssl_object.context = self.current

    def check(self) -> bool:
        """Load the files again if they changed; True when a new certificate was swapped in."""
        seen = _fingerprint(self.cert_file, self.key_file)
        if seen == self._seen:
            return False
        try:
            fresh = server_context(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError, ValueError) as err:
            if seen != self._rejected:
                log.warning("certificate files changed but do not load as a pair (yet): %s", err)
                self._rejected = seen
            return False
        self.current, self._seen = fresh, seen
        self.reloads += 1
        log.info("serving certificate reloaded from %s", self.cert_file)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()
