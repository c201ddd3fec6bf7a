#!/usr/bin/env python3
"""Build the full `sigma` GGUF from the PyPI SmolLM2 Q4_1 file plus a patch.

    build_sigma_model.py PATCH.gguf OUT.gguf [--base SmolLM2-135M-Instruct.Q4_1.gguf]

Deterministic: the output depends only on the two input files (no times,
paths or versions are written), so the same inputs give the same bytes; the
sha256 is printed. What it does (docs/sigma.md §6):
- metadata: `llama.*` keys become `sigma.*`; head_count_kv becomes
  head_count_k / head_count_v from the patch; key_length = value_length =
  head dim; tokenizer and general keys are copied unchanged (general.name
  gets a suffix);
- tensors, in the base file's order: unchanged tensors are copied byte for
  byte in their original type (Q4_1 / Q8_0 / F32); Q and K rows are
  un-permuted from llama.cpp's pair layout to the sigma halves layout (rows
  are quantized independently, so this moves whole quantized rows and is
  exact); the patched K (or V) projections are F16 from the patch, and a
  patch with Q projections (a --train-q run) replaces them with its own
  (quantized, already in the halves layout), bytes copied.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smol  # noqa: E402
from smol import gguf  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("patch")
    ap.add_argument("out")
    ap.add_argument("--base", default=smol.DEFAULT_BASE)
    ap.add_argument("--no-base-check", action="store_true",
                    help="do not insist on the base sha256 recorded in the patch")
    a = ap.parse_args()
    base_sha = smol.sha256_file(a.base)
    p = gguf.GGUFReader(a.patch)
    if smol.field_value(p, "general.architecture") != "sigma-patch":
        raise SystemExit(f"{a.patch}: not a sigma-patch file")
    want = smol.field_value(p, "patch.base_sha256")
    if want != base_sha and not a.no_base_check:
        raise SystemExit(f"{a.base}: sha256 {base_sha}, the patch was made for {want}")
    pool = smol.field_value(p, "patch.pool")
    n_k = int(smol.field_value(p, "patch.head_count_k"))
    n_v = int(smol.field_value(p, "patch.head_count_v"))
    steps = int(smol.field_value(p, "patch.steps"))
    ptens = {t.name: t for t in p.tensors}

    r = gguf.GGUFReader(a.base)
    c = smol.load_config(r)
    w = gguf.GGUFWriter(a.out + ".tmp", arch="sigma")
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key == "llama.attention.head_count_kv":
            w.add_uint32("sigma.attention.head_count_k", n_k)
            w.add_uint32("sigma.attention.head_count_v", n_v)
            w.add_uint32("sigma.attention.key_length", c["d_head"])
            w.add_uint32("sigma.attention.value_length", c["d_head"])
            continue
        val = f.contents()
        if key == "general.name":
            val = f"{val} Sigma DiffQKV n_k={n_k} n_v={n_v} ({steps} distillation steps)"
        nkey = "sigma." + key[len("llama."):] if key.startswith("llama.") else key
        vtype = f.types[0]
        sub = f.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(nkey, val, vtype, sub)
    for t in r.tensors:
        name = t.name
        if name in ptens:
            pt = ptens.pop(name)
            if pt.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
                w.add_tensor(name, pt.data.reshape(int(pt.shape[1]), int(pt.shape[0])))
            else:
                w.add_tensor(name, pt.data.copy(), raw_dtype=pt.tensor_type)
            continue
        data = t.data
        if name.endswith("attn_q.weight"):
            data = smol.unpermute_rows(data, c["n_q"])
        elif name.endswith("attn_k.weight"):
            data = smol.unpermute_rows(data, c["n_kv"])
        quant = t.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
        w.add_tensor(name, data.copy(), raw_dtype=t.tensor_type if quant else None)
    if ptens:
        raise SystemExit(f"{a.patch}: tensors not in the base file: {sorted(ptens)}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(a.out + ".tmp", a.out)
    print(f"{a.out}: pool={pool} n_k={n_k} n_v={n_v} steps={steps} "
          f"{os.path.getsize(a.out)} bytes sha256 {smol.sha256_file(a.out)}")


if __name__ == "__main__":
    main()
