/* STUB: replaced by the model-file work. */
#include <string.h>
#include "tensor.h"
int sg_type_info(uint32_t type, uint32_t *be, uint32_t *bb) { (void)type; (void)be; (void)bb; return 0; }
const char *sg_type_name(uint32_t type) { (void)type; return "?"; }
size_t sg_type_row_bytes(uint32_t type, uint64_t n) { (void)type; (void)n; return 0; }
int sg_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n) { (void)type; (void)src; (void)dst; (void)n; return -1; }
float sg_f16_to_f32(uint16_t h) { (void)h; return 0; }
uint16_t sg_f32_to_f16(float f) { (void)f; return 0; }
float sg_bf16_to_f32(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
uint16_t sg_f32_to_bf16(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)(u >> 16); }
