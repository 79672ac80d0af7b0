/* Old files load everywhere, as in Caffe: every V0/V1 net of the upgrade
 * corpus opens through the C API (the way of Python, Spark and the JVM)
 * with one upgrade notice, or fails naming a data file that is not here;
 * V0 and V1 .caffemodels load with the same weights as the current format;
 * old solvers and inline nets are upgraded; a net made in memory in the V1
 * format builds. Weights that give no layer anything are refused, partial
 * ones noted. */
#include "check.h"
#include "net/net.h"
#include "proto/proto_io.h"
#include "proto/upgrade.h"
#include "util/io.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp;

/* ---- stderr captured while a call runs ---- */

static int saved_fd = -1;
static char cap_path[4200];

static void capture_begin(void)
{
    fflush(stderr);
    snprintf(cap_path, sizeof cap_path, "%s/stderr.txt", tmp);
    int fd = open(cap_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    saved_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* What went to stderr since capture_begin (malloc'd). */
static char *capture_end(void)
{
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    FILE *f = fopen(cap_path, "r");
    char *buf = calloc(1, 1 << 16);
    if (f && buf) {
        size_t n = fread(buf, 1, (1 << 16) - 1, f);
        buf[n] = 0;
    }
    if (f)
        fclose(f);
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* ---- every old net of the corpus ---- */

/* Opened in both phases when its layers depend on the phase (a deploy net
 * builds the same in both, and filling its weights twice is slow under the
 * sanitizers): one notice in all, as a file is noted once. */
static void open_old_net(const char *path, int *opened, int *missing_data)
{
    int notices = 0;
    uint8_t *text = NULL;
    size_t len = 0;
    bool phased = io_read_file(path, 1 << 24, &text, &len) == 0 && strstr((const char *)text, "phase");
    free(text);
    int first = phased ? 0 : 1;
    for (int phase = first; phase < 2; phase++) {
        crema_net *net = NULL;
        capture_begin();
        crema_status rc = crema_net_open(path, NULL, phase ? CREMA_TEST : CREMA_TRAIN, &net);
        char *err = capture_end();
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", crema_errmsg());
        notices += count(err, "crema: note:");
        CHECK_MSG(phase != first || (strstr(err, path) && strstr(err, "upgraded")),
                  "%s: expected an upgrade notice naming the file, stderr was: %s", path, err);
        if (rc == CREMA_OK) {
            (*opened)++;
        } else {
            /* A data source, mean file or list of the original example that
             * is not here; or, for mnist_autoencoder in TEST without a
             * stage, no data layer at all (Caffe stops there too). Never
             * the format. */
            const char *why = strncmp(msg, path, strlen(path)) == 0 ? msg + strlen(path) : msg;
            bool names_data = strstr(why, "source") || strstr(why, "mean_file") || strstr(why, "No such file") ||
                              strstr(why, "unknown bottom blob \"data\"");
            CHECK_MSG(names_data && !strstr(why, "format") && !strstr(why, "upgrade"),
                      "%s (phase %d): expected an error naming a missing data file, got: %s", path, phase, msg);
            (*missing_data)++;
        }
        free(err);
        crema_net_free(net);
    }
    CHECK_MSG(notices == 1, "%s: %d notices, expected one", path, notices);
}

static void walk(const char *dir, int *n_files, int *opened, int *missing_data)
{
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s", dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            walk(p, n_files, opened, missing_data);
        } else if (strstr(e->d_name, ".prototxt")) {
            (*n_files)++;
            open_old_net(p, opened, missing_data);
        }
    }
    closedir(d);
}

static void test_corpus_nets_open(void)
{
    static const char *const roots[] = { "corpus/upgrade/V0_before", "corpus/upgrade/V1_before_2015" };
    int n_files = 0, opened = 0, missing = 0;
    for (int i = 0; i < 2; i++) {
        char *root = check_shared(roots[i]);
        walk(root, &n_files, &opened, &missing);
        free(root);
    }
    fprintf(stderr, "  %d old nets: %d opens, %d stopped at a data file not here\n", n_files, opened, missing);
    CHECK_MSG(n_files >= 30, "expected the 33 old nets of the corpus, found %d", n_files);
    CHECK_MSG(opened >= 12, "expected the 12 deploy nets to open, %d opens", opened);
}

/* ---- V0 and V1 weights ---- */

/* The golden LeNet weights rewritten in the V1 (v0 = false) or V0 format. */
static char *old_weights(bool v0)
{
    char *src = check_shared("golden/models/lenet_mnist/lenet_iter_10000.caffemodel");
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_read_binary(src, &caffe__net_parameter__descriptor, &m));
    free(src);
    Caffe__NetParameter *w = (Caffe__NetParameter *)m;
    if (!w)
        return NULL;
    CHECK_MSG(w->n_layer > 0 && w->n_layers == 0, "lenet_iter_10000.caffemodel is not in the current format");
    Caffe__NetParameter *old = malloc(sizeof *old);
    caffe__net_parameter__init(old);
    old->layers = calloc(w->n_layer, sizeof *old->layers);
    for (size_t i = 0; i < w->n_layer; i++) {
        Caffe__LayerParameter *l = w->layer[i];
        if (!l->n_blobs)
            continue;
        bool conv = strcmp(l->type, "Convolution") == 0;
        CHECK(conv || strcmp(l->type, "InnerProduct") == 0);
        Caffe__V1LayerParameter *v1 = malloc(sizeof *v1);
        caffe__v1_layer_parameter__init(v1);
        if (v0) {
            Caffe__V0LayerParameter *v = malloc(sizeof *v);
            caffe__v0_layer_parameter__init(v);
            v->name = strdup(l->name);
            v->type = strdup(conv ? "conv" : "innerproduct");
            v->blobs = l->blobs, v->n_blobs = l->n_blobs;
            v1->layer = v;
        } else {
            v1->name = strdup(l->name);
            v1->has_type = 1;
            v1->type = conv ? CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__CONVOLUTION
                            : CAFFE__V1_LAYER_PARAMETER__LAYER_TYPE__INNER_PRODUCT;
            v1->blobs = l->blobs, v1->n_blobs = l->n_blobs;
        }
        l->blobs = NULL, l->n_blobs = 0;
        old->layers[old->n_layers++] = v1;
    }
    char *out = malloc(strlen(tmp) + 32);
    sprintf(out, "%s/%s.caffemodel", tmp, v0 ? "v0" : "v1");
    CHECK_OK(proto_write_binary(out, &old->base));
    proto_free(&old->base);
    proto_free(&w->base);
    return out;
}

static bool same_params(crema_net *a, crema_net *b, const char *what)
{
    static const char *const layers[] = { "conv1", "conv2", "ip1", "ip2" };
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) {
            crema_blob x, y;
            if (crema_net_param(a, layers[i], j, &x) || crema_net_param(b, layers[i], j, &y)) {
                check_fail(__FILE__, __LINE__, "%s: %s param %d: %s", what, layers[i], j, crema_errmsg());
                return false;
            }
            if (x.count != y.count || memcmp(x.data, y.data, x.count * sizeof(float)) != 0) {
                check_fail(__FILE__, __LINE__, "%s: %s param %d differs from the current-format weights", what,
                           layers[i], j);
                return false;
            }
        }
    return true;
}

static void test_old_weights_load(void)
{
    char *deploy = check_shared("golden/models/lenet_mnist/deploy.prototxt");
    char *cur = check_shared("golden/models/lenet_mnist/lenet_iter_10000.caffemodel");
    crema_net *want = NULL;
    CHECK_OK(crema_net_open(deploy, cur, CREMA_TEST, &want));
    for (int v0 = 0; v0 < 2 && want; v0++) {
        char *w = old_weights(v0);
        if (!w)
            continue;
        crema_net *net = NULL;
        capture_begin();
        crema_status rc = crema_net_open(deploy, w, CREMA_TEST, &net);
        char *err = capture_end();
        CHECK_MSG(rc == CREMA_OK, "%s: %s", w, crema_errmsg());
        CHECK_MSG(count(err, "crema: note:") == 1 && strstr(err, w) && strstr(err, v0 ? "V0" : "V1"),
                  "%s: expected one notice naming the file and its format, stderr: %s", w, err);
        if (net)
            same_params(net, want, w);
        crema_net_free(net);
        /* the weights reader without a net */
        crema_weights *cw = NULL;
        capture_begin();
        CHECK_OK(crema_weights_open(w, &cw));
        free(capture_end());
        CHECK_MSG(cw && crema_weights_num_layers(cw) == 4, "%s: crema_weights_open found %d layers", w,
                  cw ? crema_weights_num_layers(cw) : -1);
        crema_weights_free(cw);
        free(err);
        free(w);
    }
    crema_net_free(want);
    free(deploy);
    free(cur);
}

/* ---- solvers and nets in memory ---- */

static const char *const v1_net =
    "name: \"v1\" input: \"data\" input_dim: 2 input_dim: 3 input_dim: 1 input_dim: 1 "
    "layers { name: \"ip\" type: INNER_PRODUCT bottom: \"data\" top: \"ip\" "
    "  inner_product_param { num_output: 2 weight_filler { type: \"constant\" value: 0.5 } } } "
    "layers { name: \"loss\" type: EUCLIDEAN_LOSS bottom: \"ip\" bottom: \"ip\" top: \"loss\" }";

static void test_old_solver_and_inline_net(void)
{
    char path[4200], text[2048];
    snprintf(path, sizeof path, "%s/old_solver.prototxt", tmp);
    snprintf(text, sizeof text, "solver_type: NESTEROV base_lr: 0.1 momentum: 0.9 lr_policy: \"fixed\" "
                                "max_iter: 1 random_seed: 1 net_param { %s }\n", v1_net);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    crema_solver *s = NULL;
    capture_begin();
    crema_status rc = crema_solver_open(path, 0, &s);
    char *err = capture_end();
    CHECK_MSG(rc == CREMA_OK, "old solver: %s", crema_errmsg());
    CHECK_MSG(strstr(err, "solver_type: NESTEROV") && strstr(err, "type: \"Nesterov\"") && strstr(err, "net_param") && strstr(err, "V1") &&
              count(err, "crema: note:") == 2, "expected a notice for the solver type and one for the inline "
              "net, stderr: %s", err);
    if (s)
        CHECK_OK(crema_solver_step(s, 1));
    crema_solver_free(s);
    free(err);
}

static void test_net_build_v1_in_memory(void)
{
    Caffe__NetParameter *p = NULL;
    CHECK_OK(proto_parse_text(&caffe__net_parameter__descriptor, v1_net, strlen(v1_net), "v1",
                              (ProtobufCMessage **)&p));
    if (!p)
        return;
    struct net *net = NULL;
    capture_begin();
    int rc = net_build(p, NULL, 1, &net);
    char *err = capture_end();
    CHECK_MSG(rc == CREMA_OK, "net_build of a V1 net: %s", crema_errmsg());
    CHECK_MSG(strstr(err, "net \"v1\"") && strstr(err, "V1"), "expected a notice naming the net: %s", err);
    CHECK(!net || (net->n_layers >= 3 && net_layer_index(net, "input") == 0 && net_layer_index(net, "ip") == 1));
    net_free(net);
    proto_free(&p->base);
    free(err);
}

/* ---- weights that fit nothing ---- */

static void test_weights_fitting_nothing(void)
{
    char *deploy = check_shared("golden/models/lenet_mnist/deploy.prototxt");
    char empty[4200], unrelated[4200], partial[4200];
    snprintf(empty, sizeof empty, "%s/empty.caffemodel", tmp);
    snprintf(unrelated, sizeof unrelated, "%s/unrelated.caffemodel", tmp);
    snprintf(partial, sizeof partial, "%s/partial.caffemodel", tmp);
    fclose(fopen(empty, "w"));
    /* another net's weights: the V1 in-memory net, built and saved */
    crema_net *other = NULL;
    char other_path[4200];
    snprintf(other_path, sizeof other_path, "%s/other.prototxt", tmp);
    FILE *f = fopen(other_path, "w");
    fputs(v1_net, f);
    fclose(f);
    capture_begin();
    CHECK_OK(crema_net_open(other_path, NULL, CREMA_TEST, &other));
    free(capture_end());
    if (other)
        CHECK_OK(crema_net_save_weights(other, unrelated));
    crema_net_free(other);
    /* the LeNet weights without ip2 */
    char *cur = check_shared("golden/models/lenet_mnist/lenet_iter_10000.caffemodel");
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_read_binary(cur, &caffe__net_parameter__descriptor, &m));
    Caffe__NetParameter *w = (Caffe__NetParameter *)m;
    for (size_t i = 0; w && i < w->n_layer; i++)
        if (strcmp(w->layer[i]->name, "ip2") == 0) {
            free(w->layer[i]->name);
            w->layer[i]->name = strdup("ip2_renamed");
        }
    if (w)
        CHECK_OK(proto_write_binary(partial, &w->base));
    proto_free(m);

    crema_net *net = NULL;
    capture_begin();
    CHECK_OK(crema_net_open(deploy, NULL, CREMA_TEST, &net));
    free(capture_end());
    if (net) {
        crema_blob before, after;
        CHECK_OK(crema_net_param(net, "ip1", 0, &before));
        float first = before.data[0];
        const char *bad[] = { empty, unrelated };
        for (int i = 0; i < 2; i++) {
            crema_status rc = crema_net_load_weights(net, bad[i]);
            CHECK_MSG(rc == CREMA_ERR_INVALID && strstr(crema_errmsg(), "no layer") &&
                      strstr(crema_errmsg(), "conv1") && strstr(crema_errmsg(), bad[i]),
                      "%s: expected an error naming the file and the layers, got %d: %s", bad[i], rc,
                      crema_errmsg());
        }
        /* asked to allow it: loaded, with a notice */
        capture_begin();
        crema_status rc = crema_net_load_weights_flags(net, unrelated, CREMA_WEIGHTS_ALLOW_UNMATCHED);
        char *err = capture_end();
        CHECK_MSG(rc == CREMA_OK, "allowed: %s", crema_errmsg());
        CHECK_MSG(strstr(err, "4 of the 4 layer(s) with weights of net LeNet"), "expected a notice of 4 layers without weights: %s",
                  err);
        free(err);
        CHECK_OK(crema_net_param(net, "ip1", 0, &after));
        CHECK_MSG(after.data[0] == first, "ip1 changed although no weights fit it");
        /* partial: loaded, the layer left out named */
        capture_begin();
        rc = crema_net_load_weights(net, partial);
        err = capture_end();
        CHECK_MSG(rc == CREMA_OK, "partial: %s", crema_errmsg());
        CHECK_MSG(strstr(err, "1 of the 4 layer(s) with weights of net LeNet") && strstr(err, "ip2"),
                  "expected a notice naming ip2: %s", err);
        free(err);
        /* a device is refused before it is read (it used to be read to 8 GB) */
        rc = crema_net_load_weights(net, "/dev/zero");
        CHECK_MSG(rc == CREMA_ERR_IO && strstr(crema_errmsg(), "character device"), "/dev/zero: got %d: %s", rc,
                  crema_errmsg());
    }
    crema_net_free(net);
    free(deploy);
    free(cur);
}

int main(int argc, char **argv)
{
    tmp = check_tmpdir("upgrade_load");
    static const struct check_case cases[] = {
        CASE(test_corpus_nets_open),          CASE(test_old_weights_load),       CASE(test_old_solver_and_inline_net),
        CASE(test_net_build_v1_in_memory),    CASE(test_weights_fitting_nothing),
    };
    int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
    free(tmp);
    return rc;
}
