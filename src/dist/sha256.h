/* SHA-256 and HMAC-SHA-256 (FIPS 180-4, RFC 2104): the rendezvous proves
 * knowledge of the shared secret with them, and ranks compare configs by digest. */
#ifndef CREMA_DIST_SHA256_H
#define CREMA_DIST_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

struct sha256 {
    uint32_t h[8];
    uint64_t length; /* bytes hashed so far */
    unsigned char block[64];
    size_t fill;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, unsigned char out[SHA256_BYTES]);
void sha256_digest(const void *data, size_t n, unsigned char out[SHA256_BYTES]);

/* HMAC over the concatenation of n_parts buffers. */
void hmac_sha256(const void *key, size_t key_len, int n_parts, const void *const *parts, const size_t *lens,
                 unsigned char out[SHA256_BYTES]);

/* Lower-case hex of a digest's first n bytes into out (2n+1 chars). */
void sha256_hex(const unsigned char *digest, size_t n, char *out);

#endif
