/* Ranks on a device: one rank whose gradients go through the device's
 * collectives (NCCL on a GPU; the host path where the backend has none)
 * trains to the same weights as one process alone, bit for bit up to the
 * sum's rounding (a sum over one rank is the identity). $CREMA_TEST_DEVICE
 * picks the device (default cpu-mirror). Two ranks on one GPU, which NCCL
 * cannot pair, are checked by test_dist_train with -gpu 0 on the GPU
 * machine (scripts/device_check.sh). */
#include "check.h"
#include "dist/dist.h"
#include "net/device.h"
#include "proto/proto_io.h"
#include "solvers/solver.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ITERS 10

static const struct backend *dev;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* LeNet on random (uniform) data refilled every forward from the net's
 * seed, so two runs see the same batches. */
static const char *NET = "name: \"LeNet\"\n"
                         "layer { name: \"data\" type: \"DummyData\" top: \"data\" top: \"label\"\n"
                         "  dummy_data_param { data_filler { type: \"uniform\" min: 0 max: 1 }\n"
                         "    data_filler { type: \"constant\" value: 3 }\n"
                         "    shape { dim: 16 dim: 1 dim: 28 dim: 28 } shape { dim: 16 } } }\n"
                         "layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\"\n"
                         "  convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: \"xavier\" } } }\n"
                         "layer { name: \"pool1\" type: \"Pooling\" bottom: \"conv1\" top: \"pool1\"\n"
                         "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
                         "layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"pool1\" top: \"ip1\"\n"
                         "  inner_product_param { num_output: 100 weight_filler { type: \"xavier\" } } }\n"
                         "layer { name: \"relu1\" type: \"ReLU\" bottom: \"ip1\" top: \"ip1\" }\n"
                         "layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"ip1\" top: \"ip2\"\n"
                         "  inner_product_param { num_output: 10 weight_filler { type: \"xavier\" } } }\n"
                         "layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip2\" bottom: \"label\" top: \"loss\" }\n";

/* Trains ITERS iterations, alone or as the one rank of a job; returns the
 * weights (malloc'd, every learnable blob in order) and their count. */
static float *train(bool as_rank, size_t *n_out)
{
    *n_out = 0;
    Caffe__SolverParameter sp = CAFFE__SOLVER_PARAMETER__INIT;
    Caffe__NetParameter *np = NULL;
    CHECK_OK(proto_parse_text(&caffe__net_parameter__descriptor, NET, strlen(NET), "test net", (ProtobufCMessage **)&np));
    if (!np)
        return NULL;
    sp.net_param = np;
    sp.base_lr = 0.01f;
    sp.lr_policy = (char *)"fixed";
    sp.has_momentum = 1;
    sp.momentum = 0.9f;
    sp.has_max_iter = 1;
    sp.max_iter = ITERS;
    sp.has_random_seed = 1;
    sp.random_seed = 5;
    struct solver *s = NULL;
    struct dist_comm *comm = NULL;
    float *w = NULL;
    CHECK_OK(solver_create(&sp, NULL, &s));
    if (s)
        CHECK_OK(solver_set_backend(s, dev));
    if (s && as_rank) {
        char addr[64];
        snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", free_port());
        struct dist_config cfg;
        dist_config_init(&cfg);
        cfg.rank = 0;
        cfg.size = 1;
        cfg.rendezvous = addr;
        cfg.secret = "device-test";
        cfg.timeout_ms = 10000;
        CHECK_OK(dist_comm_create(&cfg, &comm));
        if (comm)
            CHECK_OK(solver_set_dist(s, comm));
    }
    if (s && (!as_rank || comm)) {
        CHECK_OK(solver_step(s, ITERS));
        size_t n = 0;
        for (int i = 0; i < s->net->n_learnable; i++)
            n += s->net->learnable[i].tensor->count;
        w = malloc(n * sizeof *w);
        size_t off = 0;
        for (int i = 0; w && i < s->net->n_learnable; i++) {
            struct tensor *t = s->net->learnable[i].tensor;
            memcpy(w + off, tensor_cdata(t), t->count * sizeof *w);
            off += t->count;
        }
        *n_out = w ? n : 0;
    }
    solver_free(s);
    dist_comm_free(comm);
    proto_free(&np->base);
    return w;
}

static void test_one_rank_equals_alone(void)
{
    size_t na = 0, nb = 0;
    float *alone = train(false, &na);
    float *rank = train(true, &nb);
    CHECK(na > 10000);
    CHECK_EQ_INT(na, nb);
    double worst = 0, scale = 0;
    for (size_t i = 0; alone && rank && i < na && i < nb; i++) {
        scale = fmax(scale, fabs(alone[i]));
        worst = fmax(worst, fabs((double)alone[i] - rank[i]));
    }
    printf("    one rank (%s) vs alone: worst |difference| %.3g of max |w| %.3g over %zu weights\n",
           dev->comm ? "device collectives" : "host collectives", worst, scale, na);
    CHECK_MSG(worst <= 1e-5 * scale, "the rank's weights differ by %.3g (max |w| %.3g)", worst, scale);
    free(alone);
    free(rank);
}

int main(int argc, char **argv)
{
    const char *name = getenv("CREMA_TEST_DEVICE");
    if (device_open(name && *name ? name : "cpu-mirror", &dev)) {
        printf("SKIP: %s\n", crema_errmsg());
        return 77;
    }
    printf("device: %s\n", dev->name);
    static const struct check_case cases[] = { CASE(test_one_rank_equals_alone) };
    return check_run(cases, 1, argc, argv);
}
