"""Every certificate of a watched file is judged, collected for real: openssl on this machine
reads files made here, through the Collector, command by command and in one remote script.

A ``fullchain.pem`` (nginx, Caddy, certbot) holds the leaf, then its intermediates: an expired
intermediate breaks every client as surely as an expired leaf. A combined file (haproxy) holds
the private key too: the key never leaves the host's openssl.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.certificate_expiry import CertificateExpiry
from ai_sysadmin.monitor.snapshot import Snapshot

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

RULE = CertificateExpiry()
NOW = dt.datetime.now(dt.UTC)
PAST = (dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2021, 1, 1, tzinfo=dt.UTC))
KEY_MARK = b"PRIVATE KEY"


class OneScript(LocalTransport):
    """This machine, collected by one remote script (as an SSH host is)."""

    one_round_trip = True


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn: str, issuer: str, key: ec.EllipticCurvePrivateKey,
          signer: ec.EllipticCurvePrivateKey, begin: dt.datetime, end: dt.datetime,
          ca: bool = False) -> bytes:
    built = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(begin).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .sign(signer, hashes.SHA256()))
    return built.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    where = tmp_path_factory.mktemp("certs")
    root, inter, leaf = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    expired_inter = _cert("Expired Intermediate", "Root", inter, root, *PAST, ca=True)
    year_leaf = _cert("www.example.com", "Expired Intermediate", leaf, inter,
                      NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=365))
    good_inter = _cert("Good Intermediate", "Root", inter, root,
                       NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=3650), ca=True)
    soon_leaf = _cert("soon.example.com", "Good Intermediate", leaf, inter,
                      NOW - dt.timedelta(days=80), NOW + dt.timedelta(days=3, hours=1))
    key = leaf.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    written = {
        "fullchain": year_leaf + expired_inter,
        "renewed": year_leaf + good_inter,
        "soon": good_inter + soon_leaf,  # the order in the file does not matter
        "combined": key + _cert("old.example.com", "Root", leaf, root, *PAST),
        "key-only": key,
        "empty": b"",
        "not-pem": b"hello\n",
        "broken": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    }
    paths = {}
    for name, data in written.items():
        path = where / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = str(path)
    paths["gone"] = str(where / "gone.pem")
    paths["directory"] = str(where)
    return paths


def collect(paths: list[str], tmp_path: Path, one_script: bool) -> Snapshot:
    settings = Settings(ai_name="t", state_dir=tmp_path, certificates=paths)
    transport = OneScript("here") if one_script else LocalTransport("here")
    snap = asyncio.run(Collector(transport, settings).collect())
    assert "certificates" not in snap.errors
    return snap


ROUTES = pytest.mark.parametrize("one_script", [False, True], ids=["per-command", "one-script"])


@ROUTES
def test_an_expired_intermediate_behind_a_valid_leaf_is_critical(
    files: dict[str, str], tmp_path: Path, one_script: bool
) -> None:
    snap = collect([files["fullchain"]], tmp_path, one_script)

    [finding] = RULE.evaluate(RuleContext(snap, Settings(state_dir=tmp_path).thresholds))

    assert (finding.subject, finding.severity) == (files["fullchain"], Severity.CRITICAL)
    assert "Expired Intermediate" in finding.summary and "expired" in finding.summary
    [evidence] = finding.evidence
    assert "notAfter=Jan 1 00:00:00 2021 GMT" in evidence
    assert "subject=O = Lab, CN = Expired Intermediate" in evidence
    assert "2 of 2" in evidence


@ROUTES
def test_the_certificate_that_ends_first_is_the_one_judged(
    files: dict[str, str], tmp_path: Path, one_script: bool
) -> None:
    snap = collect([files["renewed"], files["soon"]], tmp_path, one_script)

    findings = RULE.evaluate(RuleContext(snap, Settings(state_dir=tmp_path).thresholds))

    assert [(f.subject, f.severity) for f in findings] == [(files["soon"], Severity.WARNING)]
    assert "soon.example.com" in findings[0].summary
    assert "expires in 3 days" in findings[0].summary
    renewed = (snap.certificates or [])[0]
    assert (renewed.subject, renewed.error) == ("O = Lab, CN = www.example.com", None)


@ROUTES
def test_a_key_in_the_file_is_skipped_and_never_read_here(
    files: dict[str, str], tmp_path: Path, one_script: bool
) -> None:
    settings = Settings(ai_name="t", state_dir=tmp_path, certificates=[files["combined"]])
    collector = Collector(OneScript("here") if one_script else LocalTransport("here"), settings)
    said: list[bytes] = []
    run = collector.transport.run

    async def spied(argv, timeout):  # type: ignore[no-untyped-def]
        done = await run(argv, timeout)
        said.append(done.stdout.encode() + done.stderr.encode())
        return done

    collector.transport.run = spied  # type: ignore[method-assign]
    snap = asyncio.run(collector.collect())

    assert not any(KEY_MARK in text for text in said)  # the key stayed in the host's openssl
    [cert] = snap.certificates or []
    assert (cert.subject, cert.error) == ("O = Lab, CN = old.example.com", None)
    [finding] = RULE.evaluate(RuleContext(snap, settings.thresholds))
    assert finding.severity is Severity.CRITICAL


@ROUTES
def test_a_file_that_gives_no_certificate_says_why(
    files: dict[str, str], tmp_path: Path, one_script: bool
) -> None:
    names = ["gone", "key-only", "empty", "not-pem", "broken", "directory"]
    snap = collect([files[name] for name in names], tmp_path, one_script)

    assert [(c.path, c.not_after, c.error) for c in snap.certificates or []] == [
        (files["gone"], None, "no such file"),
        (files["key-only"], None, "no PEM certificate in it"),
        (files["empty"], None, "no PEM certificate in it"),
        (files["not-pem"], None, "no PEM certificate in it"),
        (files["broken"], None, "a PEM block in it cannot be read"),
        (files["directory"], None, "no PEM certificate in it"),  # openssl reads nothing
    ]
    findings = RULE.evaluate(RuleContext(snap, Settings(state_dir=tmp_path).thresholds))
    assert {(f.subject, f.severity) for f in findings} == {
        (files[name], Severity.WARNING) for name in names}
