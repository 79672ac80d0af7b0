/* The C API's calls for front ends in other languages (include/crema.h,
 * "For front ends"): messages between text and binary, a snapshot under
 * another prefix, and a restore whose weights come from another file. */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *roundtrip(const char *message, const char *text)
{
    uint8_t *bin = NULL;
    size_t n = 0;
    char *out = NULL;
    CHECK_OK(crema_proto_text_to_binary(message, text, strlen(text), "t.prototxt", &bin, &n));
    if (bin)
        CHECK_OK(crema_proto_binary_to_text(message, bin, n, &out, NULL));
    crema_free(bin);
    return out;
}

static void test_messages(void)
{
    char *t = roundtrip("NetParameter", "name: \"n\"\nlayer { name: \"ip\" type: \"InnerProduct\" bottom: \"x\" "
                                        "top: \"y\" inner_product_param { num_output: 3 } }\n");
    CHECK(t && strstr(t, "name: \"n\"") && strstr(t, "num_output: 3") && strstr(t, "type: \"InnerProduct\""));
    free(t);
    /* a V1 net comes back upgraded, as Caffe reads it */
    t = roundtrip("caffe.NetParameter", "name: \"old\"\nlayers { name: \"ip\" type: INNER_PRODUCT bottom: \"x\" "
                                        "top: \"y\" inner_product_param { num_output: 2 } }\n");
    CHECK_MSG(t && strstr(t, "layer {") && strstr(t, "type: \"InnerProduct\"") && !strstr(t, "layers {"),
              "the V1 net upgraded: %s", t ? t : "(null)");
    free(t);
    /* solver_type becomes type */
    t = roundtrip("SolverParameter", "base_lr: 0.5\nsolver_type: NESTEROV\n");
    CHECK_MSG(t && strstr(t, "type: \"Nesterov\"") && strstr(t, "base_lr: 0.5"), "solver: %s", t ? t : "(null)");
    free(t);
    /* empty text is an empty message */
    t = roundtrip("SolverParameter", "");
    CHECK(t && t[0] == '\0');
    free(t);
}

static void test_message_errors(void)
{
    uint8_t *bin = (uint8_t *)1;
    size_t n = 7;
    const char *bad = "name: \"n\"\nlayer { nmae: \"x\" }\n";
    CHECK_EQ_INT(crema_proto_text_to_binary("NetParameter", bad, strlen(bad), "bad.prototxt", &bin, &n),
                 CREMA_ERR_PARSE);
    CHECK(bin == NULL && n == 0);
    CHECK_MSG(strstr(crema_errmsg(), "bad.prototxt:2") && strstr(crema_errmsg(), "nmae"), "message: %s",
              crema_errmsg());
    CHECK_EQ_INT(crema_proto_text_to_binary("Nope", "", 0, NULL, &bin, &n), CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "Nope") != NULL);
    CHECK_EQ_INT(crema_proto_text_to_binary("NetParameter", "x", 1, NULL, NULL, &n), CREMA_ERR_INVALID);
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    char *out = (char *)1;
    CHECK(crema_proto_binary_to_text("NetParameter", garbage, sizeof garbage, &out, NULL) != CREMA_OK);
    CHECK(out == NULL);
    CHECK_EQ_INT(crema_proto_binary_to_text(NULL, garbage, 1, &out, NULL), CREMA_ERR_INVALID);
    crema_free(NULL);
}

/* A solver over a DummyData net, two steps, snapshotted under another
 * prefix; the model then moved away (as if it came from another host) and
 * restored with crema_solver_restore_weights. */
static void snapshot_and_restore(const char *format)
{
    char *dir = check_tmpdir(format[0] == 'H' ? "capi_frontend_h5" : "capi_frontend");
    char *abs = realpath(dir, NULL);
    CHECK(abs != NULL);
    if (!abs) {
        free(dir);
        return;
    }
    char sp[4200], prefix[4200], model[4300], state[4300], moved[4300];
    const char *ext = format[0] == 'H' ? ".h5" : "";
    snprintf(sp, sizeof sp, "%s/solver.prototxt", abs);
    FILE *f = fopen(sp, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f,
                "net_param { name: \"d\"\n"
                "  layer { name: \"data\" type: \"DummyData\" top: \"x\" top: \"t\"\n"
                "    dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 }\n"
                "      data_filler { type: \"constant\" value: 1 } data_filler { type: \"constant\" value: 0.5 } } }\n"
                "  layer { name: \"ip\" type: \"InnerProduct\" bottom: \"x\" top: \"y\"\n"
                "    inner_product_param { num_output: 2 weight_filler { type: \"gaussian\" std: 0.1 } } }\n"
                "  layer { name: \"loss\" type: \"EuclideanLoss\" bottom: \"y\" bottom: \"t\" top: \"loss\" } }\n"
                "base_lr: 0.1\nmomentum: 0.9\nlr_policy: \"fixed\"\nmax_iter: 10\nrandom_seed: 3\n"
                "snapshot_prefix: \"%s/not_here\"\nsnapshot_format: %s\n",
                abs, format);
        fclose(f);
    }
    crema_solver *s = NULL, *r = NULL;
    CHECK_OK(crema_solver_open(sp, 0, &s));
    float w[6] = {0};
    if (s) {
        CHECK_OK(crema_solver_step(s, 2));
        snprintf(prefix, sizeof prefix, "%s/elsewhere", abs);
        CHECK_OK(crema_solver_snapshot_to(s, prefix));
        crema_blob b;
        CHECK_OK(crema_net_param(crema_solver_net(s), "ip", 0, &b));
        if (b.count == 6)
            memcpy(w, b.data, sizeof w);
        CHECK_EQ_INT(crema_solver_snapshot_to(s, NULL), CREMA_ERR_INVALID);
    }
    snprintf(model, sizeof model, "%s_iter_2.caffemodel%s", prefix, ext);
    snprintf(state, sizeof state, "%s_iter_2.solverstate%s", prefix, ext);
    snprintf(moved, sizeof moved, "%s/copied.caffemodel%s", abs, ext);
    CHECK_MSG(access(model, R_OK) == 0 && access(state, R_OK) == 0, "%s and its state", model);
    char not_here[4300];
    snprintf(not_here, sizeof not_here, "%s/not_here_iter_2.caffemodel%s", abs, ext);
    CHECK(access(not_here, F_OK) != 0);
    CHECK(rename(model, moved) == 0);
    CHECK_OK(crema_solver_open(sp, 0, &r));
    if (r) {
        /* the state names the model where it was written: gone */
        CHECK(crema_solver_restore(r, state) != CREMA_OK);
        CHECK_OK(crema_solver_restore_weights(r, state, moved));
        CHECK_EQ_INT(crema_solver_iter(r), 2);
        crema_blob b;
        CHECK_OK(crema_net_param(crema_solver_net(r), "ip", 0, &b));
        float worst = 0;
        for (size_t i = 0; i < b.count && i < 6; i++)
            worst = fmaxf(worst, fabsf(b.data[i] - w[i]));
        CHECK_MSG(b.count == 6 && worst == 0, "restored weights differ by %g", (double)worst);
        /* the same next step as the solver that wrote the snapshot */
        CHECK_OK(crema_solver_step(r, 1));
        if (s) {
            CHECK_OK(crema_solver_step(s, 1));
            crema_blob a;
            CHECK_OK(crema_net_param(crema_solver_net(s), "ip", 0, &a));
            CHECK_OK(crema_net_param(crema_solver_net(r), "ip", 0, &b));
            worst = 0;
            for (size_t i = 0; i < a.count && i < b.count; i++)
                worst = fmaxf(worst, fabsf(a.data[i] - b.data[i]));
            CHECK_MSG(worst == 0, "the step after restoring differs by %g", (double)worst);
        }
        CHECK(crema_solver_restore_weights(r, state, "/nonexistent.caffemodel") != CREMA_OK);
        CHECK(strstr(crema_errmsg(), "nonexistent") != NULL);
        CHECK_EQ_INT(crema_solver_restore_weights(r, NULL, moved), CREMA_ERR_INVALID);
    }
    crema_solver_free(r);
    crema_solver_free(s);
    free(abs);
    free(dir);
}

static void test_restore_weights_binary(void)
{
    snapshot_and_restore("BINARYPROTO");
}

static void test_restore_weights_hdf5(void)
{
    snapshot_and_restore("HDF5");
}

CHECK_MAIN(CASE(test_messages), CASE(test_message_errors), CASE(test_restore_weights_binary),
           CASE(test_restore_weights_hdf5))
