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
#define SESS_HEADER_SIZE 104
#define SESS_SLACK (1u << 20)         /* allowance for strategy metadata */

/* ---- little-endian helpers -------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

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

/* ---- a growable byte buffer on the session's allocator ---------------------------- */

typedef struct bytebuf {
    const sg_alloc *alloc;
    uint8_t *data;
    size_t len, cap;
    int failed;
} bytebuf;

static int bb_reserve(bytebuf *b, size_t extra) {
    size_t need;
    if (!sg_add_size(b->len, extra, &need)) return SIGMA_E_NOMEM;
    if (need <= b->cap) return SIGMA_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return SIGMA_E_NOMEM;
        cap *= 2;
    }
    uint8_t *p = sg_malloc(b->alloc, cap);
    if (!p) return SIGMA_E_NOMEM;
    if (b->len) memcpy(p, b->data, b->len);
    sg_free(b->alloc, b->data);
    b->data = p;
    b->cap = cap;
    return SIGMA_OK;
}

static int bb_put(bytebuf *b, const void *data, size_t n) {
    int st = bb_reserve(b, n);
    if (st != SIGMA_OK) {
        b->failed = 1;
        return st;
    }
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    return SIGMA_OK;
}

static int bb_write_cb(void *ctx, const void *data, size_t n) { return bb_put(ctx, data, n); }

/* ---- zlib through the session's allocator ----------------------------------------- */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
    size_t n;
    if (!sg_mul_size(items, size, &n)) return Z_NULL;
    return sg_malloc((const sg_alloc *)opaque, n);
}
static void z_free(voidpf opaque, voidpf p) { sg_free((const sg_alloc *)opaque, p); }

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

/* Build the whole file image into `out` (allocated on the session's
 * allocator; the caller frees out->data). */
static int build_image(sigma_session *s, bytebuf *out) {
    const sg_hparams *hp = &s->model->hp;
    if (!s->kv.save || !s->kv.load)
        return sg_error(&s->err, SIGMA_E_UNSUPPORTED,
                        "save: KV strategy '%s' cannot serialize itself", s->kv.name);
    if (strlen(s->kv.name) >= SESS_NAME_LEN)
        return sg_error(&s->err, SIGMA_E_UNSUPPORTED, "save: KV strategy name is too long");

    /* raw payload: tokens, logits, kv */
    bytebuf raw = {&s->alloc, NULL, 0, 0, 0};
    int st = SIGMA_OK;
    int has_logits = s->logits_valid ? 1 : 0;
    uint8_t tmp[8];
    for (size_t i = 0; i < s->n_tokens && st == SIGMA_OK; i++) {
        put_u32(tmp, (uint32_t)s->tokens[i]);
        st = bb_put(&raw, tmp, 4);
    }
    if (st == SIGMA_OK && has_logits) {
        const float *row = s->logits + (s->n_logit_rows - 1) * (size_t)hp->n_vocab;
        for (uint32_t i = 0; i < hp->n_vocab && st == SIGMA_OK; i++) {
            uint32_t u;
            memcpy(&u, &row[i], 4);
            put_u32(tmp, u);
            st = bb_put(&raw, tmp, 4);
        }
    }
    size_t kv_len_at = raw.len;
    if (st == SIGMA_OK) st = bb_put(&raw, tmp, 8); /* kv size, patched below */
    if (st == SIGMA_OK) {
        int kst = s->kv.save(s->kv_state, bb_write_cb, &raw);
        if (kst != SIGMA_OK || raw.failed) {
            st = raw.failed ? SIGMA_E_NOMEM : kst;
            sg_free(&s->alloc, raw.data);
            return sg_error(&s->err, st, "save: KV strategy '%s' failed: %s", s->kv.name,
                            sigma_strerror(st));
        }
        put_u64(raw.data + kv_len_at, (uint64_t)(raw.len - kv_len_at - 8));
    }
    if (st == SIGMA_OK) {
        /* sampler section: u32 length + the attached sampler's state */
        size_t smp_len = s->sampler ? sg_sampler_state_size(s->sampler) : 0;
        put_u32(tmp, (uint32_t)smp_len);
        st = bb_put(&raw, tmp, 4);
        if (st == SIGMA_OK && s->sampler) {
            size_t at = raw.len;
            int sst = sg_sampler_save_state(s->sampler, bb_write_cb, &raw);
            if (sst == SIGMA_OK && raw.failed) sst = SIGMA_E_NOMEM;
            if (sst == SIGMA_OK && raw.len - at != smp_len) sst = SIGMA_E_INTERNAL;
            st = sst;
        }
    }
    if (st != SIGMA_OK) {
        sg_free(&s->alloc, raw.data);
        return sg_error(&s->err, st, "save: out of memory");
    }

    /* header + (compressed) payload */
    int level = s->p.save_compression;
    if (level < 0 || level > 9) level = 1;
    uint32_t flags = level > 0 ? SESS_FLAG_DEFLATE : 0;
    uLong bound = level > 0 ? compressBound((uLong)raw.len) : (uLong)raw.len;
    st = bb_reserve(out, SESS_HEADER_SIZE + (size_t)bound);
    if (st != SIGMA_OK) {
        sg_free(&s->alloc, raw.data);
        return sg_error(&s->err, st, "save: out of memory");
    }
    uint8_t *h = out->data;
    memset(h, 0, SESS_HEADER_SIZE);
    uint8_t *payload = h + SESS_HEADER_SIZE;
    size_t stored = raw.len;
    if (flags & SESS_FLAG_DEFLATE) {
        z_stream z;
        memset(&z, 0, sizeof z);
        z.zalloc = z_alloc;
        z.zfree = z_free;
        z.opaque = (voidpf)&s->alloc;
        int zr = deflateInit(&z, level);
        if (zr != Z_OK) {
            sg_free(&s->alloc, raw.data);
            return sg_error(&s->err, zr == Z_MEM_ERROR ? SIGMA_E_NOMEM : SIGMA_E_INTERNAL,
                            "save: deflateInit failed (%d)", zr);
        }
        z.next_in = raw.data;
        z.next_out = payload;
        size_t in_left = raw.len, out_left = (size_t)bound;
        for (;;) {
            uInt ci = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            uInt co = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
            z.avail_in = ci;
            z.avail_out = co;
            zr = deflate(&z, ci == in_left ? Z_FINISH : Z_NO_FLUSH);
            size_t used_in = ci - z.avail_in, used_out = co - z.avail_out;
            in_left -= used_in;
            out_left -= used_out;
            if (zr == Z_STREAM_END || (zr != Z_OK && zr != Z_BUF_ERROR)) break;
            if (used_in == 0 && used_out == 0) break; /* no progress: bound too small */
        }
        stored = (size_t)bound - out_left;
        deflateEnd(&z);
        if (zr != Z_STREAM_END) {
            sg_free(&s->alloc, raw.data);
            return sg_error(&s->err, zr == Z_MEM_ERROR ? SIGMA_E_NOMEM : SIGMA_E_INTERNAL,
                            "save: deflate failed (%d)", zr);
        }
    } else {
        memcpy(payload, raw.data, raw.len);
    }
    memcpy(h, SESS_MAGIC, 8);
    put_u32(h + 8, s->sampler ? SESS_VERSION : SESS_VERSION_MIN);
    put_u32(h + 12, flags);
    put_u64(h + 16, s->model->fingerprint[0]);
    put_u64(h + 24, s->model->fingerprint[1]);
    memcpy(h + 32, s->kv.name, strlen(s->kv.name));
    put_u32(h + 64, s->n_ctx);
    put_u32(h + 68, (uint32_t)s->n_tokens);
    put_u32(h + 72, hp->n_vocab);
    put_u32(h + 76, (uint32_t)has_logits);
    put_u64(h + 80, (uint64_t)raw.len);
    put_u64(h + 88, (uint64_t)stored);
    put_u32(h + 96, crc32_of(payload, stored));
    put_u32(h + 100, crc32_of(h, 100));
    out->len = SESS_HEADER_SIZE + stored;
    sg_free(&s->alloc, raw.data);
    return SIGMA_OK;
}

int sigma_session_save_memory(sigma_session *s, void *buf, size_t size, size_t *len) {
    if (!s || !len || (!buf && size)) return SIGMA_E_INVALID_ARG;
    bytebuf img = {&s->alloc, NULL, 0, 0, 0};
    int st = build_image(s, &img);
    if (st != SIGMA_OK) {
        sg_free(&s->alloc, img.data);
        return st;
    }
    *len = img.len;
    if (img.len > size) {
        sg_free(&s->alloc, img.data);
        return sg_error(&s->err, SIGMA_E_BUFFER_TOO_SMALL,
                        "save: the session needs %zu bytes, the buffer has %zu", img.len, size);
    }
    memcpy(buf, img.data, img.len);
    sg_free(&s->alloc, img.data);
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
    bytebuf img = {&s->alloc, NULL, 0, 0, 0};
    int st = build_image(s, &img);
    if (st != SIGMA_OK) {
        sg_free(&s->alloc, img.data);
        return st;
    }

    /* temporary file next to the target: PATH.tmp-XXXXXX */
    size_t plen = strlen(path);
    char *tmp = sg_malloc(&s->alloc, plen + 16);
    if (!tmp) {
        sg_free(&s->alloc, img.data);
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
    sg_free(&s->alloc, img.data);
    return st;
}

/* ---- load -------------------------------------------------------------------------- */

int sigma_session_load_memory(sigma_session *s, const void *data, size_t size) {
    if (!s || (!data && size)) return SIGMA_E_INVALID_ARG;
    const uint8_t *h = data;
    const sg_hparams *hp = &s->model->hp;
    if (size < SESS_HEADER_SIZE)
        return sg_error(&s->err, SIGMA_E_FORMAT,
                        "load: %zu bytes is too short for a session file (header is %d)", size,
                        SESS_HEADER_SIZE);
    if (memcmp(h, SESS_MAGIC, 8) != 0)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: not a libsigma session file (bad magic)");
    if (get_u32(h + 100) != crc32_of(h, 100))
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: header checksum mismatch (corrupted file)");
    uint32_t version = get_u32(h + 8);
    if (version < SESS_VERSION_MIN || version > SESS_VERSION)
        return sg_error(&s->err, SIGMA_E_UNSUPPORTED,
                        "load: session format version %u, this library reads versions %u to %u",
                        version, SESS_VERSION_MIN, SESS_VERSION);
    uint32_t flags = get_u32(h + 12);
    if (flags & ~SESS_FLAG_DEFLATE)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: unknown flags 0x%x", flags);
    if (get_u64(h + 16) != s->model->fingerprint[0] || get_u64(h + 24) != s->model->fingerprint[1])
        return sg_error(&s->err, SIGMA_E_MISMATCH,
                        "load: the session file was saved with a different model");
    char name[SESS_NAME_LEN + 1];
    memcpy(name, h + 32, SESS_NAME_LEN);
    name[SESS_NAME_LEN] = '\0';
    if (memchr(h + 32, '\0', SESS_NAME_LEN) == NULL)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: strategy name is not terminated");
    if (strcmp(name, s->kv.name) != 0)
        return sg_error(&s->err, SIGMA_E_MISMATCH,
                        "load: the file holds a '%s' KV cache, the session uses '%s'", name,
                        s->kv.name);
    uint32_t n_tokens = get_u32(h + 68), n_vocab = get_u32(h + 72), has_logits = get_u32(h + 76);
    uint64_t raw_size = get_u64(h + 80), stored = get_u64(h + 88);
    if (n_vocab != hp->n_vocab)
        return sg_error(&s->err, SIGMA_E_MISMATCH, "load: vocabulary of %u, the model has %u",
                        n_vocab, hp->n_vocab);
    if (has_logits > 1)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: bad logits flag %u", has_logits);
    if (has_logits && n_tokens == 0)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: logits without tokens");
    if (!s->kv.unbounded && n_tokens > s->n_ctx)
        return sg_error(&s->err, SIGMA_E_CONTEXT_FULL,
                        "load: %u tokens do not fit in the session's n_ctx %u", n_tokens, s->n_ctx);
    if (stored != (uint64_t)(size - SESS_HEADER_SIZE))
        return sg_error(&s->err, SIGMA_E_FORMAT,
                        "load: payload is %zu bytes, the header says %llu (truncated file?)",
                        size - SESS_HEADER_SIZE, (unsigned long long)stored);
    uint64_t fixed = (uint64_t)n_tokens * 4 + (has_logits ? (uint64_t)n_vocab * 4 : 0) + 8 + 4;
    if (raw_size < fixed || raw_size > max_raw_size(s, n_tokens))
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: payload size %llu out of range",
                        (unsigned long long)raw_size);
    if (!(flags & SESS_FLAG_DEFLATE) && raw_size != stored)
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: stored and raw sizes differ");
    const uint8_t *payload = h + SESS_HEADER_SIZE;
    if (get_u32(h + 96) != crc32_of(payload, (size_t)stored))
        return sg_error(&s->err, SIGMA_E_FORMAT, "load: payload checksum mismatch (corrupted file)");
    if (!s->kv.load)
        return sg_error(&s->err, SIGMA_E_UNSUPPORTED, "load: KV strategy '%s' cannot restore itself",
                        s->kv.name);

    /* inflate */
    uint8_t *raw = NULL;
    const uint8_t *r = payload;
    int st = SIGMA_OK;
    if (flags & SESS_FLAG_DEFLATE) {
        raw = sg_malloc(&s->alloc, (size_t)raw_size);
        if (!raw) return sg_error(&s->err, SIGMA_E_NOMEM, "load: out of memory");
        z_stream z;
        memset(&z, 0, sizeof z);
        z.zalloc = z_alloc;
        z.zfree = z_free;
        z.opaque = (voidpf)&s->alloc;
        int zr = inflateInit(&z);
        if (zr != Z_OK) {
            sg_free(&s->alloc, raw);
            return sg_error(&s->err, zr == Z_MEM_ERROR ? SIGMA_E_NOMEM : SIGMA_E_INTERNAL,
                            "load: inflateInit failed (%d)", zr);
        }
        size_t in_left = (size_t)stored, out_left = (size_t)raw_size;
        z.next_in = (Bytef *)payload;
        z.next_out = raw;
        for (;;) {
            uInt ci = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            uInt co = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
            z.avail_in = ci;
            z.avail_out = co;
            zr = inflate(&z, Z_NO_FLUSH);
            size_t used_in = ci - z.avail_in, used_out = co - z.avail_out;
            in_left -= used_in;
            out_left -= used_out;
            if (zr != Z_OK) break;
            if (used_in == 0 && used_out == 0) {
                zr = Z_DATA_ERROR;
                break;
            }
        }
        inflateEnd(&z);
        if (zr != Z_STREAM_END || out_left != 0 || in_left != 0) {
            sg_free(&s->alloc, raw);
            if (zr == Z_MEM_ERROR) return sg_error(&s->err, SIGMA_E_NOMEM, "load: out of memory");
            return sg_error(&s->err, SIGMA_E_FORMAT,
                            "load: compressed payload is corrupted or does not have the announced size");
        }
        r = raw;
    }

    /* parse and validate the payload */
    uint64_t kv_size = get_u64(r + (size_t)n_tokens * 4 + (has_logits ? (size_t)n_vocab * 4 : 0));
    if (kv_size > raw_size - fixed) {
        st = sg_error(&s->err, SIGMA_E_FORMAT, "load: KV section of %llu bytes does not fit the payload",
                      (unsigned long long)kv_size);
        goto out;
    }
    /* the sampler section fills the rest exactly */
    const uint8_t *smp = r + (size_t)(fixed - 4 + kv_size);
    uint64_t smp_len = get_u32(smp);
    smp += 4;
    if (smp_len != raw_size - fixed - kv_size) {
        st = sg_error(&s->err, SIGMA_E_FORMAT,
                      "load: sampler section of %llu bytes, %llu are left in the payload",
                      (unsigned long long)smp_len, (unsigned long long)(raw_size - fixed - kv_size));
        goto out;
    }
    if (smp_len != 0 && version < 2) {
        st = sg_error(&s->err, SIGMA_E_FORMAT, "load: a version %u file with a sampler section", version);
        goto out;
    }
    if (smp_len > SG_SAMPLER_STATE_MAX) {
        st = sg_error(&s->err, SIGMA_E_FORMAT, "load: sampler section of %llu bytes is too large",
                      (unsigned long long)smp_len);
        goto out;
    }
    for (uint32_t i = 0; i < n_tokens; i++) {
        uint32_t t = get_u32(r + (size_t)i * 4);
        if (t >= hp->n_vocab) {
            st = sg_error(&s->err, SIGMA_E_FORMAT, "load: token %u at position %u is out of range", t, i);
            goto out;
        }
    }
    /* validate the sampler state (when a sampler is attached; otherwise the
     * section is ignored) and allocate everything that can fail before the
     * strategy changes */
    sg_sampler_restore smp_r;
    memset(&smp_r, 0, sizeof smp_r);
    if (smp_len && s->sampler) {
        sg_err serr;
        sg_err_clear(&serr);
        st = sg_sampler_restore_prepare(s->sampler, smp, (size_t)smp_len, &smp_r, &serr);
        if (st != SIGMA_OK) {
            st = sg_error(&s->err, st, "load: %s", serr.msg);
            goto out;
        }
    }
    sigma_token *toks = NULL;
    size_t cap_tokens = n_tokens > s->cap_tokens ? n_tokens : 0;
    if (cap_tokens) {
        toks = sg_malloc(&s->alloc, (size_t)cap_tokens * sizeof *toks);
        if (!toks) {
            sg_sampler_restore_abort(s->sampler, &smp_r);
            st = sg_error(&s->err, SIGMA_E_NOMEM, "load: out of memory");
            goto out;
        }
    }
    float *lg = NULL;
    if (has_logits && s->cap_logits < 1) {
        lg = sg_malloc(&s->alloc, (size_t)n_vocab * sizeof(float));
        if (!lg) {
            sg_free(&s->alloc, toks);
            sg_sampler_restore_abort(s->sampler, &smp_r);
            st = sg_error(&s->err, SIGMA_E_NOMEM, "load: out of memory");
            goto out;
        }
    }
    const uint8_t *kvdata = r + (size_t)n_tokens * 4 + (has_logits ? (size_t)n_vocab * 4 : 0) + 8;
    int kst = s->kv.load(s->kv_state, kvdata, (size_t)kv_size);
    if (kst != SIGMA_OK) {
        sg_free(&s->alloc, toks);
        sg_free(&s->alloc, lg);
        sg_sampler_restore_abort(s->sampler, &smp_r);
        st = sg_error(&s->err, kst, "load: KV strategy '%s' rejected its data: %s", s->kv.name,
                      sigma_strerror(kst));
        goto out;
    }
    /* commit */
    if (smp_r.ready) sg_sampler_restore_commit(s->sampler, &smp_r);
    if (toks) {
        sg_free(&s->alloc, s->tokens);
        s->tokens = toks;
        s->cap_tokens = cap_tokens;
    }
    for (uint32_t i = 0; i < n_tokens; i++) s->tokens[i] = (sigma_token)get_u32(r + (size_t)i * 4);
    s->n_tokens = n_tokens;
    if (lg) {
        sg_free(&s->alloc, s->logits);
        s->logits = lg;
        s->cap_logits = 1;
    }
    if (has_logits) {
        const uint8_t *lp = r + (size_t)n_tokens * 4;
        for (uint32_t i = 0; i < n_vocab; i++) {
            uint32_t u = get_u32(lp + (size_t)i * 4);
            memcpy(&s->logits[i], &u, 4);
        }
        s->n_logit_rows = 1;
        s->n_last_eval = 1;
        s->logits_valid = 1;
    } else {
        s->logits_valid = 0;
    }
    sg_err_clear(&s->err);
out:
    sg_free(&s->alloc, raw);
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
        if (got_h == sizeof h && memcmp(h, SESS_MAGIC, 8) == 0 &&
            get_u32(h + 100) == crc32_of(h, 100) && get_u32(h + 68) > bound_tokens)
            bound_tokens = get_u32(h + 68);
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
