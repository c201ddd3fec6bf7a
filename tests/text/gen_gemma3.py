#!/usr/bin/env python3
"""Expected ids of Gemma 3's vocabulary (tests/text/fixtures/gemma3_*.ids)
for the test `tokenizer-gemma3`, from the `sentencepiece` library, never from
libsigma. The model file (tools/fetch-gemma3.sh) carries pieces, scores and
types but no tokenizer.model, so a SentencePiece BPE ModelProto is built from
them (byte fallback, no dummy prefix, identity normalization, spaces escaped
to U+2581). As HF tokenizers and llama.cpp do, user-defined pieces (type 4:
runs of spaces, tabs, newlines...) — and, with specials parsed, control
pieces (type 3) — are matched in the raw text first (longest at each
position); the text between them goes through sentencepiece.
Requirements (PyPI): sentencepiece, protobuf, gguf.

    python3 tests/text/gen_gemma3.py "$(bash tools/fetch-gemma3.sh)"
"""
import os
import sys

import sentencepiece as spm
from gguf import GGUFReader
from sentencepiece import sentencepiece_model_pb2 as pb

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")


def main():
    r = GGUFReader(sys.argv[1])
    f = r.fields
    toks = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8")
            for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0])
             for i in f["tokenizer.ggml.token_type"].data]
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id = 3, 2, 1
    m.trainer_spec.pad_id = 0
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    T = pb.ModelProto.SentencePiece
    tmap = {1: T.NORMAL, 2: T.UNKNOWN, 3: T.CONTROL, 4: T.USER_DEFINED, 5: T.UNUSED, 6: T.BYTE}
    for t, s, ty in zip(toks, scores, types):
        p = m.pieces.add()
        p.piece, p.score, p.type = t, s, tmap.get(ty, T.NORMAL)
    sp = spm.SentencePieceProcessor(model_proto=m.SerializeToString())

    def encode(text, specials):
        pre = {t: i for i, (t, ty) in enumerate(zip(toks, types))
               if ty == 4 or (specials and ty == 3)}
        longest = max(len(t) for t in pre)
        ids, seg, i = [], "", 0
        while i < len(text):
            hit = next((text[i:i + n] for n in range(min(longest, len(text) - i), 0, -1)
                        if text[i:i + n] in pre), None)
            if hit:
                if seg:
                    ids += sp.encode(seg)
                    seg = ""
                ids.append(pre[hit])
                i += len(hit)
            else:
                seg += text[i]
                i += 1
        if seg:
            ids += sp.encode(seg)
        return ids

    for name, specials in (("sample", False), ("specials", True)):
        with open(os.path.join(FIX, name + ".txt"), encoding="utf-8", newline="") as fh:
            ids = encode(fh.read(), specials)
        with open(os.path.join(FIX, f"gemma3_{name}.ids"), "w") as fh:
            for i in range(0, len(ids), 20):
                fh.write(" ".join(map(str, ids[i:i + 20])) + "\n")
        print(f"wrote gemma3_{name}.ids: {len(ids)} ids")


if __name__ == "__main__":
    main()
