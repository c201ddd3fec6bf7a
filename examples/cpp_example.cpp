// cpp_example.cpp — the C++ wrappers (sigma/sigma.hpp): RAII handles,
// exceptions, lambdas for streaming.
//
//   cpp_example MODEL [PROMPT]
#include <sigma/sigma.hpp>

#include <iostream>

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " MODEL [PROMPT]\n";
        return 2;
    }
    try {
        sigma::Model model(argv[1]);  // closed automatically at scope exit
        sigma_model_info info = model.info();
        std::cerr << info.arch_name << " model, " << info.n_layers << " layers, vocabulary "
                  << info.n_vocab << "\n";

        sigma::SessionOptions so;
        so.n_ctx = 512;
        sigma::Session session(model, so);  // must not outlive `model`

        sigma_sampler_params sp = sigma::Sampler::defaults();
        sp.temperature = 0.7f;
        sp.seed = 42;
        sigma::Sampler sampler(model, sp);

        sigma::GenerateOptions go;
        go.max_tokens = 64;
        go.sampler = &sampler;
        go.stop = {"\n\n"};
        std::cout << (argc > 2 ? argv[2] : "Once upon a time");
        sigma_generate_stats stats = session.generate(
            argc > 2 ? argv[2] : "Once upon a time", go, [](std::string_view piece) {
                std::cout << piece << std::flush;
                return true;  // false would stop here
            });
        std::cout << "\n";
        std::cerr << stats.n_generated << " tokens in " << stats.generate_ms << " ms\n";

        // two continuations of the same text at once: fork the session
        // (copies its cache), then one forward pass for both
        sigma::Session other = session.fork();
        std::vector<sigma_token> a = model.tokenize(" Then", false), b = model.tokenize(" But", false);
        sigma::sessions_eval({&session, &other}, {a, b});
        std::cerr << "forked at " << session.position() - a.size() << "; positions now "
                  << session.position() << " and " << other.position() << "\n";
    } catch (const sigma::Error &e) {
        std::cerr << "error: " << e.what() << " (status " << e.status() << ")\n";
        return 1;
    }
    return 0;
}
