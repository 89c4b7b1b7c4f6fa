"""Sequential latency of one request repeated over a keep-alive connection.

Usage: python3 bench/measure.py PORT KEY COUNT  -> prints p50 and p99 in microseconds, and the X-Cache-Hit seen.
The first request (a cache miss) is not counted.
"""
import http.client
import json
import sys
import time

port, key, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "benchmark prompt"}]})
headers = {"authorization": "Bearer " + key, "content-type": "application/json"}
connection = http.client.HTTPConnection("127.0.0.1", port)
samples, hits = [], set()
for index in range(count + 1):
    started = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body, headers)
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        sys.exit(f"status {response.status}")
    if index:
        samples.append(elapsed * 1e6)
        hits.add(response.getheader("x-cache-hit"))
samples.sort()
print(f"p50_us={samples[len(samples) // 2]:.0f} p99_us={samples[int(len(samples) * 0.99)]:.0f} cache={','.join(sorted(hits))}")
