/* Small shared helpers of sigma-convert. */
#define _POSIX_C_SOURCE 200809L
#include "cvutil.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cv_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sigma-convert: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

void cv_note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sigma-convert: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

char *cv_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int cv_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cv_read_file(const char *path, char **out, size_t *len, int *missing) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT && missing) {
            *missing = 1;
            return -1;
        }
        return cv_error("cannot open %s: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return cv_error("out of memory reading %s", path);
    }
    for (;;) {
        if (cap - n < 2) {
            if (cap > SIZE_MAX / 2) break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return cv_error("out of memory reading %s", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return cv_error("cannot read %s", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

cJSON *cv_load_json(const char *path, int *missing) {
    char *text = NULL;
    size_t len = 0;
    if (missing) *missing = 0;
    if (cv_read_file(path, &text, &len, missing) != 0) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t off = end ? (size_t)(end - text) : 0;
        cv_error("%s: invalid JSON near byte %zu", path, off);
    }
    free(text);
    return j;
}

int cv_json_to_u64(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return -1;
    double d = item->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

int cv_json_u32(const cJSON *obj, const char *key, uint32_t *out, const char *what) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) return 0;
    uint64_t v;
    if (cv_json_to_u64(it, &v) != 0 || v > UINT32_MAX)
        return cv_error("%s: \"%s\" must be a non-negative integer below 2^32", what, key);
    *out = (uint32_t)v;
    return 1;
}

int cv_json_f64(const cJSON *obj, const char *key, double *out, const char *what) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return cv_error("%s: \"%s\" must be a finite number", what, key);
    *out = it->valuedouble;
    return 1;
}

int cv_json_bool(const cJSON *obj, const char *key, int *out, const char *what) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsBool(it)) return cv_error("%s: \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 1;
}
