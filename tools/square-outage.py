#!/usr/bin/env python3
"""Square Orders API outage, by hand (docs/hardening.md, "Square Orders API outage").

Starts a local Orders API and loyaltyd (Square with an access token, default
`orders_timeout_ms`, `orders_retries` and `max_retry_backoff_secs` unless overridden),
then for OUTAGE seconds the API is down — a third answering 503, a third refusing
connections, a third never answering — while Square payments arrive at RATE per
second for MEMBERS members (each one redelivered REDELIVER_AFTER seconds later, as
Square does when it is unsure of a delivery), and loyaltyd is SIGKILLed and restarted
half way. Then the API comes back and the script waits for the inbox to drain.

It reports: webhooks sent and acknowledged, events queued, Orders API calls during the
outage (per phase) and after it, the retry worker's attempts, time to drain after
recovery, and — from the journal export of the stopped daemon — payments lost (never
scored), payments scored twice and balances that differ from the orders' lines; then
runs `loyaltyd verify`. Exit status 0 only when nothing was lost or doubled.

Standard library only. Everything listens on 127.0.0.1; every wait is bounded.

    tools/square-outage.py [--outage 180] [--rate 2] [--members 20]
        [--binary target/debug/loyaltyd] [--cap SECS] [--keep] [--log FILE]
"""

import argparse
import base64
import collections
import concurrent.futures
import csv
import hashlib
import hmac
import http.server
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SIGNATURE_KEY = "outage-square-signature-key"
NOTIFICATION_URL = "https://loyalty.example.com/webhooks/demo/square"
TOKEN = "outage-square-access-token"
ADMIN = "outage-admin-token"


def order_money(n):
    """(eligible cents, tax cents, quantity) of payment n's order."""
    q = 2 + n % 5
    eligible = q * 450 - 100
    return eligible, eligible // 5, q


class Api:
    def __init__(self):
        self.mode = "unavailable"  # "up", "unavailable", "hanging"
        self.lock = threading.Lock()
        self.calls = collections.Counter()  # by phase label
        self.phase = "503"
        self.in_flight = 0
        self.max_in_flight_up = 0


def make_handler(api):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            with api.lock:
                api.calls[api.phase] += 1
                mode = api.mode
            if mode == "hanging":
                time.sleep(30)
                return
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.reply(401, "{}")
            if mode != "up":
                return self.reply(
                    503,
                    '{"errors":[{"category":"API_ERROR","code":"SERVICE_UNAVAILABLE"}]}',
                )
            m = re.fullmatch(r"/v2/orders/ORD-(\d+)", self.path)
            if not m:
                return self.reply(404, "{}")
            # In flight until the answer is ready (not until it is written: the client
            # may already be sending its next request by then).
            with api.lock:
                api.in_flight += 1
                api.max_in_flight_up = max(api.max_in_flight_up, api.in_flight)
            try:
                n = int(m.group(1))
                eligible, tax, q = order_money(n)

                def money(a):
                    return {"amount": a, "currency": "USD"}

                body = {
                    "order": {
                        "id": f"ORD-{n}",
                        "location_id": "L1",
                        "state": "COMPLETED",
                        "line_items": [
                            {
                                "uid": f"li-{n}",
                                "name": "Cold Brew",
                                "quantity": str(q),
                                "item_type": "ITEM",
                                "base_price_money": money(450),
                                "total_discount_money": money(100),
                                "total_tax_money": money(tax),
                                "total_money": money(eligible + tax),
                            }
                        ],
                        "taxes": [{"uid": "t1", "type": "ADDITIVE", "percentage": "20"}],
                        "total_tax_money": money(tax),
                        "total_money": money(eligible + tax),
                    }
                }
            finally:
                with api.lock:
                    api.in_flight -= 1
            self.reply(200, json.dumps(body))

    return Handler


class OrdersServer:
    def __init__(self, api):
        self.api = api
        self.port = None
        self.server = None

    def start(self):
        addr = ("127.0.0.1", self.port or 0)
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(addr, make_handler(self.api))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, binary, config, log):
        self.binary, self.config, self.log = binary, config, log
        self.proc = None
        self.base = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", self.config],
            stdout=subprocess.PIPE,
            stderr=open(self.log, "a") if self.log else subprocess.DEVNULL,
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info")),
            text=True,
        )
        deadline = time.time() + 30
        for line in self.proc.stdout:
            if line.startswith("loyaltyd listening on "):
                self.base = line.split()[-1]
                break
            if time.time() > deadline:
                sys.exit("loyaltyd did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def square_event(kind, event_id, obj):
    dt = kind.split(".")[0]
    return json.dumps(
        {
            "merchant_id": "MOUTAGE",
            "type": kind,
            "event_id": event_id,
            "created_at": "2026-11-25T15:14:07.412Z",
            "data": {"type": dt, "id": "x", "object": {dt: obj}},
        }
    )


def payment(n, members):
    eligible, tax, _ = order_money(n)
    k = n % members
    return square_event(
        "payment.updated",
        f"ev-{n}",
        {
            "id": f"PAY-{n}",
            "status": "COMPLETED",
            "created_at": "2026-11-25T15:14:03Z",
            "updated_at": "2026-11-25T15:14:06Z",
            "amount_money": {"amount": eligible + tax, "currency": "USD"},
            "total_money": {"amount": eligible + tax, "currency": "USD"},
            "location_id": "L1",
            "order_id": f"ORD-{n}",
            "customer_id": f"SQC-{k}",
            "buyer_email_address": f"outage{k}@example.com",
        },
    )


def post(daemon, body, retry):
    mac = hmac.new(SIGNATURE_KEY.encode(), NOTIFICATION_URL.encode() + body.encode(), hashlib.sha256)
    headers = {
        "x-square-hmacsha256-signature": base64.b64encode(mac.digest()).decode(),
        "Content-Type": "application/json",
    }
    if retry:
        headers["square-retry-number"] = str(retry)
    req = urllib.request.Request(daemon.base + "/webhooks/demo/square", body.encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return 0, None  # the daemon was being killed: Square would retry


def metric(daemon, name):
    try:
        with urllib.request.urlopen(daemon.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outage", type=float, default=180)
    ap.add_argument("--rate", type=float, default=2)
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--redeliver-after", type=float, default=30)
    ap.add_argument("--binary", default="target/debug/loyaltyd")
    ap.add_argument("--cap", type=int, help="max_retry_backoff_secs (default: loyaltyd's, 300)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--log", help="append loyaltyd's log (RUST_LOG, default info) to this file")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="square-outage-")
    api = Api()
    orders = OrdersServer(api)
    orders.start()
    with open(os.path.join(tmp, "rules.toml"), "w") as f:
        f.write('[earn]\npoints_per_unit = "1"\nrounding = "floor"\n')
    cap = f"max_retry_backoff_secs = {a.cap}\n" if a.cap else ""
    config = os.path.join(tmp, "loyaltyd.toml")
    with open(config, "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:{free_port()}"\nadmin_token = "{ADMIN}"\n\n'
            f'[storage]\npath = "{tmp}/data"\n\n'
            f'[[shops]]\nid = "demo"\ncurrency = "USD"\nrules = "rules.toml"\n\n'
            f'[shops.square]\nsignature_key = "{SIGNATURE_KEY}"\n'
            f'notification_url = "{NOTIFICATION_URL}"\naccess_token = "{TOKEN}"\n'
            f'orders_base_url = "http://127.0.0.1:{orders.port}"\n{cap}'
        )
    daemon = Daemon(a.binary, config, a.log)
    daemon.start()

    sent = acked = queued_answers = other = redelivered = 0
    lock = threading.Lock()
    pool = concurrent.futures.ThreadPoolExecutor(32)
    answers = collections.Counter()

    def send(body, retry):
        nonlocal sent, acked, other
        status, r = post(daemon, body, retry)
        with lock:
            sent += 1
            answers[(status, (r or {}).get("status") or ("duplicate" if (r or {}).get("duplicate") else None))] += 1
            if status == 200:
                acked += 1

    start = time.time()
    n = 0
    redeliveries = []  # (due time, n)
    retry_attempts = 0.0
    killed = False
    third = a.outage / 3
    while time.time() - start < a.outage:
        t = time.time() - start
        phase = "503" if t < third else ("refused" if t < 2 * third else "hanging")
        if phase != api.phase:
            with api.lock:
                api.phase = phase
            if phase == "refused":
                orders.stop()
            elif phase == "hanging":
                api.mode = "hanging"
                orders.start()
        if not killed and t >= a.outage / 2:
            retry_attempts += metric(daemon, 'loyaltyd_inbox_attempts_total{adapter="square",outcome="retry"}') or 0
            daemon.kill9()
            daemon.start()
            killed = True
        pool.submit(send, payment(n, a.members), 0)
        redeliveries.append((time.time() + a.redeliver_after, n))
        n += 1
        while redeliveries and redeliveries[0][0] <= time.time():
            _, m = redeliveries.pop(0)
            pool.submit(send, payment(m, a.members), 1)
            redelivered += 1
        time.sleep(1 / a.rate)
    pool.shutdown(wait=True)
    depth_at_recovery = metric(daemon, "loyaltyd_inbox_depth")
    retry_attempts += metric(daemon, 'loyaltyd_inbox_attempts_total{adapter="square",outcome="retry"}') or 0
    outage_calls = dict(api.calls)

    # Recovery.
    orders.stop()
    with api.lock:
        api.mode = "up"
        api.phase = "after"
    orders.start()
    recovered = time.time()
    depth = None
    while time.time() - recovered < 900:
        depth = metric(daemon, "loyaltyd_inbox_depth")
        if depth == 0:
            break
        time.sleep(0.2)
    drain = time.time() - recovered
    applied = metric(daemon, 'loyaltyd_inbox_attempts_total{adapter="square",outcome="applied"}')
    status = daemon.terminate()

    # The books.
    out = subprocess.run(
        [a.binary, "export", "journal", "--format", "csv", "--config", config],
        capture_output=True, text=True, check=True,
    ).stdout
    scored = collections.Counter()
    balance = collections.Counter()
    for row in csv.DictReader(io.StringIO(out)):
        if row["kind"] == "earn" and row["account"] == "available":
            scored[row["order_id"]] += 1
            balance[row["member_id"]] += int(row["amount"])
    lost = [i for i in range(n) if scored[f"PAY-{i}"] == 0]
    doubled = [o for o, c in scored.items() if c > 1]
    expected = collections.Counter()
    for i in range(n):
        expected[i % a.members] += order_money(i)[0] // 100
    wrong_total = sum(balance.values()) != sum(expected.values())
    verify = subprocess.run([a.binary, "verify", "--config", config], capture_output=True, text=True)

    print(f"outage: {a.outage:.0f} s (503 / refused / no answer, a third each), "
          f"kill -9 + restart at {a.outage / 2:.0f} s")
    print(f"payments: {n} for {a.members} members, {redelivered} redeliveries; "
          f"webhooks sent {sent}, answered 200 {acked}; answers {dict(answers)}")
    print(f"inbox depth when the API came back: {depth_at_recovery:.0f}")
    print(f"Orders API calls during the outage: {sum(outage_calls.values())} {outage_calls}; "
          f"retry worker attempts that failed: {retry_attempts:.0f}")
    print(f"after recovery: drained in {drain:.1f} s (depth {depth}), {api.calls['after']} calls, "
          f"max {api.max_in_flight_up} in flight, {applied:.0f} applied by the worker")
    print(f"lost: {len(lost)}, scored twice: {len(doubled)}, points {sum(balance.values())} "
          f"(expected {sum(expected.values())}), verify: {'ok' if verify.returncode == 0 else verify.stdout + verify.stderr}, "
          f"daemon exit {status}")
    if a.keep:
        print(f"kept {tmp}")
    else:
        subprocess.run(["rm", "-rf", tmp])
    ok = not lost and not doubled and not wrong_total and verify.returncode == 0 and depth == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
