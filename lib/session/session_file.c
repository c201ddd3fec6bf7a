/* Session files: save and restore a session's tokens, last logits and KV
 * cache. The format is documented in docs/session-format.md. Everything
 * read is validated before the session changes; a failed load leaves the
 * session exactly as it was. Saving to a path is crash-safe (temporary
 * file, fsync, rename, fsync of the directory). */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "session.h"

#define SESS_MAGIC "SIGSESS"          /* 8 bytes with the NUL */
#define SESS_VERSION 2u                /* written when a sampler section is present */
#define SESS_VERSION_MIN 1u            /* version 1: no sampler section, else identical */
#define SESS_FLAG_DEFLATE 1u
#define SESS_NAME_LEN 32
#define SESS_SLACK (1u << 20)         /* allowance for strategy metadata */

/* ---- the header: field offsets, one encoder, one decoder -------------------------- */

/* Byte offsets of the header fields (docs/session-format.md, "Header"). */
enum {
    SH_MAGIC = 0,          /* 8: "SIGSESS\0" */
    SH_VERSION = 8,        /* u32: 1, or 2 with a sampler section */
    SH_FLAGS = 12,         /* u32: SESS_FLAG_DEFLATE */
    SH_FINGERPRINT = 16,   /* 2 x u64: the model's fingerprint */
    SH_KV_NAME = 32,       /* SESS_NAME_LEN: KV strategy name, NUL-padded */
    SH_N_CTX = 64,         /* u32: n_ctx of the saving session (informational) */
    SH_N_TOKENS = 68,      /* u32 */
    SH_N_VOCAB = 72,       /* u32 */
    SH_HAS_LOGITS = 76,    /* u32: 1 if the last position's logits are stored */
    SH_RAW_SIZE = 80,      /* u64: payload size uncompressed */
    SH_STORED_SIZE = 88,   /* u64: payload size stored (= file size - header) */
    SH_PAYLOAD_CRC = 96,   /* u32: CRC-32 of the stored payload */
    SH_HEADER_CRC = 100,   /* u32: CRC-32 of the header bytes before this field */
    SESS_HEADER_SIZE = 104
};
_Static_assert(SH_FINGERPRINT + 16 == SH_KV_NAME && SH_KV_NAME + SESS_NAME_LEN == SH_N_CTX &&
                   SH_RAW_SIZE + 16 == SH_PAYLOAD_CRC && SH_HEADER_CRC + 4 == SESS_HEADER_SIZE,
               "session header fields are contiguous (docs/session-format.md)");

/* The header's fields, decoded. */
typedef struct sess_header {
    uint32_t version, flags;
    uint64_t fingerprint[2];
    char kv_name[SESS_NAME_LEN + 1]; /* always NUL-terminated here */
    uint32_t n_ctx, n_tokens, n_vocab, has_logits;
    uint64_t raw_size, stored_size;
    uint32_t payload_crc;
} sess_header;

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

/* Struct -> bytes, header checksum included. kv_name must be shorter than
 * SESS_NAME_LEN. */
static void header_encode(const sess_header *h, uint8_t out[SESS_HEADER_SIZE]) {
    memset(out, 0, SESS_HEADER_SIZE);
    memcpy(out + SH_MAGIC, SESS_MAGIC, 8);
    sg_put_le32(out + SH_VERSION, h->version);
    sg_put_le32(out + SH_FLAGS, h->flags);
    sg_put_le64(out + SH_FINGERPRINT, h->fingerprint[0]);
    sg_put_le64(out + SH_FINGERPRINT + 8, h->fingerprint[1]);
    memcpy(out + SH_KV_NAME, h->kv_name, strlen(h->kv_name));
    sg_put_le32(out + SH_N_CTX, h->n_ctx);
    sg_put_le32(out + SH_N_TOKENS, h->n_tokens);
    sg_put_le32(out + SH_N_VOCAB, h->n_vocab);
    sg_put_le32(out + SH_HAS_LOGITS, h->has_logits);
    sg_put_le64(out + SH_RAW_SIZE, h->raw_size);
    sg_put_le64(out + SH_STORED_SIZE, h->stored_size);
    sg_put_le32(out + SH_PAYLOAD_CRC, h->payload_crc);
    sg_put_le32(out + SH_HEADER_CRC, crc32_of(out, SH_HEADER_CRC));
}

/* Bytes -> struct: checks that `size` bytes hold a header (length, magic,
 * header checksum) and reads every field. A name that fills its field
 * without a NUL is kept cut (header_check_format() refuses it). */
static int header_read(const uint8_t *p, size_t size, sess_header *h, sg_err *err) {
    if (size < SESS_HEADER_SIZE)
        return sg_error(err, SIGMA_E_FORMAT,
                        "load: %zu bytes is too short for a session file (header is %d)", size,
                        SESS_HEADER_SIZE);
    if (memcmp(p + SH_MAGIC, SESS_MAGIC, 8) != 0)
        return sg_error(err, SIGMA_E_FORMAT, "load: not a libsigma session file (bad magic)");
    if (sg_get_le32(p + SH_HEADER_CRC) != crc32_of(p, SH_HEADER_CRC))
        return sg_error(err, SIGMA_E_FORMAT, "load: header checksum mismatch (corrupted file)");
    h->version = sg_get_le32(p + SH_VERSION);
    h->flags = sg_get_le32(p + SH_FLAGS);
    h->fingerprint[0] = sg_get_le64(p + SH_FINGERPRINT);
    h->fingerprint[1] = sg_get_le64(p + SH_FINGERPRINT + 8);
    memcpy(h->kv_name, p + SH_KV_NAME, SESS_NAME_LEN);
    h->kv_name[SESS_NAME_LEN] = '\0';
    h->n_ctx = sg_get_le32(p + SH_N_CTX);
    h->n_tokens = sg_get_le32(p + SH_N_TOKENS);
    h->n_vocab = sg_get_le32(p + SH_N_VOCAB);
    h->has_logits = sg_get_le32(p + SH_HAS_LOGITS);
    h->raw_size = sg_get_le64(p + SH_RAW_SIZE);
    h->stored_size = sg_get_le64(p + SH_STORED_SIZE);
    h->payload_crc = sg_get_le32(p + SH_PAYLOAD_CRC);
    return SIGMA_OK;
}

/* What the format alone rules out, whatever the session. */
static int header_check_format(const sess_header *h, sg_err *err) {
    if (h->version < SESS_VERSION_MIN || h->version > SESS_VERSION)
        return sg_error(err, SIGMA_E_UNSUPPORTED,
                        "load: session format version %u, this library reads versions %u to %u",
                        h->version, SESS_VERSION_MIN, SESS_VERSION);
    if (h->flags & ~SESS_FLAG_DEFLATE)
        return sg_error(err, SIGMA_E_FORMAT, "load: unknown flags 0x%x", h->flags);
    if (strlen(h->kv_name) >= SESS_NAME_LEN)
        return sg_error(err, SIGMA_E_FORMAT, "load: strategy name is not terminated");
    if (h->has_logits > 1)
        return sg_error(err, SIGMA_E_FORMAT, "load: bad logits flag %u", h->has_logits);
    if (h->has_logits && h->n_tokens == 0)
        return sg_error(err, SIGMA_E_FORMAT, "load: logits without tokens");
    return SIGMA_OK;
}

/* The one header decoder: bytes -> struct, validated as far as the format
 * goes (the session's own checks are in header_check_session()). */
static int header_decode(const uint8_t *p, size_t size, sess_header *h, sg_err *err) {
    int st = header_read(p, size, h, err);
    return st != SIGMA_OK ? st : header_check_format(h, err);
}

/* ---- zlib through the session's allocator ----------------------------------------- */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
    size_t n;
    if (!sg_mul_size(items, size, &n)) return Z_NULL;
    return sg_malloc((const sg_alloc *)opaque, n);
}
static void z_free(voidpf opaque, voidpf p) { sg_free((const sg_alloc *)opaque, p); }

static void z_setup(z_stream *z, const sg_alloc *a, const uint8_t *in, uint8_t *out) {
    memset(z, 0, sizeof *z);
    z->zalloc = z_alloc;
    z->zfree = z_free;
    z->opaque = (voidpf)a;
    z->next_in = (Bytef *)in;
    z->next_out = out;
}

/* One deflate() or inflate() call over what is left of buffers that may
 * exceed zlib's uInt, at most 1 GiB of each side; with `finish`, the call
 * that can take the last input byte flushes. Sets *moved when bytes moved. */
static int z_step(z_stream *z, int (*step)(z_streamp, int), int finish, size_t *in_left,
                  size_t *out_left, int *moved) {
    uInt ci = *in_left > (1u << 30) ? (1u << 30) : (uInt)*in_left;
    uInt co = *out_left > (1u << 30) ? (1u << 30) : (uInt)*out_left;
    z->avail_in = ci;
    z->avail_out = co;
    int zr = step(z, finish && ci == *in_left ? Z_FINISH : Z_NO_FLUSH);
    size_t used_in = ci - z->avail_in, used_out = co - z->avail_out;
    *in_left -= used_in;
    *out_left -= used_out;
    *moved = used_in != 0 || used_out != 0;
    return zr;
}

static int z_status(int zr) { return zr == Z_MEM_ERROR ? SIGMA_E_NOMEM : SIGMA_E_INTERNAL; }

/* Largest raw payload a session of this model could produce: tokens,
 * logits, and a KV blob no larger than a dense f32 cache of every token
 * (times two, for strategies that keep extra per-token state), plus slack. */
static uint64_t max_raw_size(const sigma_session *s, uint64_t n_tokens) {
    const sg_hparams *hp = &s->model->hp;
    uint64_t per_tok = (uint64_t)hp->n_layer * ((uint64_t)hp->n_k * hp->d_qk + (uint64_t)hp->n_v * hp->d_v) * 8u;
    uint64_t ntok = n_tokens > s->n_ctx ? n_tokens : s->n_ctx;
    return 16 + ntok * 4 + (uint64_t)hp->n_vocab * 4 + ntok * per_tok + SESS_SLACK +
           SG_SAMPLER_STATE_MAX;
}

/* ---- the attached sampler ------------------------------------------------------------ */

int sigma_session_set_sampler(sigma_session *s, sigma_sampler *sampler) {
    if (!s) return SIGMA_E_INVALID_ARG;
    if (sampler && sg_sampler_model(sampler) != s->model)
        return sg_error(&s->err, SIGMA_E_MISMATCH,
                        "set_sampler: the sampler was opened for another model");
    s->sampler = sampler;
    return SIGMA_OK;
}

/* ---- save -------------------------------------------------------------------------- */

/* The raw payload: tokens, the last logits, u64 length + the KV blob, u32
 * length + the sampler state. */
static int build_payload(sigma_session *s, int has_logits, sg_buf *raw) {
    const sg_hparams *hp = &s->model->hp;
    uint8_t tmp[8];
    for (size_t i = 0; i < s->n_tokens && !raw->failed; i++) {
        sg_put_le32(tmp, (uint32_t)s->tokens[i]);
        sg_buf_append(raw, tmp, 4);
    }
    if (has_logits) {
        const float *row = s->logits + (s->n_logit_rows - 1) * (size_t)hp->n_vocab;
        for (uint32_t i = 0; i < hp->n_vocab && !raw->failed; i++) {
            uint32_t u;
            memcpy(&u, &row[i], 4);
            sg_put_le32(tmp, u);
            sg_buf_append(raw, tmp, 4);
        }
    }
    size_t kv_len_at = raw->len;
    sg_buf_append(raw, tmp, 8); /* kv size, patched below */
    if (raw->failed) return sg_error(&s->err, SIGMA_E_NOMEM, "save: out of memory");
    int kst = s->kv.save(s->kv_state, sg_buf_write_cb, raw);
    if (kst != SIGMA_OK || raw->failed) {
        kst = raw->failed ? SIGMA_E_NOMEM : kst;
        return sg_error(&s->err, kst, "save: KV strategy '%s' failed: %s", s->kv.name,
                        sigma_strerror(kst));
    }
    sg_put_le64(raw->data + kv_len_at, (uint64_t)(raw->len - kv_len_at - 8));
    /* sampler section: u32 length + the attached sampler's state */
    size_t smp_len = s->sampler ? sg_sampler_state_size(s->sampler) : 0;
    sg_put_le32(tmp, (uint32_t)smp_len);
    int st = sg_buf_append(raw, tmp, 4);
    if (st == SIGMA_OK && s->sampler) {
        size_t at = raw->len;
        st = sg_sampler_save_state(s->sampler, sg_buf_write_cb, raw);
        if (st == SIGMA_OK && raw->failed) st = SIGMA_E_NOMEM;
        if (st == SIGMA_OK && raw->len - at != smp_len) st = SIGMA_E_INTERNAL;
    }
    if (st != SIGMA_OK) return sg_error(&s->err, st, "save: out of memory");
    return SIGMA_OK;
}

/* Deflate raw into out (room for `bound` bytes); *stored gets the size. */
static int deflate_payload(sigma_session *s, int level, const sg_buf *raw, uint8_t *out,
                           size_t bound, size_t *stored) {
    z_stream z;
    z_setup(&z, &s->alloc, raw->data, out);
    int zr = deflateInit(&z, level);
    if (zr != Z_OK)
        return sg_error(&s->err, z_status(zr), "save: deflateInit failed (%d)", zr);
    size_t in_left = raw->len, out_left = bound;
    for (;;) {
        int moved;
        zr = z_step(&z, deflate, 1, &in_left, &out_left, &moved);
        if (zr == Z_STREAM_END || (zr != Z_OK && zr != Z_BUF_ERROR)) break;
        if (!moved) break; /* no progress: bound too small */
    }
    *stored = bound - out_left;
    deflateEnd(&z);
    if (zr != Z_STREAM_END) return sg_error(&s->err, z_status(zr), "save: deflate failed (%d)", zr);
    return SIGMA_OK;
}

/* Build the whole file image into `out` (on the session's allocator; the
 * caller frees it with sg_buf_free). */
static int build_image(sigma_session *s, sg_buf *out) {
    if (!s->kv.save || !s->kv.load)
        return sg_error(&s->err, SIGMA_E_UNSUPPORTED,
                        "save: KV strategy '%s' cannot serialize itself", s->kv.name);
    if (strlen(s->kv.name) >= SESS_NAME_LEN)
        return sg_error(&s->err, SIGMA_E_UNSUPPORTED, "save: KV strategy name is too long");

    int has_logits = s->logits_valid ? 1 : 0;
    sg_buf raw = {&s->alloc, NULL, 0, 0, 0};
    int st = build_payload(s, has_logits, &raw);
    if (st != SIGMA_OK) {
        sg_buf_free(&raw);
        return st;
    }

    /* header + (compressed) payload */
    int level = s->p.save_compression;
    if (level < 0 || level > 9) level = 1;
    uint32_t flags = level > 0 ? SESS_FLAG_DEFLATE : 0;
    uLong bound = level > 0 ? compressBound((uLong)raw.len) : (uLong)raw.len;
    size_t need;
    st = sg_add_size(SESS_HEADER_SIZE, (size_t)bound, &need)
             ? sg_reserve(out->alloc, (void **)&out->data, &out->cap, 0, need)
             : SIGMA_E_NOMEM;
    if (st != SIGMA_OK) {
        sg_buf_free(&raw);
        return sg_error(&s->err, st, "save: out of memory");
    }
    uint8_t *payload = out->data + SESS_HEADER_SIZE;
    size_t stored = raw.len;
    if (flags & SESS_FLAG_DEFLATE)
        st = deflate_payload(s, level, &raw, payload, (size_t)bound, &stored);
    else
        memcpy(payload, raw.data, raw.len);
    if (st == SIGMA_OK) {
        sess_header h;
        memset(&h, 0, sizeof h);
        h.version = s->sampler ? SESS_VERSION : SESS_VERSION_MIN;
        h.flags = flags;
        h.fingerprint[0] = s->model->fingerprint[0];
        h.fingerprint[1] = s->model->fingerprint[1];
        memcpy(h.kv_name, s->kv.name, strlen(s->kv.name));
        h.n_ctx = s->n_ctx;
        h.n_tokens = (uint32_t)s->n_tokens;
        h.n_vocab = s->model->hp.n_vocab;
        h.has_logits = (uint32_t)has_logits;
        h.raw_size = (uint64_t)raw.len;
        h.stored_size = (uint64_t)stored;
        h.payload_crc = crc32_of(payload, stored);
        header_encode(&h, out->data);
        out->len = SESS_HEADER_SIZE + stored;
    }
    sg_buf_free(&raw);
    return st;
}

int sigma_session_save_memory(sigma_session *s, void *buf, size_t size, size_t *len) {
    if (!s || !len || (!buf && size)) return SIGMA_E_INVALID_ARG;
    sg_buf img = {&s->alloc, NULL, 0, 0, 0};
    int st = build_image(s, &img);
    if (st != SIGMA_OK) {
        sg_buf_free(&img);
        return st;
    }
    *len = img.len;
    if (img.len > size) {
        sg_buf_free(&img);
        return sg_error(&s->err, SIGMA_E_BUFFER_TOO_SMALL,
                        "save: the session needs %zu bytes, the buffer has %zu", img.len, size);
    }
    memcpy(buf, img.data, img.len);
    sg_buf_free(&img);
    return SIGMA_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int sigma_session_save(sigma_session *s, const char *path) {
    if (!s || !path || !*path) return SIGMA_E_INVALID_ARG;
    sg_buf img = {&s->alloc, NULL, 0, 0, 0};
    int st = build_image(s, &img);
    if (st != SIGMA_OK) {
        sg_buf_free(&img);
        return st;
    }

    /* temporary file next to the target: PATH.tmp-XXXXXX */
    size_t plen = strlen(path);
    char *tmp = sg_malloc(&s->alloc, plen + 16);
    if (!tmp) {
        sg_buf_free(&img);
        return sg_error(&s->err, SIGMA_E_NOMEM, "save: out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = sg_error(&s->err, SIGMA_E_IO, "save: cannot create a temporary file for '%s': %s",
                      path, strerror(errno));
        goto done;
    }
    if (write_all(fd, img.data, img.len) != 0 || fsync(fd) != 0) {
        st = sg_error(&s->err, SIGMA_E_IO, "save: cannot write '%s': %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto done;
    }
    if (close(fd) != 0) {
        st = sg_error(&s->err, SIGMA_E_IO, "save: cannot close '%s': %s", tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = sg_error(&s->err, SIGMA_E_IO, "save: cannot rename '%s' to '%s': %s", tmp, path,
                      strerror(errno));
        unlink(tmp);
        goto done;
    }
    /* make the rename durable: fsync the directory */
    {
        const char *slash = strrchr(path, '/');
        int dfd;
        if (!slash) {
            dfd = open(".", O_RDONLY | O_DIRECTORY);
        } else {
            size_t dl = slash == path ? 1 : (size_t)(slash - path);
            memcpy(tmp, path, dl);
            tmp[dl] = '\0';
            dfd = open(tmp, O_RDONLY | O_DIRECTORY);
        }
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    st = SIGMA_OK;
done:
    sg_free(&s->alloc, tmp);
    sg_buf_free(&img);
    return st;
}

/* ---- load -------------------------------------------------------------------------- */

/* The checks of a decoded header against this session and the file size. */
static int header_check_session(sigma_session *s, const sess_header *h, size_t size) {
    const sg_hparams *hp = &s->model->hp;
    if (h->fingerprint[0] != s->model->fingerprint[0] || h->fingerprint[1] != s->model->fingerprint[1])
        return sg_error(&s->err, SIGMA_E_MISMATCH,
                        "load: the session file was saved with a different model");
    if (strcmp(h->kv_name, s->kv.name) != 0)
        return sg_error(&s->err, SIGMA_E_MISMATCH,
                        "load: the file holds a '%s' KV cache, the session uses '%s'", h->kv_name,
                        s->kv.name);
    if (h->n_vocab != hp->n_vocab)
        return sg_error(&s->err, SIGMA_E_MISMATCH, "load: vocabulary of %u, the model has %u",
                        h->n_vocab, hp->n_vocab);
    if (!s->kv.unbounded && h->n_tokens > s->n_ctx)
        return sg_error(&s->err, SIGMA_E_CONTEXT_FULL,
                        "load: %u tokens do not fit in the session's n_ctx %u", h->n_tokens, s->n_ctx);
    if (h->stored_size != (uint64_t)(size - SESS_HEADER_SIZE))
        return sg_error(&s->err, SIGMA_E_FORMAT,
                        "load: payload is %zu bytes, the header says %llu (truncated file?)",
                        size - SESS_HEADER_SIZE, (unsigned long long)h->stored_size);
    return SIGMA_OK;
}

/* Bytes of the payload before the KV section's length: tokens and logits. */
static uint64_t payload_head_size(const sess_header *h) {
    return (uint64_t)h->n_tokens * 4 + (h->has_logits ? (uint64_t)h->n_vocab * 4 : 0);
}

/* The payload sizes the header announces, against the largest this
 * session's model could produce. */
static int payload_check_size(sigma_session *s, const sess_header *h) {
    uint64_t fixed = payload_head_size(h) + 8 + 4;
    if (h->raw_size < fixed || h->raw_size > max_raw_size(s, h->n_tokens))
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: payload size %llu out of range",
                        (unsigned long long)h->raw_size);
    if (!(h->flags & SESS_FLAG_DEFLATE) && h->raw_size != h->stored_size)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: stored and raw sizes differ");
    return SIGMA_OK;
}

/* Check the stored payload's CRC and inflate it when compressed: *raw is
 * the payload to parse; *owned (to free) is set when it was inflated. */
static int payload_open(sigma_session *s, const sess_header *h, const uint8_t *stored,
                        const uint8_t **raw, uint8_t **owned) {
    *owned = NULL;
    *raw = stored;
    if (h->payload_crc != crc32_of(stored, (size_t)h->stored_size))
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: payload checksum mismatch (corrupted file)");
    if (!s->kv.load)
        return sg_error(&s->err, SIGMA_E_UNSUPPORTED, "load: KV strategy '%s' cannot restore itself",
                        s->kv.name);
    if (!(h->flags & SESS_FLAG_DEFLATE)) return SIGMA_OK;
    uint8_t *out = sg_malloc(&s->alloc, (size_t)h->raw_size);
    if (!out) return sg_error(&s->err, SIGMA_E_NOMEM, "load: out of memory");
    z_stream z;
    z_setup(&z, &s->alloc, stored, out);
    int zr = inflateInit(&z);
    if (zr != Z_OK) {
        sg_free(&s->alloc, out);
        return sg_error(&s->err, z_status(zr), "load: inflateInit failed (%d)", zr);
    }
    size_t in_left = (size_t)h->stored_size, out_left = (size_t)h->raw_size;
    for (;;) {
        int moved;
        zr = z_step(&z, inflate, 0, &in_left, &out_left, &moved);
        if (zr != Z_OK) break;
        if (!moved) {
            zr = Z_DATA_ERROR;
            break;
        }
    }
    inflateEnd(&z);
    if (zr != Z_STREAM_END || out_left != 0 || in_left != 0) {
        sg_free(&s->alloc, out);
        if (zr == Z_MEM_ERROR) return sg_error(&s->err, SIGMA_E_NOMEM, "load: out of memory");
        return sg_error(&s->err, SIGMA_E_FORMAT,
                        "load: compressed payload is corrupted or does not have the announced size");
    }
    *owned = out;
    *raw = out;
    return SIGMA_OK;
}

/* The payload's sections (docs/session-format.md, "Payload"). */
typedef struct sess_payload {
    const uint8_t *tokens;  /* n_tokens u32 */
    const uint8_t *logits;  /* n_vocab f32, or NULL */
    const uint8_t *kv;      /* the strategy's blob */
    uint64_t kv_size;
    const uint8_t *sampler; /* the sampler state */
    uint64_t sampler_size;  /* 0: none */
} sess_payload;

/* Split the raw payload (raw_size bytes, at least payload_check_size()'s
 * minimum) into its sections and validate their sizes and the tokens. */
static int payload_parse(sigma_session *s, const sess_header *h, const uint8_t *r, sess_payload *pl) {
    uint64_t head = payload_head_size(h), fixed = head + 8 + 4;
    memset(pl, 0, sizeof *pl);
    pl->tokens = r;
    pl->logits = h->has_logits ? r + (size_t)h->n_tokens * 4 : NULL;
    pl->kv_size = sg_get_le64(r + (size_t)head);
    pl->kv = r + (size_t)head + 8;
    if (pl->kv_size > h->raw_size - fixed)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: KV section of %llu bytes does not fit the payload",
                        (unsigned long long)pl->kv_size);
    /* the sampler section fills the rest exactly */
    const uint8_t *smp = r + (size_t)(fixed - 4 + pl->kv_size);
    uint64_t left = h->raw_size - fixed - pl->kv_size;
    pl->sampler_size = sg_get_le32(smp);
    pl->sampler = smp + 4;
    if (pl->sampler_size != left)
        return sg_error(&s->err, SIGMA_E_FORMAT,
                        "load: sampler section of %llu bytes, %llu are left in the payload",
                        (unsigned long long)pl->sampler_size, (unsigned long long)left);
    if (pl->sampler_size != 0 && h->version < 2)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: a version %u file with a sampler section",
                        h->version);
    if (pl->sampler_size > SG_SAMPLER_STATE_MAX)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: sampler section of %llu bytes is too large",
                        (unsigned long long)pl->sampler_size);
    for (uint32_t i = 0; i < h->n_tokens; i++) {
        uint32_t t = sg_get_le32(pl->tokens + (size_t)i * 4);
        if (t >= s->model->hp.n_vocab)
            return sg_error(&s->err, SIGMA_E_FORMAT, "load: token %u at position %u is out of range", t, i);
    }
    return SIGMA_OK;
}

/* Everything a load allocates before the session changes. */
typedef struct sess_restore {
    sg_sampler_restore smp; /* the attached sampler's new state (smp.ready) */
    sigma_token *tokens;    /* a larger token array, or NULL to reuse the session's */
    size_t cap_tokens;
    float *logits;          /* a logits row, or NULL to reuse the session's */
} sess_restore;

static void restore_abort(sigma_session *s, sess_restore *rs) {
    sg_free(&s->alloc, rs->tokens);
    sg_free(&s->alloc, rs->logits);
    sg_sampler_restore_abort(s->sampler, &rs->smp);
}

/* Validate the sampler state (when a sampler is attached; otherwise the
 * section is ignored) and allocate everything that can fail. */
static int restore_prepare(sigma_session *s, const sess_header *h, const sess_payload *pl,
                           sess_restore *rs) {
    memset(rs, 0, sizeof *rs);
    if (pl->sampler_size && s->sampler) {
        sg_err serr;
        sg_err_clear(&serr);
        int st = sg_sampler_restore_prepare(s->sampler, pl->sampler, (size_t)pl->sampler_size,
                                            &rs->smp, &serr);
        if (st != SIGMA_OK) return sg_error(&s->err, st, "load: %s", serr.msg);
    }
    if (h->n_tokens > s->cap_tokens) {
        rs->cap_tokens = h->n_tokens;
        rs->tokens = sg_malloc(&s->alloc, rs->cap_tokens * sizeof *rs->tokens);
    }
    if (h->has_logits && s->cap_logits < 1) rs->logits = sg_malloc(&s->alloc, (size_t)h->n_vocab * sizeof(float));
    if ((rs->cap_tokens && !rs->tokens) || (h->has_logits && s->cap_logits < 1 && !rs->logits)) {
        restore_abort(s, rs);
        return sg_error(&s->err, SIGMA_E_NOMEM, "load: out of memory");
    }
    return SIGMA_OK;
}

/* Nothing here can fail: the session (and its sampler) take the file. */
static void restore_commit(sigma_session *s, const sess_header *h, const sess_payload *pl,
                           sess_restore *rs) {
    if (rs->smp.ready) sg_sampler_restore_commit(s->sampler, &rs->smp);
    if (rs->tokens) {
        sg_free(&s->alloc, s->tokens);
        s->tokens = rs->tokens;
        s->cap_tokens = rs->cap_tokens;
    }
    for (uint32_t i = 0; i < h->n_tokens; i++)
        s->tokens[i] = (sigma_token)sg_get_le32(pl->tokens + (size_t)i * 4);
    s->n_tokens = h->n_tokens;
    if (rs->logits) {
        sg_free(&s->alloc, s->logits);
        s->logits = rs->logits;
        s->cap_logits = 1;
    }
    if (pl->logits) {
        for (uint32_t i = 0; i < h->n_vocab; i++) {
            uint32_t u = sg_get_le32(pl->logits + (size_t)i * 4);
            memcpy(&s->logits[i], &u, 4);
        }
        s->n_logit_rows = 1;
        s->n_last_eval = 1;
        s->logits_valid = 1;
    } else {
        s->logits_valid = 0;
    }
    sg_err_clear(&s->err);
}

/* Steps: decode and check the header; check the CRC and inflate; split and
 * validate the payload; validate the sampler state and allocate; let the
 * strategy restore itself (all-or-nothing); commit. */
int sigma_session_load_memory(sigma_session *s, const void *data, size_t size) {
    if (!s || (!data && size)) return SIGMA_E_INVALID_ARG;
    sess_header h;
    int st = header_decode(data, size, &h, &s->err);
    if (st == SIGMA_OK) st = header_check_session(s, &h, size);
    if (st == SIGMA_OK) st = payload_check_size(s, &h);
    if (st != SIGMA_OK) return st;
    const uint8_t *raw;
    uint8_t *owned;
    st = payload_open(s, &h, (const uint8_t *)data + SESS_HEADER_SIZE, &raw, &owned);
    if (st != SIGMA_OK) return st;
    sess_payload pl;
    sess_restore rs;
    st = payload_parse(s, &h, raw, &pl);
    if (st == SIGMA_OK) st = restore_prepare(s, &h, &pl, &rs);
    if (st == SIGMA_OK) {
        int kst = s->kv.load(s->kv_state, pl.kv, (size_t)pl.kv_size);
        if (kst == SIGMA_OK) {
            restore_commit(s, &h, &pl, &rs);
        } else {
            restore_abort(s, &rs);
            if (kst == SIGMA_E_MISMATCH) /* same model: other options (dense: another type) */
                st = sg_error(&s->err, kst,
                              "load: KV strategy '%s' rejected its data: the file's cache was "
                              "saved with other options than this session's ('%s')",
                              s->kv.name, s->kv_opts ? s->kv_opts : "");
            else
                st = sg_error(&s->err, kst, "load: KV strategy '%s' rejected its data: %s",
                              s->kv.name, sigma_strerror(kst));
        }
    }
    sg_free(&s->alloc, owned);
    return st;
}

int sigma_session_load(sigma_session *s, const char *path) {
    if (!s || !path) return SIGMA_E_INVALID_ARG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sg_error(&s->err, SIGMA_E_IO, "load: cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return sg_error(&s->err, SIGMA_E_IO, "load: '%s' is not a regular file", path);
    }
    /* A session of an unbounded strategy (window) can hold more tokens
     * than n_ctx: bound the file by the token count its header announces
     * (the header itself is validated by sigma_session_load_memory). */
    uint64_t bound_tokens = s->n_ctx;
    if (s->kv.unbounded && (uint64_t)sb.st_size >= SESS_HEADER_SIZE) {
        uint8_t h[SESS_HEADER_SIZE];
        size_t got_h = 0;
        while (got_h < sizeof h) {
            ssize_t rd = pread(fd, h + got_h, sizeof h - got_h, (off_t)got_h);
            if (rd < 0 && errno == EINTR) continue;
            if (rd <= 0) break;
            got_h += (size_t)rd;
        }
        sess_header hd;
        if (got_h == sizeof h && header_read(h, sizeof h, &hd, NULL) == SIGMA_OK &&
            hd.n_tokens > bound_tokens)
            bound_tokens = hd.n_tokens;
    }
    uint64_t max_file = SESS_HEADER_SIZE + max_raw_size(s, bound_tokens) * 2;
    if ((uint64_t)sb.st_size > max_file || (uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: '%s' is too large (%lld bytes) for a session of this model",
                        path, (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = sg_malloc(&s->alloc, n ? n : 1);
    if (!buf) {
        close(fd);
        return sg_error(&s->err, SIGMA_E_NOMEM, "load: out of memory for %zu bytes", n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t rd = read(fd, buf + got, n - got);
        if (rd < 0 && errno == EINTR) continue;
        if (rd <= 0) break;
        got += (size_t)rd;
    }
    close(fd);
    int st;
    if (got != n)
        st = sg_error(&s->err, SIGMA_E_IO, "load: cannot read '%s'", path);
    else
        st = sigma_session_load_memory(s, buf, n);
    sg_free(&s->alloc, buf);
    return st;
}
