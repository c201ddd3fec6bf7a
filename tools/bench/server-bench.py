#!/usr/bin/env python3
"""Latency and throughput of sigma-server next to llama.cpp's llama-server.

Starts each server on the same model with the same threads, slot count,
per-slot context and greedy sampling, then drives them with streamed
/v1/completions requests (the same raw prompts and max_tokens for both, so
the token input is identical and no chat template differs) at each
concurrency level. Servers are measured alternately in the same run: for
every level and round, each server runs one batch, the order flipping every
round. Reports per server and level: p50/p99 time to first token (request
sent -> first non-empty text chunk) over all requests of all rounds, and
aggregate generated tokens per second (tokens of a batch / the batch's wall
time; the median over rounds), plus sigma/llama ratios.

Run timings only on an otherwise idle machine. Example:
  tools/bench/server-bench.py -m SmolLM2-135M-Instruct.Q4_1.gguf \\
      --sigma build/release/tools/server/sigma-server \\
      --llama /path/to/llama-server [--llama /other/llama-server] \\
      --threads 2 --parallel 16 --levels 1,4,16 --rounds 3 --max-tokens 64

Only the Python standard library is used.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOPICS = ["the sea", "a castle", "the moon", "trains", "music", "a garden", "bread", "clocks",
          "rain", "a lighthouse", "the desert", "candles", "bees", "a bridge", "paper", "snow",
          "a violin", "mountains", "tea", "a forest", "stars", "winter", "rivers", "apples",
          "a library", "the wind", "a market", "glass", "a harbour", "owls", "copper", "fog"]


def prompt_for(i):
    t = TOPICS[i % len(TOPICS)]
    return (f"Here is a long and detailed story about {t}, told in plain sentences. "
            f"Chapter {i // len(TOPICS) + 1}. Once upon a time,")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Srv:
    def __init__(self, name, argv, port, log):
        self.name, self.argv, self.port, self.log = name, argv, port, log
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def one_request(port, prompt, max_tokens, out):
    """A streamed completion; appends (ttft_s, total_s, tokens, text)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]!r}")
    ttft = None
    chunks = 0
    usage = None
    text = []
    buf = b""
    done = False
    while not done:
        data = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not data:
            break
        buf += data
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:].strip()
                if payload == b"[DONE]":
                    done = True
                    break
                o = json.loads(payload)
                if o.get("usage"):
                    usage = o["usage"]
                for ch in o.get("choices") or []:
                    piece = ch.get("text") or ""
                    if piece:
                        if ttft is None:
                            ttft = time.perf_counter() - t0
                        chunks += 1
                        text.append(piece)
    total = time.perf_counter() - t0
    c.close()
    tokens = usage["completion_tokens"] if usage and "completion_tokens" in usage else chunks
    out.append((ttft if ttft is not None else total, total, tokens, "".join(text)))


def run_batch(port, n_clients, n_requests, max_tokens, first_prompt):
    """n_clients threads share n_requests requests; returns (results, wall_s)."""
    results = []
    lock = threading.Lock()
    next_i = [0]
    errors = []

    def worker():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= n_requests:
                return
            try:
                one_request(port, prompt_for(first_prompt + i), max_tokens, results)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(n_clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed: {errors[0]}")
    return results, wall


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--sigma", default="build/release/tools/server/sigma-server",
                    help="sigma-server binary")
    ap.add_argument("--llama", action="append", default=[],
                    help="llama-server binary (repeatable; each is measured)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=16, help="slots of every server")
    ap.add_argument("--ctx", type=int, default=512,
                    help="context per slot (llama-server gets -c ctx*parallel: it splits -c)")
    ap.add_argument("--levels", default="1,4,16", help="concurrent clients, comma-separated")
    ap.add_argument("--requests", type=int, default=0,
                    help="requests per batch (default: 2 x clients, at least 4)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    if not args.llama:
        args.llama = ["/work/llama-avx2/build/bin/llama-server"]
    levels = [int(x) for x in args.levels.split(",")]

    def on_term(signum, frame):  # stop the servers on SIGTERM too (finally below)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    logdir = tempfile.mkdtemp(prefix="server-bench-")
    servers = []
    try:
        port = free_port()
        servers.append(Srv("sigma", [args.sigma, "-m", args.model, "--port", str(port),
                                     "-t", str(args.threads), "--parallel", str(args.parallel),
                                     "--ctx-size", str(args.ctx), "--max-queue", "1024"],
                           port, open(os.path.join(logdir, "sigma.log"), "w")))
        for k, path in enumerate(args.llama):
            port = free_port()
            name = "llama" if len(args.llama) == 1 else f"llama{k + 1}"
            servers.append(Srv(name, [path, "-m", args.model, "--port", str(port),
                                      "-t", str(args.threads), "-tb", str(args.threads),
                                      "-np", str(args.parallel), "-c", str(args.ctx * args.parallel),
                                      "-cb", "--temp", "0"],
                               port, open(os.path.join(logdir, f"{name}.log"), "w")))
        for s in servers:
            s.wait_ready()
        for s in servers:  # warm-up: page the weights in, start the threads
            run_batch(s.port, 1, 2, 8, 10_000)

        res = {s.name: {lvl: {"ttft": [], "tps": [], "tokens": 0} for lvl in levels}
               for s in servers}
        first = 0
        for lvl in levels:
            n_req = args.requests or max(4, 2 * lvl)
            for rnd in range(args.rounds):
                order = servers if rnd % 2 == 0 else list(reversed(servers))
                for s in order:
                    results, wall = run_batch(s.port, lvl, n_req, args.max_tokens, first)
                    toks = sum(r[2] for r in results)
                    d = res[s.name][lvl]
                    d["ttft"] += [r[0] for r in results]
                    d["tps"].append(toks / wall)
                    d["tokens"] += toks
                    print(f"  {s.name:7s} clients {lvl:2d} round {rnd + 1}: {len(results)} requests, "
                          f"{toks} tokens in {wall:.2f} s = {toks / wall:.1f} tok/s, "
                          f"ttft p50 {1000 * pct([r[0] for r in results], 50):.0f} ms",
                          file=sys.stderr, flush=True)
                first += n_req  # the same prompts for every server in a round

        print(f"\nmodel {os.path.basename(args.model)}, {args.threads} threads, "
              f"{args.parallel} slots, {args.ctx} context per slot, greedy, "
              f"max_tokens {args.max_tokens}, {args.rounds} rounds, streamed /v1/completions\n")
        names = [s.name for s in servers]
        hdr = "| clients | server | requests | TTFT p50 (ms) | TTFT p99 (ms) | tokens/s (median of rounds) |"
        print(hdr)
        print("|---:|---|---:|---:|---:|---:|")
        for lvl in levels:
            for n in names:
                d = res[n][lvl]
                print(f"| {lvl} | {n} | {len(d['ttft'])} | {1000 * pct(d['ttft'], 50):.0f} | "
                      f"{1000 * pct(d['ttft'], 99):.0f} | {statistics.median(d['tps']):.1f} |")
        print()
        for n in names[1:]:
            for lvl in levels:
                a, b = res["sigma"][lvl], res[n][lvl]
                print(f"clients {lvl}: sigma/{n} tokens/s {statistics.median(a['tps']) / statistics.median(b['tps']):.2f}x, "
                      f"TTFT p50 {pct(a['ttft'], 50) / pct(b['ttft'], 50):.2f}x")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "results": res}, f, indent=1)
    finally:
        for s in servers:
            s.stop()
            s.log.close()
    print(f"(server logs in {logdir})", file=sys.stderr)


if __name__ == "__main__":
    main()
