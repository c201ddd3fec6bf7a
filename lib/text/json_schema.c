/* JSON Schema -> GBNF (sigma_json_schema_to_grammar). A small JSON reader
 * (depth-bounded) builds a tree; every schema becomes one rule "rN", and
 * fixed helper rules (json-string, json-number, ...) follow. Keywords that
 * would constrain a value but are not supported fail with
 * SIGMA_E_UNSUPPORTED rather than produce a grammar that could admit
 * invalid values. */
#include <stdio.h>
#include <string.h>

#include "../model/model.h"
#include "grammar.h"

#define JS_MAX_DEPTH 64        /* nesting of the JSON text */
#define JS_MAX_GEN_DEPTH 128   /* nested schemas while generating */
#define JS_MAX_TEXT (1u << 20) /* schema bytes */
#define JS_MAX_OUT (1u << 22)  /* grammar bytes */

enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jnode {
    int type;
    uint32_t start, len;    /* raw text (strings: between the quotes) */
    uint32_t kstart, klen;  /* key in the parent object (raw) */
    int32_t first, next;    /* children, siblings (-1: none) */
    uint32_t count;
} jnode;

typedef struct js {
    const sg_alloc *a;
    const char *t;
    size_t n, p;
    sg_err *err;
    int st;
    jnode *nodes;
    size_t n_nodes, cap_nodes;
    int32_t root;
    /* generation */
    sg_buf out;
    uint32_t n_rules;
    int32_t *memo; /* node -> rule number + 1 (0: none) */
    int gen_depth;
} js;

static int js_fail(js *j, int st, const char *msg) {
    if (j->st == SIGMA_OK) j->st = sg_error(j->err, st, "json schema: %s", msg);
    return j->st;
}

static int js_fail_at(js *j, const char *msg) {
    if (j->st != SIGMA_OK) return j->st;
    j->st = sg_error(j->err, SIGMA_E_INVALID_ARG, "json schema: byte %zu: %s", j->p, msg);
    return j->st;
}

/* ---- reader ---- */

static void ws(js *j) {
    while (j->p < j->n && (j->t[j->p] == ' ' || j->t[j->p] == '\t' || j->t[j->p] == '\n' ||
                           j->t[j->p] == '\r'))
        j->p++;
}

static int32_t new_node(js *j, int type) {
    if (sg_reserve_n(j->a, (void **)&j->nodes, &j->cap_nodes, j->n_nodes, j->n_nodes + 1,
                     sizeof *j->nodes) != SIGMA_OK) {
        js_fail(j, SIGMA_E_NOMEM, "out of memory");
        return -1;
    }
    jnode *x = &j->nodes[j->n_nodes];
    memset(x, 0, sizeof *x);
    x->type = type;
    x->first = x->next = -1;
    x->start = (uint32_t)j->p;
    return (int32_t)j->n_nodes++;
}

static int read_string(js *j, uint32_t *start, uint32_t *len) {
    j->p++; /* " */
    *start = (uint32_t)j->p;
    while (j->p < j->n) {
        unsigned char c = (unsigned char)j->t[j->p];
        if (c == '"') {
            *len = (uint32_t)(j->p - *start);
            j->p++;
            return SIGMA_OK;
        }
        if (c < 0x20) return js_fail_at(j, "control character in a string");
        if (c >= 0x80) { /* one whole UTF-8 character */
            int n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
            if (!n || j->n - j->p < (size_t)n) return js_fail_at(j, "invalid UTF-8");
            uint32_t cp = c & (0x7Fu >> n);
            for (int i = 1; i < n; i++) {
                unsigned char d = (unsigned char)j->t[j->p + (size_t)i];
                if ((d & 0xC0) != 0x80) return js_fail_at(j, "invalid UTF-8");
                cp = cp << 6 | (d & 0x3F);
            }
            static const uint32_t lo[5] = {0, 0, 0x80, 0x800, 0x10000};
            if (cp < lo[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return js_fail_at(j, "invalid UTF-8");
            j->p += (size_t)n;
            continue;
        }
        if (c == '\\') {
            j->p++;
            if (j->p >= j->n) break;
            c = (unsigned char)j->t[j->p];
            if (c == 'u') {
                for (int i = 1; i <= 4; i++) {
                    char h = j->p + (size_t)i < j->n ? j->t[j->p + (size_t)i] : 0;
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
                        return js_fail_at(j, "bad \\u escape");
                }
                j->p += 4;
            } else if (!strchr("\"\\/bfnrt", c) || !c) {
                return js_fail_at(j, "bad escape");
            }
        }
        j->p++;
    }
    return js_fail_at(j, "unterminated string");
}

static int32_t read_value(js *j, int depth) {
    if (depth > JS_MAX_DEPTH) {
        js_fail_at(j, "nested too deeply");
        return -1;
    }
    ws(j);
    if (j->p >= j->n) {
        js_fail_at(j, "unexpected end");
        return -1;
    }
    char c = j->t[j->p];
    int32_t id;
    if (c == '"') {
        if ((id = new_node(j, J_STR)) < 0) return -1;
        uint32_t s, l;
        if (read_string(j, &s, &l) != SIGMA_OK) return -1;
        j->nodes[id].start = s;
        j->nodes[id].len = l;
        return id;
    }
    if (c == '{' || c == '[') {
        int obj = c == '{';
        if ((id = new_node(j, obj ? J_OBJ : J_ARR)) < 0) return -1;
        j->p++;
        ws(j);
        int32_t last = -1;
        if (j->p < j->n && j->t[j->p] == (obj ? '}' : ']')) {
            j->p++;
            return id;
        }
        for (;;) {
            uint32_t ks = 0, kl = 0;
            if (obj) {
                ws(j);
                if (j->p >= j->n || j->t[j->p] != '"') {
                    js_fail_at(j, "expected a key");
                    return -1;
                }
                if (read_string(j, &ks, &kl) != SIGMA_OK) return -1;
                ws(j);
                if (j->p >= j->n || j->t[j->p] != ':') {
                    js_fail_at(j, "expected ':'");
                    return -1;
                }
                j->p++;
            }
            int32_t v = read_value(j, depth + 1);
            if (v < 0) return -1;
            j->nodes[v].kstart = ks;
            j->nodes[v].klen = kl;
            if (last < 0)
                j->nodes[id].first = v;
            else
                j->nodes[last].next = v;
            last = v;
            j->nodes[id].count++;
            ws(j);
            if (j->p < j->n && j->t[j->p] == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->n && j->t[j->p] == (obj ? '}' : ']')) {
                j->p++;
                j->nodes[id].len = (uint32_t)(j->p - j->nodes[id].start);
                return id;
            }
            js_fail_at(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
            return -1;
        }
    }
    static const char *const words[3] = {"null", "false", "true"};
    for (int k = 0; k < 3; k++) {
        size_t wl = strlen(words[k]);
        if (j->n - j->p >= wl && !memcmp(j->t + j->p, words[k], wl)) {
            if ((id = new_node(j, J_NULL + k)) < 0) return -1;
            j->p += wl;
            j->nodes[id].len = (uint32_t)wl;
            return id;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        if ((id = new_node(j, J_NUM)) < 0) return -1;
        size_t s = j->p;
        if (j->t[j->p] == '-') j->p++;
        size_t d0 = j->p;
        while (j->p < j->n && j->t[j->p] >= '0' && j->t[j->p] <= '9') j->p++;
        if (j->p == d0 || (j->t[d0] == '0' && j->p - d0 > 1)) {
            js_fail_at(j, "bad number");
            return -1;
        }
        if (j->p < j->n && j->t[j->p] == '.') {
            j->p++;
            size_t f0 = j->p;
            while (j->p < j->n && j->t[j->p] >= '0' && j->t[j->p] <= '9') j->p++;
            if (j->p == f0) {
                js_fail_at(j, "bad number");
                return -1;
            }
        }
        if (j->p < j->n && (j->t[j->p] == 'e' || j->t[j->p] == 'E')) {
            j->p++;
            if (j->p < j->n && (j->t[j->p] == '+' || j->t[j->p] == '-')) j->p++;
            size_t e0 = j->p;
            while (j->p < j->n && j->t[j->p] >= '0' && j->t[j->p] <= '9') j->p++;
            if (j->p == e0) {
                js_fail_at(j, "bad number");
                return -1;
            }
        }
        j->nodes[id].len = (uint32_t)(j->p - s);
        return id;
    }
    js_fail_at(j, "unexpected character");
    return -1;
}

/* ---- tree helpers ---- */

static int key_is(const js *j, const jnode *x, const char *k) {
    size_t l = strlen(k);
    return x->klen == l && !memcmp(j->t + x->kstart, k, l);
}

static int32_t get(const js *j, int32_t obj, const char *k) {
    if (obj < 0 || j->nodes[obj].type != J_OBJ) return -1;
    for (int32_t c = j->nodes[obj].first; c >= 0; c = j->nodes[c].next)
        if (key_is(j, &j->nodes[c], k)) return c;
    return -1;
}

static int str_is(const js *j, int32_t n, const char *s) {
    size_t l = strlen(s);
    return n >= 0 && j->nodes[n].type == J_STR && j->nodes[n].len == l &&
           !memcmp(j->t + j->nodes[n].start, s, l);
}

/* A non-negative integer keyword (<= SG_GRAMMAR_MAX_REPEAT); -1 absent. */
static int get_count(js *j, int32_t obj, const char *k, long *v) {
    *v = -1;
    int32_t n = get(j, obj, k);
    if (n < 0) return SIGMA_OK;
    const jnode *x = &j->nodes[n];
    long r = 0;
    if (x->type != J_NUM) return js_fail(j, SIGMA_E_INVALID_ARG, "a count is not a number");
    for (uint32_t i = 0; i < x->len; i++) {
        char c = j->t[x->start + i];
        if (c < '0' || c > '9') return js_fail(j, SIGMA_E_INVALID_ARG, "a count is not a non-negative integer");
        r = r * 10 + (c - '0');
        if (r > SG_GRAMMAR_MAX_REPEAT) {
            sg_error(j->err, SIGMA_E_UNSUPPORTED, "json schema: %s above %d is not supported", k,
                     SG_GRAMMAR_MAX_REPEAT);
            j->st = SIGMA_E_UNSUPPORTED;
            return j->st;
        }
    }
    *v = r;
    return SIGMA_OK;
}

/* ---- output ---- */

static void out(js *j, sg_buf *b, const char *s) {
    if (sg_buf_append(b, s, strlen(s)) != SIGMA_OK) js_fail(j, SIGMA_E_NOMEM, "out of memory");
    if (b->len > JS_MAX_OUT) js_fail(j, SIGMA_E_UNSUPPORTED, "the grammar would be too large");
}

static void outf(js *j, sg_buf *b, const char *fmt, long a, long c) {
    char tmp[96];
    snprintf(tmp, sizeof tmp, fmt, a, c);
    out(j, b, tmp);
}

/* GBNF literal of raw bytes (escaping '"', '\' and controls). */
static void out_lit_bytes(js *j, sg_buf *b, const char *s, size_t n) {
    char tmp[8];
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            tmp[2] = 0;
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(tmp, sizeof tmp, "\\x%02X", c);
        } else {
            tmp[0] = (char)c;
            tmp[1] = 0;
        }
        out(j, b, tmp);
    }
}

/* Compact JSON of node n, as literal content. */
static void out_json_lit(js *j, sg_buf *b, int32_t n) {
    const jnode *x = &j->nodes[n];
    if (x->type == J_STR) {
        out_lit_bytes(j, b, "\"", 1);
        out_lit_bytes(j, b, j->t + x->start, x->len);
        out_lit_bytes(j, b, "\"", 1);
    } else if (x->type == J_ARR || x->type == J_OBJ) {
        out_lit_bytes(j, b, x->type == J_ARR ? "[" : "{", 1);
        for (int32_t c = x->first; c >= 0 && j->st == SIGMA_OK; c = j->nodes[c].next) {
            if (c != x->first) out_lit_bytes(j, b, ",", 1);
            if (x->type == J_OBJ) {
                out_lit_bytes(j, b, "\"", 1);
                out_lit_bytes(j, b, j->t + j->nodes[c].kstart, j->nodes[c].klen);
                out_lit_bytes(j, b, "\":", 2);
            }
            out_json_lit(j, b, c);
        }
        out_lit_bytes(j, b, x->type == J_ARR ? "]" : "}", 1);
    } else {
        out_lit_bytes(j, b, j->t + x->start, x->len);
    }
}

static const char *const unsupported[] = {
    "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "allOf", "not", "if", "then", "else", "patternProperties", "uniqueItems", "minProperties",
    "maxProperties", "dependentRequired", "dependentSchemas", "prefixItems", "contains",
    "propertyNames", "unevaluatedProperties", "unevaluatedItems", "dependencies",
    "additionalItems", "minContains", "maxContains", "$dynamicRef", "$recursiveRef"};

static uint32_t gen(js *j, int32_t n);

/* rule number for a fresh rule; the caller writes "rN ::= ..." */
static uint32_t fresh(js *j) { return ++j->n_rules; }

static void rule_line(js *j, uint32_t r, sg_buf *body) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "r%u ::= ", r);
    out(j, &j->out, tmp);
    if (!body->len)
        out(j, &j->out, "\"\"");
    else if (sg_buf_append(&j->out, body->data, body->len) != SIGMA_OK)
        js_fail(j, SIGMA_E_NOMEM, "out of memory");
    out(j, &j->out, "\n");
}

static void ref(js *j, sg_buf *b, uint32_t r) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, " r%u ", r);
    out(j, b, tmp);
}

/* The body of an object schema (properties, required, additionalProperties). */
static void gen_object(js *j, int32_t n, sg_buf *b) {
    int32_t props = get(j, n, "properties"), req = get(j, n, "required");
    int32_t addl = get(j, n, "additionalProperties");
    if (props >= 0 && j->nodes[props].type != J_OBJ) {
        js_fail(j, SIGMA_E_INVALID_ARG, "properties is not an object");
        return;
    }
    if (req >= 0 && j->nodes[req].type != J_ARR) {
        js_fail(j, SIGMA_E_INVALID_ARG, "required is not an array");
        return;
    }
    /* the property list: every property, then required names not in it */
    size_t np = (props >= 0 ? j->nodes[props].count : 0) + (req >= 0 ? j->nodes[req].count : 0);
    uint32_t *kv = sg_calloc(j->a, np + 1, sizeof *kv);     /* rule of "key":value */
    uint8_t *isreq = sg_calloc(j->a, np + 1, 1);
    if (!kv || !isreq) {
        sg_free(j->a, kv);
        sg_free(j->a, isreq);
        js_fail(j, SIGMA_E_NOMEM, "out of memory");
        return;
    }
    size_t k = 0;
    for (int32_t c = props >= 0 ? j->nodes[props].first : -1; c >= 0 && j->st == SIGMA_OK;
         c = j->nodes[c].next) {
        uint32_t v = gen(j, c);
        sg_buf kb = {.alloc = j->a};
        out(j, &kb, "\"\\\"");
        out_lit_bytes(j, &kb, j->t + j->nodes[c].kstart, j->nodes[c].klen);
        out(j, &kb, "\\\"\" json-ws \":\" json-ws");
        ref(j, &kb, v);
        kv[k] = fresh(j);
        rule_line(j, kv[k], &kb);
        sg_buf_free(&kb);
        for (int32_t q = req >= 0 ? j->nodes[req].first : -1; q >= 0; q = j->nodes[q].next)
            if (j->nodes[q].type == J_STR && j->nodes[q].len == j->nodes[c].klen &&
                !memcmp(j->t + j->nodes[q].start, j->t + j->nodes[c].kstart, j->nodes[c].klen))
                isreq[k] = 1;
        k++;
    }
    for (int32_t q = req >= 0 ? j->nodes[req].first : -1; q >= 0 && j->st == SIGMA_OK;
         q = j->nodes[q].next) {
        if (j->nodes[q].type != J_STR) {
            js_fail(j, SIGMA_E_INVALID_ARG, "required holds a non-string");
            break;
        }
        int known = 0;
        for (int32_t c = props >= 0 ? j->nodes[props].first : -1; c >= 0; c = j->nodes[c].next)
            if (j->nodes[q].len == j->nodes[c].klen &&
                !memcmp(j->t + j->nodes[q].start, j->t + j->nodes[c].kstart, j->nodes[c].klen))
                known = 1;
        if (known) continue;
        sg_buf kb = {.alloc = j->a};
        out(j, &kb, "\"\\\"");
        out_lit_bytes(j, &kb, j->t + j->nodes[q].start, j->nodes[q].len);
        out(j, &kb, "\\\"\" json-ws \":\" json-ws json-value");
        kv[k] = fresh(j);
        rule_line(j, kv[k], &kb);
        sg_buf_free(&kb);
        isreq[k++] = 1;
    }
    /* extra properties */
    uint32_t extra = 0;
    if (addl >= 0 && j->nodes[addl].type != J_FALSE && j->st == SIGMA_OK) {
        sg_buf eb = {.alloc = j->a};
        out(j, &eb, "json-string json-ws \":\" json-ws ");
        if (j->nodes[addl].type == J_TRUE)
            out(j, &eb, "json-value");
        else
            ref(j, &eb, gen(j, addl));
        extra = fresh(j);
        rule_line(j, extra, &eb);
        sg_buf_free(&eb);
    }
    /* A_i: after at least one property; F_i: none written yet */
    uint32_t a_next = fresh(j), f_next = fresh(j);
    {
        sg_buf x = {.alloc = j->a};
        if (extra) {
            out(j, &x, "( json-ws \",\" json-ws");
            ref(j, &x, extra);
            out(j, &x, ")*");
        }
        rule_line(j, a_next, &x);
        x.len = 0;
        if (extra) {
            out(j, &x, "(");
            ref(j, &x, extra);
            ref(j, &x, a_next);
            out(j, &x, ")?");
        }
        rule_line(j, f_next, &x);
        sg_buf_free(&x);
    }
    for (size_t i = k; i-- > 0 && j->st == SIGMA_OK;) {
        uint32_t a = fresh(j), f = fresh(j);
        sg_buf x = {.alloc = j->a};
        if (isreq[i]) {
            out(j, &x, "json-ws \",\" json-ws");
            ref(j, &x, kv[i]);
            ref(j, &x, a_next);
        } else {
            out(j, &x, "( json-ws \",\" json-ws");
            ref(j, &x, kv[i]);
            out(j, &x, ")?");
            ref(j, &x, a_next);
        }
        rule_line(j, a, &x);
        x.len = 0;
        ref(j, &x, kv[i]);
        ref(j, &x, a_next);
        if (!isreq[i]) {
            out(j, &x, "|");
            ref(j, &x, f_next);
        }
        rule_line(j, f, &x);
        sg_buf_free(&x);
        a_next = a;
        f_next = f;
    }
    out(j, b, "\"{\" json-ws");
    ref(j, b, f_next);
    out(j, b, "json-ws \"}\"");
    sg_free(j->a, kv);
    sg_free(j->a, isreq);
}

static void gen_array(js *j, int32_t n, sg_buf *b) {
    int32_t items = get(j, n, "items");
    long mn, mx;
    if (get_count(j, n, "minItems", &mn) != SIGMA_OK || get_count(j, n, "maxItems", &mx) != SIGMA_OK)
        return;
    if (mn < 0) mn = 0;
    if (mx >= 0 && mx < mn) {
        js_fail(j, SIGMA_E_INVALID_ARG, "maxItems < minItems");
        return;
    }
    char it[32] = "json-value";
    if (items >= 0 && j->nodes[items].type != J_TRUE) {
        if (j->nodes[items].type == J_ARR) {
            js_fail(j, SIGMA_E_UNSUPPORTED, "items as an array is not supported");
            return;
        }
        snprintf(it, sizeof it, "r%u", gen(j, items));
    }
    out(j, b, "\"[\" json-ws ");
    if (mx == 0) {
        out(j, b, "\"]\"");
        return;
    }
    if (mn == 0) out(j, b, "(");
    out(j, b, it);
    out(j, b, " ( json-ws \",\" json-ws ");
    out(j, b, it);
    long lo = mn > 0 ? mn - 1 : 0;
    if (mx < 0)
        outf(j, b, " ){%ld,}", lo, 0);
    else
        outf(j, b, " ){%ld,%ld}", lo, mx - 1);
    if (mn == 0) out(j, b, ")?");
    out(j, b, " json-ws \"]\"");
}

static void gen_type(js *j, int32_t n, int32_t type, sg_buf *b) {
    if (str_is(j, type, "string")) {
        long mn, mx;
        if (get_count(j, n, "minLength", &mn) != SIGMA_OK ||
            get_count(j, n, "maxLength", &mx) != SIGMA_OK)
            return;
        if (mn < 0 && mx < 0) {
            out(j, b, "json-string");
            return;
        }
        if (mn < 0) mn = 0;
        if (mx >= 0 && mx < mn) {
            js_fail(j, SIGMA_E_INVALID_ARG, "maxLength < minLength");
            return;
        }
        if (mx < 0)
            outf(j, b, "\"\\\"\" json-char{%ld,} \"\\\"\"", mn, 0);
        else
            outf(j, b, "\"\\\"\" json-char{%ld,%ld} \"\\\"\"", mn, mx);
    } else if (str_is(j, type, "number")) {
        out(j, b, "json-number");
    } else if (str_is(j, type, "integer")) {
        out(j, b, "json-integer");
    } else if (str_is(j, type, "boolean")) {
        out(j, b, "json-boolean");
    } else if (str_is(j, type, "null")) {
        out(j, b, "\"null\"");
    } else if (str_is(j, type, "object")) {
        gen_object(j, n, b);
    } else if (str_is(j, type, "array")) {
        gen_array(j, n, b);
    } else if (j->st == SIGMA_OK && j->nodes[type].type == J_STR) {
        /* name it (raw JSON string bytes, cut at 64) */
        size_t len = j->nodes[type].len < 64 ? j->nodes[type].len : 64;
        j->st = sg_error(j->err, SIGMA_E_INVALID_ARG, "json schema: unknown type '%.*s'", (int)len,
                         j->t + j->nodes[type].start);
    } else {
        js_fail(j, SIGMA_E_INVALID_ARG, "unknown type");
    }
}

/* Resolve "#/$defs/x" or "#/definitions/x" against the root. */
static int32_t resolve(js *j, int32_t r) {
    const jnode *x = &j->nodes[r];
    const char *s = j->t + x->start;
    static const char *const pre[2] = {"#/$defs/", "#/definitions/"};
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(pre[k]);
        if (x->len > l && !memcmp(s, pre[k], l)) {
            int32_t defs = get(j, j->root, k ? "definitions" : "$defs");
            if (defs < 0 || j->nodes[defs].type != J_OBJ) return -1;
            for (int32_t c = j->nodes[defs].first; c >= 0; c = j->nodes[c].next)
                if (j->nodes[c].klen == x->len - l && !memcmp(j->t + j->nodes[c].kstart, s + l, x->len - l))
                    return c;
        }
    }
    if (x->len == 1 && s[0] == '#') return j->root;
    return -1;
}

/* The rule for schema node n (memoised: $ref cycles end on the number). */
static uint32_t gen(js *j, int32_t n) {
    if (j->st != SIGMA_OK) return 0;
    if (j->memo[n]) return (uint32_t)j->memo[n];
    if (++j->gen_depth > JS_MAX_GEN_DEPTH) {
        js_fail(j, SIGMA_E_INVALID_ARG, "schema nested too deeply");
        return 0;
    }
    uint32_t r = fresh(j);
    j->memo[n] = (int32_t)r;
    sg_buf b = {.alloc = j->a};
    const jnode *x = &j->nodes[n];
    if (x->type == J_TRUE) {
        out(j, &b, "json-value");
    } else if (x->type != J_OBJ) {
        js_fail(j, x->type == J_FALSE ? SIGMA_E_UNSUPPORTED : SIGMA_E_INVALID_ARG,
                x->type == J_FALSE ? "a false schema admits nothing" : "a schema is not an object");
    } else {
        for (size_t k = 0; k < sizeof unsupported / sizeof *unsupported; k++)
            if (get(j, n, unsupported[k]) >= 0) {
                sg_error(j->err, SIGMA_E_UNSUPPORTED, "json schema: keyword '%s' is not supported",
                         unsupported[k]);
                j->st = SIGMA_E_UNSUPPORTED;
            }
        int32_t rf = get(j, n, "$ref"), cst = get(j, n, "const"), en = get(j, n, "enum");
        int32_t any = get(j, n, "anyOf");
        if (any < 0) any = get(j, n, "oneOf");
        int32_t type = get(j, n, "type");
        if (j->st != SIGMA_OK) {
        } else if (rf >= 0) {
            int32_t t = j->nodes[rf].type == J_STR ? resolve(j, rf) : -1;
            if (t < 0)
                js_fail(j, SIGMA_E_UNSUPPORTED, "$ref is not a local #/$defs/ reference");
            else
                ref(j, &b, gen(j, t));
        } else if (cst >= 0) {
            out(j, &b, "\"");
            out_json_lit(j, &b, cst);
            out(j, &b, "\"");
        } else if (en >= 0) {
            if (j->nodes[en].type != J_ARR || !j->nodes[en].count)
                js_fail(j, SIGMA_E_INVALID_ARG, "enum is not a non-empty array");
            for (int32_t c = j->nodes[en].first; c >= 0 && j->st == SIGMA_OK; c = j->nodes[c].next) {
                if (c != j->nodes[en].first) out(j, &b, " | ");
                out(j, &b, "\"");
                out_json_lit(j, &b, c);
                out(j, &b, "\"");
            }
        } else if (any >= 0) {
            if (j->nodes[any].type != J_ARR || !j->nodes[any].count)
                js_fail(j, SIGMA_E_INVALID_ARG, "anyOf/oneOf is not a non-empty array");
            for (int32_t c = j->nodes[any].first; c >= 0 && j->st == SIGMA_OK; c = j->nodes[c].next) {
                if (c != j->nodes[any].first) out(j, &b, " | ");
                ref(j, &b, gen(j, c));
            }
        } else if (type >= 0 && j->nodes[type].type == J_ARR) {
            for (int32_t c = j->nodes[type].first; c >= 0 && j->st == SIGMA_OK; c = j->nodes[c].next) {
                if (c != j->nodes[type].first) out(j, &b, " | ");
                out(j, &b, "(");
                gen_type(j, n, c, &b);
                out(j, &b, ")");
            }
            if (!j->nodes[type].count) js_fail(j, SIGMA_E_INVALID_ARG, "type is an empty list");
        } else if (type >= 0) {
            gen_type(j, n, type, &b);
        } else if (get(j, n, "properties") >= 0 || get(j, n, "required") >= 0 ||
                   get(j, n, "additionalProperties") >= 0) {
            gen_object(j, n, &b);
        } else if (get(j, n, "items") >= 0) {
            gen_array(j, n, &b);
        } else {
            out(j, &b, "json-value");
        }
    }
    if (j->st == SIGMA_OK) rule_line(j, r, &b);
    sg_buf_free(&b);
    j->gen_depth--;
    return r;
}

static const char helpers[] =
    "json-ws ::= \" \"?\n"
    "json-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n"
    "json-string ::= \"\\\"\" json-char* \"\\\"\"\n"
    "json-integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n"
    "json-number ::= json-integer (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?\n"
    "json-boolean ::= \"true\" | \"false\"\n"
    "json-value ::= json-object | json-array | json-string | json-number | json-boolean | "
    "\"null\"\n"
    "json-object ::= \"{\" json-ws ( json-string json-ws \":\" json-ws json-value ( json-ws \",\" "
    "json-ws json-string json-ws \":\" json-ws json-value )* )? json-ws \"}\"\n"
    "json-array ::= \"[\" json-ws ( json-value ( json-ws \",\" json-ws json-value )* )? json-ws "
    "\"]\"\n";

int sg_json_schema_to_gbnf(const sg_alloc *a, const char *schema, size_t schema_len, char **outp,
                           size_t *out_len, sg_err *err) {
    *outp = NULL;
    *out_len = 0;
    js j;
    memset(&j, 0, sizeof j);
    j.a = a;
    j.t = schema;
    j.n = schema_len;
    j.err = err;
    j.out.alloc = a;
    if (schema_len > JS_MAX_TEXT)
        return sg_error(err, SIGMA_E_INVALID_ARG, "json schema: %zu bytes is too long", schema_len);
    j.root = read_value(&j, 0);
    if (j.st == SIGMA_OK) {
        ws(&j);
        if (j.p != j.n) js_fail_at(&j, "text after the JSON value");
    }
    if (j.st == SIGMA_OK) {
        j.memo = sg_calloc(a, j.n_nodes, sizeof *j.memo);
        if (!j.memo) js_fail(&j, SIGMA_E_NOMEM, "out of memory");
    }
    if (j.st == SIGMA_OK) {
        uint32_t r = gen(&j, j.root);
        char tmp[48];
        snprintf(tmp, sizeof tmp, "root ::= r%u\n", r);
        out(&j, &j.out, tmp);
        out(&j, &j.out, helpers);
        if (sg_buf_append(&j.out, "", 1) != SIGMA_OK) js_fail(&j, SIGMA_E_NOMEM, "out of memory");
    }
    sg_free(a, j.nodes);
    sg_free(a, j.memo);
    if (j.st != SIGMA_OK) {
        sg_buf_free(&j.out);
        return j.st;
    }
    *outp = (char *)j.out.data;
    *out_len = j.out.len - 1;
    return SIGMA_OK;
}

int sigma_json_schema_to_grammar(const sigma_model *model, const char *schema, size_t schema_len,
                                 char *buf, size_t size, size_t *len) {
    if (!schema || !len || (!buf && size)) {
        if (model) sg_model_error(model, SIGMA_E_INVALID_ARG, "json_schema_to_grammar: NULL argument");
        return SIGMA_E_INVALID_ARG;
    }
    sg_alloc def;
    sg_alloc_init(&def, NULL);
    const sg_alloc *a = model ? &model->alloc : &def;
    sg_err err;
    sg_err_clear(&err);
    char *g = NULL;
    size_t n = 0;
    int st = sg_json_schema_to_gbnf(a, schema, schema_len, &g, &n, &err);
    if (st != SIGMA_OK) {
        if (model) sg_model_error(model, st, "%s", err.msg);
        return st;
    }
    *len = n;
    if (n > size || !buf) {
        sg_free(a, g);
        if (model) sg_model_error(model, SIGMA_E_BUFFER_TOO_SMALL, "grammar needs %zu bytes", n);
        return SIGMA_E_BUFFER_TOO_SMALL;
    }
    memcpy(buf, g, n);
    if (n < size) buf[n] = 0;
    sg_free(a, g);
    return SIGMA_OK;
}
