/* Tokenizers built from the tokenizer.ggml.* metadata of a GGUF file.
 *
 *  - "gpt2": byte-level BPE. Text is split by a pre-tokenizer chosen by
 *    tokenizer.ggml.pre (GPT-2, Llama-3 "llama-bpe", SmolLM "smollm", Qwen2
 *    "qwen2" (also Qwen2.5 and Qwen3); any
 *    other value falls back to GPT-2 with a warning), each piece's bytes are
 *    mapped to the GPT-2 byte alphabet and merged by rank (lowest rank first,
 *    leftmost on ties, like HF tokenizers). For "llama-bpe" a piece that is
 *    itself a token is taken whole (HF's ignore_merges, set by Llama-3).
 *  - "llama": SentencePiece BPE. Spaces become U+2581, a U+2581 is put in
 *    front of the text (tokenizer.ggml.add_space_prefix, default true), and
 *    adjacent symbols are merged when their concatenation is a token, the
 *    highest score first (leftmost on ties); characters left without a
 *    token are encoded as their <0xNN> byte tokens (else UNK).
 *
 * Merges ("a b") whose parts or result are not in the vocabulary are
 * skipped (counted and reported in a WARN log); a merge line without a
 * separating space is SIGMA_E_FORMAT.
 *
 * Input text that is not valid UTF-8 is still encoded losslessly: the
 * pre-tokenizers treat each ill-formed sequence (maximal subpart, as in
 * Unicode's U+FFFD substitution) as one punctuation-class character, and
 * byte-level BPE / SPM byte fallback encode its bytes as byte tokens. HF
 * tokenizers takes Python strings and so has no behaviour to match here.
 * Exception: a byte whose symbol is missing from the vocabulary (SmolLM2
 * lacks 21 of the 256) is dropped like HF does, or UNK for SentencePiece;
 * text containing such bytes does not round-trip.
 *
 * Special tokens: control tokens (type 3) are recognised in the input only
 * with SIGMA_TOKENIZE_PARSE_SPECIAL; user-defined tokens (type 4) are
 * always recognised, as HF does for added tokens and llama.cpp for
 * user-defined ones. The longest match at the leftmost position wins.
 *
 * No state is kept between calls: every call allocates its own scratch
 * with the model's allocator, so a model can be used from many threads.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "unicode.h"

#define SPACE_MARK "\xE2\x96\x81" /* U+2581 */

/* ------------------------------------------------------------------------ */
/* Hashing                                                                  */
/* ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static int32_t vocab_find(const struct sg_tokenizer *t, const void *s, size_t n) {
    uint64_t h = hash_bytes(s, n);
    for (uint32_t i = (uint32_t)h & t->vmask;; i = (i + 1) & t->vmask) {
        uint32_t v = t->vhash[i];
        if (!v) return -1;
        const sg_str *e = &t->text[v - 1];
        if (e->len == n && memcmp(e->ptr, s, n) == 0) return (int32_t)(v - 1);
    }
}

static const sg_merge_ent *merge_find(const struct sg_tokenizer *t, uint32_t a, uint32_t b) {
    uint64_t key = ((uint64_t)a << 32) | b;
    for (uint32_t i = (uint32_t)hash_u64(key) & t->mmask;; i = (i + 1) & t->mmask) {
        const sg_merge_ent *e = &t->mhash[i];
        if (e->rank == UINT32_MAX) return NULL;
        if (e->key == key) return e;
    }
}

/* ------------------------------------------------------------------------ */
/* The GPT-2 byte alphabet                                                  */
/* ------------------------------------------------------------------------ */

/* Bytes that are printable stand for themselves; the other 68 (0x00-0x20,
 * 0x7F-0xA0, 0xAD) map to U+0100.. in byte order. */
static uint32_t byte_to_cp(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 0x20) return 256u + b;
    if (b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    return 256u + 67u; /* 0xAD */
}

static int cp_to_byte(uint32_t cp) {
    if (cp < 256) {
        uint8_t b = (uint8_t)cp;
        return byte_to_cp(b) == cp ? b : -1;
    }
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 0x7F);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct special_key {
    uint64_t len;
    uint32_t id;
} special_key;

static int special_cmp(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void tok_destroy(const sg_alloc *a, struct sg_tokenizer *t) {
    if (!t) return;
    sg_free(a, t->text);
    sg_free(a, t->type);
    sg_free(a, t->scores);
    sg_free(a, t->pieces);
    sg_free(a, t->piece_off);
    sg_free(a, t->vhash);
    sg_free(a, t->mhash);
    sg_free(a, t->special);
    sg_free(a, t);
}

void sg_tokenizer_free(struct sigma_model *model) {
    if (!model) return;
    tok_destroy(&model->alloc, model->tok);
    model->tok = NULL;
}

/* Optional token id key: absent -> NONE; present -> must be < n. */
static int load_id(const sg_gguf *g, const char *key, uint32_t n, sigma_token *out,
                   sg_err *err) {
    uint32_t v;
    *out = SIGMA_TOKEN_NONE;
    int st = sg_gguf_get_u32(g, key, &v, err);
    if (st == SIGMA_E_NOT_FOUND) return SIGMA_OK;
    if (st != SIGMA_OK) return st;
    if (v >= n) return sg_error(err, SIGMA_E_FORMAT, "%s = %u is out of range (%u tokens)", key, v, n);
    *out = (sigma_token)v;
    return SIGMA_OK;
}

static int load_bool(const sg_gguf *g, const char *key, int def, int *out, sg_err *err) {
    bool b;
    int st = sg_gguf_get_bool(g, key, &b, err);
    if (st == SIGMA_E_NOT_FOUND) {
        *out = def;
        return SIGMA_OK;
    }
    if (st != SIGMA_OK) return st;
    *out = b ? 1 : 0;
    return SIGMA_OK;
}

static int str_is(sg_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static int build_vocab_hash(const sg_alloc *a, struct sg_tokenizer *t) {
    uint32_t cap = 16;
    while (cap < 2u * t->n_vocab) cap *= 2; /* n_vocab < 2^30 checked */
    t->vhash = sg_calloc(a, cap, sizeof *t->vhash);
    if (!t->vhash) return SIGMA_E_NOMEM;
    t->vmask = cap - 1;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        const sg_str *s = &t->text[id];
        uint64_t h = hash_bytes(s->ptr, (size_t)s->len);
        uint32_t i = (uint32_t)h & t->vmask;
        for (;; i = (i + 1) & t->vmask) {
            uint32_t v = t->vhash[i];
            if (!v) break;
            const sg_str *e = &t->text[v - 1];
            if (e->len == s->len && memcmp(e->ptr, s->ptr, (size_t)s->len) == 0) break;
        }
        if (!t->vhash[i]) t->vhash[i] = id + 1; /* duplicates: the lowest id wins */
    }
    return SIGMA_OK;
}

static int load_merges(struct sigma_model *model, struct sg_tokenizer *t, sg_err *err) {
    const sg_alloc *a = &model->alloc;
    uint64_t n;
    const uint8_t *pos;
    int st = sg_gguf_get_arr(model->gguf, "tokenizer.ggml.merges", SG_GGUF_STRING, &n, &pos, err);
    if (st == SIGMA_E_NOT_FOUND)
        return sg_error(err, SIGMA_E_FORMAT, "gpt2 tokenizer without tokenizer.ggml.merges");
    if (st != SIGMA_OK) return st;
    if (n >= (1u << 30)) return sg_error(err, SIGMA_E_FORMAT, "too many merges (%llu)", (unsigned long long)n);
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n) cap *= 2;
    t->mhash = sg_malloc(a, (size_t)cap * sizeof *t->mhash);
    if (!t->mhash) return SIGMA_E_NOMEM;
    for (uint32_t i = 0; i < cap; i++) {
        t->mhash[i].key = 0;
        t->mhash[i].rank = UINT32_MAX;
        t->mhash[i].id = 0;
    }
    t->mmask = cap - 1;
    char *buf = NULL;
    size_t buf_cap = 0;
    uint64_t skipped = 0;
    for (uint64_t r = 0; r < n; r++) {
        sg_str m = sg_gguf_next_str(&pos);
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
        if (!sp) {
            sg_free(a, buf);
            return sg_error(err, SIGMA_E_FORMAT, "merge %llu has no separating space",
                            (unsigned long long)r);
        }
        size_t la = (size_t)(sp - m.ptr), lb = (size_t)m.len - la - 1;
        int32_t ia = vocab_find(t, m.ptr, la), ib = vocab_find(t, sp + 1, lb);
        if (la + lb > buf_cap) {
            sg_free(a, buf);
            buf_cap = (la + lb) * 2;
            buf = sg_malloc(a, buf_cap);
            if (!buf) return SIGMA_E_NOMEM;
        }
        memcpy(buf, m.ptr, la);
        memcpy(buf + la, sp + 1, lb);
        int32_t im = vocab_find(t, buf, la + lb);
        if (ia < 0 || ib < 0 || im < 0) {
            skipped++;
            continue;
        }
        uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
        uint32_t i = (uint32_t)hash_u64(key) & t->mmask;
        while (t->mhash[i].rank != UINT32_MAX && t->mhash[i].key != key) i = (i + 1) & t->mmask;
        if (t->mhash[i].rank == UINT32_MAX) { /* a repeated pair keeps its first rank */
            t->mhash[i].key = key;
            t->mhash[i].rank = (uint32_t)r;
            t->mhash[i].id = (uint32_t)im;
            t->n_merges++;
        }
    }
    sg_free(a, buf);
    if (skipped)
        sg_logf(&model->log, SIGMA_LOG_WARN,
                "tokenizer: skipped %llu of %llu merges that refer to unknown tokens",
                (unsigned long long)skipped, (unsigned long long)n);
    return SIGMA_OK;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xNN>" -> NN, else -1 */
static int byte_token_value(sg_str s) {
    if (s.len != 6 || memcmp(s.ptr, "<0x", 3) != 0 || s.ptr[5] != '>') return -1;
    int h = hexval(s.ptr[3]), l = hexval(s.ptr[4]);
    return (h < 0 || l < 0) ? -1 : h * 16 + l;
}

/* Decode every token's text once into t->pieces. */
static int build_pieces(const sg_alloc *a, struct sg_tokenizer *t, sg_err *err) {
    uint64_t total = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        if (!sg_add_u64(total, t->text[id].len, &total) || total >= UINT32_MAX)
            return sg_error(err, SIGMA_E_FORMAT, "vocabulary text too large");
    }
    t->pieces = sg_malloc(a, (size_t)total + 1);
    t->piece_off = sg_malloc(a, ((size_t)t->n_vocab + 1) * sizeof *t->piece_off);
    if (!t->pieces || !t->piece_off) return SIGMA_E_NOMEM;
    uint32_t o = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        t->piece_off[id] = o;
        const uint8_t *s = (const uint8_t *)t->text[id].ptr;
        size_t n = (size_t)t->text[id].len;
        int ty = t->type[id];
        if (ty == SG_TOKTYPE_CONTROL || ty == SG_TOKTYPE_UNKNOWN || ty == SG_TOKTYPE_USER_DEFINED) {
            memcpy(t->pieces + o, s, n);
            o += (uint32_t)n;
            continue;
        }
        if (t->kind == SG_TOK_SPM) {
            int bv = ty == SG_TOKTYPE_BYTE ? byte_token_value(t->text[id]) : -1;
            if (bv >= 0) {
                t->pieces[o++] = (char)bv;
                continue;
            }
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && memcmp(s + i, SPACE_MARK, 3) == 0) {
                    t->pieces[o++] = ' ';
                    i += 3;
                } else {
                    t->pieces[o++] = (char)s[i++];
                }
            }
            continue;
        }
        /* byte-level: undo the byte alphabet; other characters are kept */
        for (size_t i = 0; i < n;) {
            size_t l;
            uint32_t cp = sg_utf8_next(s + i, n - i, &l);
            int b = cp == SG_CP_INVALID ? -1 : cp_to_byte(cp);
            if (b >= 0) {
                t->pieces[o++] = (char)b;
            } else {
                memcpy(t->pieces + o, s + i, l);
                o += (uint32_t)l;
            }
            i += l;
        }
    }
    t->piece_off[t->n_vocab] = o;
    return SIGMA_OK;
}

static int build_specials(const sg_alloc *a, struct sg_tokenizer *t) {
    uint32_t n = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++)
        if ((t->type[id] == SG_TOKTYPE_CONTROL || t->type[id] == SG_TOKTYPE_USER_DEFINED) &&
            t->text[id].len > 0)
            n++;
    if (!n) return SIGMA_OK;
    special_key *keys = sg_malloc(a, (size_t)n * sizeof *keys);
    t->special = sg_malloc(a, (size_t)n * sizeof *t->special);
    if (!keys || !t->special) {
        sg_free(a, keys);
        return SIGMA_E_NOMEM;
    }
    uint32_t k = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++)
        if ((t->type[id] == SG_TOKTYPE_CONTROL || t->type[id] == SG_TOKTYPE_USER_DEFINED) &&
            t->text[id].len > 0) {
            keys[k].len = t->text[id].len;
            keys[k].id = id;
            k++;
        }
    qsort(keys, n, sizeof *keys, special_cmp);
    for (uint32_t i = 0; i < n; i++) {
        t->special[i] = keys[i].id;
        uint8_t c = (uint8_t)t->text[keys[i].id].ptr[0];
        t->special_first[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    t->n_special = n;
    sg_free(a, keys);
    return SIGMA_OK;
}

static void add_eog(struct sg_tokenizer *t, sigma_token id) {
    if (id == SIGMA_TOKEN_NONE) return;
    for (uint32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return;
    if (t->n_eog < SG_MAX_EOG) t->eog[t->n_eog++] = id;
}

static void build_eog(struct sg_tokenizer *t) {
    static const char end_of_turn[][16] = {"<|eot_id|>", "<|im_end|>", "<|end|>",
                                           "<end_of_turn>", "<|endoftext|>", "<EOT>",
                                           "<|eom_id|>", "<|end_of_text|>"};
    const size_t n_eot_names = 5; /* the first five may serve as EOT */
    add_eog(t, t->eos);
    add_eog(t, t->eot);
    add_eog(t, t->eom);
    for (size_t k = 0; k < sizeof end_of_turn / sizeof end_of_turn[0]; k++) {
        int32_t id = vocab_find(t, end_of_turn[k], strlen(end_of_turn[k]));
        if (id < 0 || t->type[id] != SG_TOKTYPE_CONTROL) continue;
        if (t->eot == SIGMA_TOKEN_NONE && k < n_eot_names && strcmp(end_of_turn[k], "<|endoftext|>") != 0)
            t->eot = id;
        add_eog(t, id);
    }
}

static int tokenizer_load(struct sigma_model *model, struct sg_tokenizer *t, sg_str kind,
                          sg_err *err) {
    const sg_gguf *g = model->gguf;
    const sg_alloc *a = &model->alloc;
    int st;
    t->kind = str_is(kind, "gpt2") ? SG_TOK_BPE : SG_TOK_SPM;

    uint64_t n;
    const uint8_t *pos;
    st = sg_gguf_get_arr(g, "tokenizer.ggml.tokens", SG_GGUF_STRING, &n, &pos, err);
    if (st == SIGMA_E_NOT_FOUND)
        return sg_error(err, SIGMA_E_FORMAT, "tokenizer without tokenizer.ggml.tokens");
    if (st != SIGMA_OK) return st;
    if (n == 0 || n >= (1u << 30))
        return sg_error(err, SIGMA_E_FORMAT, "bad vocabulary size %llu", (unsigned long long)n);
    if (model->hp.n_vocab && n > model->hp.n_vocab)
        return sg_error(err, SIGMA_E_FORMAT, "tokenizer has %llu tokens but the model only %u",
                        (unsigned long long)n, model->hp.n_vocab);
    t->n_vocab = (uint32_t)n;
    t->text = sg_malloc(a, (size_t)n * sizeof *t->text);
    t->type = sg_malloc(a, (size_t)n);
    if (!t->text || !t->type) return SIGMA_E_NOMEM;
    for (uint32_t i = 0; i < t->n_vocab; i++) t->text[i] = sg_gguf_next_str(&pos);

    uint64_t nt;
    const uint8_t *types;
    st = sg_gguf_get_arr(g, "tokenizer.ggml.token_type", SG_GGUF_I32, &nt, &types, err);
    if (st == SIGMA_E_NOT_FOUND) {
        for (uint32_t i = 0; i < t->n_vocab; i++)
            t->type[i] = (t->kind == SG_TOK_SPM && byte_token_value(t->text[i]) >= 0)
                             ? SG_TOKTYPE_BYTE : SG_TOKTYPE_NORMAL;
    } else if (st != SIGMA_OK) {
        return st;
    } else {
        if (nt != n)
            return sg_error(err, SIGMA_E_FORMAT, "token_type has %llu entries for %llu tokens",
                            (unsigned long long)nt, (unsigned long long)n);
        for (uint32_t i = 0; i < t->n_vocab; i++) {
            int32_t v;
            memcpy(&v, types + (size_t)i * 4, 4);
            if (v < 0 || v > SG_TOKTYPE_BYTE)
                return sg_error(err, SIGMA_E_FORMAT, "token %u has invalid type %d", i, v);
            t->type[i] = (uint8_t)v;
        }
    }

    if (t->kind == SG_TOK_SPM) {
        uint64_t ns;
        const uint8_t *sc;
        t->scores = sg_malloc(a, (size_t)n * sizeof *t->scores);
        if (!t->scores) return SIGMA_E_NOMEM;
        st = sg_gguf_get_arr(g, "tokenizer.ggml.scores", SG_GGUF_F32, &ns, &sc, err);
        if (st == SIGMA_E_NOT_FOUND) { /* SentencePiece orders pieces by score */
            for (uint32_t i = 0; i < t->n_vocab; i++) t->scores[i] = -(float)i;
        } else if (st != SIGMA_OK) {
            return st;
        } else {
            if (ns != n)
                return sg_error(err, SIGMA_E_FORMAT, "scores has %llu entries for %llu tokens",
                                (unsigned long long)ns, (unsigned long long)n);
            for (uint32_t i = 0; i < t->n_vocab; i++) {
                memcpy(&t->scores[i], sc + (size_t)i * 4, 4);
                if (t->scores[i] != t->scores[i])
                    return sg_error(err, SIGMA_E_FORMAT, "token %u has a NaN score", i);
            }
        }
    }

    if ((st = load_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err)) ||
        (st = load_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err)) ||
        (st = load_id(g, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot, err)) ||
        (st = load_id(g, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom, err)) ||
        (st = load_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err)) ||
        (st = load_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, err)))
        return st;
    int spm = t->kind == SG_TOK_SPM;
    if ((st = load_bool(g, "tokenizer.ggml.add_bos_token", spm, &t->add_bos, err)) ||
        (st = load_bool(g, "tokenizer.ggml.add_eos_token", 0, &t->add_eos, err)) ||
        (st = load_bool(g, "tokenizer.ggml.add_space_prefix", spm, &t->add_space_prefix, err)))
        return st;
    if (t->add_bos && t->bos == SIGMA_TOKEN_NONE) t->add_bos = 0;
    if (t->add_eos && t->eos == SIGMA_TOKEN_NONE) t->add_eos = 0;

    t->pre = SG_PRE_GPT2;
    if (t->kind == SG_TOK_BPE) {
        sg_str pre;
        st = sg_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
        if (st != SIGMA_OK && st != SIGMA_E_NOT_FOUND) return st;
        if (st == SIGMA_OK) {
            if (str_is(pre, "llama-bpe") || str_is(pre, "llama3")) {
                t->pre = SG_PRE_LLAMA3;
                t->ignore_merges = 1;
            } else if (str_is(pre, "smollm")) {
                t->pre = SG_PRE_SMOLLM;
            } else if (str_is(pre, "qwen2") || str_is(pre, "deepseek-r1-qwen")) {
                t->pre = SG_PRE_QWEN2;
            } else if (!str_is(pre, "gpt2") && !str_is(pre, "default")) {
                sg_logf(&model->log, SIGMA_LOG_WARN,
                        "tokenizer: unknown pre-tokenizer '%.*s', using gpt2's",
                        (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
            }
        }
    }
    sg_err_clear(err);

    if ((st = build_vocab_hash(a, t))) return st;
    for (int b = 0; b < 256; b++) {
        t->byte_id[b] = -1;
        if (t->kind == SG_TOK_BPE) {
            uint8_t u[4];
            size_t l = sg_utf8_put(byte_to_cp((uint8_t)b), u);
            t->byte_id[b] = vocab_find(t, u, l);
        }
    }
    if (t->kind == SG_TOK_SPM)
        for (uint32_t i = 0; i < t->n_vocab; i++) {
            int v = t->type[i] == SG_TOKTYPE_BYTE ? byte_token_value(t->text[i]) : -1;
            if (v >= 0 && t->byte_id[v] < 0) t->byte_id[v] = (int32_t)i;
        }
    if (t->kind == SG_TOK_BPE && (st = load_merges(model, t, err))) return st;
    if ((st = build_pieces(a, t, err))) return st;
    if ((st = build_specials(a, t))) return st;
    build_eog(t);
    return SIGMA_OK;
}

int sg_tokenizer_load(struct sigma_model *model, sg_err *err) {
    model->tok = NULL;
    if (!model->gguf) return SIGMA_OK;
    sg_str kind;
    int st = sg_gguf_get_str(model->gguf, "tokenizer.ggml.model", &kind, err);
    if (st == SIGMA_E_NOT_FOUND) {
        sg_err_clear(err);
        sg_logf(&model->log, SIGMA_LOG_INFO, "model has no tokenizer");
        return SIGMA_OK;
    }
    if (st != SIGMA_OK) return st;
    if (!str_is(kind, "gpt2") && !str_is(kind, "llama")) {
        sg_logf(&model->log, SIGMA_LOG_WARN,
                "tokenizer model '%.*s' is not supported; the model has no tokenizer",
                (int)(kind.len > 64 ? 64 : kind.len), kind.ptr);
        return SIGMA_OK;
    }
    struct sg_tokenizer *t = sg_calloc(&model->alloc, 1, sizeof *t);
    if (!t) return sg_error(err, SIGMA_E_NOMEM, "out of memory loading the tokenizer");
    st = tokenizer_load(model, t, kind, err);
    if (st != SIGMA_OK) {
        if (st == SIGMA_E_NOMEM) sg_error(err, st, "out of memory loading the tokenizer");
        tok_destroy(&model->alloc, t);
        return st;
    }
    model->tok = t;
    return SIGMA_OK;
}

/* ------------------------------------------------------------------------ */
/* Scratch space of one tokenize call                                       */
/* ------------------------------------------------------------------------ */

typedef struct sym {
    int32_t id;      /* BPE: token id (-1 none); SPM: unused */
    uint32_t start;  /* byte offset in the piece */
    uint32_t len;    /* bytes; 0 = merged away */
    int32_t prev, next;
} sym;

typedef struct cand {
    float score;     /* SPM: higher first */
    uint32_t rank;   /* BPE: lower first */
    uint32_t left;   /* symbol index */
    uint32_t a, b;   /* BPE: ids; SPM: lengths of left and right */
} cand;

typedef struct work {
    const sg_alloc *al;
    const struct sg_tokenizer *t;
    /* output */
    sigma_token *out;
    size_t cap, n;
    /* decoded characters of a fragment */
    uint32_t *cp;
    uint8_t *cls;
    uint32_t *off;     /* byte offset of each character, plus one past the end */
    size_t ccap, clcap, ocap;
    sym *sy;
    size_t scap;
    cand *heap;
    size_t hcap, hn;
    uint8_t *buf;
    size_t bcap;
} work;

static void work_free(work *w) {
    sg_free(w->al, w->cp);
    sg_free(w->al, w->cls);
    sg_free(w->al, w->off);
    sg_free(w->al, w->sy);
    sg_free(w->al, w->heap);
    sg_free(w->al, w->buf);
}

/* id < 0: a byte without a token. It becomes the UNK token when the model
 * has a real one (type UNKNOWN, e.g. SentencePiece's <unk>); otherwise it is
 * dropped, as HF tokenizers does for a BPE without unk_token. (SmolLM2's
 * vocabulary lacks 21 byte symbols, e.g. 0x04 and 0xF1; its "unknown" id is
 * the control token <|endoftext|>, which must not appear inside a prompt.) */
static void emit(work *w, int32_t id) {
    if (id < 0) {
        sigma_token unk = w->t->unk;
        if (unk == SIGMA_TOKEN_NONE || w->t->type[unk] != SG_TOKTYPE_UNKNOWN) return;
        id = unk;
    }
    if (w->n < w->cap) w->out[w->n] = id;
    w->n++;
}

/* candidate order: true if x should pop before y */
static int cand_before(const work *w, const cand *x, const cand *y) {
    if (w->t->kind == SG_TOK_BPE) {
        if (x->rank != y->rank) return x->rank < y->rank;
    } else if (x->score != y->score) {
        return x->score > y->score;
    }
    return x->left < y->left;
}

static void heap_push(work *w, cand c) {
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(w, &c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static cand heap_pop(work *w) {
    cand top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0, n = w->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_before(w, &w->heap[c + 1], &w->heap[c])) c++;
        if (!cand_before(w, &w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static int work_symbols(work *w, size_t n) {
    size_t hn;
    if (!sg_mul_size(n, 3, &hn)) return SIGMA_E_NOMEM;
    /* scratch: nothing kept, so nothing copied on growth */
    int st = sg_reserve_n(w->al, (void **)&w->sy, &w->scap, 0, n, sizeof *w->sy);
    if (!st) st = sg_reserve_n(w->al, (void **)&w->heap, &w->hcap, 0, hn + 1, sizeof *w->heap);
    w->hn = 0;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Byte-level BPE                                                           */
/* ------------------------------------------------------------------------ */

static void bpe_try_pair(work *w, int32_t l) {
    int32_t r = w->sy[l].next;
    if (r < 0 || w->sy[l].id < 0 || w->sy[r].id < 0) return;
    const sg_merge_ent *m = merge_find(w->t, (uint32_t)w->sy[l].id, (uint32_t)w->sy[r].id);
    if (!m) return;
    cand c = {0.0f, m->rank, (uint32_t)l, (uint32_t)w->sy[l].id, (uint32_t)w->sy[r].id};
    heap_push(w, c);
}

static int bpe_piece(work *w, const uint8_t *p, size_t n) {
    const struct sg_tokenizer *t = w->t;
    if (n == 0) return SIGMA_OK;
    if (n == 1) {
        emit(w, t->byte_id[p[0]]);
        return SIGMA_OK;
    }
    int st;
    if (t->ignore_merges) {
        size_t need;
        if (!sg_mul_size(n, 2, &need)) return SIGMA_E_NOMEM;
        if ((st = sg_reserve_n(w->al, (void **)&w->buf, &w->bcap, 0, need, 1))) return st;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) m += sg_utf8_put(byte_to_cp(p[i]), w->buf + m);
        int32_t id = vocab_find(t, w->buf, m);
        if (id >= 0) {
            emit(w, id);
            return SIGMA_OK;
        }
    }
    if ((st = work_symbols(w, n))) return st;
    sym *s = w->sy;
    for (size_t i = 0; i < n; i++) {
        s[i].id = t->byte_id[p[i]];
        s[i].start = (uint32_t)i;
        s[i].len = 1;
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) bpe_try_pair(w, (int32_t)i);
    while (w->hn) {
        cand c = heap_pop(w);
        sym *l = &s[c.left];
        if (!l->len || l->id != (int32_t)c.a || l->next < 0) continue;
        sym *r = &s[l->next];
        if (r->id != (int32_t)c.b) continue;
        const sg_merge_ent *m = merge_find(t, c.a, c.b);
        l->id = (int32_t)m->id;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = (int32_t)c.left;
        if (l->prev >= 0) bpe_try_pair(w, l->prev);
        bpe_try_pair(w, (int32_t)c.left);
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) emit(w, s[i].id);
    return SIGMA_OK;
}

/* ------------------------------------------------------------------------ */
/* Pre-tokenizers (hand-written equivalents of the regular expressions)      */
/* ------------------------------------------------------------------------ */

#define IS_L(i) (w->cls[i] & SG_CLS_L)
#define IS_N(i) (w->cls[i] & SG_CLS_N)
#define IS_WS(i) (w->cls[i] & SG_CLS_WS)
#define IS_O(i) (!(w->cls[i] & (SG_CLS_L | SG_CLS_N | SG_CLS_WS)))

/* \s+(?!\S)|\s+ at i (a whitespace character) */
static size_t match_ws_tail(const work *w, size_t i, size_t end) {
    size_t j = i;
    while (j < end && IS_WS(j)) j++;
    if (j == end || j - i < 2) return j - i;
    return j - i - 1;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Returns the match length in characters at i (< end). */
static size_t match_gpt2(const work *w, size_t i, size_t end) {
    const uint32_t *cp = w->cp;
    if (cp[i] == '\'' && i + 1 < end) {
        uint32_t d = cp[i + 1];
        if (d == 's' || d == 't' || d == 'm' || d == 'd') return 2;
        if (i + 2 < end) {
            uint32_t e = cp[i + 2];
            if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return 3;
        }
    }
    size_t k = (cp[i] == ' ' && i + 1 < end) ? i + 1 : i;
    size_t j = k;
    if (IS_L(k)) {
        while (j < end && IS_L(j)) j++;
        return j - i;
    }
    if (IS_N(k)) {
        while (j < end && IS_N(j)) j++;
        return j - i;
    }
    if (IS_O(k)) {
        while (j < end && IS_O(j)) j++;
        return j - i;
    }
    return match_ws_tail(w, i, end);
}

static uint32_t fold_ascii(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c == 0x17F) return 's'; /* LATIN SMALL LETTER LONG S case-folds to s */
    return c;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with \p{N}{1,max_digits} (Llama 3: 3; Qwen2: 1, i.e. \p{N}) */
static size_t match_llama3(const work *w, size_t i, size_t end, size_t max_digits) {
    const uint32_t *cp = w->cp;
    uint32_t c = cp[i];
    if (c == '\'' && i + 1 < end) {
        uint32_t d = fold_ascii(cp[i + 1]);
        if (d == 's' || d == 't' || d == 'm' || d == 'd') return 2;
        if (i + 2 < end) {
            uint32_t e = fold_ascii(cp[i + 2]);
            if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return 3;
        }
    }
    size_t j;
    if (IS_L(i) || (c != '\r' && c != '\n' && !IS_N(i) && i + 1 < end && IS_L(i + 1))) {
        j = i + 1;
        while (j < end && IS_L(j)) j++;
        return j - i;
    }
    if (IS_N(i)) {
        j = i;
        while (j < end && j - i < max_digits && IS_N(j)) j++;
        return j - i;
    }
    size_t k = (c == ' ' && i + 1 < end) ? i + 1 : i;
    if (IS_O(k)) {
        j = k;
        while (j < end && IS_O(j)) j++;
        while (j < end && (cp[j] == '\r' || cp[j] == '\n')) j++;
        return j - i;
    }
    /* whitespace */
    j = i;
    size_t last_nl = SIZE_MAX;
    while (j < end && IS_WS(j)) {
        if (cp[j] == '\r' || cp[j] == '\n') last_nl = j;
        j++;
    }
    if (last_nl != SIZE_MAX) return last_nl + 1 - i;
    return match_ws_tail(w, i, end);
}

/* Decode text[0..n) into w->cp / cls / off. */
static int decode_chars(work *w, const uint8_t *s, size_t n, size_t *nc) {
    int st;
    if ((st = sg_reserve_n(w->al, (void **)&w->cp, &w->ccap, 0, n + 1, sizeof *w->cp))) return st;
    if ((st = sg_reserve_n(w->al, (void **)&w->cls, &w->clcap, 0, n + 1, 1))) return st;
    if ((st = sg_reserve_n(w->al, (void **)&w->off, &w->ocap, 0, n + 1, sizeof *w->off))) return st;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t c = sg_utf8_next(s + i, n - i, &l);
        w->cp[k] = c;
        w->cls[k] = (uint8_t)sg_uc_class(c);
        w->off[k] = (uint32_t)i;
        k++;
        i += l;
    }
    w->off[k] = (uint32_t)n;
    *nc = k;
    return SIGMA_OK;
}

static int bpe_fragment(work *w, const uint8_t *s, size_t n) {
    size_t nc;
    if (n >= UINT32_MAX) return SIGMA_E_INVALID_ARG;
    int st = decode_chars(w, s, n, &nc);
    if (st) return st;
    size_t i = 0;
    while (i < nc) {
        size_t end = nc;
        if (w->t->pre == SG_PRE_SMOLLM) {
            /* Digits(individual_digits): every number character is a piece
             * of its own; the regex runs on the text between them */
            end = i;
            while (end < nc && !IS_N(end)) end++;
            if (end == i) end = i + 1;
        }
        while (i < end) {
            size_t len = 1;
            if (w->t->pre == SG_PRE_LLAMA3) len = match_llama3(w, i, end, 3);
            else if (w->t->pre == SG_PRE_QWEN2) len = match_llama3(w, i, end, 1);
            else if (!IS_N(i) || w->t->pre == SG_PRE_GPT2) len = match_gpt2(w, i, end);
            if ((st = bpe_piece(w, s + w->off[i], w->off[i + len] - w->off[i]))) return st;
            i += len;
        }
    }
    return SIGMA_OK;
}

/* ------------------------------------------------------------------------ */
/* SentencePiece BPE                                                        */
/* ------------------------------------------------------------------------ */

static int spm_usable(const struct sg_tokenizer *t, int32_t id) {
    return id >= 0 && (t->type[id] == SG_TOKTYPE_NORMAL || t->type[id] == SG_TOKTYPE_USER_DEFINED);
}

static void spm_try_pair(work *w, int32_t l) {
    int32_t r = w->sy[l].next;
    if (r < 0) return;
    const sym *a = &w->sy[l], *b = &w->sy[r];
    int32_t id = vocab_find(w->t, w->buf + a->start, (size_t)a->len + b->len);
    if (!spm_usable(w->t, id)) return;
    cand c = {w->t->scores[id], 0, (uint32_t)l, a->len, b->len};
    heap_push(w, c);
}

static int spm_fragment(work *w, const uint8_t *s, size_t n, int prefix) {
    const struct sg_tokenizer *t = w->t;
    size_t need = 3, spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    if (!sg_add_size(need, n, &need) || !sg_add_size(need, spaces * 2, &need) || need >= UINT32_MAX)
        return SIGMA_E_INVALID_ARG;
    int st = sg_reserve_n(w->al, (void **)&w->buf, &w->bcap, 0, need, 1);
    if (st) return st;
    size_t m = 0;
    if (prefix) {
        memcpy(w->buf, SPACE_MARK, 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(w->buf + m, SPACE_MARK, 3);
            m += 3;
        } else {
            w->buf[m++] = s[i];
        }
    }
    if ((st = work_symbols(w, m))) return st;
    sym *sy = w->sy;
    size_t ns = 0;
    for (size_t i = 0; i < m;) {
        size_t l;
        sg_utf8_next(w->buf + i, m - i, &l);
        sy[ns].id = -1;
        sy[ns].start = (uint32_t)i;
        sy[ns].len = (uint32_t)l;
        sy[ns].prev = (int32_t)ns - 1;
        sy[ns].next = (int32_t)ns + 1;
        ns++;
        i += l;
    }
    if (!ns) return SIGMA_OK;
    sy[ns - 1].next = -1;
    for (size_t i = 0; i + 1 < ns; i++) spm_try_pair(w, (int32_t)i);
    while (w->hn) {
        cand c = heap_pop(w);
        sym *l = &sy[c.left];
        if (l->len != c.a || l->next < 0) continue;
        sym *r = &sy[l->next];
        if (r->len != c.b) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sy[r->next].prev = (int32_t)c.left;
        if (l->prev >= 0) spm_try_pair(w, l->prev);
        spm_try_pair(w, (int32_t)c.left);
    }
    for (int32_t i = 0; i >= 0; i = sy[i].next) {
        int32_t id = vocab_find(t, w->buf + sy[i].start, sy[i].len);
        if (id >= 0 && (spm_usable(t, id) || t->type[id] == SG_TOKTYPE_UNUSED)) {
            emit(w, id);
            continue;
        }
        for (uint32_t k = 0; k < sy[i].len; k++) emit(w, t->byte_id[w->buf[sy[i].start + k]]);
    }
    return SIGMA_OK;
}

/* ------------------------------------------------------------------------ */
/* Tokenize                                                                 */
/* ------------------------------------------------------------------------ */

/* The special token starting at s (longest), or -1. */
static int32_t match_special(const struct sg_tokenizer *t, const uint8_t *s, size_t n,
                             int parse_control) {
    if (!(t->special_first[s[0] >> 3] & (1u << (s[0] & 7)))) return -1;
    for (uint32_t k = 0; k < t->n_special; k++) {
        uint32_t id = t->special[k];
        if (t->type[id] == SG_TOKTYPE_CONTROL && !parse_control) continue;
        const sg_str *e = &t->text[id];
        if (e->len <= n && memcmp(e->ptr, s, (size_t)e->len) == 0) return (int32_t)id;
    }
    return -1;
}

static int fragment(work *w, const uint8_t *s, size_t n, int at_start) {
    if (!n) return SIGMA_OK;
    if (w->t->kind == SG_TOK_SPM) return spm_fragment(w, s, n, at_start && w->t->add_space_prefix);
    return bpe_fragment(w, s, n);
}

static int tokenize_into(const struct sigma_model *model, const char *text, size_t len,
                         uint32_t flags, work *w) {
    const struct sg_tokenizer *t = model->tok;
    const uint8_t *s = (const uint8_t *)text;
    int st = SIGMA_OK;
    if ((flags & SIGMA_TOKENIZE_ADD_SPECIAL) && t->add_bos) emit(w, t->bos);
    size_t frag = 0;
    int parse_control = (flags & SIGMA_TOKENIZE_PARSE_SPECIAL) != 0;
    if (t->n_special) {
        for (size_t i = 0; i < len; i++) {
            int32_t id = match_special(t, s + i, len - i, parse_control);
            if (id < 0) continue;
            if ((st = fragment(w, s + frag, i - frag, frag == 0))) return st;
            emit(w, id);
            i += (size_t)t->text[id].len - 1;
            frag = i + 1;
        }
    }
    if ((st = fragment(w, s + frag, len - frag, frag == 0))) return st;
    if ((flags & SIGMA_TOKENIZE_ADD_SPECIAL) && t->add_eos) emit(w, t->eos);
    return SIGMA_OK;
}

static int run_tokenize(const struct sigma_model *model, const char *text, size_t len,
                        uint32_t flags, sigma_token *out, size_t cap, size_t *n) {
    work w;
    memset(&w, 0, sizeof w);
    w.al = &model->alloc;
    w.t = model->tok;
    w.out = out;
    w.cap = cap;
    int st = tokenize_into(model, text, len, flags, &w);
    work_free(&w);
    *n = w.n;
    return st;
}

static int check_tokenize_args(const sigma_model *model, const char *text, size_t len,
                               uint32_t flags) {
    if (!text && len) return sg_model_error(model, SIGMA_E_INVALID_ARG, "tokenize: NULL text");
    if (flags & ~(SIGMA_TOKENIZE_ADD_SPECIAL | SIGMA_TOKENIZE_PARSE_SPECIAL))
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "tokenize: unknown flags 0x%x", flags);
    if (!model->tok)
        return sg_model_error(model, SIGMA_E_UNSUPPORTED, "tokenize: the model has no tokenizer");
    if (len >= UINT32_MAX)
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "tokenize: text too long (%zu bytes)", len);
    return SIGMA_OK;
}

int sigma_tokenize(const sigma_model *model, const char *text, size_t text_len,
                   sigma_token *tokens, size_t capacity, size_t *n_tokens, uint32_t flags) {
    if (!model) return SIGMA_E_INVALID_ARG;
    if (!n_tokens || (!tokens && capacity))
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "tokenize: NULL argument");
    *n_tokens = 0;
    int st = check_tokenize_args(model, text, text_len, flags);
    if (st) return st;
    size_t n;
    st = run_tokenize(model, text, text_len, flags, tokens, capacity, &n);
    if (st == SIGMA_E_NOMEM) return sg_model_error(model, st, "tokenize: out of memory");
    if (st) return sg_model_error(model, st, "tokenize failed");
    *n_tokens = n;
    if (n > capacity)
        return sg_model_error(model, SIGMA_E_BUFFER_TOO_SMALL,
                              "tokenize: %zu tokens do not fit in %zu", n, capacity);
    return SIGMA_OK;
}

int sg_tokenize_alloc(const struct sigma_model *model, const char *text, size_t len,
                      uint32_t flags, sigma_token **out, size_t *n, sg_err *err) {
    *out = NULL;
    *n = 0;
    if (!text && len) return sg_error(err, SIGMA_E_INVALID_ARG, "tokenize: NULL text");
    if (!model->tok) return sg_error(err, SIGMA_E_UNSUPPORTED, "the model has no tokenizer");
    if (len >= UINT32_MAX) return sg_error(err, SIGMA_E_INVALID_ARG, "tokenize: text too long");
    size_t need;
    int st = run_tokenize(model, text, len, flags, NULL, 0, &need);
    if (st) return sg_error(err, st, "tokenize failed: %s", sigma_strerror(st));
    if (!need) return SIGMA_OK;
    sigma_token *buf = sg_malloc(&model->alloc, need * sizeof *buf);
    if (!buf) return sg_error(err, SIGMA_E_NOMEM, "tokenize: out of memory");
    size_t got;
    st = run_tokenize(model, text, len, flags, buf, need, &got);
    if (st || got != need) {
        sg_free(&model->alloc, buf);
        return sg_error(err, st ? st : SIGMA_E_INTERNAL, "tokenize failed");
    }
    *out = buf;
    *n = got;
    return SIGMA_OK;
}

/* ------------------------------------------------------------------------ */
/* Pieces, detokenize, special tokens                                       */
/* ------------------------------------------------------------------------ */

static int put_bytes(char *buf, size_t size, size_t *pos, const char *s, size_t n) {
    if (n && *pos <= size && n <= size - *pos) memcpy(buf + *pos, s, n);
    if (!sg_add_size(*pos, n, pos)) return SIGMA_E_INVALID_ARG;
    return SIGMA_OK;
}

int sigma_token_to_piece(const sigma_model *model, sigma_token token, char *buf, size_t size,
                         size_t *len, uint32_t flags) {
    if (!model) return SIGMA_E_INVALID_ARG;
    if (!len || (!buf && size))
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "token_to_piece: NULL argument");
    *len = 0;
    const struct sg_tokenizer *t = model->tok;
    if (!t) return sg_model_error(model, SIGMA_E_UNSUPPORTED, "the model has no tokenizer");
    if (token < 0 || (uint32_t)token >= t->n_vocab)
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "token %d out of range", (int)token);
    size_t n = 0;
    const char *p = sg_tok_piece(t, (uint32_t)token, &n);
    int ty = t->type[token];
    if ((ty == SG_TOKTYPE_CONTROL || ty == SG_TOKTYPE_UNKNOWN) && !(flags & SIGMA_DETOK_RENDER_SPECIAL))
        n = 0;
    *len = n;
    if (n > size)
        return sg_model_error(model, SIGMA_E_BUFFER_TOO_SMALL, "piece needs %zu bytes", n);
    if (n) memcpy(buf, p, n);
    return SIGMA_OK;
}

int sigma_detokenize(const sigma_model *model, const sigma_token *tokens, size_t n_tokens,
                     char *buf, size_t size, size_t *len, uint32_t flags) {
    if (!model) return SIGMA_E_INVALID_ARG;
    if (!len || (!buf && size) || (!tokens && n_tokens))
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "detokenize: NULL argument");
    *len = 0;
    const struct sg_tokenizer *t = model->tok;
    if (!t) return sg_model_error(model, SIGMA_E_UNSUPPORTED, "the model has no tokenizer");
    size_t pos = 0;
    int first_text = 1; /* SPM: the space of the first text token is the prefix rule's */
    for (size_t i = 0; i < n_tokens; i++) {
        sigma_token tk = tokens[i];
        if (tk < 0 || (uint32_t)tk >= t->n_vocab)
            return sg_model_error(model, SIGMA_E_INVALID_ARG, "token %d out of range", (int)tk);
        size_t n;
        const char *p = sg_tok_piece(t, (uint32_t)tk, &n);
        int ty = t->type[tk];
        if (ty == SG_TOKTYPE_CONTROL || ty == SG_TOKTYPE_UNKNOWN) {
            if (flags & SIGMA_DETOK_RENDER_SPECIAL) put_bytes(buf, size, &pos, p, n);
            continue;
        }
        if (first_text && t->kind == SG_TOK_SPM && t->add_space_prefix && n && p[0] == ' ') {
            p++;
            n--;
        }
        first_text = 0;
        if (put_bytes(buf, size, &pos, p, n))
            return sg_model_error(model, SIGMA_E_INVALID_ARG, "detokenize: size overflow");
    }
    *len = pos;
    if (pos > size)
        return sg_model_error(model, SIGMA_E_BUFFER_TOO_SMALL, "detokenize needs %zu bytes", pos);
    return SIGMA_OK;
}

sigma_token sg_tok_special(const struct sigma_model *model, sigma_special_token which) {
    const struct sg_tokenizer *t = model ? model->tok : NULL;
    if (!t) return SIGMA_TOKEN_NONE;
    switch (which) {
    case SIGMA_SPECIAL_BOS: return t->bos;
    case SIGMA_SPECIAL_EOS: return t->eos;
    case SIGMA_SPECIAL_EOT: return t->eot;
    case SIGMA_SPECIAL_UNK: return t->unk;
    case SIGMA_SPECIAL_PAD: return t->pad;
    }
    return SIGMA_TOKEN_NONE;
}

int sigma_model_special_token(const sigma_model *model, sigma_special_token which,
                              sigma_token *token) {
    if (!model || !token) return SIGMA_E_INVALID_ARG;
    *token = SIGMA_TOKEN_NONE;
    if ((unsigned)which > SIGMA_SPECIAL_PAD)
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "unknown special token kind %d", (int)which);
    sigma_token id = sg_tok_special(model, which);
    if (id == SIGMA_TOKEN_NONE) return SIGMA_E_NOT_FOUND;
    *token = id;
    return SIGMA_OK;
}

int sg_tok_is_eog(const struct sigma_model *model, sigma_token token) {
    const struct sg_tokenizer *t = model ? model->tok : NULL;
    if (!t || token < 0) return 0;
    for (uint32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == token) return 1;
    return 0;
}

int sigma_token_is_eog(const sigma_model *model, sigma_token token, int *is_eog) {
    if (!model || !is_eog) return SIGMA_E_INVALID_ARG;
    *is_eog = 0;
    if (!model->tok) return sg_model_error(model, SIGMA_E_UNSUPPORTED, "the model has no tokenizer");
    if (token < 0 || (uint32_t)token >= model->tok->n_vocab)
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "token %d out of range", (int)token);
    *is_eog = sg_tok_is_eog(model, token);
    return SIGMA_OK;
}

uint32_t sg_tok_n_vocab(const struct sigma_model *model) {
    return model && model->tok ? model->tok->n_vocab : 0;
}

int sg_tok_type(const struct sigma_model *model, sigma_token token) {
    const struct sg_tokenizer *t = model ? model->tok : NULL;
    if (!t || token < 0 || (uint32_t)token >= t->n_vocab) return SG_TOKTYPE_UNDEFINED;
    return t->type[token];
}

int sg_tok_is_control(const struct sigma_model *model, sigma_token token) {
    int ty = sg_tok_type(model, token);
    return ty == SG_TOKTYPE_CONTROL || ty == SG_TOKTYPE_UNKNOWN;
}

sg_str sg_tok_text(const struct sigma_model *model, sigma_token token) {
    const struct sg_tokenizer *t = model ? model->tok : NULL;
    sg_str none = {NULL, 0};
    if (!t || token < 0 || (uint32_t)token >= t->n_vocab) return none;
    return t->text[token];
}

int sg_tok_add_bos(const struct sigma_model *model) {
    return model && model->tok ? model->tok->add_bos : 0;
}

sigma_token sg_tok_find(const struct sigma_model *model, const char *text, size_t len) {
    if (!model || !model->tok || (!text && len)) return SIGMA_TOKEN_NONE;
    int32_t id = vocab_find(model->tok, text, len);
    return id < 0 ? SIGMA_TOKEN_NONE : id;
}
