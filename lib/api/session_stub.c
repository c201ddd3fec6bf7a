/* Placeholder for the session part until the forward pass lands. */
#include <string.h>
#include "../model/model.h"

#define UNSUP return SIGMA_E_UNSUPPORTED
int sigma_threadpool_create(uint32_t n, const sigma_allocator *a, sigma_threadpool **o) { (void)n; (void)a; if (o) *o = NULL; UNSUP; }
void sigma_threadpool_destroy(sigma_threadpool *p) { (void)p; }
float sigma_kernel_dot_f32(const float *a, const float *b, size_t n) { float s = 0; for (size_t i = 0; i < n; i++) s += a[i] * b[i]; return s; }
void sigma_kernel_axpy_f32(float *y, float a, const float *x, size_t n) { for (size_t i = 0; i < n; i++) y[i] += a * x[i]; }
void sigma_kernel_f32_to_f16(uint16_t *d, const float *s, size_t n) { for (size_t i = 0; i < n; i++) d[i] = sg_f32_to_f16(s[i]); }
void sigma_kernel_f16_to_f32(float *d, const uint16_t *s, size_t n) { for (size_t i = 0; i < n; i++) d[i] = sg_f16_to_f32(s[i]); }
void sigma_kernel_f32_to_bf16(uint16_t *d, const float *s, size_t n) { for (size_t i = 0; i < n; i++) d[i] = sg_f32_to_bf16(s[i]); }
void sigma_kernel_bf16_to_f32(float *d, const uint16_t *s, size_t n) { for (size_t i = 0; i < n; i++) d[i] = sg_bf16_to_f32(s[i]); }
int sigma_session_params_init(sigma_session_params *p, size_t s) { (void)p; (void)s; UNSUP; }
int sigma_session_open(const sigma_model *m, const sigma_session_params *p, sigma_session **o) { (void)m; (void)p; if (o) *o = NULL; UNSUP; }
void sigma_session_close(sigma_session *s) { (void)s; }
const char *sigma_session_last_error(const sigma_session *s) { (void)s; return ""; }
int sigma_session_eval(sigma_session *s, const sigma_token *t, size_t n) { (void)s; (void)t; (void)n; UNSUP; }
int sigma_session_logits(const sigma_session *s, int32_t i, const float **l) { (void)s; (void)i; (void)l; UNSUP; }
int sigma_session_position(const sigma_session *s, uint32_t *p) { (void)s; (void)p; UNSUP; }
int sigma_session_tokens(const sigma_session *s, const sigma_token **t, size_t *n) { (void)s; (void)t; (void)n; UNSUP; }
int sigma_session_rewind(sigma_session *s, uint32_t p) { (void)s; (void)p; UNSUP; }
int sigma_session_kv_bytes(const sigma_session *s, size_t *b) { (void)s; (void)b; UNSUP; }
int sigma_session_save(sigma_session *s, const char *p) { (void)s; (void)p; UNSUP; }
int sigma_session_load(sigma_session *s, const char *p) { (void)s; (void)p; UNSUP; }
int sigma_session_save_memory(sigma_session *s, void *b, size_t sz, size_t *l) { (void)s; (void)b; (void)sz; (void)l; UNSUP; }
int sigma_session_load_memory(sigma_session *s, const void *d, size_t sz) { (void)s; (void)d; (void)sz; UNSUP; }
