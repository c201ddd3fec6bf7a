#include <sigma/sigma.h>
#include <stdio.h>

static int print_piece(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    return 0;                                   /* 0 = keep going */
}

int main(int argc, char **argv) {
    sigma_model *model;
    sigma_session *session;
    int st = sigma_model_open(argv[1], NULL, &model);
    if (st != SIGMA_OK) { fprintf(stderr, "%s\n", sigma_strerror(st)); return 1; }
    if (sigma_session_open(model, NULL, &session) != SIGMA_OK) { sigma_model_close(model); return 1; }
    sigma_generate_params gp;
    sigma_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 64;
    gp.on_piece = print_piece;
    st = sigma_session_generate(session, argc > 2 ? argv[2] : "Once upon a time", &gp, NULL);
    sigma_session_close(session);
    sigma_model_close(model);
    return st == SIGMA_OK ? 0 : 1;
}
