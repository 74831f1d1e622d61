"""Prometheus metrics: what every process of the CA counts, summed at each scrape.

prometheus_client's multiprocess mode: each process writes its counts to files in
``PROMETHEUS_MULTIPROC_DIR``, which ``step-ca`` sets to a private folder of its own before this
module is first imported (prometheus_client reads it at import; ``stepca.server``), and a
scrape of the metrics listener sums them. Every label value is bounded whatever clients send:
route templates, a known method, the status, provisioner names from ca.json.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
from cryptography import x509
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stepca.app import CHI_METHODS, route_of
from stepca.authority import Authority
from stepca.logs import request_fields
from stepca.x509util import fingerprint

__all__ = ["CertificateExpiry", "RequestMetrics", "create_metrics_app", "mark_process_dead"]

# the certificate operations, by route (step-ca's /re-sign is /renew's old name)
OPERATIONS = {"/sign": "sign", "/renew": "renew", "/re-sign": "renew", "/rekey": "rekey",
              "/revoke": "revoke"}


def outcome(status: int) -> str:
    """``success``, ``refused`` (the client's fault: 4xx) or ``error`` (the CA's: 5xx)."""
    return "success" if status < 400 else "refused" if status < 500 else "error"


class RequestMetrics:
    """Falcon middleware counting each request in the process that serves it (one instance,
    made in the gunicorn master, serves every app it builds)."""

    def __init__(self) -> None:
        # registry=None: counted in the multiprocess files, collected from them alone
        self.requests = Counter(
            "stepca_http_requests", "HTTP requests answered, by route template, method and "
            "status", ["route", "method", "status"], registry=None)
        self.latency = Histogram(
            "stepca_http_request_duration_seconds", "Time to answer a request, by route "
            "template", ["route"], registry=None)
        self.operations = Counter(
            "stepca_certificate_operations", "Issuances (sign), renewals (renew, rekey) and "
            "revocations (revoke) by provisioner (empty: none identified) and outcome "
            "(success, refused, error)", ["operation", "provisioner", "outcome"],
            registry=None)
        self.store_errors = Counter(
            "stepca_store_unavailable", "Requests answered 503 because the store could not "
            "be reached", registry=None)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        elapsed = time.perf_counter() - req.context.get("metrics_started", time.perf_counter())
        route = route_of(req)
        method = req.method if req.method in CHI_METHODS else "OTHER"
        status = resp.status_code
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(elapsed)
        operation = OPERATIONS.get(route)
        if operation is not None and method == "POST":
            provisioner = str((request_fields() or {}).get("provisioner", ""))
            self.operations.labels(operation, provisioner, outcome(status)).inc()
        if req.context.get("store_unavailable"):
            self.store_errors.inc()


class CertificateExpiry(Collector):
    """Seconds until the CA's own certificates expire, computed at each scrape."""

    def __init__(self, roots: tuple[x509.Certificate, ...],
                 intermediates: tuple[x509.Certificate, ...]) -> None:
        self.certificates = [("root", c) for c in roots] + [
            ("intermediate", c) for c in intermediates[:1]]

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "stepca_ca_certificate_expiry_seconds", "Seconds until a certificate of the CA "
            "(root, intermediate) expires; negative once it has",
            labels=["certificate", "fingerprint"])
        now = time.time()
        for kind, certificate in self.certificates:
            gauge.add_metric([kind, fingerprint(certificate)],
                             certificate.not_valid_after_utc.timestamp() - now)
        yield gauge


class MetricsPage:
    """``GET /metrics``: every process's counts from ``directory``, and the expiries."""

    def __init__(self, authority: Authority, directory: Path) -> None:
        self.registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry, path=str(directory))
        self.registry.register(CertificateExpiry(authority.roots, authority.intermediates))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry)


def create_metrics_app(authority: Authority, directory: Path) -> falcon.App:
    """What ``metrics.address`` serves over plain HTTP: ``/metrics``, nothing else."""
    app = falcon.App(media_type=None)
    app.add_route("/metrics", MetricsPage(authority, directory))
    return app


def mark_process_dead(pid: int, directory: Path) -> None:
    """A worker has exited: forget its live gauges (its counts stay in the sums)."""
    multiprocess.mark_process_dead(pid, str(directory))
