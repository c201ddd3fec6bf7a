/* GBNF grammars (the dialect of llama.cpp's grammars/README.md): a parser
 * that compiles the text once into a byte-level form, and a matcher that
 * follows a set of parse stacks byte by byte.
 *
 * Compiled form: every rule is a list of alternatives; an alternative is a
 * run of elements ended by END. An element is BYTES (a 256-bit set of
 * bytes) or RULE (a reference). Character classes over code points are
 * turned into alternatives of UTF-8 byte-range sequences, so tokens that
 * end inside a character need no special treatment. Repetitions become
 * generated rules (x* -> R ::= x R | empty; x{m,n} -> m copies and nested
 * optionals).
 *
 * A parse stack holds element positions, the top being the next element
 * to match; after expansion the top of every stack is a BYTES element (or
 * the stack is empty: the sentence may end). A rule reference that ends an
 * alternative pushes no return position (tail call), so right recursion
 * and repetition use constant depth. Left recursion and loops that can
 * repeat without consuming a byte are rejected at compile time, which is
 * what makes expansion terminate; depth and width are bounded at run time
 * (SG_GRAMMAR_MAX_DEPTH, SG_GRAMMAR_MAX_STACKS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"

enum { E_END = 0, E_BYTES = 1, E_RULE = 2, E_ALT = 3 };
#define E_TYPE(e) ((e) >> 28)
#define E_ARG(e) ((e) & 0x0FFFFFFFu)
#define E_MAKE(t, a) (((uint32_t)(t) << 28) | (uint32_t)(a))

struct sg_grammar {
    sg_alloc alloc;
    uint32_t *elems;     /* all alternatives, each ended by END */
    uint32_t n_elems;
    uint32_t *alts;      /* start positions of alternatives */
    uint32_t *rule_alt;  /* rule r: alts[rule_alt[r] .. rule_alt[r+1]) */
    uint32_t n_rules, root;
    uint32_t (*sets)[8]; /* byte sets */
    uint32_t n_sets;
    uint64_t hash;
};

/* ---- parser ---------------------------------------------------------------------- */

typedef struct prule {
    const char *name; /* into the text; NULL for generated rules */
    size_t name_len;
    uint32_t *body;   /* elements with ALT between alternatives */
    size_t len, cap;
    const char *def;  /* where it is defined (generated: where it arose) */
    const char *ref;  /* first reference */
} prule;

typedef struct gp {
    const sg_alloc *a;
    const char *text, *p, *end;
    sg_err *err;
    int st;
    prule *rules;
    size_t n_rules, cap_rules;
    uint32_t (*sets)[8];
    size_t n_sets, cap_sets;
    size_t n_elems; /* total, for the limit */
    int depth;
} gp;

static int gp_fail_at(gp *g, const char *at, const char *msg) {
    if (g->st != SIGMA_OK) return g->st;
    unsigned line = 1, col = 1;
    for (const char *q = g->text; q < at && q < g->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    g->st = sg_error(g->err, SIGMA_E_INVALID_ARG, "grammar: line %u column %u: %s", line, col, msg);
    return g->st;
}

static int gp_nomem(gp *g) {
    if (g->st == SIGMA_OK) g->st = sg_error(g->err, SIGMA_E_NOMEM, "grammar: out of memory");
    return g->st;
}

static int new_rule(gp *g, const char *name, size_t name_len, const char *def, uint32_t *id) {
    if (g->n_rules >= SG_GRAMMAR_MAX_RULES) return gp_fail_at(g, def, "too many rules");
    if (sg_reserve_n(g->a, (void **)&g->rules, &g->cap_rules, g->n_rules, g->n_rules + 1,
                     sizeof *g->rules) != SIGMA_OK)
        return gp_nomem(g);
    prule *r = &g->rules[g->n_rules];
    memset(r, 0, sizeof *r);
    r->name = name;
    r->name_len = name_len;
    r->def = def;
    *id = (uint32_t)g->n_rules++;
    return SIGMA_OK;
}

static int find_rule(gp *g, const char *name, size_t n, const char *at, uint32_t *id) {
    for (size_t i = 0; i < g->n_rules; i++)
        if (g->rules[i].name && g->rules[i].name_len == n && !memcmp(g->rules[i].name, name, n)) {
            *id = (uint32_t)i;
            return SIGMA_OK;
        }
    int st = new_rule(g, name, n, NULL, id);
    if (st == SIGMA_OK) g->rules[*id].ref = at;
    return st;
}

static int emit(gp *g, uint32_t rule, uint32_t e) {
    if (g->n_elems >= SG_GRAMMAR_MAX_ELEMS) return gp_fail_at(g, g->p, "grammar too large");
    prule *r = &g->rules[rule];
    if (sg_reserve_n(g->a, (void **)&r->body, &r->cap, r->len, r->len + 1, sizeof *r->body) !=
        SIGMA_OK)
        return gp_nomem(g);
    r->body[r->len++] = e;
    g->n_elems++;
    return SIGMA_OK;
}

static int add_set(gp *g, const uint32_t set[8], uint32_t *idx) {
    for (size_t i = 0; i < g->n_sets; i++)
        if (!memcmp(g->sets[i], set, 32)) {
            *idx = (uint32_t)i;
            return SIGMA_OK;
        }
    if (g->n_sets >= SG_GRAMMAR_MAX_ELEMS) return gp_fail_at(g, g->p, "grammar too large");
    if (sg_reserve_n(g->a, (void **)&g->sets, &g->cap_sets, g->n_sets, g->n_sets + 1,
                     sizeof *g->sets) != SIGMA_OK)
        return gp_nomem(g);
    memcpy(g->sets[g->n_sets], set, 32);
    *idx = (uint32_t)g->n_sets++;
    return SIGMA_OK;
}

static int emit_range(gp *g, uint32_t rule, unsigned lo, unsigned hi) {
    uint32_t set[8] = {0}, idx;
    for (unsigned b = lo; b <= hi; b++) set[b >> 5] |= 1u << (b & 31);
    if (add_set(g, set, &idx) != SIGMA_OK) return g->st;
    return emit(g, rule, E_MAKE(E_BYTES, idx));
}

static int is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static void skip_space(gp *g, int newline_ok) {
    while (g->p < g->end) {
        char c = *g->p;
        if (c == ' ' || c == '\t' || (newline_ok && (c == '\r' || c == '\n'))) {
            g->p++;
        } else if (c == '#') {
            while (g->p < g->end && *g->p != '\n' && *g->p != '\r') g->p++;
        } else {
            break;
        }
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode one UTF-8 code point at g->p; -1 on error (reported). */
static long read_utf8(gp *g) {
    const unsigned char *s = (const unsigned char *)g->p;
    size_t left = (size_t)(g->end - g->p);
    unsigned c = s[0];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!n || (size_t)n > left) {
        gp_fail_at(g, g->p, "invalid UTF-8");
        return -1;
    }
    unsigned long cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            gp_fail_at(g, g->p, "invalid UTF-8");
            return -1;
        }
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const unsigned long min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        gp_fail_at(g, g->p, "invalid UTF-8");
        return -1;
    }
    g->p += n;
    return (long)cp;
}

/* One character of a literal or class: an escape or a UTF-8 code point. */
static long read_char(gp *g) {
    if (g->p >= g->end) {
        gp_fail_at(g, g->p, "unexpected end of input");
        return -1;
    }
    if (*g->p != '\\') return read_utf8(g);
    const char *at = g->p;
    g->p++;
    if (g->p >= g->end) {
        gp_fail_at(g, at, "unexpected end of input in an escape");
        return -1;
    }
    char c = *g->p++;
    int digits = 0;
    switch (c) {
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    case 't': return '\t';
    case 'n': return '\n';
    case 'r': return '\r';
    case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'':
        return c;
    default:
        gp_fail_at(g, at, "unknown escape");
        return -1;
    }
    unsigned long v = 0;
    for (int i = 0; i < digits; i++) {
        int h = g->p < g->end ? hexval(*g->p) : -1;
        if (h < 0) {
            gp_fail_at(g, at, "bad hexadecimal escape");
            return -1;
        }
        v = v << 4 | (unsigned)h;
        g->p++;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        gp_fail_at(g, at, "escape is not a Unicode scalar value");
        return -1;
    }
    return (long)v;
}

static int utf8_enc(unsigned long cp, uint8_t *o) {
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- character classes -> UTF-8 byte-range sequences ---- */

typedef struct crange {
    uint32_t lo, hi;
} crange;

typedef struct cls {
    crange r[SG_GRAMMAR_MAX_REPEAT];
    size_t n;
} cls;

/* The sequences of one class, emitted as alternatives of rule `sub`
 * (first alternative: the ASCII part). */
typedef struct seqout {
    gp *g;
    uint32_t rule;
    int n_alts;
} seqout;

static int seq_emit(seqout *o, uint32_t lo, uint32_t hi) {
    uint8_t a[4], b[4];
    int n = utf8_enc(lo, a);
    utf8_enc(hi, b);
    if (o->n_alts++ && emit(o->g, o->rule, E_MAKE(E_ALT, 0)) != SIGMA_OK) return o->g->st;
    for (int i = 0; i < n; i++)
        if (emit_range(o->g, o->rule, a[i], b[i]) != SIGMA_OK) return o->g->st;
    return SIGMA_OK;
}

/* lo..hi all of one UTF-8 length >= 2: split until each piece is a
 * product of byte ranges. */
static int seq_split(seqout *o, uint32_t lo, uint32_t hi, int len) {
    for (int i = 1; i < len; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m) {
                if (seq_split(o, lo, lo | m, len) != SIGMA_OK) return o->g->st;
                return seq_split(o, (lo | m) + 1, hi, len);
            }
            if ((hi & m) != m) {
                if (seq_split(o, lo, (hi & ~m) - 1, len) != SIGMA_OK) return o->g->st;
                return seq_split(o, hi & ~m, hi, len);
            }
        }
    }
    return seq_emit(o, lo, hi);
}

static int compile_class(gp *g, uint32_t rule, const cls *c, const char *at) {
    /* ASCII part as one set; the rest as sequences in a generated rule */
    uint32_t set[8] = {0};
    int has_ascii = 0, has_multi = 0;
    for (size_t i = 0; i < c->n; i++) {
        for (uint32_t b = c->r[i].lo; b <= c->r[i].hi && b < 0x80; b++) {
            set[b >> 5] |= 1u << (b & 31);
            has_ascii = 1;
        }
        if (c->r[i].hi >= 0x80) has_multi = 1;
    }
    uint32_t idx;
    if (!has_multi) {
        if (add_set(g, set, &idx) != SIGMA_OK) return g->st;
        return emit(g, rule, E_MAKE(E_BYTES, idx));
    }
    uint32_t sub;
    if (new_rule(g, NULL, 0, at, &sub) != SIGMA_OK) return g->st;
    seqout o = {g, sub, 0};
    if (has_ascii) {
        if (add_set(g, set, &idx) != SIGMA_OK || emit(g, sub, E_MAKE(E_BYTES, idx)) != SIGMA_OK)
            return g->st;
        o.n_alts = 1;
    }
    static const uint32_t bounds[4][2] = {
        {0x80, 0x7FF}, {0x800, 0xD7FF}, {0xE000, 0xFFFF}, {0x10000, 0x10FFFF}};
    static const int lens[4] = {2, 3, 3, 4};
    for (size_t i = 0; i < c->n; i++)
        for (int k = 0; k < 4; k++) {
            uint32_t lo = c->r[i].lo > bounds[k][0] ? c->r[i].lo : bounds[k][0];
            uint32_t hi = c->r[i].hi < bounds[k][1] ? c->r[i].hi : bounds[k][1];
            if (lo <= hi && seq_split(&o, lo, hi, lens[k]) != SIGMA_OK) return g->st;
        }
    return emit(g, rule, E_MAKE(E_RULE, sub));
}

static int cmp_range(const void *a, const void *b) {
    const crange *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Sort and merge; complement when negated. */
static void class_normalize(cls *c, int negate) {
    qsort(c->r, c->n, sizeof c->r[0], cmp_range);
    size_t m = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (m && c->r[i].lo <= c->r[m - 1].hi + 1) {
            if (c->r[i].hi > c->r[m - 1].hi) c->r[m - 1].hi = c->r[i].hi;
        } else {
            c->r[m++] = c->r[i];
        }
    }
    c->n = m;
    if (!negate) return;
    crange tmp[SG_GRAMMAR_MAX_REPEAT];
    size_t k = 0;
    uint32_t next = 0;
    for (size_t i = 0; i < m; i++) {
        if (c->r[i].lo > next) tmp[k++] = (crange){next, c->r[i].lo - 1};
        next = c->r[i].hi + 1;
    }
    if (next <= 0x10FFFF && k < SG_GRAMMAR_MAX_REPEAT) tmp[k++] = (crange){next, 0x10FFFF};
    memcpy(c->r, tmp, k * sizeof tmp[0]);
    c->n = k;
}

static int parse_class(gp *g, uint32_t rule) {
    const char *at = g->p;
    g->p++; /* [ */
    int negate = 0;
    if (g->p < g->end && *g->p == '^') {
        negate = 1;
        g->p++;
    }
    cls *c = sg_malloc(g->a, sizeof *c);
    if (!c) return gp_nomem(g);
    c->n = 0;
    while (g->st == SIGMA_OK) {
        if (g->p >= g->end || *g->p == '\n' || *g->p == '\r') {
            gp_fail_at(g, at, "unterminated character class");
            break;
        }
        if (*g->p == ']') {
            g->p++;
            break;
        }
        long lo = read_char(g), hi = lo;
        if (lo < 0) break;
        if (g->p + 1 < g->end && *g->p == '-' && g->p[1] != ']' && g->p[1] != '\n' &&
            g->p[1] != '\r') {
            g->p++;
            hi = read_char(g);
            if (hi < 0) break;
            if (hi < lo) {
                gp_fail_at(g, g->p, "character range is reversed");
                break;
            }
        }
        if (c->n >= SG_GRAMMAR_MAX_REPEAT / 2) {
            gp_fail_at(g, g->p, "character class too long");
            break;
        }
        c->r[c->n++] = (crange){(uint32_t)lo, (uint32_t)hi};
    }
    if (g->st == SIGMA_OK) {
        class_normalize(c, negate);
        /* surrogates are not characters */
        cls *d = c;
        size_t k = 0;
        crange tmp[SG_GRAMMAR_MAX_REPEAT];
        for (size_t i = 0; i < d->n; i++) {
            crange r = d->r[i];
            if (r.lo < 0xD800 && r.hi > 0xDFFF) {
                tmp[k++] = (crange){r.lo, 0xD7FF};
                tmp[k++] = (crange){0xE000, r.hi};
            } else if (r.lo >= 0xD800 && r.hi <= 0xDFFF) {
                continue;
            } else {
                if (r.lo >= 0xD800 && r.lo <= 0xDFFF) r.lo = 0xE000;
                if (r.hi >= 0xD800 && r.hi <= 0xDFFF) r.hi = 0xD7FF;
                tmp[k++] = r;
            }
        }
        memcpy(d->r, tmp, k * sizeof tmp[0]);
        d->n = k;
        compile_class(g, rule, c, at);
    }
    sg_free(g->a, c);
    return g->st;
}

static int parse_alternates(gp *g, uint32_t rule, int nested);

/* Copy of body[from, to) of `rule`. */
static uint32_t *span_copy(gp *g, uint32_t rule, size_t from, size_t to) {
    size_t n = to - from;
    uint32_t *s = sg_malloc(g->a, (n ? n : 1) * sizeof *s);
    if (!s) {
        gp_nomem(g);
        return NULL;
    }
    if (n) memcpy(s, g->rules[rule].body + from, n * sizeof *s); /* body may be NULL */
    return s;
}

static int emit_span(gp *g, uint32_t rule, const uint32_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (emit(g, rule, s[i]) != SIGMA_OK) return g->st;
    return SIGMA_OK;
}

/* Replace body[from, len) of `rule` (the span s of n elements) by its
 * repetition min..max times (max < 0: unbounded). */
static int repeat(gp *g, uint32_t rule, size_t from, long min, long max, const char *at) {
    size_t n = g->rules[rule].len - from;
    uint32_t *s = span_copy(g, rule, from, g->rules[rule].len);
    if (!s) return g->st;
    g->rules[rule].len = from;
    g->n_elems -= n;
    for (long i = 0; i < min && g->st == SIGMA_OK; i++) emit_span(g, rule, s, n);
    if (g->st == SIGMA_OK && max < 0) {
        /* R ::= s R | empty */
        uint32_t r;
        if (new_rule(g, NULL, 0, at, &r) == SIGMA_OK && emit_span(g, r, s, n) == SIGMA_OK &&
            emit(g, r, E_MAKE(E_RULE, r)) == SIGMA_OK && emit(g, r, E_MAKE(E_ALT, 0)) == SIGMA_OK)
            emit(g, rule, E_MAKE(E_RULE, r));
    } else if (g->st == SIGMA_OK && max > min) {
        /* R1 ::= s | empty; Rk ::= s R(k-1) | empty */
        uint32_t prev = 0;
        for (long k = 0; k < max - min && g->st == SIGMA_OK; k++) {
            uint32_t r;
            if (new_rule(g, NULL, 0, at, &r) != SIGMA_OK || emit_span(g, r, s, n) != SIGMA_OK) break;
            if (k && emit(g, r, E_MAKE(E_RULE, prev)) != SIGMA_OK) break;
            if (emit(g, r, E_MAKE(E_ALT, 0)) != SIGMA_OK) break;
            prev = r;
        }
        if (g->st == SIGMA_OK) emit(g, rule, E_MAKE(E_RULE, prev));
    }
    sg_free(g->a, s);
    return g->st;
}

static int read_count(gp *g, long *v) {
    const char *at = g->p;
    long x = 0;
    int any = 0;
    while (g->p < g->end && *g->p >= '0' && *g->p <= '9') {
        x = x * 10 + (*g->p - '0');
        if (x > SG_GRAMMAR_MAX_REPEAT) return gp_fail_at(g, at, "repetition count too large");
        g->p++;
        any = 1;
    }
    if (!any) return gp_fail_at(g, at, "expected a number");
    *v = x;
    return SIGMA_OK;
}

static int parse_sequence(gp *g, uint32_t rule, int nested) {
    size_t last = (size_t)-1; /* start of the last item in the body */
    while (g->st == SIGMA_OK && g->p < g->end) {
        char c = *g->p;
        const char *at = g->p;
        if (c == '"') {
            last = g->rules[rule].len;
            g->p++;
            for (;;) {
                if (g->p >= g->end) return gp_fail_at(g, at, "unterminated string");
                if (*g->p == '"') {
                    g->p++;
                    break;
                }
                long cp = read_char(g);
                if (cp < 0) return g->st;
                uint8_t u[4];
                int n = utf8_enc((unsigned long)cp, u);
                for (int i = 0; i < n; i++)
                    if (emit_range(g, rule, u[i], u[i]) != SIGMA_OK) return g->st;
            }
        } else if (c == '[') {
            last = g->rules[rule].len;
            if (parse_class(g, rule) != SIGMA_OK) return g->st;
        } else if (c == '.') {
            last = g->rules[rule].len;
            g->p++;
            cls *any = sg_malloc(g->a, sizeof *any);
            if (!any) return gp_nomem(g);
            any->n = 2;
            any->r[0] = (crange){0, 0xD7FF};
            any->r[1] = (crange){0xE000, 0x10FFFF};
            compile_class(g, rule, any, at);
            sg_free(g->a, any);
            if (g->st != SIGMA_OK) return g->st;
        } else if (is_word(c)) {
            last = g->rules[rule].len;
            const char *s = g->p;
            while (g->p < g->end && is_word(*g->p)) g->p++;
            uint32_t id;
            if (find_rule(g, s, (size_t)(g->p - s), s, &id) != SIGMA_OK) return g->st;
            if (emit(g, rule, E_MAKE(E_RULE, id)) != SIGMA_OK) return g->st;
        } else if (c == '(') {
            last = g->rules[rule].len;
            if (++g->depth > SG_GRAMMAR_MAX_NEST) return gp_fail_at(g, at, "parentheses nested too deeply");
            g->p++;
            skip_space(g, 1);
            uint32_t sub;
            if (new_rule(g, NULL, 0, at, &sub) != SIGMA_OK) return g->st;
            if (parse_alternates(g, sub, 1) != SIGMA_OK) return g->st;
            if (g->p >= g->end || *g->p != ')') return gp_fail_at(g, g->p, "expected ')'");
            g->p++;
            g->depth--;
            if (emit(g, rule, E_MAKE(E_RULE, sub)) != SIGMA_OK) return g->st;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last == (size_t)-1) return gp_fail_at(g, at, "repetition without an item");
            g->p++;
            long min = 0, max = -1;
            if (c == '+') min = 1;
            else if (c == '?') max = 1;
            else if (c == '{') {
                skip_space(g, 0);
                if (read_count(g, &min) != SIGMA_OK) return g->st;
                skip_space(g, 0);
                max = min;
                if (g->p < g->end && *g->p == ',') {
                    g->p++;
                    skip_space(g, 0);
                    max = -1;
                    if (g->p < g->end && *g->p >= '0' && *g->p <= '9') {
                        if (read_count(g, &max) != SIGMA_OK) return g->st;
                        skip_space(g, 0);
                        if (max < min) return gp_fail_at(g, at, "repetition {m,n} with n < m");
                    }
                }
                if (g->p >= g->end || *g->p != '}') return gp_fail_at(g, g->p, "expected '}'");
                g->p++;
            }
            if (repeat(g, rule, last, min, max, at) != SIGMA_OK) return g->st;
            last = (size_t)-1;
        } else {
            break;
        }
        skip_space(g, nested);
    }
    return g->st;
}

static int parse_alternates(gp *g, uint32_t rule, int nested) {
    if (parse_sequence(g, rule, nested) != SIGMA_OK) return g->st;
    while (g->p < g->end && *g->p == '|') {
        g->p++;
        skip_space(g, 1);
        if (emit(g, rule, E_MAKE(E_ALT, 0)) != SIGMA_OK) return g->st;
        if (parse_sequence(g, rule, nested) != SIGMA_OK) return g->st;
    }
    return g->st;
}

static int parse_rule(gp *g) {
    const char *at = g->p;
    while (g->p < g->end && is_word(*g->p)) g->p++;
    if (g->p == at) return gp_fail_at(g, at, "expected a rule name");
    uint32_t id;
    if (find_rule(g, at, (size_t)(g->p - at), at, &id) != SIGMA_OK) return g->st;
    if (g->rules[id].def) return gp_fail_at(g, at, "rule defined twice");
    g->rules[id].def = at;
    skip_space(g, 0);
    if (g->end - g->p < 3 || memcmp(g->p, "::=", 3) != 0) return gp_fail_at(g, g->p, "expected '::='");
    g->p += 3;
    skip_space(g, 1);
    if (parse_alternates(g, id, 0) != SIGMA_OK) return g->st;
    skip_space(g, 0);
    if (g->p < g->end && *g->p != '\n' && *g->p != '\r')
        return gp_fail_at(g, g->p, "expected the end of the line");
    return SIGMA_OK;
}

/* ---- analysis: nullable rules, left recursion and empty loops ---- */

static int analyse(gp *g, const char **bad) {
    size_t nr = g->n_rules;
    uint8_t *nullable = sg_calloc(g->a, nr, 1);
    uint8_t *color = sg_calloc(g->a, nr, 1);
    uint32_t *stk = sg_malloc(g->a, nr * 2 * sizeof *stk + 8);
    if (!nullable || !color || !stk) {
        sg_free(g->a, nullable);
        sg_free(g->a, color);
        sg_free(g->a, stk);
        return gp_nomem(g);
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t r = 0; r < nr; r++) {
            if (nullable[r]) continue;
            const prule *pr = &g->rules[r];
            int ok = 1; /* current alternative nullable so far */
            for (size_t i = 0; i <= pr->len; i++) {
                uint32_t e = i < pr->len ? pr->body[i] : E_MAKE(E_ALT, 0);
                if (E_TYPE(e) == E_ALT) {
                    if (ok) {
                        nullable[r] = 1;
                        changed = 1;
                        break;
                    }
                    ok = 1;
                } else if (E_TYPE(e) == E_BYTES) {
                    ok = 0;
                } else if (E_TYPE(e) == E_RULE && !nullable[E_ARG(e)]) {
                    ok = 0;
                }
            }
        }
    }
    /* DFS over "r may call x before consuming a byte"; a back edge is a
     * left recursion (or a loop that repeats without consuming) */
    int st = SIGMA_OK;
    for (size_t s0 = 0; s0 < nr && st == SIGMA_OK; s0++) {
        if (color[s0]) continue;
        size_t sp = 0;
        stk[sp++] = (uint32_t)s0;
        stk[sp++] = 0; /* next body index to look at */
        color[s0] = 1;
        while (sp && st == SIGMA_OK) {
            uint32_t r = stk[sp - 2], i = stk[sp - 1];
            const prule *pr = &g->rules[r];
            /* find the next reference at the left edge of an alternative
             * (after only nullable elements); bit 31 of i: not at the edge */
            int found = 0;
            uint32_t x = 0, left = !(i >> 31);
            i &= 0x7FFFFFFFu;
            while (i < pr->len) {
                uint32_t e = pr->body[i++];
                if (E_TYPE(e) == E_ALT) {
                    left = 1;
                } else if (E_TYPE(e) == E_BYTES) {
                    left = 0;
                } else if (E_TYPE(e) == E_RULE) {
                    int at_left = (int)left;
                    if (!nullable[E_ARG(e)]) left = 0;
                    if (at_left) {
                        x = E_ARG(e);
                        found = 1;
                        break;
                    }
                }
            }
            i |= left ? 0 : 0x80000000u;
            stk[sp - 1] = i;
            if (!found) {
                color[r] = 2;
                sp -= 2;
            } else if (color[x] == 1) {
                *bad = g->rules[x].def ? g->rules[x].def : g->rules[r].def;
                st = gp_fail_at(g, *bad, "left recursion or a loop that can repeat without consuming input");
            } else if (color[x] == 0) {
                color[x] = 1;
                stk[sp++] = x;
                stk[sp++] = 0;
            }
        }
    }
    sg_free(g->a, nullable);
    sg_free(g->a, color);
    sg_free(g->a, stk);
    return st;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

static void gp_free(gp *g) {
    for (size_t i = 0; i < g->n_rules; i++) sg_free(g->a, g->rules[i].body);
    sg_free(g->a, g->rules);
    sg_free(g->a, g->sets);
}

void sg_grammar_free(sg_grammar *g) {
    if (!g) return;
    sg_alloc a = g->alloc;
    sg_free(&a, g->elems);
    sg_free(&a, g->alts);
    sg_free(&a, g->rule_alt);
    sg_free(&a, g->sets);
    sg_free(&a, g);
}

uint64_t sg_grammar_hash(const sg_grammar *g) { return g->hash; }

int sg_grammar_compile(const sg_alloc *a, const char *text, size_t len, const char *root,
                       sg_grammar **out, sg_err *err) {
    *out = NULL;
    if (!root) root = "root";
    if (len > SG_GRAMMAR_MAX_TEXT)
        return sg_error(err, SIGMA_E_INVALID_ARG, "grammar: text of %zu bytes is too long", len);
    gp g;
    memset(&g, 0, sizeof g);
    g.a = a;
    g.text = g.p = text;
    g.end = text + len;
    g.err = err;
    while (g.st == SIGMA_OK) {
        skip_space(&g, 1);
        if (g.p >= g.end) break;
        parse_rule(&g);
    }
    uint32_t root_id = 0;
    if (g.st == SIGMA_OK) {
        size_t rl = strlen(root);
        int found = 0;
        for (size_t i = 0; i < g.n_rules; i++)
            if (g.rules[i].name && g.rules[i].name_len == rl && !memcmp(g.rules[i].name, root, rl)) {
                root_id = (uint32_t)i;
                found = g.rules[i].def != NULL;
            }
        if (!found) g.st = sg_error(err, SIGMA_E_INVALID_ARG, "grammar: no rule '%s'", root);
    }
    for (size_t i = 0; i < g.n_rules && g.st == SIGMA_OK; i++)
        if (!g.rules[i].def) {
            char msg[96];
            int nl = g.rules[i].name_len > 60 ? 60 : (int)g.rules[i].name_len;
            snprintf(msg, sizeof msg, "undefined rule '%.*s'", nl, g.rules[i].name);
            gp_fail_at(&g, g.rules[i].ref, msg);
        }
    const char *bad = NULL;
    if (g.st == SIGMA_OK) analyse(&g, &bad);
    if (g.st != SIGMA_OK) {
        gp_free(&g);
        return g.st;
    }
    /* flatten */
    sg_grammar *G = sg_calloc(a, 1, sizeof *G);
    size_t n_alts = 0, n_el = 0;
    for (size_t i = 0; i < g.n_rules; i++) {
        n_alts++;
        for (size_t j = 0; j < g.rules[i].len; j++) n_alts += E_TYPE(g.rules[i].body[j]) == E_ALT;
        n_el += g.rules[i].len + 1;
    }
    if (G) {
        G->alloc = *a;
        G->elems = sg_malloc(a, n_el * sizeof *G->elems);
        G->alts = sg_malloc(a, n_alts * sizeof *G->alts);
        G->rule_alt = sg_malloc(a, (g.n_rules + 1) * sizeof *G->rule_alt);
        G->sets = sg_malloc(a, (g.n_sets ? g.n_sets : 1) * sizeof *G->sets);
    }
    if (!G || !G->elems || !G->alts || !G->rule_alt || !G->sets) {
        sg_grammar_free(G);
        gp_free(&g);
        return sg_error(err, SIGMA_E_NOMEM, "grammar: out of memory");
    }
    if (g.n_sets) memcpy(G->sets, g.sets, g.n_sets * sizeof *G->sets);
    G->n_sets = (uint32_t)g.n_sets;
    uint32_t e = 0, k = 0;
    for (size_t i = 0; i < g.n_rules; i++) {
        G->rule_alt[i] = k;
        G->alts[k++] = e;
        for (size_t j = 0; j < g.rules[i].len; j++) {
            uint32_t x = g.rules[i].body[j];
            if (E_TYPE(x) == E_ALT) {
                G->elems[e++] = E_MAKE(E_END, 0);
                G->alts[k++] = e;
            } else {
                G->elems[e++] = x;
            }
        }
        G->elems[e++] = E_MAKE(E_END, 0);
    }
    G->rule_alt[g.n_rules] = k;
    G->n_elems = e;
    G->n_rules = (uint32_t)g.n_rules;
    G->root = root_id;
    G->hash = fnv1a(fnv1a(0xCBF29CE484222325ull, text, len), root, strlen(root) + 1);
    gp_free(&g);
    *out = G;
    return SIGMA_OK;
}

/* ---- matcher --------------------------------------------------------------------- */

void sg_gset_free(const sg_alloc *a, sg_gset *s) {
    sg_free(a, s->data);
    sg_free(a, s->off);
    memset(s, 0, sizeof *s);
}

static void gset_clear(sg_gset *s) {
    s->len = 0;
    s->n = 0;
    if (s->off) s->off[0] = 0;
}

static int gset_prepare(const sg_alloc *a, sg_gset *s) {
    if (!s->off) {
        if (sg_reserve_n(a, (void **)&s->off, &s->ncap, 0, 16, sizeof *s->off) != SIGMA_OK)
            return SIGMA_E_NOMEM;
    }
    gset_clear(s);
    return SIGMA_OK;
}

/* Append a stack (n positions). With `hslot` (a table of 4 *
 * SG_GRAMMAR_MAX_STACKS slots for this set, cleared when the set was),
 * not if an equal one is there. 1 added, 0 duplicate, <0 NOMEM. */
static int gset_add(const sg_alloc *a, sg_gset *s, const uint32_t *st, size_t n, uint32_t *hslot,
                    uint64_t *probes) {
    size_t slot = 0;
    if (hslot) {
        uint64_t h = 0xcbf29ce484222325ull ^ n;
        for (size_t i = 0; i < n; i++) h = (h ^ st[i]) * 0x100000001b3ull;
        const size_t mask = 4 * SG_GRAMMAR_MAX_STACKS - 1;
        for (slot = (size_t)(h ^ (h >> 29)) & mask; hslot[slot]; slot = (slot + 1) & mask) {
            ++*probes;
            size_t i = hslot[slot] - 1, l = s->off[i + 1] - s->off[i];
            if (l == n && (!n || !memcmp(s->data + s->off[i], st, n * sizeof *st))) return 0;
        }
    }
    if (sg_reserve_n(a, (void **)&s->data, &s->cap, s->len, s->len + n + 1, sizeof *s->data) !=
            SIGMA_OK ||
        sg_reserve_n(a, (void **)&s->off, &s->ncap, s->n + 1, s->n + 2, sizeof *s->off) != SIGMA_OK)
        return SIGMA_E_NOMEM;
    if (n) memcpy(s->data + s->len, st, n * sizeof *st);
    s->len += n;
    s->off[++s->n] = (uint32_t)s->len;
    if (hslot) hslot[slot] = (uint32_t)s->n; /* index + 1 */
    return 1;
}

/* Expand everything in m->work into `out` (tops become BYTES or empty). */
static int expand(sg_gmatch *m, sg_gset *out) {
    const sg_grammar *g = m->g;
    sg_gset *w = &m->work;
    uint32_t *b = m->scratch;
    size_t steps = 0;
    /* `out` was just cleared: so is its hash table */
    memset(m->hslot, 0, sizeof m->hslot);
    while (w->n) {
        if (++steps > SG_GRAMMAR_MAX_STEPS) { /* bounded work */
            gset_clear(w);
            break;
        }
        m->n_steps++;
        size_t o = w->off[w->n - 1], n = w->len - o;
        uint32_t *st = w->data + o;
        if (n == 0 || E_TYPE(g->elems[st[n - 1]]) == E_BYTES) {
            if (out->n < SG_GRAMMAR_MAX_STACKS) {
                int r = gset_add(&m->alloc, out, st, n, m->hslot, &m->n_probes);
                if (r < 0) return SIGMA_E_NOMEM;
            }
            w->len = o;
            w->n--;
            continue;
        }
        uint32_t pos = st[n - 1], e = g->elems[pos];
        if (E_TYPE(e) == E_END) { /* an empty alternative ended */
            w->len--;
            w->off[w->n] = (uint32_t)w->len;
            continue;
        }
        /* RULE: pop, push the return position unless it is the end, then
         * one copy per alternative */
        size_t bn = n - 1;
        memcpy(b, st, bn * sizeof *b);
        if (E_TYPE(g->elems[pos + 1]) != E_END) b[bn++] = pos + 1;
        w->len = o;
        w->n--;
        if (bn + 1 > SG_GRAMMAR_MAX_DEPTH) continue; /* too deep: dropped */
        uint32_t r = E_ARG(e);
        for (uint32_t k = g->rule_alt[r]; k < g->rule_alt[r + 1]; k++) {
            b[bn] = g->alts[k];
            if (w->n >= 16 * SG_GRAMMAR_MAX_STACKS) break;
            if (gset_add(&m->alloc, w, b, bn + 1, NULL, NULL) < 0) return SIGMA_E_NOMEM;
        }
    }
    return SIGMA_OK;
}

/* out = the stacks of `in` after consuming byte c. */
static int step(sg_gmatch *m, const sg_gset *in, uint8_t c, sg_gset *out) {
    const sg_grammar *g = m->g;
    if (gset_prepare(&m->alloc, out) != SIGMA_OK || gset_prepare(&m->alloc, &m->work) != SIGMA_OK)
        return SIGMA_E_NOMEM;
    for (size_t i = 0; i < in->n; i++) {
        size_t o = in->off[i], n = in->off[i + 1] - o;
        if (!n) continue;
        const uint32_t *st = in->data + o;
        uint32_t pos = st[n - 1];
        const uint32_t *set = g->sets[E_ARG(g->elems[pos])];
        if (!(set[c >> 5] >> (c & 31) & 1)) continue;
        memcpy(m->scratch, st, (n - 1) * sizeof *st);
        size_t bn = n - 1;
        if (E_TYPE(g->elems[pos + 1]) != E_END) m->scratch[bn++] = pos + 1;
        if (gset_add(&m->alloc, &m->work, m->scratch, bn, NULL, NULL) < 0) return SIGMA_E_NOMEM;
    }
    return expand(m, out);
}

static void compute_first(sg_gmatch *m) {
    memset(m->first, 0, sizeof m->first);
    const sg_grammar *g = m->g;
    for (size_t i = 0; i < m->cur.n; i++) {
        size_t o = m->cur.off[i], n = m->cur.off[i + 1] - o;
        if (!n) continue;
        const uint32_t *set = g->sets[E_ARG(g->elems[m->cur.data[o + n - 1]])];
        for (int k = 0; k < 8; k++)
            for (int bit = 0; bit < 4; bit++) m->first[k * 4 + bit] |= (uint8_t)(set[k] >> (8 * bit));
    }
}

int sg_gmatch_initial(const sg_grammar *g, const sg_alloc *a, sg_gset *set) {
    sg_gmatch m;
    int st = sg_gmatch_init(&m, g, a);
    if (st != SIGMA_OK) return st;
    *set = m.cur;
    memset(&m.cur, 0, sizeof m.cur);
    sg_gmatch_free(&m);
    return SIGMA_OK;
}

int sg_gmatch_reset(sg_gmatch *m) {
    const sg_grammar *g = m->g;
    if (gset_prepare(&m->alloc, &m->cur) != SIGMA_OK || gset_prepare(&m->alloc, &m->work) != SIGMA_OK)
        return SIGMA_E_NOMEM;
    uint32_t r = g->root;
    for (uint32_t k = g->rule_alt[r]; k < g->rule_alt[r + 1]; k++)
        if (gset_add(&m->alloc, &m->work, &g->alts[k], 1, NULL, NULL) < 0) return SIGMA_E_NOMEM;
    int st = expand(m, &m->cur);
    compute_first(m);
    return st;
}

int sg_gmatch_init(sg_gmatch *m, const sg_grammar *g, const sg_alloc *a) {
    memset(m, 0, sizeof *m);
    m->g = g;
    m->alloc = *a;
    m->scratch = sg_malloc(a, (SG_GRAMMAR_MAX_DEPTH + 2) * sizeof *m->scratch);
    if (!m->scratch) return SIGMA_E_NOMEM;
    int st = sg_gmatch_reset(m);
    if (st != SIGMA_OK) sg_gmatch_free(m);
    return st;
}

void sg_gmatch_free(sg_gmatch *m) {
    sg_gset_free(&m->alloc, &m->cur);
    sg_gset_free(&m->alloc, &m->t[0]);
    sg_gset_free(&m->alloc, &m->t[1]);
    sg_gset_free(&m->alloc, &m->work);
    sg_free(&m->alloc, m->scratch);
    m->scratch = NULL;
}

int sg_gmatch_can_end(const sg_gmatch *m) {
    for (size_t i = 0; i < m->cur.n; i++)
        if (m->cur.off[i + 1] == m->cur.off[i]) return 1;
    return 0;
}

/* Run bytes from cur; the result is in m->t[*which]. 1 ok, 0 rejected, <0. */
static int run(sg_gmatch *m, const uint8_t *bytes, size_t n, int *which) {
    const sg_gset *in = &m->cur;
    if (!n) return 0;
    if (!(m->first[bytes[0] >> 3] >> (bytes[0] & 7) & 1)) return 0;
    for (size_t i = 0; i < n; i++) {
        sg_gset *out = &m->t[i & 1];
        int st = step(m, in, bytes[i], out);
        if (st != SIGMA_OK) return st;
        if (!out->n) return 0;
        in = out;
        *which = (int)(i & 1);
    }
    return 1;
}

int sg_gmatch_check(sg_gmatch *m, const uint8_t *bytes, size_t n) {
    int w = 0;
    int r = run(m, bytes, n, &w);
    return r > 0;
}

int sg_gmatch_advance(sg_gmatch *m, const uint8_t *bytes, size_t n) {
    int w = 0;
    int r = run(m, bytes, n, &w);
    if (r < 0) return r;
    if (r == 0) return SIGMA_E_INVALID_ARG;
    sg_gset t = m->cur;
    m->cur = m->t[w];
    m->t[w] = t;
    compute_first(m);
    return SIGMA_OK;
}

size_t sg_gmatch_state_size(const sg_gmatch *m) { return 4 + 4 * m->cur.n + 4 * m->cur.len; }

void sg_gmatch_save(const sg_gmatch *m, uint8_t *out) {
    sg_put_le32(out, (uint32_t)m->cur.n);
    out += 4;
    for (size_t i = 0; i < m->cur.n; i++) {
        size_t o = m->cur.off[i], n = m->cur.off[i + 1] - o;
        sg_put_le32(out, (uint32_t)n);
        out += 4;
        for (size_t j = 0; j < n; j++, out += 4) sg_put_le32(out, m->cur.data[o + j]);
    }
}

int sg_gmatch_decode(const sg_grammar *g, const sg_alloc *a, const uint8_t *d, size_t size,
                     sg_gset *set, sg_err *err) {
    memset(set, 0, sizeof *set);
    if (size < 4) return sg_error(err, SIGMA_E_FORMAT, "grammar state: truncated");
    uint32_t ns = sg_get_le32(d);
    if (ns > SG_GRAMMAR_MAX_STACKS)
        return sg_error(err, SIGMA_E_FORMAT, "grammar state: %u stacks", ns);
    size_t p = 4;
    if (gset_prepare(a, set) != SIGMA_OK) return sg_error(err, SIGMA_E_NOMEM, "grammar state: out of memory");
    uint32_t buf[SG_GRAMMAR_MAX_DEPTH];
    for (uint32_t i = 0; i < ns; i++) {
        if (size - p < 4) goto bad;
        uint32_t n = sg_get_le32(d + p);
        p += 4;
        if (n > SG_GRAMMAR_MAX_DEPTH || (size - p) / 4 < n) goto bad;
        for (uint32_t j = 0; j < n; j++, p += 4) {
            uint32_t pos = sg_get_le32(d + p);
            if (pos >= g->n_elems || E_TYPE(g->elems[pos]) == E_END) goto bad;
            if (j + 1 == n && E_TYPE(g->elems[pos]) != E_BYTES) goto bad;
            buf[j] = pos;
        }
        if (gset_add(a, set, buf, n, NULL, NULL) < 0) {
            sg_gset_free(a, set);
            return sg_error(err, SIGMA_E_NOMEM, "grammar state: out of memory");
        }
    }
    if (p != size) goto bad;
    return SIGMA_OK;
bad:
    sg_gset_free(a, set);
    return sg_error(err, SIGMA_E_FORMAT, "grammar state: malformed or of another grammar");
}

void sg_gmatch_take(sg_gmatch *m, sg_gset *set) {
    sg_gset_free(&m->alloc, &m->cur);
    m->cur = *set;
    memset(set, 0, sizeof *set);
    compute_first(m);
}
