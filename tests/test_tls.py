"""The daemon serving HTTPS itself (``[daemon] api_tls_cert``, ``api_tls_key``): the API
and the dashboard over https with a Secure session cookie, plain HTTP refused on that port,
a renewed certificate served after a reload, and every wrong file refused at start with
one line naming the setting and the path.

A real daemon subprocess on a self-signed certificate made by the ``openssl`` command (the
``cryptography`` package is not a dependency of gnomon), a real TLS client, real Chromium.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_cli_daemon import gnomon
from test_daemon import DaemonProcess, start_daemon, wait_for, write_config
from test_dashboard import browser  # noqa: F401 (the fixture)

TICK = """
[[deployments]]
name = "ticker"
flow = "flows.py:tick"
interval = "1h"
"""


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost with common name ``name``, and
    its unencrypted key, as PEM files in ``directory``."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"),
            *("ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", f"/CN={name}"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_config(tmp_path: Path, cert: Path | None, key: Path | None) -> Path:
    lines = ['api = "127.0.0.1:0"', "workers = 1"]
    lines += [f'api_tls_cert = "{cert}"'] if cert else []
    lines += [f'api_tls_key = "{key}"'] if key else []
    return write_config(tmp_path, TICK, daemon="\n".join(lines))


def api_url(process: DaemonProcess) -> str:
    """The API's URL, from the daemon's "api listening" log line."""
    for line in process.output_lines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("api_url"):
            return str(event["api_url"])
    raise AssertionError(f"the daemon never said where its API listens: {process.communicate()}")


def served_certificate(url: str) -> str:
    """The common name of the certificate the server at ``url`` presents."""
    port = int(url.rsplit(":", 1)[1])
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    der = ssl.PEM_cert_to_DER_cert(pem)
    text = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
        input=der,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return text.strip().rsplit("=", 1)[1].strip()


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def test_the_daemon_serves_the_api_over_https_and_refuses_plain_http_on_its_port(
    tmp_path: Path, gnomon_home: Path, daemons: list
) -> None:
    cert, key = make_certificate(tmp_path, "gnomon-test")
    daemon = start_daemon(tls_config(tmp_path, cert, key), gnomon_home)
    daemons.append(daemon)
    url = api_url(daemon)
    started = next(line for line in daemon.output_lines() if "dashboard at" in line)

    assert url.startswith("https://127.0.0.1:")
    assert f"dashboard at {url}/" in started
    # Verified against the certificate as a CA: the server presents it, for 127.0.0.1.
    health = httpx.get(url + "/healthz", verify=trusting(cert), timeout=30)
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    with pytest.raises(httpx.TransportError):
        httpx.get(url.replace("https://", "http://") + "/healthz", timeout=30)


def test_gnomon_dashboard_prints_an_https_address_when_the_daemon_serves_tls(
    tmp_path: Path, gnomon_home: Path
) -> None:
    cert, key = make_certificate(tmp_path, "gnomon-test")
    config = write_config(
        tmp_path,
        TICK,
        daemon=f'api = "127.0.0.1:8787"\napi_tls_cert = "{cert}"\napi_tls_key = "{key}"',
    )

    printed = gnomon(gnomon_home, "dashboard", "--config", str(config))

    assert (printed.returncode, printed.stdout) == (0, "https://127.0.0.1:8787/\n")


@pytest.mark.slow
def test_logging_in_over_https_sets_a_secure_cookie_and_a_reload_serves_a_renewed_certificate(
    tmp_path: Path,
    gnomon_home: Path,
    daemons: list,
    browser: Any,  # noqa: F811
) -> None:
    cert, key = make_certificate(tmp_path, "first")
    daemon = start_daemon(tls_config(tmp_path, cert, key), gnomon_home)
    daemons.append(daemon)
    url = api_url(daemon)
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(url + "/deployments")
        page.fill("#token", (gnomon_home / "api-token").read_text().strip())
        page.click("form.login button")
        page.wait_for_url(url + "/deployments")
        assert page.locator("tr[data-deployment=ticker]").count() == 1
        cookie = next(c for c in context.cookies() if c["name"] == "gnomon_session")
        assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (True, True, "Strict")
    finally:
        context.close()

    # certbot renews: new files at the same paths, then a reload (SIGHUP).
    renewed_cert, renewed_key = make_certificate(tmp_path, "renewed")
    renewed_cert.replace(cert)
    renewed_key.replace(key)
    assert served_certificate(url) == "first"
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: served_certificate(url) == "renewed", what="the renewed certificate")

    # A reload that finds a broken key keeps serving the certificate it has.
    key.write_text("not a key\n")
    daemon.send_signal(signal.SIGHUP)
    wait_for(
        lambda: "TLS certificate not reloaded" in daemon.output_path.read_text(),
        what="the refused certificate reload",
    )
    assert served_certificate(url) == "renewed"
    assert httpx.get(url + "/healthz", verify=trusting(cert), timeout=30).status_code == 200


@pytest.mark.parametrize(
    ("files", "setting", "named", "exit_code"),
    [
        (("good.crt", "missing.key"), "api_tls_key", "missing.key", 1),
        (("good.crt", "other.key"), "api_tls_key", "other.key", 1),
        (("good.key", "good.key"), "api_tls_cert", "good.key", 1),
        (("good.crt", None), "api_tls_cert", "good.crt", 2),
    ],
    ids=["missing-key", "key-of-another-certificate", "key-as-certificate", "certificate-alone"],
)
def test_the_daemon_refuses_to_start_on_tls_files_it_cannot_serve(
    tmp_path: Path,
    gnomon_home: Path,
    daemons: list,
    files: tuple[str, str | None],
    setting: str,
    named: str,
    exit_code: int,
) -> None:
    make_certificate(tmp_path, "good")
    make_certificate(tmp_path, "other")
    cert, key = (tmp_path / name if name else None for name in files)
    daemon = start_daemon(tls_config(tmp_path, cert, key), gnomon_home)
    daemons.append(daemon)

    _, stderr = daemon.communicate(timeout=60)

    assert daemon.returncode == exit_code, stderr
    assert f"{setting} = '{tmp_path / named}'" in stderr
    assert "Traceback" not in stderr
