/* What the C API's handles hold, shared by the files of src/api (api.c and
 * api_pycaffe.c); nothing outside the API sees it. */
#ifndef CREMA_API_HANDLES_H
#define CREMA_API_HANDLES_H

#include "crema.h"
#include "core/tensor.h"
#include "net/net.h"
#include "solvers/solver.h"

struct crema_net {
    struct net *net;
};

struct crema_solver {
    struct solver *s;
    crema_net train; /* handles that borrow the solver's nets */
    crema_net *tests;
};

/* A crema_blob over a tensor's host buffers. */
int api_blob_view(struct tensor *t, crema_blob *out);

#endif
