"""The API's own HTTPS: the certificate and key of ``[daemon] api_tls_cert`` and
``api_tls_key``, checked at start and read again on a reload.

Every way the files can be wrong (missing, unreadable, not PEM, an encrypted key, a key of
another certificate) is a ``TlsError`` naming the setting and the path, so the daemon
refuses to start with one line rather than a traceback. A reload that finds them wrong
keeps serving the certificate it has.

Rotation (certbot renewing, say) swaps the context new connections get: the listening
context's SNI callback, which OpenSSL calls on every handshake (with or without a server
name), hands each connection the newest context. The context a handshake is under is never
changed while another thread may be using it.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import NoReturn

from gnomon.exceptions import ServiceStartError

log = logging.getLogger("gnomon.daemon")


class TlsError(ServiceStartError, ValueError):
    """``api_tls_cert`` or ``api_tls_key`` cannot be served: the message names which, and why."""


class ServerCertificate:
    """The certificate and key the API serves, as a server context (TLS 1.2 or newer):
    ``context`` is what the server listens with, ``reload()`` reads the files again."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self._current = load_context(cert, key)
        self.context = _server_context()
        self.context.sni_callback = self._choose

    def reload(self) -> bool:
        """Read the files again: new connections get what they hold now. If they are wrong,
        log why and keep the certificate served so far; whether they were taken."""
        try:
            self._current = load_context(self.cert, self.key)
        except TlsError as error:
            log.error("TLS certificate not reloaded, still serving the previous one: %s", error)
            return False
        log.info("TLS certificate reloaded from %s", self.cert, extra={"tls_cert": str(self.cert)})
        return True

    def _choose(self, connection: ssl.SSLObject, _name: str | None, _old: ssl.SSLContext) -> None:
        connection.context = self._current


def load_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context with ``cert`` (its chain, PEM) and ``key`` (PEM, unencrypted);
    TlsError naming the setting and the path if either cannot be used."""
    certificate = _read("api_tls_cert", cert)
    _read("api_tls_key", key)
    try:  # a client context parses certificates alone, so a bad one is told apart from a bad key
        parser = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        parser.load_verify_locations(cadata=certificate.decode("ascii", "replace"))
    except ssl.SSLError:
        _refuse("api_tls_cert", cert, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    context = _server_context()
    try:
        context.load_cert_chain(cert, key, password=lambda: _encrypted(key))
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            _refuse("api_tls_key", key, f"is not the key of the certificate in {cert}")
        _refuse("api_tls_key", key, "holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)")
    except OSError as error:  # replaced between the read and the load
        _refuse("api_tls_key", key, error.strerror or str(error))
    return context


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        _refuse(setting, path, f"cannot be read: {error.strerror or error}")


def _encrypted(key: Path) -> NoReturn:
    # Called only for a key with a passphrase; without this, OpenSSL would ask for it on
    # the terminal, and a daemon would hang at start.
    _refuse("api_tls_key", key, "is encrypted: give the daemon an unencrypted key (mode 0600)")


def _refuse(setting: str, path: Path, why: str) -> NoReturn:
    raise TlsError(f"[daemon] {setting} = {str(path)!r} {why}")
