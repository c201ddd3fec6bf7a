/* Safetensors reader for sigma-convert (see safetensors.h). */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cvutil.h"
#include "numconv.h"

/* The safetensors format limits the header to 100 MB. */
#define CV_ST_MAX_HEADER (100u * 1000u * 1000u)

static const struct {
    const char *name;
    cv_st_dtype dtype;
    uint32_t size;
} dtypes[] = {
    {"F32", CV_ST_F32, 4},   {"F16", CV_ST_F16, 2},   {"BF16", CV_ST_BF16, 2},
    {"F64", CV_ST_F64, 8},   {"I64", CV_ST_I64, 8},   {"U64", CV_ST_U64, 8},
    {"I32", CV_ST_I32, 4},   {"U32", CV_ST_U32, 4},   {"I16", CV_ST_I16, 2},
    {"U16", CV_ST_U16, 2},   {"I8", CV_ST_I8, 1},     {"U8", CV_ST_U8, 1},
    {"BOOL", CV_ST_BOOL, 1}, {"F8_E4M3", CV_ST_F8_E4M3, 1}, {"F8_E5M2", CV_ST_F8_E5M2, 1},
};

const char *cv_st_dtype_name(cv_st_dtype d) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].dtype == d) return dtypes[i].name;
    return "?";
}

uint32_t cv_st_dtype_size(cv_st_dtype d) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].dtype == d) return dtypes[i].size;
    return 0;
}

static int parse_tensor(const char *fname, const cJSON *item, const uint8_t *data,
                        uint64_t data_len, cv_st_tensor *t) {
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return cv_error("%s: header entry \"%s\" is not an object", fname, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return cv_error("%s: tensor %s: header needs string dtype, array shape and data_offsets",
                        fname, name);
    int found = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        if (strcmp(dtypes[i].name, jd->valuestring) == 0) {
            t->dtype = dtypes[i].dtype;
            found = 1;
        }
    }
    if (!found)
        return cv_error("%s: tensor %s: unknown dtype \"%.32s\"", fname, name, jd->valuestring);
    int nd = cJSON_GetArraySize(js);
    if (nd < 0 || nd > CV_ST_MAX_DIMS)
        return cv_error("%s: tensor %s: %d dimensions (at most %d supported)", fname, name, nd,
                        CV_ST_MAX_DIMS);
    t->n_dims = (uint32_t)nd;
    uint64_t n = 1;
    uint32_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, js) {
        uint64_t d;
        if (cv_json_to_u64(it, &d) != 0)
            return cv_error("%s: tensor %s: shape entries must be non-negative integers", fname,
                            name);
        t->shape[k++] = d;
        if (cv_mul_u64(n, d, &n) != 0)
            return cv_error("%s: tensor %s: element count overflows", fname, name);
    }
    t->n_elems = n;
    if (cJSON_GetArraySize(jo) != 2)
        return cv_error("%s: tensor %s: data_offsets must have two entries", fname, name);
    uint64_t b, e;
    if (cv_json_to_u64(cJSON_GetArrayItem(jo, 0), &b) != 0 ||
        cv_json_to_u64(cJSON_GetArrayItem(jo, 1), &e) != 0)
        return cv_error("%s: tensor %s: data_offsets must be non-negative integers", fname, name);
    if (b > e || e > data_len)
        return cv_error("%s: tensor %s: data_offsets [%llu, %llu] outside the data section "
                        "(%llu bytes)", fname, name, (unsigned long long)b, (unsigned long long)e,
                        (unsigned long long)data_len);
    uint64_t need;
    if (cv_mul_u64(n, cv_st_dtype_size(t->dtype), &need) != 0 || need != e - b)
        return cv_error("%s: tensor %s: %llu bytes of data for %llu elements of %s", fname, name,
                        (unsigned long long)(e - b), (unsigned long long)n, jd->valuestring);
    t->data = data + b;
    t->nbytes = e - b;
    t->name = strdup(name);
    if (!t->name) return cv_error("out of memory");
    return 0;
}

int cv_st_add_file(cv_st *st, const char *path, const char *name) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return cv_error("cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return cv_error("%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return cv_error("%s: too small to be a safetensors file (%lld bytes)", path,
                        (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return cv_error("cannot mmap %s: %s", path, strerror(errno));

    cv_st_file *nf = realloc(st->files, (st->n_files + 1) * sizeof *nf);
    if (!nf) {
        munmap(map, size);
        return cv_error("out of memory");
    }
    st->files = nf;
    cv_st_file *f = &st->files[st->n_files++];
    f->map = map;
    f->size = size;
    f->path = strdup(path);
    f->name = strdup(name);
    if (!f->path || !f->name) return cv_error("out of memory");

    const uint8_t *base = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen > (uint64_t)size - 8)
        return cv_error("%s: header length %llu exceeds the file size %zu", path,
                        (unsigned long long)hlen, size);
    if (hlen > CV_ST_MAX_HEADER)
        return cv_error("%s: header length %llu exceeds the 100 MB limit", path,
                        (unsigned long long)hlen);
    const char *end = NULL;
    cJSON *h = cJSON_ParseWithLengthOpts((const char *)base + 8, (size_t)hlen, &end, 0);
    if (!h) return cv_error("%s: header is not valid JSON", path);
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return cv_error("%s: header is not a JSON object", path);
    }
    const uint8_t *data = base + 8 + hlen;
    uint64_t data_len = (uint64_t)size - 8 - hlen;
    size_t count = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, h) count++;
    cv_st_tensor *nt = realloc(st->t, (st->n + count + 1) * sizeof *nt);
    if (!nt) {
        cJSON_Delete(h);
        return cv_error("out of memory");
    }
    st->t = nt;
    cJSON_ArrayForEach(it, h) {
        if (!it->string) continue;
        if (strcmp(it->string, "__metadata__") == 0) continue;
        cv_st_tensor *t = &st->t[st->n];
        memset(t, 0, sizeof *t);
        if (parse_tensor(path, it, data, data_len, t) != 0) {
            free(t->name);
            cJSON_Delete(h);
            return -1;
        }
        t->file = f->name;
        st->n++;
    }
    cJSON_Delete(h);
    return 0;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const cv_st_tensor *)a)->name, ((const cv_st_tensor *)b)->name);
}

int cv_st_finish(cv_st *st) {
    if (st->n > 1) qsort(st->t, st->n, sizeof *st->t, cmp_tensor);
    for (size_t i = 1; i < st->n; i++)
        if (strcmp(st->t[i - 1].name, st->t[i].name) == 0)
            return cv_error("tensor %s appears twice (in %s and %s)", st->t[i].name,
                            st->t[i - 1].file, st->t[i].file);
    return 0;
}

const cv_st_tensor *cv_st_find(const cv_st *st, const char *name) {
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->t[mid].name, name);
        if (c == 0) return &st->t[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int valid_shard_name(const char *s) {
    if (!*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    return 1;
}

static int open_index(cv_st *st, const char *dir, const char *index_path, cJSON *idx) {
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(wm))
        return cv_error("%s: missing \"weight_map\" object", index_path);
    /* Open each distinct shard once, in order of first appearance. */
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || !valid_shard_name(it->valuestring))
            return cv_error("%s: weight_map entry for %s must be a plain file name", index_path,
                            it->string ? it->string : "?");
        int seen = 0;
        for (size_t i = 0; i < st->n_files && !seen; i++)
            seen = strcmp(st->files[i].name, it->valuestring) == 0;
        if (seen) continue;
        char *p = cv_path_join(dir, it->valuestring);
        if (!p) return cv_error("out of memory");
        int rc = cv_st_add_file(st, p, it->valuestring);
        free(p);
        if (rc != 0) return -1;
    }
    if (st->n_files == 0) return cv_error("%s: weight_map is empty", index_path);
    if (cv_st_finish(st) != 0) return -1;
    /* Every listed tensor must be in the shard the index names, and every
     * tensor of the shards must be listed. */
    size_t listed = 0;
    cJSON_ArrayForEach(it, wm) {
        const cv_st_tensor *t = cv_st_find(st, it->string);
        if (!t || strcmp(t->file, it->valuestring) != 0)
            return cv_error("%s: tensor %s is not in %s", index_path, it->string,
                            it->valuestring);
        listed++;
    }
    if (listed != st->n)
        return cv_error("%s: the shards hold %zu tensors but weight_map lists %zu", index_path,
                        st->n, listed);
    return 0;
}

int cv_st_open_dir(cv_st *st, const char *dir) {
    memset(st, 0, sizeof *st);
    char *index_path = cv_path_join(dir, "model.safetensors.index.json");
    if (!index_path) return cv_error("out of memory");
    int rc;
    if (cv_file_exists(index_path)) {
        cJSON *idx = cv_load_json(index_path, NULL);
        rc = idx ? open_index(st, dir, index_path, idx) : -1;
        cJSON_Delete(idx);
    } else {
        char *p = cv_path_join(dir, "model.safetensors");
        if (!p) {
            free(index_path);
            return cv_error("out of memory");
        }
        if (!cv_file_exists(p))
            rc = cv_error("%s: no model.safetensors or model.safetensors.index.json", dir);
        else
            rc = cv_st_add_file(st, p, "model.safetensors");
        if (rc == 0) rc = cv_st_finish(st);
        free(p);
    }
    free(index_path);
    return rc;
}

void cv_st_close(cv_st *st) {
    for (size_t i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    for (size_t i = 0; i < st->n_files; i++) {
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].size);
        free(st->files[i].path);
        free(st->files[i].name);
    }
    free(st->files);
    memset(st, 0, sizeof *st);
}

void cv_st_read_f32(const cv_st_tensor *t, uint64_t i0, uint64_t n, float *dst) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case CV_ST_F32:
        memcpy(dst, p + i0 * 4, (size_t)n * 4);
        break;
    case CV_ST_F16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + (i0 + i) * 2, 2);
            dst[i] = cv_f16_to_f32(h);
        }
        break;
    case CV_ST_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + (i0 + i) * 2, 2);
            dst[i] = cv_bf16_to_f32(h);
        }
        break;
    default:
        memset(dst, 0, (size_t)n * sizeof *dst); /* callers check the dtype first */
        break;
    }
}
