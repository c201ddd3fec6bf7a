#!/usr/bin/env python3
"""Write small seed inputs for the libFuzzer harnesses into tests/fuzz/corpus/
(deterministic). GGUF seeds: micro llama and sigma models (< 8 KB each).

Session seeds are real session files of the fuzzers' default model
(models/sigma-austen.gguf), written through the Python bindings, so the
library must be built:

    SIGMA_LIBRARY=build/release/libsigma.so.0 PYTHONPATH=bindings/python \
        python3 tests/fuzz/make_seeds.py

Without it only the junk session seed is written."""
import os
import sys

import numpy as np
from gguf import GGUFWriter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "reference"))
import make_fixtures as mf  # noqa: E402


def micro(path, arch, shape, seed):
    W = mf.make_weights(seed, shape)
    mf.VOCAB  # vocab of the fixtures (97)
    mf.write(path, arch, shape, W, "f32")


def main():
    c = os.path.join(HERE, "corpus")
    for d in ("gguf", "tokenizer", "chat", "session"):
        os.makedirs(os.path.join(c, d), exist_ok=True)
    mf.VOCAB = 16
    micro(os.path.join(c, "gguf", "llama.gguf"), "llama",
          dict(embd=32, ff=32, layers=1, nq=2, nk=1, nv=1, dqk=16, dv=16, aug=0), 7)
    micro(os.path.join(c, "gguf", "sigma.gguf"), "sigma",
          dict(embd=32, ff=32, layers=1, nq=4, nk=1, nv=2, dqk=8, dv=8, aug=32, tied=True), 8)
    # one micro file per other architecture, in llama.cpp's converter layout
    # (the fixtures' 97-token vocabulary, so that they open with it)
    mf.VOCAB = len(mf.TOK_TEXT)
    for i, arch in enumerate(("qwen2", "qwen3", "gemma3", "gemma2", "phi3")):
        sh = dict(mf.ARCH_SHAPES[arch], embd=16, ff=16, layers=2 if arch != "gemma3" else 6,
                  nq=2, nk=1, dqk=8)
        mf.write_arch(os.path.join(c, "gguf", f"{arch}.gguf"), arch, sh,
                      mf.make_arch_weights(arch, 20 + i, sh))
    mf.VOCAB = 16
    texts = {
        "ascii.txt": b"\x00It is a truth universally acknowledged, that a single man...",
        "unicode.txt": b"\x01caf\xc3\xa9 \xce\xb1\xce\xb2 \xd0\xb6 \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x98\x80 '\xe2\x80\x99s",
        "specials.txt": b"\x03<|begin_of_text|>Hello<|end_of_text|> <|im_start|>user\n",
        "invalid.txt": b"\x00\xff\xfe\xc3(\xe2\x82 \xf0\x28\x8c\xbc  \t\r\n\n123456789",
    }
    for name, data in texts.items():
        with open(os.path.join(c, "tokenizer", name), "wb") as f:
            f.write(data)
    chats = {
        "one.bin": b"user\x00What is the capital of France?\x00",
        "three.bin": b"system\x00Be brief.\x00user\x00Hi\x00assistant\x00Hello!\x00",
        "odd.bin": b"\x00\x00tool\x00<|im_end|>\x00",
    }
    for name, data in chats.items():
        with open(os.path.join(c, "chat", name), "wb") as f:
            f.write(data)
    with open(os.path.join(c, "session", "junk.bin"), "wb") as f:
        f.write(b"SIGSESS\x00" + bytes(96))
    session_seeds(os.path.join(c, "session"))


def session_seeds(d):
    """Session files of the fuzz model: format versions 1 (no sampler) and 2
    (sampler state, a wrapped penalty window), stored and deflated, and an
    empty session. Small: a few tokens, n_ctx <= 64 (the harness's)."""
    try:
        import sigma
    except (ImportError, OSError) as e:
        print("session seeds skipped (build the library and set SIGMA_LIBRARY): %s" % e)
        return
    model = os.path.join(HERE, "..", "..", "models", "sigma-austen.gguf")
    with sigma.Model(model) as m:
        def write(name, n_tokens, level, with_sampler, n_history=None):
            with sigma.Session(m, n_ctx=64, n_threads=1, save_compression=level) as s, \
                    sigma.Sampler(m, temperature=0.9, repeat_penalty=1.2, penalty_last_n=2, seed=7) as smp:
                toks = [1 + (i * 7) % 40 for i in range(n_tokens)]
                if toks:
                    s.eval(toks)
                hist = toks if n_history is None else [5 + i for i in range(n_history)]
                for t in hist:
                    smp.accept(t)
                if with_sampler:
                    s.set_sampler(smp)
                data = s.save_bytes()
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            print("%s: %d bytes" % (name, len(data)))
        write("empty.bin", 0, 0, False)
        # no tokens or logits: small, so most mutations land on the sampler state
        write("v2-empty-stored.bin", 0, 0, True, n_history=3)
        write("v1-stored.bin", 3, 0, False)
        write("v1-deflate.bin", 3, 1, False)
        write("v2-stored.bin", 3, 0, True)
        write("v2-deflate.bin", 3, 1, True)


if __name__ == "__main__":
    main()
