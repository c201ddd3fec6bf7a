#!/usr/bin/env python3
"""Write tests/fixtures/deq_gguf.bin: random blocks of every quantized type
libsigma reads and their dequantization by the PyPI `gguf` package
(`gguf.quants.dequantize`), which tests/core/test_deq_gguf.c compares with
sg_dequantize_row bit for bit.

    python3 tools/reference/make_deq_fixture.py [OUT]

Deterministic (fixed seed). The blocks are random bytes with their f16
scale fields replaced by random finite f16 values (normal, subnormal, zero,
both signs, up to 65504). Format, little-endian:
    "SGDQ", u32 version (1), u32 count, then per entry
    u32 ggml type, u32 blocks, u32 block bytes, u32 block elements,
    blocks * block bytes of data, blocks * block elements f32 values.
"""
import struct
import sys

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize

# type -> (blocks, offsets of its f16 scale fields inside a block)
TYPES = {
    T.Q4_0: (24, [0]), T.Q4_1: (24, [0, 2]), T.Q5_0: (24, [0]), T.Q5_1: (24, [0, 2]),
    T.Q8_0: (24, [0]), T.Q2_K: (6, [80, 82]), T.Q3_K: (6, [108]), T.Q4_K: (6, [0, 2]),
    T.Q5_K: (6, [0, 2]), T.Q6_K: (6, [208]), T.IQ4_NL: (24, [0]), T.IQ4_XS: (6, [0]),
}


def random_f16(rng, n):
    """Finite f16 bit patterns of every kind (no inf/NaN)."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    exp = (bits >> 10) & 0x1f
    bits[exp == 0x1f] &= np.uint16(0xbfff)  # make inf/NaN finite (exponent 0x0f)
    bits[: min(n, 2)] = [0x0000, 0x7bff][: min(n, 2)]  # zero and the largest finite
    return bits


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/deq_gguf.bin"
    rng = np.random.default_rng(20261204)
    parts = [b"SGDQ", struct.pack("<II", 1, len(TYPES))]
    for t, (nb, offs) in TYPES.items():
        be, bb = GGML_QUANT_SIZES[t]
        blocks = rng.integers(0, 256, size=(nb, bb), dtype=np.uint16).astype(np.uint8)
        for o in offs:
            blocks[:, o:o + 2] = random_f16(rng, nb).view(np.uint8).reshape(nb, 2)
        y = dequantize(blocks.reshape(-1), t).astype(np.float32).reshape(-1)
        assert y.size == nb * be and np.isfinite(y).all()
        parts.append(struct.pack("<IIII", int(t), nb, bb, be))
        parts.append(blocks.tobytes())
        parts.append(y.astype("<f4").tobytes())
    with open(out, "wb") as f:
        f.write(b"".join(parts))


if __name__ == "__main__":
    main()
