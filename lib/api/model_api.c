/* api: the public entry points that assemble parts: opening and closing a
 * model (GGUF file, architecture, tokenizer). Queries are lib/model/model.c. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../model/model.h"
#include "../text/text.h"

#define MODEL_PARAMS_MIN_SIZE (offsetof(sigma_model_params, use_mmap) + sizeof(int))

int sigma_model_params_init(sigma_model_params *params, size_t struct_size) {
    /* the defaults; fields not named are 0 (static: padding zeroed too) */
    static const sigma_model_params d = {
        .use_mmap = 1,
        .log_level = SIGMA_LOG_WARN,
    };
    return sg_params_init(params, struct_size, MODEL_PARAMS_MIN_SIZE, &d, sizeof d);
}

static int resolve_params(const sigma_model_params *in, sigma_model_params *p) {
    sigma_model_params_init(p, sizeof *p);
    if (!in) return SIGMA_OK;
    if (in->struct_size < MODEL_PARAMS_MIN_SIZE) return SIGMA_E_INVALID_ARG;
    sg_params_merge(p, sizeof *p, in, in->struct_size);
    return SIGMA_OK;
}

static void report_open_error(const sigma_model_params *p, const sg_log *log, int status,
                              const sg_err *err) {
    const char *msg = err->msg[0] ? err->msg : sigma_strerror(status);
    if (p->error_buf && p->error_buf_size) snprintf(p->error_buf, p->error_buf_size, "%s", msg);
    sg_logf(log, SIGMA_LOG_ERROR, "model open failed: %s", msg);
}

static int model_open_common(const char *path, const void *data, size_t size,
                             const sigma_model_params *params, sigma_model **out) {
    if (out) *out = NULL;
    sigma_model_params p;
    int st = resolve_params(params, &p);
    sg_err err;
    sg_err_clear(&err);
    sg_log log = {p.log_fn, p.log_user, p.log_level};
    if (st == SIGMA_OK && (!out || (!path && !data)))
        st = sg_error(&err, SIGMA_E_INVALID_ARG, "model open: NULL argument");
    if (st != SIGMA_OK) {
        report_open_error(&p, &log, st, &err);
        return st;
    }
    sg_alloc alloc;
    sg_alloc_init(&alloc, p.allocator);
    sigma_model *m = sg_calloc(&alloc, 1, sizeof *m);
    if (!m) {
        st = sg_error(&err, SIGMA_E_NOMEM, "out of memory allocating the model");
        report_open_error(&p, &log, st, &err);
        return st;
    }
    m->alloc = alloc;
    m->log = log;
    if (pthread_mutex_init(&m->err_lock, NULL) != 0) {
        sg_free(&alloc, m);
        st = sg_error(&err, SIGMA_E_NOMEM, "cannot create a mutex");
        report_open_error(&p, &log, st, &err);
        return st;
    }
    double t0 = sg_now_ms();
    if (path)
        st = sg_gguf_open_file(&m->alloc, path, p.use_mmap, &m->gguf, &err);
    else
        st = sg_gguf_open_memory(&m->alloc, data, size, &m->gguf, &err);
    if (st == SIGMA_OK) st = sg_model_load_arch(m, &err);
    if (st == SIGMA_OK) st = sg_tokenizer_load(m, &err);
    /* the fingerprint samples t->data: before the repack lets go of the
     * repacked matrices' file pages */
    if (st == SIGMA_OK) sg_model_fingerprint(m);
    if (st == SIGMA_OK) st = sg_model_repack(m, &err);
    if (st != SIGMA_OK) {
        report_open_error(&p, &log, st, &err);
        sigma_model_close(m);
        return st;
    }
    sg_logf(&m->log, SIGMA_LOG_INFO, "opened %s model '%s': %u layers, %.1f ms",
            m->hp.desc ? m->hp.desc->name : "?", m->name, m->hp.n_layer,
            sg_now_ms() - t0);
    if (m->packed)
        sg_logf(&m->log, SIGMA_LOG_INFO, "repacked %.1f MiB of weights (x8) in %.1f ms",
                (double)m->packed_bytes / 1048576.0, m->packed_ms);
    *out = m;
    return SIGMA_OK;
}

int sigma_model_open(const char *path, const sigma_model_params *params, sigma_model **out) {
    if (!path) {
        if (out) *out = NULL;
        return SIGMA_E_INVALID_ARG;
    }
    return model_open_common(path, NULL, 0, params, out);
}

int sigma_model_open_memory(const void *data, size_t size, const sigma_model_params *params,
                            sigma_model **out) {
    if (!data) {
        if (out) *out = NULL;
        return SIGMA_E_INVALID_ARG;
    }
    return model_open_common(NULL, data, size, params, out);
}

void sigma_model_close(sigma_model *model) {
    if (!model) return;
    sg_alloc alloc = model->alloc;
    sg_tokenizer_free(model);
    sg_free(&alloc, model->layers);
    sg_free(&alloc, model->rope_factors);
    sg_free(&alloc, model->name);
    sg_free(&alloc, model->packed);
    sg_gguf_close(model->gguf);
    pthread_mutex_destroy(&model->err_lock);
    sg_free(&alloc, model);
}

int sigma_model_last_error(const sigma_model *model, char *buf, size_t size) {
    if (!model || !buf || !size) return SIGMA_E_INVALID_ARG;
    sigma_model *m = (sigma_model *)model;
    pthread_mutex_lock(&m->err_lock);
    snprintf(buf, size, "%s", m->err.msg);
    pthread_mutex_unlock(&m->err_lock);
    return SIGMA_OK;
}

