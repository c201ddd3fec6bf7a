/* STUB: replaced by the model-file work. */
#include "model.h"
int sg_model_load_arch(struct sigma_model *model, sg_err *err) { (void)model; return sg_error(err, SIGMA_E_UNSUPPORTED, "not implemented"); }
