/* Helpers the solver tests share: an absolute scratch folder (solver runs
 * change into case folders) and byte comparison of two files. */
#ifndef CREMA_TESTS_SOLVER_TESTING_H
#define CREMA_TESTS_SOLVER_TESTING_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/io.h"

static inline char *abs_tmpdir(const char *name)
{
    char *t = check_tmpdir(name), *a = realpath(t, NULL);
    CHECK_MSG(a, "cannot resolve %s", t);
    free(t);
    return a;
}

static inline bool same_bytes(const char *a, const char *b)
{
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    bool same = io_read_file(a, IO_MAX_MESSAGE, &x, &nx) == 0 && io_read_file(b, IO_MAX_MESSAGE, &y, &ny) == 0 &&
                nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

#endif
