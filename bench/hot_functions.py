"""Records the functions the gateway runs at start-up and on its request path, for the release link's layout.

`make release` links with lld and this list as its symbol ordering file (with every function in its own section),
so the code the daemon runs sits together at the front of the binary instead of scattered through 17 MiB of text.
The kernel maps a binary's code in 64 KiB around each page first touched, so scattered code costs resident memory
(idle RSS) and instruction-cache and TLB reach on every request.

It runs the daemon under qemu-user (`qemu-x86_64 -d in_asm`), which logs each block of code as it first translates
it, drives start-up, answers from the upstream (nginx) and from the cache, streams, `/v1/models`, `/healthz` and the
admin socket, and maps the logged addresses to the binary's function symbols. Names that no longer exist after a
change are skipped by the linker, so a stale list only lays out less well; record it again after larger changes:

    make release && python3 bench/hot_functions.py .build/release/llm-gateway release/hot-functions.txt

Needs qemu-user, nginx and redis-server (as bench/run.sh does). `--check BINARY LIST` (run by `make test-release`)
warns when fewer than 90 % of the listed functions are still in the binary: recording the list again is a release
step (bench/README.md), never a reason for CI to fail because code moved.
"""
import bisect
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ADDRESS = re.compile(rb"^0x([0-9a-f]+):")
START_CODE = re.compile(rb"^start_code\s+0x([0-9a-f]+)")


def function_symbols(binary):
    """The binary's function symbols as sorted (address, size, name) triples."""
    listing = subprocess.run(["nm", "-S", "--defined-only", "-n", binary], capture_output=True, text=True, check=True).stdout
    symbols = []
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTWw":
            symbols.append((int(parts[0], 16), max(int(parts[1], 16), 1), parts[3]))
    symbols.sort()
    return symbols


def code_segment_address(binary):
    """The address the binary's executable segment asks for; qemu's `start_code` is where it was loaded."""
    for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if fields[:1] == ["LOAD"] and "E" in fields[6:-1]:
            return int(fields[2], 16)
    raise SystemExit("%s has no executable segment" % binary)


def functions_in_log(log_path, symbols, end, segment_address):
    """Names of the functions whose code the log shows translated before byte `end`, in first-seen order."""
    starts = [symbol[0] for symbol in symbols]
    base, seen, order, read = None, set(), [], 0
    with open(log_path, "rb") as log:
        for line in log:
            read += len(line)
            if read > end:
                break
            if base is None:
                match = START_CODE.match(line)
                if match:
                    base = int(match.group(1), 16) - segment_address
                continue
            match = ADDRESS.match(line)
            if not match:
                continue
            offset = int(match.group(1), 16) - base
            index = bisect.bisect_right(starts, offset) - 1
            if index < 0:
                continue
            start, size, name = symbols[index]
            if offset < start + size and name not in seen:
                seen.add(name)
                order.append(name)
    if base is None:
        raise SystemExit("qemu's log has no start_code line")
    return order


def post(url, body, headers):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def drive(gateway, admin_socket):
    """The requests whose code paths should be laid out together."""
    headers = {"Authorization": "Bearer " + harness.KEY, "Content-Type": "application/json"}
    url = gateway + "/v1/chat/completions"
    for number in range(20):
        post(url, {"model": "bench", "messages": [{"role": "user", "content": "hot path %d" % number}]}, headers)
        post(url, {"model": "bench", "messages": [{"role": "user", "content": "hot path 0"}]}, headers)
    for _ in range(2):
        post(url, {"model": "bench-stream", "stream": True, "messages": [{"role": "user", "content": "stream"}]}, headers)
    urllib.request.urlopen(urllib.request.Request(gateway + "/v1/models", headers=headers), timeout=30).read()
    urllib.request.urlopen(gateway + "/healthz", timeout=30).read()
    subprocess.run(["curl", "-s", "--unix-socket", admin_socket, "http://admin/status"], capture_output=True, check=True)


def check(binary, listing, least):
    """Warns when fewer than `least` of the listed functions are still in the binary: the list has aged. A stale
    list only lays the binary out less well (the linker skips names it no longer has), so it never fails."""
    with open(listing) as file:
        listed = [line.strip() for line in file if line.strip() and not line.startswith("#")]
    names = {symbol[2] for symbol in function_symbols(binary)}
    found = sum(1 for name in listed if name in names)
    share = found / max(len(listed), 1)
    print("release layout: %d of the %d functions in %s are in the binary (%.0f%%)" % (found, len(listed), listing, share * 100))
    if share < least:
        print("warning: the list has aged; record it again before a release (python3 bench/hot_functions.py BINARY %s)" % listing)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        return check(sys.argv[2], sys.argv[3], least=0.9)
    if len(sys.argv) != 3:
        raise SystemExit("usage: python3 bench/hot_functions.py BINARY OUTPUT | --check BINARY LIST")
    binary, output = os.path.abspath(sys.argv[1]), sys.argv[2]
    bench = harness.Bench(binary, duration=1, other=None)
    try:
        bench.start_upstreams()
        config = bench.write_config("memory")
        log_path = os.path.join(bench.work, "qemu.log")
        gateway = bench.spawn(["qemu-x86_64", "-d", "in_asm,page", "-D", log_path, binary, "serve", "--config", config], cwd=bench.work)
        url = "http://127.0.0.1:%d" % harness.PORTS["gateway"]
        deadline = time.time() + 180
        while True:
            try:
                if urllib.request.urlopen(url + "/readyz", timeout=5).status == 200:
                    break
            except OSError:
                pass
            if gateway.poll() is not None or time.time() > deadline:
                raise SystemExit("the gateway did not become ready under qemu")
            time.sleep(0.2)
        time.sleep(1)
        started = os.path.getsize(log_path)
        drive(url, os.path.join(bench.work, "admin", "admin.sock"))
        end = os.path.getsize(log_path)
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        symbols = function_symbols(binary)
        segment = code_segment_address(binary)
        at_start = functions_in_log(log_path, symbols, started, segment)
        in_all = functions_in_log(log_path, symbols, end, segment)
        with open(output, "w") as file:
            file.write("# The gateway's functions run at start-up and on its request path, in the order first run\n")
            file.write("# (written by bench/hot_functions.py; lld's --symbol-ordering-file for `make release`).\n")
            file.write("".join(name + "\n" for name in in_all))
        listed = set(in_all)
        size = sum(symbol[1] for symbol in symbols if symbol[2] in listed)
        print("%d functions at start-up, %d in all, %.2f MiB of code" % (len(at_start), len(in_all), size / 1048576))
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
