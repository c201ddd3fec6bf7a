"""sigma-server driven by the real `openai` client, raw HTTP for the error
cases. Every server listens on a free loopback port (--port 0, the port is
read from --port-file) and is stopped by the test that started it; every loop
is bounded in count and time."""
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import jsonschema
import openai
import pytest

SERVER = os.environ["SIGMA_SERVER"]
MODEL = os.environ["SIGMA_TEST_MODEL"]
# ThreadSanitizer build (tests/server/meson.build): the same concurrency with
# fewer tokens; waits scale with the slower forward pass
TSAN = os.environ.get("SIGMA_SERVER_TSAN") == "1"
SLOW = 20 if TSAN else 1
heavy = pytest.mark.skipif(TSAN, reason="single-request output checks: not rerun under TSan")
NAME = os.path.basename(MODEL)[: -len(".gguf")] if MODEL.endswith(".gguf") else os.path.basename(MODEL)


SANITIZER_MARKS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


class Server:
    def __init__(self, *args):
        self.dir = tempfile.TemporaryDirectory()
        port_file = os.path.join(self.dir.name, "port")
        self.log = open(os.path.join(self.dir.name, "log"), "w+")
        self.proc = subprocess.Popen(
            [SERVER, "-m", MODEL, "--port", "0", "--port-file", port_file, "-t", "2", *args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("sigma-server did not start:\n" + self.output())
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())
        self.base = f"http://127.0.0.1:{self.port}"

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def client(self, key="none", **kw):
        return openai.OpenAI(base_url=self.base + "/v1", api_key=key, max_retries=0, timeout=600, **kw)

    def request(self, method, path, body=None, headers=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def get_json(self, path):
        status, data = self.request("GET", path)
        return status, json.loads(data)

    def metric(self, name):
        status, data = self.request("GET", "/metrics")
        assert status == 200
        for line in data.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def stop(self, timeout=30):
        """SIGTERM; returns the exit status (the process is gone after)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def close(self):
        """Kill, clean up, and fail on any sanitizer report in the server's
        output (the ASan/UBSan and TSan builds run this suite too)."""
        self.kill()
        out = self.output()
        self.log.close()
        self.dir.cleanup()
        if any(m in out for m in SANITIZER_MARKS):
            raise AssertionError("sanitizer report from sigma-server:\n" + out[-8000:])


@pytest.fixture(scope="module")
def srv():
    s = Server("--parallel", "4", "--ctx-size", "1024")
    try:
        yield s
        rc = s.stop()
        assert rc == 0, s.output()
    finally:
        s.close()


def chat(client, content, **kw):
    return client.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": content}], **kw)


def test_models(srv):
    models = srv.client().models.list()
    ids = [m.id for m in models.data]
    assert ids == [NAME]
    assert srv.client().models.retrieve(NAME).id == NAME


def test_health(srv):
    status, h = srv.get_json("/health")
    assert status == 200 and h["status"] == "ok"


def test_chat_and_stream(srv):
    c = srv.client()
    r = chat(c, "What is the capital of France?", max_tokens=24, temperature=0)
    text = r.choices[0].message.content
    assert r.choices[0].message.role == "assistant"
    assert text
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    pieces = []
    finish = None
    usage = None
    stream = chat(c, "What is the capital of France?", max_tokens=24, temperature=0,
                  stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta.content:
                pieces.append(ch.delta.content)
            if ch.finish_reason:
                finish = ch.finish_reason
    assert "".join(pieces) == text
    assert len(pieces) > 1
    assert finish == r.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens


def test_stream_ends_with_done(srv):
    status, data = srv.request("POST", "/v1/chat/completions",
                               {"messages": [{"role": "user", "content": "Hi"}],
                                "max_tokens": 4, "temperature": 0, "stream": True})
    assert status == 200
    events = [e for e in data.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    for e in events[:-1]:
        json.loads(e[len("data: "):])


def test_completion(srv):
    c = srv.client()
    r = c.completions.create(model=NAME, prompt="The quick brown fox", max_tokens=12,
                             temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.usage.completion_tokens <= 12
    s = "".join(ch.choices[0].text for ch in
                c.completions.create(model=NAME, prompt="The quick brown fox", max_tokens=12,
                                     temperature=0, stream=True) if ch.choices)
    assert s == r.choices[0].text


@heavy
def test_stop_and_max_tokens(srv):
    c = srv.client()
    full = c.completions.create(model=NAME, prompt="1, 2, 3, 4, 5,", max_tokens=20,
                                temperature=0).choices[0].text
    assert " 7," in full, full
    r = c.completions.create(model=NAME, prompt="1, 2, 3, 4, 5,", max_tokens=20, temperature=0,
                             stop=[" 7,"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == full[: full.index(" 7,")]
    r = c.completions.create(model=NAME, prompt="1, 2, 3, 4, 5,", max_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


@heavy
def test_seeded_sampling_repeats(srv):
    c = srv.client()
    a = chat(c, "Tell me a story.", max_tokens=16, temperature=1.0, top_p=0.9, seed=42)
    b = chat(c, "Tell me a story.", max_tokens=16, temperature=1.0, top_p=0.9, seed=42)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_prefix_reuse(srv):
    c = srv.client()
    system = "You are a helpful assistant who answers briefly and precisely. " * 3
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": "Name a colour."}]
    c.chat.completions.create(model=NAME, messages=msgs, max_tokens=4, temperature=0)
    msgs[1]["content"] = "Name a fruit."
    r = c.chat.completions.create(model=NAME, messages=msgs, max_tokens=4, temperature=0)
    assert r.usage.prompt_tokens_details.cached_tokens > 30


PROMPTS = [f"Write one sentence about the number {i}." for i in range(24)] + \
          [f"Continue: {w}" for w in ("apples", "rivers", "winter", "the sea", "a castle",
                                      "the moon", "trains", "music", "a garden", "bread",
                                      "clocks", "rain", "a lighthouse", "the desert",
                                      "candles", "bees", "a bridge", "paper", "snow",
                                      "a violin", "mountains", "tea", "a forest", "stars")]


def test_load_no_mixing(srv):
    """48 requests from 12 threads at temperature 0: each answer equals the
    one the same prompt gets alone, nothing is dropped."""
    assert len(PROMPTS) == 48
    c = srv.client()
    # under TSan: 12 requests (6 chat, 6 completions) of 4 tokens from 6 threads
    prompts = PROMPTS[18:30] if TSAN else PROMPTS
    n_tok = 4 if TSAN else 12

    def ask(p):
        if p.startswith("Continue"):
            r = c.completions.create(model=NAME, prompt=p, max_tokens=n_tok, temperature=0)
            return r.choices[0].text
        return chat(c, p, max_tokens=n_tok, temperature=0).choices[0].message.content

    alone = {p: ask(p) for p in prompts}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(6 if TSAN else 12) as ex:
        together = list(ex.map(ask, prompts))
    assert time.monotonic() - t0 < 900
    mixed = [(p, alone[p], t) for p, t in zip(prompts, together) if alone[p] != t]
    assert not mixed, mixed[:3]
    status, h = srv.get_json("/health")
    assert h["slots_busy"] == 0 and h["queue"] == 0


def wait_idle(srv, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, h = srv.get_json("/health")
        if h["slots_busy"] == 0 and h["queue"] == 0:
            return True
        time.sleep(0.1)
    return False


LONG = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 900, "temperature": 0}


def test_disconnect_frees_slot(srv):
    before = srv.metric("sigma_requests_cancelled_total")
    # a non-streamed request whose client goes away
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    body = json.dumps(LONG).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.monotonic() + 2.0 * SLOW
    while time.monotonic() < deadline:
        _, h = srv.get_json("/health")
        if h["slots_busy"] == 1:
            break
        time.sleep(0.1)
    assert h["slots_busy"] == 1
    s.close()
    assert wait_idle(srv, 15 * SLOW)
    # a streamed one closed after a few chunks
    stream = srv.client().completions.create(model=NAME, stream=True, **LONG)
    n = 0
    for chunk in stream:
        n += 1
        if n == 3:
            break
    stream.close()
    assert wait_idle(srv, 15 * SLOW)
    assert srv.metric("sigma_requests_cancelled_total") == before + 2
    # and the server still serves
    assert chat(srv.client(), "Hi", max_tokens=2, temperature=0).choices[0].message.content


BAD = [
    # (path, body, expected status)
    ("/v1/chat/completions", "", 400),
    ("/v1/chat/completions", "{", 400),
    ("/v1/chat/completions", "nul", 400),
    ("/v1/chat/completions", '{"messages": []} trailing', 400),
    ("/v1/chat/completions", "[1, 2]", 400),
    ("/v1/chat/completions", '"just a string"', 400),
    ("/v1/chat/completions", {}, 400),
    ("/v1/chat/completions", {"messages": "hello"}, 400),
    ("/v1/chat/completions", {"messages": []}, 400),
    ("/v1/chat/completions", {"messages": [1]}, 400),
    ("/v1/chat/completions", {"messages": [{"content": "x"}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user"}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": 5, "content": "x"}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 7}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"text": "x"}]}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2.5}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "temperature": 3}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_p": 1.5}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "seed": "abc"}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stop": 5}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stop": [""]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 20}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "model": 3}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "model": "gpt-4o"}, 404),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": "json"}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": 5}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"json_schema": {"name": "a", "schema": {}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": "object"}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": 7, "schema": {"type": "object"}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": 5}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": False}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": "yes", "schema": {}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "banana"}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "string", "pattern": "^a+$"}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "integer", "minimum": 3}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"$ref": "#/$defs/missing"}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "required": "name"}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "properties": []}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"anyOf": []}}}}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, 400),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x " * 3000}]}, 400),
    ("/v1/completions", {}, 400),
    ("/v1/completions", {"prompt": 5}, 400),
    ("/v1/completions", {"prompt": ["a", "b"]}, 400),
    ("/v1/completions", {"prompt": [1, -2]}, 400),
    ("/v1/completions", {"prompt": [10 ** 9]}, 400),
    ("/v1/completions", {"prompt": []}, 400),
    ("/v1/completions", {"prompt": "x", "echo": True}, 400),
    ("/v1/completions", {"prompt": "x", "logprobs": 2}, 400),
    ("/v1/completions", {"prompt": "hello " * 2000}, 400),
    ("/v1/completions", "x" * (2 << 20), 413),
    ("/v1/nothing", {}, 404),
    ("/v1/models/not-a-model", None, 404),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_malformed(srv, case):
    path, body, want = BAD[case]
    method = "GET" if body is None else "POST"
    status, data = srv.request(method, path, body, {"Content-Type": "application/json"})
    assert status == want, (status, data[:300])
    err = json.loads(data)["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert "type" in err


def test_methods(srv):
    status, data = srv.request("GET", "/v1/chat/completions")
    assert status == 405 and json.loads(data)["error"]["message"]
    status, data = srv.request("POST", "/v1/models", {})
    assert status == 405


def test_serving_after_malformed(srv):
    assert len(BAD) >= 30
    r = chat(srv.client(), "Hello!", max_tokens=4, temperature=0)
    assert r.choices[0].message.content


def test_context_error_via_openai(srv):
    with pytest.raises(openai.BadRequestError) as e:
        srv.client().completions.create(model=NAME, prompt="word " * 3000, max_tokens=2)
    assert e.value.status_code == 400
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError):
        srv.client().completions.create(model="nope", prompt="x", max_tokens=2)


# (prompt, schema): every generated text must parse and validate
SCHEMAS = [
    ("Make up a person.",
     {"type": "object",
      "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
      "required": ["name", "age"]}),
    ("List some colours.",
     {"type": "object",
      "properties": {"colors": {"type": "array", "minItems": 1, "maxItems": 3,
                                "items": {"type": "string", "enum": ["red", "green", "blue"]}},
                     "ok": {"type": "boolean"}},
      "required": ["colors", "ok"], "additionalProperties": False}),
    ("Give me some numbers.",
     {"type": "array", "items": {"type": "number"}, "maxItems": 4}),
    ("Describe a city.",
     {"$defs": {"place": {"type": "object",
                          "properties": {"city": {"type": "string", "maxLength": 24},
                                         "country": {"type": "string", "maxLength": 24}},
                          "required": ["city", "country"]}},
      "type": "object",
      "properties": {"where": {"$ref": "#/$defs/place"},
                     "size": {"enum": ["small", "medium", "large"]},
                     "capital": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
                     "kind": {"const": "city"}},
      "required": ["where", "size", "capital", "kind"]}),
]
JSON_PROMPTS = ["What is the capital of France? Answer in JSON.",
                "Give the name and age of a person as JSON."]


def schema_format(schema):
    return {"type": "json_schema", "json_schema": {"name": "out", "strict": True, "schema": schema}}


def chat_text(client, prompt, stream=False, **kw):
    """(text, finish_reason) of a chat completion, streamed or not."""
    if not stream:
        r = chat(client, prompt, **kw)
        return r.choices[0].message.content, r.choices[0].finish_reason
    pieces, finish = [], None
    for chunk in chat(client, prompt, stream=True, **kw):
        for ch in chunk.choices:
            if ch.delta.content:
                pieces.append(ch.delta.content)
            if ch.finish_reason:
                finish = ch.finish_reason
    return "".join(pieces), finish


@heavy
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("case", range(len(SCHEMAS)))
def test_json_schema(srv, case, stream):
    prompt, schema = SCHEMAS[case]
    text, finish = chat_text(srv.client(), prompt, stream=stream, max_tokens=160, temperature=0,
                             response_format=schema_format(schema))
    assert finish == "stop", text
    jsonschema.validate(json.loads(text), schema)


@heavy
@pytest.mark.parametrize("stream", [False, True])
def test_json_object(srv, stream):
    for prompt in JSON_PROMPTS:
        text, finish = chat_text(srv.client(), prompt, stream=stream, max_tokens=160,
                                 temperature=0, response_format={"type": "json_object"})
        assert finish == "stop", text
        assert isinstance(json.loads(text), dict), text


@heavy
def test_json_schema_sampled_and_completion(srv):
    """At temperature 1 the grammar still holds; /v1/completions takes
    response_format too."""
    c = srv.client()
    prompt, schema = SCHEMAS[1]
    for seed in range(3):
        text, finish = chat_text(c, prompt, max_tokens=160, temperature=1.0, seed=seed,
                                 response_format=schema_format(schema))
        assert finish == "stop", text
        jsonschema.validate(json.loads(text), schema)
    status, data = srv.request("POST", "/v1/completions",
                               {"prompt": "A person as JSON:", "max_tokens": 160, "temperature": 0,
                                "response_format": schema_format(SCHEMAS[0][1])})
    assert status == 200, data
    jsonschema.validate(json.loads(json.loads(data)["choices"][0]["text"]), SCHEMAS[0][1])


def test_json_batched_no_mixing(srv):
    """Grammar-constrained and free requests share steps: each slot keeps
    its own sampler, so every answer equals the one it gets alone."""
    c = srv.client()
    jobs = [(p, schema_format(s)) for p, s in SCHEMAS] + \
           [(p, {"type": "json_object"}) for p in JSON_PROMPTS] + \
           [(p, None) for p in PROMPTS[:4]]
    if TSAN:  # the shortest answers: a schema, json_object, two free
        jobs = [jobs[0], jobs[4], jobs[6], jobs[7]]

    def ask(job):
        prompt, fmt = job
        kw = {"response_format": fmt} if fmt else {}
        return chat_text(c, prompt, stream=len(prompt) % 2 == 0, max_tokens=160 if fmt else 12,
                         temperature=0, **kw)[0]

    alone = [ask(j) for j in jobs]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        together = list(ex.map(ask, jobs))
    assert together == alone
    for (prompt, fmt), text in zip(jobs, together):
        if fmt and fmt["type"] == "json_schema":
            jsonschema.validate(json.loads(text), fmt["json_schema"]["schema"])


def test_json_schema_errors_name_the_problem(srv):
    c = srv.client()
    with pytest.raises(openai.BadRequestError) as e:
        chat(c, "x", max_tokens=2, response_format=schema_format({"type": "string",
                                                                   "pattern": "^a+$"}))
    assert e.value.code == "unsupported_value" and "pattern" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        chat(c, "x", max_tokens=2, response_format=schema_format({"type": "banana"}))
    assert e.value.code == "invalid_value" and "banana" in str(e.value)
    assert chat(c, "Hi", max_tokens=2, temperature=0).choices[0].message.content


def test_api_key():
    s = Server("--parallel", "1", "--ctx-size", "256", "--api-key", "secret-key")
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client(key="wrong").models.list()
        with pytest.raises(openai.AuthenticationError):
            chat(s.client(key="wrong"), "hi", max_tokens=2)
        status, data = s.request("GET", "/v1/models")
        assert status == 401 and json.loads(data)["error"]["code"] == "invalid_api_key"
        assert s.client(key="secret-key").models.list().data[0].id == NAME
        assert chat(s.client(key="secret-key"), "hi", max_tokens=2, temperature=0).choices
        status, _ = s.request("GET", "/health")  # health needs no key
        assert status == 200
        assert s.stop() == 0
    finally:
        s.close()


def test_sigterm_answers_a_request_being_read():
    """A request whose headers arrived before SIGTERM and whose body comes
    after it gets an answer (503 shutting_down), not a closed connection:
    the drain waits for it (the server used to stop at once when no slot
    was busy, closing such connections)."""
    s = Server("--parallel", "1", "--ctx-size", "512", "--drain-timeout", str(10 * SLOW))
    try:
        body = json.dumps({"prompt": "Hello", "max_tokens": 2}).encode()
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=60 * SLOW)
        head = ("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        sock.sendall(head.encode() + body[:5])
        time.sleep(0.3 * SLOW)  # the server has read the headers
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5 * SLOW)
        assert s.proc.poll() is None, "stopped with a request half read:\n" + s.output()
        sock.sendall(body[5:])
        r = http.client.HTTPResponse(sock)
        r.begin()
        data = r.read()
        assert r.status == 503 and json.loads(data)["error"]["code"] == "shutting_down", data
        sock.close()
        assert s.proc.wait(30 * SLOW) == 0
    finally:
        s.close()


def test_sigterm_drains():
    """SIGTERM with a request in flight: it is cancelled after the drain
    timeout, the server exits 0 within a bounded time."""
    s = Server("--parallel", "2", "--ctx-size", "1024", "--drain-timeout", "2")
    try:
        results = {}

        def run():
            try:
                results["r"] = s.request("POST", "/v1/completions", LONG, timeout=60)
            except Exception as e:  # connection closed is acceptable too
                results["r"] = e

        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(run)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                _, h = s.get_json("/health")
                if h["slots_busy"]:
                    break
                time.sleep(0.05)
            t0 = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            rc = s.proc.wait(30)
            assert rc == 0, s.output()
            assert time.monotonic() - t0 < 15
            fut.result(60)
        assert "r" in results
        # a short request finishes during a drain
        s2 = Server("--parallel", "1", "--ctx-size", "512", "--drain-timeout", str(10 * SLOW))
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as ex:
                fut = ex.submit(lambda: s2.request("POST", "/v1/completions",
                                                   {"prompt": "Hello", "max_tokens": 8}))
                # the signal once the request has a slot (a request still
                # being read when it comes is answered 503: the test above)
                deadline = time.monotonic() + 30 * SLOW
                while time.monotonic() < deadline and not fut.done():
                    _, h = s2.get_json("/health")
                    if h["slots_busy"] or h["queue"]:
                        break
                    time.sleep(0.01)
                s2.proc.send_signal(signal.SIGTERM)
                status, data = fut.result(60)
                assert status == 200 and json.loads(data)["choices"][0]["text"] is not None
            assert s2.proc.wait(30) == 0
        finally:
            s2.close()
    finally:
        s.close()
