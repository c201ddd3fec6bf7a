/* Tensor element types (GGUF/ggml numbering and block layouts) and the
 * read-only tensor view the model hands to the kernels. */
#ifndef SG_CORE_TENSOR_H
#define SG_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum sg_type {
    SG_TYPE_F32  = 0,
    SG_TYPE_F16  = 1,
    SG_TYPE_Q4_0 = 2,
    SG_TYPE_Q4_1 = 3,
    SG_TYPE_Q5_0 = 6,
    SG_TYPE_Q5_1 = 7,
    SG_TYPE_Q8_0 = 8,
    SG_TYPE_Q8_1 = 9,
    SG_TYPE_Q2_K = 10,
    SG_TYPE_Q3_K = 11,
    SG_TYPE_Q4_K = 12,
    SG_TYPE_Q5_K = 13,
    SG_TYPE_Q6_K = 14,
    SG_TYPE_Q8_K = 15,
    SG_TYPE_IQ4_NL = 20,
    SG_TYPE_IQ4_XS = 23,
    SG_TYPE_BF16 = 30,
    SG_TYPE_COUNT_
} sg_type;

/* Properties of a type: elements per block and bytes per block.
 * Returns 0 (and leaves outputs) for types we do not support. */
int sg_type_info(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
const char *sg_type_name(uint32_t type);

/* Bytes of a row of n elements (n must be a multiple of the block size);
 * 0 if unsupported or not a multiple. */
size_t sg_type_row_bytes(uint32_t type, uint64_t n);

/* A tensor of the model: ggml convention, ne[0] is the contiguous (input)
 * dimension. Data is borrowed from the mapped file. */
typedef struct sg_tensor {
    const char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[4];
    const void *data;
    uint64_t nbytes;
    uint64_t offset;      /* in the data section */
    /* Q4_0/Q8_0 matrices: the same rows repacked for the kernels (sg_pack_x8,
     * owned by the model), or NULL. data stays the reference copy. */
    const void *packed;
} sg_tensor;

/* Dequantize n elements (a multiple of the block size) of type `type` from
 * `src` into f32. Returns 0 on success, -1 for an unsupported type. */
int sg_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n);

/* ---- half / bfloat scalars: the one decoder of each ---------------------- */

/* IEEE half to float (exact, subnormals and inf/nan kept). */
static inline float sg_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: value = mant * 2^-24, exact in float */
            float f = (float)mant * 0x1p-24f;
            memcpy(&bits, &f, 4);
            bits |= sign;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* bfloat16 to float (exact). */
static inline float sg_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* float to IEEE half / bfloat16, round to nearest even (NaN stays NaN). */
uint16_t sg_f32_to_f16(float f);
uint16_t sg_f32_to_bf16(float f);


#endif
