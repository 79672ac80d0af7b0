/* The solver's parameters are checked when it opens, before its nets read
 * any data: learning-rate policies and the fields each needs, solver types
 * and their constructor checks, each error naming the field. */
#define _GNU_SOURCE
#include "check.h"
#include "proto/proto_io.h"
#include "solvers/solver.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A net whose Data layer names a database that does not exist: a solver
 * that got as far as building it would fail naming the path instead. */
static const char unreadable_net[] =
    "net_param { name: 'n' "
    "layer { name: 'd' type: 'Data' top: 'x' top: 'y' "
    "  data_param { source: '/nonexistent/crema/lmdb' batch_size: 2 backend: LMDB } } "
    "layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'z' inner_product_param { num_output: 1 } } "
    "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'z' bottom: 'y' top: 'loss' } } ";

/* A net that trains on constants. */
static const char tiny_net[] =
    "net_param { name: 'n' "
    "layer { name: 'd' type: 'DummyData' top: 'x' top: 'y' dummy_data_param { "
    "  shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } data_filler { type: 'constant' value: 1 } } } "
    "layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'z' inner_product_param { num_output: 1 "
    "  weight_filler { type: 'constant' value: 0.1 } } } "
    "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'z' bottom: 'y' top: 'loss' } } ";

/* Opens a solver over net with the given fields; the log goes to *log. */
static int open_solver(const char *net, const char *fields, FILE *log, struct solver **out)
{
    char text[4096];
    snprintf(text, sizeof text, "%s base_lr: 1 random_seed: 1 %s", net, fields);
    Caffe__SolverParameter *p = NULL;
    *out = NULL;
    int rc = proto_parse_text(&caffe__solver_parameter__descriptor, text, strlen(text), "solver",
                              (ProtobufCMessage **)&p);
    if (!rc)
        rc = solver_create(p, log, out);
    if (p)
        proto_free(&p->base);
    return rc;
}

static void refused(const char *fields, const char *const *words)
{
    struct solver *s = NULL;
    int rc = open_solver(unreadable_net, fields, NULL, &s);
    CHECK_MSG(rc != 0, "{ %s } was accepted", fields);
    const char *msg = crema_errmsg();
    for (int i = 0; words[i]; i++)
        CHECK_MSG(strstr(msg, words[i]) != NULL, "{ %s }: message \"%s\" does not mention \"%s\"", fields, msg,
                  words[i]);
    CHECK_MSG(strstr(msg, "nonexistent") == NULL, "{ %s }: the net was built first: %s", fields, msg);
    solver_free(s);
}

#define REFUSED(fields, ...) refused(fields, (const char *const[]){ __VA_ARGS__, NULL })

static void lr_policy_fields(void)
{
    /* Caffe's GetLearningRate CHECKs these at every iteration */
    REFUSED("lr_policy: 'step' gamma: 0.5", "stepsize", "step", "got 0");
    REFUSED("lr_policy: 'step' gamma: 0.5 stepsize: -3", "stepsize", "got -3");
    REFUSED("lr_policy: 'step' stepsize: 2 gamma: -0.5", "gamma", "step");
    REFUSED("lr_policy: 'exp' gamma: -1", "gamma", "exp");
    REFUSED("lr_policy: 'inv' gamma: -0.0001 power: 0.75", "gamma", "inv");
    REFUSED("lr_policy: 'multistep' gamma: -0.1 stepvalue: 2", "gamma", "multistep");
    REFUSED("lr_policy: 'sigmoid' gamma: 0.1", "stepsize", "sigmoid");
    REFUSED("lr_policy: 'sigmoid' stepsize: 3 gamma: -0.1", "gamma", "sigmoid");
    /* Caffe divides by max_iter unchecked; crema refuses it */
    REFUSED("lr_policy: 'poly' power: 2", "max_iter", "poly");
    REFUSED("lr_policy: 'poly' power: 2 max_iter: -5", "max_iter", "got -5");
    /* Caffe's LOG(FATAL) at iteration 0 */
    REFUSED("lr_policy: 'cosine'", "lr_policy", "cosine");
    REFUSED("", "lr_policy", "not given");
}

static void solver_types(void)
{
    /* the constructors' sanity checks */
    REFUSED("lr_policy: 'fixed' type: 'AdaGrad' momentum: 0.9", "momentum", "AdaGrad");
    REFUSED("lr_policy: 'fixed' type: 'RMSProp' momentum: 0.5", "momentum", "RMSProp");
    REFUSED("lr_policy: 'fixed' type: 'RMSProp' rms_decay: 1", "rms_decay", "[0, 1)");
    REFUSED("lr_policy: 'fixed' type: 'RMSProp' rms_decay: -0.1", "rms_decay");
    REFUSED("lr_policy: 'fixed' type: 'Adagrad'", "type", "Adagrad");
    REFUSED("lr_policy: 'fixed' solver_type: ADAGRAD momentum: 0.9", "momentum", "AdaGrad");
    REFUSED("lr_policy: 'fixed' regularization_type: 'L3'", "regularization_type", "L3");
}

/* Every policy with the fields it needs opens, and trains on. */
static void policies_open(void)
{
    static const char *const ok[] = {
        "lr_policy: 'fixed'",
        "lr_policy: 'step' stepsize: 2 gamma: 0.5",
        "lr_policy: 'step' stepsize: 2",
        "lr_policy: 'exp' gamma: 0.9",
        "lr_policy: 'inv' gamma: 0.0001 power: 0.75",
        "lr_policy: 'multistep' gamma: 0.5 stepvalue: 2 stepvalue: 4",
        "lr_policy: 'multistep'",
        "lr_policy: 'poly' power: 2 max_iter: 6",
        "lr_policy: 'sigmoid' gamma: 0.1 stepsize: 3",
        "lr_policy: 'fixed' type: 'RMSProp' rms_decay: 0",
        "lr_policy: 'fixed' type: 'Adam' momentum: 0.9 momentum2: 0.999",
        "lr_policy: 'fixed' solver_type: ADADELTA momentum: 0.95 delta: 1e-6",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct solver *s = NULL;
        int rc = open_solver(tiny_net, ok[i], NULL, &s);
        CHECK_MSG(rc == 0, "{ %s } refused: %s", ok[i], crema_errmsg());
        if (s) {
            CHECK_OK(solver_step(s, 3));
            CHECK_MSG(isfinite(s->rate), "{ %s }: rate %g", ok[i], s->rate);
        }
        solver_free(s);
    }
}

/* Caffe takes stepvalues as given, unsorted too: a step at most once an
 * iteration, when iter reaches the next value. [3, 1] with gamma 0.5 steps
 * at iteration 3 (to 0.5) and, 1 being passed already, at 4 (to 0.25). */
static void multistep_unsorted(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    struct solver *s = NULL;
    CHECK_OK(open_solver(tiny_net, "lr_policy: 'multistep' gamma: 0.5 stepvalue: 3 stepvalue: 1 display: 1", log,
                         &s));
    if (s)
        CHECK_OK(solver_step(s, 6));
    solver_free(s);
    fclose(log);
    const double want[6] = { 1, 1, 1, 0.5, 0.25, 0.25 };
    for (int it = 0; it < 6; it++) {
        char line[64];
        snprintf(line, sizeof line, "Iteration %d, lr = %g\n", it, want[it]);
        CHECK_MSG(text && strstr(text, line), "the log lacks \"Iteration %d, lr = %g\":\n%s", it, want[it],
                  text ? text : "");
    }
    CHECK_MSG(text && strstr(text, "MultiStep Status: Iteration 3, step = 1") &&
                  strstr(text, "MultiStep Status: Iteration 4, step = 2"),
              "log:\n%s", text ? text : "");
    free(text);
}

CHECK_MAIN(CASE(lr_policy_fields), CASE(solver_types), CASE(policies_open), CASE(multistep_unsorted))
