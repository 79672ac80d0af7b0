/* Helpers the format tests share: the files under a folder with a given
 * ending (the corpus walk), and message comparison by packed bytes. */
#ifndef CREMA_TESTS_PROTO_TESTING_H
#define CREMA_TESTS_PROTO_TESTING_H

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "proto/proto_io.h"

/* Full paths, in the order the folders list them. */
struct pt_files {
    char **v;
    size_t n, cap;
};

/* Adds every file under dir (recursively, hidden names skipped) whose path
 * ends in suffix. A folder that cannot be opened adds nothing. */
static inline void pt_collect(const char *dir, const char *suffix, struct pt_files *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        snprintf(p, n, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            pt_collect(p, suffix, out);
            free(p);
            continue;
        }
        size_t pl = strlen(p), sl = strlen(suffix);
        if (pl >= sl && strcmp(p + pl - sl, suffix) == 0) {
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 64;
                out->v = realloc(out->v, out->cap * sizeof *out->v);
            }
            out->v[out->n++] = p;
        } else {
            free(p);
        }
    }
    closedir(d);
}

static inline void pt_files_free(struct pt_files *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
}

/* The packed bytes of m (malloc'd). */
static inline uint8_t *pt_pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len + 1);
    CHECK_EQ_INT(protobuf_c_message_pack(m, b), *len);
    return b;
}

/* Equal packed bytes means equal messages here: protobuf-c writes fields in
 * number order and the schema has no maps. */
static inline bool pt_same_message(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t la, lb;
    uint8_t *pa = pt_pack(a, &la), *pb = pt_pack(b, &lb);
    bool same = la == lb && memcmp(pa, pb, la) == 0;
    free(pa);
    free(pb);
    return same;
}

#endif
