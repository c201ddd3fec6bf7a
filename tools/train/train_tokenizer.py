#!/usr/bin/env python3
"""Train the ~4096-token byte-level BPE used by the Austen models.

Llama-3 pre-tokenizer split regex (isolated) followed by ByteLevel without its
own regex, so the resulting tokenizer.json matches GGUF `pre = "llama-bpe"`.
Run with the python that has HF `tokenizers` (pyenv python3):

    python3 tools/train/train_tokenizer.py /work/shared/data/austen-train.txt tools/train/out/tokenizer
"""
import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: train_tokenizer.py TEXT OUTDIR [vocab via VOCAB env, default 4096]")
    text, outdir = sys.argv[1], sys.argv[2]
    vocab = int(os.environ.get("VOCAB", "4096"))
    os.makedirs(outdir, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([text], trainer)
    tok.save(os.path.join(outdir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
    }
    with open(os.path.join(outdir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print("vocab", tok.get_vocab_size(), "bos", tok.token_to_id(BOS), "eos", tok.token_to_id(EOS))
    enc = tok.encode("It is a truth universally acknowledged, that a single man")
    print(enc.tokens)
    print(tok.decode(enc.ids))


if __name__ == "__main__":
    main()
