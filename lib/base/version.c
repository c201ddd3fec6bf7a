/* Version and status strings. */
#include "sigma/sigma.h"

unsigned sigma_version(void) { return SIGMA_VERSION_NUMBER; }

const char *sigma_version_string(void) { return SIGMA_VERSION_STRING; }

const char *sigma_strerror(int status) {
    switch ((sigma_status)status) {
    case SIGMA_OK: return "success";
    case SIGMA_E_INVALID_ARG: return "invalid argument";
    case SIGMA_E_NOMEM: return "out of memory";
    case SIGMA_E_IO: return "input/output error";
    case SIGMA_E_FORMAT: return "malformed file";
    case SIGMA_E_UNSUPPORTED: return "unsupported";
    case SIGMA_E_CONTEXT_FULL: return "context full";
    case SIGMA_E_CANCELLED: return "cancelled";
    case SIGMA_E_BUFFER_TOO_SMALL: return "buffer too small";
    case SIGMA_E_NOT_FOUND: return "not found";
    case SIGMA_E_MISMATCH: return "mismatch";
    case SIGMA_E_STATE: return "invalid state";
    case SIGMA_E_INTERNAL: return "internal error";
    case SIGMA_E_NUMERIC: return "non-finite values (NaN or infinity) in the computation";
    }
    return "unknown status";
}
