// sigma.h must compile as C++ (extern "C") with all warnings.
#include <sigma/sigma.h>

int main() {
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    return sigma_strerror(SIGMA_OK) != nullptr ? 0 : 1;
}
