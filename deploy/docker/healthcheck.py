#!/usr/bin/env python3
"""The image's HEALTHCHECK: ``GET /health`` from the CA in this container; exit 0 when it answers
``{"status": "ok"}``. It connects to ca.json's address on this host and verifies the server
with the CA's root under its first DNS name, which need not resolve inside the container
(``step ca health`` would look it up)."""

import http.client
import json
import os
import socket
import ssl
import sys

steppath = os.environ.get("STEPPATH") or os.path.expanduser("~/.step")
with open(os.path.join(steppath, "config", "ca.json")) as handle:
    config = json.load(handle)
host, _, port = config["address"].rpartition(":")
host = host.strip("[]")
if host in ("", "0.0.0.0", "::"):
    host = "127.0.0.1"
name = config["dnsNames"][0]
roots = config["root"] if isinstance(config["root"], list) else [config["root"]]
context = ssl.create_default_context()
context.load_verify_locations(cadata="".join(open(root).read() for root in roots))
try:
    conn = http.client.HTTPSConnection(name, int(port), context=context, timeout=5)
    conn.sock = context.wrap_socket(socket.create_connection((host, int(port)), timeout=5),
                                    server_hostname=name)
    conn.request("GET", "/health")
    response = conn.getresponse()
    body = response.read(4096)
    healthy = response.status == 200 and json.loads(body).get("status") == "ok"
except (OSError, ValueError) as exc:
    sys.exit(f"unhealthy: {exc}")
if not healthy:
    sys.exit(f"unhealthy: HTTP {response.status} {body[:200]!r}")
print("ok")
