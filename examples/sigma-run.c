/* sigma-run: continue a prompt or chat with a GGUF model using libsigma's
 * public API only. Generated text goes to stdout (streamed, flushed);
 * timings, prompts and errors go to stderr.
 *
 * Exit status: 0 success, 1 runtime error (model, file, generation),
 * 2 usage error, 130 interrupted (one-shot mode). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sigma/sigma.h>

#ifndef SIGMA_DEFAULT_MODEL
#define SIGMA_DEFAULT_MODEL "models/sigma-austen.gguf"
#endif
#ifndef SIGMA_INSTALLED_MODEL
#define SIGMA_INSTALLED_MODEL "/usr/local/share/sigma/models/default.gguf"
#endif

static volatile sig_atomic_t g_interrupted = 0;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static int cancel_cb(void *user) {
    (void)user;
    return g_interrupted != 0;
}

typedef struct options {
    const char *model;
    const char *prompt;
    const char *prompt_file;
    int32_t n_predict;
    float temp, top_p, min_p, repeat_penalty;
    int32_t top_k;
    uint64_t seed;
    int seed_set;
    const char *kv;
    uint32_t threads, n_ctx;
    int chat;
    const char *system;
    const char *grammar_file;
    const char *json_schema; /* a file, or inline JSON starting with '{' */
} options;

static void usage(FILE *f) {
    fprintf(f,
        "usage: sigma-run [-m MODEL] (-p PROMPT | -f FILE) [-n N] [options]\n"
        "       sigma-run --chat [-m MODEL] [--system TEXT] [options]\n"
        "\n"
        "Continue a prompt with a GGUF model, or chat. Architectures: sigma (DiffQKV),\n"
        "llama, qwen2 (Qwen2/2.5), qwen3, gemma2, gemma3 (text), phi3.\n"
        "Only the generated text is written to stdout; timings go to stderr.\n"
        "\n"
        "  -m, --model PATH       model file (default: $SIGMA_MODEL, else\n"
        "                         " SIGMA_INSTALLED_MODEL ",\n"
        "                         else " SIGMA_DEFAULT_MODEL ")\n"
        "  -p, --prompt TEXT      prompt to continue (in --chat: the first user message)\n"
        "  -f, --file PATH        read the prompt from a file\n"
        "  -n, --n-predict N      generate at most N tokens (default 256; <= 0: until\n"
        "                         end of generation or a full context)\n"
        "      --temp T           temperature (default 0.8; 0 = greedy, deterministic)\n"
        "      --top-k K          keep the K most likely tokens (default 40; 0 = off)\n"
        "      --top-p P          nucleus sampling mass (default 0.95; 1 = off)\n"
        "      --min-p P          drop tokens below P x the best one (default 0.05; 0 = off)\n"
        "      --repeat-penalty R penalise the last 64 tokens (default 1.0 = off)\n"
        "      --seed S           sampler seed (default 0xC0FFEE)\n"
        "      --kv NAME[:OPTS]   KV-cache strategy, e.g. dense (default) or\n"
        "                         NAME:key=value,key=value\n"
        "  -t, --threads N        worker threads (default: online CPUs)\n"
        "  -c, --ctx-size N       context length (default: the model's trained length)\n"
        "      --chat             interactive chat on stdin: a line ending in '\\' continues\n"
        "                         the message; an empty message or EOF ends the chat;\n"
        "                         Ctrl-C stops the current answer, Ctrl-C twice at the\n"
        "                         prompt exits\n"
        "      --system TEXT      system message for --chat\n"
        "      --grammar-file PATH  constrain the output to a GBNF grammar (rule 'root')\n"
        "      --json-schema S    constrain the output to JSON valid for a JSON Schema:\n"
        "                         inline JSON (starting with '{') or a file\n"
        "  -h, --help             show this help\n"
        "\n"
        "Exit status: 0 ok, 1 error (model, file, generation), 2 usage error,\n"
        "130 interrupted.\n");
}

static void die_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sigma-run: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    exit(2);
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sigma-run: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static long long parse_int(const char *opt, const char *s, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || end == s || *end || v < lo || v > hi)
        die_usage("%s: '%s' is not an integer in [%lld, %lld]", opt, s, lo, hi);
    return v;
}

static float parse_float(const char *opt, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || fabs(v) > 1e30)
        die_usage("%s: '%s' is not a number", opt, s);
    return (float)v;
}

static void parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 256;
    o->temp = 0.8f;
    o->top_k = 40;
    o->top_p = 0.95f;
    o->min_p = 0.05f;
    o->repeat_penalty = 1.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--chat")) {
            o->chat = 1;
            continue;
        }
        if (a[0] != '-') die_usage("unexpected argument '%s'", a);
        if (i + 1 >= argc) die_usage("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) o->prompt = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) o->prompt_file = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
            o->n_predict = (int32_t)parse_int(a, v, INT32_MIN, INT32_MAX);
        else if (!strcmp(a, "--temp")) o->temp = parse_float(a, v);
        else if (!strcmp(a, "--top-k")) o->top_k = (int32_t)parse_int(a, v, INT32_MIN, INT32_MAX);
        else if (!strcmp(a, "--top-p")) o->top_p = parse_float(a, v);
        else if (!strcmp(a, "--min-p")) o->min_p = parse_float(a, v);
        else if (!strcmp(a, "--repeat-penalty")) {
            o->repeat_penalty = parse_float(a, v);
            if (!(o->repeat_penalty > 0.0f)) die_usage("%s must be > 0", a);
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 0);
            if (errno || end == v || *end || v[0] == '-')
                die_usage("%s: '%s' is not an unsigned integer", a, v);
            o->seed = s;
            o->seed_set = 1;
        } else if (!strcmp(a, "--kv")) o->kv = v;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            o->threads = (uint32_t)parse_int(a, v, 0, 1024);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
            o->n_ctx = (uint32_t)parse_int(a, v, 0, UINT32_MAX);
        else if (!strcmp(a, "--system")) o->system = v;
        else if (!strcmp(a, "--grammar-file")) o->grammar_file = v;
        else if (!strcmp(a, "--json-schema")) o->json_schema = v;
        else die_usage("unknown option '%s'", a);
    }
    if (o->prompt && o->prompt_file) die_usage("give either -p or -f, not both");
    if (!o->chat && !o->prompt && !o->prompt_file) die_usage("no prompt: give -p TEXT or -f FILE");
    if (o->system && !o->chat) die_usage("--system needs --chat");
    if (o->grammar_file && o->json_schema) die_usage("give either --grammar-file or --json-schema");
}

static int file_exists(const char *p) {
    struct stat st;
    return p && *p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *pick_model(const options *o) {
    if (o->model) return o->model;
    const char *env = getenv("SIGMA_MODEL");
    if (env && *env) return env;
    if (file_exists(SIGMA_INSTALLED_MODEL)) return SIGMA_INSTALLED_MODEL;
    if (file_exists(SIGMA_DEFAULT_MODEL)) return SIGMA_DEFAULT_MODEL;
    die("no model: give -m MODEL or set SIGMA_MODEL (no default model at %s or %s)",
        SIGMA_INSTALLED_MODEL, SIGMA_DEFAULT_MODEL);
    return NULL;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open file '%s': %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) die("out of memory");
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > ((size_t)1 << 30)) die("file '%s' is too large", path);
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) die("out of memory");
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    if (ferror(f)) die("cannot read file '%s': %s", path, strerror(errno));
    fclose(f);
    buf[len] = '\0';
    if (strlen(buf) != len) die("file '%s' contains a NUL byte", path);
    return buf;
}

/* ---- output -------------------------------------------------------------- */

typedef struct reply {
    char *text;
    size_t len, cap;
} reply;

static int on_piece(void *user, const char *text, size_t len) {
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    reply *r = user;
    if (r) {
        if (r->len + len + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 256;
            while (cap < r->len + len + 1) cap *= 2;
            char *nb = realloc(r->text, cap);
            if (!nb) return 1; /* stop: out of memory */
            r->text = nb;
            r->cap = cap;
        }
        memcpy(r->text + r->len, text, len);
        r->len += len;
        r->text[r->len] = '\0';
    }
    return 0;
}

static const char *reason_name(sigma_stop_reason r) {
    switch (r) {
    case SIGMA_STOP_EOG: return "end of generation";
    case SIGMA_STOP_MAX_TOKENS: return "token limit";
    case SIGMA_STOP_STRING: return "stop string";
    case SIGMA_STOP_USER: return "stopped";
    case SIGMA_STOP_CANCELLED: return "interrupted";
    case SIGMA_STOP_CONTEXT_FULL: return "context full";
    default: return "none";
    }
}

static void print_stats(const sigma_generate_stats *s) {
    double pt = s->prompt_ms > 0 ? s->n_prompt_tokens * 1000.0 / s->prompt_ms : 0;
    double gt = s->generate_ms > 0 ? s->n_generated * 1000.0 / s->generate_ms : 0;
    fprintf(stderr,
            "sigma-run: prompt %u tokens in %.1f ms (%.2f t/s), generated %u tokens in "
            "%.1f ms (%.2f t/s), stop: %s\n",
            s->n_prompt_tokens, s->prompt_ms, pt, s->n_generated, s->generate_ms, gt,
            reason_name(s->stop_reason));
}

/* ---- chat input ------------------------------------------------------------ */

/* Read one line from fd 0 (without the newline). Returns 1 for a line,
 * 0 at EOF with nothing read, -1 when interrupted by SIGINT. */
static int read_line(char **buf, size_t *cap, size_t *len) {
    *len = 0;
    for (;;) {
        char c;
        ssize_t n = read(0, &c, 1);
        if (n < 0) {
            if (errno == EINTR) {
                if (g_interrupted) return -1;
                continue;
            }
            return *len ? 1 : 0;
        }
        if (n == 0) return *len ? 1 : 0;
        if (c == '\n') return 1;
        if (*len + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            char *nb = realloc(*buf, nc);
            if (!nb) die("out of memory");
            *buf = nb;
            *cap = nc;
        }
        (*buf)[(*len)++] = c;
        (*buf)[*len] = '\0';
    }
}

/* A user message: lines ending in '\' continue it. Returns 1 with the
 * message in *msg (malloc'd), 0 at the end of the chat (EOF or an empty
 * message), -1 on Ctrl-C. */
static int read_message(char **msg) {
    char *line = NULL;
    size_t cap = 0, len = 0;
    char *m = NULL;
    size_t mlen = 0;
    fputs("> ", stderr);
    fflush(stderr);
    for (;;) {
        int r = read_line(&line, &cap, &len);
        if (r < 0) {
            free(line);
            free(m);
            return -1;
        }
        if (r == 0 && mlen == 0) {
            free(line);
            free(m);
            return 0;
        }
        int cont = r == 1 && len > 0 && line[len - 1] == '\\';
        if (cont) len--;
        char *nm = realloc(m, mlen + len + 2);
        if (!nm) die("out of memory");
        m = nm;
        if (len) memcpy(m + mlen, line, len);
        mlen += len;
        if (cont) {
            m[mlen++] = '\n';
            m[mlen] = '\0';
            fputs(". ", stderr);
            fflush(stderr);
            continue;
        }
        m[mlen] = '\0';
        break;
    }
    free(line);
    if (mlen == 0) {
        free(m);
        return 0;
    }
    *msg = m;
    return 1;
}

typedef struct history {
    sigma_chat_message *m;
    char **owned;
    size_t n, cap;
} history;

static void history_add(history *h, const char *role, char *content) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 16;
        sigma_chat_message *nm = realloc(h->m, nc * sizeof *nm);
        char **no = realloc(h->owned, nc * sizeof *no);
        if (!nm || !no) die("out of memory");
        h->m = nm;
        h->owned = no;
        h->cap = nc;
    }
    h->m[h->n].role = role;
    h->m[h->n].content = content;
    h->owned[h->n] = content;
    h->n++;
}

static void history_free(history *h, size_t keep) {
    for (size_t i = keep; i < h->n; i++) free(h->owned[i]);
    h->n = keep;
}

static int run_chat(const options *o, sigma_session *s, sigma_sampler *smp) {
    history h = {0};
    size_t base = 0;
    if (o->system) {
        char *sys = strdup(o->system);
        if (!sys) die("out of memory");
        history_add(&h, "system", sys);
        base = 1;
    }
    int first = 1, ctrl_c_at_prompt = 0, rc = 0;
    for (;;) {
        char *msg = NULL;
        int r;
        if (first && o->prompt) {
            msg = strdup(o->prompt);
            if (!msg) die("out of memory");
            fprintf(stderr, "> %s\n", msg);
            r = 1;
        } else {
            r = read_message(&msg);
        }
        first = 0;
        if (r < 0) {
            g_interrupted = 0;
            if (ctrl_c_at_prompt) {
                fputc('\n', stderr);
                break;
            }
            ctrl_c_at_prompt = 1;
            fputs("\n(Ctrl-C again, an empty line or EOF to quit)\n", stderr);
            continue;
        }
        ctrl_c_at_prompt = 0;
        if (r == 0) break;
        history_add(&h, "user", msg);
        sigma_generate_params gp;
        sigma_generate_params_init(&gp, sizeof gp);
        gp.sampler = smp;
        gp.max_tokens = o->n_predict;
        reply rep = {0};
        gp.on_piece = on_piece;
        gp.on_piece_user = &rep;
        sigma_generate_stats st;
        memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        g_interrupted = 0;
        int status = sigma_session_chat(s, h.m, h.n, &gp, &st);
        fputc('\n', stdout);
        fflush(stdout);
        if (status == SIGMA_E_CANCELLED) {
            g_interrupted = 0;
            fputs("[interrupted]\n", stderr);
        } else if (status == SIGMA_E_CONTEXT_FULL) {
            fprintf(stderr, "sigma-run: the context is full; starting a new conversation\n");
            free(rep.text);
            history_free(&h, base);
            sigma_session_rewind(s, 0);
            continue;
        } else if (status != SIGMA_OK) {
            fprintf(stderr, "sigma-run: chat failed: %s: %s\n", sigma_strerror(status),
                    sigma_session_last_error(s));
            free(rep.text);
            rc = 1;
            break;
        }
        if (st.stop_reason == SIGMA_STOP_CONTEXT_FULL)
            fprintf(stderr, "sigma-run: the context is full\n");
        if (!rep.text && !(rep.text = strdup(""))) die("out of memory");
        history_add(&h, "assistant", rep.text);
    }
    history_free(&h, 0);
    free(h.m);
    free(h.owned);
    return rc;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv) {
    options o;
    parse_args(argc, argv, &o);
    const char *model_path = pick_model(&o);
    if (!file_exists(model_path)) die("model file '%s' does not exist", model_path);
    char *prompt_buf = NULL;
    if (o.prompt_file) prompt_buf = read_file(o.prompt_file);

    char err[512] = "";
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    mp.error_buf = err;
    mp.error_buf_size = sizeof err;
    sigma_model *model = NULL;
    int st = sigma_model_open(model_path, &mp, &model);
    if (st != SIGMA_OK) die("cannot open model '%s': %s", model_path, err[0] ? err : sigma_strerror(st));

    /* --kv NAME[:OPTIONS] */
    char *kv_name = NULL;
    const char *kv_opts = NULL;
    if (o.kv) {
        kv_name = strdup(o.kv);
        if (!kv_name) die("out of memory");
        char *colon = strchr(kv_name, ':');
        if (colon) {
            *colon = '\0';
            kv_opts = colon + 1;
        }
    }
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_ctx = o.n_ctx;
    sp.n_threads = o.threads;
    sp.kv_strategy = kv_name;
    sp.kv_options = kv_opts;
    sp.cancel_fn = cancel_cb;
    sigma_session *session = NULL;
    st = sigma_session_open(model, &sp, &session);
    if (st != SIGMA_OK) {
        char merr[512];
        sigma_model_last_error(model, merr, sizeof merr);
        die("cannot open a session: %s%s%s", sigma_strerror(st), merr[0] ? ": " : "", merr);
    }

    sigma_sampler_params smp_p;
    sigma_sampler_params_init(&smp_p, sizeof smp_p);
    smp_p.temperature = o.temp;
    smp_p.top_k = o.top_k;
    smp_p.top_p = o.top_p;
    smp_p.min_p = o.min_p;
    smp_p.repeat_penalty = o.repeat_penalty;
    if (o.seed_set) smp_p.seed = o.seed;
    char *grammar = NULL;
    if (o.grammar_file) grammar = read_file(o.grammar_file);
    if (o.json_schema) {
        char *schema = o.json_schema[0] == '{' ? strdup(o.json_schema) : read_file(o.json_schema);
        if (!schema) die("out of memory");
        size_t glen = 0;
        st = sigma_json_schema_to_grammar(model, schema, strlen(schema), NULL, 0, &glen);
        if (st == SIGMA_E_BUFFER_TOO_SMALL) {
            grammar = malloc(glen + 1);
            if (!grammar) die("out of memory");
            st = sigma_json_schema_to_grammar(model, schema, strlen(schema), grammar, glen + 1,
                                              &glen);
        }
        if (st != SIGMA_OK) {
            char merr[512];
            sigma_model_last_error(model, merr, sizeof merr);
            die("--json-schema: %s", merr[0] ? merr : sigma_strerror(st));
        }
        free(schema);
    }
    smp_p.grammar = grammar;
    sigma_sampler *smp = NULL;
    st = sigma_sampler_open(model, &smp_p, &smp);
    free(grammar); /* copied by the sampler */
    if (st != SIGMA_OK) {
        char merr[512];
        sigma_model_last_error(model, merr, sizeof merr);
        die("bad sampling options: %s", merr[0] ? merr : sigma_strerror(st));
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a read at the prompt returns EINTR */
    sigaction(SIGINT, &sa, NULL);

    int rc = 0;
    if (o.chat) {
        if (prompt_buf) o.prompt = prompt_buf;
        rc = run_chat(&o, session, smp);
    } else {
        sigma_generate_params gp;
        sigma_generate_params_init(&gp, sizeof gp);
        gp.sampler = smp;
        gp.max_tokens = o.n_predict;
        gp.on_piece = on_piece;
        gp.on_piece_user = NULL;
        sigma_generate_stats gs;
        memset(&gs, 0, sizeof gs);
        gs.struct_size = sizeof gs;
        st = sigma_session_generate(session, prompt_buf ? prompt_buf : o.prompt, &gp, &gs);
        if (isatty(1)) fputc('\n', stdout); /* stdout stays exactly the generated text */
        fflush(stdout);
        if (st == SIGMA_E_CANCELLED) {
            print_stats(&gs);
            fputs("sigma-run: interrupted\n", stderr);
            rc = 130;
        } else if (st != SIGMA_OK) {
            fprintf(stderr, "sigma-run: generation failed: %s: %s\n", sigma_strerror(st),
                    sigma_session_last_error(session));
            rc = 1;
        } else {
            print_stats(&gs);
        }
    }
    sigma_sampler_close(smp);
    sigma_session_close(session);
    sigma_model_close(model);
    free(kv_name);
    free(prompt_buf);
    return rc;
}
