/* Placeholder for the text part until the tokenizer lands: every entry
 * point reports SIGMA_E_UNSUPPORTED. */
#include "text.h"

int sg_tokenizer_load(struct sigma_model *model, sg_err *err) {
    (void)err;
    model->tok = NULL;
    return SIGMA_OK;
}
void sg_tokenizer_free(struct sigma_model *model) { (void)model; }

#define UNSUP return SIGMA_E_UNSUPPORTED
int sigma_tokenize(const sigma_model *m, const char *t, size_t tl, sigma_token *tok, size_t c,
                   size_t *n, uint32_t f) { (void)m; (void)t; (void)tl; (void)tok; (void)c; (void)n; (void)f; UNSUP; }
int sigma_token_to_piece(const sigma_model *m, sigma_token t, char *b, size_t s, size_t *l,
                         uint32_t f) { (void)m; (void)t; (void)b; (void)s; (void)l; (void)f; UNSUP; }
int sigma_detokenize(const sigma_model *m, const sigma_token *t, size_t n, char *b, size_t s,
                     size_t *l, uint32_t f) { (void)m; (void)t; (void)n; (void)b; (void)s; (void)l; (void)f; UNSUP; }
int sigma_model_special_token(const sigma_model *m, sigma_special_token w, sigma_token *t) { (void)m; (void)w; (void)t; UNSUP; }
int sigma_token_is_eog(const sigma_model *m, sigma_token t, int *e) { (void)m; (void)t; (void)e; UNSUP; }
int sigma_decoder_open(const sigma_model *m, uint32_t f, sigma_decoder **o) { (void)m; (void)f; if (o) *o = NULL; UNSUP; }
int sigma_decoder_push(sigma_decoder *d, sigma_token t, char *b, size_t s, size_t *l) { (void)d; (void)t; (void)b; (void)s; (void)l; UNSUP; }
int sigma_decoder_flush(sigma_decoder *d, char *b, size_t s, size_t *l) { (void)d; (void)b; (void)s; (void)l; UNSUP; }
void sigma_decoder_close(sigma_decoder *d) { (void)d; }
int sigma_sampler_params_init(sigma_sampler_params *p, size_t s) { (void)p; (void)s; UNSUP; }
int sigma_sampler_open(const sigma_model *m, const sigma_sampler_params *p, sigma_sampler **o) { (void)m; (void)p; if (o) *o = NULL; UNSUP; }
void sigma_sampler_close(sigma_sampler *s) { (void)s; }
int sigma_sampler_sample(sigma_sampler *s, const float *l, sigma_token *t) { (void)s; (void)l; (void)t; UNSUP; }
int sigma_sampler_accept(sigma_sampler *s, sigma_token t) { (void)s; (void)t; UNSUP; }
int sigma_sampler_reset(sigma_sampler *s, uint64_t seed) { (void)s; (void)seed; UNSUP; }
int sigma_generate_params_init(sigma_generate_params *p, size_t s) { (void)p; (void)s; UNSUP; }
int sigma_session_generate(sigma_session *s, const char *p, const sigma_generate_params *g,
                           sigma_generate_stats *st) { (void)s; (void)p; (void)g; (void)st; UNSUP; }
int sigma_chat_render(const sigma_model *m, const sigma_chat_message *msg, size_t n, int a,
                      char *b, size_t s, size_t *l) { (void)m; (void)msg; (void)n; (void)a; (void)b; (void)s; (void)l; UNSUP; }
int sigma_session_chat(sigma_session *s, const sigma_chat_message *m, size_t n,
                       const sigma_generate_params *g, sigma_generate_stats *st) { (void)s; (void)m; (void)n; (void)g; (void)st; UNSUP; }
