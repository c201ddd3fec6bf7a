#!/usr/bin/env python3
"""python_example.py — the Python bindings (bindings/python).

    pip install ./bindings/python
    SIGMA_LIBRARY=build/libsigma.so.0 python3 examples/python_example.py [MODEL] [PROMPT]

Without MODEL, uses $SIGMA_TEST_MODEL.
"""
import os
import sys

import sigma


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SIGMA_TEST_MODEL")
    if not path:
        sys.exit("usage: python_example.py MODEL [PROMPT]  (or set SIGMA_TEST_MODEL)")
    prompt = sys.argv[2] if len(sys.argv) > 2 else "It is a truth universally acknowledged"

    with sigma.Model(path) as model:
        info = model.info
        print("%s model %r: %d layers, vocabulary %d" % (info.arch, info.name, info.n_layers,
                                                          info.n_vocab), file=sys.stderr)
        with sigma.Session(model, n_ctx=512) as session:
            # plain generation, streamed piece by piece
            print(prompt, end="", flush=True)
            for piece in session.generate(prompt, max_tokens=48, temperature=0.7, seed=1,
                                          stop=["\n\n"]):
                print(piece, end="", flush=True)
            print()
            print("stopped by:", session.last_stats.stop_reason, file=sys.stderr)

        # a chat turn on a fresh session
        with sigma.Session(model, n_ctx=1024) as chat:
            messages = [{"role": "user", "content": "Name three colours."}]
            for piece in chat.chat(messages, max_tokens=48, temperature=0):
                print(piece, end="", flush=True)
            print()


if __name__ == "__main__":
    try:
        main()
    except sigma.SigmaError as e:
        sys.exit("error: %s" % e)
