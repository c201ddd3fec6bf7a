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
