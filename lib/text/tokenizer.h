/* Private to lib/text: the tokenizer object built by sg_tokenizer_load
 * (tokenizer.c) and read by the decoder (decoder.c). Others use the
 * accessors in text.h. */
#ifndef SG_TEXT_TOKENIZER_H
#define SG_TEXT_TOKENIZER_H

#include "text.h"

typedef enum sg_tok_kind {
    SG_TOK_BPE = 1, /* "gpt2": byte-level BPE with merges */
    SG_TOK_SPM = 2  /* "llama": SentencePiece BPE with scores, byte fallback */
} sg_tok_kind;

typedef enum sg_pre_kind {
    SG_PRE_GPT2 = 0,   /* GPT-2 regex */
    SG_PRE_LLAMA3 = 1, /* "llama-bpe" (Llama-3 regex) */
    SG_PRE_SMOLLM = 2, /* Digits(individual) + GPT-2 regex */
    SG_PRE_QWEN2 = 3   /* "qwen2": the Llama-3 regex with \p{N} one digit at a time */
} sg_pre_kind;

typedef struct sg_merge_ent {
    uint64_t key;  /* (left id << 32) | right id; 0 with rank UINT32_MAX = empty */
    uint32_t rank; /* UINT32_MAX: empty slot */
    uint32_t id;   /* the merged token */
} sg_merge_ent;

#define SG_MAX_EOG 16

struct sg_tokenizer {
    sg_tok_kind kind;
    sg_pre_kind pre;
    uint32_t n_vocab;
    sg_str *text;          /* per token: its vocabulary string (in the GGUF image) */
    uint8_t *type;         /* per token: SG_TOKTYPE_* */
    float *scores;         /* SPM: per token score */
    /* decoded bytes of each token (byte-level alphabet undone, U+2581 ->
     * space, <0xNN> -> byte); control tokens hold their text */
    char *pieces;
    uint32_t *piece_off;   /* n_vocab + 1 offsets into pieces */
    /* token text -> id: open addressing, slots hold id + 1 (0 = empty) */
    uint32_t *vhash;
    uint32_t vmask;
    /* merge pair -> (rank, merged id) */
    sg_merge_ent *mhash;
    uint32_t mmask;
    uint32_t n_merges;
    int32_t byte_id[256];  /* token of each byte (byte-level char / <0xNN>), -1 none */
    sigma_token bos, eos, eot, eom, unk, pad;
    int add_bos, add_eos, add_space_prefix, ignore_merges;
    sigma_token eog[SG_MAX_EOG];
    uint32_t n_eog;
    /* tokens matched in input text as a whole, longest first */
    uint32_t *special;
    uint32_t n_special;
    uint8_t special_first[32]; /* bitmap of their first bytes */
};

/* Length of the decoded piece of a token and a pointer to it. */
static inline const char *sg_tok_piece(const struct sg_tokenizer *t, uint32_t id, size_t *len) {
    *len = t->piece_off[id + 1] - t->piece_off[id];
    return t->pieces + t->piece_off[id];
}

#endif
