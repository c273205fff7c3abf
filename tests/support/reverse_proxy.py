"""Debian's nginx terminating TLS in front of a live provider: a throwaway CA, an unprivileged process."""

from __future__ import annotations

import datetime
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter

NGINX = Path("/usr/sbin/nginx")  # scripts/prepare-test-machine installs it


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    ca_file: Path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class FromAddress(HTTPAdapter):
    """Connect from a loopback address of our choice (127.0.0.2, ...): another client machine."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)  # type: ignore[no-untyped-call]


def issue_certificate(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `host`: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(later)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def start_nginx(directory: Path, *, port: int, upstream: str, host: str = "localhost") -> Nginx:
    """nginx in the foreground with its own config and temp folders, TLS on `port`, proxying to `upstream`."""
    assert NGINX.exists(), "nginx is missing: run scripts/prepare-test-machine"
    ca, certificate, key = issue_certificate(directory, host)
    config = directory / "nginx.conf"
    config.write_text(f"""
daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log;
events {{}}
http {{
    access_log {directory}/nginx-access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {host};
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        location / {{
            proxy_pass {upstream};
            proxy_set_header Host $host:$server_port;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host:$server_port;
        }}
    }}
}}
""")
    process = subprocess.Popen(
        [str(NGINX), "-p", str(directory), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "nginx-stderr.log").open("wb"),
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"https://{host}:{port}/health", verify=str(ca), timeout=2)
            return Nginx(process, ca)
        except requests.RequestException:
            assert process.poll() is None, (directory / "nginx-stderr.log").read_text()
            time.sleep(0.2)
    process.terminate()
    raise AssertionError("nginx did not answer within 20 s")
