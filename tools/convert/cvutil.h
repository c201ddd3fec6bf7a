/* Small shared helpers of sigma-convert: errors, files, JSON. */
#ifndef CV_UTIL_H
#define CV_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Print "sigma-convert: error: ..." (one line) to stderr; returns -1. */
int cv_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "sigma-convert: ..." to stderr (warnings, progress). */
void cv_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* dir + "/" + name, malloc'd; NULL on OOM. */
char *cv_path_join(const char *dir, const char *name);
int cv_file_exists(const char *path);

/* Read a whole (text) file, NUL-terminated. 0 ok, -1 error (reported);
 * *missing set to 1 (and no error printed) if the file does not exist and
 * missing != NULL. */
int cv_read_file(const char *path, char **out, size_t *len, int *missing);
/* Parse a JSON file. Returns NULL on error (reported) or when missing (if
 * missing != NULL, *missing = 1, nothing printed). */
cJSON *cv_load_json(const char *path, int *missing);

/* JSON field getters. Return 1 if present with the right type, 0 if absent
 * (or null), -1 if present with a wrong type / out of range (reported with
 * `what` as context). */
int cv_json_u32(const cJSON *obj, const char *key, uint32_t *out, const char *what);
int cv_json_f64(const cJSON *obj, const char *key, double *out, const char *what);
int cv_json_bool(const cJSON *obj, const char *key, int *out, const char *what);
/* An exact non-negative integer (< 2^53) from a JSON number. */
int cv_json_to_u64(const cJSON *item, uint64_t *out);

/* Checked arithmetic: 0 on success, -1 on overflow. */
static inline int cv_mul_u64(uint64_t a, uint64_t b, uint64_t *r) {
    return __builtin_mul_overflow(a, b, r) ? -1 : 0;
}
static inline int cv_add_u64(uint64_t a, uint64_t b, uint64_t *r) {
    return __builtin_add_overflow(a, b, r) ? -1 : 0;
}

#endif
