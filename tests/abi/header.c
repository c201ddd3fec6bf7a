/* sigma.h must compile on its own as C99 and C11 with all warnings. */
#include <sigma/sigma.h>
#include <sigma/sigma.h> /* include guard */

int main(void) {
    sigma_model_params p;
    return sigma_model_params_init(&p, sizeof p) == SIGMA_OK ? 0 : 1;
}
