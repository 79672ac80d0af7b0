/* The arithmetic of Caffe's solvers, in Caffe's order of operations. */
#include "solvers/solver_update.h"
#include "cpu/backend_cpu.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- solver types ---- */

static int check_adagrad(const Caffe__SolverParameter *p)
{
    if (p->momentum != 0)
        return err_set(CREMA_ERR_INVALID, "momentum: AdaGrad needs momentum 0, got %g", p->momentum);
    return CREMA_OK;
}

static int check_rmsprop(const Caffe__SolverParameter *p)
{
    if (p->momentum != 0)
        return err_set(CREMA_ERR_INVALID, "momentum: RMSProp needs momentum 0, got %g", p->momentum);
    if (!(p->rms_decay >= 0 && p->rms_decay < 1))
        return err_set(CREMA_ERR_INVALID, "rms_decay: RMSProp needs it in [0, 1), got %g", p->rms_decay);
    return CREMA_OK;
}

/* Caffe's solvers, in the order of the deprecated SolverParameter.SolverType
 * enum (solver_type indexes this table). checks: what the constructor's
 * sanity checks refuse. */
static const struct solver_type {
    const char *name;
    enum solver_kind kind;
    int history; /* history blobs per learnable parameter */
    int (*check)(const Caffe__SolverParameter *p);
} solver_types[] = {
    { "SGD", SOLVER_SGD, 1, NULL },
    { "Nesterov", SOLVER_NESTEROV, 1, NULL },
    { "AdaGrad", SOLVER_ADAGRAD, 1, check_adagrad },
    { "RMSProp", SOLVER_RMSPROP, 1, check_rmsprop },
    { "AdaDelta", SOLVER_ADADELTA, 2, NULL },
    { "Adam", SOLVER_ADAM, 2, NULL },
};
#define N_SOLVER_TYPES ((int)(sizeof solver_types / sizeof solver_types[0]))

const char *solver_kind_name(enum solver_kind kind)
{
    for (int i = 0; i < N_SOLVER_TYPES; i++)
        if (solver_types[i].kind == kind)
            return solver_types[i].name;
    return "?";
}

static int find_solver_type(const Caffe__SolverParameter *p, const struct solver_type **out)
{
    if (p->has_solver_type && !(p->type && strcmp(p->type, "SGD") != 0)) {
        /* The deprecated enum, when `type` is unset or its default. */
        if ((unsigned)p->solver_type >= (unsigned)N_SOLVER_TYPES)
            return err_set(CREMA_ERR_INVALID, "solver_type %d is not a solver", p->solver_type);
        *out = &solver_types[p->solver_type];
        return CREMA_OK;
    }
    const char *type = p->type ? p->type : "SGD";
    for (int i = 0; i < N_SOLVER_TYPES; i++)
        if (strcmp(type, solver_types[i].name) == 0) {
            *out = &solver_types[i];
            return CREMA_OK;
        }
    return err_set(CREMA_ERR_INVALID,
                   "type: unknown solver type \"%s\" (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)", type);
}

int solver_kind_from_param(const Caffe__SolverParameter *p, enum solver_kind *kind)
{
    const struct solver_type *t;
    int rc = find_solver_type(p, &t);
    if (!rc && t->check)
        rc = t->check(p);
    if (!rc)
        *kind = t->kind;
    return rc;
}

/* ---- learning-rate policies ---- */

/* The conditions Caffe's SGDSolver::GetLearningRate CHECKs at every
 * iteration, checked once when the solver opens. */
static int need_gamma(const Caffe__SolverParameter *p)
{
    if (!(p->gamma >= 0))
        return err_set(CREMA_ERR_INVALID, "gamma: lr_policy \"%s\" needs gamma >= 0, got %g", p->lr_policy,
                       p->gamma);
    return CREMA_OK;
}

static int need_stepsize(const Caffe__SolverParameter *p)
{
    if (p->stepsize <= 0)
        return err_set(CREMA_ERR_INVALID, "stepsize: lr_policy \"%s\" needs stepsize > 0, got %d", p->lr_policy,
                       p->stepsize);
    return need_gamma(p);
}

/* Caffe divides by max_iter unchecked (a NaN rate); crema refuses it. */
static int need_max_iter(const Caffe__SolverParameter *p)
{
    if (p->max_iter <= 0)
        return err_set(CREMA_ERR_INVALID, "max_iter: lr_policy \"%s\" needs max_iter > 0, got %d", p->lr_policy,
                       p->max_iter);
    return CREMA_OK;
}

static float rate_fixed(struct solver_update *u)
{
    return u->param->base_lr;
}

static float rate_step(struct solver_update *u)
{
    const Caffe__SolverParameter *p = u->param;
    u->current_step = u->iter / p->stepsize;
    return (float)(p->base_lr * pow(p->gamma, u->current_step));
}

static float rate_exp(struct solver_update *u)
{
    return (float)(u->param->base_lr * pow(u->param->gamma, u->iter));
}

static float rate_inv(struct solver_update *u)
{
    const Caffe__SolverParameter *p = u->param;
    return (float)(p->base_lr * pow(1.f + p->gamma * (float)u->iter, -p->power));
}

/* As Caffe, at most one step per iteration, each when iter reaches the
 * next stepvalue; stepvalues out of order (which Caffe accepts too) are
 * taken in the order given. */
static float rate_multistep(struct solver_update *u)
{
    const Caffe__SolverParameter *p = u->param;
    if (u->current_step < (int)p->n_stepvalue && u->iter >= p->stepvalue[u->current_step]) {
        u->current_step++;
        if (u->log)
            fprintf(u->log, "MultiStep Status: Iteration %d, step = %d\n", u->iter, u->current_step);
    }
    return (float)(p->base_lr * pow(p->gamma, u->current_step));
}

static float rate_poly(struct solver_update *u)
{
    const Caffe__SolverParameter *p = u->param;
    return (float)(p->base_lr * pow(1.f - (float)u->iter / (float)p->max_iter, p->power));
}

static float rate_sigmoid(struct solver_update *u)
{
    const Caffe__SolverParameter *p = u->param;
    return p->base_lr * (1.f / (1.f + expf(-p->gamma * ((float)u->iter - (float)p->stepsize))));
}

/* Caffe's policies: the rate at u->iter, and the fields it needs. */
static const struct lr_policy {
    const char *name;
    float (*rate)(struct solver_update *u);
    int (*check)(const Caffe__SolverParameter *p);
} lr_policies[] = {
    { "fixed", rate_fixed, NULL },
    { "step", rate_step, need_stepsize },
    { "exp", rate_exp, need_gamma },
    { "inv", rate_inv, need_gamma },
    { "multistep", rate_multistep, need_gamma },
    { "poly", rate_poly, need_max_iter },
    { "sigmoid", rate_sigmoid, need_stepsize },
};

static int find_lr_policy(const Caffe__SolverParameter *p, const struct lr_policy **out)
{
    const char *name = p->lr_policy ? p->lr_policy : "";
    for (size_t i = 0; i < sizeof lr_policies / sizeof lr_policies[0]; i++)
        if (strcmp(name, lr_policies[i].name) == 0) {
            *out = &lr_policies[i];
            return lr_policies[i].check ? lr_policies[i].check(p) : CREMA_OK;
        }
    if (!*name)
        return err_set(CREMA_ERR_INVALID, "lr_policy is not given (fixed, step, exp, inv, multistep, poly, sigmoid)");
    return err_set(CREMA_ERR_INVALID,
                   "lr_policy: unknown learning rate policy \"%s\" (fixed, step, exp, inv, multistep, poly, sigmoid)",
                   name);
}

int solver_check_param(const Caffe__SolverParameter *p)
{
    enum solver_kind kind;
    const struct lr_policy *policy;
    int rc = solver_kind_from_param(p, &kind);
    if (!rc)
        rc = find_lr_policy(p, &policy);
    if (rc)
        return rc;
    const char *reg = p->regularization_type ? p->regularization_type : "L2";
    if (strcmp(reg, "L1") != 0 && strcmp(reg, "L2") != 0)
        return err_set(CREMA_ERR_INVALID, "regularization_type: unknown \"%s\" (L1 or L2)", reg);
    return CREMA_OK;
}

int solver_update_init(struct solver_update *u, const Caffe__SolverParameter *p, int n_params,
                       struct tensor **params, const float *lr_mult, const float *decay_mult)
{
    memset(u, 0, sizeof *u);
    u->param = p;
    const struct solver_type *type;
    int rc = solver_check_param(p);
    if (!rc)
        rc = find_solver_type(p, &type);
    if (!rc)
        rc = find_lr_policy(p, &u->policy);
    if (rc)
        return rc;
    u->kind = type->kind;
    u->n_params = n_params;
    u->params = params;
    u->lr_mult = lr_mult;
    u->decay_mult = decay_mult;
    u->be = &cpu_backend;
    u->n_history = type->history * n_params;
    u->history = calloc((size_t)u->n_history + 1, sizeof *u->history);
    if (!u->history)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < u->n_history; i++) {
        u->history[i] = tensor_new();
        if (!u->history[i] || tensor_reshape_like(u->history[i], params[i % n_params]))
            return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    return CREMA_OK;
}

void solver_update_free(struct solver_update *u)
{
    for (int i = 0; u->history && i < u->n_history; i++)
        tensor_free(u->history[i]);
    free(u->history);
    memset(u, 0, sizeof *u);
}

float solver_learning_rate(struct solver_update *u)
{
    return u->policy->rate(u);
}

/* The parameter's diff and data, and history h, on the update's backend. */
#define ON(t) tensor_data_on((t), u->be)
#define DIFF(t) tensor_diff_on((t), u->be)

static int clip_gradients(struct solver_update *u)
{
    const struct backend *be = u->be;
    float clip = u->param->clip_gradients;
    if (clip < 0)
        return CREMA_OK;
    float sumsq = 0;
    for (int i = 0; i < u->n_params; i++) {
        const float *d = tensor_cdiff_on(u->params[i], be);
        if (!d)
            return CREMA_ERR_NOMEM;
        sumsq += be->math->sumsq(be, (int)u->params[i]->count, d);
    }
    float l2 = sqrtf(sumsq);
    if (l2 > clip) {
        float scale = clip / l2;
        if (u->log)
            fprintf(u->log, "Gradient clipping: scaling down gradients (L2 norm %g > %g) by scale factor %g\n",
                    l2, clip, scale);
        for (int i = 0; i < u->n_params; i++)
            be->solver->scale(be, u->params[i]->count, scale, DIFF(u->params[i]));
    }
    return CREMA_OK;
}

static void normalize(struct solver_update *u, int i)
{
    int iter_size = u->param->iter_size;
    if (iter_size <= 1)
        return;
    u->be->solver->scale(u->be, u->params[i]->count, 1.f / (float)iter_size, DIFF(u->params[i]));
}

static void regularize(struct solver_update *u, int i)
{
    float decay = u->param->weight_decay * u->decay_mult[i];
    if (decay == 0)
        return;
    bool l1 = u->param->regularization_type && strcmp(u->param->regularization_type, "L1") == 0;
    const float *w = tensor_cdata_on(u->params[i], u->be);
    u->be->solver->regularize(u->be, u->params[i]->count, l1, decay, w, DIFF(u->params[i]));
}

static void compute_update(struct solver_update *u, int i, float rate)
{
    const Caffe__SolverParameter *p = u->param;
    const struct backend *be = u->be;
    const struct solver_ops *ops = be->solver;
    size_t n = u->params[i]->count;
    float local_rate = rate * u->lr_mult[i];
    float *g = DIFF(u->params[i]);
    float *h = ON(u->history[i]);
    float momentum = p->momentum, delta = p->delta;
    switch (u->kind) {
    case SOLVER_SGD:
        ops->sgd(be, n, g, h, momentum, local_rate);
        break;
    case SOLVER_NESTEROV:
        ops->nesterov(be, n, g, h, momentum, local_rate);
        break;
    case SOLVER_ADAGRAD:
        ops->adagrad(be, n, g, h, delta, local_rate);
        break;
    case SOLVER_RMSPROP:
        ops->rmsprop(be, n, g, h, p->rms_decay, delta, local_rate);
        break;
    case SOLVER_ADADELTA:
        ops->adadelta(be, n, g, h, ON(u->history[u->n_params + i]), momentum, delta, local_rate);
        break;
    case SOLVER_ADAM: {
        float beta1 = p->momentum, beta2 = p->momentum2;
        int t = u->iter + 1;
        float correction = sqrtf(1.f - (float)pow(beta2, t)) / (1.f - (float)pow(beta1, t));
        ops->adam(be, n, g, h, ON(u->history[u->n_params + i]), beta1, beta2, delta, local_rate * correction);
        break;
    }
    }
}

int solver_apply_update(struct solver_update *u, float rate)
{
    const struct backend *be = u->be;
    for (int i = 0; i < u->n_params; i++)
        if (!ON(u->params[i]) || !DIFF(u->params[i]))
            return CREMA_ERR_NOMEM;
    for (int i = 0; i < u->n_history; i++)
        if (!ON(u->history[i]))
            return CREMA_ERR_NOMEM;
    int rc = clip_gradients(u);
    if (rc)
        return rc;
    if (u->kind == SOLVER_SGD && be->solver->sgd_step) {
        /* One pass per parameter instead of four (the same arithmetic). */
        const Caffe__SolverParameter *p = u->param;
        bool l1 = p->regularization_type && strcmp(p->regularization_type, "L1") == 0;
        float scale = p->iter_size > 1 ? 1.f / (float)p->iter_size : 1.f;
        for (int i = 0; i < u->n_params; i++)
            be->solver->sgd_step(be, u->params[i]->count, ON(u->params[i]), DIFF(u->params[i]), ON(u->history[i]),
                                 scale, l1, p->weight_decay * u->decay_mult[i], p->momentum, rate * u->lr_mult[i]);
        return be->host_memory ? CREMA_OK : be->status(be);
    }
    for (int i = 0; i < u->n_params; i++) {
        normalize(u, i);
        regularize(u, i);
        compute_update(u, i, rate);
    }
    /* Net::Update: data -= diff, for each learnable parameter. */
    for (int i = 0; i < u->n_params; i++)
        be->solver->apply(be, u->params[i]->count, tensor_cdiff_on(u->params[i], be), ON(u->params[i]));
    return be->host_memory ? CREMA_OK : be->status(be);
}
