from __future__ import annotations

from ..findings import Finding, Severity, quote
from ..snapshot import Certificate
from .base import Rule, RuleContext

_DAY = 86_400.0


class CertificateExpiry(Rule):
    """A configured certificate (``Settings.certificates``) has expired or expires soon.

    Critical once fewer than ``certificate_expiry_critical_days`` are left (by default: once
    expired), a warning within ``certificate_expiry_warn_days``. A configured file that gives
    no certificate (missing, unreadable, not PEM) is a warning of its own: a watch that
    cannot see is never silence. Every certificate of a file is judged (a fullchain.pem: the
    leaf, then its intermediates): the one that ends first speaks for the file, named by its
    subject. The subject of the finding is the path, so a renewed file clears its incident.
    """

    name = "certificate_expiry"
    requires = ("certificates",)
    description = "A watched TLS certificate has expired, expires soon, or cannot be read."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        findings = []
        for cert in ctx.snapshot.certificates or []:
            if cert.error is not None or cert.not_after is None:
                findings.append(self.finding(
                    ctx, cert.path, Severity.WARNING,
                    f"certificate {cert.path} cannot be read: {quote(cert.error or '', 120)}",
                    [f"openssl crl2pkcs7 -certfile {quote(cert.path, 200)}: "
                     f"{quote(cert.error or 'no notAfter')}"]))
                continue
            left = (cert.not_after - ctx.snapshot.taken_at) / _DAY
            if left >= ctx.thresholds.certificate_expiry_warn_days:
                continue
            critical = left < ctx.thresholds.certificate_expiry_critical_days or left <= 0
            findings.append(self.finding(
                ctx, cert.path, Severity.CRITICAL if critical else Severity.WARNING,
                _summary(cert, left), [_evidence(cert)]))
        return findings


def _summary(cert: Certificate, days_left: float) -> str:
    which = f"certificate {cert.path}"
    if cert.count > 1:  # which of the file's certificates: an intermediate is not the leaf
        which += f": {quote(cert.subject, 80)} ({cert.position} of {cert.count} in the file)"
    if days_left <= 0:
        return f"{which} expired {_days(-days_left)} ago"
    return f"{which} expires in {_days(days_left)}"


def _days(days: float) -> str:
    if days < 1:
        hours = int(days * 24)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{int(days)} day{'s' if int(days) != 1 else ''}"


def _evidence(cert: Certificate) -> str:
    place = (f" (certificate {cert.position} of {cert.count} in the file)"
             if cert.count > 1 else "")
    return (f"{quote(cert.path, 200)}: notAfter={quote(cert.not_after_text, 60)} "
            f"subject={quote(cert.subject, 200)}{place}")
