/* Chat rendering. Templates are not executed: the model's
 * tokenizer.chat_template is only inspected to recognise a family:
 *   - ChatML ("<|im_start|>"): <|im_start|>{role}\n{content}<|im_end|>\n
 *     (plus the default system message when the template has one, as
 *     SmolLM2's does);
 *   - Llama-3 ("<|start_header_id|>"):
 *     <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
 *     (content trimmed; <|begin_of_text|> comes from BOS at tokenization);
 *   - Gemma ("<start_of_turn>"): <start_of_turn>{user|model}\n{content}<end_of_turn>\n,
 *     role "assistant" written "model", a system message put in front of the
 *     first user message followed by a blank line (Gemma has no system
 *     turn), content trimmed; header <start_of_turn>model\n;
 *   - Phi-3 ("<|user|>" with "<|end|>"): <|{role}|>\n{content}<|end|>\n,
 *     header <|assistant|>\n;
 *   - otherwise plain text: "{Role}: {content}\n", header "Assistant:".
 * A file without a template uses its architecture's chat_hint, if any
 * (Gemma files often carry none).
 */
#include <string.h>

#include "gen.h"

static const char *find_bytes(const char *h, size_t hl, const char *n, size_t nl) {
    if (nl == 0) return h;
    if (!h || hl < nl) return NULL;
    for (size_t i = 0; i + nl <= hl; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nl) == 0) return h + i;
    return NULL;
}

static const char *find_str(const char *h, size_t hl, const char *n) {
    return find_bytes(h, hl, n, strlen(n));
}

sg_chat_style sg_chat_detect(const char *tmpl, size_t tmpl_len) {
    if (!tmpl) return SG_CHAT_PLAIN;
    if (find_str(tmpl, tmpl_len, "<|im_start|>")) return SG_CHAT_CHATML;
    if (find_str(tmpl, tmpl_len, "<|start_header_id|>")) return SG_CHAT_LLAMA3;
    if (find_str(tmpl, tmpl_len, "<start_of_turn>")) return SG_CHAT_GEMMA;
    if (find_str(tmpl, tmpl_len, "<|user|>") && find_str(tmpl, tmpl_len, "<|end|>"))
        return SG_CHAT_PHI3;
    return SG_CHAT_PLAIN;
}

/* A length-counting writer: bytes beyond the capacity are only counted. */
typedef struct sg_out {
    char *buf;
    size_t size, len;
    int overflow; /* the length itself overflowed size_t */
} sg_out;

static void out_put(sg_out *o, const char *s, size_t n) {
    size_t end;
    if (!sg_add_size(o->len, n, &end)) {
        o->overflow = 1;
        return;
    }
    if (o->buf && end <= o->size && n) memcpy(o->buf + o->len, s, n);
    o->len = end;
}

static void out_str(sg_out *o, const char *s) { out_put(o, s, strlen(s)); }

/* The default system message of a ChatML template: the text between
 * "<|im_start|>system" + newline (real or the two characters \n) and the
 * next "<|im_end|>", when it sits in a branch for a missing system turn
 * (the template mentions role != 'system'). */
static int chatml_default_system(const char *t, size_t tl, const char **msg, size_t *msg_len) {
    if (!find_str(t, tl, "!= 'system'") && !find_str(t, tl, "!= \"system\"")) return 0;
    const char *key = "<|im_start|>system";
    const char *p = find_str(t, tl, key);
    if (!p) return 0;
    p += strlen(key);
    size_t rest = tl - (size_t)(p - t);
    if (rest >= 1 && p[0] == '\n') {
        p += 1;
        rest -= 1;
    } else if (rest >= 2 && p[0] == '\\' && p[1] == 'n') {
        p += 2;
        rest -= 2;
    } else {
        return 0;
    }
    const char *e = find_str(p, rest, "<|im_end|>");
    if (!e) return 0;
    /* the message must be a literal: no template syntax inside */
    size_t n = (size_t)(e - p);
    if (n == 0 || find_str(p, n, "{{") || find_str(p, n, "{%") || find_str(p, n, "'") ||
        find_str(p, n, "\""))
        return 0;
    *msg = p;
    *msg_len = n;
    return 1;
}

/* Write s with the two-character escape \n turned into a newline. */
static void out_unescape(sg_out *o, const char *s, size_t n) {
    size_t i = 0, start = 0;
    while (i < n) {
        if (s[i] == '\\' && i + 1 < n && s[i + 1] == 'n') {
            out_put(o, s + start, i - start);
            out_put(o, "\n", 1);
            i += 2;
            start = i;
        } else {
            i++;
        }
    }
    out_put(o, s + start, n - start);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static void out_trimmed(sg_out *o, const char *s) {
    size_t n = strlen(s), a = 0;
    while (a < n && is_space(s[a])) a++;
    while (n > a && is_space(s[n - 1])) n--;
    out_put(o, s + a, n - a);
}

static void render(sg_out *out, const char *tmpl, size_t tmpl_len,
                   const sigma_chat_message *messages, size_t n_messages, int add_assistant) {
    sg_out o = *out;
    switch (sg_chat_detect(tmpl, tmpl_len)) {
    case SG_CHAT_CHATML: {
        const char *sys;
        size_t sys_len;
        if (n_messages > 0 && strcmp(messages[0].role, "system") != 0 &&
            chatml_default_system(tmpl, tmpl_len, &sys, &sys_len)) {
            out_str(&o, "<|im_start|>system\n");
            out_unescape(&o, sys, sys_len);
            out_str(&o, "<|im_end|>\n");
        }
        for (size_t i = 0; i < n_messages; i++) {
            out_str(&o, "<|im_start|>");
            out_str(&o, messages[i].role);
            out_str(&o, "\n");
            out_str(&o, messages[i].content);
            out_str(&o, "<|im_end|>\n");
        }
        if (add_assistant) out_str(&o, "<|im_start|>assistant\n");
        break;
    }
    case SG_CHAT_LLAMA3:
        for (size_t i = 0; i < n_messages; i++) {
            out_str(&o, "<|start_header_id|>");
            out_str(&o, messages[i].role);
            out_str(&o, "<|end_header_id|>\n\n");
            out_trimmed(&o, messages[i].content);
            out_str(&o, "<|eot_id|>");
        }
        if (add_assistant) out_str(&o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case SG_CHAT_GEMMA: {
        size_t i = 0;
        const char *sys = NULL;
        if (n_messages > 0 && strcmp(messages[0].role, "system") == 0) {
            sys = messages[0].content;
            i = 1;
        }
        for (; i < n_messages; i++) {
            const char *r = messages[i].role;
            out_str(&o, "<start_of_turn>");
            out_str(&o, strcmp(r, "assistant") == 0 ? "model" : r);
            out_str(&o, "\n");
            if (sys) {
                out_trimmed(&o, sys);
                out_str(&o, "\n\n");
                sys = NULL;
            }
            out_trimmed(&o, messages[i].content);
            out_str(&o, "<end_of_turn>\n");
        }
        if (sys) { /* only a system message */
            out_str(&o, "<start_of_turn>user\n");
            out_trimmed(&o, sys);
            out_str(&o, "\n\n<end_of_turn>\n");
        }
        if (add_assistant) out_str(&o, "<start_of_turn>model\n");
        break;
    }
    case SG_CHAT_PHI3:
        for (size_t i = 0; i < n_messages; i++) {
            out_str(&o, "<|");
            out_str(&o, messages[i].role);
            out_str(&o, "|>\n");
            out_str(&o, messages[i].content);
            out_str(&o, "<|end|>\n");
        }
        if (add_assistant) out_str(&o, "<|assistant|>\n");
        break;
    case SG_CHAT_PLAIN:
    default:
        for (size_t i = 0; i < n_messages; i++) {
            const char *r = messages[i].role;
            if (r[0] >= 'a' && r[0] <= 'z') {
                char c = (char)(r[0] - 'a' + 'A');
                out_put(&o, &c, 1);
                out_str(&o, r + 1);
            } else {
                out_str(&o, r);
            }
            out_str(&o, ": ");
            out_str(&o, messages[i].content);
            out_str(&o, "\n");
        }
        if (add_assistant) out_str(&o, "Assistant:");
        break;
    }
    *out = o;
}

int sg_chat_render_template(const char *tmpl, size_t tmpl_len,
                            const sigma_chat_message *messages, size_t n_messages,
                            int add_assistant, char *buf, size_t size, size_t *len) {
    if (!len || (n_messages && !messages) || (size && !buf)) return SIGMA_E_INVALID_ARG;
    for (size_t i = 0; i < n_messages; i++)
        if (!messages[i].role || !messages[i].content) return SIGMA_E_INVALID_ARG;
    /* count first, so a too-small buffer is left untouched */
    sg_out o = {NULL, 0, 0, 0};
    render(&o, tmpl, tmpl_len, messages, n_messages, add_assistant);
    if (o.overflow) return SIGMA_E_INVALID_ARG;
    *len = o.len;
    if (o.len > size) return SIGMA_E_BUFFER_TOO_SMALL;
    sg_out w = {buf, size, 0, 0};
    render(&w, tmpl, tmpl_len, messages, n_messages, add_assistant);
    if (w.len < size) buf[w.len] = '\0';
    return SIGMA_OK;
}

int sigma_chat_render(const sigma_model *model, const sigma_chat_message *messages,
                      size_t n_messages, int add_assistant, char *buf, size_t size,
                      size_t *len) {
    if (!model) return SIGMA_E_INVALID_ARG;
    sg_str t = {NULL, 0};
    if (model->gguf) { /* absent or not a string: plain fallback */
        const sg_gguf_kv *kv = sg_gguf_find(model->gguf, "tokenizer.chat_template");
        if (kv && kv->value.type == SG_GGUF_STRING) t = kv->value.v.s;
    }
    if (!t.ptr && model->hp.desc && model->hp.desc->chat_hint) {
        t.ptr = model->hp.desc->chat_hint;
        t.len = strlen(t.ptr);
    }
    if (t.len > SIZE_MAX) return SIGMA_E_INVALID_ARG;
    int st = sg_chat_render_template(t.ptr, (size_t)t.len, messages, n_messages, add_assistant,
                                     buf, size, len);
    if (st == SIGMA_E_INVALID_ARG)
        sg_model_error(model, st, "chat render: NULL argument or message field");
    return st;
}
