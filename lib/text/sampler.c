/* Token sampling: penalties, top-k, temperature, top-p, min-p and a draw
 * from the sampler's own xoshiro256** generator (seeded with SplitMix64).
 *
 * Order of operations for one sample (temperature > 0):
 *   1. copy the logits (NaN -> -inf, +inf -> FLT_MAX);
 *   2. penalties over the last penalty_last_n recorded tokens, each distinct
 *      token with count c once: repetition (logit > 0 ? logit / r : logit * r),
 *      then logit -= c * frequency + (c > 0) * presence;
 *   3. top-k: keep the k largest logits (ties: lower id first);
 *   4. temperature: p = softmax((logit - max) / T) over what is left;
 *   5. top-p: keep the smallest prefix (by decreasing p) whose mass >= top_p;
 *   6. min-p: keep tokens with p >= min_p * p_max;
 *   7. renormalise and draw.
 * With temperature <= 0 only steps 1-2 run, then argmax (lowest id on ties).
 *
 * With a grammar (lib/text/grammar.c) the candidates after step 2 are
 * filtered to the tokens whose bytes the grammar accepts (EOG tokens only
 * where it may end). Token bytes are precomputed per sampler, and a token
 * whose first byte the current state cannot take is rejected by a bit test.
 * When top-k is on, only the k best allowed tokens matter, so candidates
 * are checked best first and the check stops at k (see grammar_filter).
 * With top-k off, candidates are checked best first only as far as top-p
 * and min-p need (grammar_walk), and pure temperature sampling draws first
 * and checks only what it drew (grammar_reject_draw); both give exactly the
 * distribution of checking every token.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

typedef struct sg_cand {
    float logit;
    int32_t id;
    double p;
} sg_cand;

struct sigma_sampler {
    sg_alloc alloc;
    const sigma_model *model;  /* the model it was opened for */
    uint32_t n_vocab;
    sigma_sampler_params p;
    uint64_t rng[4];
    /* ring buffer of the last hist_cap recorded tokens */
    sigma_token *hist;
    uint32_t hist_cap, hist_len, hist_head;
    uint32_t *counts;  /* n_vocab, all zero between calls */
    float *work;       /* n_vocab logits after penalties */
    sg_cand *cand;     /* n_vocab candidates */
    /* grammar constraint (NULL grammar: none) */
    sg_grammar *grammar;
    sg_gmatch gm;
    char *grammar_text, *grammar_root; /* owned copies, s->p points at them */
    uint8_t *pieces;     /* token bytes back to back */
    uint32_t *piece_off; /* n_vocab + 1 */
    uint8_t *is_eog;     /* n_vocab */
    int exhaustive;      /* tests: check every candidate (sg_sampler_set_exhaustive) */
    uint64_t n_checks;   /* grammar checks so far (sg_sampler_grammar_checks) */
};

/* ---- RNG ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(uint64_t st[4], uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) st[i] = splitmix64(&x);
    if (!(st[0] | st[1] | st[2] | st[3])) st[0] = 1; /* never all zero */
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) {
    uint64_t r = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return r;
}

/* Uniform in [0, 1). */
static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* ---- params ------------------------------------------------------------- */

int sigma_sampler_params_init(sigma_sampler_params *params, size_t struct_size) {
    /* the defaults; fields not named are 0 (static: padding zeroed too) */
    static const sigma_sampler_params d = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .penalty_last_n = 64,
        .seed = 0xC0FFEE,
    };
    return sg_params_init(params, struct_size, sizeof(uint32_t), &d, sizeof d);
}

/* NULL if the settings are valid, else what is wrong with them (static). */
static const char *params_problem(const sigma_sampler_params *p) {
    if (isnan(p->temperature)) return "temperature is NaN";
    if (isnan(p->top_p) || isnan(p->min_p)) return "top_p/min_p is NaN";
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty))
        return "repeat_penalty must be a positive number";
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return "frequency/presence penalty must be finite";
    if (p->penalty_last_n > SG_PENALTY_MAX_N) return "penalty_last_n is too large";
    return NULL;
}

static int check_params(const sigma_model *model, const sigma_sampler_params *p) {
    const char *why = params_problem(p);
    if (!why) return SIGMA_OK;
    if (p->penalty_last_n > SG_PENALTY_MAX_N)
        return sg_model_error(model, SIGMA_E_INVALID_ARG,
                              "sampler: penalty_last_n %d exceeds %d", (int)p->penalty_last_n,
                              SG_PENALTY_MAX_N);
    return sg_model_error(model, SIGMA_E_INVALID_ARG, "sampler: %s", why);
}

void sigma_sampler_close(sigma_sampler *s) {
    if (!s) return;
    sg_alloc a = s->alloc;
    sg_free(&a, s->hist);
    sg_free(&a, s->counts);
    sg_free(&a, s->work);
    sg_free(&a, s->cand);
    if (s->grammar) sg_gmatch_free(&s->gm);
    sg_grammar_free(s->grammar);
    sg_free(&a, s->grammar_text);
    sg_free(&a, s->grammar_root);
    sg_free(&a, s->pieces);
    sg_free(&a, s->piece_off);
    sg_free(&a, s->is_eog);
    sg_free(&a, s);
}

/* Compile the grammar and the token bytes it is checked against. */
static int grammar_open(sigma_sampler *s) {
    const sigma_model *model = s->model;
    sg_err err;
    sg_err_clear(&err);
    const char *root = s->p.grammar_root ? s->p.grammar_root : "root";
    s->grammar_text = sg_strndup(&s->alloc, s->p.grammar, strlen(s->p.grammar));
    s->grammar_root = sg_strndup(&s->alloc, root, strlen(root));
    if (!s->grammar_text || !s->grammar_root)
        return sg_model_error(model, SIGMA_E_NOMEM, "sampler: out of memory");
    s->p.grammar = s->grammar_text;
    s->p.grammar_root = s->grammar_root;
    int st = sg_grammar_compile(&s->alloc, s->grammar_text, strlen(s->grammar_text),
                                s->grammar_root, &s->grammar, &err);
    if (st != SIGMA_OK) return sg_model_error(model, st, "sampler: %s", err.msg);
    s->piece_off = sg_malloc(&s->alloc, ((size_t)s->n_vocab + 1) * sizeof *s->piece_off);
    s->is_eog = sg_calloc(&s->alloc, s->n_vocab, 1);
    if (!s->piece_off || !s->is_eog) return sg_model_error(model, SIGMA_E_NOMEM, "sampler: out of memory");
    size_t cap = 0, used = 0;
    char tmp[256];
    for (uint32_t t = 0; t < s->n_vocab; t++) {
        size_t n = 0;
        int eog = 0;
        s->piece_off[t] = (uint32_t)used;
        if (sigma_token_is_eog(model, (sigma_token)t, &eog) == SIGMA_OK && eog) {
            s->is_eog[t] = 1;
            continue;
        }
        st = sigma_token_to_piece(model, (sigma_token)t, tmp, sizeof tmp, &n, 0);
        if (st != SIGMA_OK) continue; /* no bytes: never allowed */
        if (used + n > UINT32_MAX ||
            sg_reserve(&s->alloc, (void **)&s->pieces, &cap, used, used + n) != SIGMA_OK)
            return sg_model_error(model, SIGMA_E_NOMEM, "sampler: out of memory");
        if (n) memcpy(s->pieces + used, tmp, n); /* s->pieces is NULL until a piece has bytes */
        used += n;
    }
    s->piece_off[s->n_vocab] = (uint32_t)used;
    if (sg_gmatch_init(&s->gm, s->grammar, &s->alloc) != SIGMA_OK) {
        sg_grammar_free(s->grammar);
        s->grammar = NULL;
        return sg_model_error(model, SIGMA_E_NOMEM, "sampler: out of memory");
    }
    return SIGMA_OK;
}

/* May token t come next under the grammar? */
static int grammar_allows(sigma_sampler *s, sigma_token t, int can_end) {
    s->n_checks++;
    if (s->is_eog[t]) return can_end;
    uint32_t o = s->piece_off[t], n = s->piece_off[t + 1] - o;
    return n && sg_gmatch_check(&s->gm, s->pieces + o, n);
}

/* Advance the grammar past a sampled token (EOG: nothing to consume). */
static int grammar_consume(sigma_sampler *s, sigma_token t) {
    if (!s->grammar || s->is_eog[t]) return SIGMA_OK;
    uint32_t o = s->piece_off[t], n = s->piece_off[t + 1] - o;
    int st = sg_gmatch_advance(&s->gm, s->pieces + o, n);
    if (st == SIGMA_E_NOMEM) return sg_model_error(s->model, st, "sampler: out of memory");
    if (st != SIGMA_OK)
        return sg_model_error(s->model, SIGMA_E_INTERNAL, "sampler: grammar rejected its own token");
    return SIGMA_OK;
}

int sigma_sampler_grammar_done(const sigma_sampler *s, int *done) {
    if (!s || !done) return SIGMA_E_INVALID_ARG;
    *done = s->grammar ? sg_gmatch_can_end(&s->gm) : 1;
    return SIGMA_OK;
}

int sigma_sampler_open(const sigma_model *model, const sigma_sampler_params *params,
                       sigma_sampler **out) {
    if (out) *out = NULL;
    if (!model || !out) return SIGMA_E_INVALID_ARG;
    sigma_sampler_params p;
    sigma_sampler_params_init(&p, sizeof p);
    if (params) {
        if (params->struct_size < sizeof(uint32_t))
            return sg_model_error(model, SIGMA_E_INVALID_ARG, "sampler: bad struct_size");
        sg_params_merge(&p, sizeof p, params, params->struct_size);
    }
    int st = check_params(model, &p);
    if (st != SIGMA_OK) return st;
    uint32_t n_vocab = model->hp.n_vocab;
    if (n_vocab == 0 || n_vocab > INT32_MAX)
        return sg_model_error(model, SIGMA_E_STATE, "sampler: model has no vocabulary");
    sigma_sampler *s = sg_calloc(&model->alloc, 1, sizeof *s);
    if (!s) return sg_model_error(model, SIGMA_E_NOMEM, "sampler: out of memory");
    s->alloc = model->alloc;
    s->model = model;
    s->n_vocab = n_vocab;
    s->p = p;
    s->hist_cap = p.penalty_last_n > 0 ? (uint32_t)p.penalty_last_n : 0;
    if (s->hist_cap) s->hist = sg_calloc(&s->alloc, s->hist_cap, sizeof *s->hist);
    s->counts = sg_calloc(&s->alloc, n_vocab, sizeof *s->counts);
    s->work = sg_calloc(&s->alloc, n_vocab, sizeof *s->work);
    s->cand = sg_calloc(&s->alloc, n_vocab, sizeof *s->cand);
    if ((s->hist_cap && !s->hist) || !s->counts || !s->work || !s->cand) {
        sigma_sampler_close(s);
        return sg_model_error(model, SIGMA_E_NOMEM, "sampler: out of memory");
    }
    if (p.grammar) {
        st = grammar_open(s);
        if (st != SIGMA_OK) {
            sigma_sampler_close(s);
            return st;
        }
    }
    rng_seed(s->rng, p.seed);
    *out = s;
    return SIGMA_OK;
}

int sigma_sampler_reset(sigma_sampler *s, uint64_t seed) {
    if (!s) return SIGMA_E_INVALID_ARG;
    s->hist_len = 0;
    s->hist_head = 0;
    s->p.seed = seed;
    rng_seed(s->rng, seed);
    if (s->grammar && sg_gmatch_reset(&s->gm) != SIGMA_OK)
        return sg_model_error(s->model, SIGMA_E_NOMEM, "sampler: out of memory");
    return SIGMA_OK;
}

static void hist_push(sigma_sampler *s, sigma_token t) {
    if (!s->hist_cap) return;
    s->hist[s->hist_head] = t;
    s->hist_head = (s->hist_head + 1) % s->hist_cap;
    if (s->hist_len < s->hist_cap) s->hist_len++;
}

int sigma_sampler_accept(sigma_sampler *s, sigma_token token) {
    if (!s || token < 0 || (uint32_t)token >= s->n_vocab) return SIGMA_E_INVALID_ARG;
    hist_push(s, token);
    return SIGMA_OK;
}

/* ---- the pipeline ------------------------------------------------------- */

int sg_argmax(const float *logits, uint32_t n, sigma_token *token) {
    int32_t best = -1;
    float bv = -INFINITY;
    for (uint32_t i = 0; i < n; i++) {
        float v = logits[i];
        if (isnan(v) || v == -INFINITY) continue;
        if (best < 0 || v > bv) {
            best = (int32_t)i;
            bv = v;
        }
    }
    if (best < 0) return SIGMA_E_INVALID_ARG;
    *token = best;
    return SIGMA_OK;
}

static int penalties_on(const sigma_sampler *s) {
    return s->hist_len > 0 && (s->p.repeat_penalty != 1.0f || s->p.frequency_penalty != 0.0f ||
                               s->p.presence_penalty != 0.0f);
}

void sg_sampler_apply_penalties(const sigma_sampler *s, float *logits) {
    if (!penalties_on(s)) return;
    /* counts[] is zero on entry and restored to zero on exit */
    uint32_t *counts = s->counts;
    for (uint32_t i = 0; i < s->hist_len; i++) counts[s->hist[i]]++;
    for (uint32_t i = 0; i < s->hist_len; i++) {
        sigma_token t = s->hist[i];
        uint32_t c = counts[t];
        if (!c) continue; /* already done */
        float l = logits[t];
        if (l > 0.0f)
            l /= s->p.repeat_penalty;
        else
            l *= s->p.repeat_penalty;
        l -= (float)c * s->p.frequency_penalty + s->p.presence_penalty;
        logits[t] = l;
        counts[t] = 0;
    }
}

/* Descending logit, then ascending id. */
static int cand_cmp(const void *a, const void *b) {
    const sg_cand *x = a, *y = b;
    if (x->logit > y->logit) return -1;
    if (x->logit < y->logit) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

static inline int cand_before(const sg_cand *x, const sg_cand *y) {
    return x->logit > y->logit || (x->logit == y->logit && x->id < y->id);
}

/* Min-heap (root = worst) sift-down for top-k selection. */
static void heap_down(sg_cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && cand_before(&h[w], &h[l])) w = l;
        if (r < n && cand_before(&h[w], &h[r])) w = r;
        if (w == i) return;
        sg_cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Keep the k best of c[0..n) in c[0..k) (unordered). */
static size_t select_top_k(sg_cand *c, size_t n, size_t k) {
    if (k >= n) return n;
    for (size_t i = k / 2; i-- > 0;) heap_down(c, k, i);
    for (size_t i = k; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            c[0] = c[i];
            heap_down(c, k, 0);
        }
    }
    return k;
}

/* Like select_top_k, but the others stay in c[k..n) (swapped, not
 * overwritten), so the next batch can be taken from them. */
static void partition_top_k(sg_cand *c, size_t n, size_t k) {
    if (k >= n) return;
    for (size_t i = k / 2; i-- > 0;) heap_down(c, k, i);
    for (size_t i = k; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            sg_cand t = c[0];
            c[0] = c[i];
            c[i] = t;
            heap_down(c, k, 0);
        }
    }
}

/* Drop from c[0..n) the tokens whose first byte the grammar cannot take
 * (and EOG where it cannot end): a bit test each. Returns the count left. */
static size_t grammar_prefilter(sigma_sampler *s, sg_cand *c, size_t n) {
    int can_end = sg_gmatch_can_end(&s->gm);
    const uint8_t *first = s->gm.first;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t t = c[i].id;
        uint32_t o = s->piece_off[t];
        int keep = s->is_eog[t] ? can_end
                                : s->piece_off[t + 1] > o &&
                                      (first[s->pieces[o] >> 3] >> (s->pieces[o] & 7) & 1);
        if (keep) c[m++] = c[i];
    }
    return m;
}

/* Keep in c[0..n) the candidates the grammar allows (unordered; the
 * caller's top-k picks from them). After the first-byte test, with k > 0
 * the rest is checked best first in two sorted batches, which usually finds
 * k allowed tokens; otherwise every remaining candidate is checked. */
static size_t grammar_filter(sigma_sampler *s, sg_cand *c, size_t n, size_t k) {
    int can_end = sg_gmatch_can_end(&s->gm);
    n = grammar_prefilter(s, c, n);
    size_t valid = 0, base = 0;
    if (k > 0) {
        size_t batch = k < 32 ? 64 : 2 * k;
        for (int round = 0; round < 2 && base < n && valid < k; round++) {
            size_t b = n - base < batch ? n - base : batch;
            partition_top_k(c + base, n - base, b);
            qsort(c + base, b, sizeof *c, cand_cmp);
            for (size_t i = base; i < base + b && valid < k; i++)
                if (grammar_allows(s, c[i].id, can_end)) c[valid++] = c[i];
            base += b;
            batch *= 4;
        }
        if (valid >= k) return valid;
    }
    for (size_t i = base; i < n; i++)
        if (grammar_allows(s, c[i].id, can_end)) c[valid++] = c[i];
    return valid;
}

/* Top-k off under a grammar: steps 4-6 over the allowed tokens, checking
 * candidates against the grammar best first and only as far as the result
 * depends on them. With q = exp((logit - best allowed logit) / T):
 *  - min-p keeps the allowed tokens with q >= min_p: known once a checked
 *    candidate falls below min_p (all later ones are smaller);
 *  - top-p keeps the shortest best-first prefix of the allowed tokens whose
 *    mass reaches top_p * Z, Z the mass of all allowed tokens. Z lies
 *    between the allowed mass found so far and that plus the mass of the
 *    unchecked candidates, so the prefix is known once both bounds give the
 *    same one.
 * The kept tokens are the shorter of the two prefixes. Leaves them in
 * c[0..kept) best first with p = q (not normalised); 0: nothing allowed.
 * Same result as checking everything (up to rounding at a tie with the
 * top-p boundary); in a peaked distribution it stops after a few batches. */
static size_t grammar_walk(sigma_sampler *s, sg_cand *c, size_t n) {
    int can_end = sg_gmatch_can_end(&s->gm);
    n = grammar_prefilter(s, c, n);
    const double T = (double)s->p.temperature;
    const int use_top_p = s->p.top_p < 1.0f, use_min_p = s->p.min_p > 0.0f;
    const double tp = (double)s->p.top_p, mp = (double)s->p.min_p;
    size_t m = 0, base = 0, batch = 64;
    double lref = 0.0, zc = 0.0, rest = 0.0;
    while (base < n) {
        size_t b = n - base < batch ? n - base : batch;
        partition_top_k(c + base, n - base, b);
        qsort(c + base, b, sizeof *c, cand_cmp);
        double last_q = 1.0;
        for (size_t i = base; i < base + b; i++) {
            sg_cand ci = c[i];
            int ok = grammar_allows(s, ci.id, can_end);
            if (m == 0) {
                if (!ok) continue;
                /* the best allowed token: the reference; the unchecked mass */
                lref = (double)ci.logit;
                rest = 0.0;
                for (size_t j = i + 1; j < n; j++) rest += exp(((double)c[j].logit - lref) / T);
            }
            double q = exp(((double)ci.logit - lref) / T);
            if (m > 0) rest -= q; /* it was in the unchecked mass */
            last_q = q;
            if (!ok) continue;
            ci.p = q;
            c[m++] = ci;
            zc += q;
        }
        base += b;
        batch *= 4;
        if (m == 0) continue;
        if (rest < 0.0 || base == n) rest = 0.0;
        /* min-p: kept count, or unknown (every allowed token so far passes) */
        size_t kmin = SIZE_MAX;
        if (use_min_p && (last_q < mp || base == n)) {
            kmin = 0;
            while (kmin < m && c[kmin].p >= mp) kmin++;
        } else if (!use_min_p && base == n) {
            kmin = m;
        }
        /* top-p: the prefix for Z = zc (lo) and for Z = zc + rest (hi) */
        size_t ktop = SIZE_MAX, klo = m;
        if (use_top_p) {
            double cum = 0.0;
            size_t lo = SIZE_MAX, hi = SIZE_MAX;
            for (size_t i = 0; i < m && hi == SIZE_MAX; i++) {
                cum += c[i].p;
                if (lo == SIZE_MAX && cum >= tp * zc) lo = i + 1;
                if (cum >= tp * (zc + rest)) hi = i + 1;
            }
            klo = lo;
            if (hi != SIZE_MAX && hi == lo) ktop = hi;
        } else if (base == n) {
            ktop = m;
        }
        if (kmin != SIZE_MAX && ktop != SIZE_MAX) return kmin < ktop ? kmin : ktop;
        if (kmin != SIZE_MAX && (use_top_p ? klo >= kmin : 1)) return kmin;
        if (ktop != SIZE_MAX && ktop <= m) return ktop; /* min-p keeps >= m */
    }
    return m;
}

/* Pure temperature sampling under a grammar (top-k and top-p off, min-p 0):
 * draw from all candidates and check only the drawn token; a rejected token
 * is removed and the draw repeated. The result follows exactly the
 * distribution restricted to the allowed tokens. Returns 1 with *t, or 0
 * after 32 rejections (the caller then checks every candidate, which keeps
 * the distribution exact). */
static int grammar_reject_draw(sigma_sampler *s, sg_cand *c, size_t n, float lmax, sigma_token *t) {
    int can_end = sg_gmatch_can_end(&s->gm);
    n = grammar_prefilter(s, c, n);
    const double T = (double)s->p.temperature;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = exp(((double)c[i].logit - (double)lmax) / T);
        sum += c[i].p;
    }
    for (int tries = 0; tries < 32 && sum > 0.0; tries++) {
        double u = rng_uniform(s->rng) * sum, cum = 0.0;
        size_t pick = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            cum += c[i].p;
            if (u < cum && c[i].p > 0.0) {
                pick = i;
                break;
            }
        }
        if (pick == SIZE_MAX) break; /* rounding at the end: check them all */
        if (grammar_allows(s, c[pick].id, can_end)) {
            *t = c[pick].id;
            return 1;
        }
        sum -= c[pick].p;
        c[pick].p = 0.0;
    }
    return 0;
}

/* Runs steps 1-6; leaves the surviving candidates in s->cand (best first
 * when top-p or a grammar with top-k off cut them) with normalised
 * probabilities p; returns their count (>= 1) or 0 if every
 * logit is -inf/NaN. */
/* Steps 1-2 into s->cand: the finite candidates after penalties; their
 * largest logit in *lmax. */
static size_t prepare_cands(sigma_sampler *s, const float *logits, float *lmax_out) {
    float *w = s->work;
    uint32_t nv = s->n_vocab;
    for (uint32_t i = 0; i < nv; i++) {
        float v = logits[i];
        if (isnan(v)) v = -INFINITY;
        else if (v == INFINITY) v = FLT_MAX;
        w[i] = v;
    }
    sg_sampler_apply_penalties(s, w);
    sg_cand *c = s->cand;
    size_t n = 0;
    float lmax = -INFINITY;
    for (uint32_t i = 0; i < nv; i++) {
        /* penalties may have pushed a huge logit to +-inf again */
        if (w[i] == -INFINITY || isnan(w[i])) continue;
        if (w[i] == INFINITY) w[i] = FLT_MAX;
        c[n].logit = w[i];
        c[n].id = (int32_t)i;
        c[n].p = 0.0;
        if (w[i] > lmax) lmax = w[i];
        n++;
    }
    *lmax_out = lmax;
    return n;
}

/* grammar_reject_draw on the candidates of `logits` (1: *t drawn). */
static int draw_first(sigma_sampler *s, const float *logits, sigma_token *t) {
    float lmax;
    size_t n = prepare_cands(s, logits, &lmax);
    return n && grammar_reject_draw(s, s->cand, n, lmax, t);
}

static size_t build_dist(sigma_sampler *s, const float *logits) {
    sg_cand *c = s->cand;
    float lmax;
    size_t n = prepare_cands(s, logits, &lmax);
    if (n == 0) return 0;
    if (s->grammar && s->p.top_k <= 0 && !s->exhaustive) {
        n = grammar_walk(s, c, n);
        if (n == 0) return 0;
        double tot = 0.0;
        for (size_t i = 0; i < n; i++) tot += c[i].p;
        for (size_t i = 0; i < n; i++) c[i].p /= tot;
        return n;
    }
    if (s->grammar) {
        n = grammar_filter(s, c, n, s->p.top_k > 0 ? (size_t)s->p.top_k : 0);
        if (n == 0) return 0;
        lmax = c[0].logit;
        for (size_t i = 1; i < n; i++)
            if (c[i].logit > lmax) lmax = c[i].logit;
    }
    if (s->p.top_k > 0) n = select_top_k(c, n, (size_t)s->p.top_k);

    /* temperature + softmax (over what top-k left) */
    double T = (double)s->p.temperature, sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = exp(((double)c[i].logit - (double)lmax) / T);
        sum += c[i].p;
    }
    /* min-p does not depend on top-p's cut (p_max survives it and the
     * ratios are unchanged), so its candidates can be filtered before the
     * sort; top-p still uses the mass over everything top-k left. */
    double pmax_raw = 1.0; /* exp(0) for the max, which survived top-k */
    if (s->p.min_p > 0.0f) {
        double thr = (double)s->p.min_p * pmax_raw;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].p >= thr) c[m++] = c[i];
        n = m;
    }
    for (size_t i = 0; i < n; i++) c[i].p /= sum;
    if (s->p.top_p < 1.0f) {
        /* the shortest best-first prefix whose mass reaches top_p, sorted
         * in growing batches (the best b of the rest, then those sorted)
         * only as far as it reaches: a peaked distribution sorts a few
         * dozen of the 49k candidates of a large vocabulary */
        double cum = 0.0, tp = (double)s->p.top_p;
        size_t keep = n, base = 0, b = 64;
        while (base < n && keep == n) {
            size_t m = n - base < b ? n - base : b;
            partition_top_k(c + base, n - base, m);
            qsort(c + base, m, sizeof *c, cand_cmp);
            for (size_t i = base; i < base + m; i++) {
                cum += c[i].p;
                if (cum >= tp) {
                    keep = i + 1;
                    break;
                }
            }
            base += m;
            b *= 4;
        }
        n = keep;
    }
    /* without top-p the draw does not need an order: not sorted */
    if (n == 0) n = 1;
    double tot = 0.0;
    for (size_t i = 0; i < n; i++) tot += c[i].p;
    for (size_t i = 0; i < n; i++) c[i].p /= tot;
    return n;
}

/* Greedy pick under the grammar: the best allowed candidate. */
static int grammar_argmax(sigma_sampler *s, const float *logits, sigma_token *t) {
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        float v = logits[i];
        s->work[i] = isnan(v) ? -INFINITY : v == INFINITY ? FLT_MAX : v;
    }
    sg_sampler_apply_penalties(s, s->work);
    size_t n = 0;
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        if (s->work[i] == -INFINITY) continue;
        s->cand[n].logit = s->work[i];
        s->cand[n].id = (int32_t)i;
        s->cand[n].p = 0.0;
        n++;
    }
    if (n) n = grammar_filter(s, s->cand, n, 1);
    if (!n) return sg_model_error(s->model, SIGMA_E_INVALID_ARG, "sampler: no token is allowed");
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (cand_before(&s->cand[i], &s->cand[best])) best = i;
    *t = s->cand[best].id;
    return SIGMA_OK;
}

int sg_sampler_probs(sigma_sampler *s, const float *logits, double *probs) {
    if (!s || !logits || !probs) return SIGMA_E_INVALID_ARG;
    for (uint32_t i = 0; i < s->n_vocab; i++) probs[i] = 0.0;
    if (!(s->p.temperature > 0.0f) && s->grammar) {
        sigma_token t;
        int st = grammar_argmax(s, logits, &t);
        if (st != SIGMA_OK) return st;
        probs[t] = 1.0;
        return SIGMA_OK;
    }
    if (!(s->p.temperature > 0.0f)) {
        for (uint32_t i = 0; i < s->n_vocab; i++) s->work[i] = logits[i];
        sg_sampler_apply_penalties(s, s->work);
        sigma_token t;
        int st = sg_argmax(s->work, s->n_vocab, &t);
        if (st != SIGMA_OK) return st;
        probs[t] = 1.0;
        return SIGMA_OK;
    }
    size_t n = build_dist(s, logits);
    if (n == 0) return SIGMA_E_INVALID_ARG;
    for (size_t i = 0; i < n; i++) probs[s->cand[i].id] = s->cand[i].p;
    return SIGMA_OK;
}

int sigma_sampler_sample(sigma_sampler *s, const float *logits, sigma_token *token) {
    if (!s || !logits || !token) return SIGMA_E_INVALID_ARG;
    sigma_token t;
    if (!(s->p.temperature > 0.0f) && s->grammar) {
        int st = grammar_argmax(s, logits, &t);
        if (st != SIGMA_OK) return st;
    } else if (!(s->p.temperature > 0.0f)) {
        const float *src = logits;
        if (penalties_on(s)) {
            memcpy(s->work, logits, (size_t)s->n_vocab * sizeof *s->work);
            sg_sampler_apply_penalties(s, s->work);
            src = s->work;
        }
        int st = sg_argmax(src, s->n_vocab, &t);
        if (st != SIGMA_OK) return st;
    } else if (s->grammar && s->p.top_k <= 0 && !(s->p.top_p < 1.0f) && !(s->p.min_p > 0.0f) &&
               !s->exhaustive && draw_first(s, logits, &t)) {
        /* drawn from the whole distribution and allowed by the grammar */
    } else {
        size_t n = build_dist(s, logits);
        if (n == 0 && s->grammar)
            return sg_model_error(s->model, SIGMA_E_INVALID_ARG, "sampler: no token is allowed");
        if (n == 0) return SIGMA_E_INVALID_ARG;
        double u = rng_uniform(s->rng), cum = 0.0;
        t = s->cand[n - 1].id; /* rounding fallback */
        for (size_t i = 0; i < n; i++) {
            cum += s->cand[i].p;
            if (u < cum) {
                t = s->cand[i].id;
                break;
            }
        }
    }
    int gst = grammar_consume(s, t);
    if (gst != SIGMA_OK) return gst;
    hist_push(s, t);
    *token = t;
    return SIGMA_OK;
}

void sg_sampler_set_exhaustive(sigma_sampler *s, int on) { s->exhaustive = on != 0; }
uint64_t sg_sampler_grammar_checks(const sigma_sampler *s) { return s->n_checks; }

/* ---- state serialization (session files) ---------------------------------
 * Layout (little-endian), documented in docs/session-format.md:
 *   0 "SMP1", 4 u32 n_vocab, 8 f32 temperature, 12 i32 top_k, 16 f32 top_p,
 *   20 f32 min_p, 24 f32 repeat_penalty, 28 f32 frequency_penalty,
 *   32 f32 presence_penalty, 36 i32 penalty_last_n, 40 u64 seed,
 *   48 u64 rng[4], 80 u32 history capacity, 84 u32 history length,
 *   88 i32 tokens x length, oldest first;
 * then, only when the sampler has a grammar: "GRM1", u64 grammar hash,
 * u32 n, and n bytes of the grammar's state (sg_gmatch_save). A state
 * without that part (an older file) puts the grammar at its start. */

#define GRM_MAGIC "GRM1"

#define SMP_MAGIC "SMP1"

/* f32 fields travel as their bits through the one little-endian codec
 * (lib/base/base.h). */
static void st_put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    sg_put_le32(p, u);
}
static float st_get_f32(const uint8_t *p) {
    uint32_t u = sg_get_le32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

const sigma_model *sg_sampler_model(const sigma_sampler *s) { return s ? s->model : NULL; }

int sg_sampler_save_state(const sigma_sampler *s, sigma_write_fn w, void *ctx) {
    uint8_t h[SG_SAMPLER_STATE_HEADER];
    memcpy(h, SMP_MAGIC, 4);
    sg_put_le32(h + 4, s->n_vocab);
    st_put_f32(h + 8, s->p.temperature);
    sg_put_le32(h + 12, (uint32_t)s->p.top_k);
    st_put_f32(h + 16, s->p.top_p);
    st_put_f32(h + 20, s->p.min_p);
    st_put_f32(h + 24, s->p.repeat_penalty);
    st_put_f32(h + 28, s->p.frequency_penalty);
    st_put_f32(h + 32, s->p.presence_penalty);
    sg_put_le32(h + 36, (uint32_t)s->p.penalty_last_n);
    sg_put_le64(h + 40, s->p.seed);
    for (int i = 0; i < 4; i++) sg_put_le64(h + 48 + 8 * i, s->rng[i]);
    sg_put_le32(h + 80, s->hist_cap);
    sg_put_le32(h + 84, s->hist_len);
    int st = w(ctx, h, sizeof h);
    /* the ring oldest first: it starts at head once full, at 0 before */
    uint32_t start = s->hist_len == s->hist_cap ? s->hist_head : 0;
    for (uint32_t i = 0; i < s->hist_len && st == SIGMA_OK; i++) {
        uint8_t t[4];
        sg_put_le32(t, (uint32_t)s->hist[(start + i) % s->hist_cap]);
        st = w(ctx, t, 4);
    }
    if (st == SIGMA_OK && s->grammar) {
        size_t n = sg_gmatch_state_size(&s->gm);
        uint8_t *b = sg_malloc(&s->alloc, 16 + n);
        if (!b) return SIGMA_E_NOMEM;
        memcpy(b, GRM_MAGIC, 4);
        sg_put_le64(b + 4, sg_grammar_hash(s->grammar));
        sg_put_le32(b + 12, (uint32_t)n);
        sg_gmatch_save(&s->gm, b + 16);
        st = w(ctx, b, 16 + n);
        sg_free(&s->alloc, b);
    }
    return st;
}

size_t sg_sampler_state_size(const sigma_sampler *s) {
    return SG_SAMPLER_STATE_HEADER + (size_t)s->hist_len * 4 +
           (s->grammar ? 16 + sg_gmatch_state_size(&s->gm) : 0);
}

int sg_sampler_restore_prepare(sigma_sampler *s, const void *data, size_t size,
                               sg_sampler_restore *r, sg_err *err) {
    const uint8_t *d = data;
    memset(r, 0, sizeof *r);
    if (size < SG_SAMPLER_STATE_HEADER || memcmp(d, SMP_MAGIC, 4) != 0)
        return sg_error(err, SIGMA_E_FORMAT, "sampler state: bad size %zu or magic", size);
    uint32_t n_vocab = sg_get_le32(d + 4);
    if (n_vocab != s->n_vocab)
        return sg_error(err, SIGMA_E_MISMATCH, "sampler state: vocabulary of %u, the sampler has %u",
                        n_vocab, s->n_vocab);
    sigma_sampler_params p = s->p;
    p.temperature = st_get_f32(d + 8);
    p.top_k = (int32_t)sg_get_le32(d + 12);
    p.top_p = st_get_f32(d + 16);
    p.min_p = st_get_f32(d + 20);
    p.repeat_penalty = st_get_f32(d + 24);
    p.frequency_penalty = st_get_f32(d + 28);
    p.presence_penalty = st_get_f32(d + 32);
    p.penalty_last_n = (int32_t)sg_get_le32(d + 36);
    p.seed = sg_get_le64(d + 40);
    const char *why = params_problem(&p);
    if (why) return sg_error(err, SIGMA_E_FORMAT, "sampler state: %s", why);
    uint64_t rng[4];
    for (int i = 0; i < 4; i++) rng[i] = sg_get_le64(d + 48 + 8 * i);
    if (!(rng[0] | rng[1] | rng[2] | rng[3]))
        return sg_error(err, SIGMA_E_FORMAT, "sampler state: RNG state is all zero");
    uint32_t cap = sg_get_le32(d + 80), len = sg_get_le32(d + 84);
    uint32_t want_cap = p.penalty_last_n > 0 ? (uint32_t)p.penalty_last_n : 0;
    if (cap != want_cap || len > cap)
        return sg_error(err, SIGMA_E_FORMAT,
                        "sampler state: history of %u in a window of %u (penalty_last_n %d)", len,
                        cap, (int)p.penalty_last_n);
    uint64_t base = SG_SAMPLER_STATE_HEADER + (uint64_t)len * 4;
    if ((uint64_t)size < base || ((uint64_t)size > base && (size - base < 16 ||
                                                            memcmp(d + base, GRM_MAGIC, 4) != 0)))
        return sg_error(err, SIGMA_E_FORMAT, "sampler state: %zu bytes for a history of %u", size,
                        len);
    if ((uint64_t)size > base && !s->grammar)
        return sg_error(err, SIGMA_E_MISMATCH,
                        "sampler state: it has a grammar, the sampler has none");
    if ((uint64_t)size > base) {
        const uint8_t *gd = d + base;
        if (sg_get_le64(gd + 4) != sg_grammar_hash(s->grammar))
            return sg_error(err, SIGMA_E_MISMATCH, "sampler state: made with another grammar");
        if ((uint64_t)sg_get_le32(gd + 12) != size - base - 16)
            return sg_error(err, SIGMA_E_FORMAT, "sampler state: grammar state of %u bytes in %zu",
                            sg_get_le32(gd + 12), (size_t)(size - base - 16));
    }
    for (uint32_t i = 0; i < len; i++) {
        uint32_t t = sg_get_le32(d + SG_SAMPLER_STATE_HEADER + (size_t)i * 4);
        if (t >= n_vocab)
            return sg_error(err, SIGMA_E_FORMAT, "sampler state: token %u in the history is out of range",
                            t);
    }
    if (s->grammar) {
        int gst = (uint64_t)size > base
                      ? sg_gmatch_decode(s->grammar, &s->alloc, d + base + 16,
                                         (size_t)(size - base - 16), &r->gset, err)
                      : sg_gmatch_initial(s->grammar, &s->alloc, &r->gset);
        if (gst == SIGMA_E_NOMEM && (uint64_t)size == base)
            return sg_error(err, SIGMA_E_NOMEM, "sampler state: out of memory");
        if (gst != SIGMA_OK) return gst;
    }
    if (cap) {
        r->hist = sg_malloc(&s->alloc, (size_t)cap * sizeof *r->hist);
        if (!r->hist) {
            sg_gset_free(&s->alloc, &r->gset);
            return sg_error(err, SIGMA_E_NOMEM, "sampler state: out of memory");
        }
        for (uint32_t i = 0; i < len; i++)
            r->hist[i] = (sigma_token)sg_get_le32(d + SG_SAMPLER_STATE_HEADER + (size_t)i * 4);
    }
    r->p = p;
    memcpy(r->rng, rng, sizeof rng);
    r->cap = cap;
    r->len = len;
    r->ready = 1;
    return SIGMA_OK;
}

void sg_sampler_restore_commit(sigma_sampler *s, sg_sampler_restore *r) {
    if (!r->ready) return;
    sg_free(&s->alloc, s->hist);
    s->hist = r->hist;
    s->hist_cap = r->cap;
    s->hist_len = r->len;
    s->hist_head = r->cap ? r->len % r->cap : 0;
    s->p = r->p;
    memcpy(s->rng, r->rng, sizeof s->rng);
    if (s->grammar) sg_gmatch_take(&s->gm, &r->gset);
    memset(r, 0, sizeof *r);
}

void sg_sampler_restore_abort(sigma_sampler *s, sg_sampler_restore *r) {
    if (r->ready) {
        sg_free(&s->alloc, r->hist);
        sg_gset_free(&s->alloc, &r->gset);
    }
    memset(r, 0, sizeof *r);
}
