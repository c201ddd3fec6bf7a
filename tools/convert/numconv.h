/* Number formats for sigma-convert: f16/bf16 <-> f32 and Q8_0 encoding.
 * Our own small implementations (the tool does not link libsigma). */
#ifndef CV_NUMCONV_H
#define CV_NUMCONV_H

#include <stddef.h>
#include <stdint.h>

/* GGML tensor type numbers written by the converter. */
enum { CV_T_F32 = 0, CV_T_F16 = 1, CV_T_Q8_0 = 8, CV_T_BF16 = 30 };

#define CV_QK8_0 32
#define CV_Q8_0_BLOCK_BYTES 34 /* f16 scale + 32 int8 */

float cv_f16_to_f32(uint16_t h);
uint16_t cv_f32_to_f16(float f);   /* round to nearest even; overflow -> inf */
float cv_bf16_to_f32(uint16_t h);
uint16_t cv_f32_to_bf16(float f);  /* round to nearest even; NaN stays NaN */

/* Encode n floats (n a multiple of 32 for Q8_0) into dst; returns the number
 * of bytes written (0 for an unsupported type or length). */
size_t cv_encode_row(uint32_t type, const float *src, uint64_t n, void *dst);
/* Bytes needed for n elements of type (0 if not representable). */
uint64_t cv_row_bytes(uint32_t type, uint64_t n);
const char *cv_type_name(uint32_t type);

#endif
