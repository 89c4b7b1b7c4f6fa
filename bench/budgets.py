"""What budgets cost on the request path, in one run: the same binary with no budgets, with budgets in memory and
with budgets in Redis, in turns; and, with --baseline, the binary before budgets with no budgets, for throughput.

Usage: python3 bench/budgets.py BINARY [--baseline OLD_BINARY] [--rounds 3] [--duration 4]

Prints, per variant, the median over rounds of: p50 at 1 connection (every request a new prompt, answered by
nginx), CPU per request, requests per second at 16 connections; and, for Redis, the budget scripts Redis ran per
request (INFO commandstats).
"""
import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Bench, PORTS, UNIQUE_LUA  # noqa: E402

BUDGETS = """
budgets:
  - {name: per-customer, per: [customer], limit_usd: 1000000, window: day}
  - {name: everything, limit_usd: 1000000, window: month, mode: soft}
"""


class BudgetBench(Bench):
    variant = "none"

    def write_config(self, cache_backend="memory", log_path=None):
        path = super().write_config(cache_backend, log_path)
        with open(path) as file:
            lines = file.read().splitlines()
        # Budgets use Redis whenever the file has a redis section: keep it only for the Redis variant.
        if self.variant != "redis":
            lines = [line for line in lines if not line.startswith("redis:")]
        text = "\n".join(lines) + "\n"
        if self.variant in ("memory", "redis"):
            text += BUDGETS
        with open(path, "w") as file:
            file.write(text)
        return path


def redis_calls():
    output = subprocess.run(["redis-cli", "-p", str(PORTS["redis"]), "INFO", "commandstats"], capture_output=True, text=True).stdout
    calls = 0
    for line in output.splitlines():
        if line.startswith("cmdstat_evalsha:") or line.startswith("cmdstat_eval:"):
            calls += int(line.split("calls=")[1].split(",")[0])
    return calls


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4)
    options = parser.parse_args()
    variants = [("none", options.binary), ("memory", options.binary), ("redis", options.binary)]
    if options.baseline:
        variants.insert(0, ("baseline", options.baseline))
    bench = BudgetBench(options.binary, options.duration, None)
    results = {label: [] for label, _ in variants}
    try:
        bench.start_upstreams()
        url = "http://127.0.0.1:%d/v1/chat/completions" % PORTS["gateway"]
        for round_number in range(options.rounds):
            for label, binary in variants if round_number % 2 == 0 else list(reversed(variants)):
                bench.binary = os.path.abspath(binary)
                bench.variant = "none" if label == "baseline" else label
                process, _, _ = bench.start_gateway()
                bench.wrk(url, 16, UNIQUE_LUA, duration=1)
                one = bench.wrk(url, 1, UNIQUE_LUA, duration=options.duration, pid=process.pid)
                before = redis_calls()
                many = bench.wrk(url, 16, UNIQUE_LUA, duration=options.duration, pid=process.pid)
                scripts = (redis_calls() - before) / max(1, many["requests"])
                Bench.stop_gateway(process)
                results[label].append((one["p50"], one["cpu_us"], many["rps"], scripts))
                print("round %d %-8s p50 %4.0f us  cpu %5.1f us  %6.0f req/s  redis scripts/request %.2f"
                      % (round_number, label, one["p50"], one["cpu_us"], many["rps"], scripts), flush=True)
    finally:
        bench.stop_all()
    print("\nmedians over %d rounds" % options.rounds)
    base = statistics.median(r[0] for r in results["none"])
    base_rps = statistics.median(r[2] for r in results["baseline" if options.baseline else "none"])
    for label, _ in variants:
        rows = results[label]
        p50 = statistics.median(r[0] for r in rows)
        rps = statistics.median(r[2] for r in rows)
        print("%-8s p50 %4.0f us (%+4.0f us against none)  cpu %5.1f us  %6.0f req/s (%+.1f %%)  redis scripts/request %.2f"
              % (label, p50, p50 - base, statistics.median(r[1] for r in rows), rps, (rps / base_rps - 1) * 100,
                 statistics.median(r[3] for r in rows)))


if __name__ == "__main__":
    main()
