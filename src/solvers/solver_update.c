/* The arithmetic of Caffe's solvers, in Caffe's order of operations. */
#include "solvers/solver_update.h"
#include "cpu/backend_cpu.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_names[] = { "SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam" };

const char *solver_kind_name(enum solver_kind kind) { return kind_names[kind]; }

int solver_kind_from_param(const Caffe__SolverParameter *p, enum solver_kind *kind)
{
    const char *type = p->type ? p->type : "SGD";
    if (p->has_solver_type && !(p->type && strcmp(p->type, "SGD") != 0)) {
        /* The deprecated enum, when `type` is unset or its default. */
        static const enum solver_kind by_enum[] = { SOLVER_SGD, SOLVER_NESTEROV, SOLVER_ADAGRAD,
                                                    SOLVER_RMSPROP, SOLVER_ADADELTA, SOLVER_ADAM };
        if ((unsigned)p->solver_type > 5)
            return err_set(CREMA_ERR_INVALID, "solver_type %d is not a solver", p->solver_type);
        *kind = by_enum[p->solver_type];
    } else {
        int found = 0;
        for (int i = 0; i < 6; i++)
            if (strcmp(type, kind_names[i]) == 0) {
                *kind = (enum solver_kind)i;
                found = 1;
            }
        if (!found)
            return err_set(CREMA_ERR_INVALID,
                           "type: unknown solver type \"%s\" (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)",
                           type);
    }
    if (*kind == SOLVER_ADAGRAD && p->momentum != 0)
        return err_set(CREMA_ERR_INVALID, "momentum: AdaGrad needs momentum 0, got %g", p->momentum);
    if (*kind == SOLVER_RMSPROP) {
        if (p->momentum != 0)
            return err_set(CREMA_ERR_INVALID, "momentum: RMSProp needs momentum 0, got %g", p->momentum);
        if (p->rms_decay < 0 || p->rms_decay > 1)
            return err_set(CREMA_ERR_INVALID, "rms_decay must be in [0, 1], got %g", p->rms_decay);
    }
    return CREMA_OK;
}

int solver_update_init(struct solver_update *u, const Caffe__SolverParameter *p, int n_params,
                       struct tensor **params, const float *lr_mult, const float *decay_mult)
{
    memset(u, 0, sizeof *u);
    u->param = p;
    int rc = solver_kind_from_param(p, &u->kind);
    if (rc)
        return rc;
    const char *reg = p->regularization_type ? p->regularization_type : "L2";
    if (strcmp(reg, "L1") != 0 && strcmp(reg, "L2") != 0)
        return err_set(CREMA_ERR_INVALID, "regularization_type: unknown \"%s\" (L1 or L2)", reg);
    u->n_params = n_params;
    u->params = params;
    u->lr_mult = lr_mult;
    u->decay_mult = decay_mult;
    u->be = &cpu_backend;
    u->n_history = (u->kind == SOLVER_ADADELTA || u->kind == SOLVER_ADAM) ? 2 * n_params : n_params;
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

int solver_learning_rate(struct solver_update *u, float *rate)
{
    const Caffe__SolverParameter *p = u->param;
    const char *policy = p->lr_policy ? p->lr_policy : "";
    float base = p->base_lr;
    int iter = u->iter;
    if (strcmp(policy, "fixed") == 0) {
        *rate = base;
    } else if (strcmp(policy, "step") == 0) {
        if (p->stepsize <= 0)
            return err_set(CREMA_ERR_INVALID, "stepsize must be positive for lr_policy \"step\"");
        u->current_step = iter / p->stepsize;
        *rate = (float)(base * pow(p->gamma, u->current_step));
    } else if (strcmp(policy, "exp") == 0) {
        *rate = (float)(base * pow(p->gamma, iter));
    } else if (strcmp(policy, "inv") == 0) {
        *rate = (float)(base * pow(1.f + p->gamma * (float)iter, -p->power));
    } else if (strcmp(policy, "multistep") == 0) {
        if (u->current_step < (int)p->n_stepvalue && iter >= p->stepvalue[u->current_step]) {
            u->current_step++;
            if (u->log)
                fprintf(u->log, "MultiStep Status: Iteration %d, step = %d\n", iter, u->current_step);
        }
        *rate = (float)(base * pow(p->gamma, u->current_step));
    } else if (strcmp(policy, "poly") == 0) {
        if (p->max_iter <= 0)
            return err_set(CREMA_ERR_INVALID, "max_iter must be positive for lr_policy \"poly\"");
        *rate = (float)(base * pow(1.f - (float)iter / (float)p->max_iter, p->power));
    } else if (strcmp(policy, "sigmoid") == 0) {
        *rate = base * (1.f / (1.f + expf(-p->gamma * ((float)iter - (float)p->stepsize))));
    } else {
        return err_set(CREMA_ERR_INVALID, "lr_policy: unknown learning rate policy \"%s\"", policy);
    }
    return CREMA_OK;
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
