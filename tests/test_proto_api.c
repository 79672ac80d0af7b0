/* The prototxt calls of the C API (crema_proto_*): values read by path with
 * their declared defaults, rewrites printed and read back, Caffe's NetState
 * filter agreeing with the nets the engine builds, upgrades, and errors. */
#include "check.h"
#include "crema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The value at path, or NULL (the status goes to *rc). */
static char *get(const crema_proto *p, const char *path, int *rc)
{
    char *v = NULL;
    *rc = crema_proto_get(p, path, &v, NULL);
    return v;
}

#define CHECK_GET(p, path, want)                                                                  \
    do {                                                                                          \
        int rc_;                                                                                  \
        char *v_ = get((p), (path), &rc_);                                                        \
        CHECK_MSG(rc_ == 0 && streq(v_, (want)), "%s: expected \"%s\", got \"%s\" (status %d: %s)", \
                  (path), (want), v_ ? v_ : "(null)", rc_, rc_ ? crema_errmsg() : "");           \
        crema_free(v_);                                                                           \
    } while (0)

static const char NET[] =
    "name: \"rules\"\n"
    "layer { name: \"train_data\" type: \"MemoryData\" top: \"data\" top: \"label\" include { phase: TRAIN }\n"
    "  source_class: \"com.yahoo.ml.caffe.LMDB\"\n"
    "  memory_data_param { source: \"file:a \\\"b\\\"\" batch_size: 64 channels: 1 height: 28 width: 28 }\n"
    "  transform_param { scale: 0.00390625 mirror: true } }\n"
    "layer { name: \"test_data\" type: \"MemoryData\" top: \"data\" top: \"label\" include { phase: TEST }\n"
    "  memory_data_param { batch_size: 100 channels: 1 height: 28 width: 28 } }\n"
    "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"data\" top: \"ip\"\n"
    "  inner_product_param { num_output: 10 weight_filler { type: \"xavier\" } } }\n"
    "layer { name: \"deep\" type: \"InnerProduct\" bottom: \"ip\" top: \"deep\" include { stage: \"deep\" }\n"
    "  inner_product_param { num_output: 10 } }\n"
    "layer { name: \"level2\" type: \"ReLU\" bottom: \"ip\" top: \"ip\" include { min_level: 2 } }\n"
    "layer { name: \"acc\" type: \"Accuracy\" bottom: \"ip\" bottom: \"label\" top: \"acc\"\n"
    "  exclude { phase: TRAIN } exclude { not_stage: \"eval\" } }\n"
    "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip\" bottom: \"label\" top: \"loss\" }\n";

static void test_get(void)
{
    crema_proto *p = NULL;
    CHECK_OK(crema_proto_parse("NetParameter", NET, strlen(NET), "rules.prototxt", &p));
    if (!p)
        return;
    CHECK(streq(crema_proto_type(p), "NetParameter"));
    size_t n = 0;
    CHECK_OK(crema_proto_count(p, "layer", &n));
    CHECK_EQ_INT(n, 7);
    CHECK_GET(p, "name", "rules");
    CHECK_GET(p, "layer[0].name", "train_data");
    CHECK_GET(p, "layer[0].memory_data_param.source", "file:a \"b\""); /* raw, unescaped */
    CHECK_GET(p, "layer[0].memory_data_param.batch_size", "64");
    CHECK_GET(p, "layer[0].transform_param.scale", "0.00390625");
    CHECK_GET(p, "layer[0].transform_param.mirror", "true");
    CHECK_GET(p, "layer[0].include[0].phase", "TRAIN");
    /* unset scalars read as their declared defaults (caffe.proto's and CaffeOnSpark's) */
    CHECK_GET(p, "layer[1].memory_data_param.dataframe_format", "parquet");
    CHECK_GET(p, "layer[1].memory_data_param.image_encoded", "false");
    CHECK_GET(p, "layer[1].memory_data_param.source", "");
    CHECK_GET(p, "layer[0].transform_param.crop_size", "0");
    /* a message reads as its fields in the text format */
    CHECK_GET(p, "layer[2].inner_product_param.weight_filler", "type: \"xavier\"\n");
    CHECK_OK(crema_proto_count(p, "layer[1].source_class", &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(crema_proto_count(p, "layer[0].source_class", &n));
    CHECK_EQ_INT(n, 1);
    CHECK_OK(crema_proto_count(p, "layer[1].transform_param.mean_value", &n)); /* parent not set */
    CHECK_EQ_INT(n, 0);

    int rc;
    char *v = get(p, "layer[1].transform_param", &rc);
    CHECK_MSG(rc == CREMA_ERR_NOTFOUND && !v, "an unset message: status %d", rc);
    CHECK(strstr(crema_errmsg(), "transform_param") != NULL);
    v = get(p, "layer[7].name", &rc);
    CHECK_MSG(rc == CREMA_ERR_NOTFOUND && strstr(crema_errmsg(), "no index 7"), "index past the end: %d %s", rc,
              crema_errmsg());
    v = get(p, "layer[0].nonsense", &rc);
    CHECK_MSG(rc == CREMA_ERR_INVALID && strstr(crema_errmsg(), "LayerParameter has no field \"nonsense\""),
              "an unknown field: %d %s", rc, crema_errmsg());
    v = get(p, "layer.name", &rc);
    CHECK_MSG(rc == CREMA_ERR_INVALID && strstr(crema_errmsg(), "repeated: give an index"), "no index: %s",
              crema_errmsg());
    v = get(p, "name[0]", &rc);
    CHECK_MSG(rc == CREMA_ERR_INVALID && strstr(crema_errmsg(), "not repeated"), "index on a singular: %s",
              crema_errmsg());
    v = get(p, "layer[0].name.x", &rc);
    CHECK_MSG(rc == CREMA_ERR_INVALID && strstr(crema_errmsg(), "not a message"), "into a string: %s",
              crema_errmsg());
    const char *bad[] = { "", ".", "layer[", "layer[x]", "layer[0", "layer[0]x", "layer[0].", "a..b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = get(p, bad[i], &rc);
        CHECK_MSG(rc == CREMA_ERR_INVALID && !v && strstr(crema_errmsg(), "path"), "path \"%s\": status %d, %s",
                  bad[i], rc, crema_errmsg());
    }
    CHECK(crema_proto_get(NULL, "name", &v, NULL) == CREMA_ERR_INVALID);
    const char *type = NULL;
    int repeated = -1;
    CHECK_OK(crema_proto_field(p, "layer[5].transform_param.mean_value", &type, &repeated));
    CHECK(streq(type, "float") && repeated == 1);
    CHECK_OK(crema_proto_field(p, "layer", &type, &repeated));
    CHECK(streq(type, "caffe.LayerParameter") && repeated == 1);
    CHECK_OK(crema_proto_field(p, "layer[0].include[0].phase", &type, &repeated));
    CHECK(streq(type, "enum") && repeated == 0);
    CHECK(crema_proto_field(p, "layer[0].bogus", &type, NULL) == CREMA_ERR_INVALID);
    crema_proto_free(p);
}

static void test_rewrite(void)
{
    crema_proto *p = NULL;
    CHECK_OK(crema_proto_parse("NetParameter", NET, strlen(NET), NULL, &p));
    if (!p)
        return;
    CHECK_OK(crema_proto_clear(p, "layer[0].source_class"));
    CHECK_OK(crema_proto_clear(p, "layer[1].source_class")); /* not set: fine */
    CHECK_OK(crema_proto_clear(p, "layer[1].transform_param.scale")); /* parent not set: fine */
    CHECK_OK(crema_proto_set(p, "layer[1].memory_data_param.batch_size", "17"));
    CHECK_OK(crema_proto_set(p, "layer[1].memory_data_param.source", "\"x\\ty\""));
    CHECK_OK(crema_proto_set(p, "layer[1].transform_param", "{ scale: 0.5 mean_value: 1 mean_value: 2 }"));
    CHECK_OK(crema_proto_add(p, "layer[1].transform_param.mean_value", "3"));
    CHECK_OK(crema_proto_clear(p, "layer[1].transform_param.mean_value[0]"));
    CHECK_OK(crema_proto_set(p, "layer[2].include", "{ phase: TEST }")); /* a new repeated message */
    CHECK_OK(crema_proto_clear(p, "layer[3]"));
    CHECK_OK(crema_proto_set(p, "state.stage", "\"deep\""));

    char *text = NULL;
    CHECK_OK(crema_proto_print(p, &text, NULL));
    crema_proto *q = NULL;
    CHECK_OK(crema_proto_parse("NetParameter", text ? text : "", text ? strlen(text) : 0, "printed", &q));
    crema_free(text);
    crema_proto_free(p);
    if (!q)
        return;
    size_t n;
    CHECK_OK(crema_proto_count(q, "layer", &n));
    CHECK_EQ_INT(n, 6);
    CHECK_OK(crema_proto_count(q, "layer[0].source_class", &n));
    CHECK_EQ_INT(n, 0);
    CHECK_GET(q, "layer[0].memory_data_param.source", "file:a \"b\"");
    CHECK_GET(q, "layer[1].memory_data_param.batch_size", "17");
    CHECK_GET(q, "layer[1].memory_data_param.source", "x\ty");
    CHECK_GET(q, "layer[1].transform_param.scale", "0.5");
    CHECK_OK(crema_proto_count(q, "layer[1].transform_param.mean_value", &n));
    CHECK_EQ_INT(n, 2);
    CHECK_GET(q, "layer[1].transform_param.mean_value[0]", "2");
    CHECK_GET(q, "layer[1].transform_param.mean_value[1]", "3");
    CHECK_GET(q, "layer[2].include[0].phase", "TEST");
    CHECK_GET(q, "layer[3].name", "level2");
    CHECK_GET(q, "state.stage[0]", "deep");

    /* bad values: a parse error naming the path; the document stays usable */
    int rc = crema_proto_set(q, "layer[1].memory_data_param.batch_size", "many");
    CHECK_MSG(rc == CREMA_ERR_PARSE && strstr(crema_errmsg(), "layer[1].memory_data_param.batch_size") &&
                  strstr(crema_errmsg(), "batch_size"),
              "a bad integer: %d %s", rc, crema_errmsg());
    rc = crema_proto_set(q, "layer[0].include[0]", "{ phase: TEST }");
    CHECK_MSG(rc == CREMA_ERR_INVALID && strstr(crema_errmsg(), "without an index"), "set with an index: %s",
              crema_errmsg());
    rc = crema_proto_set(q, "layer[0].include[0].phase", "LATER");
    CHECK(rc != 0);
    rc = crema_proto_add(q, "name", "\"x\"");
    CHECK_MSG(rc == CREMA_ERR_INVALID && strstr(crema_errmsg(), "not repeated"), "add to a singular: %s",
              crema_errmsg());
    rc = crema_proto_set(q, "layer[9].name", "\"x\"");
    CHECK(rc == CREMA_ERR_NOTFOUND);
    rc = crema_proto_set(q, "name", "\"unterminated");
    CHECK(rc == CREMA_ERR_PARSE);
    rc = crema_proto_set(q, "name", NULL);
    CHECK(rc == CREMA_ERR_INVALID);
    rc = crema_proto_merge(q, "layer { name: ", 14);
    CHECK(rc == CREMA_ERR_PARSE);
    const char *more = "name: \"merged\" layer { name: \"more\" }";
    CHECK_OK(crema_proto_merge(q, more, strlen(more)));
    CHECK_GET(q, "name", "merged");
    CHECK_OK(crema_proto_count(q, "layer", &n));
    CHECK_EQ_INT(n, 8); /* 6, the half-read one of the failed merge, and "more" */
    crema_proto_free(q);

    /* a net inside a solver, as crema.spark writes it for its ranks */
    crema_proto *s = NULL;
    const char *solver = "net: \"x.prototxt\" test_iter: 5 test_iter: 6 base_lr: 0.01 solver_type: NESTEROV";
    CHECK_OK(crema_proto_parse("SolverParameter", solver, strlen(solver), "solver", &s));
    if (!s)
        return;
    CHECK_GET(s, "test_iter[1]", "6");
    CHECK_GET(s, "test_initialization", "true");
    CHECK_OK(crema_proto_clear(s, "net"));
    CHECK_OK(crema_proto_set(s, "net_param", "{ name: \"inline\" layer { name: \"a\" type: \"Input\" } }"));
    int changed = 0;
    CHECK_OK(crema_proto_upgrade(s, &changed));
    CHECK_EQ_INT(changed, 1);
    CHECK_GET(s, "type", "Nesterov");
    CHECK_GET(s, "net_param.layer[0].type", "Input");
    CHECK_OK(crema_proto_count(s, "net", &n));
    CHECK_EQ_INT(n, 0);
    crema_proto_free(s);
}

/* The layers the engine builds for a state, by name, against the filter. */
static void check_filter(const char *what, const char *state, const char *const *want, int n_want)
{
    crema_proto *p = NULL, *st = NULL;
    CHECK_OK(crema_proto_parse("NetParameter", NET, strlen(NET), NULL, &p));
    CHECK_OK(crema_proto_parse("NetState", state, strlen(state), NULL, &st));
    if (!p || !st)
        goto out;
    CHECK_OK(crema_proto_filter_net(p, st));
    size_t n = 0;
    CHECK_OK(crema_proto_count(p, "layer", &n));
    CHECK_MSG((int)n == n_want, "%s: %zu layers kept, expected %d", what, n, n_want);
    for (int i = 0; i < n_want && (size_t)i < n; i++) {
        char path[32];
        snprintf(path, sizeof path, "layer[%d].name", i);
        CHECK_GET(p, path, want[i]);
    }
out:
    crema_proto_free(p);
    crema_proto_free(st);
}

static void test_filter(void)
{
    const char *train[] = { "train_data", "ip", "loss" };
    check_filter("TRAIN", "phase: TRAIN", train, 3);
    const char *test[] = { "test_data", "ip", "loss" };
    check_filter("TEST", "phase: TEST", test, 3);
    const char *eval[] = { "test_data", "ip", "acc", "loss" };
    check_filter("TEST eval", "phase: TEST stage: \"eval\"", eval, 4);
    const char *deep[] = { "train_data", "ip", "deep", "level2", "loss" };
    check_filter("TRAIN deep level 2", "phase: TRAIN stage: \"deep\" level: 2", deep, 5);

    /* the same selection as the net crema_net_open builds */
    char *dir = check_tmpdir("proto_api");
    char path[512];
    snprintf(path, sizeof path, "%s/net.prototxt", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        /* the engine's net needs its bottoms: drop the stage-only layers' users */
        fputs(NET, f);
        fclose(f);
        crema_net *net = NULL;
        CHECK_OK(crema_net_open(path, NULL, CREMA_TEST, &net));
        if (net) {
            int k = 0;
            for (int i = 0; i < crema_net_num_layers(net); i++) {
                const char *name = crema_net_layer_name(net, i);
                if (strstr(name, "_split_"))
                    continue;
                CHECK_MSG(k < 3 && streq(name, test[k]), "engine layer %d is %s", i, name);
                k++;
            }
            CHECK_EQ_INT(k, 3);
            crema_net_free(net);
        }
    }
    free(dir);

    crema_proto *p = NULL, *st = NULL;
    const char *both = "layer { name: \"x\" type: \"ReLU\" include { phase: TEST } exclude { phase: TRAIN } }";
    CHECK_OK(crema_proto_parse("NetParameter", both, strlen(both), NULL, &p));
    CHECK_OK(crema_proto_parse("NetState", "", 0, NULL, &st));
    int rc = crema_proto_filter_net(p, st);
    CHECK_MSG(rc == CREMA_ERR_INVALID && strstr(crema_errmsg(), "layer x"), "include and exclude: %d %s", rc,
              crema_errmsg());
    rc = crema_proto_filter_net(st, p);
    CHECK(rc == CREMA_ERR_INVALID);
    crema_proto_free(p);
    crema_proto_free(st);
}

static void test_upgrade_and_files(void)
{
    const char *v1 = "name: \"old\" layers { name: \"c\" type: CONVOLUTION bottom: \"d\" top: \"c\" "
                     "convolution_param { num_output: 2 kernel_size: 1 } }";
    crema_proto *p = NULL;
    CHECK_OK(crema_proto_parse("NetParameter", v1, strlen(v1), NULL, &p));
    if (p) {
        int changed = 0;
        CHECK_OK(crema_proto_upgrade(p, &changed));
        CHECK_EQ_INT(changed, 1);
        CHECK_GET(p, "layer[0].type", "Convolution");
        size_t n;
        CHECK_OK(crema_proto_count(p, "layers", &n));
        CHECK_EQ_INT(n, 0);
        crema_proto_free(p);
    }
    int rc = crema_proto_parse("Datum2", "", 0, NULL, &p);
    CHECK_MSG(rc == CREMA_ERR_INVALID && strstr(crema_errmsg(), "Datum2") && p == NULL, "unknown type: %s",
              crema_errmsg());
    rc = crema_proto_parse("NetParameter", "layer { nme: \"x\" }", 18, "typo.prototxt", &p);
    CHECK_MSG(rc == CREMA_ERR_PARSE && strstr(crema_errmsg(), "typo.prototxt:1:9") && strstr(crema_errmsg(), "nme"),
              "a typo: %s", crema_errmsg());
    char *golden = check_shared("golden/models/lenet_mnist/net.prototxt");
    CHECK_OK(crema_proto_read("NetParameter", golden, &p));
    if (p) {
        CHECK_GET(p, "layer[1].type", "Convolution");
        crema_proto_free(p);
    }
    free(golden);
    rc = crema_proto_read("NetParameter", "/nonexistent/net.prototxt", &p);
    CHECK_MSG(rc == CREMA_ERR_IO && strstr(crema_errmsg(), "/nonexistent/net.prototxt"), "missing file: %s",
              crema_errmsg());
}

int main(int argc, char **argv)
{
    static const struct check_case cases[] = {
        CASE(test_get),
        CASE(test_rewrite),
        CASE(test_filter),
        CASE(test_upgrade_and_files),
    };
    return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
