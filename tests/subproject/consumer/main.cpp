// The C++ wrappers work from a subproject too.
#include <sigma/sigma.hpp>
#include <cstdio>

int main() {
    try {
        sigma::Model m("/nonexistent/model.gguf");
        return 1;
    } catch (const sigma::Error &e) {
        std::printf("C++ wrapper ok (%s)\n", sigma::version().c_str());
        return e.status() < 0 ? 0 : 1;
    }
}
