/* GBNF grammars and JSON Schema (lib/text/grammar.c, json_schema.c) and the
 * grammar constraint in the sampler. The model tests use SIGMA_TEST_MODEL
 * (SmolLM2) with random logits (no forward pass) and are skipped without
 * it. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/gen.h"
#include "text/grammar.h"

static sg_alloc g_alloc;

static sg_grammar *compile_n(const char *text, size_t len, int *st, sg_err *err) {
    sg_grammar *g = NULL;
    sg_err_clear(err);
    *st = sg_grammar_compile(&g_alloc, text, len, NULL, &g, err);
    return g;
}

static sg_grammar *compile(const char *text, int *st, sg_err *err) {
    sg_grammar *g = NULL;
    sg_err_clear(err);
    *st = sg_grammar_compile(&g_alloc, text, strlen(text), NULL, &g, err);
    return g;
}

/* Our own grammars using every construct of llama.cpp's grammars/ folder
 * (arithmetic, c, chess, english, japanese, json, json_arr, list). */
static const char *const good[] = {
    /* arithmetic-like: repetition of groups, classes with '-' and '/' */
    "root ::= (sum \"=\" sp val \"\\n\")+\n"
    "sum  ::= val ([-+*/] val)*\n"
    "val  ::= name | int | \"(\" sp sum \")\" sp\n"
    "name ::= [a-z] [a-z0-9_]* sp\n"
    "int  ::= [0-9]+ sp\n"
    "sp   ::= [ \\t\\n]*\n",
    /* c-like: blank lines, alternatives over several lines, groups without
     * a space before them, '?' on a reference, [^\n]* */
    "root ::= (fn)*\n\n"
    "fn ::= ty id \"(\" arg? \")\" \"{\" stmt* \"}\"\n"
    "ty  ::= \"int\" sp | \"char\" sp\n"
    "id ::= [a-zA-Z_] [a-zA-Z_0-9]*\n"
    "arg ::= ty id\n"
    "stmt ::=\n"
    "    ( ty id sp \"=\" sp expr \";\" ) |\n"
    "    ( \"return\" sp expr \";\" ) |\n"
    "    ( \"//\" [^\\n]* \"\\n\" ) |\n"
    "    ( \"/*\" ( [^*] | (\"*\" [^/]) )* \"*/\" )\n"
    "expr ::= term((\"+\" | \"-\") term)*\n"
    "term ::= id | [0-9]+\n"
    "sp ::= ([ \\t\\n]+)\n",
    /* chess-like: comments on their own lines, "?" after literals */
    "# moves in a PGN-ish notation\n"
    "root ::= \"1. \" mv \" \" mv \"\\n\" ([1-9] [0-9]? \". \" mv \" \" mv \"\\n\")+\n"
    "# a move\n"
    "mv ::= (pawn | piece | \"O-O\" \"-O\"?) [+#]?\n"
    "piece ::= [NBKQR] [a-h]? [1-8]? \"x\"? [a-h] [1-8]   # trailing comment\n"
    "pawn ::= ([a-h] \"x\")? [a-h] [1-8] (\"=\" [NBKQR])?\n",
    /* english-like: punctuation class with \\ \] and a range ,-. */
    "root ::= w+ ([ \\t\\n] w+)*\n"
    "w ::= [a-zA-Z] | [0-9] | [!\"#$%&'()*+,-./:;<=>?@[\\\\\\]^_`{|}~]\n",
    /* japanese-like: UTF-8 ranges */
    "root ::= c+ ([ \\t\\n] c+)*\n"
    "c ::= [ぁ-ゟ] | [ァ-ヿ] | [、-〾] | [一-鿿]\n",
    /* json-like: multi-line groups, escapes, {4}, {0,15}, {0,20}, empty alternative */
    "root   ::= obj\n"
    "value  ::= obj | arr | str | num | (\"true\" | \"false\" | \"null\") ws\n"
    "obj ::=\n"
    "  \"{\" ws (\n"
    "            str \":\" ws value\n"
    "    (\",\" ws str \":\" ws value)*\n"
    "  )? \"}\" ws\n"
    "arr  ::=\n"
    "  \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "str ::=\n"
    "  \"\\\"\" (\n"
    "    [^\"\\\\\\x7F\\x00-\\x1F] |\n"
    "    \"\\\\\" ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4}) # escapes\n"
    "  )* \"\\\"\" ws\n"
    "num ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws\n"
    "# optional space\n"
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n",
    /* json_arr-like: literal with an escaped newline inside */
    "root ::= \"[\\n\" ws ( v (\",\\n\" ws v)* )? \"]\"\n"
    "v ::= [0-9]+ | \"\\\"\" [a-z]* \"\\\"\"\n"
    "ws ::= | \" \"\n",
    /* list-like: negated class with \x, \u escapes */
    "root ::= item+\n\n"
    "# no line breaks\n"
    "item ::= \"- \" [^\\r\\n\\x0b\\x0c\\x85\\u2028\\u2029]+ \"\\n\"\n",
    /* the rest of the dialect: ., {m,}, {m}, \U, CRLF line ends, '-' in names */
    "root ::= any-char{2,} x{3} \"\\U0001F600\"\r\nany-char ::= .\r\nx ::= \"x\"\r\n",
};

START_TEST(test_accepts) {
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int st;
        sg_err err;
        sg_grammar *g = compile(good[i], &st, &err);
        ck_assert_msg(st == SIGMA_OK, "grammar %zu: %s", i, err.msg);
        sg_grammar_free(g);
    }
}
END_TEST

static const struct {
    const char *text, *where;
} bad[] = {
    {"root ::= \"a\" b\n", "line 1 column 14"},                 /* undefined rule */
    {"root ::= root \"a\" | \"b\"\n", "line 1 column 1"},       /* left recursion */
    {"root ::= (\"a\"?)*\n", "line 1 column 16"},               /* empty loop */
    {"root ::= a\na ::= b \"x\"\nb ::= \"\" | a\n", "line 2"}, /* indirect */
    {"root ::= [a-\n", "line 1 column 10"},                     /* unterminated class */
    {"# c\nroot ::= \"x\"\n  foo ::= \"y\" ) \n", "line 3 column 15"},
    {"root ::= \"\\q\"\n", "line 1 column 11"},                 /* unknown escape */
    {"root ::= x{3,2}\nx ::= \"a\"\n", "line 1 column 11"},
    {"root ::= \"abc\n", "line 1 column 10"},                   /* unterminated string */
    {"root ::= (\"a\" | \"b\"\n", "line 2 column 1"},           /* missing ) */
    {"root ::= * \"a\"\n", "line 1 column 10"},
    {"root \"a\"\n", "line 1 column 6"},                        /* no ::= */
    {"root ::= \"a\"\nroot ::= \"b\"\n", "line 2 column 1"},    /* defined twice */
    {"root ::= \"a\"{1001}\n", "line 1 column 14"},
    {"root ::= \"\\xZZ\"\n", "line 1 column 11"},
    {"root ::= [z-a]\n", "line 1 column 14"},
    {"root ::= \"\\uD800\"\n", "line 1 column 11"},
    {"root ::= \"\xff\"\n", "line 1 column 11"},
    {"::= \"a\"\n", "line 1 column 1"},
    /* fuzz-grammar: repeating an empty literal in an empty rule read
     * through a NULL body (UBSan) */
    {"root ::= (\"\"+)\n", "line 1 column 13"},
};

START_TEST(test_rejects) {
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int st;
        sg_err err;
        sg_grammar *g = compile(bad[i].text, &st, &err);
        ck_assert_msg(st == SIGMA_E_INVALID_ARG && !g, "bad grammar %zu accepted", i);
        ck_assert_msg(strstr(err.msg, bad[i].where), "bad grammar %zu: '%s', want '%s'", i, err.msg,
                      bad[i].where);
    }
    int st;
    sg_err err;
    ck_assert_ptr_null(compile("foo ::= \"a\"\n", &st, &err)); /* no root */
    ck_assert_int_eq(st, SIGMA_E_INVALID_ARG);
    /* bounded nesting and size */
    char deep[400];
    strcpy(deep, "root ::= ");
    for (int i = 0; i < 80; i++) strcat(deep, "(");
    strcat(deep, "\"a\"");
    for (int i = 0; i < 80; i++) strcat(deep, ")");
    strcat(deep, "\n");
    ck_assert_ptr_null(compile(deep, &st, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "nested too deeply"));
    char many[400];
    strcpy(many, "root ::= ");
    for (int i = 0; i < 20; i++) strcat(many, "\"a\"{0,1000} ");
    strcat(many, "\n");
    ck_assert_ptr_null(compile(many, &st, &err));
    ck_assert_int_eq(st, SIGMA_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "too many rules"));
}
END_TEST

/* 1: a full sentence, 0: a proper prefix, -1: rejected */
static int match(sg_gmatch *m, const char *s) {
    ck_assert_int_eq(sg_gmatch_reset(m), SIGMA_OK);
    if (!sg_gmatch_check(m, (const uint8_t *)s, strlen(s))) return -1;
    ck_assert_int_eq(sg_gmatch_advance(m, (const uint8_t *)s, strlen(s)), SIGMA_OK);
    return sg_gmatch_can_end(m);
}

START_TEST(test_match) {
    int st;
    sg_err err;
    sg_grammar *g = compile(good[5], &st, &err); /* json-like */
    ck_assert_int_eq(st, SIGMA_OK);
    sg_gmatch m;
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "{\"a\": [1, 2.5, \"x\\u00e9\"], \"b\": {}}"), 1);
    ck_assert_int_eq(match(&m, "{\"caf\xc3\xa9\": null}"), 1);
    ck_assert_int_eq(match(&m, "{\"a\":"), 0);
    ck_assert_int_eq(match(&m, "{\"caf\xc3"), 0); /* inside a UTF-8 character */
    ck_assert_int_eq(match(&m, "{\"a\" 1}"), -1);
    ck_assert_int_eq(match(&m, "[1]"), -1);
    ck_assert_int_eq(match(&m, "{\"\x7f\"}"), -1);
    sg_gmatch_free(&m);
    sg_grammar_free(g);

    g = compile(good[4], &st, &err); /* japanese-like */
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "ひらがな カタカナ"), 1);
    ck_assert_int_eq(match(&m, "abc"), -1);
    sg_gmatch_free(&m);
    sg_grammar_free(g);

    g = compile(good[7], &st, &err); /* list-like */
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "- one\n- two\n"), 1);
    ck_assert_int_eq(match(&m, "- one\xe2\x80\xa8"), -1); /* U+2028 excluded */
    ck_assert_int_eq(match(&m, "- \xc2\x85"), -1);         /* U+0085 excluded */
    ck_assert_int_eq(match(&m, "- \xc2\x86\n"), 1);
    sg_gmatch_free(&m);
    sg_grammar_free(g);

    g = compile(good[8], &st, &err); /* ., {m,}, {m}, \U */
    ck_assert_int_eq(st, SIGMA_OK);
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "\xf0\x9f\x98\x80" "abxxx" "\xf0\x9f\x98\x80"), 1);
    ck_assert_int_eq(match(&m, "a"), 0);
    sg_gmatch_free(&m);
    sg_grammar_free(g);

    /* non-tail recursion is bounded: a^n b^n fails past the depth limit
     * instead of growing */
    g = compile("root ::= \"a\" root \"b\" | \"\"\n", &st, &err);
    ck_assert_int_eq(st, SIGMA_OK);
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "aaabbb"), 1);
    char many[2 * SG_GRAMMAR_MAX_DEPTH + 8];
    memset(many, 'a', sizeof many - 1);
    many[sizeof many - 1] = 0;
    ck_assert_int_eq(match(&m, many), -1);
    sg_gmatch_free(&m);
    sg_grammar_free(g);
}
END_TEST

static sg_grammar *schema_grammar(const char *schema, int *st, sg_err *err) {
    char *text = NULL;
    size_t n = 0;
    sg_err_clear(err);
    *st = sg_json_schema_to_gbnf(&g_alloc, schema, strlen(schema), &text, &n, err);
    if (*st != SIGMA_OK) return NULL;
    ck_assert_uint_eq(strlen(text), n);
    sg_grammar *g = NULL;
    *st = sg_grammar_compile(&g_alloc, text, n, NULL, &g, err);
    ck_assert_msg(*st == SIGMA_OK, "%s\n%s", err->msg, text);
    sg_free(&g_alloc, text);
    return g;
}

START_TEST(test_schema) {
    int st;
    sg_err err;
    sg_grammar *g = schema_grammar(
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":5},"
        "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\","
        "\"b c\"]},\"maxItems\":2}},\"required\":[\"name\"]}",
        &st, &err);
    ck_assert_int_eq(st, SIGMA_OK);
    sg_gmatch m;
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "{\"name\":\"bob\",\"age\":3}"), 1);
    ck_assert_int_eq(match(&m, "{\"name\": \"bob\", \"tags\": [\"a\",\"b c\"]}"), 1);
    ck_assert_int_eq(match(&m, "{\"age\":3}"), -1);
    ck_assert_int_eq(match(&m, "{\"name\":\"bob\",\"tags\":[\"a\",\"a\",\"a\"]}"), -1);
    ck_assert_int_eq(match(&m, "{\"name\":\"bobbie\"}"), -1);
    ck_assert_int_eq(match(&m, "{\"name\":\"bob\",\"x\":1}"), -1);
    sg_gmatch_free(&m);
    sg_grammar_free(g);

    g = schema_grammar(
        "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"number\"},"
        "\"next\":{\"anyOf\":[{\"$ref\":\"#/$defs/node\"},{\"type\":\"null\"}]}},"
        "\"required\":[\"v\",\"next\"]}},\"$ref\":\"#/$defs/node\"}",
        &st, &err);
    ck_assert_int_eq(st, SIGMA_OK);
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "{\"v\":1.5,\"next\":{\"v\":-2e3,\"next\":null}}"), 1);
    ck_assert_int_eq(match(&m, "{\"v\":1,\"next\":{\"v\":2}}"), -1);
    ck_assert_int_eq(match(&m, "{\"v\":01,\"next\":null}"), -1);
    sg_gmatch_free(&m);
    sg_grammar_free(g);

    g = schema_grammar("{\"type\":[\"string\",\"null\"],\"minLength\":2}", &st, &err);
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "null"), 1);
    ck_assert_int_eq(match(&m, "\"ab\""), 1);
    ck_assert_int_eq(match(&m, "\"a\""), -1);
    sg_gmatch_free(&m);
    sg_grammar_free(g);

    g = schema_grammar("{\"const\":{\"k\":[1,true,\"q\\\"\"]}}", &st, &err);
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "{\"k\":[1,true,\"q\\\"\"]}"), 1);
    sg_gmatch_free(&m);
    sg_grammar_free(g);

    g = schema_grammar("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}}", &st,
                       &err);
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    ck_assert_int_eq(match(&m, "{}"), 1);
    ck_assert_int_eq(match(&m, "{\"a\":true,\"b\":false}"), 1);
    ck_assert_int_eq(match(&m, "{\"a\":1}"), -1);
    sg_gmatch_free(&m);
    sg_grammar_free(g);

    ck_assert_ptr_null(schema_grammar("{\"type\":\"string\",\"pattern\":\"a+\"}", &st, &err));
    ck_assert_int_eq(st, SIGMA_E_UNSUPPORTED);
    ck_assert_ptr_null(schema_grammar("{\"type\":\"object\",", &st, &err));
    ck_assert_int_eq(st, SIGMA_E_INVALID_ARG);
    ck_assert_ptr_null(schema_grammar("{\"type\":\"strin\"}", &st, &err));
    ck_assert_int_eq(st, SIGMA_E_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "unknown type 'strin'") != NULL, "%s", err.msg);
    ck_assert_ptr_null(schema_grammar("{\"$ref\":\"#/$defs/nope\"}", &st, &err));
    ck_assert_int_eq(st, SIGMA_E_UNSUPPORTED);
    char deep[1000] = "";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    ck_assert_ptr_null(schema_grammar(deep, &st, &err));
    ck_assert_int_eq(st, SIGMA_E_INVALID_ARG);
}
END_TEST

/* fuzz-grammar's 30-minute run found a grammar of nested repetitions
 * (tests/fuzz/corpus/grammar/timeout-nested-plus.bin) whose states hold
 * many stacks that share their top: each byte spent seconds removing
 * duplicates by comparing every new stack with all the others. Duplicates
 * are now found by hash, and a byte's expansion stops after 16,384 steps
 * (SG_GRAMMAR_MAX_STEPS, was 262,144): the work per byte is bounded
 * whatever the grammar. */
START_TEST(test_bounded_work) {
    const char *root = getenv("SIGMA_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/grammar/timeout-nested-plus.bin", root ? root : ".");
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    static char text[8192];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    ck_assert_uint_gt(len, 100);
    int st;
    sg_err err;
    sg_grammar *g = compile_n(text, len, &st, &err);
    ck_assert_msg(st == SIGMA_OK, "%s", err.msg);
    sg_gmatch m;
    ck_assert_int_eq(sg_gmatch_init(&m, g, &g_alloc), SIGMA_OK);
    /* feed the text to itself in chunks of 1..4 bytes, as the harness does */
    size_t fed = 0, i = 0;
    while (i < len) {
        size_t n = 1 + ((uint8_t)text[i] & 3);
        if (n > len - i) n = len - i;
        int ok = sg_gmatch_check(&m, (const uint8_t *)text + i, n);
        fed += n;
        if (!ok || sg_gmatch_advance(&m, (const uint8_t *)text + i, n) != SIGMA_OK) break;
        fed += n;
        i += n;
    }
    ck_assert_uint_gt(fed, 0);
    ck_assert_msg(m.n_steps <= (uint64_t)16384 * (fed + 1), "%llu expansion steps for %zu bytes",
                  (unsigned long long)m.n_steps, fed);
    /* a duplicate check compares about one stack, not all of them */
    ck_assert_msg(m.n_probes <= m.n_steps, "%llu stacks compared in %llu steps",
                  (unsigned long long)m.n_probes, (unsigned long long)m.n_steps);
    sg_gmatch_free(&m);
    sg_grammar_free(g);
}
END_TEST

/* ---- the sampler on SmolLM2's vocabulary (random logits) ---- */

static sigma_model *g_model;
static uint32_t g_vocab;

static void rand_logits(float *l, uint32_t n, uint64_t *x) {
    for (uint32_t i = 0; i < n; i++) {
        *x = *x * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((*x >> 40) % 1000) / 100.0f;
    }
}

static sigma_sampler *open_grammar_sampler(const char *grammar, float temp, int top_k, uint64_t seed) {
    sigma_sampler_params p;
    sigma_sampler_params_init(&p, sizeof p);
    p.temperature = temp;
    p.top_k = top_k;
    p.seed = seed;
    p.grammar = grammar;
    sigma_sampler *s = NULL;
    int st = sigma_sampler_open(g_model, &p, &s);
    char msg[256];
    sigma_model_last_error(g_model, msg, sizeof msg);
    ck_assert_msg(st == SIGMA_OK, "%s", msg);
    return s;
}

/* Sample until EOG (at most max tokens); the text in out. */
static size_t run_sampler(sigma_sampler *s, uint64_t seed, char *out, size_t cap, int max) {
    float *l = malloc(g_vocab * sizeof *l);
    size_t len = 0;
    for (int i = 0; i < max; i++) {
        rand_logits(l, g_vocab, &seed);
        sigma_token t;
        int st = sigma_sampler_sample(s, l, &t);
        if (st != SIGMA_OK) {
            char msg[256];
            sigma_model_last_error(g_model, msg, sizeof msg);
            ck_abort_msg("sample: %d %s after '%.*s'", st, msg, (int)len, out);
        }
        int eog = 0;
        sigma_token_is_eog(g_model, t, &eog);
        if (eog) break;
        size_t n = 0;
        ck_assert_int_eq(sigma_token_to_piece(g_model, t, out + len, cap - len - 1, &n, 0), SIGMA_OK);
        len += n;
    }
    out[len] = 0;
    free(l);
    return len;
}

START_TEST(test_forces_one_string) {
    if (!g_model) return;
    const char *want = "Hello, wörld! {\"x\": [1, 2]} 日本";
    const char *grammar = "root ::= \"Hello, wörld! {\\\"x\\\": [1, 2]} 日本\"\n";
    for (int k = 0; k < 6; k++) {
        float temp = k < 3 ? 1.0f : 0.0f;
        int top_k = k % 3 == 0 ? 40 : k % 3 == 1 ? 0 : 1;
        sigma_sampler *s = open_grammar_sampler(grammar, temp, top_k, 7 + (uint64_t)k);
        char out[512];
        run_sampler(s, 100 + (uint64_t)k, out, sizeof out, 200);
        ck_assert_str_eq(out, want);
        int done = 0;
        ck_assert_int_eq(sigma_sampler_grammar_done(s, &done), SIGMA_OK);
        ck_assert_int_eq(done, 1);
        /* reset goes back to the start */
        ck_assert_int_eq(sigma_sampler_reset(s, 3), SIGMA_OK);
        ck_assert_int_eq(sigma_sampler_grammar_done(s, &done), SIGMA_OK);
        ck_assert_int_eq(done, 0);
        run_sampler(s, 5, out, sizeof out, 200);
        ck_assert_str_eq(out, want);
        sigma_sampler_close(s);
    }
}
END_TEST

START_TEST(test_bad_grammar_message) {
    if (!g_model) return;
    sigma_sampler_params p;
    sigma_sampler_params_init(&p, sizeof p);
    p.grammar = "root ::= \"a\"\nfoo ::= (\"b\"\n";
    sigma_sampler *s = NULL;
    ck_assert_int_eq(sigma_sampler_open(g_model, &p, &s), SIGMA_E_INVALID_ARG);
    ck_assert_ptr_null(s);
    char msg[256];
    sigma_model_last_error(g_model, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "line 3 column 1"), "%s", msg);
}
END_TEST

/* Top-k off: the early-stopping walk (top-p / min-p) gives the same
 * distribution as checking every token, at every state of a few grammars,
 * for flat and peaked logits; on peaked logits it checks far fewer tokens
 * than the vocabulary. */
static const char *const topk0_grammars[] = {
    "root ::= \"{\\\"name\\\": \\\"\" [^\"\\\\]* \"\\\", \\\"n\\\": \" [0-9]+ \"}\"\n",
    "root ::= [a-z ]+ \".\"\n",
    "root ::= (\"yes\" | \"no\" | \"maybe\") \" because \" [a-zA-Z ,]+\n",
};

/* Logits shaped like a language model's: most near 0, a few hundred tokens
 * up to 30 nats above them. */
static void peaked_logits(float *l, uint32_t n, uint64_t *x) {
    for (uint32_t i = 0; i < n; i++) {
        *x = *x * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(*x >> 11) * 0x1.0p-53;
        l[i] = (float)(30.0 * pow(u, 8.0));
    }
}

START_TEST(test_topk0_walk_exact) {
    if (!g_model) return;
    static const float params[][3] = {/* temperature, top_p, min_p */
                                      {1.0f, 0.95f, 0.0f}, {0.7f, 0.9f, 0.05f}, {1.3f, 1.0f, 0.1f},
                                      {1.0f, 1.0f, 0.0f},  {0.5f, 0.5f, 0.0f},  {2.0f, 0.99f, 0.01f}};
    float *l = malloc(g_vocab * sizeof *l);
    double *fast = malloc(g_vocab * sizeof *fast), *full = malloc(g_vocab * sizeof *full);
    uint64_t x = 41;
    int compared = 0;
    uint64_t peaked_checks = 0, peaked_calls = 0;
    for (size_t gi = 0; gi < sizeof topk0_grammars / sizeof topk0_grammars[0]; gi++)
        for (size_t pi = 0; pi < sizeof params / sizeof params[0]; pi++) {
            sigma_sampler_params p;
            sigma_sampler_params_init(&p, sizeof p);
            p.temperature = params[pi][0];
            p.top_p = params[pi][1];
            p.min_p = params[pi][2];
            p.top_k = 0;
            p.seed = 5 + pi;
            p.grammar = topk0_grammars[gi];
            sigma_sampler *s = NULL;
            ck_assert_int_eq(sigma_sampler_open(g_model, &p, &s), SIGMA_OK);
            for (int step = 0; step < 12; step++) {
                for (int peaked = 0; peaked < 2; peaked++) {
                    if (peaked) peaked_logits(l, g_vocab, &x);
                    else rand_logits(l, g_vocab, &x);
                    sg_sampler_set_exhaustive(s, 1);
                    ck_assert_int_eq(sg_sampler_probs(s, l, full), SIGMA_OK);
                    sg_sampler_set_exhaustive(s, 0);
                    uint64_t c0 = sg_sampler_grammar_checks(s);
                    ck_assert_int_eq(sg_sampler_probs(s, l, fast), SIGMA_OK);
                    if (peaked && p.top_p < 1.0f) {
                        peaked_checks += sg_sampler_grammar_checks(s) - c0;
                        peaked_calls++;
                    }
                    for (uint32_t i = 0; i < g_vocab; i++)
                        ck_assert_msg(fabs(fast[i] - full[i]) <= 1e-9,
                                      "grammar %zu params %zu step %d token %u: %.12g vs %.12g", gi, pi,
                                      step, i, fast[i], full[i]);
                    compared++;
                }
                /* move on to the next state */
                sigma_token t;
                ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
                int done = 0;
                sigma_sampler_grammar_done(s, &done);
                int eog = 0;
                sigma_token_is_eog(g_model, t, &eog);
                if (eog) ck_assert_int_eq(sigma_sampler_reset(s, 9 + (uint64_t)step), SIGMA_OK);
            }
            sigma_sampler_close(s);
        }
    ck_assert_int_gt(compared, 300);
    /* early stopping pays on peaked logits: a small share of the vocabulary */
    ck_assert_uint_gt(peaked_calls, 0);
    ck_assert_msg(peaked_checks / peaked_calls < g_vocab / 10, "%llu checks per call of %u tokens",
                  (unsigned long long)(peaked_checks / peaked_calls), g_vocab);
    free(l);
    free(fast);
    free(full);
}
END_TEST

/* Pure temperature with top-k off draws first and checks only the drawn
 * token: the frequencies of many draws from one state match the exact
 * distribution over the allowed tokens (chi-square), with a few checks per
 * draw. */
START_TEST(test_topk0_draw_distribution) {
    if (!g_model) return;
    sigma_sampler_params p;
    sigma_sampler_params_init(&p, sizeof p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.grammar = "root ::= [a-z]+ \".\"\n";
    sigma_sampler *s = NULL;
    ck_assert_int_eq(sigma_sampler_open(g_model, &p, &s), SIGMA_OK);
    float *l = malloc(g_vocab * sizeof *l);
    double *pr = malloc(g_vocab * sizeof *pr);
    uint32_t *cnt = calloc(g_vocab, sizeof *cnt);
    uint64_t x = 3;
    peaked_logits(l, g_vocab, &x);
    sg_sampler_set_exhaustive(s, 1);
    ck_assert_int_eq(sg_sampler_probs(s, l, pr), SIGMA_OK);
    sg_sampler_set_exhaustive(s, 0);
    const int N = 8000;
    uint64_t c0 = sg_sampler_grammar_checks(s);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(sigma_sampler_reset(s, 1000 + (uint64_t)i), SIGMA_OK);
        sigma_token t;
        ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
        ck_assert_msg(pr[t] > 0.0, "token %d drawn but not allowed", t);
        cnt[t]++;
    }
    uint64_t checks = sg_sampler_grammar_checks(s) - c0;
    ck_assert_msg(checks <= 33ull * (uint64_t)N, "%llu checks", (unsigned long long)checks);
    ck_assert_msg(checks / (uint64_t)N < 20, "%llu checks per draw", (unsigned long long)(checks / (uint64_t)N));
    /* chi-square over the tokens expected >= 10 times, the rest pooled */
    double chi = 0.0, pool_e = 0.0, pool_o = 0.0;
    int bins = 0;
    for (uint32_t i = 0; i < g_vocab; i++) {
        double e = pr[i] * N;
        if (e >= 10.0) {
            chi += (cnt[i] - e) * (cnt[i] - e) / e;
            bins++;
        } else {
            pool_e += e;
            pool_o += cnt[i];
        }
    }
    if (pool_e >= 10.0) {
        chi += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        bins++;
    }
    ck_assert_int_ge(bins, 5);
    double df = bins - 1;
    ck_assert_msg(chi < df + 6.0 * sqrt(2.0 * df), "chi-square %.1f over %d bins", chi, bins);
    free(l);
    free(pr);
    free(cnt);
    sigma_sampler_close(s);
}
END_TEST

static int wr(void *ctx, const void *d, size_t n) { return sg_buf_append(ctx, d, n); }

/* Save mid-way, continue; restore, continue again: the same text. An old
 * state (without the grammar part) puts the grammar at its start. */
START_TEST(test_state) {
    if (!g_model) return;
    const char *grammar = "root ::= \"[\" [0-9]{1,3} (\", \" [0-9]{1,3}){2,5} \"]\"\n";
    sigma_sampler *s = open_grammar_sampler(grammar, 1.0f, 0, 11);
    char out[512], a[512], b[512];
    float *l = malloc(g_vocab * sizeof *l);
    uint64_t x = 9;
    size_t len = 0;
    for (int i = 0; i < 3; i++) {
        rand_logits(l, g_vocab, &x);
        sigma_token t;
        ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
        size_t n;
        sigma_token_to_piece(g_model, t, out + len, sizeof out - len, &n, 0);
        len += n;
    }
    out[len] = 0;
    sg_buf buf = {.alloc = &g_model->alloc};
    ck_assert_int_eq(sg_sampler_save_state(s, wr, &buf), SIGMA_OK);
    ck_assert_uint_eq(buf.len, sg_sampler_state_size(s));
    run_sampler(s, 77, a, sizeof a, 200);
    sg_sampler_restore r;
    sg_err err;
    ck_assert_int_eq(sg_sampler_restore_prepare(s, buf.data, buf.len, &r, &err), SIGMA_OK);
    sg_sampler_restore_commit(s, &r);
    run_sampler(s, 77, b, sizeof b, 200);
    ck_assert_str_eq(a, b);
    /* corrupt grammar state: rejected, sampler unchanged */
    buf.data[buf.len - 1] ^= 0x55;
    ck_assert_int_ne(sg_sampler_restore_prepare(s, buf.data, buf.len, &r, &err), SIGMA_OK);
    buf.data[buf.len - 1] ^= 0x55;
    /* another grammar: mismatch */
    sigma_sampler *s2 = open_grammar_sampler("root ::= \"x\"\n", 1.0f, 0, 11);
    ck_assert_int_eq(sg_sampler_restore_prepare(s2, buf.data, buf.len, &r, &err), SIGMA_E_MISMATCH);
    /* no grammar: mismatch */
    sigma_sampler *s3 = NULL;
    ck_assert_int_eq(sigma_sampler_open(g_model, NULL, &s3), SIGMA_OK);
    ck_assert_int_eq(sg_sampler_restore_prepare(s3, buf.data, buf.len, &r, &err), SIGMA_E_MISMATCH);
    /* an old state (header + history only) loads; the grammar restarts */
    size_t old = SG_SAMPLER_STATE_HEADER + 4 * (size_t)sg_get_le32(buf.data + 84);
    ck_assert_int_eq(sg_sampler_restore_prepare(s, buf.data, old, &r, &err), SIGMA_OK);
    sg_sampler_restore_commit(s, &r);
    run_sampler(s, 78, b, sizeof b, 200);
    ck_assert_int_eq(b[0], '[');
    ck_assert_int_eq(b[strlen(b) - 1], ']');
    sg_buf_free(&buf);
    free(l);
    sigma_sampler_close(s);
    sigma_sampler_close(s2);
    sigma_sampler_close(s3);
}
END_TEST

int main(void) {
    sg_alloc_init(&g_alloc, NULL);
    const char *path = getenv("SIGMA_TEST_MODEL");
    if (path && *path && sigma_model_open(path, NULL, &g_model) == SIGMA_OK) {
        sigma_model_info info = {.struct_size = sizeof info};
        sigma_model_get_info(g_model, &info);
        g_vocab = info.n_vocab;
    }
    Suite *s = suite_create("grammar");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_accepts);
    tcase_add_test(tc, test_rejects);
    tcase_add_test(tc, test_match);
    tcase_add_test(tc, test_schema);
    tcase_add_test(tc, test_forces_one_string);
    tcase_add_test(tc, test_bad_grammar_message);
    tcase_add_test(tc, test_state);
    tcase_add_test(tc, test_bounded_work);
    tcase_add_test(tc, test_topk0_walk_exact);
    tcase_add_test(tc, test_topk0_draw_distribution);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    sigma_model_close(g_model);
    return failed ? 1 : 0;
}
