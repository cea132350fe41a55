#!/usr/bin/env python3
"""Logline's benchmark suite: read views, projection rebuild, saga latency and memory, next to Redis.

Run it with `bench/suite` (which builds Logline in release mode first). It starts Logline and Redis on
loopback with temporary data directories and stops them at the end, and prints a Markdown table. Durable
appends are measured by bench/append-vs-redis.

Shared machines are noisy: compare the ratios within one run, not the figures across runs.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGLINE = os.path.join(ROOT, ".build", "release", "logline")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


class Connection:
    """A minimal RESP client: enough to pipeline requests and read replies."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    def send(self, *args):
        self.sock.sendall(self.encode(*args))

    def send_many(self, requests):
        self.sock.sendall(b"".join(self.encode(*r) for r in requests))

    def _line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buffer) < n + 2:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    def call(self, *args):
        self.send(*args)
        return self.reply()


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def redis_benchmark(port, clients, pipeline, requests, *command):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(clients), "-P", str(pipeline), "-n", str(requests), "--csv",
         *command],
        capture_output=True, text=True, check=True).stdout.strip().splitlines()
    fields = [f.strip('"') for f in out[-1].split('","')]
    return float(fields[1]), float(fields[4]), float(fields[6])


def order_body(order_id, customer, restaurant, price="12.50", quantity=2):
    return json.dumps({
        "order_id": order_id, "customer_id": customer, "restaurant_id": restaurant,
        "order_items": [{"code": "dish", "name": "Dish", "unit_price": price, "quantity": quantity}]})


def settle(conn):
    """Waits, with AT, until every view has processed the head."""
    for _ in range(100):
        head = json.loads(conn.call("INFO"))["last_position"]
        for view in ("orders", "wallets", "restaurants"):
            conn.call("QUERY", view, "LIMIT", "1", "AT", head)
        if json.loads(conn.call("INFO"))["last_position"] == head:
            return head
    raise RuntimeError("modules did not settle")


def main():
    rows = []
    work = tempfile.mkdtemp(prefix="logline-bench-")
    processes = []
    try:
        port = free_port()
        server = subprocess.Popen(
            [LOGLINE, "serve", "--data", os.path.join(work, "logline"), "--port", str(port), "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(server)
        redis_port = free_port()
        os.makedirs(os.path.join(work, "redis"))
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--dir", os.path.join(work, "redis"), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(redis)
        wait_for_port(port)
        wait_for_port(redis_port)
        conn = Connection(port)

        # Load 10,000 orders through the real command path, pipelined.
        orders = 10_000
        conn.call("APPEND", "restaurant", "r-closed", "restaurant-closed", "{}")
        requests = [("SUBMIT", "create-order", order_body(f"o{i}", f"c{i % 500}", "r-closed" if i % 10 == 0 else "r1"))
                    for i in range(orders)]
        for start in range(0, orders, 500):
            chunk = requests[start:start + 500]
            conn.send_many(chunk)
            for _ in chunk:
                conn.reply()
        settle(conn)
        document = conn.call("GET", "orders", "o1")
        redis_conn = Connection(redis_port)
        redis_conn.call("SET", "order:o1", document)

        # GET of one order document against Redis GET of the same JSON.
        for clients, pipeline in ((50, 1), (50, 16)):
            l_rps, l_p50, l_p99 = redis_benchmark(port, clients, pipeline, 200_000, "GET", "orders", "o1")
            r_rps, r_p50, r_p99 = redis_benchmark(redis_port, clients, pipeline, 200_000, "GET", "order:o1")
            rows.append((f"GET one order, {clients} clients, pipeline {pipeline}", l_rps, l_p50, l_p99,
                         f"Redis GET {r_rps:.0f}/s", l_rps / r_rps))
        q_rps, q_p50, q_p99 = redis_benchmark(port, 50, 1, 100_000, "QUERY", "orders", "WHERE", "customer_id", "c7",
                                              "LIMIT", "20")
        rows.append(("QUERY orders WHERE customer_id (20 docs), 50 clients", q_rps, q_p50, q_p99, "", None))

        # Saga latency: create-order to order-approved, at a steady 1,000 orders/s for 5 s.
        subscriber = Connection(port)
        subscriber.send("SUBSCRIBE", "TYPE", "order-approved", "TYPE", "order-rejected")
        subscriber.reply()
        sent = {}
        latencies = []
        rate, seconds = 1000, 5
        start = time.perf_counter()
        subscriber.sock.setblocking(False)
        submitter = Connection(port)
        for i in range(rate * seconds):
            due = start + i / rate
            while time.perf_counter() < due:
                pass
            order_id = f"lat{i}"
            sent[order_id] = time.perf_counter()
            submitter.send("SUBMIT", "create-order", order_body(order_id, f"c{i % 500}", "r1"))
            try:
                subscriber.buffer += subscriber.sock.recv(1 << 20)
            except BlockingIOError:
                pass
            while True:
                try:
                    if b"\r\n" not in subscriber.buffer:
                        break
                    message = subscriber.reply()
                except (BlockingIOError, ConnectionError, ValueError, IndexError):
                    break
                envelope = json.loads(message[2])
                oid = envelope["data"]["order_id"]
                if oid in sent:
                    latencies.append(time.perf_counter() - sent.pop(oid))
        submitter_replies = rate * seconds
        subscriber.sock.setblocking(True)
        subscriber.sock.settimeout(10)
        while sent:
            message = subscriber.reply()
            envelope = json.loads(message[2])
            oid = envelope["data"]["order_id"]
            if oid in sent:
                latencies.append(time.perf_counter() - sent.pop(oid))
        for _ in range(submitter_replies):
            submitter.reply()
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99)] * 1000
        rows.append((f"saga create-order -> order-approved at {rate}/s", len(latencies) / seconds, p50, p99, "", None))

        # Rebuild of the orders projector over the whole log.
        head = settle(conn)
        began = time.perf_counter()
        conn.call("REBUILD", "orders")
        while True:
            statuses = [json.loads(s) for s in conn.call("PROJECTIONS")]
            orders_status = next(s for s in statuses if s["name"] == "orders")
            if orders_status["state"] == "running" and "rebuild_position" not in orders_status:
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
        rows.append((f"REBUILD orders over {head} events", head / elapsed, elapsed * 1000, 0.0, "", None))

        rss = peak_rss_mb(server.pid)
        redis_rss = peak_rss_mb(redis.pid)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
        shutil.rmtree(work, ignore_errors=True)

    print("| scenario | Logline ops/s | p50 ms | p99 ms | peer | ratio |")
    print("|---|---|---|---|---|---|")
    for name, rps, p50, p99, peer, ratio in rows:
        ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
        p99_text = f"{p99:.3f}" if p99 else ""
        print(f"| {name} | {rps:.0f} | {p50:.3f} | {p99_text} | {peer} | {ratio_text} |")
    print()
    print(f"Peak RSS: Logline {rss:.0f} MB, Redis {redis_rss:.0f} MB")
    print(f"Machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d', time.gmtime())}")


if __name__ == "__main__":
    sys.exit(main())
