/* sigma-server: an OpenAI-compatible HTTP server over libsigma's public API.
 *
 * Threads: libmicrohttpd runs one thread per connection; those threads parse
 * and validate a request, tokenize its prompt (the model is thread-safe) and
 * queue it (with its sampler, whose grammar is compiled there). One
 * scheduler thread owns every session, running sampler and decoder:
 * each step it gives waiting requests to free slots (reusing the longest
 * common token prefix a slot already holds), evaluates the next prompt chunk
 * or generated token of every active slot (eval_step, the one place that
 * touches the forward pass), then samples, decodes and hands text back to
 * the connection threads, which block on the request's condition variable.
 * The main thread waits for SIGTERM/SIGINT and drains. See docs/server.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <sigma/sigma.h>

#define MAX_STOPS 16
#define MAX_STOP_LEN 256
#define MAX_MESSAGES 4096

/* ---- small helpers ------------------------------------------------------ */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void logf_(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sigma-server: %s\n", line);
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) return -1;
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_addf(buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) return -1;
    return buf_add(b, tmp, (size_t)n);
}

/* ---- options -------------------------------------------------------------- */

typedef struct options {
    const char *model;
    const char *alias;
    const char *host;
    int port;
    int parallel;
    uint32_t n_ctx;
    uint32_t threads;
    uint32_t chunk;
    const char *api_key;
    const char *kv;
    size_t max_body;
    int max_queue;
    int32_t default_max_tokens;
    double drain_s;
    const char *port_file;
} options;

static void usage(FILE *f) {
    fprintf(f,
        "usage: sigma-server -m MODEL [options]\n"
        "\n"
        "Serve a GGUF model over an OpenAI-compatible HTTP API:\n"
        "  POST /v1/chat/completions, POST /v1/completions, GET /v1/models,\n"
        "  GET /health, GET /metrics (Prometheus text format).\n"
        "\n"
        "  -m, --model PATH        model file (required)\n"
        "      --alias NAME        model name reported and accepted (default: the\n"
        "                          file name without .gguf)\n"
        "      --host ADDR         IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
        "      --port N            TCP port (default 8080; 0 = any free port)\n"
        "      --port-file PATH    write the bound port to PATH once listening\n"
        "  -np, --parallel N       slots: requests generated concurrently (default 4)\n"
        "  -c, --ctx-size N        context per slot in tokens (default: the model's\n"
        "                          trained length, at most 4096)\n"
        "  -t, --threads N         worker threads for evaluation (default: online CPUs)\n"
        "      --chunk N           prompt tokens evaluated per slot per step (default 128)\n"
        "      --kv NAME[:OPTS]    KV-cache strategy of every slot (default dense)\n"
        "      --api-key KEY       require 'Authorization: Bearer KEY' on /v1/*\n"
        "                          (default: $SIGMA_API_KEY, else no key)\n"
        "      --max-body BYTES    largest request body accepted (default 1048576)\n"
        "      --max-queue N       requests waiting for a slot before 503 (default 64)\n"
        "      --max-tokens N      max_tokens when a request gives none (default 512)\n"
        "      --drain-timeout S   on SIGTERM, seconds to let in-flight requests finish\n"
        "                          before cancelling them (default 10)\n"
        "  -h, --help              show this help\n"
        "\n"
        "SIGTERM or SIGINT: stop accepting, finish or cancel in-flight requests within\n"
        "the drain timeout, exit 0. Exit status: 0 ok, 1 error, 2 usage error.\n");
}

static void die_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sigma-server: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    exit(2);
}

static long long parse_int(const char *opt, const char *s, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die_usage("%s: '%s' is not an integer in [%lld, %lld]", opt, s, lo, hi);
    return v;
}

static void parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->parallel = 4;
    o->chunk = 128;
    o->max_body = 1 << 20;
    o->max_queue = 64;
    o->default_max_tokens = 512;
    o->drain_s = 10;
    const char *env_key = getenv("SIGMA_API_KEY");
    if (env_key && *env_key) o->api_key = env_key;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (a[0] != '-') die_usage("unexpected argument '%s'", a);
        if (i + 1 >= argc) die_usage("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--alias")) o->alias = v;
        else if (!strcmp(a, "--host")) o->host = v;
        else if (!strcmp(a, "--port")) o->port = (int)parse_int(a, v, 0, 65535);
        else if (!strcmp(a, "--port-file")) o->port_file = v;
        else if (!strcmp(a, "-np") || !strcmp(a, "--parallel"))
            o->parallel = (int)parse_int(a, v, 1, 256);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
            o->n_ctx = (uint32_t)parse_int(a, v, 0, 1 << 24);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            o->threads = (uint32_t)parse_int(a, v, 0, 1024);
        else if (!strcmp(a, "--chunk")) o->chunk = (uint32_t)parse_int(a, v, 1, 4096);
        else if (!strcmp(a, "--kv")) o->kv = v;
        else if (!strcmp(a, "--api-key")) o->api_key = v;
        else if (!strcmp(a, "--max-body"))
            o->max_body = (size_t)parse_int(a, v, 1024, (long long)1 << 30);
        else if (!strcmp(a, "--max-queue")) o->max_queue = (int)parse_int(a, v, 0, 1 << 20);
        else if (!strcmp(a, "--max-tokens"))
            o->default_max_tokens = (int32_t)parse_int(a, v, 1, INT32_MAX);
        else if (!strcmp(a, "--drain-timeout"))
            o->drain_s = (double)parse_int(a, v, 0, 3600);
        else die_usage("unknown option '%s'", a);
    }
    if (!o->model) die_usage("no model: give -m MODEL");
    if (o->api_key && !*o->api_key) die_usage("--api-key must not be empty");
}

/* ---- requests --------------------------------------------------------------- */

enum req_kind { REQ_CHAT, REQ_COMPLETION };
enum req_state { RS_QUEUED, RS_RUNNING, RS_DONE };

typedef struct request {
    /* set by the connection thread before queueing, read-only afterwards */
    enum req_kind kind;
    int stream;
    int include_usage;
    char id[48];
    long long created;
    sigma_token *prompt;
    size_t n_prompt;
    int32_t max_tokens;
    sigma_sampler_params sp;
    char *grammar;           /* response_format as GBNF (sp.grammar), or NULL */
    sigma_sampler *sampler;  /* opened while parsing; the slot takes it over */
    char *stops[MAX_STOPS + 2];
    size_t n_stops;
    int client_fd;           /* dup of the connection's socket, or -1 */
    double t_queued;

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    enum req_state state;
    atomic_int cancelled;    /* the client went away: stop at the next step */
    buf out;                 /* stream: SSE bytes not yet sent; else the text */
    size_t out_sent;
    const char *finish;      /* "stop", "length", or NULL while running */
    int err_status;          /* HTTP status of a failure (0 = none) */
    char err_msg[256];
    uint32_t n_cached, n_generated;
    struct request *next;    /* queue link, under the server lock */
} request;

static void req_unref(request *r) {
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left) return;
    free(r->prompt);
    free(r->grammar);
    sigma_sampler_close(r->sampler);
    for (size_t i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->out.p);
    if (r->client_fd >= 0) close(r->client_fd);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* ---- the server ----------------------------------------------------------- */

typedef struct slot {
    int index;
    sigma_session *session;
    request *req;            /* NULL when idle */
    sigma_sampler *sampler;
    sigma_decoder *dec;
    size_t n_done;           /* prompt tokens evaluated so far */
    sigma_token next;        /* sampled token waiting to be evaluated, or NONE */
    buf text;                /* generated text not yet emitted (stop holdback) */
    size_t text_scan;
    double t_start, t_first;
    atomic_int abort_eval;   /* polled by the session's cancel callback */
} slot;

typedef struct server {
    options opt;
    sigma_model *model;
    sigma_model_info info;
    sigma_threadpool *pool;
    char model_name[256];
    int plain_template;
    uint32_t n_ctx;
    slot *slots;
    int n_slots;

    pthread_mutex_t mu;      /* queue, counters, flags */
    pthread_mutex_t grammar_mu; /* around model calls whose message we read */
    pthread_cond_t cv;
    request *q_head, *q_tail;
    int q_len;
    int n_active;
    int n_open;              /* requests whose headers arrived, not yet completed */
    int draining;            /* no new requests */
    int stop;                /* scheduler exits */
    atomic_int hard_cancel;  /* cancel everything now */
    atomic_ullong id_counter;

    /* metrics, under mu */
    unsigned long long m_requests, m_errors, m_prompt_tokens, m_cached_tokens, m_gen_tokens,
        m_steps, m_cancelled;
    unsigned long long m_status[6];
    double m_eval_s, m_ttft_sum;
    unsigned long long m_ttft_n;
} server;

/* ---- errors as OpenAI JSON ------------------------------------------------------ */

static struct MHD_Response *json_response(const char *text) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (resp) MHD_add_response_header(resp, "Content-Type", "application/json");
    return resp;
}

static void count_status(server *srv, unsigned status) {
    pthread_mutex_lock(&srv->mu);
    unsigned c = status / 100;
    if (c < 6) srv->m_status[c]++;
    if (status >= 400) srv->m_errors++;
    pthread_mutex_unlock(&srv->mu);
}

static enum MHD_Result send_json(server *srv, struct MHD_Connection *c, unsigned status,
                                 const char *text) {
    struct MHD_Response *resp = json_response(text);
    if (!resp) return MHD_NO;
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result r = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    count_status(srv, status);
    return r;
}

static enum MHD_Result send_error(server *srv, struct MHD_Connection *c, unsigned status,
                                  const char *type, const char *param, const char *code,
                                  const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    enum MHD_Result r = send_json(srv, c, status, text ? text : "{\"error\":{}}");
    free(text);
    return r;
}

/* a validation failure: 400 invalid_request_error naming the parameter */
typedef struct verr {
    unsigned status;
    const char *type, *param, *code;
    char msg[400];
} verr;

static int fail(verr *e, unsigned status, const char *param, const char *code,
                const char *fmt, ...) {
    e->status = status;
    e->type = status == 401 ? "authentication_error"
              : status >= 500 ? "server_error" : "invalid_request_error";
    e->param = param;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- request parsing ---------------------------------------------------------- */

static cJSON *field(const cJSON *obj, const char *name) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return (v && cJSON_IsNull(v)) ? NULL : v; /* null counts as absent */
}

static int get_number(const cJSON *obj, const char *name, double lo, double hi, double *out,
                      verr *e) {
    cJSON *v = field(obj, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return fail(e, 400, name, "invalid_type", "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return fail(e, 400, name, "invalid_value", "'%s' must be between %g and %g", name, lo,
                    hi);
    *out = v->valuedouble;
    return 1;
}

static int get_integer(const cJSON *obj, const char *name, double lo, double hi, double *out,
                       verr *e) {
    cJSON *v = field(obj, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        floor(v->valuedouble) != v->valuedouble)
        return fail(e, 400, name, "invalid_type", "'%s' must be an integer", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return fail(e, 400, name, "invalid_value", "'%s' must be between %.0f and %.0f", name,
                    lo, hi);
    *out = v->valuedouble;
    return 1;
}

static int get_bool(const cJSON *obj, const char *name, int *out, verr *e) {
    cJSON *v = field(obj, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return fail(e, 400, name, "invalid_type", "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return 1;
}

/* Text of a message's content: a string or an array of {"type":"text"} parts. */
static int message_content(const cJSON *content, buf *out, verr *e) {
    if (cJSON_IsString(content)) return buf_add(out, content->valuestring,
                                                strlen(content->valuestring)) ? fail(e, 500, NULL, NULL, "out of memory") : 0;
    if (!cJSON_IsArray(content))
        return fail(e, 400, "messages", "invalid_type",
                    "a message's 'content' must be a string or an array of text parts");
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return fail(e, 400, "messages", "invalid_type",
                        "each content part must be an object with a string 'type'");
        if (strcmp(type->valuestring, "text") != 0)
            return fail(e, 400, "messages", "unsupported_content",
                        "content parts of type '%.64s' are not supported (text only)",
                        type->valuestring);
        if (!cJSON_IsString(text))
            return fail(e, 400, "messages", "invalid_type", "a text part needs a string 'text'");
        if (buf_add(out, text->valuestring, strlen(text->valuestring)))
            return fail(e, 500, NULL, NULL, "out of memory");
    }
    return 0;
}

static int tokenize_alloc(const sigma_model *m, const char *text, size_t len, uint32_t flags,
                          sigma_token **out, size_t *n, verr *e) {
    size_t cap = len + 8;
    for (int attempt = 0; attempt < 2; attempt++) {
        sigma_token *t = malloc(cap * sizeof *t);
        if (!t) return fail(e, 500, NULL, NULL, "out of memory");
        size_t need = 0;
        int st = sigma_tokenize(m, text, len, t, cap, &need, flags);
        if (st == SIGMA_OK) {
            *out = t;
            *n = need;
            return 0;
        }
        free(t);
        if (st != SIGMA_E_BUFFER_TOO_SMALL)
            return fail(e, 400, NULL, NULL, "cannot tokenize the prompt: %s", sigma_strerror(st));
        cap = need;
    }
    return fail(e, 500, NULL, NULL, "tokenizer size mismatch");
}

/* The chat prompt: messages rendered by the model's template. */
static int parse_messages(server *srv, const cJSON *body, request *r, verr *e) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!msgs) return fail(e, 400, "messages", "missing_required_parameter",
                           "'messages' is required");
    if (!cJSON_IsArray(msgs)) return fail(e, 400, "messages", "invalid_type",
                                          "'messages' must be an array");
    int n = cJSON_GetArraySize(msgs);
    if (n <= 0) return fail(e, 400, "messages", "invalid_value", "'messages' must not be empty");
    if (n > MAX_MESSAGES)
        return fail(e, 400, "messages", "invalid_value", "at most %d messages", MAX_MESSAGES);
    sigma_chat_message *cm = calloc((size_t)n, sizeof *cm);
    buf *texts = calloc((size_t)n, sizeof *texts);
    int rc = 0;
    if (!cm || !texts) {
        rc = fail(e, 500, NULL, NULL, "out of memory");
        goto out;
    }
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        if (!cJSON_IsObject(m)) {
            rc = fail(e, 400, "messages", "invalid_type", "messages[%d] must be an object", i);
            goto out;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role)) {
            rc = fail(e, 400, "messages", role ? "invalid_type" : "missing_required_parameter",
                      "messages[%d].role must be a string", i);
            goto out;
        }
        const char *rs = role->valuestring;
        if (!strcmp(rs, "developer")) rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant")) {
            rc = fail(e, 400, "messages", "invalid_value",
                      "messages[%d].role '%.32s' is not supported (system, developer, user, "
                      "assistant)", i, rs);
            goto out;
        }
        if (!content || cJSON_IsNull(content)) {
            rc = fail(e, 400, "messages", "missing_required_parameter",
                      "messages[%d].content is required", i);
            goto out;
        }
        if (message_content(content, &texts[i], e)) {
            rc = -1;
            goto out;
        }
        if (buf_add(&texts[i], "", 0)) {
            rc = fail(e, 500, NULL, NULL, "out of memory");
            goto out;
        }
        cm[i].role = rs;
        cm[i].content = texts[i].p;
        i++;
    }
    size_t len = 0;
    int st = sigma_chat_render(srv->model, cm, (size_t)n, 1, NULL, 0, &len);
    if (st != SIGMA_OK && st != SIGMA_E_BUFFER_TOO_SMALL) {
        rc = fail(e, 400, "messages", NULL, "cannot render the chat: %s", sigma_strerror(st));
        goto out;
    }
    char *text = malloc(len + 1);
    if (!text) {
        rc = fail(e, 500, NULL, NULL, "out of memory");
        goto out;
    }
    st = sigma_chat_render(srv->model, cm, (size_t)n, 1, text, len + 1, &len);
    if (st == SIGMA_OK)
        rc = tokenize_alloc(srv->model, text, len,
                            SIGMA_TOKENIZE_ADD_SPECIAL | SIGMA_TOKENIZE_PARSE_SPECIAL, &r->prompt,
                            &r->n_prompt, e);
    else
        rc = fail(e, 500, NULL, NULL, "cannot render the chat: %s", sigma_strerror(st));
    free(text);
out:
    if (texts)
        for (int k = 0; k < n; k++) free(texts[k].p);
    free(texts);
    free(cm);
    return rc;
}

static int parse_prompt(server *srv, const cJSON *body, request *r, verr *e) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (!p) return fail(e, 400, "prompt", "missing_required_parameter", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child))
        p = p->child; /* ["text"] */
    if (cJSON_IsString(p)) {
        const char *s = p->valuestring;
        return tokenize_alloc(srv->model, s, strlen(s), SIGMA_TOKENIZE_ADD_SPECIAL, &r->prompt,
                              &r->n_prompt, e);
    }
    if (cJSON_IsArray(p)) { /* token ids */
        int n = cJSON_GetArraySize(p);
        if (n <= 0) return fail(e, 400, "prompt", "invalid_value", "'prompt' must not be empty");
        const cJSON *t;
        cJSON_ArrayForEach(t, p) {
            if (cJSON_IsString(t))
                return fail(e, 400, "prompt", "invalid_value",
                            "only one prompt per request is supported");
            if (!cJSON_IsNumber(t) || floor(t->valuedouble) != t->valuedouble ||
                t->valuedouble < 0 || t->valuedouble >= srv->info.n_vocab)
                return fail(e, 400, "prompt", "invalid_value",
                            "'prompt' as an array must hold token ids in [0, %u)",
                            srv->info.n_vocab);
        }
        r->prompt = malloc((size_t)n * sizeof *r->prompt);
        if (!r->prompt) return fail(e, 500, NULL, NULL, "out of memory");
        int i = 0;
        cJSON_ArrayForEach(t, p) r->prompt[i++] = (sigma_token)t->valuedouble;
        r->n_prompt = (size_t)n;
        return 0;
    }
    return fail(e, 400, "prompt", "invalid_type",
                "'prompt' must be a string, an array of one string, or an array of token ids");
}

static int parse_stop(const cJSON *body, request *r, verr *e) {
    const cJSON *s = field(body, "stop");
    if (!s) return 0;
    const cJSON *one = s;
    int n = 1;
    if (cJSON_IsArray(s)) {
        n = cJSON_GetArraySize(s);
        if (n > MAX_STOPS)
            return fail(e, 400, "stop", "invalid_value", "at most %d stop sequences", MAX_STOPS);
        one = s->child;
    } else if (!cJSON_IsString(s)) {
        return fail(e, 400, "stop", "invalid_type", "'stop' must be a string or an array of strings");
    }
    for (int i = 0; i < n; i++, one = one->next) {
        if (!cJSON_IsString(one))
            return fail(e, 400, "stop", "invalid_type", "'stop' must hold strings");
        size_t len = strlen(one->valuestring);
        if (len == 0 || len > MAX_STOP_LEN)
            return fail(e, 400, "stop", "invalid_value",
                        "each stop sequence must have 1 to %d bytes", MAX_STOP_LEN);
        r->stops[r->n_stops] = strdup(one->valuestring);
        if (!r->stops[r->n_stops]) return fail(e, 500, NULL, NULL, "out of memory");
        r->n_stops++;
    }
    return 0;
}

/* response_format: "text"; "json_object" (any JSON object); "json_schema"
 * (the schema converted to a grammar by sigma_json_schema_to_grammar). Sets
 * r->grammar for the last two. */
static int parse_response_format(server *srv, const cJSON *body, request *r, verr *e) {
    const cJSON *rf = field(body, "response_format");
    if (!rf) return 0;
    if (!cJSON_IsObject(rf))
        return fail(e, 400, "response_format", "invalid_type", "'response_format' must be an object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsString(type))
        return fail(e, 400, "response_format", "invalid_type",
                    "'response_format.type' must be a string");
    if (!strcmp(type->valuestring, "text")) return 0;
    char *schema_text = NULL;
    if (!strcmp(type->valuestring, "json_schema")) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        if (!cJSON_IsObject(js))
            return fail(e, 400, "response_format", "invalid_type",
                        "'response_format.json_schema' must be an object");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
        if (!cJSON_IsString(name))
            return fail(e, 400, "response_format", "missing_required_parameter",
                        "'response_format.json_schema.name' is required (a string)");
        const cJSON *strict = cJSON_GetObjectItemCaseSensitive(js, "strict");
        if (strict && !cJSON_IsBool(strict) && !cJSON_IsNull(strict))
            return fail(e, 400, "response_format", "invalid_type",
                        "'response_format.json_schema.strict' must be a boolean");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (schema && cJSON_IsFalse(schema))
            return fail(e, 400, "response_format", "invalid_value",
                        "'response_format.json_schema.schema' is false: no value matches it");
        if (schema && !cJSON_IsObject(schema) && !cJSON_IsTrue(schema))
            return fail(e, 400, "response_format", "invalid_type",
                        "'response_format.json_schema.schema' must be an object");
        /* absent or true: any JSON value */
        schema_text = schema && cJSON_IsObject(schema) ? cJSON_PrintUnformatted(schema)
                                                       : strdup("{}");
    } else if (!strcmp(type->valuestring, "json_object")) {
        schema_text = strdup("{\"type\":\"object\",\"additionalProperties\":true}");
    } else {
        return fail(e, 400, "response_format", "invalid_value",
                    "'response_format.type' must be 'text', 'json_object' or 'json_schema'");
    }
    if (!schema_text) return fail(e, 500, NULL, NULL, "out of memory");
    /* the model's last error is shared by every thread: read it under a lock */
    pthread_mutex_lock(&srv->grammar_mu);
    size_t need = 0;
    size_t slen = strlen(schema_text);
    int st = sigma_json_schema_to_grammar(srv->model, schema_text, slen, NULL, 0, &need);
    if (st == SIGMA_E_BUFFER_TOO_SMALL) {
        r->grammar = malloc(need + 1);
        st = r->grammar ? sigma_json_schema_to_grammar(srv->model, schema_text, slen, r->grammar,
                                                       need + 1, &need)
                        : SIGMA_E_NOMEM;
    }
    char msg[300] = "";
    if (st != SIGMA_OK) sigma_model_last_error(srv->model, msg, sizeof msg);
    pthread_mutex_unlock(&srv->grammar_mu);
    free(schema_text);
    if (st == SIGMA_E_NOMEM) return fail(e, 500, NULL, NULL, "out of memory");
    if (st == SIGMA_E_UNSUPPORTED)
        return fail(e, 400, "response_format", "unsupported_value",
                    "response_format.json_schema.schema uses what this server cannot enforce: %s",
                    msg);
    if (st != SIGMA_OK)
        return fail(e, 400, "response_format", "invalid_value",
                    "response_format.json_schema.schema is not a valid JSON Schema: %s", msg);
    r->sp.grammar = r->grammar;
    return 0;
}

/* Parse and validate a body into a request (prompt tokenized). */
static int parse_request(server *srv, enum req_kind kind, const char *body, size_t len,
                         request *r, verr *e) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) return fail(e, 400, NULL, "invalid_json", "the body is not valid JSON");
    int rc = -1;
    if (end) /* only whitespace may follow */
        for (const char *p = end; p < body + len; p++)
            if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' && *p != '\0') {
                fail(e, 400, NULL, "invalid_json", "the body has data after the JSON value");
                goto out;
            }
    if (!cJSON_IsObject(root)) {
        fail(e, 400, NULL, "invalid_json", "the body must be a JSON object");
        goto out;
    }
    const cJSON *model = field(root, "model");
    if (model && !cJSON_IsString(model)) {
        fail(e, 400, "model", "invalid_type", "'model' must be a string");
        goto out;
    }
    if (model && strcmp(model->valuestring, srv->model_name) != 0) {
        fail(e, 404, "model", "model_not_found",
             "The model '%.128s' does not exist (this server serves '%s')", model->valuestring,
             srv->model_name);
        goto out;
    }
    double d;
    int b = 0;
    r->kind = kind;
    sigma_sampler_params_init(&r->sp, sizeof r->sp);
    r->sp.temperature = 1.0f;
    r->sp.top_k = 0;
    r->sp.top_p = 1.0f;
    r->sp.min_p = 0.0f;
    r->sp.penalty_last_n = 0;
    r->sp.seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)(uintptr_t)r;
    int g;
    if ((g = get_number(root, "temperature", 0, 2, &d, e)) < 0) goto out;
    if (g) r->sp.temperature = (float)d;
    if ((g = get_number(root, "top_p", 0, 1, &d, e)) < 0) goto out;
    if (g) r->sp.top_p = (float)d;
    if ((g = get_integer(root, "top_k", 0, 1e6, &d, e)) < 0) goto out;
    if (g) r->sp.top_k = (int32_t)d;
    if ((g = get_number(root, "min_p", 0, 1, &d, e)) < 0) goto out;
    if (g) r->sp.min_p = (float)d;
    if ((g = get_number(root, "frequency_penalty", -2, 2, &d, e)) < 0) goto out;
    if (g) r->sp.frequency_penalty = (float)d;
    if ((g = get_number(root, "presence_penalty", -2, 2, &d, e)) < 0) goto out;
    if (g) r->sp.presence_penalty = (float)d;
    if (r->sp.frequency_penalty != 0 || r->sp.presence_penalty != 0) r->sp.penalty_last_n = 64;
    if ((g = get_integer(root, "seed", -9.2e18, 1.8e19, &d, e)) < 0) goto out;
    if (g) r->sp.seed = d < 0 ? (uint64_t)(int64_t)d : (uint64_t)d;
    r->max_tokens = 0;
    if ((g = get_integer(root, "max_tokens", 1, INT32_MAX, &d, e)) < 0) goto out;
    if (g) r->max_tokens = (int32_t)d;
    if ((g = get_integer(root, "max_completion_tokens", 1, INT32_MAX, &d, e)) < 0) goto out;
    if (g) r->max_tokens = (int32_t)d;
    if ((g = get_integer(root, "n", 1, 1, &d, e)) < 0) {
        e->msg[0] = 0;
        snprintf(e->msg, sizeof e->msg, "only n = 1 is supported");
        goto out;
    }
    if (get_bool(root, "stream", &r->stream, e) < 0) goto out;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) {
            fail(e, 400, "stream_options", "invalid_type", "'stream_options' must be an object");
            goto out;
        }
        if (!r->stream) {
            fail(e, 400, "stream_options", "invalid_value",
                 "'stream_options' is only allowed with stream: true");
            goto out;
        }
        if (get_bool(so, "include_usage", &r->include_usage, e) < 0) goto out;
    }
    if (kind == REQ_CHAT) {
        if (get_bool(root, "logprobs", &b, e) < 0) goto out;
        if (b) {
            fail(e, 400, "logprobs", "unsupported_value", "logprobs are not supported");
            goto out;
        }
    } else {
        if ((g = get_integer(root, "logprobs", 0, 5, &d, e)) < 0) goto out;
        if (g && d > 0) {
            fail(e, 400, "logprobs", "unsupported_value", "logprobs are not supported");
            goto out;
        }
        if (get_bool(root, "echo", &b, e) < 0) goto out;
        if (b) {
            fail(e, 400, "echo", "unsupported_value", "echo is not supported");
            goto out;
        }
        const cJSON *suffix = field(root, "suffix");
        if (suffix) {
            fail(e, 400, "suffix", "unsupported_value", "suffix is not supported");
            goto out;
        }
    }
    static const char *const unsupported[] = {"tools", "functions", "tool_choice",
                                              "function_call"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (kind == REQ_CHAT && field(root, unsupported[i])) {
            fail(e, 400, unsupported[i], "unsupported_value", "'%s' is not supported",
                 unsupported[i]);
            goto out;
        }
    if (parse_response_format(srv, root, r, e)) goto out;
    if (parse_stop(root, r, e)) goto out;
    if (kind == REQ_CHAT ? parse_messages(srv, root, r, e) : parse_prompt(srv, root, r, e))
        goto out;
    if (r->n_prompt == 0) {
        fail(e, 400, kind == REQ_CHAT ? "messages" : "prompt", "invalid_value",
             "the prompt has no tokens");
        goto out;
    }
    if (r->n_prompt >= srv->n_ctx) {
        fail(e, 400, kind == REQ_CHAT ? "messages" : "prompt", "context_length_exceeded",
             "This model's maximum context length is %u tokens; the prompt has %zu tokens",
             srv->n_ctx, r->n_prompt);
        goto out;
    }
    if (kind == REQ_CHAT && srv->plain_template && r->n_stops + 2 <= MAX_STOPS + 2) {
        r->stops[r->n_stops++] = strdup("\nUser:");
        r->stops[r->n_stops++] = strdup("\nSystem:");
        if (!r->stops[r->n_stops - 1] || !r->stops[r->n_stops - 2]) {
            fail(e, 500, NULL, NULL, "out of memory");
            goto out;
        }
    }
    if (r->max_tokens == 0) r->max_tokens = srv->opt.default_max_tokens;
    /* the sampler (and its grammar) is made here so that a grammar the
     * sampler rejects is the client's 400, not a failed generation */
    pthread_mutex_lock(&srv->grammar_mu);
    int st = sigma_sampler_open(srv->model, &r->sp, &r->sampler);
    char msg[300] = "";
    if (st != SIGMA_OK) sigma_model_last_error(srv->model, msg, sizeof msg);
    pthread_mutex_unlock(&srv->grammar_mu);
    if (st == SIGMA_E_NOMEM) {
        fail(e, 500, NULL, NULL, "out of memory");
        goto out;
    }
    if (st != SIGMA_OK) {
        fail(e, 400, r->grammar ? "response_format" : NULL, "invalid_value",
             "the sampler rejects the request: %s", msg);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- JSON output ---------------------------------------------------------------- */

static cJSON *usage_json(const request *r) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)r->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_generated);
    cJSON_AddNumberToObject(u, "total_tokens", (double)r->n_prompt + r->n_generated);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", r->n_cached);
    return u;
}

static cJSON *envelope(server *srv, const request *r, int chunk) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", r->kind == REQ_CHAT
                                             ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                             : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", srv->model_name);
    cJSON_AddStringToObject(o, "system_fingerprint", "sigma-" SIGMA_VERSION_STRING);
    return o;
}

/* One choice with text (delta for chat chunks), finish reason or null. */
static cJSON *choice_json(const request *r, const char *text, size_t len, const char *finish,
                          int chunk, int role) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    char *t = malloc(len + 1);
    if (t) {
        memcpy(t, text, len);
        t[len] = '\0';
    }
    if (r->kind == REQ_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c, chunk ? "delta" : "message");
        if (!chunk || role) cJSON_AddStringToObject(m, "role", "assistant");
        if (!chunk || len || role) cJSON_AddStringToObject(m, "content", t ? t : "");
        if (!chunk) cJSON_AddNullToObject(m, "refusal");
    } else {
        cJSON_AddStringToObject(c, "text", t ? t : "");
    }
    free(t);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    return c;
}

/* Append one SSE event to r->out (caller holds r->mu). */
static void sse_add(request *r, cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!s) return;
    buf_add(&r->out, "data: ", 6);
    buf_add(&r->out, s, strlen(s));
    buf_add(&r->out, "\n\n", 2);
    free(s);
}

static void sse_chunk(server *srv, request *r, const char *text, size_t len, const char *finish,
                      int role) {
    cJSON *o = envelope(srv, r, 1);
    cJSON *arr = cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToArray(arr, choice_json(r, text, len, finish, 1, role));
    if (r->include_usage) cJSON_AddNullToObject(o, "usage");
    sse_add(r, o);
}

/* ---- the scheduler (one thread) -------------------------------------------------------- */

static int slot_cancel_cb(void *user) {
    slot *s = user;
    return atomic_load(&s->abort_eval);
}

/* Hand text to the connection (caller holds r->mu). */
static void deliver(server *srv, request *r, const char *text, size_t len) {
    if (!len) return;
    if (r->stream) {
        sse_chunk(srv, r, text, len, NULL, 0);
        pthread_cond_broadcast(&r->cv);
    } else {
        buf_add(&r->out, text, len);
    }
}

/* End a slot's request: flush held text, write the final events, wake the
 * connection, free the slot. */
static void finish_slot(server *srv, slot *s, const char *reason, int err_status,
                        const char *err_msg) {
    request *r = s->req;
    pthread_mutex_lock(&r->mu);
    if (!err_status && s->text.len > s->text_scan) /* nothing of a stop string: emit */
        deliver(srv, r, s->text.p + s->text_scan, s->text.len - s->text_scan);
    if (err_status) {
        r->err_status = err_status;
        snprintf(r->err_msg, sizeof r->err_msg, "%s", err_msg ? err_msg : "error");
        if (r->stream) {
            cJSON *o = cJSON_CreateObject();
            cJSON *e = cJSON_AddObjectToObject(o, "error");
            cJSON_AddStringToObject(e, "message", r->err_msg);
            cJSON_AddStringToObject(e, "type", "server_error");
            sse_add(r, o);
        }
    } else {
        r->finish = reason;
        if (r->stream) {
            sse_chunk(srv, r, "", 0, reason, 0);
            if (r->include_usage) {
                cJSON *o = envelope(srv, r, 1);
                cJSON_AddArrayToObject(o, "choices");
                cJSON_AddItemToObject(o, "usage", usage_json(r));
                sse_add(r, o);
            }
        }
    }
    if (r->stream) buf_add(&r->out, "data: [DONE]\n\n", 14);
    r->state = RS_DONE;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);

    logf_("%s: %s, prompt %zu tokens (%u cached), %u generated, %.3f s", r->id,
          err_status ? r->err_msg : reason, r->n_prompt, r->n_cached, r->n_generated,
          now_s() - r->t_queued);
    pthread_mutex_lock(&srv->mu);
    srv->n_active--;
    srv->m_gen_tokens += r->n_generated;
    if (err_status == 499) srv->m_cancelled++;
    pthread_mutex_unlock(&srv->mu);

    sigma_sampler_close(s->sampler);
    sigma_decoder_close(s->dec);
    s->sampler = NULL;
    s->dec = NULL;
    s->req = NULL;
    s->text.len = 0;
    s->text_scan = 0;
    req_unref(r);
}

/* Pass new text through the stop strings; returns 1 when a stop string
 * ended the request. Text that could still begin a stop string is held. */
static int emit_text(server *srv, slot *s, const char *text, size_t len) {
    request *r = s->req;
    size_t from = s->text_scan;
    if (buf_add(&s->text, text, len)) return 0;
    size_t maxlen = 0;
    for (size_t i = 0; i < r->n_stops; i++) {
        size_t l = strlen(r->stops[i]);
        if (l > maxlen) maxlen = l;
    }
    /* earliest complete match in the not-yet-emitted text */
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < r->n_stops; i++) {
        char *m = memmem(s->text.p + from, s->text.len - from, r->stops[i], strlen(r->stops[i]));
        if (m && (size_t)(m - s->text.p) < best) best = (size_t)(m - s->text.p);
    }
    if (best != SIZE_MAX) {
        pthread_mutex_lock(&r->mu);
        deliver(srv, r, s->text.p + from, best - from);
        pthread_mutex_unlock(&r->mu);
        s->text_scan = s->text.len = best;
        return 1;
    }
    /* hold the longest suffix that is a prefix of a stop string */
    size_t hold = 0;
    size_t avail = s->text.len - from;
    for (size_t k = (maxlen ? maxlen - 1 : 0); k > 0 && !hold; k--) {
        if (k > avail) continue;
        const char *suf = s->text.p + s->text.len - k;
        for (size_t i = 0; i < r->n_stops; i++)
            if (strlen(r->stops[i]) > k && !memcmp(r->stops[i], suf, k)) {
                hold = k;
                break;
            }
    }
    size_t upto = s->text.len - hold;
    if (upto > from) {
        pthread_mutex_lock(&r->mu);
        deliver(srv, r, s->text.p + from, upto - from);
        pthread_mutex_unlock(&r->mu);
        s->text_scan = upto;
    }
    return 0;
}

/* Was the client's connection closed? (peek on our dup of its socket) */
static int client_gone(const request *r) {
    if (atomic_load(&((request *)r)->cancelled)) return 1;
    if (r->client_fd < 0) return 0;
    char c;
    ssize_t n = recv(r->client_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return 1;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 1;
    return 0;
}

static size_t common_prefix(const sigma_token *a, size_t na, const sigma_token *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Give queued requests to idle slots: the idle slot whose tokens share the
 * longest prefix with the prompt wins; it is rewound to that prefix. */
static void assign_slots(server *srv) {
    for (;;) {
        pthread_mutex_lock(&srv->mu);
        request *r = srv->q_head;
        int idle = 0;
        for (int i = 0; i < srv->n_slots; i++) idle += srv->slots[i].req == NULL;
        if (!r || !idle) {
            pthread_mutex_unlock(&srv->mu);
            return;
        }
        srv->q_head = r->next;
        if (!srv->q_head) srv->q_tail = NULL;
        srv->q_len--;
        srv->n_active++;
        pthread_mutex_unlock(&srv->mu);

        slot *best = NULL;
        size_t best_lcp = 0;
        for (int i = 0; i < srv->n_slots; i++) {
            slot *s = &srv->slots[i];
            if (s->req) continue;
            const sigma_token *t = NULL;
            size_t n = 0;
            if (sigma_session_tokens(s->session, &t, &n) != SIGMA_OK) n = 0;
            size_t l = common_prefix(t, n, r->prompt, r->n_prompt);
            if (!best || l > best_lcp) {
                best = s;
                best_lcp = l;
            }
        }
        slot *s = best;
        if (best_lcp >= r->n_prompt) best_lcp = r->n_prompt - 1; /* fresh logits */
        s->req = r;
        s->n_done = best_lcp;
        s->next = SIGMA_TOKEN_NONE;
        s->text.len = s->text_scan = 0;
        s->t_start = now_s();
        s->t_first = 0;
        atomic_store(&s->abort_eval, 0);
        pthread_mutex_lock(&r->mu);
        r->state = RS_RUNNING;
        r->n_cached = (uint32_t)best_lcp;
        pthread_mutex_unlock(&r->mu);
        pthread_mutex_lock(&srv->mu);
        srv->m_prompt_tokens += r->n_prompt;
        srv->m_cached_tokens += best_lcp;
        pthread_mutex_unlock(&srv->mu);
        int st = sigma_session_rewind(s->session, (uint32_t)best_lcp);
        s->sampler = r->sampler; /* opened by the connection thread */
        r->sampler = NULL;
        if (st == SIGMA_OK) st = sigma_decoder_open(srv->model, 0, &s->dec);
        for (size_t i = 0; st == SIGMA_OK && i < r->n_prompt; i++)
            st = sigma_sampler_accept(s->sampler, r->prompt[i]);
        if (st != SIGMA_OK) {
            char msg[200];
            snprintf(msg, sizeof msg, "cannot start the request: %s", sigma_strerror(st));
            finish_slot(srv, s, NULL, 500, msg);
        }
    }
}

/* One unit of work for one slot in a step. */
typedef struct eval_item {
    slot *s;
    const sigma_token *tokens;
    size_t n;
    int status;
} eval_item;

/* The forward pass of one step: every active slot's next tokens. This is the
 * only place that evaluates; with batched evaluation it becomes one call
 * (see docs/server.md, "Batching"). */
/* One step for every active slot in a single forward pass
 * (sigma_sessions_eval: the matmuls are shared by all slots' rows; each slot
 * keeps its own cache, and a slot that fails fails alone). */
static void eval_step(server *srv, eval_item *items, size_t n) {
    (void)srv;
    sigma_session *sessions[256];
    const sigma_token *tokens[256];
    size_t counts[256];
    int statuses[256];
    for (size_t i0 = 0; i0 < n; i0 += 256) {
        size_t m = n - i0 < 256 ? n - i0 : 256;
        for (size_t i = 0; i < m; i++) {
            sessions[i] = items[i0 + i].s->session;
            tokens[i] = items[i0 + i].tokens;
            counts[i] = items[i0 + i].n;
        }
        sigma_sessions_eval(sessions, tokens, counts, m, statuses);
        for (size_t i = 0; i < m; i++) items[i0 + i].status = statuses[i];
    }
}

/* After a successful eval of a slot whose prompt is complete: sample, check
 * the end conditions, decode and emit. */
static void sample_next(server *srv, slot *s) {
    request *r = s->req;
    const float *logits = NULL;
    int st = sigma_session_logits(s->session, -1, &logits);
    sigma_token tok = SIGMA_TOKEN_NONE;
    if (st == SIGMA_OK) st = sigma_sampler_sample(s->sampler, logits, &tok);
    if (st != SIGMA_OK) {
        finish_slot(srv, s, NULL, 500, "sampling failed");
        return;
    }
    if (!s->t_first) {
        s->t_first = now_s();
        pthread_mutex_lock(&srv->mu);
        srv->m_ttft_sum += s->t_first - r->t_queued;
        srv->m_ttft_n++;
        pthread_mutex_unlock(&srv->mu);
    }
    int eog = 0;
    sigma_token_is_eog(srv->model, tok, &eog);
    if (eog) {
        char tail[64];
        size_t len = 0;
        if (sigma_decoder_flush(s->dec, tail, sizeof tail, &len) == SIGMA_OK && len &&
            emit_text(srv, s, tail, len)) {
            finish_slot(srv, s, "stop", 0, NULL);
            return;
        }
        finish_slot(srv, s, "stop", 0, NULL);
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->n_generated++;
    pthread_mutex_unlock(&r->mu);
    char piece[256];
    size_t len = 0;
    st = sigma_decoder_push(s->dec, tok, piece, sizeof piece, &len);
    if (st != SIGMA_OK) len = 0;
    if (len && emit_text(srv, s, piece, len)) {
        finish_slot(srv, s, "stop", 0, NULL);
        return;
    }
    uint32_t pos = 0;
    sigma_session_position(s->session, &pos);
    if (r->n_generated >= (uint32_t)r->max_tokens || pos + 1 >= srv->n_ctx) {
        char tail[64];
        len = 0;
        if (sigma_decoder_flush(s->dec, tail, sizeof tail, &len) == SIGMA_OK && len &&
            emit_text(srv, s, tail, len)) {
            finish_slot(srv, s, "stop", 0, NULL);
            return;
        }
        finish_slot(srv, s, "length", 0, NULL);
        return;
    }
    s->next = tok;
}

/* One scheduler step; returns the number of slots that did work. */
static int step(server *srv) {
    assign_slots(srv);
    eval_item items[256];
    size_t n = 0;
    int hard = atomic_load(&srv->hard_cancel);
    for (int i = 0; i < srv->n_slots; i++) {
        slot *s = &srv->slots[i];
        if (!s->req) continue;
        if (hard) {
            finish_slot(srv, s, NULL, 503, "the server is shutting down");
            continue;
        }
        if (client_gone(s->req)) {
            finish_slot(srv, s, NULL, 499, "client disconnected");
            continue;
        }
        request *r = s->req;
        eval_item *it = &items[n++];
        it->s = s;
        if (s->n_done < r->n_prompt) {
            size_t left = r->n_prompt - s->n_done;
            it->tokens = r->prompt + s->n_done;
            it->n = left < srv->opt.chunk ? left : srv->opt.chunk;
        } else {
            it->tokens = &s->next;
            it->n = 1;
        }
    }
    if (!n) return 0;
    double t0 = now_s();
    eval_step(srv, items, n);
    double dt = now_s() - t0;
    pthread_mutex_lock(&srv->mu);
    srv->m_steps++;
    srv->m_eval_s += dt;
    pthread_mutex_unlock(&srv->mu);
    for (size_t i = 0; i < n; i++) {
        eval_item *it = &items[i];
        slot *s = it->s;
        if (it->status == SIGMA_E_CANCELLED) {
            finish_slot(srv, s, NULL, atomic_load(&srv->hard_cancel) ? 503 : 499, "cancelled");
            continue;
        }
        if (it->status == SIGMA_E_CONTEXT_FULL && s->n_done >= s->req->n_prompt) {
            finish_slot(srv, s, "length", 0, NULL);
            continue;
        }
        if (it->status != SIGMA_OK) {
            char msg[300];
            snprintf(msg, sizeof msg, "evaluation failed: %s", sigma_strerror(it->status));
            finish_slot(srv, s, NULL, 500, msg);
            continue;
        }
        if (s->n_done < s->req->n_prompt) {
            s->n_done += it->n;
            if (s->n_done < s->req->n_prompt) continue; /* more prompt next step */
        }
        sample_next(srv, s);
    }
    return (int)n;
}

static void *scheduler_main(void *arg) {
    server *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->mu);
        while (!srv->stop && !srv->q_head && srv->n_active == 0)
            pthread_cond_wait(&srv->cv, &srv->mu);
        int stop = srv->stop && !srv->q_head && srv->n_active == 0;
        pthread_mutex_unlock(&srv->mu);
        if (stop) break;
        step(srv);
    }
    return NULL;
}

/* ---- HTTP ---------------------------------------------------------------------------- */

typedef struct conn_ctx {
    buf body;
    int too_large;
    int responded;
} conn_ctx;

static int check_key(server *srv, struct MHD_Connection *c) {
    if (!srv->opt.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    /* constant-time compare over the key's length */
    const char *k = srv->opt.api_key;
    size_t kl = strlen(k), hl = strlen(h);
    unsigned diff = (unsigned)(kl ^ hl);
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)k[i] ^ (unsigned char)(i < hl ? h[i] : 0);
    return diff == 0;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    request *r = cls;
    pthread_mutex_lock(&r->mu);
    while (r->out_sent == r->out.len && r->state != RS_DONE) pthread_cond_wait(&r->cv, &r->mu);
    ssize_t n;
    if (r->out_sent < r->out.len) {
        size_t avail = r->out.len - r->out_sent;
        size_t k = avail < max ? avail : max;
        memcpy(out, r->out.p + r->out_sent, k);
        r->out_sent += k;
        if (r->out_sent == r->out.len) r->out.len = r->out_sent = 0;
        n = (ssize_t)k;
    } else {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void stream_free(void *cls) {
    request *r = cls;
    atomic_store(&r->cancelled, 1); /* a no-op once done; stops it otherwise */
    req_unref(r);
}

static void metrics_text(server *srv, buf *b) {
    pthread_mutex_lock(&srv->mu);
    buf_addf(b, "# HELP sigma_requests_total Completion requests accepted.\n"
                "# TYPE sigma_requests_total counter\nsigma_requests_total %llu\n",
             srv->m_requests);
    buf_addf(b, "# HELP sigma_http_responses_total HTTP responses by status class.\n"
                "# TYPE sigma_http_responses_total counter\n");
    for (int c = 2; c < 6; c++)
        buf_addf(b, "sigma_http_responses_total{class=\"%dxx\"} %llu\n", c, srv->m_status[c]);
    buf_addf(b, "# HELP sigma_requests_cancelled_total Requests stopped because the client left.\n"
                "# TYPE sigma_requests_cancelled_total counter\nsigma_requests_cancelled_total %llu\n",
             srv->m_cancelled);
    buf_addf(b, "# HELP sigma_prompt_tokens_total Prompt tokens of accepted requests.\n"
                "# TYPE sigma_prompt_tokens_total counter\nsigma_prompt_tokens_total %llu\n",
             srv->m_prompt_tokens);
    buf_addf(b, "# HELP sigma_prompt_tokens_cached_total Prompt tokens reused from a slot's cache.\n"
                "# TYPE sigma_prompt_tokens_cached_total counter\nsigma_prompt_tokens_cached_total %llu\n",
             srv->m_cached_tokens);
    buf_addf(b, "# HELP sigma_generated_tokens_total Tokens generated.\n"
                "# TYPE sigma_generated_tokens_total counter\nsigma_generated_tokens_total %llu\n",
             srv->m_gen_tokens);
    buf_addf(b, "# HELP sigma_queue_depth Requests waiting for a slot.\n"
                "# TYPE sigma_queue_depth gauge\nsigma_queue_depth %d\n", srv->q_len);
    buf_addf(b, "# HELP sigma_slots_busy Slots generating.\n"
                "# TYPE sigma_slots_busy gauge\nsigma_slots_busy %d\n", srv->n_active);
    buf_addf(b, "# HELP sigma_slots_total Slots (--parallel).\n"
                "# TYPE sigma_slots_total gauge\nsigma_slots_total %d\n", srv->n_slots);
    buf_addf(b, "# HELP sigma_steps_total Scheduler steps (forward passes over all slots).\n"
                "# TYPE sigma_steps_total counter\nsigma_steps_total %llu\n", srv->m_steps);
    buf_addf(b, "# HELP sigma_eval_seconds_total Time spent evaluating.\n"
                "# TYPE sigma_eval_seconds_total counter\nsigma_eval_seconds_total %.6f\n",
             srv->m_eval_s);
    buf_addf(b, "# HELP sigma_seconds_per_step Mean time of a step (per generated token of each slot).\n"
                "# TYPE sigma_seconds_per_step gauge\nsigma_seconds_per_step %.6f\n",
             srv->m_steps ? srv->m_eval_s / (double)srv->m_steps : 0.0);
    buf_addf(b, "# HELP sigma_time_to_first_token_seconds Time from queueing to the first token.\n"
                "# TYPE sigma_time_to_first_token_seconds summary\n"
                "sigma_time_to_first_token_seconds_sum %.6f\nsigma_time_to_first_token_seconds_count %llu\n",
             srv->m_ttft_sum, srv->m_ttft_n);
    pthread_mutex_unlock(&srv->mu);
}

static enum MHD_Result handle_completion(server *srv, struct MHD_Connection *c, enum req_kind kind,
                                         conn_ctx *cc) {
    request *r = calloc(1, sizeof *r);
    if (!r) return send_error(srv, c, 500, "server_error", NULL, NULL, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    r->client_fd = -1;
    verr e;
    memset(&e, 0, sizeof e);
    if (parse_request(srv, kind, cc->body.p ? cc->body.p : "", cc->body.len, r, &e)) {
        req_unref(r);
        return send_error(srv, c, e.status, e.type, e.param, e.code, "%s", e.msg);
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) r->client_fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
    r->created = (long long)time(NULL);
    r->t_queued = now_s();

    snprintf(r->id, sizeof r->id, "%s-%llx%06llx", kind == REQ_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)r->created,
             (unsigned long long)atomic_fetch_add(&srv->id_counter, 1) + 1);
    if (r->stream && kind == REQ_CHAT) sse_chunk(srv, r, "", 0, NULL, 1); /* the role first */

    pthread_mutex_lock(&srv->mu);
    if (srv->draining) {
        pthread_mutex_unlock(&srv->mu);
        req_unref(r);
        return send_error(srv, c, 503, "server_error", NULL, "shutting_down",
                          "the server is shutting down");
    }
    if (srv->q_len >= srv->opt.max_queue) {
        pthread_mutex_unlock(&srv->mu);
        req_unref(r);
        return send_error(srv, c, 503, "server_error", NULL, "server_busy",
                          "too many requests are waiting; retry later");
    }
    r->refs = 2; /* the connection and the scheduler */
    if (srv->q_tail) srv->q_tail->next = r;
    else srv->q_head = r;
    srv->q_tail = r;
    srv->q_len++;
    srv->m_requests++;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);

    if (r->stream) {
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, r, stream_free);
        if (!resp) {
            atomic_store(&r->cancelled, 1);
            req_unref(r);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result res = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        count_status(srv, 200);
        return res;
    }

    pthread_mutex_lock(&r->mu);
    while (r->state != RS_DONE) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    enum MHD_Result res;
    if (r->err_status) {
        unsigned st = r->err_status == 499 ? 500 : (unsigned)r->err_status;
        res = send_error(srv, c, st, "server_error", NULL, NULL, "%s", r->err_msg);
    } else {
        cJSON *o = envelope(srv, r, 0);
        cJSON *arr = cJSON_AddArrayToObject(o, "choices");
        cJSON_AddItemToArray(arr, choice_json(r, r->out.p ? r->out.p : "", r->out.len, r->finish,
                                              0, 0));
        cJSON_AddItemToObject(o, "usage", usage_json(r));
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        res = s ? send_json(srv, c, 200, s)
                : send_error(srv, c, 500, "server_error", NULL, NULL, "out of memory");
        free(s);
    }
    req_unref(r);
    return res;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    server *srv = cls;
    conn_ctx *cc = *con_cls;
    int is_post = !strcmp(method, "POST");
    if (!cc) {
        cc = calloc(1, sizeof *cc);
        if (!cc) return MHD_NO;
        *con_cls = cc;
        /* counted until on_completed: a drain waits for requests still
         * being read (they get their answer, a 503 once draining) */
        pthread_mutex_lock(&srv->mu);
        srv->n_open++;
        pthread_mutex_unlock(&srv->mu);
        if (is_post) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if (cl) {
                char *end;
                errno = 0;
                unsigned long long v = strtoull(cl, &end, 10);
                if (!errno && !*end && v > srv->opt.max_body) cc->too_large = 1;
                if (errno || *end || v / 64 > srv->opt.max_body) {
                    /* far too large: answered before the body is read (MHD then
                     * closes; the client may miss the answer). A body up to 64
                     * times the limit is read and dropped, then answered. */
                    cc->too_large = 1;
                    cc->responded = 1;
                    return send_error(srv, c, 413, "invalid_request_error", NULL,
                                      "request_too_large", "the request body exceeds %zu bytes",
                                      srv->opt.max_body);
                }
            }
        }
        return MHD_YES;
    }
    if (cc->responded) {
        if (*upload_data_size) *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!cc->too_large && cc->body.len + *upload_data_size > srv->opt.max_body) {
            cc->too_large = 1;
            free(cc->body.p);
            memset(&cc->body, 0, sizeof cc->body);
        }
        /* a chunked body over the limit is read and dropped, then answered */
        if (!cc->too_large && buf_add(&cc->body, upload_data, *upload_data_size)) cc->too_large = 1;
        *upload_data_size = 0;
        return MHD_YES;
    }
    cc->responded = 1;
    if (cc->too_large)
        return send_error(srv, c, 413, "invalid_request_error", NULL, "request_too_large",
                          "the request body exceeds %zu bytes", srv->opt.max_body);

    if (!strcmp(url, "/health") || !strcmp(url, "/metrics")) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return send_error(srv, c, 405, "invalid_request_error", NULL, "method_not_allowed",
                              "use GET for %s", url);
        if (!strcmp(url, "/health")) {
            pthread_mutex_lock(&srv->mu);
            int draining = srv->draining;
            char text[200];
            snprintf(text, sizeof text,
                     "{\"status\":\"%s\",\"slots_idle\":%d,\"slots_busy\":%d,\"queue\":%d}",
                     draining ? "shutting_down" : "ok", srv->n_slots - srv->n_active,
                     srv->n_active, srv->q_len);
            pthread_mutex_unlock(&srv->mu);
            return send_json(srv, c, draining ? 503 : 200, text);
        }
        buf b = {0};
        metrics_text(srv, &b);
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            b.len, b.p ? b.p : (void *)"", MHD_RESPMEM_MUST_COPY);
        free(b.p);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
        enum MHD_Result r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        count_status(srv, 200);
        return r;
    }
    int chat = !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions");
    int compl = !strcmp(url, "/v1/completions") || !strcmp(url, "/completions");
    int models = !strcmp(url, "/v1/models") || !strcmp(url, "/models");
    int model_one = !strncmp(url, "/v1/models/", 11);
    if (!chat && !compl && !models && !model_one)
        return send_error(srv, c, 404, "invalid_request_error", NULL, "unknown_url",
                          "Unknown request URL: %s %.200s", method, url);
    if (!check_key(srv, c))
        return send_error(srv, c, 401, "authentication_error", NULL, "invalid_api_key",
                          "Incorrect or missing API key (Authorization: Bearer KEY)");
    if (models || model_one) {
        if (strcmp(method, "GET"))
            return send_error(srv, c, 405, "invalid_request_error", NULL, "method_not_allowed",
                              "use GET for %s", url);
        if (model_one && strcmp(url + 11, srv->model_name))
            return send_error(srv, c, 404, "invalid_request_error", "model", "model_not_found",
                              "The model '%.128s' does not exist", url + 11);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", srv->model_name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "sigma");
        cJSON_AddNumberToObject(m, "context_length", srv->n_ctx);
        cJSON *root = m;
        if (models) {
            root = cJSON_CreateObject();
            cJSON_AddStringToObject(root, "object", "list");
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "data"), m);
        }
        char *s = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        enum MHD_Result r = send_json(srv, c, 200, s ? s : "{}");
        free(s);
        return r;
    }
    if (!is_post)
        return send_error(srv, c, 405, "invalid_request_error", NULL, "method_not_allowed",
                          "use POST for %s", url);
    return handle_completion(srv, c, chat ? REQ_CHAT : REQ_COMPLETION, cc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    server *srv = cls;
    (void)c;
    (void)toe;
    conn_ctx *cc = *con_cls;
    if (!cc) return;
    pthread_mutex_lock(&srv->mu);
    srv->n_open--;
    pthread_mutex_unlock(&srv->mu);
    free(cc->body.p);
    free(cc);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = '\0';
    fprintf(stderr, "sigma-server: http: %s\n", line);
}

static void model_log(void *user, sigma_log_level level, const char *msg) {
    (void)user;
    if (level <= SIGMA_LOG_WARN) fprintf(stderr, "sigma-server: libsigma: %s\n", msg);
}

/* ---- main ------------------------------------------------------------------ */

static const char *base_name(const char *path, char *out, size_t size) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, size, "%s", b);
    size_t n = strlen(out);
    if (n > 5 && !strcmp(out + n - 5, ".gguf")) out[n - 5] = '\0';
    return out;
}

int main(int argc, char **argv) {
    server *srv = calloc(1, sizeof *srv);
    if (!srv) return 1;
    parse_args(argc, argv, &srv->opt);
    options *o = &srv->opt;

    /* signals are taken by sigwait in main; every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512] = "";
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    mp.error_buf = err;
    mp.error_buf_size = sizeof err;
    mp.log_fn = model_log;
    int st = sigma_model_open(o->model, &mp, &srv->model);
    if (st != SIGMA_OK) {
        logf_("cannot open model '%s': %s", o->model, err[0] ? err : sigma_strerror(st));
        free(srv);
        return 1;
    }
    srv->info.struct_size = sizeof srv->info;
    sigma_model_get_info(srv->model, &srv->info);
    if (o->alias) snprintf(srv->model_name, sizeof srv->model_name, "%s", o->alias);
    else base_name(o->model, srv->model_name, sizeof srv->model_name);
    srv->n_ctx = o->n_ctx ? o->n_ctx : (srv->info.n_ctx_train && srv->info.n_ctx_train < 4096
                                            ? srv->info.n_ctx_train : 4096);
    { /* the plain fallback template has no end-of-turn token */
        sigma_chat_message m = {"user", "x"};
        char t[256];
        size_t len = 0;
        srv->plain_template = 1;
        if (sigma_chat_render(srv->model, &m, 1, 1, t, sizeof t, &len) == SIGMA_OK &&
            (strstr(t, "<|im_start|>") || strstr(t, "<|start_header_id|>")))
            srv->plain_template = 0;
    }

    int rc = 1;
    pthread_t sched;
    int sched_started = 0;
    struct MHD_Daemon *d = NULL;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->grammar_mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    st = sigma_threadpool_create(o->threads, NULL, &srv->pool);
    if (st != SIGMA_OK) {
        logf_("cannot create the thread pool: %s", sigma_strerror(st));
        goto out;
    }
    char kv_name[64] = "";
    const char *kv_opts = NULL;
    if (o->kv) {
        const char *colon = strchr(o->kv, ':');
        size_t n = colon ? (size_t)(colon - o->kv) : strlen(o->kv);
        if (n >= sizeof kv_name) {
            logf_("--kv: strategy name too long");
            goto out;
        }
        memcpy(kv_name, o->kv, n);
        kv_name[n] = '\0';
        kv_opts = colon ? colon + 1 : NULL;
    }
    srv->n_slots = o->parallel;
    srv->slots = calloc((size_t)srv->n_slots, sizeof *srv->slots);
    if (!srv->slots) goto out;
    for (int i = 0; i < srv->n_slots; i++) {
        slot *s = &srv->slots[i];
        s->index = i;
        s->next = SIGMA_TOKEN_NONE;
        sigma_session_params sp;
        sigma_session_params_init(&sp, sizeof sp);
        sp.n_ctx = srv->n_ctx;
        sp.threadpool = srv->pool;
        sp.kv_strategy = o->kv ? kv_name : NULL;
        sp.kv_options = kv_opts;
        sp.cancel_fn = slot_cancel_cb;
        sp.cancel_user = s;
        st = sigma_session_open(srv->model, &sp, &s->session);
        if (st != SIGMA_OK) {
            char merr[256] = "";
            sigma_model_last_error(srv->model, merr, sizeof merr);
            logf_("cannot open session %d: %s %s", i, sigma_strerror(st), merr);
            goto out;
        }
    }

    /* bind */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    socklen_t slen;
    if (strchr(o->host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)o->port);
        if (inet_pton(AF_INET6, o->host, &a6->sin6_addr) != 1) die_usage("--host: bad address");
        flags |= MHD_USE_IPv6;
        slen = sizeof *a6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)o->port);
        if (inet_pton(AF_INET, o->host, &a4->sin_addr) != 1)
            die_usage("--host: '%s' is not an IPv4 or IPv6 address", o->host);
        slen = sizeof *a4;
    }
    (void)slen;
    if (pthread_create(&sched, NULL, scheduler_main, srv) != 0) goto out;
    sched_started = 1;
    d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, srv,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)512,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                         MHD_OPTION_END);
    if (!d) {
        logf_("cannot listen on %s:%d: %s", o->host, o->port, strerror(errno));
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : o->port;
    logf_("serving '%s' on http://%s%s%s:%d/v1 (%d slots, context %u, %u threads)",
          srv->model_name, strchr(o->host, ':') ? "[" : "", o->host,
          strchr(o->host, ':') ? "]" : "", port, srv->n_slots, srv->n_ctx,
          o->threads ? o->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    if (o->port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", o->port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, o->port_file)) {
            logf_("cannot write --port-file '%s'", o->port_file);
            goto out;
        }
    }

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {
    }
    logf_("signal %d: draining (at most %.0f s)", sig, o->drain_s);
    pthread_mutex_lock(&srv->mu);
    srv->draining = 1;
    pthread_mutex_unlock(&srv->mu);
    MHD_socket lsock = MHD_quiesce_daemon(d);
    if (lsock != MHD_INVALID_SOCKET) close(lsock);
    double deadline = now_s() + o->drain_s;
    for (;;) {
        pthread_mutex_lock(&srv->mu);
        int busy = srv->n_active + srv->q_len, open = srv->n_open;
        pthread_mutex_unlock(&srv->mu);
        /* also requests whose headers arrived before the signal and whose
         * body is still being read or parsed: stopping the daemon now would
         * close them without an answer */
        if (!busy && !open) break;
        if (now_s() >= deadline) {
            logf_("drain timeout: cancelling %d requests", busy + open);
            atomic_store(&srv->hard_cancel, 1);
            for (int i = 0; i < srv->n_slots; i++) atomic_store(&srv->slots[i].abort_eval, 1);
            break;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rc = 0;
out:
    if (sched_started) {
        pthread_mutex_lock(&srv->mu);
        srv->draining = 1;
        srv->stop = 1;
        /* requests still queued are answered by the scheduler (hard cancel) */
        atomic_store(&srv->hard_cancel, 1);
        pthread_cond_broadcast(&srv->cv);
        pthread_mutex_unlock(&srv->mu);
        pthread_join(sched, NULL);
    }
    if (d) MHD_stop_daemon(d);
    if (srv->slots) {
        for (int i = 0; i < srv->n_slots; i++) {
            free(srv->slots[i].text.p);
            sigma_session_close(srv->slots[i].session);
        }
        free(srv->slots);
    }
    sigma_threadpool_destroy(srv->pool);
    sigma_model_close(srv->model);
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->grammar_mu);
    pthread_cond_destroy(&srv->cv);
    free(srv);
    if (rc == 0) logf_("stopped");
    return rc;
}
