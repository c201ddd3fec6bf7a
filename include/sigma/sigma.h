/*
 * libsigma — run Sigma (DiffQKV) and Llama-family language models on CPUs.
 *
 * This is the whole public C API. Conventions, which hold for every function
 * below unless its comment says otherwise:
 *
 *  - Status codes. Functions return `int`: SIGMA_OK (0) on success or a
 *    negative `sigma_status`. `sigma_strerror()` names a code; the detail of
 *    the last failure is kept on the object it concerns
 *    (`sigma_session_last_error()`, `sigma_model_last_error()`), never in a
 *    process global. A failure of `sigma_model_open*()` is described in the
 *    caller's `error_buf` (see sigma_model_params) and through the log
 *    callback.
 *  - Out-parameters are written only on success, except where documented
 *    (the *_BUFFER_TOO_SMALL protocol writes the required size).
 *  - Parameter structs begin with `uint32_t struct_size`. Fill one with its
 *    `*_params_init(&p, sizeof p)`, then change the fields you need. The
 *    library reads only the fields that `struct_size` covers, so a program
 *    compiled against an older, shorter struct keeps working with a newer
 *    library: fields are only ever appended.
 *  - Ownership. Handles (`sigma_model *`, ...) are owned by the caller from a
 *    successful open until the matching close. Strings and arrays returned by
 *    the library are owned by the object they came from and stay valid for
 *    the time stated in each comment. Pointers the caller passes in are only
 *    borrowed for the duration of the call unless stated.
 *  - Threads. A model is immutable after open: every function taking a
 *    `const sigma_model *` may be called from any number of threads at once.
 *    A session, sampler or decoder belongs to one thread at a time (calls on
 *    one such object must not overlap; moving it between threads is fine).
 *    A thread pool may be shared by sessions on any threads.
 *  - The library never aborts, exits, or writes to stdout/stderr. It has no
 *    writable global state: two hosts in one process never interact.
 *
 * Versioning: the SONAME is libsigma.so.0. Within SONAME 0 the ABI only
 * grows: functions are added, enum values and struct fields are appended,
 * nothing is removed or changed.
 */
#ifndef SIGMA_SIGMA_H
#define SIGMA_SIGMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(SIGMA_BUILDING_LIBRARY)
#  define SIGMA_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#  define SIGMA_API __attribute__((visibility("default")))
#else
#  define SIGMA_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

#define SIGMA_VERSION_MAJOR 0
#define SIGMA_VERSION_MINOR 1
#define SIGMA_VERSION_PATCH 0
/** MAJOR*10000 + MINOR*100 + PATCH, as compiled into the caller. */
#define SIGMA_VERSION_NUMBER \
    (SIGMA_VERSION_MAJOR * 10000 + SIGMA_VERSION_MINOR * 100 + SIGMA_VERSION_PATCH)
#define SIGMA_VERSION_STRING "0.1.0"

/** The version of the library actually loaded, encoded as
 *  SIGMA_VERSION_NUMBER. Thread-safe; never fails. */
SIGMA_API unsigned sigma_version(void);

/** The loaded library's version as a static string, e.g. "0.1.0".
 *  The string is constant and never freed. Thread-safe; never fails. */
SIGMA_API const char *sigma_version_string(void);

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */

typedef enum sigma_status {
    SIGMA_OK                  = 0,
    SIGMA_E_INVALID_ARG       = -1,  /**< a NULL, out-of-range or absurd argument */
    SIGMA_E_NOMEM             = -2,  /**< an allocation failed */
    SIGMA_E_IO                = -3,  /**< a file could not be opened, read, mapped or written */
    SIGMA_E_FORMAT            = -4,  /**< a model or session file is malformed */
    SIGMA_E_UNSUPPORTED       = -5,  /**< valid, but not supported (yet) by this build */
    SIGMA_E_CONTEXT_FULL      = -6,  /**< the session's context cannot take the tokens */
    SIGMA_E_CANCELLED         = -7,  /**< the cancellation callback asked to stop */
    SIGMA_E_BUFFER_TOO_SMALL  = -8,  /**< the caller's buffer is too small; size written */
    SIGMA_E_NOT_FOUND         = -9,  /**< a key, name or token does not exist */
    SIGMA_E_MISMATCH          = -10, /**< e.g. a session file made with another model */
    SIGMA_E_STATE             = -11, /**< the call is not valid in the object's state */
    SIGMA_E_INTERNAL          = -12, /**< a bug in libsigma; please report */
    SIGMA_E_NUMERIC           = -13  /**< the model's weights produced NaN or infinity */
} sigma_status;

/** A short, constant English description of a status code ("invalid
 *  argument", ...). Unknown codes give "unknown status". Thread-safe; the
 *  returned string is static and never freed. */
SIGMA_API const char *sigma_strerror(int status);

/* ------------------------------------------------------------------------ */
/* Handles and common types                                                 */
/* ------------------------------------------------------------------------ */

typedef struct sigma_model sigma_model;           /**< an opened model file */
typedef struct sigma_session sigma_session;       /**< a decoding context on a model */
typedef struct sigma_threadpool sigma_threadpool; /**< worker threads, shareable */
typedef struct sigma_sampler sigma_sampler;       /**< token sampling state */
typedef struct sigma_decoder sigma_decoder;       /**< incremental token -> text */

/** A token id: 0 <= id < n_vocab. */
typedef int32_t sigma_token;
#define SIGMA_TOKEN_NONE ((sigma_token)-1)

typedef enum sigma_log_level {
    SIGMA_LOG_ERROR = 0,
    SIGMA_LOG_WARN  = 1,
    SIGMA_LOG_INFO  = 2,
    SIGMA_LOG_DEBUG = 3
} sigma_log_level;

/** Log callback. `message` is a NUL-terminated line without trailing newline,
 *  valid only during the call. May be called from any thread that uses the
 *  model (including pool workers), possibly concurrently: make it
 *  thread-safe. It must not call back into libsigma on the same object. */
typedef void (*sigma_log_fn)(void *user, sigma_log_level level, const char *message);

/** Cancellation callback, polled during long operations (between layers and
 *  between batches). Return non-zero to stop: the operation then returns
 *  SIGMA_E_CANCELLED and leaves the session as it was before the call. */
typedef int (*sigma_cancel_fn)(void *user);

/** Allocator callbacks, to route every heap allocation of a model and of the
 *  objects made from it through the host. `alloc` returns memory aligned to
 *  `align` (a power of two, at most 4096) or NULL; `free` releases it (never
 *  called with NULL). Both must be thread-safe. The memory-mapped weights
 *  are not allocations. */
typedef struct sigma_allocator {
    uint32_t struct_size;
    void *user;
    void *(*alloc)(void *user, size_t size, size_t align);
    void (*free)(void *user, void *ptr);
} sigma_allocator;

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct sigma_model_params {
    uint32_t struct_size;
    /** Memory-map the file read-only (default 1). With 0 the file is read
     *  into allocated memory. Either way, on AVX2/AVX-512 CPUs the Q4_0
     *  and Q8_0 matrices (and the Q4_1 ones where the AVX-512 kernels run)
     *  are also copied into a repacked layout at open (SIGMA_KERNELS=nopack skips
     *  the copy); with a mapping, the copied matrices' file pages are then
     *  released, so the resident set stays about the file's size. */
    int use_mmap;
    /** Log callback (default NULL: no logging) and its level threshold
     *  (default SIGMA_LOG_WARN). */
    sigma_log_fn log_fn;
    void *log_user;
    sigma_log_level log_level;
    /** Allocator (default NULL: the C library's). The pointed-to struct is
     *  copied at open. */
    const sigma_allocator *allocator;
    /** If non-NULL, a failed open writes a NUL-terminated message here
     *  (truncated to error_buf_size). Default NULL / 0. */
    char *error_buf;
    size_t error_buf_size;
} sigma_model_params;

/** Fill `params` with defaults. `struct_size` is the size of the caller's
 *  struct (pass `sizeof *params`); only that many bytes are written.
 *  Returns SIGMA_E_INVALID_ARG for NULL or a size smaller than the first
 *  version of the struct. Thread-safe. */
SIGMA_API int sigma_model_params_init(sigma_model_params *params, size_t struct_size);

/** Open a GGUF model file (architectures `llama` and `sigma`).
 *  `params` may be NULL for defaults. On success `*out` receives a model the
 *  caller must close with sigma_model_close(). The file is validated before
 *  anything is used: a malformed file gives SIGMA_E_FORMAT, a valid but
 *  unsupported one SIGMA_E_UNSUPPORTED, with a message in params->error_buf
 *  and the log. Thread-safe (opens nothing shared). */
SIGMA_API int sigma_model_open(const char *path, const sigma_model_params *params,
                               sigma_model **out);

/** Like sigma_model_open(), from a GGUF image in memory. The buffer is
 *  borrowed, not copied: it must stay valid and unchanged until the model is
 *  closed. `use_mmap` is ignored. */
SIGMA_API int sigma_model_open_memory(const void *data, size_t size,
                                      const sigma_model_params *params,
                                      sigma_model **out);

/** Close a model and release everything it owns. All sessions, samplers and
 *  decoders made from it must be closed first. NULL is a no-op. Not
 *  thread-safe with respect to other uses of the same model. */
SIGMA_API void sigma_model_close(sigma_model *model);

/** Copy the message of the last failure of a call on this model (e.g. a
 *  tokenize error) into `buf` (NUL-terminated, truncated to `size`).
 *  Writes "" when there was none. Thread-safe; with concurrent failing calls
 *  "last" is whichever finished last. */
SIGMA_API int sigma_model_last_error(const sigma_model *model, char *buf, size_t size);

typedef enum sigma_arch {
    SIGMA_ARCH_LLAMA = 1,
    SIGMA_ARCH_SIGMA = 2,
    SIGMA_ARCH_QWEN2 = 3,      /**< Qwen2, Qwen2.5 */
    SIGMA_ARCH_QWEN3 = 4,      /**< Qwen3 (dense) */
    SIGMA_ARCH_GEMMA3 = 5,     /**< Gemma 3 (text) */
    SIGMA_ARCH_GEMMA2 = 6,
    SIGMA_ARCH_PHI3 = 7
} sigma_arch;

typedef struct sigma_model_info {
    uint32_t struct_size;      /**< set by the caller: sizeof(sigma_model_info) */
    sigma_arch arch;
    const char *arch_name;     /**< general.architecture ("llama", "sigma", "qwen2", ...);
                                    valid while the model is open */
    const char *name;          /**< general.name or ""; valid while the model is open */
    uint32_t n_layers;
    uint32_t n_embd;           /**< hidden size */
    uint32_t n_ff;             /**< MLP intermediate size */
    uint32_t n_q_heads;        /**< n_q */
    uint32_t n_k_heads;        /**< n_k (GQA: = n_v) */
    uint32_t n_v_heads;        /**< n_v */
    uint32_t d_qk;             /**< head dim of Q and K */
    uint32_t d_v;              /**< head dim of V */
    uint32_t d_aug;            /**< AugQ intermediate size, 0 = no AugQ */
    uint32_t n_rot;            /**< rotated dims per head */
    uint32_t n_vocab;
    uint32_t n_ctx_train;      /**< trained context length */
    float rope_theta;
    float norm_eps;
    int tied_output;           /**< 1 if lm_head is token_embd */
    uint64_t n_params;         /**< number of weights */
    uint64_t file_size;        /**< bytes */
    /** f32 dense cache (`dense` with type=f32): n_layers*(n_k*d_qk+n_v*d_v)*4;
     *  the default dense type, f16, takes half of it. */
    uint64_t kv_bytes_per_token;
} sigma_model_info;

/** Fill `info` (whose struct_size the caller sets) with the model's shape.
 *  Only the fields struct_size covers are written. Thread-safe. */
SIGMA_API int sigma_model_get_info(const sigma_model *model, sigma_model_info *info);

/** Number of metadata key/value pairs in the file. Thread-safe. */
SIGMA_API int sigma_model_meta_count(const sigma_model *model, size_t *count);

/** The key of metadata entry `index` (0-based). `*key` stays valid while the
 *  model is open. SIGMA_E_NOT_FOUND past the end. Thread-safe. */
SIGMA_API int sigma_model_meta_key(const sigma_model *model, size_t index, const char **key);

/** Look up a metadata value by key and write it as text into `buf`:
 *  strings verbatim, numbers in decimal, booleans as true/false, arrays as
 *  "[a, b, ...]" (long arrays elided as "[N items]").
 *  `*len` (if non-NULL) receives the full length without NUL; if it does not
 *  fit, the text is truncated, NUL-terminated, and SIGMA_E_BUFFER_TOO_SMALL
 *  returned. SIGMA_E_NOT_FOUND if there is no such key. Thread-safe. */
SIGMA_API int sigma_model_meta_get(const sigma_model *model, const char *key,
                                   char *buf, size_t size, size_t *len);

/* ------------------------------------------------------------------------ */
/* Thread pools                                                             */
/* ------------------------------------------------------------------------ */

/** Create a pool of `n_threads` workers (0 = number of online CPUs; the
 *  calling thread counts as one). `allocator` may be NULL. A pool may be
 *  given to any number of sessions (sigma_session_params.threadpool); they
 *  take turns using it. Destroy it after every session using it is closed. */
SIGMA_API int sigma_threadpool_create(uint32_t n_threads, const sigma_allocator *allocator,
                                      sigma_threadpool **out);

/** Stop and join the workers. NULL is a no-op. */
SIGMA_API void sigma_threadpool_destroy(sigma_threadpool *pool);

/* ------------------------------------------------------------------------ */
/* KV-cache strategies (plug-in interface)                                  */
/* ------------------------------------------------------------------------ */

/** The shape a strategy is created for. Positions are absolute token
 *  positions in the session. */
typedef struct sigma_kv_layout {
    uint32_t struct_size;
    uint32_t n_layers;
    uint32_t n_q_heads, n_k_heads, n_v_heads;
    uint32_t d_qk, d_v;
    uint32_t n_ctx;            /**< the session's context length */
    uint32_t n_batch;          /**< the most tokens appended in one call */
} sigma_kv_layout;

/** One attention call: `n_queries` consecutive query tokens at positions
 *  pos0 .. pos0+n_queries-1; query j attends causally to every kept position
 *  <= pos0+j (their K/V rows were appended before this call), and, when
 *  `window` is set, > pos0+j-window. A strategy that cannot honour `window`
 *  or `softcap` must return SIGMA_E_UNSUPPORTED rather than ignore them. Query head i
 *  uses K head i*n_k/n_q and V head i*n_v/n_q. */
typedef struct sigma_kv_attend_args {
    uint32_t struct_size;
    uint32_t layer;
    uint32_t pos0;
    uint32_t n_queries;
    const float *q;            /**< [n_queries][n_q*d_qk], RoPE applied */
    float *out;                /**< [n_queries][n_q*d_v] */
    float scale;               /**< 1/sqrt(d_qk), or the architecture's attention scale */
    /* Appended fields (struct_size covers them): */
    uint32_t window;           /**< 0: every kept position; else query at position p reads
                                    only positions p-window+1 .. p (a sliding-window layer) */
    float softcap;             /**< 0: none; else every score s (after scale) becomes
                                    softcap*tanh(s/softcap) before the softmax (Gemma 2) */
} sigma_kv_attend_args;

/** Serialization sink: write `n` bytes; return 0 or a negative status. */
typedef int (*sigma_write_fn)(void *ctx, const void *data, size_t n);

/** Version 1: the methods up to bytes_used/save/load. Version 2: attend
 *  honours sigma_kv_attend_args.window and .softcap (or returns
 *  SIGMA_E_UNSUPPORTED for them). A session refuses a version-1 host
 *  strategy on a model with sliding-window layers or attention soft-capping
 *  (Gemma 2/3), which such a strategy would silently compute wrongly. */
#define SIGMA_KV_STRATEGY_VERSION 2

/** A KV-cache strategy: a versioned table of methods (like SQLite's VFS).
 *  `version` says which methods exist; new methods are only ever appended,
 *  guarded by a higher version. The strategy owns the per-layer storage of
 *  K (after RoPE, per K head) and V (per V head) in its own format.
 *  A strategy instance belongs to one session and is called from that
 *  session's thread only. Methods return SIGMA_OK or a negative status. */
typedef struct sigma_kv_strategy {
    int version;               /**< SIGMA_KV_STRATEGY_VERSION */
    const char *name;
    /** Non-zero if positions are unbounded: the session lets evaluation go
     *  on past n_ctx tokens (positions keep growing) and the strategy itself
     *  decides what to keep (e.g. window evicts old rows) and when to refuse
     *  (SIGMA_E_CONTEXT_FULL from append). Zero: the session refuses tokens
     *  past n_ctx with SIGMA_E_CONTEXT_FULL before the strategy sees them. */
    int unbounded;
    void *user;                /**< passed to create() */
    int (*create)(void *user, const sigma_kv_layout *layout, const char *options,
                  void **state, char *err, size_t err_size);
    void (*destroy)(void *state);
    /** Append the rows of n tokens at positions pos0.. for one layer.
     *  k: [n][n_k*d_qk], v: [n][n_v*d_v]. */
    int (*append)(void *state, uint32_t layer, uint32_t pos0, uint32_t n,
                  const float *k, const float *v);
    int (*attend)(void *state, const sigma_kv_attend_args *args);
    /** Forget every position >= n_pos (rewind). */
    int (*truncate)(void *state, uint32_t n_pos);
    /** Bytes of cache storage currently held. */
    size_t (*bytes_used)(void *state);
    /** Write the state through `w`; restore it from a buffer. */
    int (*save)(void *state, sigma_write_fn w, void *ctx);
    int (*load)(void *state, const void *data, size_t size);
} sigma_kv_strategy;

/** Vector kernels for strategies (the library's own, fastest for the CPU).
 *  All thread-safe, no allocation. */
SIGMA_API float sigma_kernel_dot_f32(const float *a, const float *b, size_t n);
/** y += a*x */
SIGMA_API void sigma_kernel_axpy_f32(float *y, float a, const float *x, size_t n);
SIGMA_API void sigma_kernel_f32_to_f16(uint16_t *dst, const float *src, size_t n);
SIGMA_API void sigma_kernel_f16_to_f32(float *dst, const uint16_t *src, size_t n);
SIGMA_API void sigma_kernel_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
SIGMA_API void sigma_kernel_bf16_to_f32(float *dst, const uint16_t *src, size_t n);

/** In-place softmax over n values (max-subtracted, sum in double). */
SIGMA_API void sigma_kernel_softmax_f32(float *x, size_t n);

/* Grouped asymmetric quantization (bits = 2, 4 or 8). A row of n values is
 * cut into groups of `group` consecutive values (the last may be shorter);
 * each group has params[2g] = scale and params[2g+1] = minimum, both f16,
 * and value i is minimum + scale * code_i, code_i in [0, 2^bits). Codes are
 * packed: code i occupies `bits` bits from bit i*bits, low bits first.
 * Rounding error per value <= scale/2 (plus f16 rounding of the minimum).
 * Inputs beyond +-65504 (the f16 range) are clamped. */

/** Bytes of packed codes for n values (0 for bad bits). */
SIGMA_API size_t sigma_kernel_quant_bytes(size_t n, int bits);
/** Quantize x[n] into codes (sigma_kernel_quant_bytes(n, bits) bytes) and
 *  params (2 * ceil(n/group) halves). SIGMA_E_INVALID_ARG for bad
 *  arguments. */
SIGMA_API int sigma_kernel_quantize(uint8_t *codes, uint16_t *params, const float *x, size_t n,
                                    size_t group, int bits);
/** y[n] = the values of a quantized row. */
SIGMA_API void sigma_kernel_dequantize(float *y, const uint8_t *codes, const uint16_t *params,
                                       size_t n, size_t group, int bits);
/** Dot product of x[n] with a quantized row (without dequantizing it). */
SIGMA_API float sigma_kernel_dot_quant(const float *x, const uint8_t *codes,
                                       const uint16_t *params, size_t n, size_t group, int bits);
/** y[n] += a * (a quantized row). */
SIGMA_API void sigma_kernel_axpy_quant(float *y, float a, const uint8_t *codes,
                                       const uint16_t *params, size_t n, size_t group, int bits);

/* ------------------------------------------------------------------------ */
/* Sessions                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct sigma_session_params {
    uint32_t struct_size;
    /** Context length in tokens (0 = the model's trained length). */
    uint32_t n_ctx;
    /** Most tokens evaluated in one internal step (0 = 512). Longer inputs
     *  are split; results do not depend on it beyond float rounding. */
    uint32_t n_batch;
    /** Worker threads when no pool is given (0 = online CPUs). */
    uint32_t n_threads;
    /** A shared pool (borrowed; must outlive the session), or NULL for a
     *  pool owned by the session. */
    sigma_threadpool *threadpool;
    /** Keep the logits of every position of each eval (for perplexity);
     *  default 0: only the last. */
    int logits_all;
    /** KV strategy by name ("dense", ...; NULL = "dense", f16 rows by
     *  default) and its options string ("key=value,key=value"; NULL =
     *  defaults; "type=f32" for an exact dense cache). */
    const char *kv_strategy;
    const char *kv_options;
    /** A host-provided strategy; overrides kv_strategy when non-NULL.
     *  Borrowed: must outlive the session. */
    const sigma_kv_strategy *kv_custom;
    /** Cancellation callback (default NULL). */
    sigma_cancel_fn cancel_fn;
    void *cancel_user;
    /** zlib level used by sigma_session_save*(): 0 (default) stores the
     *  payload uncompressed, 1 (fastest) .. 9 (smallest). An f32 KV cache
     *  deflates by only ~7% at level 1 for ~16x the save time
     *  (docs/session-format.md). */
    int save_compression;
} sigma_session_params;

/** Fill `params` with defaults; see sigma_model_params_init(). */
SIGMA_API int sigma_session_params_init(sigma_session_params *params, size_t struct_size);

/** Open a session (a KV cache and scratch buffers) on `model`. `params`
 *  may be NULL. The model must outlive the session. Thread-safe with
 *  respect to the model: any number of sessions may be opened on one model
 *  from any threads. Close with sigma_session_close(). */
SIGMA_API int sigma_session_open(const sigma_model *model, const sigma_session_params *params,
                                 sigma_session **out);

/** Close a session. NULL is a no-op. */
SIGMA_API void sigma_session_close(sigma_session *session);

/** Message of the last failed call on this session ("" if none). Valid until
 *  the next call on the session. */
SIGMA_API const char *sigma_session_last_error(const sigma_session *session);

/** Append `n_tokens` tokens at the current position and compute logits.
 *  Returns SIGMA_E_CONTEXT_FULL (session unchanged) if they do not fit,
 *  SIGMA_E_INVALID_ARG for an out-of-range token, SIGMA_E_CANCELLED if the
 *  cancel callback stopped it (session unchanged), SIGMA_E_NUMERIC if the
 *  model's weights produced a NaN or an infinity (session unchanged; the
 *  message names the first place: the token embedding, "layer L: the
 *  attention/ffn output", or the output logits, and the batch row).
 *  Numeric policy: tensor data is untrusted like the rest of a file. Every
 *  kernel is defined for every bit pattern of weights and activations (no
 *  integer overflow, no float-to-int conversion of NaN or infinity, no
 *  index computed from a value): non-finite inputs propagate as NaN, and
 *  this call checks the embedding rows, the residual stream after every
 *  attention and FFN block and the logits, so SIGMA_OK always comes with
 *  finite logits. See docs/model-format.md. */
SIGMA_API int sigma_session_eval(sigma_session *session, const sigma_token *tokens,
                                 size_t n_tokens);

/** Logits of position `index` of the last eval: -1 = its last token;
 *  0..n_tokens-1 only with logits_all. `*logits` has n_vocab floats, owned
 *  by the session, valid until the next eval/rewind/close. */
SIGMA_API int sigma_session_logits(const sigma_session *session, int32_t index,
                                   const float **logits);

/** Number of tokens in the session (the next token's position). */
SIGMA_API int sigma_session_position(const sigma_session *session, uint32_t *position);

/** The session's tokens (`*n` of them), owned by the session, valid until
 *  the next call that changes it. */
SIGMA_API int sigma_session_tokens(const sigma_session *session, const sigma_token **tokens,
                                   size_t *n);

/** Forget every token at position >= `position` (must be <= the current
 *  position). Logits become unavailable until the next eval. */
SIGMA_API int sigma_session_rewind(sigma_session *session, uint32_t position);

/** Bytes the KV cache currently holds. */
SIGMA_API int sigma_session_kv_bytes(const sigma_session *session, size_t *bytes);

/** Evaluate tokens for several sessions in one forward pass: session i
 *  appends `n_tokens[i]` (>= 1) tokens `tokens[i]` at its own position, as
 *  sigma_session_eval() would. Every matmul is shared by all rows of all
 *  sessions (the weights are read once per pass, not once per session);
 *  attention runs per session through its own KV strategy (built-in or
 *  host-supplied), with its own positions, logits (logits_all as set at its
 *  open), n_ctx and cancel callback. The logits of each session are
 *  bitwise equal to evaluating its tokens alone with sigma_session_eval()
 *  in pieces of at most its n_batch. Rows are processed in passes of at
 *  most the largest n_batch among the sessions, whose buffers and threads
 *  run the shared part.
 *
 *  Failure semantics. The arguments are validated first; if anything is
 *  wrong, nothing is evaluated, every session is left as it was, every
 *  `statuses[i]` gets the returned status and every non-NULL session the
 *  message: SIGMA_E_INVALID_ARG for NULL `sessions`/`tokens`/`n_tokens`,
 *  n_sessions == 0, a NULL session, NULL tokens or n_tokens[i] == 0, an
 *  out-of-range token, or the same session twice; SIGMA_E_MISMATCH for
 *  sessions of different models. Otherwise each session succeeds or fails
 *  on its own: a session whose tokens do not fit (SIGMA_E_CONTEXT_FULL),
 *  whose cancel callback stops it (SIGMA_E_CANCELLED, polled between
 *  layers), whose KV strategy fails, or that cannot get memory for its
 *  tokens/logits (SIGMA_E_NOMEM) is left as before the call (cache
 *  truncated back, tokens and logits unchanged) while the others go on. A
 *  failure of the shared part (e.g. out of memory) leaves every session as
 *  before the call. A session advanced iff `statuses[i]` is SIGMA_OK
 *  (`statuses` may be NULL; n_sessions ints otherwise). Returns SIGMA_OK if
 *  every session advanced, else the status of the first that did not.
 *  Each session's message (sigma_session_last_error) describes its own
 *  failure. All the sessions belong to the calling thread for the call. */
SIGMA_API int sigma_sessions_eval(sigma_session *const *sessions,
                                  const sigma_token *const *tokens, const size_t *n_tokens,
                                  size_t n_sessions, int *statuses);

/** Open a new session in the state of `session`: the same parameters
 *  (n_ctx, n_batch, threads or pool, KV strategy and options, logits_all,
 *  cancel callback), tokens, logits and KV-cache contents, so that it
 *  continues exactly as `session` would. No tokens are evaluated: the cache
 *  is copied through the strategy's save and load methods, which every
 *  built-in strategy has; a host strategy without them gives
 *  SIGMA_E_UNSUPPORTED. An attached sampler is not shared (the fork has
 *  none). `session` is not changed (a failure's message goes to it). Close
 *  the fork with sigma_session_close(). */
SIGMA_API int sigma_session_fork(const sigma_session *session, sigma_session **out);

/** Save the session to a file: its tokens, the logits of its last position
 *  (when valid), the KV strategy's serialized cache and the state of an
 *  attached sampler (sigma_session_set_sampler()), stored uncompressed by
 *  default or deflate-compressed (see save_compression), in the format of
 *  docs/session-format.md: magic,
 *  format version, the model's fingerprint, the strategy name, sizes and a
 *  CRC-32 of the payload. The file is written to a temporary file in the
 *  same directory, fsynced and renamed over `path` (then the directory is
 *  fsynced), so a crash at any moment leaves either the old file or the new
 *  one. The session is not changed. Errors: SIGMA_E_IO (message names the
 *  path and the system error), SIGMA_E_NOMEM, SIGMA_E_UNSUPPORTED if the KV
 *  strategy cannot serialize itself. */
SIGMA_API int sigma_session_save(sigma_session *session, const char *path);

/** Load a file written by sigma_session_save() into an open session on the
 *  same model with the same KV strategy. Every field is validated before
 *  anything changes: SIGMA_E_FORMAT for a truncated or corrupted file (bad
 *  magic, CRC mismatch, sizes out of range), SIGMA_E_UNSUPPORTED for another
 *  format version, SIGMA_E_MISMATCH for a file of another model or strategy,
 *  SIGMA_E_CONTEXT_FULL if its tokens exceed the session's n_ctx. On any
 *  failure the session is exactly as it was. */
SIGMA_API int sigma_session_load(sigma_session *session, const char *path);

/** Save into a caller buffer; SIGMA_E_BUFFER_TOO_SMALL writes the needed
 *  size to *len. */
SIGMA_API int sigma_session_save_memory(sigma_session *session, void *buf, size_t size,
                                        size_t *len);

/** Load from memory; see sigma_session_load(). */
SIGMA_API int sigma_session_load_memory(sigma_session *session, const void *data,
                                        size_t size);

/** Attach a sampler whose state travels with the session's files (NULL
 *  detaches). The sampler is borrowed, not owned: it must stay open while
 *  attached (detach it or close the session before closing it). While a
 *  sampler is attached, sigma_session_save*() also writes its full state
 *  (settings, RNG state and penalty history; format version 2 of
 *  docs/session-format.md), so that sampling continues after a load exactly
 *  as it would have without the interruption, and sigma_session_load*()
 *  restores the state a file holds into it. A load validates the sampler
 *  state together with everything else before changing anything: on any
 *  error (SIGMA_E_FORMAT for bad sampler fields, SIGMA_E_MISMATCH for
 *  another vocabulary) neither the session nor the sampler changes.
 *  Loading a file without sampler state leaves an attached sampler as it
 *  is; a file's sampler state is ignored when no sampler is attached.
 *  Attaching changes nothing else: sigma_session_generate() still uses
 *  the sampler given in its params. Threads: the session and the attached
 *  sampler form one object; calls on either must not overlap with a save
 *  or load of the session. Returns SIGMA_E_INVALID_ARG for a NULL session,
 *  SIGMA_E_MISMATCH (message on the session, the attachment unchanged)
 *  if the sampler was opened for another model. */
SIGMA_API int sigma_session_set_sampler(sigma_session *session, sigma_sampler *sampler);

/* ------------------------------------------------------------------------ */
/* Tokenizer                                                                */
/* ------------------------------------------------------------------------ */

/** Flags for sigma_tokenize(). */
#define SIGMA_TOKENIZE_ADD_SPECIAL   1u /**< add BOS (etc.) when the model says so */
#define SIGMA_TOKENIZE_PARSE_SPECIAL 2u /**< recognise "<|im_start|>" etc. in text */

/** Tokenize `text_len` bytes of UTF-8 (invalid bytes are encoded as their
 *  byte tokens, never dropped). Writes at most `capacity` ids; `*n_tokens`
 *  receives the number needed. If it exceeds `capacity`, returns
 *  SIGMA_E_BUFFER_TOO_SMALL (call again with a bigger buffer).
 *  Thread-safe. */
SIGMA_API int sigma_tokenize(const sigma_model *model, const char *text, size_t text_len,
                             sigma_token *tokens, size_t capacity, size_t *n_tokens,
                             uint32_t flags);

/** Flags for piece/detokenize. */
#define SIGMA_DETOK_RENDER_SPECIAL 1u /**< render control tokens as their text */

/** The bytes of one token (may be part of a UTF-8 character). `*len`
 *  receives the needed length; SIGMA_E_BUFFER_TOO_SMALL if > size. Not
 *  NUL-terminated. Thread-safe. */
SIGMA_API int sigma_token_to_piece(const sigma_model *model, sigma_token token, char *buf,
                                   size_t size, size_t *len, uint32_t flags);

/** Turn tokens back into text (the inverse of sigma_tokenize, dropping the
 *  leading space rule and BOS). Same buffer protocol as above. */
SIGMA_API int sigma_detokenize(const sigma_model *model, const sigma_token *tokens,
                               size_t n_tokens, char *buf, size_t size, size_t *len,
                               uint32_t flags);

typedef enum sigma_special_token {
    SIGMA_SPECIAL_BOS = 0,
    SIGMA_SPECIAL_EOS = 1,
    SIGMA_SPECIAL_EOT = 2,   /**< end of turn (e.g. <|im_end|>, <|eot_id|>) */
    SIGMA_SPECIAL_UNK = 3,
    SIGMA_SPECIAL_PAD = 4
} sigma_special_token;

/** A special token id, or SIGMA_E_NOT_FOUND if the model has none. */
SIGMA_API int sigma_model_special_token(const sigma_model *model, sigma_special_token which,
                                        sigma_token *token);

/** *is_eog = 1 if `token` ends generation (EOS, EOT, ...). */
SIGMA_API int sigma_token_is_eog(const sigma_model *model, sigma_token token, int *is_eog);

/** Incremental decoding: feed tokens one by one and receive only complete
 *  UTF-8 characters; bytes of an unfinished character are held back. */
SIGMA_API int sigma_decoder_open(const sigma_model *model, uint32_t flags, sigma_decoder **out);
/** Decode one token, appending text to buf (buffer protocol as above; on
 *  SIGMA_E_BUFFER_TOO_SMALL nothing is consumed). */
SIGMA_API int sigma_decoder_push(sigma_decoder *dec, sigma_token token, char *buf, size_t size,
                                 size_t *len);
/** Emit what is held back (invalid UTF-8 becomes U+FFFD) and reset. */
SIGMA_API int sigma_decoder_flush(sigma_decoder *dec, char *buf, size_t size, size_t *len);
SIGMA_API void sigma_decoder_close(sigma_decoder *dec);

/* ------------------------------------------------------------------------ */
/* Sampling                                                                 */
/* ------------------------------------------------------------------------ */

/** Sampler settings. One sample runs, in this order:
 *   1. penalties over the last penalty_last_n recorded tokens, once per
 *      distinct token with count c: repetition (logit > 0 ? logit / r :
 *      logit * r), then logit -= c * frequency_penalty
 *      + (c > 0) * presence_penalty;
 *   2. top-k (ties at the cut: lower id kept);
 *   3. temperature: p = softmax(logit / T) over what is left;
 *   4. top-p: the smallest set of most likely tokens with mass >= top_p;
 *   5. min-p: drop tokens with p < min_p * p_max;
 *   6. renormalise and draw with the sampler's own RNG (xoshiro256**
 *      seeded by SplitMix64 from `seed`).
 *  With temperature <= 0 only step 1 runs, then argmax (lowest id on ties).
 *  NaN logits count as -inf. */
typedef struct sigma_sampler_params {
    uint32_t struct_size;
    float temperature;        /**< <= 0: greedy (argmax). Default 0.8 */
    int32_t top_k;            /**< <= 0: off. Default 40 */
    float top_p;              /**< >= 1: off. Default 0.95 */
    float min_p;              /**< <= 0: off. Default 0.05 */
    float repeat_penalty;     /**< 1: off. Default 1.0 */
    float frequency_penalty;  /**< 0: off */
    float presence_penalty;   /**< 0: off */
    int32_t penalty_last_n;   /**< window for penalties; <= 0: no penalties.
                                   Default 64 */
    uint64_t seed;            /**< RNG seed. Default 0xC0FFEE */
    /** Grammar constraint (default NULL: none): GBNF text, NUL-terminated,
     *  in the dialect of llama.cpp's grammars/README.md (see docs/guide.md),
     *  compiled once at sigma_sampler_open() (the text is copied). Before
     *  the pipeline above, every token whose bytes cannot continue the
     *  output inside the grammar's language is removed; end-of-generation
     *  tokens are kept only where the language may end. Each sampled token
     *  advances the grammar; sigma_sampler_accept() does not (prompt
     *  tokens are not output). A syntax error, an undefined rule, left
     *  recursion or a loop that can repeat without consuming input gives
     *  SIGMA_E_INVALID_ARG with "line L column C" in the model's message. */
    const char *grammar;
    /** Start rule of `grammar` (default NULL: "root"). */
    const char *grammar_root;
} sigma_sampler_params;

SIGMA_API int sigma_sampler_params_init(sigma_sampler_params *params, size_t struct_size);

/** Create a sampler for `model`'s vocabulary (params NULL = defaults). The
 *  sampler owns its RNG; samplers never share state. SIGMA_E_INVALID_ARG
 *  for NaN settings or repeat_penalty <= 0 (message on the model). */
SIGMA_API int sigma_sampler_open(const sigma_model *model, const sigma_sampler_params *params,
                                 sigma_sampler **out);
SIGMA_API void sigma_sampler_close(sigma_sampler *sampler);

/** Pick a token from `logits` (n_vocab floats, not modified) and record it
 *  in the penalty history. SIGMA_E_INVALID_ARG if every logit is NaN/-inf. */
SIGMA_API int sigma_sampler_sample(sigma_sampler *sampler, const float *logits,
                                   sigma_token *token);

/** Record a token in the penalty history without sampling (prompt tokens). */
SIGMA_API int sigma_sampler_accept(sigma_sampler *sampler, sigma_token token);

/** Clear history and reseed; a grammar goes back to its start. */
SIGMA_API int sigma_sampler_reset(sigma_sampler *sampler, uint64_t seed);

/** 1 in *done if the sampler's grammar is at a point where its language
 *  may end (0 if not; 1 without a grammar). */
SIGMA_API int sigma_sampler_grammar_done(const sigma_sampler *sampler, int *done);

/** Convert a JSON Schema (`schema_len` bytes of JSON) to GBNF text for
 *  sigma_sampler_params.grammar, with the buffer protocol of
 *  sigma_token_to_piece() (plus a NUL when it fits; *len excludes it).
 *  Supported: type (string, number, integer, boolean, null, object, array,
 *  or a list of them), properties, required, additionalProperties (false,
 *  true or a schema; absent = false), items, minItems, maxItems, minLength,
 *  maxLength, enum, const, anyOf, oneOf, $ref to "#/$defs/..." or
 *  "#/definitions/...", and annotations (title, description, ...). The
 *  output writes properties in the schema's order without extra space.
 *  SIGMA_E_INVALID_ARG for malformed JSON or schema, SIGMA_E_UNSUPPORTED
 *  for a keyword that would constrain the value but is not supported
 *  (pattern, minimum, ...); the message goes to `model`'s last error when
 *  model is not NULL (model also gives the allocator). Thread-safe. */
SIGMA_API int sigma_json_schema_to_grammar(const sigma_model *model, const char *schema,
                                           size_t schema_len, char *buf, size_t size,
                                           size_t *len);

/* ------------------------------------------------------------------------ */
/* Generation and chat                                                      */
/* ------------------------------------------------------------------------ */

/** Receives generated text, always whole UTF-8 characters. Return non-zero
 *  to stop generation (status stays SIGMA_OK, stop_reason USER). */
typedef int (*sigma_piece_fn)(void *user, const char *text, size_t len);

typedef enum sigma_stop_reason {
    SIGMA_STOP_NONE = 0,
    SIGMA_STOP_EOG = 1,        /**< end-of-generation token */
    SIGMA_STOP_MAX_TOKENS = 2,
    SIGMA_STOP_STRING = 3,     /**< a stop string appeared */
    SIGMA_STOP_USER = 4,       /**< the piece callback returned non-zero */
    SIGMA_STOP_CANCELLED = 5,
    SIGMA_STOP_CONTEXT_FULL = 6
} sigma_stop_reason;

typedef struct sigma_generate_params {
    uint32_t struct_size;
    /** Sampler to use (borrowed), or NULL for greedy decoding. */
    sigma_sampler *sampler;
    int32_t max_tokens;        /**< default 256; <= 0 = until EOG/context */
    const char *const *stop_strings;
    size_t n_stop_strings;
    uint32_t tokenize_flags;   /**< default SIGMA_TOKENIZE_ADD_SPECIAL when the
                                    session is empty (the flag is ignored once
                                    the session holds tokens); see sigma_tokenize */
    sigma_piece_fn on_piece;
    void *on_piece_user;
} sigma_generate_params;

typedef struct sigma_generate_stats {
    uint32_t struct_size;      /**< set by the caller */
    uint32_t n_prompt_tokens;  /**< tokens evaluated for the prompt */
    uint32_t n_generated;
    double prompt_ms;
    double generate_ms;
    sigma_stop_reason stop_reason;
} sigma_generate_stats;

SIGMA_API int sigma_generate_params_init(sigma_generate_params *params, size_t struct_size);

/** Tokenize `prompt`, append it to the session and generate, streaming text
 *  to params->on_piece. `stats` may be NULL. Stopping for EOG, max tokens,
 *  a stop string, the callback or a full context returns SIGMA_OK;
 *  cancellation returns SIGMA_E_CANCELLED with the tokens so far kept in
 *  the session. Every emitted token has been evaluated into the session
 *  (the EOG token is not added), so a later call with prompt "" continues
 *  the text. Text that could begin a stop string is held back until
 *  decided; a stop string itself is never emitted. The prompt's tokens are
 *  recorded in params->sampler's penalty history. An empty prompt samples
 *  from the session's current logits (SIGMA_E_STATE if there are none).
 *  A prompt that does not fit gives SIGMA_E_CONTEXT_FULL. `stats` is
 *  written on success and on SIGMA_E_CANCELLED / SIGMA_E_CONTEXT_FULL. */
SIGMA_API int sigma_session_generate(sigma_session *session, const char *prompt,
                                     const sigma_generate_params *params,
                                     sigma_generate_stats *stats);

typedef struct sigma_chat_message {
    const char *role;          /**< "system", "user" or "assistant" */
    const char *content;
} sigma_chat_message;

/** Render messages with the model's chat template (ChatML and Llama-3 are
 *  recognised from tokenizer.chat_template; otherwise a plain fallback).
 *  With add_assistant != 0 the text ends with the assistant turn's header.
 *  Buffer protocol as for sigma_token_to_piece(), plus a NUL when it fits. */
SIGMA_API int sigma_chat_render(const sigma_model *model, const sigma_chat_message *messages,
                                size_t n_messages, int add_assistant, char *buf, size_t size,
                                size_t *len);

/** Continue a conversation: render `messages` (the whole history) with
 *  add_assistant, tokenize it with SIGMA_TOKENIZE_PARSE_SPECIAL (plus
 *  ADD_SPECIAL unless cleared in params->tokenize_flags), reuse the
 *  session's cache for the longest common token prefix (rewinding past
 *  it), evaluate the rest (stats->n_prompt_tokens counts only these) and
 *  generate the assistant's reply as sigma_session_generate() does. The
 *  reply's tokens stay in the session, so passing the history plus the
 *  reply and a new user message next time evaluates only the new part.
 *  With the plain fallback template "\nUser:" and "\nSystem:" are extra
 *  stop strings. */
SIGMA_API int sigma_session_chat(sigma_session *session, const sigma_chat_message *messages,
                                 size_t n_messages, const sigma_generate_params *params,
                                 sigma_generate_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* SIGMA_SIGMA_H */
