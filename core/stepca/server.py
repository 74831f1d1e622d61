"""``step-ca <ca.json>``: the authority behind gunicorn, over TLS.

The Authority (and its decrypted signing key) is built once in the gunicorn master and shared
by the forked workers. The listening sockets are bound first, so an address in use stops the
start before anything is issued. The master then issues the server certificate once and builds
one TLS context, which the forked workers inherit in memory and reuse for every connection
(gunicorn's default builds one per connection, about four times slower); each process replaces
it when two thirds of the certificate's life have passed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import falcon
import gunicorn.app.base
import gunicorn.glogging
import uvloop
from cryptography.hazmat.primitives import serialization

from stepca import __version__, remote_keys
from stepca.app import create_app, create_insecure_app
from stepca.authority import Authority
from stepca.config import (Config, ConfigError, MetricsOptions, Problems, ServerOptions,
                           TLSOptions)
from stepca.httpserver import HTTPServer, Limits, connection_capacity
from stepca.listening import listen
from stepca.logs import configure_logging
from stepca.plugins import DuplicatePluginType, PluginLoadError, Plugins
from stepca.retention import RetentionProcess
from stepca.worker import EventLoopWorker
from stepca.x509util import dump_chain

__all__ = ["TLSContextCache", "main"]

log = logging.getLogger("stepca.server")

# Go (IANA) cipher suite names as ca.json spells them -> OpenSSL names (TLS 1.2 and below;
# TLS 1.3 suites are always on).
_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
}
_VERSIONS = {1.0: ssl.TLSVersion.TLSv1, 1.1: ssl.TLSVersion.TLSv1_1,
             1.2: ssl.TLSVersion.TLSv1_2, 1.3: ssl.TLSVersion.TLSv1_3}


def openssl_ciphers(options: TLSOptions) -> str:
    unknown = [name for name in options.cipher_suites if name not in _CIPHERS]
    if unknown:
        raise ConfigError(f"tls.cipherSuites: unsupported cipher suite {unknown[0]!r} "
                          f"(supported: {', '.join(sorted(_CIPHERS))})")
    return ":".join(dict.fromkeys(_CIPHERS[n] for n in options.cipher_suites))


class TLSContextCache:
    """The server ``SSLContext``, rebuilt with a fresh certificate before the old one expires.
    Built in the master, it is inherited by the forked workers: one certificate per start."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._renew_at: datetime | None = None
        self._ciphers = openssl_ciphers(authority.config.tls)

    def use(self, authority: Authority) -> None:
        """Serve ``authority``'s configuration (a reload): a new context and certificate now,
        in the master, for the workers forked next."""
        with self._lock:
            self.authority = authority
            self._ciphers = openssl_ciphers(authority.config.tls)
            self._context = None
        self.get()

    def get(self) -> ssl.SSLContext:
        now = self.authority.clock()
        if self._context is None or (self._renew_at is not None and now >= self._renew_at):
            with self._lock:
                if (self._context is None
                        or (self._renew_at is not None and now >= self._renew_at)):
                    self._context = self._build()
        return self._context

    def _build(self) -> ssl.SSLContext:
        key, chain = self.authority.issue_tls_certificate()
        leaf = chain[0]
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        # Renew when a third of the life remains, less up to 1/20 of it (so workers spread out).
        self._renew_at = (leaf.not_valid_after_utc - lifetime / 3
                          - lifetime * random.uniform(0, 0.05))
        tls = self.authority.config.tls
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _VERSIONS[tls.min_version]
        context.maximum_version = _VERSIONS[tls.max_version]
        context.set_ciphers(self._ciphers)
        _load_chain(context, key, chain)
        # Client certificates are optional; /renew and /revoke authenticate with them.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=dump_chain(
            self.authority.roots + self.authority.intermediates).decode())
        log.info("server certificate serial=%s valid until %s", leaf.serial_number,
                 leaf.not_valid_after_utc.isoformat())
        return context


def _load_chain(context: ssl.SSLContext, key: Any, chain: tuple[Any, ...]) -> None:
    # ssl can only load keys from files: write the key encrypted with a one-time password to a
    # private directory (in memory where /dev/shm exists) and remove it at once.
    password = secrets.token_bytes(32)
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="stepca-tls-", dir=base) as folder:
        cert_path, key_path = Path(folder, "chain.pem"), Path(folder, "key.pem")
        cert_path.write_bytes(dump_chain(chain))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(password)))
        context.load_cert_chain(cert_path, key_path, password=password)


class PlainHTTPListener:
    """Plain HTTP in a child process of the gunicorn master (gunicorn wraps every listener it
    owns in TLS), with the same ``stepca.httpserver`` machinery and limits as the HTTPS port
    (docs/decisions/0006); a subclass says what it serves."""

    process_name = "step-ca-http"

    def __init__(self, authority: Authority, limits: Limits, listener: socket.socket) -> None:
        self.socket = listener  # kept open in the master too, for a reload's new child
        self.app = self.make_app(authority)
        self.limits = limits
        self.process: multiprocessing.process.BaseProcess | None = None

    def make_app(self, authority: Authority) -> falcon.App:
        raise NotImplementedError

    def start(self) -> None:
        self.process = multiprocessing.get_context("fork").Process(target=self._serve,
                                                                   name=self.process_name)
        self.process.start()

    def replace(self, authority: Authority) -> None:
        """A reload: a new child serves ``authority`` on the same socket; the old one stops
        accepting and finishes its connections (SIGTERM: up to 5 s)."""
        old = self.process
        self.app = self.make_app(authority)
        self.start()
        if old is not None and old.is_alive():
            old.terminate()

    def _serve(self) -> None:
        for signum in (signal.SIGHUP, signal.SIGCHLD, signal.SIGWINCH, signal.SIGUSR1,
                       signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU, signal.SIGQUIT,
                       signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)  # gunicorn's handlers belong to the master
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        server = HTTPServer(self.app, self.limits, loop=loop, log=logging.getLogger("stepca.http"),
                            environ_base={"wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
                                          "wsgi.multithread": False, "wsgi.multiprocess": True,
                                          "wsgi.run_once": False,
                                          "wsgi.input_terminated": True})
        loop.add_signal_handler(signal.SIGTERM, lambda: setattr(server, "alive", False))
        parent = os.getppid()

        def watch_parent() -> None:
            if os.getppid() != parent:  # the master died without telling us
                server.alive = False

        async def serve() -> None:
            server.listen([self.socket])
            await server.serve(watch_parent, graceful_seconds=5)

        loop.run_until_complete(serve())
        os._exit(0)

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
        self.socket.close()


class InsecureListener(PlainHTTPListener):
    """``insecureAddress``: the CRL and OCSP, nothing else."""

    process_name = "step-ca-insecure"

    def __init__(self, authority: Authority, limits: Limits, listener: socket.socket,
                 metrics: Any = None) -> None:
        self.metrics = metrics
        super().__init__(authority, limits, listener)

    def make_app(self, authority: Authority) -> falcon.App:
        return create_insecure_app(authority, access_log=True, metrics=self.metrics)


class MetricsListener(PlainHTTPListener):
    """``metrics.address``: ``/metrics``, the counts of every process in ``directory``."""

    process_name = "step-ca-metrics"

    def __init__(self, authority: Authority, limits: Limits, listener: socket.socket,
                 directory: Path) -> None:
        self.directory = directory
        super().__init__(authority, limits, listener)

    def make_app(self, authority: Authority) -> falcon.App:
        from stepca.metrics import create_metrics_app
        return create_metrics_app(authority, self.directory)


def metrics_directory(options: MetricsOptions) -> Path:
    """A new private (0700) folder for every process's counts, inside ``options.directory``
    (default: the system's temporary folder), named in ``PROMETHEUS_MULTIPROC_DIR`` before
    prometheus_client is imported, which reads it then. New at each start: no count survives
    from an earlier one."""
    try:
        folder = Path(tempfile.mkdtemp(prefix="stepca-metrics-", dir=options.directory))
    except OSError as exc:
        raise ConfigError(f"metrics.directory: cannot make a folder in "
                          f"{options.directory or tempfile.gettempdir()}: "
                          f"{exc.strerror or exc}") from None
    if "prometheus_client" in sys.modules:  # it chose in-memory counts at import
        shutil.rmtree(folder, ignore_errors=True)
        raise ConfigError("metrics: prometheus_client was imported before step-ca set its "
                          "multiprocess folder: the workers' counts could not be summed")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


class JSONGunicornLogger(gunicorn.glogging.Logger):  # type: ignore[misc]
    """gunicorn's own lines through stepca's handler (``stepca.logs``), so that with
    ``"logger": {"format": "json"}`` every line on stderr is JSON."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True


class StepCAServer(gunicorn.app.base.BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Any, options: dict[str, Any],
                 reload_app: Any = None) -> None:
        self.application = app
        self.options = options
        self.reload_app = reload_app
        super().__init__()

    def reload(self) -> None:
        """gunicorn's SIGHUP: our settings again, then, if ``reload_app`` builds a new app
        from ca.json, the workers gunicorn forks next serve it while the old ones finish
        their connections."""
        super().reload()
        if self.reload_app is not None:
            app = self.reload_app()
            if app is not None:
                self.application = self.callable = app

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def http_limits(options: ServerOptions) -> Limits:
    """What one process of the CA accepts from its clients, from ca.json's ``server`` block."""
    connections = options.max_connections or connection_capacity()
    return Limits(head=options.max_header_bytes, body=options.max_request_bytes,
                  header_seconds=options.header_timeout, body_seconds=options.request_timeout,
                  keep_alive_seconds=options.keep_alive, connections=connections,
                  connections_per_client=(options.max_connections_per_client
                                          or max(1, connections // 4)))


def worker_class(options: ServerOptions, limits: Limits) -> Any:
    """One thread: our event-loop worker. More threads are for plugins that block (a network
    KMS, a remote database): gunicorn's threaded worker."""
    if options.threads > 1:
        return "gthread"
    return type("StepCAWorker", (EventLoopWorker,), {"limits": limits})


def bound(address: str, setting: str) -> socket.socket:
    """A socket listening on ``address`` (ca.json's ``setting``), bound once, before anything is
    issued: an address in use is one clear error at once, where gunicorn would retry for five
    seconds. ``:port`` listens on IPv4 and IPv6, as step-ca does (stepca.listening)."""
    try:
        return listen(address)
    except OSError as exc:  # socket.create_server appends the address to strerror
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"cannot listen on {address} ({setting}): {reason}") from None


class Reloader:
    """Reads ca.json again on SIGHUP, in the master. A configuration that does not load or
    check is refused with one log line and the running one keeps serving. Provisioners,
    claims, the CRL and OCSP settings, TLS options and certificates take effect; the
    listening addresses, the ``server`` block and the ``db`` block need a restart (the
    stores stay open: spent token ids and revocations are the same before and after)."""

    def __init__(self, authority: Authority, *, password: bytes | None, cache: TLSContextCache,
                 listeners: list[PlainHTTPListener], max_request_bytes: int,
                 metrics: Any = None) -> None:
        self.authority = authority
        self.password = password
        self.cache = cache
        self.listeners = listeners
        self.max_request_bytes = max_request_bytes
        self.metrics = metrics

    def __call__(self) -> Any:
        old = self.authority
        path = old.config.path
        try:
            config = Config.load(path)
            authority = Authority(config, plugins=old.plugins, password=self.password,
                                  stores=(old.certificates, old.revocations))
        except ConfigError as exc:
            log.error("%s not reloaded, the running configuration keeps serving: %s", path,
                      "; ".join(exc.problems))
            return None
        except Exception:  # escaping gunicorn's reload, it would end the master
            log.exception("%s not reloaded, the running configuration keeps serving", path)
            return None
        authority.close()  # the workers forked next open their own connections
        for setting, before, after in (
                ("address", old.config.address, config.address),
                ("insecureAddress", old.config.insecure_address, config.insecure_address),
                ("server", old.config.raw.get("server"), config.raw.get("server")),
                ("db", old.config.raw.get("db"), config.raw.get("db")),
                ("logger", old.config.logger, config.logger),
                ("metrics", old.config.metrics, config.metrics)):
            if before != after:
                log.warning("%s: the change of '%s' takes effect at the next restart", path,
                            setting)
        for warning in config.warnings:
            log.warning("%s: %s", path, warning)
        self.authority = authority
        self.cache.use(authority)
        for listener in self.listeners:
            listener.replace(authority)
        log.info("%s reloaded: %d provisioner(s)", path, len(authority.provisioners))
        return create_app(authority, max_request_bytes=self.max_request_bytes,
                          access_log=True, metrics=self.metrics)


def build_server(authority: Authority, options: ServerOptions, *,
                 password: bytes | None = None) -> StepCAServer:
    """``password``: the intermediate key's, kept to open it again on a reload."""
    limits = http_limits(options)
    # bind before issuing anything: a port in use must stop the start with nothing done
    metrics = directory = None
    listeners: list[PlainHTTPListener] = []
    bound_sockets = [bound(authority.config.address, "address")]
    try:
        if authority.config.metrics is not None:
            metrics_socket = bound(authority.config.metrics.address, "metrics.address")
            bound_sockets.append(metrics_socket)
            directory = metrics_directory(authority.config.metrics)
            from stepca.metrics import RequestMetrics  # after metrics_directory: see there
            metrics = RequestMetrics()
            listeners.append(MetricsListener(authority, limits, metrics_socket, directory))
        if authority.config.insecure_address and (authority.config.crl.enabled
                                                  or authority.config.ocsp.enabled):
            listeners.append(InsecureListener(authority, limits, bound(
                authority.config.insecure_address, "insecureAddress"), metrics=metrics))
    except ConfigError:
        for sock in bound_sockets:
            sock.close()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    https = bound_sockets[0]
    cache = TLSContextCache(authority)
    cache.get()  # the one certificate of this start, issued in the master before the fork

    def ssl_context(conf: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
        return cache.get()

    app = create_app(authority, max_request_bytes=options.max_request_bytes, access_log=True,
                     metrics=metrics)
    authority.close()  # workers open their own database connections after the fork
    # one process purges for all (a store of one process, memory, has nothing to share)
    children: list[PlainHTTPListener | RetentionProcess] = list(listeners)
    if getattr(authority.certificates, "shared_between_processes", True):
        children.append(RetentionProcess(authority.certificates, authority.retention,
                                         clock=authority.clock))

    def start_children(server: Any) -> None:
        for child in children:
            child.start()

    def stop_children(server: Any) -> None:
        for child in children:
            child.stop()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def forget_children(server: Any, worker: Any) -> None:
        # a worker forked after them would try to join the master's children at its exit
        # (multiprocessing's atexit), writing an AssertionError's traceback on stderr
        multiprocessing.process._children.clear()  # type: ignore[attr-defined]

    hooks: dict[str, Any] = {"when_ready": start_children, "on_exit": stop_children,
                             "post_fork": forget_children}
    if directory is not None:
        from stepca.metrics import mark_process_dead

        def worker_exited(server: Any, worker: Any) -> None:
            mark_process_dead(worker.pid, directory)

        hooks["child_exit"] = worker_exited
    reloader = Reloader(authority, password=password, cache=cache, listeners=listeners,
                        max_request_bytes=options.max_request_bytes, metrics=metrics)
    return StepCAServer(app, {
        **hooks,
        # with JSON lines, gunicorn's own lines are JSON too
        **({"logger_class": JSONGunicornLogger}
           if authority.config.logger.format == "json" else {}),
        "bind": [f"fd://{https.detach()}"],  # gunicorn owns the bound socket from here
        "workers": options.workers,
        "threads": options.threads,
        "worker_class": worker_class(options, limits),
        "worker_connections": limits.connections,
        # gunicorn turns TLS on when certfile is set; our ssl_context hook ignores it.
        "certfile": str(authority.config.crt),
        "ssl_context": ssl_context,
        "preload_app": True,
        "proc_name": "step-ca",
        "control_socket_disable": True,  # one per user by default: two CAs would collide
        "errorlog": "-",
        "loglevel": "info",
        "keepalive": options.keep_alive,
        "graceful_timeout": 10,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "http_parser": "fast",  # gthread (threads > 1) parses with gunicorn_h1c or fails loudly
    }, reload_app=reloader)


def read_password(password_file: str | None) -> bytes | None:
    if password_file:
        try:
            return Path(password_file).read_bytes().rstrip()
        except OSError as exc:
            raise click.ClickException(f"cannot read --password-file: {exc.strerror}") from None
    return None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--password-file", metavar="FILE",
              help="File holding the password that decrypts the intermediate key.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: ca.json server.workers, else the CPU count).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads per worker (default 1: stepca's event-loop worker, as issuance is "
                   "CPU-bound; more select gunicorn's threaded worker, for plugins that block).")
@click.option("--check", is_flag=True,
              help="Check CONFIG as a start would, list every problem, and exit (0: valid) "
                   "without serving, opening the database or building a CRL.")
@click.version_option(__version__, "-v", "--version", message="Smallstep-compatible stepca/%(version)s")
def main(config: str | None, password_file: str | None, workers: int | None,
         threads: int | None, check: bool) -> None:
    """Run the certificate authority described by CONFIG (default: $(step path)/config/ca.json)."""
    configure_logging()
    if config is None:
        steppath = os.environ.get("STEPPATH") or os.path.expanduser("~/.step")
        config = os.path.join(steppath, "config", "ca.json")
    if check:
        check_config(config, read_password(password_file))
        return
    try:
        cfg = Config.load(config)
        configure_logging(cfg.logger.format)
        for warning in cfg.warnings:
            _say(cfg, f"warning: {warning}")
        password = read_password(password_file)
        if password is None and not cfg.password and _key_is_encrypted(cfg):
            password = _prompt_password()
        plugins = Plugins.load()
        for error in plugins.load_errors:
            _say(cfg, f"warning: {error}")
        # the master forks the workers: provisioners' key fetches run in the workers only
        remote_keys.defer_to_forked_children()
        authority = Authority(cfg, plugins=plugins, password=password)
        worker_count = workers or cfg.server.workers
        if not getattr(authority.certificates, "shared_between_processes", True) and worker_count > 1:
            _say(cfg, f"warning: db type '{authority.certificates.type}' is not shared between "
                      "processes; running one worker so one-time tokens stay single-use")
            worker_count = 1
        server = build_server(authority, dataclasses.replace(
            cfg.server, workers=worker_count, threads=threads or cfg.server.threads),
            password=password)
    except (ConfigError, PluginLoadError, DuplicatePluginType) as exc:
        raise click.ClickException(str(exc)) from None
    _say(cfg, f"step-ca {__version__}: serving https://{cfg.address} for "
              f"{', '.join(cfg.dns_names)} with {worker_count} worker(s)")
    server.run()


def _say(cfg: Config, message: str) -> None:
    """A start-up line on stderr: as it is, or with JSON lines a record of its own."""
    if cfg.logger.format != "json":
        click.echo(message, err=True)
    elif message.startswith("warning: "):
        log.warning(message.removeprefix("warning: "))
    else:
        log.info(message)


def check_config(path: str, password: bytes | None) -> None:
    """``step-ca --check``: every problem of the configuration at ``path``, then exit 1; or
    what was checked, then return."""
    plugins = Plugins.load()
    warnings = [str(error) for error in plugins.load_errors]
    remote_keys.defer_to_forked_children()  # a check fetches no provider's keys
    problems = Problems()
    try:
        cfg = Config.load(path, problems=problems)
        warnings += cfg.warnings
        open_key = password is not None or bool(cfg.password) or not _key_is_encrypted(cfg)
        problems.attempt(lambda: Authority.check(cfg, plugins=plugins, password=password,
                                                 open_key=open_key))
        problems.raise_any()
    except ConfigError as exc:
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"{path}: {len(exc.problems)} problem(s):", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        raise SystemExit(1) from None
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{path} is valid: {len(cfg.provisioners)} provisioner(s), db type "
               f"'{(cfg.db or {}).get('type', 'memory')}' installed (not opened)")
    if not open_key:
        click.echo("the intermediate key was not opened: pass --password-file to check it too")


def _key_is_encrypted(cfg: Config) -> bool:
    if cfg.kms and str(cfg.kms.get("type", "softkms")).lower() != "softkms":
        return False
    try:
        head = Path(cfg.key).read_bytes()[:200]
    except OSError:
        return False
    return b"ENCRYPTED" in head


def _prompt_password() -> bytes:
    if not sys.stdin.isatty():
        raise click.ClickException(
            "the intermediate key is encrypted: pass --password-file FILE (no terminal to ask on)")
    value = click.prompt("Please enter the password to decrypt the intermediate key",
                         hide_input=True, err=True)
    return str(value).encode()


if __name__ == "__main__":
    main()
