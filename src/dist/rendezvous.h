/* The rendezvous: a small key-value store served by rank 0 over TCP. A peer
 * proves it knows the shared secret (HMAC-SHA-256 challenge-response, both
 * ways) before any key is served; the server also tracks which ranks are
 * alive, so a failed collective can name the rank that was lost. */
#ifndef CREMA_DIST_RENDEZVOUS_H
#define CREMA_DIST_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

/* "host:port" (CREMA_MASTER) or "tcp://host:port" into its parts. */
int rdv_parse_address(const char *addr, char *host, size_t host_len, int *port);

struct rdv_server;
/* Listens on host:port (the address if it is local, else every address) in
 * a thread of its own, for a job of `size` ranks. */
int rdv_server_start(const char *host, int port, const char *secret, int size, struct rdv_server **out);
/* Waits up to wait_ms for the other ranks to leave, then stops. */
void rdv_server_stop(struct rdv_server *s, int wait_ms);

enum rdv_state { RDV_ABSENT = 0, RDV_ALIVE = 1, RDV_LOST = 2, RDV_LEFT = 3 };

/* One rank as the server sees it. */
struct rdv_peer {
    int state;         /* enum rdv_state */
    char reason[48];   /* why it was lost: "connection closed", "connection reset" */
    uint64_t seq;      /* the collective it last reported entering */
    uint32_t age_ms;   /* since its last message */
};

struct rdv_client;
/* Connects (retrying while rank 0 is not up yet, up to timeout_ms),
 * authenticates and joins as rank of size. */
int rdv_client_connect(const char *host, int port, const char *secret, int rank, int size, int timeout_ms,
                       struct rdv_client **out);
void rdv_client_free(struct rdv_client *c);

int rdv_set(struct rdv_client *c, const char *key, const void *value, size_t n);
/* Waits up to timeout_ms for the key; *value is malloc'd. */
int rdv_get(struct rdv_client *c, const char *key, void **value, size_t *n, int timeout_ms);
int rdv_wait(struct rdv_client *c, const char *const *keys, int n_keys, int timeout_ms);
/* Tells the server which collective this rank is in (no reply). */
int rdv_heartbeat(struct rdv_client *c, uint64_t seq);
/* Every rank's state: peers has size entries. */
int rdv_status(struct rdv_client *c, struct rdv_peer *peers, int size, int timeout_ms);
/* A clean goodbye: the server will not count this rank as lost. */
int rdv_leave(struct rdv_client *c);

/* Milliseconds on a monotonic clock. */
int64_t rdv_now_ms(void);

#endif
