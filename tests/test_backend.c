/* The backend seam: tensors' host and device copies move only when the other
 * side asks (counted), the device paths compute what the host paths do, and
 * a LeNet forward+backward copies nothing on the CPU backend and only its
 * inputs on a backend with memory of its own.
 * $CREMA_TEST_DEVICE picks the device backend (default cpu-mirror; cuda:0 on
 * a GPU machine, where the primitive tables are also compared with the
 * CPU's on random data). */
#include "check.h"
#include "core/blob_proto.h"
#include "net/device.h"
#include "net/net.h"
#include "proto/proto_io.h"
#include "solvers/solver_update.h"
#include "util/rng.h"

#include <math.h>
#include <string.h>

static const struct backend *dev_be;

static struct tensor_transfers since(const struct tensor_transfers *t0)
{
    struct tensor_transfers t;
    tensor_transfers(&t);
    t.to_device -= t0->to_device;
    t.to_host -= t0->to_host;
    t.bytes_to_device -= t0->bytes_to_device;
    t.bytes_to_host -= t0->bytes_to_host;
    return t;
}

static struct tensor *vec(int n)
{
    struct tensor *t = tensor_new();
    int s[1] = { n };
    CHECK_OK(tensor_reshape(t, 1, s));
    return t;
}

/* SyncedMemory's state machine, copy by copy. */
static void test_lazy_copies(void)
{
    struct tensor *t = vec(1000), *fresh = vec(10);
    struct tensor_transfers t0;
    tensor_transfers(&t0);
    /* Fresh memory is zero on whichever side asks first: no copy. */
    const float *d = tensor_cdata_on(fresh, dev_be);
    CHECK(d != NULL);
    CHECK_EQ_INT(since(&t0).to_device + since(&t0).to_host, 0);
    tensor_free(fresh);
    /* Host written, device read: one upload; read again: none. */
    float *h = tensor_data(t);
    for (int i = 0; i < 1000; i++)
        h[i] = (float)i;
    d = tensor_cdata_on(t, dev_be);
    d = tensor_cdata_on(t, dev_be);
    CHECK_EQ_INT(since(&t0).to_device, 1);
    CHECK_EQ_INT(since(&t0).bytes_to_device, 4000);
    /* Both copies current: reading the host copy costs nothing. */
    CHECK(tensor_cdata(t)[999] == 999.f);
    CHECK_EQ_INT(since(&t0).to_host, 0);
    /* Device written, host read: one download, and the values arrive. */
    float *w = tensor_data_on(t, dev_be);
    dev_be->math->scal(dev_be, 1000, 2.f, w);
    CHECK_EQ_INT(since(&t0).to_host, 0);
    CHECK(tensor_cdata(t)[999] == 1998.f);
    CHECK(tensor_cdata(t)[1] == 2.f);
    CHECK_EQ_INT(since(&t0).to_host, 1);
    /* Zeroing on the device fetches nothing. */
    CHECK_OK(tensor_zero_diff_on(t, dev_be));
    CHECK_OK(tensor_zero_data_on(t, dev_be));
    CHECK_EQ_INT(since(&t0).to_device, 1);
    CHECK(tensor_cdata(t)[999] == 0.f);
    CHECK_EQ_INT(since(&t0).to_host, 2);
    /* Shared buffers share their state. */
    struct tensor *u = vec(1000);
    CHECK_OK(tensor_share_data(u, t));
    tensor_data(t)[3] = 7.f;
    CHECK(tensor_cdata_on(u, dev_be) != NULL);
    CHECK_EQ_INT(since(&t0).to_device, 2);
    tensor_free(u);
    tensor_free(t);
}

/* On the CPU backend the device copy is the host copy. */
static void test_cpu_no_copies(void)
{
    const struct backend *cpu = device_cpu();
    struct tensor *t = vec(100);
    struct tensor_transfers t0;
    tensor_transfers(&t0);
    float *a = tensor_data_on(t, cpu);
    CHECK(a == tensor_data(t));
    a[5] = 3.f;
    CHECK(tensor_cdata_on(t, cpu)[5] == 3.f);
    CHECK_EQ_INT(since(&t0).to_device + since(&t0).to_host, 0);
    tensor_free(t);
}

static void fill_random(float *x, size_t n, struct rng *r, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_uniform(r, lo, hi);
}

/* max |a - b| <= rtol * max |b| + atol */
static void check_close(const char *what, const float *a, const float *b, size_t n, double rtol, double atol)
{
    double m = 0, e = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(b[i]));
        double d = fabs((double)a[i] - b[i]);
        if (d > e || isnan(a[i])) {
            e = isnan(a[i]) ? INFINITY : d;
            at = i;
        }
    }
    CHECK_MSG(e <= rtol * m + atol, "%s: max |err| %.3g at %zu (got %.9g, want %.9g; max %.3g)", what, e, at,
              (double)a[at], (double)b[at], m);
}

/* Each entry of the math and solver tables on the device against the CPU's,
 * on the same random inputs. */
static void test_tables_agree(void)
{
    const struct backend *cpu = device_cpu();
    const struct backend *bes[2] = { cpu, dev_be };
    struct rng r;
    rng_seed(&r, 42);
    enum { M = 37, N = 53, K = 29, L = M * N };
    struct tensor *A = vec(M * K), *B = vec(K * N), *C[2] = { vec(L), vec(L) }, *x = vec(L), *y[2] = { vec(L), vec(L) };
    fill_random(tensor_data(A), M * K, &r, -1, 1);
    fill_random(tensor_data(B), K * N, &r, -1, 1);
    fill_random(tensor_data(x), L, &r, 0.1f, 2);
    float c0[L];
    fill_random(c0, L, &r, -1, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int k = 0; k < 2; k++) {
                memcpy(tensor_data(C[k]), c0, sizeof c0);
                bes[k]->math->gemm(bes[k], ta, tb, M, N, K, 1.5f, tensor_cdata_on(A, bes[k]),
                                   tensor_cdata_on(B, bes[k]), 0.5f, tensor_data_on(C[k], bes[k]));
            }
            CHECK_OK(dev_be->sync(dev_be));
            char what[32];
            snprintf(what, sizeof what, "gemm %c%c", ta ? 'T' : 'N', tb ? 'T' : 'N');
            check_close(what, tensor_cdata(C[1]), tensor_cdata(C[0]), L, 1e-5, 1e-6);
        }
    for (int ta = 0; ta < 2; ta++) {
        for (int k = 0; k < 2; k++) {
            memcpy(tensor_data(C[k]), c0, sizeof c0);
            bes[k]->math->gemv(bes[k], ta, M, K, 2.f, tensor_cdata_on(A, bes[k]), tensor_cdata_on(x, bes[k]), 0.25f,
                               tensor_data_on(C[k], bes[k]));
        }
        check_close(ta ? "gemv T" : "gemv N", tensor_cdata(C[1]), tensor_cdata(C[0]), ta ? K : M, 1e-5, 1e-6);
    }
    /* element-wise: y = f(x) / y = x op c0 */
    struct {
        const char *name;
        int kind; /* 0 unary, 1 binary, 2 in place */
    } ops[] = { { "abs", 0 },  { "exp", 0 }, { "log", 0 }, { "sqr", 0 }, { "sqrt", 0 }, { "sign", 0 },
                { "powx", 0 }, { "add", 1 }, { "sub", 1 }, { "mul", 1 }, { "div", 1 }, { "axpy", 2 },
                { "axpby", 2 }, { "scal", 2 }, { "add_scalar", 2 }, { "set", 2 }, { "copy", 2 } };
    struct tensor *c = vec(L);
    memcpy(tensor_data(c), c0, sizeof c0);
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (int k = 0; k < 2; k++) {
            const struct backend *be = bes[k];
            const struct math_ops *m = be->math;
            memcpy(tensor_data(y[k]), c0, sizeof c0);
            const float *xp = tensor_cdata_on(x, be), *cp = tensor_cdata_on(c, be);
            float *yp = tensor_data_on(y[k], be);
            const char *nm = ops[o].name;
            if (!strcmp(nm, "abs")) m->abs(be, L, cp, yp);
            else if (!strcmp(nm, "exp")) m->exp(be, L, cp, yp);
            else if (!strcmp(nm, "log")) m->log(be, L, xp, yp);
            else if (!strcmp(nm, "sqr")) m->sqr(be, L, cp, yp);
            else if (!strcmp(nm, "sqrt")) m->sqrt(be, L, xp, yp);
            else if (!strcmp(nm, "sign")) m->sign(be, L, cp, yp);
            else if (!strcmp(nm, "powx")) m->powx(be, L, xp, 1.7f, yp);
            else if (!strcmp(nm, "add")) m->add(be, L, xp, cp, yp);
            else if (!strcmp(nm, "sub")) m->sub(be, L, xp, cp, yp);
            else if (!strcmp(nm, "mul")) m->mul(be, L, xp, cp, yp);
            else if (!strcmp(nm, "div")) m->div(be, L, cp, xp, yp);
            else if (!strcmp(nm, "axpy")) m->axpy(be, L, 0.3f, xp, yp);
            else if (!strcmp(nm, "axpby")) m->axpby(be, L, 0.3f, xp, -2.f, yp);
            else if (!strcmp(nm, "scal")) m->scal(be, L, -0.7f, yp);
            else if (!strcmp(nm, "add_scalar")) m->add_scalar(be, L, 0.7f, yp);
            else if (!strcmp(nm, "set")) m->set(be, L, 0.7f, yp);
            else m->copy(be, L, xp, yp);
        }
        check_close(ops[o].name, tensor_cdata(y[1]), tensor_cdata(y[0]), L, 2e-6, 1e-7);
    }
    float d[2], a[2], q[2];
    for (int k = 0; k < 2; k++) {
        d[k] = bes[k]->math->dot(bes[k], L, tensor_cdata_on(x, bes[k]), tensor_cdata_on(c, bes[k]));
        a[k] = bes[k]->math->asum(bes[k], L, tensor_cdata_on(c, bes[k]));
        q[k] = bes[k]->math->sumsq(bes[k], L, tensor_cdata_on(c, bes[k]));
    }
    check_close("dot", &d[1], &d[0], 1, 1e-5, 0);
    check_close("asum", &a[1], &a[0], 1, 1e-5, 0);
    check_close("sumsq", &q[1], &q[0], 1, 1e-5, 0);

    /* im2col/col2im: 3 channels of 9 x 11, 3 x 2 kernel, pad 1, stride 2 x 1, dilation 1 x 2 */
    {
        int ch = 3, H = 9, W = 11, kh = 3, kw = 2, ph = 1, pw = 1, sh = 2, sw = 1, dh = 1, dw = 2;
        int oh = (H + 2 * ph - (dh * (kh - 1) + 1)) / sh + 1, ow = (W + 2 * pw - (dw * (kw - 1) + 1)) / sw + 1;
        int ncol = ch * kh * kw * oh * ow, nim = ch * H * W;
        struct tensor *im = vec(nim), *cols[2] = { vec(ncol), vec(ncol) }, *back[2] = { vec(nim), vec(nim) };
        fill_random(tensor_data(im), (size_t)nim, &r, -1, 1);
        for (int k = 0; k < 2; k++) {
            const struct backend *be = bes[k];
            be->math->im2col(be, tensor_cdata_on(im, be), ch, H, W, kh, kw, ph, pw, sh, sw, dh, dw,
                             tensor_data_on(cols[k], be));
            be->math->col2im(be, tensor_cdata_on(cols[k], be), ch, H, W, kh, kw, ph, pw, sh, sw, dh, dw,
                             tensor_data_on(back[k], be));
        }
        check_close("im2col", tensor_cdata(cols[1]), tensor_cdata(cols[0]), (size_t)ncol, 0, 0);
        check_close("col2im", tensor_cdata(back[1]), tensor_cdata(back[0]), (size_t)nim, 1e-6, 1e-7);
        int ims[3] = { ch, H, W }, cs[3] = { ch * kh * kw, oh, ow }, ker[2] = { kh, kw }, pad[2] = { ph, pw },
            str[2] = { sh, sw }, dil[2] = { dh, dw };
        for (int k = 0; k < 2; k++) {
            const struct backend *be = bes[k];
            be->math->im2col_nd(be, tensor_cdata_on(im, be), 2, ims, cs, ker, pad, str, dil,
                                tensor_data_on(cols[k], be));
            be->math->col2im_nd(be, tensor_cdata_on(cols[k], be), 2, ims, cs, ker, pad, str, dil,
                                tensor_data_on(back[k], be));
        }
        check_close("im2col_nd", tensor_cdata(cols[1]), tensor_cdata(cols[0]), (size_t)ncol, 0, 0);
        check_close("col2im_nd", tensor_cdata(back[1]), tensor_cdata(back[0]), (size_t)nim, 1e-6, 1e-7);
        tensor_free(im);
        for (int k = 0; k < 2; k++) {
            tensor_free(cols[k]);
            tensor_free(back[k]);
        }
    }

    /* solver rules: g, h, h2 random; each rule once */
    for (int rule = 0; rule < 8; rule++) {
        struct tensor *g[2] = { vec(L), vec(L) }, *h[2] = { vec(L), vec(L) }, *h2[2] = { vec(L), vec(L) };
        float g0[L], hh[L], hh2[L];
        fill_random(g0, L, &r, -1, 1);
        fill_random(hh, L, &r, 0, 1);
        fill_random(hh2, L, &r, 0, 1);
        for (int k = 0; k < 2; k++) {
            const struct backend *be = bes[k];
            const struct solver_ops *s = be->solver;
            memcpy(tensor_data(g[k]), g0, sizeof g0);
            memcpy(tensor_data(h[k]), hh, sizeof hh);
            memcpy(tensor_data(h2[k]), hh2, sizeof hh2);
            float *gp = tensor_data_on(g[k], be), *hp = tensor_data_on(h[k], be), *h2p = tensor_data_on(h2[k], be);
            switch (rule) {
            case 0: s->sgd(be, L, gp, hp, 0.9f, 0.01f); break;
            case 1: s->nesterov(be, L, gp, hp, 0.9f, 0.01f); break;
            case 2: s->adagrad(be, L, gp, hp, 1e-8f, 0.01f); break;
            case 3: s->rmsprop(be, L, gp, hp, 0.98f, 1e-8f, 0.01f); break;
            case 4: s->adadelta(be, L, gp, hp, h2p, 0.95f, 1e-6f, 1.f); break;
            case 5: s->adam(be, L, gp, hp, h2p, 0.9f, 0.999f, 1e-8f, 0.001f); break;
            case 6: s->regularize(be, L, true, 0.01f, hp, gp); s->regularize(be, L, false, 0.02f, h2p, gp); break;
            default: s->scale(be, L, 0.5f, gp); s->apply(be, L, gp, hp); break;
            }
        }
        char what[32];
        snprintf(what, sizeof what, "solver rule %d", rule);
        check_close(what, tensor_cdata(g[1]), tensor_cdata(g[0]), L, 2e-6, 1e-9);
        check_close(what, tensor_cdata(h[1]), tensor_cdata(h[0]), L, 2e-6, 1e-9);
        check_close(what, tensor_cdata(h2[1]), tensor_cdata(h2[0]), L, 2e-6, 1e-9);
        for (int k = 0; k < 2; k++) {
            tensor_free(g[k]);
            tensor_free(h[k]);
            tensor_free(h2[k]);
        }
    }
    CHECK_OK(dev_be->sync(dev_be));
    tensor_free(A);
    tensor_free(B);
    tensor_free(x);
    tensor_free(c);
    for (int k = 0; k < 2; k++) {
        tensor_free(C[k]);
        tensor_free(y[k]);
    }
}

/* The golden LeNet train net (Input data and label, conv, pool, ip, relu,
 * softmax loss) built on be, its weights and inputs loaded. */
static struct net *lenet(const struct backend *be, Caffe__NetParameter **golden)
{
    char *dir = check_shared("golden/nets/lenet_train");
    char path[4096];
    snprintf(path, sizeof path, "%s/net.prototxt", dir);
    Caffe__NetParameter *np = NULL;
    struct net *net = NULL;
    CHECK_OK(proto_read_text(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np));
    snprintf(path, sizeof path, "%s/golden.caffemodel", dir);
    CHECK_OK(proto_read_binary(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)golden));
    free(dir);
    if (!np || !*golden)
        return NULL;
    CHECK_OK(net_build(np, NULL, 1, &net));
    proto_free(&np->base);
    if (!net)
        return NULL;
    CHECK_OK(net_set_backend(net, be, stderr));
    CHECK_OK(net_copy_trained_layers(net, *golden));
    return net;
}

/* Sets every Input top from the golden blob/<name> (a host write: the only
 * copies a device net should make per iteration). */
static void lenet_inputs(struct net *net, const Caffe__NetParameter *g)
{
    for (int i = 0; i < net->n_inputs; i++) {
        int id = net->input_ids[i];
        char want[300];
        snprintf(want, sizeof want, "blob/%s", net->blob_names[id]);
        for (size_t j = 0; j < g->n_layer; j++)
            if (g->layer[j]->name && strcmp(g->layer[j]->name, want) == 0)
                memcpy(tensor_data(net->blobs[id]), g->layer[j]->blobs[0]->data, net->blobs[id]->count * 4);
    }
}

static void lenet_step(struct net *net, const Caffe__NetParameter *g, float *loss)
{
    lenet_inputs(net, g);
    CHECK_OK(net_clear_param_diffs(net));
    CHECK_OK(net_forward(net, loss));
    CHECK_OK(net_backward(net));
}

/* The acceptance: forward+backward of LeNet copies nothing on the
 * CPU backend; on the device backend, after the first pass has moved the
 * weights, only the inputs the host wrote go over, nothing comes back but
 * the loss (a dot product's scalar, not a tensor copy), and every blob and
 * gradient equals the CPU's. A layer that read or wrote the host copy of a
 * device tensor would show up as extra copies here. */
static void test_lenet_transfers(void)
{
    Caffe__NetParameter *g1 = NULL, *g2 = NULL;
    struct net *cpu = lenet(device_cpu(), &g1);
    struct net *dev = lenet(dev_be, &g2);
    if (!cpu || !dev)
        return;
    float l1 = 0, l2 = 0;
    struct tensor_transfers t0;
    tensor_transfers(&t0);
    lenet_step(cpu, g1, &l1);
    lenet_step(cpu, g1, &l1);
    struct tensor_transfers t = since(&t0);
    CHECK_EQ_INT(t.to_device + t.to_host, 0);

    lenet_step(dev, g2, &l2); /* first pass: weights go up once */
    tensor_transfers(&t0);
    lenet_step(dev, g2, &l2);
    t = since(&t0);
    int host_layers = 0;
    for (int i = 0; i < dev->n_layers; i++)
        if (dev->layers[i].layer->be != dev_be && strcmp(dev->layers[i].layer->kind->type, "Input") != 0)
            host_layers++;
    CHECK_MSG(host_layers == 0, "%d LeNet layers have no %s path", host_layers, dev_be->name);
    CHECK_EQ_INT(t.to_device, dev->n_inputs);
    CHECK_EQ_INT(t.to_host, 0);

    CHECK_MSG(fabsf(l1 - l2) <= 1e-5f * fabsf(l1), "loss %.9g on %s, %.9g on the CPU", l2, dev_be->name, l1);
    double rtol = dev_be->device == DEVICE_CPU ? 0 : 1e-4;
    for (int b = 0; b < cpu->n_blobs; b++) {
        char what[300];
        snprintf(what, sizeof what, "blob %s data", cpu->blob_names[b]);
        check_close(what, tensor_cdata(dev->blobs[b]), tensor_cdata(cpu->blobs[b]), cpu->blobs[b]->count, rtol, 0);
        snprintf(what, sizeof what, "blob %s diff", cpu->blob_names[b]);
        check_close(what, tensor_cdiff(dev->blobs[b]), tensor_cdiff(cpu->blobs[b]), cpu->blobs[b]->count, rtol, 0);
    }
    for (int p = 0; p < cpu->n_params; p++) {
        char what[64];
        snprintf(what, sizeof what, "param %d diff", p);
        check_close(what, tensor_cdiff(dev->params[p]), tensor_cdiff(cpu->params[p]), cpu->params[p]->count, rtol,
                    rtol ? 1e-7 : 0);
    }
    net_free(cpu);
    net_free(dev);
    proto_free(&g1->base);
    proto_free(&g2->base);
}

/* A solver update on the device: no copy at all, and the CPU's numbers. */
static void test_update_on_device(void)
{
    Caffe__SolverParameter sp = CAFFE__SOLVER_PARAMETER__INIT;
    sp.has_momentum = 1;
    sp.momentum = 0.9f;
    sp.has_weight_decay = 1;
    sp.weight_decay = 0.0005f;
    sp.has_clip_gradients = 1;
    sp.clip_gradients = 0.1f;
    sp.lr_policy = (char *)"fixed";
    sp.base_lr = 0.01f;
    struct rng r;
    rng_seed(&r, 7);
    struct tensor *p[2][2];
    float lr[2] = { 1, 2 }, dm[2] = { 1, 0 };
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2; i++)
            p[k][i] = vec(100 + 50 * i);
    for (int i = 0; i < 2; i++) {
        fill_random(tensor_data(p[0][i]), p[0][i]->count, &r, -1, 1);
        fill_random(tensor_diff(p[0][i]), p[0][i]->count, &r, -1, 1);
        CHECK_OK(tensor_copy_from(p[1][i], p[0][i], true));
    }
    struct solver_update u[2];
    for (int k = 0; k < 2; k++)
        CHECK_OK(solver_update_init(&u[k], &sp, 2, p[k], lr, dm));
    u[1].be = dev_be;
    for (int i = 0; i < 2; i++) { /* everything on the device first */
        tensor_cdata_on(p[1][i], dev_be);
        tensor_cdiff_on(p[1][i], dev_be);
    }
    struct tensor_transfers t0;
    tensor_transfers(&t0);
    for (int k = 0; k < 2; k++)
        CHECK_OK(solver_apply_update(&u[k], 0.01f));
    struct tensor_transfers t = since(&t0);
    CHECK_EQ_INT(t.to_host, 0);
    CHECK_EQ_INT(t.to_device, 0);
    for (int i = 0; i < 2; i++)
        check_close("updated weights", tensor_cdata(p[1][i]), tensor_cdata(p[0][i]), p[0][i]->count,
                    dev_be->device == DEVICE_CPU ? 0 : 1e-6, 0);
    for (int k = 0; k < 2; k++) {
        solver_update_free(&u[k]);
        for (int i = 0; i < 2; i++)
            tensor_free(p[k][i]);
    }
}

static void setup(void)
{
    const char *dev = getenv("CREMA_TEST_DEVICE");
    if (!dev || !*dev)
        dev = "cpu-mirror";
    if (device_open(dev, &dev_be)) {
        printf("SKIP: device %s: %s\n", dev, crema_errmsg());
        exit(77);
    }
    printf("device: %s\n", dev_be->name);
}

static void test_device_names(void)
{
    const struct backend *be = NULL;
    CHECK_OK(device_open("cpu", &be));
    CHECK(be == device_cpu());
    CHECK(device_open("gpu:x", &be) == CREMA_ERR_INVALID);
    CHECK(strstr(crema_errmsg(), "gpu:x") != NULL);
    /* Without a GPU (or without the plugin), asking for one is a clear
     * error, never a crash. */
    int rc = device_open("gpu:63", &be);
    CHECK(rc != CREMA_OK);
    CHECK(strlen(crema_errmsg()) > 10);
}

int main(int argc, char **argv)
{
    setup();
    static const struct check_case cases[] = {
        CASE(test_lazy_copies),  CASE(test_cpu_no_copies),   CASE(test_tables_agree),
        CASE(test_update_on_device), CASE(test_lenet_transfers), CASE(test_device_names),
    };
    return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
