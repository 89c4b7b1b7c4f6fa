"""The benchmark harness behind bench/run.sh: direct-to-upstream against through-the-gateway, in one run.

Starts nginx (a static chat completion), a streaming upstream (bench/stream_upstream.py), redis-server and the
gateway with its default settings (memory cache, SQLite request log, auth), drives them with wrk and small
Python clients, and prints one table. Run it through bench/run.sh, which installs wrk and nginx-light and
builds the release binary.

Usage: python3 bench/harness.py BINARY [--duration SECONDS] [--other URL] [--floor BENCH_FLOOR]

With --floor, the 1- and 16-connection runs also take, in the same turns, bench-floor's two proxies that only
forward (SwiftNIO alone, and a Hummingbird route): the floor of the gateway's stack.
"""
import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

KEY = "gw_bench_key_0123456789abcdefghijklmnopqrstu"
PORTS = {"nginx": 18440, "stream": 18441, "redis": 18442, "gateway": 18443, "long": 18444, "fast": 18445,
         "floor-nio": 18446, "floor-hummingbird": 18447}
COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench-model",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "benchmark answer"}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
})
STREAM_CHUNKS, STREAM_INTERVAL_MS = 20, 50
# The streams held open together: long enough that all of them are open at once.
LONG_CHUNKS, LONG_INTERVAL_MS = 150, 200
# One stream whose chunks come 1 ms apart, to measure the gateway's CPU per relayed chunk.
FAST_CHUNKS, FAST_INTERVAL_MS = 2000, 1

# wrk script: every request a new prompt, so the gateway's cache always misses. Each wrk thread runs its own Lua
# state whose math.random starts from the same seed, and every run starts its counter at 1: the prompt therefore
# carries the run's nonce (NONCE, replaced per run) and the thread's number, or threads and runs would repeat each
# other's prompts and be answered from the cache.
UNIQUE_LUA = """
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
end
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"model":"bench","messages":[{"role":"user","content":"unique prompt NONCE ' .. id .. ' ' .. counter .. '"}]}'
  return wrk.format("POST", "/v1/chat/completions", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer KEY"}, body)
end
""".replace("KEY", KEY)
# wrk script: the same prompt every time, so every request after the first is a cache hit.
SAME_LUA = """
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"the same prompt"}]}'
""".replace("KEY", KEY)


class Bench:
    def __init__(self, binary, duration, other, floor=None):
        self.binary = os.path.abspath(binary)
        self.duration = duration
        self.other = other
        self.floor = os.path.abspath(floor) if floor else None
        self.work = tempfile.mkdtemp(prefix="llm-gateway-bench-")
        self.processes = []
        self.rows = []
        self.runs = 0

    # MARK: processes

    def spawn(self, arguments, **options):
        process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **options)
        self.processes.append(process)
        return process

    def stop_all(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.work, ignore_errors=True)

    @staticmethod
    def wait_port(port, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)
        raise SystemExit("nothing listens on port %d" % port)

    def start_upstreams(self):
        conf = os.path.join(self.work, "nginx.conf")
        with open(conf, "w") as file:
            file.write("""
worker_processes 1;
pid %(work)s/nginx.pid;
error_log %(work)s/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(work)s/body;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:%(port)d;
    location / { default_type application/json; return 200 '%(body)s'; }
  }
}
""" % {"work": self.work, "port": PORTS["nginx"], "body": COMPLETION})
        self.spawn(["nginx", "-c", conf, "-g", "daemon off;"])
        self.spawn([sys.executable, os.path.join(os.path.dirname(__file__), "stream_upstream.py"),
                    str(PORTS["stream"]), str(STREAM_CHUNKS), str(STREAM_INTERVAL_MS)])
        self.spawn([sys.executable, os.path.join(os.path.dirname(__file__), "stream_upstream.py"),
                    str(PORTS["long"]), str(LONG_CHUNKS), str(LONG_INTERVAL_MS)])
        self.spawn([sys.executable, os.path.join(os.path.dirname(__file__), "stream_upstream.py"),
                    str(PORTS["fast"]), str(FAST_CHUNKS), str(FAST_INTERVAL_MS)])
        self.spawn(["redis-server", "--port", str(PORTS["redis"]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        for name in ("nginx", "stream", "redis", "long", "fast"):
            self.wait_port(PORTS[name])
        # A port already taken (a run left behind) would be measured instead of ours: refuse that.
        time.sleep(0.2)
        if any(process.poll() is not None for process in self.processes):
            raise SystemExit("an upstream exited at start: is another run still holding ports %s?" % sorted(PORTS.values()))

    def write_config(self, cache_backend="memory", log_path=None):
        digest = subprocess.run([self.binary, "keys", "hash"], input=KEY + "\n", capture_output=True, text=True, check=True).stdout.strip()
        path = os.path.join(self.work, "gateway.yaml")
        with open(path, "w") as file:
            file.write("""
server: {listen: "127.0.0.1:%(gateway)d"}
admin: {socket: "%(work)s/admin/admin.sock"}
logging: {level: warning}
providers:
  static: {type: openai, base_url: "http://127.0.0.1:%(nginx)d/v1"}
  streaming: {type: openai, base_url: "http://127.0.0.1:%(stream)d/v1"}
  long: {type: openai, base_url: "http://127.0.0.1:%(long)d/v1"}
  fast: {type: openai, base_url: "http://127.0.0.1:%(fast)d/v1"}
models:
  bench: {provider: static, upstream: bench-model, price: {input: 1, output: 1}}
  bench-stream: {provider: streaming, upstream: bench-stream, price: {input: 1, output: 1}}
  bench-long: {provider: long, upstream: bench-long, price: {input: 1, output: 1}}
  bench-fast: {provider: fast, upstream: bench-fast, price: {input: 1, output: 1}}
keys:
  - {name: bench, sha256: %(digest)s}
cache: {backend: %(cache)s}
redis: {url: "redis://127.0.0.1:%(redis)d/0", prefix: "bench-%(nonce)d:"}
request_log: {backend: sqlite, path: "%(log)s"}
""" % {"gateway": PORTS["gateway"], "work": self.work, "nginx": PORTS["nginx"], "stream": PORTS["stream"], "long": PORTS["long"], "fast": PORTS["fast"],
               "redis": PORTS["redis"], "digest": digest, "cache": cache_backend, "nonce": time.time_ns() % 100000,
               "log": log_path or os.path.join(self.work, "requests-%s.db" % cache_backend)})
        return path

    def start_gateway(self, cache_backend="memory"):
        """Starts the gateway; returns the process and the time from exec to a 200 from /readyz."""
        config = self.write_config(cache_backend)
        started = time.perf_counter()
        process = self.spawn([self.binary, "serve", "--config", config], cwd=self.work)
        url = "http://127.0.0.1:%d/readyz" % PORTS["gateway"]
        while True:
            try:
                if urllib.request.urlopen(url, timeout=1).status == 200:
                    return process, time.perf_counter() - started, config
            except OSError:
                pass
            if process.poll() is not None:
                raise SystemExit("the gateway exited at start (status %s)" % process.returncode)
            time.sleep(0.002)

    @staticmethod
    def stop_gateway(process):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=40)

    @staticmethod
    def rss_mib(pid, field="VmRSS"):
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    # MARK: wrk

    @staticmethod
    def cpu_seconds(pid):
        """User and system CPU time of process `pid` (all its threads) so far."""
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wrk(self, url, connections, script, duration=None, pid=None):
        """One wrk run; with `pid`, also that process's CPU time per request (`cpu_us`)."""
        self.runs += 1
        cpu_before = self.cpu_seconds(pid) if pid else 0
        script = script.replace("NONCE", "%d-%d" % (os.getpid(), self.runs))
        path = os.path.join(self.work, "script-%d.lua" % abs(hash(script)))
        with open(path, "w") as file:
            file.write(script)
        threads = min(2, connections)
        output = subprocess.run(
            ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % (duration or self.duration), "--latency", "-s", path, url],
            capture_output=True, text=True, check=True).stdout
        cpu = self.cpu_seconds(pid) - cpu_before if pid else 0
        result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
                  "requests": int(re.search(r"(\d+) requests in", output).group(1)),
                  "non2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0,
                  "errors": sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))}
        for percentile in ("50", "99"):
            match = re.search(r"\s%s(?:\.000)?%%\s+([\d.]+)(us|ms|s)" % percentile, output)
            value, unit = float(match.group(1)), match.group(2)
            result["p" + percentile] = value * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]
        if pid:
            result["cpu_us"] = cpu * 1e6 / max(1, result["requests"])
        return result

    def paired(self, direct_url, targets, connections, rounds=3):
        """Direct and each target (a URL and the pid to charge CPU to) taken in turn, `rounds` of each (duration
        split between them), so all meet the same moments of a noisy machine. Returns direct's figures, then each
        target's: the median of each figure, and the summed counts."""
        duration = max(2, self.duration // rounds)
        runs = [[] for _ in range(1 + len(targets))]
        for _ in range(rounds):
            runs[0].append(self.wrk(direct_url, connections, UNIQUE_LUA, duration=duration))
            for index, (url, pid) in enumerate(targets, start=1):
                runs[index].append(self.wrk(url, connections, UNIQUE_LUA, duration=duration, pid=pid))

        def combine(runs):
            combined = {figure: statistics.median(run[figure] for run in runs) for figure in ("rps", "p50", "p99", "cpu_us") if figure in runs[0]}
            for count in ("requests", "non2xx", "errors"):
                combined[count] = sum(run[count] for run in runs)
            return combined
        return [combine(side) for side in runs]

    # MARK: the stack's floor

    FLOOR_MODES = (("nio", "SwiftNIO only"), ("hummingbird", "Hummingbird route"))

    def start_floors(self, upstream_url):
        """With --floor, starts bench-floor in its two modes (a proxy that only forwards, see
        Sources/bench-floor) and returns their (URL, pid) for `paired`; else none."""
        if not self.floor:
            return []
        upstream_port = int(upstream_url.rsplit(":", 1)[1])
        targets = []
        for (mode, _), port in zip(self.FLOOR_MODES, (PORTS["floor-nio"], PORTS["floor-hummingbird"])):
            process = self.spawn([self.floor, mode, str(port), str(upstream_port)])
            self.wait_port(port)
            if process.poll() is not None:
                raise SystemExit("bench-floor %s exited at start" % mode)
            targets.append(("http://127.0.0.1:%d" % port, process.pid))
        return targets

    def floor_rows(self, one_direct, one_floors, direct, floored):
        """The floors' rows: the same figures as the gateway's, for a proxy that only forwards."""
        for (_, name), one, sixteen in zip(self.FLOOR_MODES, one_floors, floored):
            self.row("stack floor, %s: added latency p50 / p99" % name, "",
                     "%.0f us / %.0f us" % (one["p50"] - one_direct["p50"], one["p99"] - one_direct["p99"]))
            self.row("stack floor, %s: throughput, 16 connections" % name, "",
                     "%.0f req/s (%.0f%%), %d non-2xx, %d socket errors" % (sixteen["rps"], 100 * sixteen["rps"] / direct["rps"], sixteen["non2xx"], sixteen["errors"]))
            self.row("stack floor, %s: CPU per answer, 1 / 16 connections" % name, "",
                     "%.0f us / %.0f us" % (one["cpu_us"], sixteen["cpu_us"]))

    # MARK: streams

    def stream_once(self, port, authorised, model="bench-stream"):
        """One streamed request: (time to first content chunk, gaps between content chunks, each content chunk's
        time from the upstream's send to its arrival here), in microseconds."""
        body = json.dumps({"model": model, "stream": True,
                           "messages": [{"role": "user", "content": "stream %d" % time.time_ns()}]}).encode()
        connection = socket.create_connection(("127.0.0.1", port))
        headers = "POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nConnection: close\r\n"
        if authorised:
            headers += "Authorization: Bearer %s\r\nCache-Control: no-store\r\n" % KEY
        started = time.perf_counter()
        connection.sendall((headers + "Content-Length: %d\r\n\r\n" % len(body)).encode() + body)
        arrivals, deliveries, buffer = [], [], b""
        while True:
            data = connection.recv(65536)
            if not data:
                break
            now = time.perf_counter()
            received_ns = time.monotonic_ns()
            buffer += data
            deliveries.extend((received_ns - int(sent)) / 1e3 for sent in re.findall(rb"tok\d+@(\d+)", data))
            end = buffer.rfind(b"\n\n")
            if end < 0:
                continue
            complete, buffer = buffer[:end + 2], buffer[end + 2:]
            arrivals.extend([now] * (complete.count(b'"content": "tok') + complete.count(b'"content":"tok')))
            if b"[DONE]" in complete:
                break
        connection.close()
        if not arrivals:
            raise SystemExit("a stream brought no content chunk (port %d)" % port)
        first = (arrivals[0] - started) * 1e6
        gaps = [(b - a) * 1e6 for a, b in zip(arrivals, arrivals[1:])]
        return first, gaps, deliveries

    def streams(self, port, authorised, count=10):
        firsts, gaps, deliveries = [], [], []
        for _ in range(count):
            first, between, delivered = self.stream_once(port, authorised)
            firsts.append(first)
            gaps.extend(between)
            deliveries.extend(delivered)
        return (statistics.median(firsts), statistics.median(gaps), percentile(gaps, 99),
                statistics.median(deliveries), percentile(deliveries, 99))

    def open_streams(self, gateway_pid, count):
        """Opens `count` concurrent streams through the gateway; returns its RSS (MiB) while all are open."""
        async def one(ready, done):
            reader, writer = await asyncio.open_connection("127.0.0.1", PORTS["gateway"])
            body = json.dumps({"model": "bench-long", "stream": True, "messages": [{"role": "user", "content": "open %d" % time.time_ns()}]}).encode()
            writer.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\nCache-Control: no-store\r\nConnection: close\r\n"
                          "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (KEY, len(body))).encode() + body)
            await writer.drain()
            seen = b""
            while b"tok0" not in seen:
                data = await reader.read(65536)
                if not data:
                    break
                seen += data
            ready.append(b"tok0" in seen)
            await done.wait()
            writer.close()

        async def run():
            ready, done = [], asyncio.Event()
            tasks = [asyncio.create_task(one(ready, done)) for _ in range(count)]
            deadline = time.time() + LONG_CHUNKS * LONG_INTERVAL_MS / 2000
            while len(ready) < count and time.time() < deadline:
                await asyncio.sleep(0.05)
            rss = self.rss_mib(gateway_pid)
            opened = sum(ready)
            done.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            return rss, opened

        return asyncio.run(run())

    def admin(self, path):
        """The JSON answer to `GET path` on the gateway's admin socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(os.path.join(self.work, "admin", "admin.sock"))
            connection.sendall(b"GET %s HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n" % path.encode())
            answer = b""
            while data := connection.recv(65536):
                answer += data
        return json.loads(answer.split(b"\r\n\r\n", 1)[1])

    def cache_hits(self):
        """The gateway's cache hits so far."""
        return self.admin("/cache")["hits"]

    def jobs_queued(self):
        """How often the gateway's tasks were put on an event loop's queue so far."""
        return self.admin("/status")["task_jobs_queued"]

    def logged_rows(self, config):
        output = subprocess.run([self.binary, "stats", "--config", config, "--since", "1d", "--by", "key", "--json"],
                                capture_output=True, text=True, check=True, cwd=self.work).stdout
        return sum(row["requests"] for row in json.loads(output))

    # MARK: the run

    def row(self, figure, direct, gateway, target=""):
        print("  %s: %s %s" % (figure, direct, gateway), file=sys.stderr, flush=True)
        self.rows.append((figure, direct, gateway, target))

    def run(self):
        print("starting nginx, the streaming upstreams and redis-server", file=sys.stderr, flush=True)
        self.start_upstreams()
        print("starting the gateway", file=sys.stderr, flush=True)
        nginx = "http://127.0.0.1:%d" % PORTS["nginx"]
        gateway_url = "http://127.0.0.1:%d" % PORTS["gateway"]

        gateway, ready_seconds, config = self.start_gateway("memory")
        time.sleep(1)
        idle = self.rss_mib(gateway.pid)
        self.row("start-up to ready", "", "%.0f ms" % (ready_seconds * 1000), "<= 300 ms")
        self.row("RSS idle", "", "%.1f MiB" % idle, "<= 30 MiB")

        # Warm both paths (connection pools, allocator).
        hits_before_misses = self.cache_hits()
        self.wrk(nginx, 4, UNIQUE_LUA, duration=2)
        sent = self.wrk(gateway_url, 4, UNIQUE_LUA, duration=2)["requests"]

        floors = self.start_floors(nginx)
        one_direct, one_gateway, *one_floors = self.paired(nginx, [(gateway_url, gateway.pid)] + floors, 1)
        self.row("latency p50, 1 connection", "%.0f us" % one_direct["p50"], "%.0f us" % one_gateway["p50"])
        self.row("latency p99, 1 connection", "%.0f us" % one_direct["p99"], "%.0f us" % one_gateway["p99"])
        self.row("added latency p50 / p99", "", "%.0f us / %.0f us" % (one_gateway["p50"] - one_direct["p50"], one_gateway["p99"] - one_direct["p99"]),
                 "<= 100 us / 1 ms")
        sent += one_gateway["requests"]
        for connections in (16, 64):
            jobs_before = self.jobs_queued()
            direct, through, *floored = self.paired(nginx, [(gateway_url, gateway.pid)] + (floors if connections == 16 else []), connections)
            jobs_per_answer = (self.jobs_queued() - jobs_before) / max(1, through["requests"])
            sent += through["requests"]
            target = ">= 30% of direct" if connections == 16 else ""
            self.row("throughput, %d connections" % connections, "%.0f req/s" % direct["rps"],
                     "%.0f req/s (%.0f%%), %d non-2xx, %d socket errors" % (through["rps"], 100 * through["rps"] / direct["rps"], through["non2xx"], through["errors"]), target)
            if connections == 16:
                self.row("gateway CPU per answer, 1 / 16 connections", "",
                         "%.0f us / %.0f us" % (one_gateway["cpu_us"], through["cpu_us"]))
                self.row("task jobs queued per answer, 16 connections", "", "%.1f" % jobs_per_answer)
                if floors:
                    self.floor_rows(one_direct, one_floors, direct, floored)
            if connections == 64:
                self.row("RSS after load (peak)", "", "%.1f MiB" % self.rss_mib(gateway.pid, "VmHWM"))
        # The figures above are for answers from the upstream: a prompt repeated by a thread or a run would be a
        # cache hit and flatter them.
        hits = self.cache_hits() - hits_before_misses
        self.row("cache hits during the runs above", "", "%d" % hits, "0 (every prompt new)")
        if hits:
            raise SystemExit("%d cache hits while every prompt should have been new: the figures are not for misses" % hits)

        first_direct, gap_direct, gap99_direct, sent_direct, sent99_direct = self.streams(PORTS["stream"], False)
        first_gateway, gap_gateway, gap99_gateway, sent_gateway, sent99_gateway = self.streams(PORTS["gateway"], True)
        self.row("stream: first content chunk", "%.0f us" % first_direct, "%.0f us (+%.0f us)" % (first_gateway, first_gateway - first_direct))
        self.row("stream: gap between chunks p50 / p99", "%.0f / %.0f us" % (gap_direct, gap99_direct),
                 "%.0f / %.0f us (%+.0f / %+.0f us)" % (gap_gateway, gap99_gateway, gap_gateway - gap_direct, gap99_gateway - gap99_direct))
        self.row("stream: chunk sent to received p50 / p99", "%.0f / %.0f us" % (sent_direct, sent99_direct),
                 "%.0f / %.0f us (%+.0f / %+.0f us)" % (sent_gateway, sent99_gateway, sent_gateway - sent_direct, sent99_gateway - sent99_direct),
                 "each chunk within 1 ms")
        cpu_before = self.cpu_seconds(gateway.pid)
        _, _, fast_direct = self.stream_once(PORTS["fast"], False, model="bench-fast")
        cpu_direct = self.cpu_seconds(gateway.pid)
        _, _, fast_gateway = self.stream_once(PORTS["gateway"], True, model="bench-fast")
        cpu_per_chunk = (self.cpu_seconds(gateway.pid) - cpu_direct) * 1e6 / max(len(fast_gateway), 1)
        self.row("stream, chunks 1 ms apart: sent to received p50 / p99",
                 "%.0f / %.0f us" % (percentile(fast_direct, 50), percentile(fast_direct, 99)),
                 "%.0f / %.0f us" % (percentile(fast_gateway, 50), percentile(fast_gateway, 99)))
        self.row("stream, chunks 1 ms apart: gateway CPU per chunk", "", "%.0f us (idle while direct: %.0f ms)" % (
            cpu_per_chunk, (cpu_direct - cpu_before) * 1e3))
        rss, opened = self.open_streams(gateway.pid, 1000)
        self.row("RSS with 1,000 open streams", "", "%.1f MiB (%d of 1000 streaming)" % (rss, opened), "< 150 MiB")

        # Let the thousand streams' connections and request-log rows drain before timing cache hits.
        time.sleep(5)
        sent += self.wrk(gateway_url, 1, SAME_LUA, duration=2)["requests"]
        hit = self.wrk(gateway_url, 1, SAME_LUA, pid=gateway.pid)
        jobs_before = self.jobs_queued()
        hit16 = self.wrk(gateway_url, 16, SAME_LUA, pid=gateway.pid)
        jobs_per_hit = (self.jobs_queued() - jobs_before) / max(1, hit16["requests"])
        self.row("cache hit (memory) p50 / p99, 1 connection", "", "%.0f us / %.0f us" % (hit["p50"], hit["p99"]), "p50 <= 150 us")
        self.row("cache hit (memory), 16 connections", "", "%.0f req/s" % hit16["rps"])
        self.row("gateway CPU per cache hit (memory), 1 / 16 connections", "", "%.0f us / %.0f us" % (hit["cpu_us"], hit16["cpu_us"]))
        self.row("task jobs queued per cache hit, 16 connections", "", "%.1f" % jobs_per_hit)
        sent += 10 + 1000 + hit["requests"] + hit16["requests"]
        self.stop_gateway(gateway)
        logged = self.logged_rows(config)
        self.row("request log: rows / answers counted by clients", "", "%d / %d" % (logged, sent),
                 "every request logged")  # rows may exceed answers: wrk stops with requests in flight

        gateway, _, _ = self.start_gateway("redis")
        self.wrk(gateway_url, 1, SAME_LUA, duration=1)
        hit = self.wrk(gateway_url, 1, SAME_LUA)
        hit16 = self.wrk(gateway_url, 16, SAME_LUA)
        self.row("cache hit (Redis) p50 / p99, 1 connection", "", "%.0f us / %.0f us" % (hit["p50"], hit["p99"]))
        self.row("cache hit (Redis), 16 connections", "", "%.0f req/s" % hit16["rps"])
        self.stop_gateway(gateway)

        if self.other:
            other = self.wrk(self.other, 1, UNIQUE_LUA)
            other16 = self.wrk(self.other, 16, UNIQUE_LUA)
            self.row("other gateway (%s) p50 / p99, 1 connection" % self.other, "", "%.0f us / %.0f us" % (other["p50"], other["p99"]))
            self.row("other gateway, 16 connections", "", "%.0f req/s" % other16["rps"])

    def print_table(self):
        header = ("figure", "direct to upstream", "through llm-gateway", "target")
        widths = [max(len(str(row[index])) for row in [header] + self.rows) for index in range(4)]
        for row in [header, tuple("-" * width for width in widths)] + self.rows:
            print("| " + " | ".join(str(cell).ljust(widths[index]) for index, cell in enumerate(row)) + " |")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--other", help="another gateway's base URL, already pointed at the same nginx upstream")
    parser.add_argument("--floor", metavar="BENCH_FLOOR", help="the bench-floor binary: adds the stack's floor (a proxy that only forwards) to the runs")
    arguments = parser.parse_args()
    bench = Bench(arguments.binary, arguments.duration, arguments.other, arguments.floor)
    try:
        bench.run()
    finally:
        bench.stop_all()
    bench.print_table()


if __name__ == "__main__":
    main()
