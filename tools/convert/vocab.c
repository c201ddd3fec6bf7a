/* Tokenizer conversion for sigma-convert (see vocab.h). */
#define _POSIX_C_SOURCE 200809L
#include "vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvutil.h"

enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5 };

/* The split regex of Llama-3's tokenizer (pre-tokenizer "llama-bpe"). */
static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}"
    "\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char *jstr(const cJSON *o, const char *k) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static int is_type(const cJSON *o, const char *type) {
    const char *t = jstr(o, "type");
    return t && strcmp(t, type) == 0;
}

/* ByteLevel pre-tokenizer that splits with the GPT-2 regex itself. */
static int bytelevel_with_regex(const cJSON *o) {
    if (!is_type(o, "ByteLevel")) return 0;
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(o, "use_regex");
    return !ur || cJSON_IsTrue(ur); /* default true */
}

static int bytelevel_no_regex(const cJSON *o) {
    if (!is_type(o, "ByteLevel")) return 0;
    return cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "use_regex"));
}

const char *cv_vocab_detect_pre(const cJSON *pt) {
    if (!pt) return NULL;
    if (bytelevel_with_regex(pt)) return "gpt-2";
    if (!is_type(pt, "Sequence")) return NULL;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
    if (!cJSON_IsArray(seq)) return NULL;
    int n = cJSON_GetArraySize(seq);
    if (n == 1 && bytelevel_with_regex(cJSON_GetArrayItem(seq, 0))) return "gpt-2";
    if (n != 2) return NULL;
    const cJSON *a = cJSON_GetArrayItem(seq, 0), *b = cJSON_GetArrayItem(seq, 1);
    /* Llama-3: Split(llama3 regex, Isolated) then ByteLevel without regex. */
    if (is_type(a, "Split") && bytelevel_no_regex(b)) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(a, "pattern");
        const char *re = jstr(pat, "Regex");
        if (re && strcmp(re, llama3_regex) == 0) return "llama-bpe";
        return NULL;
    }
    /* SmolLM / SmolLM2: Digits(individual) then ByteLevel with the GPT-2 regex. */
    if (is_type(a, "Digits") && bytelevel_with_regex(b)) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "individual_digits"))) return "smollm";
        return NULL;
    }
    return NULL;
}

static int mentions_bytelevel(const cJSON *o) {
    if (!o) return 0;
    if (is_type(o, "ByteLevel")) return 1;
    const cJSON *it;
    if (cJSON_IsArray(o) || cJSON_IsObject(o)) {
        cJSON_ArrayForEach(it, o) if (mentions_bytelevel(it)) return 1;
    }
    return 0;
}

/* A merge given as [a, b]: join with a space; spaces inside the parts are
 * written as U+0120 (as llama.cpp's converter does). */
static char *join_merge(const char *a, const char *b) {
    size_t n = 2;
    for (const char *p = a; *p; p++) n += *p == ' ' ? 2 : 1;
    for (const char *p = b; *p; p++) n += *p == ' ' ? 2 : 1;
    char *s = malloc(n), *o = s;
    if (!s) return NULL;
    for (int part = 0; part < 2; part++) {
        if (part) *o++ = ' ';
        for (const char *p = part ? b : a; *p; p++) {
            if (*p == ' ') {
                *o++ = (char)0xc4;
                *o++ = (char)0xa0;
            } else {
                *o++ = *p;
            }
        }
    }
    *o = 0;
    return s;
}

typedef struct vocab_state {
    cJSON *tok, *tcfg;
    const char **tokens;
    int32_t *types;
    char **owned;      /* strings we allocated (pads, joined merges) */
    size_t n_owned;
    const char **merges;
    size_t n_merges;
} vocab_state;

static void vs_free(vocab_state *s, uint32_t n) {
    (void)n;
    for (size_t i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    free(s->tokens);
    free(s->types);
    free(s->merges);
    cJSON_Delete(s->tok);
    cJSON_Delete(s->tcfg);
}

static const char *own(vocab_state *s, char *str) {
    if (!str) return NULL;
    s->owned[s->n_owned++] = str;
    return str;
}

static int oom(void) {
    return cv_error("out of memory");
}

static const char *special_content(const cJSON *tcfg, const char *typ) {
    char key[32];
    snprintf(key, sizeof key, "%s_token", typ);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(tcfg, key);
    if (cJSON_IsString(e)) return e->valuestring;
    if (cJSON_IsObject(e)) return jstr(e, "content");
    return NULL;
}

static int write_specials(gw_writer *w, vocab_state *s, const cJSON *config, uint32_t n_vocab) {
    static const char *const typs[] = {"bos", "eos", "unk", "sep", "pad", "mask"};
    static const char *const keys[] = {
        "tokenizer.ggml.bos_token_id",     "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.seperator_token_id",
        "tokenizer.ggml.padding_token_id", "tokenizer.ggml.mask_token_id"};
    enum { NT = 6 };
    int64_t ids[NT];
    int order[NT], n_order = 0;
    for (int i = 0; i < NT; i++) ids[i] = -1;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(s->tok, "added_tokens");
    /* tokenizer_config.json names the token; its id is that of the first
     * added token with this content. */
    for (int i = 0; i < NT && s->tcfg; i++) {
        const char *content = special_content(s->tcfg, typs[i]);
        if (!content) continue;
        const cJSON *at;
        cJSON_ArrayForEach(at, added) {
            const char *c = jstr(at, "content");
            uint64_t id;
            if (c && strcmp(c, content) == 0 &&
                cv_json_to_u64(cJSON_GetObjectItemCaseSensitive(at, "id"), &id) == 0) {
                if (id < n_vocab) {
                    ids[i] = (int64_t)id;
                    order[n_order++] = i;
                }
                break;
            }
        }
    }
    /* config.json's *_token_id fill in what is still unknown. */
    for (int i = 0; i < NT; i++) {
        if (ids[i] >= 0) continue;
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", typs[i]);
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(config, key);
        uint64_t id;
        if (it && cv_json_to_u64(it, &id) == 0) {
            if (id >= n_vocab) {
                cv_note("warning: config.json %s = %llu is outside the vocabulary; ignored", key,
                        (unsigned long long)id);
                continue;
            }
            ids[i] = (int64_t)id;
            order[n_order++] = i;
        }
    }
    for (int k = 0; k < n_order; k++)
        if (gw_kv_u32(w, keys[order[k]], (uint32_t)ids[order[k]]) != 0) return oom();
    if (s->tcfg) {
        static const char *const flags[][2] = {
            {"add_bos_token", "tokenizer.ggml.add_bos_token"},
            {"add_eos_token", "tokenizer.ggml.add_eos_token"}};
        for (int i = 0; i < 2; i++) {
            int b, r = cv_json_bool(s->tcfg, flags[i][0], &b, "tokenizer_config.json");
            if (r < 0) return -1;
            if (r == 1 && gw_kv_bool(w, flags[i][1], b) != 0) return oom();
        }
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(s->tcfg, "chat_template");
        if (cJSON_IsString(ct)) {
            if (gw_kv_str(w, "tokenizer.chat_template", ct->valuestring) != 0) return oom();
        } else if (cJSON_IsArray(ct)) {
            /* [{name, template}, ...]: "default" is the main template. */
            const cJSON *it;
            cJSON_ArrayForEach(it, ct) {
                const char *name = jstr(it, "name"), *tpl = jstr(it, "template");
                if (!name || !tpl) continue;
                char key[160];
                if (strcmp(name, "default") == 0) {
                    snprintf(key, sizeof key, "tokenizer.chat_template");
                } else {
                    char clean[120];
                    size_t j = 0;
                    for (; name[j] && j + 1 < sizeof clean; j++) {
                        char c = name[j];
                        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                 (c >= '0' && c <= '9');
                        clean[j] = ok ? c : '_';
                    }
                    clean[j] = 0;
                    snprintf(key, sizeof key, "tokenizer.chat_template.%s", clean);
                }
                if (gw_kv_str(w, key, tpl) != 0) return oom();
            }
        } else if (ct && !cJSON_IsNull(ct)) {
            cv_note("warning: tokenizer_config.json chat_template has an unexpected type; ignored");
        }
        int b, r = cv_json_bool(s->tcfg, "add_prefix_space", &b, "tokenizer_config.json");
        if (r < 0) return -1;
        if (r == 1 && gw_kv_bool(w, "tokenizer.ggml.add_space_prefix", b) != 0) return oom();
    }
    return 0;
}

int cv_vocab_write(gw_writer *w, const char *dir, const cJSON *config, uint32_t *n_vocab_io) {
    vocab_state s;
    memset(&s, 0, sizeof s);
    int rc = -1;
    uint32_t n_vocab = 0;
    char *p = cv_path_join(dir, "tokenizer.json");
    if (!p) return cv_error("out of memory");
    int missing = 0;
    s.tok = cv_load_json(p, &missing);
    free(p);
    if (!s.tok) {
        if (missing) cv_error("%s: no tokenizer.json (use --no-vocab to convert without one)", dir);
        return -1;
    }
    p = cv_path_join(dir, "tokenizer_config.json");
    if (!p) goto oom;
    s.tcfg = cv_load_json(p, &missing);
    free(p);
    if (!s.tcfg && !missing) goto done;

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(s.tok, "model");
    if (!cJSON_IsObject(model)) {
        cv_error("tokenizer.json: missing \"model\" object");
        goto done;
    }
    const char *mtype = jstr(model, "type");
    if (!mtype || strcmp(mtype, "BPE") != 0) {
        cv_error("tokenizer.json: model type \"%s\" is not supported (only BPE)",
                 mtype ? mtype : "(none)");
        goto done;
    }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(s.tok, "pre_tokenizer");
    if (!mentions_bytelevel(pt) &&
        !mentions_bytelevel(cJSON_GetObjectItemCaseSensitive(s.tok, "decoder"))) {
        cv_error("tokenizer.json: not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer "
                 "or decoder); only byte-level BPE is supported");
        goto done;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(s.tok, "added_tokens");
    if (!cJSON_IsObject(vocab)) {
        cv_error("tokenizer.json: model.vocab must be an object");
        goto done;
    }
    if (added && !cJSON_IsArray(added)) {
        cv_error("tokenizer.json: added_tokens must be an array");
        goto done;
    }
    /* Size of the vocabulary: config's vocab_size, else the largest id + 1. */
    uint64_t max_id = 0;
    int any = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        uint64_t id;
        if (cv_json_to_u64(it, &id) != 0 || id >= UINT32_MAX) {
            cv_error("tokenizer.json: vocab entry \"%.40s\" has an invalid id", it->string);
            goto done;
        }
        if (!any || id > max_id) max_id = id;
        any = 1;
    }
    cJSON_ArrayForEach(it, added) {
        uint64_t id;
        if (!jstr(it, "content") ||
            cv_json_to_u64(cJSON_GetObjectItemCaseSensitive(it, "id"), &id) != 0 ||
            id >= UINT32_MAX) {
            cv_error("tokenizer.json: an added_tokens entry lacks a valid id or content");
            goto done;
        }
        if (!any || id > max_id) max_id = id;
        any = 1;
    }
    if (!any) {
        cv_error("tokenizer.json: empty vocabulary");
        goto done;
    }
    n_vocab = *n_vocab_io ? *n_vocab_io : (uint32_t)(max_id + 1);
    if (max_id >= n_vocab) {
        cv_error("tokenizer.json: token id %llu is not below vocab_size %u",
                 (unsigned long long)max_id, n_vocab);
        goto done;
    }
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) {
        cv_error("tokenizer.json: model.merges must be an array");
        goto done;
    }
    size_t n_merges = (size_t)cJSON_GetArraySize(merges);
    s.tokens = calloc(n_vocab, sizeof *s.tokens);
    s.types = calloc(n_vocab, sizeof *s.types);
    s.owned = calloc((size_t)n_vocab + n_merges + 1, sizeof *s.owned);
    s.merges = calloc(n_merges + 1, sizeof *s.merges);
    if (!s.tokens || !s.types || !s.owned || !s.merges) goto oom;

    cJSON_ArrayForEach(it, vocab) {
        uint64_t id;
        cv_json_to_u64(it, &id);
        if (s.tokens[id]) {
            cv_error("tokenizer.json: id %llu is used by two tokens", (unsigned long long)id);
            goto done;
        }
        s.tokens[id] = it->string;
        s.types[id] = TT_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        uint64_t id;
        cv_json_to_u64(cJSON_GetObjectItemCaseSensitive(it, "id"), &id);
        s.tokens[id] = jstr(it, "content");
        s.types[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")) ? TT_CONTROL
                                                                                    : TT_USER;
    }
    uint32_t n_pad = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        if (s.tokens[i]) continue;
        char buf[32];
        snprintf(buf, sizeof buf, "[PAD%u]", i);
        if (!own(&s, strdup(buf))) goto oom;
        s.tokens[i] = s.owned[s.n_owned - 1];
        s.types[i] = TT_UNUSED;
        n_pad++;
    }
    if (n_pad) cv_note("vocabulary: %u unused ids filled with [PADn] tokens", n_pad);

    size_t k = 0;
    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) {
            s.merges[k++] = it->valuestring;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            const char *m = own(&s, join_merge(cJSON_GetArrayItem(it, 0)->valuestring,
                                               cJSON_GetArrayItem(it, 1)->valuestring));
            if (!m) goto oom;
            s.merges[k++] = m;
        } else {
            cv_error("tokenizer.json: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", k);
            goto done;
        }
    }
    s.n_merges = k;

    const char *pre = cv_vocab_detect_pre(pt);
    if (!pre) {
        cv_note("warning: unrecognised pre-tokenizer; writing tokenizer.ggml.pre = \"default\"");
        pre = "default";
    }
    if (gw_kv_str(w, "tokenizer.ggml.model", "gpt2") != 0 ||
        gw_kv_str(w, "tokenizer.ggml.pre", pre) != 0 ||
        gw_kv_arr_str(w, "tokenizer.ggml.tokens", s.tokens, n_vocab) != 0 ||
        gw_kv_arr(w, "tokenizer.ggml.token_type", GW_I32, s.types, n_vocab) != 0 ||
        gw_kv_arr_str(w, "tokenizer.ggml.merges", s.merges, s.n_merges) != 0)
        goto oom;
    if (write_specials(w, &s, config, n_vocab) != 0) goto done;
    cv_note("tokenizer: gpt2 BPE, pre \"%s\", %u tokens, %zu merges", pre, n_vocab, s.n_merges);
    *n_vocab_io = n_vocab;
    rc = 0;
    goto done;
oom:
    cv_error("out of memory");
done:
    vs_free(&s, n_vocab);
    return rc;
}
