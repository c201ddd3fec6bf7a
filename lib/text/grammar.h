/* Grammar-constrained output: GBNF compiled to a byte-level pushdown
 * matcher (lib/text/grammar.c) and JSON Schema -> GBNF (json_schema.c). */
#ifndef SG_TEXT_GRAMMAR_H
#define SG_TEXT_GRAMMAR_H

#include "../base/base.h"

/* Limits on untrusted grammars. */
#define SG_GRAMMAR_MAX_TEXT (1u << 22)     /* bytes of GBNF text */
#define SG_GRAMMAR_MAX_RULES 16384         /* rules, generated ones included */
#define SG_GRAMMAR_MAX_ELEMS (1u << 20)    /* compiled elements */
#define SG_GRAMMAR_MAX_NEST 64             /* nested parentheses */
#define SG_GRAMMAR_MAX_REPEAT 1000         /* m and n in {m,n} */
/* Limits on one matcher state: stacks followed at once and frames per
 * stack. Paths beyond them are not followed (their bytes are rejected). */
#define SG_GRAMMAR_MAX_STACKS 256
#define SG_GRAMMAR_MAX_DEPTH 256
/* Largest serialized matcher state (sg_gmatch_save). */
#define SG_GRAMMAR_STATE_MAX \
    (16u + 4u * (uint64_t)SG_GRAMMAR_MAX_STACKS * (SG_GRAMMAR_MAX_DEPTH + 1u))

typedef struct sg_grammar sg_grammar; /* compiled, immutable */

/* Compile GBNF `text` (len bytes) with start rule `root` (NULL: "root").
 * SIGMA_E_INVALID_ARG with "line L column C: ..." in err for a syntax
 * error, an undefined rule, left recursion or an empty loop; SIGMA_E_NOMEM. */
int sg_grammar_compile(const sg_alloc *a, const char *text, size_t len, const char *root,
                       sg_grammar **out, sg_err *err);
void sg_grammar_free(sg_grammar *g);
/* A hash of the source text and root, to recognise the grammar in a file. */
uint64_t sg_grammar_hash(const sg_grammar *g);

/* A set of parse stacks (positions in the compiled grammar). */
typedef struct sg_gset {
    uint32_t *data;  /* stacks back to back, bottom first */
    size_t len, cap;
    uint32_t *off;   /* n + 1 offsets into data */
    size_t n, ncap;
} sg_gset;

/* A matcher: the current state plus scratch space for checks. */
typedef struct sg_gmatch {
    const sg_grammar *g;
    sg_alloc alloc;
    sg_gset cur, t[2], work;
    uint32_t *scratch; /* SG_GRAMMAR_MAX_DEPTH + 2 */
    uint8_t first[32]; /* bytes the current state can take next */
    /* the stacks of the set being built, by hash (4 * SG_GRAMMAR_MAX_STACKS
     * slots of index + 1, 0 = empty): a duplicate is found in O(depth) */
    uint32_t hslot[4 * SG_GRAMMAR_MAX_STACKS];
    /* work so far, for tests: expansion steps, and stacks compared while
     * looking for duplicates */
    uint64_t n_steps, n_probes;
} sg_gmatch;

/* Expansion steps one byte may cost at most (then the rest is dropped, as
 * with the stack and depth limits): bounds the time of a check whatever
 * the grammar. */
#define SG_GRAMMAR_MAX_STEPS (64u * SG_GRAMMAR_MAX_STACKS)

int sg_gmatch_init(sg_gmatch *m, const sg_grammar *g, const sg_alloc *a);
void sg_gmatch_free(sg_gmatch *m);
/* Back to the start of the grammar. SIGMA_E_NOMEM possible. */
int sg_gmatch_reset(sg_gmatch *m);
/* 1 if the text so far is a complete sentence of the grammar. */
int sg_gmatch_can_end(const sg_gmatch *m);
/* 1 if `bytes` can follow the current state (state unchanged). */
int sg_gmatch_check(sg_gmatch *m, const uint8_t *bytes, size_t n);
/* Consume `bytes`: SIGMA_E_INVALID_ARG if they cannot follow (state
 * unchanged), SIGMA_E_NOMEM. */
int sg_gmatch_advance(sg_gmatch *m, const uint8_t *bytes, size_t n);

/* Serialized state: u32 n_stacks, then per stack u32 depth + positions. */
size_t sg_gmatch_state_size(const sg_gmatch *m);
void sg_gmatch_save(const sg_gmatch *m, uint8_t *out);
/* Validate a serialized state for grammar g and decode it into *set (on
 * the allocator; free with sg_gset_free). */
int sg_gmatch_decode(const sg_grammar *g, const sg_alloc *a, const uint8_t *d, size_t size,
                     sg_gset *set, sg_err *err);
/* The initial state of g into *set. */
int sg_gmatch_initial(const sg_grammar *g, const sg_alloc *a, sg_gset *set);
/* Replace m's state by *set (taken over; *set is emptied). */
void sg_gmatch_take(sg_gmatch *m, sg_gset *set);
void sg_gset_free(const sg_alloc *a, sg_gset *s);

/* JSON Schema (schema_len bytes of JSON) -> GBNF text, NUL-terminated, on
 * the allocator (*out, *out_len). SIGMA_E_INVALID_ARG for malformed JSON or
 * an invalid schema, SIGMA_E_UNSUPPORTED for keywords not supported, with
 * a message in err. */
int sg_json_schema_to_gbnf(const sg_alloc *a, const char *schema, size_t schema_len, char **out,
                           size_t *out_len, sg_err *err);

#endif
