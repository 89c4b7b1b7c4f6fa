"""What keeping Responses API responses costs: `POST /v1/responses` with `store: false` and `store: true`.

    python3 bench/responses.py NEW_BINARY [--baseline OLD_BINARY] [--rounds 4] [--duration 5]

Runs the harness's upstreams (`harness.Bench`), then in each round, one gateway at a time with the exact cache off
and the SQLite request log on: chat completions through OLD_BINARY and NEW_BINARY (with --baseline: is the chat
path unchanged?), and Responses requests with `store: false` and `store: true` through NEW_BINARY. Every request asks
something new (the run's nonce, the wrk thread and a counter), at 16 connections after a 2 s warm-up. Prints each
round and the medians: the gateway's CPU per request, requests per second, p50 and p99.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import PORTS, UNIQUE_LUA, Bench  # noqa: E402


def responses_lua(store):
    """The harness's every-request-new script, posting Responses requests, kept or not."""
    script = UNIQUE_LUA.replace('"messages":[{"role":"user","content":', '"store":%s,"input":' % ("true" if store else "false"))
    script = script.replace("""'"}]}'""", """'"}'""").replace("/v1/chat/completions", "/v1/responses")
    assert "/v1/responses" in script and '"input":' in script and "}]}" not in script
    return script


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--baseline", help="an older binary whose chat path is compared")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5)
    options = parser.parse_args()
    cases = [("responses, store: false", options.binary, responses_lua(False), "/v1/responses"),
             ("responses, store: true", options.binary, responses_lua(True), "/v1/responses")]
    if options.baseline:
        cases = [("chat, baseline", options.baseline, UNIQUE_LUA, "/v1/chat/completions"),
                 ("chat", options.binary, UNIQUE_LUA, "/v1/chat/completions")] + cases
    bench = Bench(options.binary, options.duration, None)
    results = {}
    try:
        bench.start_upstreams()
        for round_number in range(options.rounds):
            for label, binary, lua, path in cases:
                bench.binary = binary
                process, _, _ = bench.start_gateway(cache_backend="off")
                url = "http://127.0.0.1:%d%s" % (PORTS["gateway"], path)
                bench.wrk(url, 16, lua, duration=2)
                run = bench.wrk(url, 16, lua, pid=process.pid)
                Bench.stop_gateway(process)
                if run["non2xx"] or run["errors"]:
                    raise SystemExit("%s: %d non-2xx answers, %d socket errors" % (label, run["non2xx"], run["errors"]))
                results.setdefault(label, []).append(run)
                print("round %d %-24s CPU/req %6.1f us  rps %6.0f  p50 %5.0f us  p99 %6.0f us" % (
                    round_number, label, run["cpu_us"], run["rps"], run["p50"], run["p99"]), flush=True)
    finally:
        bench.stop_all()
    print("\nmedians of %d rounds" % options.rounds)
    for label, *_ in cases:
        runs = results[label]
        print("%-24s CPU/req %6.1f us  rps %6.0f  p50 %5.0f us  p99 %6.0f us" % (
            label, *(statistics.median(run[key] for run in runs) for key in ("cpu_us", "rps", "p50", "p99"))))


if __name__ == "__main__":
    main()
