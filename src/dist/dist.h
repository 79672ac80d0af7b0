/* Collectives between the ranks of a data-parallel job: the C interface the
 * solver uses, served today by Gloo (CPU, TCP or ibverbs) and later by NCCL. */
#ifndef CREMA_DIST_DIST_H
#define CREMA_DIST_DIST_H

#include <stddef.h>
#include <stdint.h>

enum dist_transport { DIST_ETHERNET = 0, DIST_INFINIBAND = 1 };

#define DIST_DEFAULT_TIMEOUT_MS 30000

struct dist_config {
    int rank;               /* 0..size-1; -1: not set */
    int size;               /* number of ranks; -1: not set */
    const char *rendezvous; /* "tcp://host:port" (rank 0 serves it) or "file:///dir" */
    const char *secret;     /* shared by all ranks; never sent on the wire */
    const char *iface;      /* network interface whose IPv4 address gloo binds; NULL: automatic */
    enum dist_transport transport;
    int timeout_ms; /* a dead or stalled peer fails a call after this long */
};

/* rank = size = -1, no rendezvous, empty secret, ethernet, 30 s. */
void dist_config_init(struct dist_config *c);

/* Fills what is still unset from the environment: rank and size from
 * OMPI_COMM_WORLD_RANK/SIZE (mpirun), PMI_RANK/SIZE (MPICH, Hydra),
 * SLURM_PROCID/NTASKS (srun), then CREMA_RANK/CREMA_SIZE; the rendezvous
 * from CREMA_MASTER=host:port; the secret from CREMA_SECRET. A malformed
 * value is an error naming the variable. The strings point into environ. */
int dist_config_from_env(struct dist_config *c);

/* "ethernet" or "infiniband". */
int dist_transport_parse(const char *s, enum dist_transport *out);

struct dist_comm;
struct dist_request;

/* Meets the other ranks at the rendezvous and connects every pair. Fails
 * within the timeout (seconds for a wrong secret, rank or size) with a
 * message naming the rank at fault. */
int dist_comm_create(const struct dist_config *c, struct dist_comm **out);
/* Waits for pending asynchronous calls, says goodbye, releases everything. */
void dist_comm_free(struct dist_comm *comm);

int dist_rank(const struct dist_comm *comm);
int dist_size(const struct dist_comm *comm);
/* The job's timeout: a dead or stalled peer fails a call after this long. */
int dist_timeout_ms(const struct dist_comm *comm);

/* The collectives. Every rank calls them in the same order with the same
 * sizes. Errors name the rank that was lost or is late:
 * "lost rank 1: connection closed", "timed out after 30 s waiting for rank 2". */
int dist_allreduce_sum(struct dist_comm *comm, float *buf, size_t n);
int dist_broadcast(struct dist_comm *comm, void *buf, size_t bytes, int root);
int dist_barrier(struct dist_comm *comm);
/* recv gets size * bytes: rank r's send at offset r * bytes. */
int dist_allgather(struct dist_comm *comm, const void *send, size_t bytes, void *recv);

/* Starts summing buf across ranks in the background (e.g. one bucket of
 * gradients while backward goes on); buf must not be touched until
 * dist_wait returns. Requests complete in the order started. */
int dist_allreduce_start(struct dist_comm *comm, float *buf, size_t n, struct dist_request **req);
/* Waits for the request and frees it; its status is the call's. */
int dist_wait(struct dist_request *req);

/* Checks that every rank passed the same bytes (say the serialized net and
 * solver): a difference names the first rank that differs and `what`. */
int dist_check_same(struct dist_comm *comm, const void *bytes, size_t n, const char *what);

#endif
