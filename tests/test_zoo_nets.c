/* Every net prototxt of ../shared/corpus/zoo and corpus/caffe (models and
 * examples) that BVLC Caffe accepts: parse, upgrade, batch 1, build in TEST
 * in every state its include rules name (TEST alone when none), shape
 * inference, one forward with filler weights (and backward in TRAIN); the
 * loss and the outputs must be finite. Data layers that read files not in
 * the corpus are replaced by DummyData where the prototxt declares their
 * shape; otherwise that state is listed as left out, with the reason. Solvers are skipped;
 * zoo files using fork-only fields must fail to parse, naming the field.
 * `test_zoo_nets resnet vgg` runs only files whose path contains a word.
 * `test_zoo_nets --list-deploy [words]` builds nothing: it prints the deploy
 * nets among these files (their TEST state is fed by Input layers or input
 * fields and reads no files), one "relative-path<TAB>path<TAB>upgraded"
 * line each, for the tests that run every deploy net (tests/test_onnx.sh). */
#include "check.h"
#include "net/net.h"
#include "proto/proto_io.h"
#include "proto/upgrade.h"

#include <dirent.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct tally {
    int files, solvers, fork_only, no_layers;
    int phases_built, forwards, backwards, phases_left_out;
    double forward_seconds;
};

static int g_argc;
static char **g_argv;
static bool g_list_deploy;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool wanted(const char *path)
{
    if (g_argc <= 1)
        return true;
    for (int i = 1; i < g_argc; i++)
        if (strstr(path, g_argv[i]))
            return true;
    return false;
}

/* Caffe's FilterNet test for one layer. */
static bool layer_in_state(const Caffe__LayerParameter *lp, const Caffe__NetState *st)
{
    if (lp->n_include) {
        for (size_t i = 0; i < lp->n_include; i++)
            if (net_state_meets_rule(st, lp->include[i]))
                return true;
        return false;
    }
    for (size_t i = 0; i < lp->n_exclude; i++)
        if (net_state_meets_rule(st, lp->exclude[i]))
            return false;
    return true;
}

/* The states to build: one per distinct (phase, stages) of the include rules
 * (a train_val gives TRAIN and TEST; Caffe's autoencoder example gives TRAIN
 * and two TEST stages), TEST and TRAIN when phases appear only in exclude
 * rules, TEST alone when no rule names a phase. */
#define MAX_STATES 8
static int states_of(const Caffe__NetParameter *np, Caffe__NetState st[MAX_STATES])
{
    int n = 0;
    bool excludes = false;
    for (size_t i = 0; i < np->n_layer; i++) {
        const Caffe__LayerParameter *lp = np->layer[i];
        for (size_t j = 0; j < lp->n_exclude; j++)
            excludes |= lp->exclude[j]->has_phase;
        for (size_t j = 0; j < lp->n_include; j++) {
            const Caffe__NetStateRule *r = lp->include[j];
            if (!r->has_phase)
                continue;
            bool seen = false;
            for (int k = 0; k < n && !seen; k++) {
                seen = st[k].phase == r->phase && st[k].n_stage == r->n_stage;
                for (size_t m = 0; seen && m < r->n_stage; m++)
                    seen = strcmp(st[k].stage[m], r->stage[m]) == 0;
            }
            if (seen || n == MAX_STATES)
                continue;
            caffe__net_state__init(&st[n]);
            st[n].has_phase = 1;
            st[n].phase = r->phase;
            st[n].n_stage = r->n_stage;
            st[n].stage = r->stage;
            n++;
        }
    }
    if (n == 0) {
        caffe__net_state__init(&st[n]);
        st[n].has_phase = 1;
        st[n++].phase = CAFFE__PHASE__TEST;
        if (excludes) {
            caffe__net_state__init(&st[n]);
            st[n].has_phase = 1;
            st[n++].phase = CAFFE__PHASE__TRAIN;
        }
    }
    return n;
}

static const char *state_name(const Caffe__NetState *st, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "%s", st->phase == CAFFE__PHASE__TRAIN ? "TRAIN" : "TEST");
    for (size_t i = 0; i < st->n_stage && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "/", st->stage[i]);
    return buf;
}

/* Layer types of Caffe forks found in the corpus: BVLC Caffe fails on them
 * ("Unknown layer type"), and crema must too. */
static const char *fork_layer_type(const Caffe__NetParameter *np)
{
    static const char *const types[] = { "ConvolutionDepthwise" };
    for (size_t i = 0; i < np->n_layer; i++)
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
            if (np->layer[i]->type && strcmp(np->layer[i]->type, types[k]) == 0)
                return types[k];
    return NULL;
}

/* Input and DummyData shapes get batch 1. */
static void set_batch_one(Caffe__NetParameter *np)
{
    for (size_t i = 0; i < np->n_layer; i++) {
        Caffe__LayerParameter *lp = np->layer[i];
        if (lp->input_param)
            for (size_t k = 0; k < lp->input_param->n_shape; k++)
                if (lp->input_param->shape[k]->n_dim)
                    lp->input_param->shape[k]->dim[0] = 1;
        if (lp->type && strcmp(lp->type, "DummyData") == 0 && lp->dummy_data_param) {
            Caffe__DummyDataParameter *d = lp->dummy_data_param;
            for (size_t k = 0; k < d->n_shape; k++)
                if (d->shape[k]->n_dim)
                    d->shape[k]->dim[0] = 1;
            for (size_t k = 0; k < d->n_num; k++)
                d->num[k] = 1;
        }
    }
}

/* The data shape (C, H, W) a file-reading data layer declares in its
 * prototxt, or false when it does not (the file would tell). */
static bool declared_data_shape(const Caffe__LayerParameter *lp, int chw[3], char *why, size_t why_len)
{
    const char *t = lp->type ? lp->type : "";
    const Caffe__TransformationParameter *tp = lp->transform_param;
    int crop = tp && tp->crop_size ? (int)tp->crop_size : 0;
    if (strcmp(t, "MemoryData") == 0 && lp->memory_data_param) {
        const Caffe__MemoryDataParameter *m = lp->memory_data_param;
        chw[0] = (int)m->channels;
        chw[1] = (int)m->height;
        chw[2] = (int)m->width;
        return chw[0] > 0 && chw[1] > 0 && chw[2] > 0;
    }
    if (strcmp(t, "ImageData") == 0) {
        const Caffe__ImageDataParameter *ip = lp->image_data_param;
        chw[0] = ip && !ip->is_color ? 1 : 3;
        int h = ip ? (int)ip->new_height : 0, w = ip ? (int)ip->new_width : 0;
        if (crop) {
            chw[1] = chw[2] = crop;
            return true;
        }
        if (h > 0 && w > 0) {
            chw[1] = h;
            chw[2] = w;
            return true;
        }
        snprintf(why, why_len, "ImageData layer %s: no crop_size or new_height/new_width, the image size comes "
                 "from files not in the corpus", lp->name);
        return false;
    }
    if (strcmp(t, "WindowData") == 0) {
        if (crop) {
            chw[0] = 3;
            chw[1] = chw[2] = crop;
            return true;
        }
        snprintf(why, why_len, "WindowData layer %s: no crop_size", lp->name);
        return false;
    }
    if (strcmp(t, "Data") == 0) {
        /* Caffe requires as many mean values as channels (or one); three
         * declare a colour image. */
        if (crop && tp->n_mean_value == 3) {
            chw[0] = 3;
            chw[1] = chw[2] = crop;
            return true;
        }
        const char *src = lp->data_param && lp->data_param->source ? lp->data_param->source : "?";
        snprintf(why, why_len, "Data layer %s reads %s (not in the corpus) and its prototxt does not declare "
                 "the channels and size", lp->name, src);
        return false;
    }
    snprintf(why, why_len, "%s layer %s reads files not in the corpus and declares no shape", t, lp->name);
    return false;
}

static bool reads_files(const Caffe__LayerParameter *lp)
{
    static const char *const types[] = { "Data", "ImageData", "HDF5Data", "WindowData", "MemoryData" };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (lp->type && strcmp(lp->type, types[i]) == 0)
            return true;
    return false;
}

/* Replaces layer i by a DummyData of the declared shape (batch 1) with the
 * same name, tops and rules. */
static int replace_by_dummy(Caffe__NetParameter *np, size_t i, const int chw[3])
{
    Caffe__LayerParameter *old = np->layer[i];
    char text[1024];
    int n = snprintf(text, sizeof text, "type: 'DummyData' dummy_data_param { shape { dim: 1 dim: %d dim: %d dim: %d }",
                     chw[0], chw[1], chw[2]);
    for (size_t t = 1; t < old->n_top && n < (int)sizeof text; t++)
        n += snprintf(text + n, sizeof text - (size_t)n, " shape { dim: 1 }");
    snprintf(text + n, sizeof text - (size_t)n, " }");
    Caffe__LayerParameter *nl = NULL;
    int rc = proto_parse_text(&caffe__layer_parameter__descriptor, text, strlen(text), "(replacement)",
                              (ProtobufCMessage **)&nl);
    if (rc)
        return rc;
#define MOVE(field)                \
    do {                           \
        nl->field = old->field;    \
        old->field = NULL;         \
    } while (0)
#define MOVE_N(field)                  \
    do {                               \
        MOVE(field);                   \
        nl->n_##field = old->n_##field; \
        old->n_##field = 0;            \
    } while (0)
    MOVE(name);
    MOVE_N(top);
    MOVE_N(include);
    MOVE_N(exclude);
#undef MOVE
#undef MOVE_N
    proto_free(&old->base);
    np->layer[i] = nl;
    return CREMA_OK;
}

/* Builds and runs the net in one state, or says why it was left out. */
static void run_phase(struct tally *t, const char *rel, Caffe__NetParameter *np, const Caffe__NetState *state,
                      const char *left_out)
{
    char pname[128];
    state_name(state, pname, sizeof pname);
    if (left_out) {
        fprintf(stderr, "  %-5s left out: %s\n", pname, left_out);
        t->phases_left_out++;
        return;
    }
    struct net *net = NULL;
    double t0 = now();
    int rc = net_build(np, state, 1, &net);
    double t_build = now() - t0;
    CHECK_MSG(rc == CREMA_OK, "%s (%s): build failed: %s", rel, pname, crema_errmsg());
    if (rc) {
        fprintf(stderr, "  %-5s BUILD FAILED: %s\n", pname, crema_errmsg());
        return;
    }
    t->phases_built++;
    struct tensor *out = net->n_outputs ? net->blobs[net->output_ids[0]] : NULL;
    char shape[256] = "(no output)";
    /* Fillers leave BatchNorm's statistics at zero, so with use_global_stats
     * each one divides by sqrt(eps) and deep nets overflow: give them unit
     * variance (mean 0, factor 1), about what training leaves. */
    for (int i = 0; i < net->n_layers; i++) {
        struct layer *l = net->layers[i].layer;
        if (strcmp(l->kind->type, "BatchNorm") != 0 || l->n_blobs != 3)
            continue;
        float *var = tensor_data(l->blobs[1]), *factor = tensor_data(l->blobs[2]);
        for (size_t k = 0; var && k < l->blobs[1]->count; k++)
            var[k] = 1.f;
        if (factor)
            factor[0] = 1.f;
    }
    /* Inputs get values, so the forward pass sees numbers, not zeros. */
    for (int i = 0; i < net->n_inputs; i++) {
        struct tensor *in = net->blobs[net->input_ids[i]];
        float *d = tensor_data(in);
        for (size_t k = 0; d && k < in->count; k++)
            d[k] = (float)((k * 7919) % 255) / 255.f - 0.5f;
    }
    float loss = 0;
    t0 = now();
    rc = net_forward(net, &loss);
    double t_fwd = now() - t0;
    CHECK_MSG(rc == CREMA_OK, "%s (%s): forward failed: %s", rel, pname, crema_errmsg());
    if (out)
        tensor_shape_string(out, shape, sizeof shape);
    if (rc) {
        fprintf(stderr, "  %-5s built, FORWARD FAILED: %s\n", pname, crema_errmsg());
        net_free(net);
        return;
    }
    t->forwards++;
    t->forward_seconds += t_fwd;
    CHECK_MSG(isfinite(loss), "%s (%s): loss %g after forward", rel, pname, (double)loss);
    for (int i = 0; i < net->n_outputs; i++) {
        const struct tensor *o = net->blobs[net->output_ids[i]];
        const float *d = tensor_data((struct tensor *)o);
        size_t bad = 0;
        for (size_t k = 0; d && k < o->count; k++)
            bad += !isfinite(d[k]);
        CHECK_MSG(bad == 0, "%s (%s): output %s has %zu non-finite values of %zu", rel, pname,
                  net->blob_names[net->output_ids[i]], bad, o->count);
    }
    /* A TRAIN net with a loss also runs backward (the loss weights seed it). */
    char bwd[64] = "";
    if (state->phase == CAFFE__PHASE__TRAIN) {
        t0 = now();
        rc = net_backward(net);
        CHECK_MSG(rc == CREMA_OK, "%s (%s): backward failed: %s", rel, pname, crema_errmsg());
        snprintf(bwd, sizeof bwd, rc ? ", BACKWARD FAILED" : ", backward ok (%.2fs)", now() - t0);
        t->backwards += rc == CREMA_OK;
    }
    fprintf(stderr, "  %-5s built (%d layers, %.2fs), forward ok (%.2fs)%s, loss %.4g, output %s %s\n", pname,
            net->n_layers, t_build, t_fwd, bwd, (double)loss, net->n_outputs ? net->blob_names[net->output_ids[0]] : "",
            shape);
    net_free(net);
}

/* A deploy net: in the TEST state, inputs from Input layers (or the legacy
 * input fields) and no layer that reads files or runs Python. */
static void list_deploy(const Caffe__NetParameter *np, const char *path, const char *rel, bool upgraded)
{
    Caffe__NetState test = CAFFE__NET_STATE__INIT;
    test.has_phase = 1;
    test.phase = CAFFE__PHASE__TEST;
    bool inputs = np->n_input > 0;
    for (size_t i = 0; i < np->n_layer; i++) {
        const Caffe__LayerParameter *lp = np->layer[i];
        if (!layer_in_state(lp, &test))
            continue;
        if (reads_files(lp) || (lp->type && strcmp(lp->type, "Python") == 0))
            return;
        inputs |= lp->type && strcmp(lp->type, "Input") == 0;
    }
    if (inputs)
        printf("%s\t%s\t%d\n", rel, path, upgraded ? 1 : 0);
}

static void run_file(struct tally *t, const char *path, const char *rel)
{
    t->files++;
    fprintf(stderr, "%s\n", rel);
    Caffe__NetParameter *np = NULL;
    int rc = proto_read_text(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", crema_errmsg());
        Caffe__SolverParameter *sp = NULL;
        if (proto_read_text(path, &caffe__solver_parameter__descriptor, (ProtobufCMessage **)&sp) == CREMA_OK) {
            proto_free(&sp->base);
            fprintf(stderr, "  solver, skipped\n");
            t->solvers++;
            return;
        }
        bool zoo = strncmp(rel, "zoo/", 4) == 0;
        CHECK_MSG(zoo, "%s does not parse: %s", rel, msg);
        CHECK_MSG(strstr(msg, "field") && strstr(msg, rel), "%s: the parse error does not name the file and the "
                  "field: %s", rel, msg);
        fprintf(stderr, "  fork-only (BVLC Caffe rejects it too): %s\n", msg);
        t->fork_only++;
        return;
    }
    if (np->n_layer == 0 && np->n_layers == 0) {
        fprintf(stderr, "  no layers, skipped\n");
        t->no_layers++;
        proto_free(&np->base);
        return;
    }
    bool changed = false;
    rc = upgrade_net(np, rel, &changed);
    CHECK_MSG(rc == CREMA_OK, "%s: upgrade failed: %s", rel, crema_errmsg());
    if (rc) {
        proto_free(&np->base);
        return;
    }
    set_batch_one(np);

    const char *fork_type = fork_layer_type(np);
    if (fork_type) {
        struct net *net = NULL;
        rc = net_build(np, NULL, 1, &net);
        CHECK_MSG(rc == CREMA_ERR_UNSUPPORTED && strstr(crema_errmsg(), fork_type),
                  "%s: layer type %s is not BVLC Caffe's; expected an error naming it, got %d: %s", rel, fork_type,
                  rc, crema_errmsg());
        fprintf(stderr, "  fork-only layer type (BVLC Caffe rejects it too): %s\n", crema_errmsg());
        t->fork_only++;
        net_free(net);
        proto_free(&np->base);
        return;
    }
    if (g_list_deploy) {
        list_deploy(np, path, rel, changed);
        proto_free(&np->base);
        return;
    }
    Caffe__NetState states[MAX_STATES];
    int n_states = states_of(np, states);
    char why[MAX_STATES][512];
    memset(why, 0, sizeof why);
    for (size_t i = 0; i < np->n_layer; i++) {
        Caffe__LayerParameter *lp = np->layer[i];
        bool python = lp->type && strcmp(lp->type, "Python") == 0;
        if (!python && !reads_files(lp))
            continue;
        int chw[3];
        char reason[512] = "";
        if (python)
            snprintf(reason, sizeof reason, "Python layer %s (crema runs Python layers only from its Python "
                     "package)", lp->name);
        else if (declared_data_shape(lp, chw, reason, sizeof reason)) {
            CHECK_OK(replace_by_dummy(np, i, chw));
            continue;
        }
        for (int p = 0; p < n_states; p++)
            if (!why[p][0] && layer_in_state(np->layer[i], &states[p]))
                snprintf(why[p], sizeof why[p], "%s", reason);
    }
    if (changed)
        fprintf(stderr, "  upgraded from an older format\n");
    for (int p = 0; p < n_states; p++)
        run_phase(t, rel, np, &states[p], why[p][0] ? why[p] : NULL);
    proto_free(&np->base);
}

static int not_hidden(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static void walk(struct tally *t, const char *dir, const char *rel)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, not_hidden, alphasort);
    CHECK_MSG(n >= 0, "cannot list %s", dir);
    for (int i = 0; i < n; i++) {
        char path[4096], r[4096];
        snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
        snprintf(r, sizeof r, "%s/%s", rel, list[i]->d_name);
        free(list[i]);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            walk(t, path, r);
            continue;
        }
        size_t len = strlen(r);
        if (len > 9 && strcmp(r + len - 9, ".prototxt") == 0 && wanted(r))
            run_file(t, path, r);
    }
    free(list);
}

/* Every net file of the corpus: its zoo, Caffe's models and examples. */
static void walk_corpus(struct tally *t)
{
    static const char *const roots[] = { "zoo", "caffe/models", "caffe/examples" };
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "corpus/%s", roots[i]);
        char *dir = check_shared(rel);
        walk(t, dir, roots[i]);
        free(dir);
    }
}

static void zoo_nets(void)
{
    struct tally t = { 0 };
    walk_corpus(&t);
    fprintf(stderr,
            "%d files: %d solvers skipped, %d fork-only (rejected, as by BVLC Caffe), %d without layers; "
            "%d net states built, %d forwards ok (%.1fs), %d TRAIN backwards ok, %d states left out (data "
            "layers reading files not in the corpus, Python layers)\n",
            t.files, t.solvers, t.fork_only, t.no_layers, t.phases_built, t.forwards, t.forward_seconds,
            t.backwards, t.phases_left_out);
    CHECK_MSG(t.phases_built > 0, "no net was built");
    if (g_argc <= 1)
        CHECK_MSG(t.fork_only == 38, "%d zoo files rejected, expected 38 (37 with fork-only fields, one with a "
                  "fork-only layer type)", t.fork_only);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--list-deploy") == 0) {
        g_list_deploy = true;
        argv[1] = argv[0];
        g_argc = argc - 1;
        g_argv = argv + 1;
        struct tally t = { 0 };
        walk_corpus(&t);
        return 0;
    }
    g_argc = argc;
    g_argv = argv;
    static const struct check_case cases[] = { CASE(zoo_nets) };
    /* The arguments select files here, not cases. */
    char *no_args[] = { argv[0], NULL };
    return check_run(cases, 1, 1, no_args);
}
