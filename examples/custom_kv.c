/* custom_kv.c — a KV-cache strategy written by the host, with the public
 * header alone, plugged in through sigma_session_params.kv_custom.
 *
 *   custom_kv MODEL [PROMPT]
 *
 * The strategy, "ring", keeps float32 K/V rows in a ring buffer per layer and
 * lets every query attend to the last `window` positions (a sliding window).
 * Options: "window=N" (default: the session's n_ctx, i.e. exact attention).
 * Memory is bounded, so it declares itself `unbounded`: a session may run
 * past n_ctx.
 *
 * The program checks the strategy: with window = n_ctx it must give the
 * same logits as the built-in "dense" strategy, step by step, over a prompt,
 * greedy decoding, a rewind and a save/load round trip. It exits 1 if not. */
#include <math.h>
#include <sigma/sigma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The strategy                                                             */
/* ------------------------------------------------------------------------ */

typedef struct ring {
    sigma_kv_layout L;
    uint32_t window;   /* each query sees positions (pos-window, pos] */
    uint32_t cap;      /* rows kept per layer: window + n_batch */
    size_t k_row;      /* floats per K row: n_k * d_qk */
    size_t v_row;      /* floats per V row: n_v * d_v */
    uint32_t *n_pos;   /* [n_layers] positions appended so far */
    float *k, *v;      /* [n_layers][cap][row] */
    float *scores;     /* [window] scratch for one query head */
} ring;

static void set_err(char *err, size_t size, const char *msg) {
    if (err && size) snprintf(err, size, "%s", msg);
}

static void ring_destroy(void *state) {
    ring *r = state;
    if (!r) return;
    free(r->n_pos);
    free(r->k);
    free(r->v);
    free(r->scores);
    free(r);
}

static int ring_create(void *user, const sigma_kv_layout *layout, const char *options,
                       void **state, char *err, size_t err_size) {
    (void)user;
    unsigned long window = layout->n_ctx;
    if (options && *options) {
        char *end;
        if (strncmp(options, "window=", 7) != 0 ||
            (window = strtoul(options + 7, &end, 10), *end != '\0') || window == 0) {
            set_err(err, err_size, "ring: options must be window=N with N >= 1");
            return SIGMA_E_INVALID_ARG;
        }
    }
    uint32_t n_batch = layout->n_batch ? layout->n_batch : 512;
    if (window > UINT32_MAX - n_batch) {
        set_err(err, err_size, "ring: window too large");
        return SIGMA_E_INVALID_ARG;
    }
    ring *r = calloc(1, sizeof *r);
    if (!r) return SIGMA_E_NOMEM;
    r->L = *layout;
    r->window = (uint32_t)window;
    r->cap = r->window + n_batch;
    r->k_row = (size_t)layout->n_k_heads * layout->d_qk;
    r->v_row = (size_t)layout->n_v_heads * layout->d_v;
    /* rows * row sizes must not overflow size_t */
    size_t rows = (size_t)layout->n_layers * r->cap;
    if (r->k_row && rows > SIZE_MAX / sizeof(float) / (r->k_row + r->v_row)) {
        ring_destroy(r);
        set_err(err, err_size, "ring: cache too large");
        return SIGMA_E_NOMEM;
    }
    r->n_pos = calloc(layout->n_layers ? layout->n_layers : 1, sizeof *r->n_pos);
    r->k = malloc(rows * r->k_row * sizeof(float) + 1);
    r->v = malloc(rows * r->v_row * sizeof(float) + 1);
    r->scores = malloc((size_t)r->window * sizeof(float));
    if (!r->n_pos || !r->k || !r->v || !r->scores) {
        ring_destroy(r);
        return SIGMA_E_NOMEM;
    }
    *state = r;
    return SIGMA_OK;
}

/* Row storage of position `pos` in `layer`. */
static float *k_at(ring *r, uint32_t layer, uint32_t pos) {
    return r->k + ((size_t)layer * r->cap + pos % r->cap) * r->k_row;
}
static float *v_at(ring *r, uint32_t layer, uint32_t pos) {
    return r->v + ((size_t)layer * r->cap + pos % r->cap) * r->v_row;
}

static int ring_append(void *state, uint32_t layer, uint32_t pos0, uint32_t n, const float *k,
                       const float *v) {
    ring *r = state;
    /* appends are contiguous and at most n_batch rows: the window of every
     * query in the batch stays in the ring */
    if (layer >= r->L.n_layers || pos0 != r->n_pos[layer] || n > r->cap - r->window ||
        pos0 > UINT32_MAX - n)
        return SIGMA_E_INVALID_ARG;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(k_at(r, layer, pos0 + i), k + i * r->k_row, r->k_row * sizeof(float));
        memcpy(v_at(r, layer, pos0 + i), v + i * r->v_row, r->v_row * sizeof(float));
    }
    r->n_pos[layer] = pos0 + n;
    return SIGMA_OK;
}

static int ring_attend(void *state, const sigma_kv_attend_args *a) {
    ring *r = state;
    const sigma_kv_layout *L = &r->L;
    if (a->layer >= L->n_layers || a->n_queries == 0 ||
        a->pos0 > UINT32_MAX - a->n_queries ||
        a->pos0 + a->n_queries > r->n_pos[a->layer])
        return SIGMA_E_INVALID_ARG;
    /* version 2 of the table: say so when a layer needs what this simple
     * ring does not do (a sliding window, soft-capped scores) */
    if (a->struct_size >= sizeof *a && (a->window || a->softcap != 0.0f))
        return SIGMA_E_UNSUPPORTED;
    for (uint32_t j = 0; j < a->n_queries; j++) {
        uint32_t pos = a->pos0 + j;
        uint32_t lo = pos + 1 > r->window ? pos + 1 - r->window : 0;
        uint32_t n = pos + 1 - lo;
        for (uint32_t h = 0; h < L->n_q_heads; h++) {
            const float *q = a->q + ((size_t)j * L->n_q_heads + h) * L->d_qk;
            size_t kh = (size_t)h * L->n_k_heads / L->n_q_heads; /* DiffQKV head map */
            size_t vh = (size_t)h * L->n_v_heads / L->n_q_heads;
            float max = -INFINITY;
            for (uint32_t t = 0; t < n; t++) {
                const float *krow = k_at(r, a->layer, lo + t) + kh * L->d_qk;
                r->scores[t] = sigma_kernel_dot_f32(q, krow, L->d_qk) * a->scale;
                if (r->scores[t] > max) max = r->scores[t];
            }
            float sum = 0.0f;
            for (uint32_t t = 0; t < n; t++) {
                r->scores[t] = expf(r->scores[t] - max);
                sum += r->scores[t];
            }
            float *out = a->out + ((size_t)j * L->n_q_heads + h) * L->d_v;
            memset(out, 0, L->d_v * sizeof(float));
            for (uint32_t t = 0; t < n; t++)
                sigma_kernel_axpy_f32(out, r->scores[t] / sum,
                                      v_at(r, a->layer, lo + t) + vh * L->d_v, L->d_v);
        }
    }
    return SIGMA_OK;
}

static int ring_truncate(void *state, uint32_t n_pos) {
    ring *r = state;
    /* Rows of positions < old_n_pos - cap were overwritten. After the rewind
     * the next query needs positions from n_pos - window on. */
    for (uint32_t l = 0; l < r->L.n_layers; l++) {
        uint32_t old = r->n_pos[l];
        uint32_t need = n_pos > r->window ? n_pos - r->window : 0;
        if (n_pos < old && old > r->cap && need < old - r->cap) return SIGMA_E_UNSUPPORTED;
    }
    for (uint32_t l = 0; l < r->L.n_layers; l++)
        if (n_pos < r->n_pos[l]) r->n_pos[l] = n_pos;
    return SIGMA_OK;
}

static size_t ring_bytes_used(void *state) {
    ring *r = state;
    size_t total = 0;
    for (uint32_t l = 0; l < r->L.n_layers; l++) {
        size_t rows = r->n_pos[l] < r->cap ? r->n_pos[l] : r->cap;
        total += rows * (r->k_row + r->v_row) * sizeof(float);
    }
    return total;
}

/* Saved form: u32 header {window, cap, n_layers}, n_pos[n_layers], then the
 * K and V rings of every layer (this example saves whole rings). */
static int ring_save(void *state, sigma_write_fn w, void *ctx) {
    ring *r = state;
    uint32_t hdr[3] = {r->window, r->cap, r->L.n_layers};
    size_t rows = (size_t)r->L.n_layers * r->cap;
    int st = w(ctx, hdr, sizeof hdr);
    if (st == SIGMA_OK) st = w(ctx, r->n_pos, r->L.n_layers * sizeof(uint32_t));
    if (st == SIGMA_OK) st = w(ctx, r->k, rows * r->k_row * sizeof(float));
    if (st == SIGMA_OK) st = w(ctx, r->v, rows * r->v_row * sizeof(float));
    return st;
}

static int ring_load(void *state, const void *data, size_t size) {
    ring *r = state;
    size_t rows = (size_t)r->L.n_layers * r->cap;
    size_t kb = rows * r->k_row * sizeof(float), vb = rows * r->v_row * sizeof(float);
    size_t pb = r->L.n_layers * sizeof(uint32_t);
    uint32_t hdr[3];
    if (size != sizeof hdr + pb + kb + vb) return SIGMA_E_FORMAT;
    memcpy(hdr, data, sizeof hdr);
    if (hdr[0] != r->window || hdr[1] != r->cap || hdr[2] != r->L.n_layers)
        return SIGMA_E_MISMATCH;
    const unsigned char *p = (const unsigned char *)data + sizeof hdr;
    memcpy(r->n_pos, p, pb);
    memcpy(r->k, p + pb, kb);
    memcpy(r->v, p + pb + kb, vb);
    return SIGMA_OK;
}

static const sigma_kv_strategy ring_strategy = {
    .version = SIGMA_KV_STRATEGY_VERSION,
    .name = "ring",
    .unbounded = 1,
    .user = NULL,
    .create = ring_create,
    .destroy = ring_destroy,
    .append = ring_append,
    .attend = ring_attend,
    .truncate = ring_truncate,
    .bytes_used = ring_bytes_used,
    .save = ring_save,
    .load = ring_load,
};

/* ------------------------------------------------------------------------ */
/* Checking it against the built-in dense strategy                          */
/* ------------------------------------------------------------------------ */

static sigma_session *open_session(const sigma_model *m, const sigma_kv_strategy *custom,
                                   const char *options, uint32_t n_ctx) {
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_ctx = n_ctx;
    sp.n_threads = 1;
    sp.kv_custom = custom; /* NULL: the built-in kv_strategy ("dense") */
    sp.kv_options = options;
    sigma_session *s = NULL;
    int st = sigma_session_open(m, &sp, &s);
    if (st != SIGMA_OK) fprintf(stderr, "session open: %s\n", sigma_strerror(st));
    return s;
}

/* Largest |a-b| relative to max(1, |a|) over the last logits. */
static double compare(sigma_session *a, sigma_session *b, uint32_t n_vocab, sigma_token *argmax) {
    const float *la, *lb;
    if (sigma_session_logits(a, -1, &la) != SIGMA_OK || sigma_session_logits(b, -1, &lb) != SIGMA_OK)
        return INFINITY;
    double worst = 0;
    *argmax = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        double d = fabs((double)la[i] - lb[i]) / fmax(1.0, fabs(la[i]));
        if (d > worst || d != d) worst = d != d ? INFINITY : d;
        if (la[i] > la[*argmax]) *argmax = (sigma_token)i;
    }
    return worst;
}

static int eval2(sigma_session *a, sigma_session *b, const sigma_token *t, size_t n) {
    int st = sigma_session_eval(a, t, n);
    if (st == SIGMA_OK) st = sigma_session_eval(b, t, n);
    if (st != SIGMA_OK) fprintf(stderr, "eval: %s\n", sigma_strerror(st));
    return st;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [PROMPT]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "It is a truth universally acknowledged";
    sigma_model *m;
    int st = sigma_model_open(argv[1], NULL, &m);
    if (st != SIGMA_OK) {
        fprintf(stderr, "open: %s\n", sigma_strerror(st));
        return 1;
    }
    sigma_model_info info = {.struct_size = sizeof info};
    sigma_model_get_info(m, &info);
    sigma_token prompt_toks[256];
    size_t n_prompt = 0;
    if (sigma_tokenize(m, prompt, strlen(prompt), prompt_toks, 256, &n_prompt,
                       SIGMA_TOKENIZE_ADD_SPECIAL) != SIGMA_OK || n_prompt == 0) {
        n_prompt = 8; /* a model without a tokenizer: any valid ids will do */
        for (size_t i = 0; i < n_prompt; i++) prompt_toks[i] = (sigma_token)(i + 1);
    }

    const uint32_t n_ctx = 64;
    /* dense with f32 rows, as the ring keeps them (the default dense type
     * is f16) */
    sigma_session *dense = open_session(m, NULL, "type=f32", n_ctx);
    sigma_session *mine = open_session(m, &ring_strategy, NULL, n_ctx);
    double worst = 0;
    sigma_token next = 0;
    int rc = 1;
    if (!dense || !mine) goto done;

    /* 1. the prompt in one batch, then 16 greedy steps one token at a time */
    if (eval2(dense, mine, prompt_toks, n_prompt) != SIGMA_OK) goto done;
    worst = fmax(worst, compare(dense, mine, info.n_vocab, &next));
    for (int i = 0; i < 16; i++) {
        if (eval2(dense, mine, &next, 1) != SIGMA_OK) goto done;
        worst = fmax(worst, compare(dense, mine, info.n_vocab, &next));
    }
    /* 2. rewind both into the prompt and evaluate a different continuation */
    uint32_t back = (uint32_t)(n_prompt > 1 ? n_prompt - 1 : 0);
    if (sigma_session_rewind(dense, back) != SIGMA_OK || sigma_session_rewind(mine, back) != SIGMA_OK)
        goto done;
    sigma_token alt[3] = {1, 2, 3};
    if (eval2(dense, mine, alt, 3) != SIGMA_OK) goto done;
    worst = fmax(worst, compare(dense, mine, info.n_vocab, &next));
    /* 3. save the custom session into memory, load it into a fresh one */
    size_t len = 0;
    st = sigma_session_save_memory(mine, NULL, 0, &len);
    void *blob = malloc(len ? len : 1);
    sigma_session *copy = open_session(m, &ring_strategy, NULL, n_ctx);
    if (st == SIGMA_E_UNSUPPORTED) {
        printf("session save/load: not supported by this build, not checked\n");
    } else if (blob && copy && sigma_session_save_memory(mine, blob, len, &len) == SIGMA_OK &&
        sigma_session_load_memory(copy, blob, len) == SIGMA_OK &&
        eval2(dense, copy, &next, 1) == SIGMA_OK) {
        worst = fmax(worst, compare(dense, copy, info.n_vocab, &next));
    } else {
        fprintf(stderr, "save/load round trip failed\n");
        worst = INFINITY;
    }
    free(blob);
    sigma_session_close(copy);

    size_t kv_dense = 0, kv_mine = 0;
    sigma_session_kv_bytes(dense, &kv_dense);
    sigma_session_kv_bytes(mine, &kv_mine);
    printf("ring vs dense: largest relative logit difference %.3g; KV bytes %zu vs %zu\n",
           worst, kv_mine, kv_dense);
    rc = worst <= 1e-3 ? 0 : 1;
    if (rc) fprintf(stderr, "FAIL: the ring strategy does not match dense\n");

    /* 4. a small sliding window runs past n_ctx (the strategy is unbounded) */
    sigma_session *slide = open_session(m, &ring_strategy, "window=16", 32);
    if (slide) {
        sigma_generate_params gp;
        sigma_generate_params_init(&gp, sizeof gp);
        gp.max_tokens = 48;
        sigma_generate_stats stats = {.struct_size = sizeof stats};
        st = sigma_session_generate(slide, prompt, &gp, &stats);
        uint32_t pos = 0;
        sigma_session_position(slide, &pos);
        printf("window=16 on n_ctx=32: %s, position %u, stop reason %d\n", sigma_strerror(st),
               pos, (int)stats.stop_reason);
        sigma_session_close(slide);
    }
done:
    sigma_session_close(dense);
    sigma_session_close(mine);
    sigma_model_close(m);
    return rc;
}
