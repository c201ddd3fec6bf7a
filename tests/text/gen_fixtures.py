#!/usr/bin/env python3
"""Generate the tokenizer exactness fixtures under tests/text/fixtures/.

Expected token ids come from the reference implementations, never from
libsigma: HF `tokenizers` for byte-level BPE and `sentencepiece` for the
SentencePiece vocabulary. Requirements (PyPI): tokenizers, gguf, numpy,
sentencepiece.

    python3 tests/text/gen_fixtures.py [--model SmolLM2-135M-Instruct.Q4_1.gguf]
                                       [--austen /work/shared/data/austen-train.txt]

Outputs (all small, committed):
  smollm2_{sample,specials}.ids   ids of sample.txt / specials.txt with SmolLM2's
                                  full vocabulary (needs --model)
  smolmini.gguf + smolmini_{sample,specials}.ids
                                  a derivative of SmolLM2's tokenizer: its first
                                  MINI_MERGES merges and the tokens they make,
                                  same pre-tokenizer (needs --model)
  llama3mini.gguf + llama3mini_{sample,specials}.ids
                                  a byte-level BPE trained on Austen with the
                                  Llama-3 pre-tokenizer regex, ignore_merges
  qwen2mini.gguf + qwen2mini_{sample,specials}.ids
                                  the same with the qwen2 pre-tokenizer (single
                                  digits), merges applied (--only qwen2)
  spmmini.gguf + spmmini_sample.ids
                                  a SentencePiece BPE (byte fallback) trained on
                                  Austen, ids from sentencepiece itself

*.ids files hold whitespace-separated decimal ids. Specials are parsed (HF
encodes added tokens found in the text), matching SIGMA_TOKENIZE_PARSE_SPECIAL.
"""
import argparse
import os
import sys
import tempfile

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")
MINI_MERGES = 3000

GPT2_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen2 / Qwen2.5 / Qwen3 (tokenizer.ggml.pre "qwen2"): Llama-3's regex with
# single digits
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                   "<|end_header_id|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>"]


def read(name):
    with open(os.path.join(FIX, name), encoding="utf-8", newline="") as f:
        return f.read()


def write_ids(name, ids):
    with open(os.path.join(FIX, name), "w") as f:
        for i in range(0, len(ids), 20):
            f.write(" ".join(str(x) for x in ids[i:i + 20]) + "\n")
    print("wrote", name, len(ids), "ids")


def field_strs(r, key):
    f = r.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_ints(r, key):
    f = r.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def field_scalar(r, key, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    return f.parts[f.data[0]][0]


def smollm_pretok():
    # SmolLM2's tokenizer.json: Sequence[Digits(individual_digits), ByteLevel]
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])


def hf_bpe(tokens, merges, types, pretok, ignore_merges=False):
    vocab = {t: i for i, t in reversed(list(enumerate(tokens)))}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=ignore_merges))
    tok.pre_tokenizer = pretok
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    return tok


def write_gguf(path, tok_model, tokens, types, pre=None, merges=None, scores=None, ids=None,
               flags=None):
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model(tok_model)
    if pre:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if merges is not None:
        w.add_token_merges(merges)
    if scores is not None:
        w.add_token_scores(scores)
    for k, v in (ids or {}).items():
        w.add_uint32("tokenizer.ggml.%s_token_id" % k, v)
    for k, v in (flags or {}).items():
        w.add_bool("tokenizer.ggml.%s" % k, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", os.path.basename(path), os.path.getsize(path), "bytes")


def gen_smollm(model_path, sample, specials):
    r = gguf.GGUFReader(model_path)
    tokens = field_strs(r, "tokenizer.ggml.tokens")
    merges = field_strs(r, "tokenizer.ggml.merges")
    types = field_ints(r, "tokenizer.ggml.token_type")
    tok = hf_bpe(tokens, merges, types, smollm_pretok())
    write_ids("smollm2_sample.ids", tok.encode(sample, add_special_tokens=False).ids)
    write_ids("smollm2_specials.ids", tok.encode(specials, add_special_tokens=False).ids)

    # derivative: the special tokens, the 256 byte symbols, and the results of
    # the first MINI_MERGES merges, in that order
    byte_chars = [c for c in pre_tokenizers.ByteLevel.alphabet()]
    byte_chars.sort(key=lambda c: tokens.index(c) if c in tokens else 1 << 30)
    mini = [t for t, ty in zip(tokens, types) if ty == 3] + byte_chars
    mtypes = [3] * (len(mini) - len(byte_chars)) + [1] * len(byte_chars)
    seen = set(mini)
    mmerges = []
    for m in merges[:MINI_MERGES]:
        a, b = m.split(" ", 1)
        if a in seen and b in seen:
            mmerges.append(m)
            if a + b not in seen:
                seen.add(a + b)
                mini.append(a + b)
                mtypes.append(1)
    ids = {"bos": mini.index("<|im_start|>"), "eos": mini.index("<|im_end|>"),
           "unknown": mini.index("<|endoftext|>"), "padding": mini.index("<|im_end|>")}
    write_gguf(os.path.join(FIX, "smolmini.gguf"), "gpt2", mini, mtypes, pre="smollm",
               merges=mmerges, ids=ids, flags={"add_bos_token": False})
    mtok = hf_bpe(mini, mmerges, mtypes, smollm_pretok())
    write_ids("smolmini_sample.ids", mtok.encode(sample, add_special_tokens=False).ids)
    write_ids("smolmini_specials.ids", mtok.encode(specials, add_special_tokens=False).ids)


def austen_lines(path, n_bytes):
    with open(path, encoding="utf-8") as f:
        return f.read(n_bytes).splitlines(keepends=True)


def gen_llama3(austen, sample, specials):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=LLAMA3_SPECIALS)
    text = austen_lines(austen, 1 << 20)
    tok.train_from_iterator(text, trainer=trainer)
    vocab = tok.get_vocab()
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    import json
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    types = [3 if t in LLAMA3_SPECIALS else 1 for t in tokens]
    ids = {"bos": tokens.index("<|begin_of_text|>"), "eos": tokens.index("<|end_of_text|>"),
           "eot": tokens.index("<|eot_id|>")}
    write_gguf(os.path.join(FIX, "llama3mini.gguf"), "gpt2", tokens, types, pre="llama-bpe",
               merges=merges, ids=ids, flags={"add_bos_token": True})
    write_ids("llama3mini_sample.ids", tok.encode(sample, add_special_tokens=False).ids)
    write_ids("llama3mini_specials.ids", tok.encode(specials, add_special_tokens=False).ids)


def gen_qwen2(austen, sample, specials):
    """qwen2mini: a byte-level BPE trained on Austen with the qwen2
    pre-tokenizer (merges applied, not ignore_merges, as Qwen's tokenizer.json)."""
    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=QWEN2_SPECIALS)
    tok.train_from_iterator(austen_lines(austen, 1 << 20), trainer=trainer)
    vocab = tok.get_vocab()
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    import json
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    types = [3 if t in QWEN2_SPECIALS else 1 for t in tokens]
    ids = {"bos": tokens.index("<|endoftext|>"), "eos": tokens.index("<|im_end|>")}
    write_gguf(os.path.join(FIX, "qwen2mini.gguf"), "gpt2", tokens, types, pre="qwen2",
               merges=merges, ids=ids, flags={"add_bos_token": False})
    write_ids("qwen2mini_sample.ids", tok.encode(sample, add_special_tokens=False).ids)
    write_ids("qwen2mini_specials.ids", tok.encode(specials, add_special_tokens=False).ids)


def gen_spm(austen, sample):
    import sentencepiece as spm
    with tempfile.TemporaryDirectory() as d:
        corpus = os.path.join(d, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.writelines(austen_lines(austen, 1 << 20))
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(d, "m"), model_type="bpe",
            vocab_size=1000, byte_fallback=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False, add_dummy_prefix=True, character_coverage=1.0,
            bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2, num_threads=1)
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "m.model"))
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else
                     6 if sp.is_byte(i) else 5 if sp.is_unused(i) else 1)
    write_gguf(os.path.join(FIX, "spmmini.gguf"), "llama", tokens, types, scores=scores,
               ids={"bos": 1, "eos": 2, "unknown": 0},
               flags={"add_bos_token": True, "add_space_prefix": True})
    ids = sp.encode(sample)
    write_ids("spmmini_sample.ids", ids)
    assert sp.decode(ids) == sample


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.environ.get("SIGMA_TEST_MODEL"))
    ap.add_argument("--austen", default="/work/shared/data/austen-train.txt")
    ap.add_argument("--only", help="generate only this fixture (qwen2)")
    a = ap.parse_args()
    sample, specials = read("sample.txt"), read("specials.txt")
    if a.only == "qwen2":
        gen_qwen2(a.austen, sample, specials)
        return
    if a.model:
        gen_smollm(a.model, sample, specials)
    else:
        print("no --model: SmolLM2 fixtures not regenerated", file=sys.stderr)
    gen_llama3(a.austen, sample, specials)
    gen_qwen2(a.austen, sample, specials)
    gen_spm(a.austen, sample)


if __name__ == "__main__":
    main()
