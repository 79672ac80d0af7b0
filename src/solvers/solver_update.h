/* Caffe's update rules, apart from any net: learning-rate policies, gradient
 * clipping, iter_size normalisation, L1/L2 weight decay, and the update of
 * SGD, Nesterov, AdaGrad, RMSProp, AdaDelta and Adam over a list of
 * learnable tensors. */
#ifndef CREMA_SOLVERS_SOLVER_UPDATE_H
#define CREMA_SOLVERS_SOLVER_UPDATE_H

#include <stdio.h>

#include "caffe.pb-c.h"
#include "core/tensor.h"

enum solver_kind { SOLVER_SGD, SOLVER_NESTEROV, SOLVER_ADAGRAD, SOLVER_RMSPROP, SOLVER_ADADELTA, SOLVER_ADAM };

struct lr_policy;

struct solver_update {
    const Caffe__SolverParameter *param;
    enum solver_kind kind;
    const struct lr_policy *policy; /* lr_policy, resolved and checked */
    int n_params;
    struct tensor **params;   /* the net's learnable tensors (not owned) */
    const float *lr_mult;     /* per param */
    const float *decay_mult;  /* per param */
    int n_history;            /* n_params, or 2 * n_params for AdaDelta and Adam */
    struct tensor **history;  /* owned; what a .solverstate stores */
    /* Where the update computes (the CPU backend unless the solver's net
     * is on a device): every step goes through its table. */
    const struct backend *be;
    int iter;
    int current_step;
    FILE *log;                /* where Caffe-style lines go (NULL: nowhere) */
};

/* Resolves `type` (or the deprecated solver_type) to a kind and checks the
 * parameters as Caffe's solver constructors do (e.g. AdaGrad needs
 * momentum 0). Errors name the field. */
int solver_kind_from_param(const Caffe__SolverParameter *p, enum solver_kind *kind);
const char *solver_kind_name(enum solver_kind kind);

/* Everything the update reads from p, checked before any iteration: the
 * solver type, the lr_policy and the fields it needs (what Caffe checks
 * at each iteration: step's stepsize > 0, gamma >= 0, ...), and the
 * regularization_type. Errors name the field. */
int solver_check_param(const Caffe__SolverParameter *p);

int solver_update_init(struct solver_update *u, const Caffe__SolverParameter *p, int n_params,
                       struct tensor **params, const float *lr_mult, const float *decay_mult);
void solver_update_free(struct solver_update *u);

/* The learning rate at u->iter (step and multistep set u->current_step). */
float solver_learning_rate(struct solver_update *u);

/* Caffe's ApplyUpdate minus the display line: clip, then per parameter
 * normalise, regularise and compute the update value; then data -= diff.
 * rate comes from solver_learning_rate. */
int solver_apply_update(struct solver_update *u, float rate);

#endif
