/* STUB: replaced by the model-file work. */
#include "gguf.h"
int sg_gguf_open_file(const sg_alloc *a, const char *path, int use_mmap, sg_gguf **out, sg_err *err) { (void)a; (void)path; (void)use_mmap; (void)out; return sg_error(err, SIGMA_E_UNSUPPORTED, "GGUF reader not implemented"); }
int sg_gguf_open_memory(const sg_alloc *a, const void *data, size_t size, sg_gguf **out, sg_err *err) { (void)a; (void)data; (void)size; (void)out; return sg_error(err, SIGMA_E_UNSUPPORTED, "GGUF reader not implemented"); }
void sg_gguf_close(sg_gguf *g) { (void)g; }
const sg_gguf_kv *sg_gguf_find(const sg_gguf *g, const char *key) { (void)g; (void)key; return NULL; }
const sg_tensor *sg_gguf_tensor(const sg_gguf *g, const char *name) { (void)g; (void)name; return NULL; }
