/* A small test harness: CHECK macros that say what was expected and what
 * came instead, and a runner that prints "N passed, N failed". */
#ifndef CREMA_TESTS_CHECK_H
#define CREMA_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "crema.h"

struct check_case {
    const char *name;
    void (*fn)(void);
};

extern int check_case_failed;
extern int check_case_skipped;

void check_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Marks the running case as skipped, with the reason printed. */
void check_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int check_run(const struct check_case *cases, int n, int argc, char **argv);

/* Path of a file under ../shared (or $CREMA_SHARED); malloc'd. */
char *check_shared(const char *rel);
/* A fresh scratch directory for this test; malloc'd. */
char *check_tmpdir(const char *name);
/* Path of the crema binary ($CREMA_BIN or build/bin/crema). */
const char *check_crema_bin(void);

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond))                                                          \
            check_fail(__FILE__, __LINE__, "expected %s", #cond);             \
    } while (0)

#define CHECK_MSG(cond, ...)                                                  \
    do {                                                                      \
        if (!(cond))                                                          \
            check_fail(__FILE__, __LINE__, __VA_ARGS__);                      \
    } while (0)

#define CHECK_OK(expr)                                                        \
    do {                                                                      \
        int check_rc_ = (expr);                                               \
        if (check_rc_ != 0)                                                   \
            check_fail(__FILE__, __LINE__, "%s returned %d: %s", #expr,        \
                       check_rc_, crema_errmsg());                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                    \
    do {                                                                      \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);       \
        if (check_a_ != check_b_)                                             \
            check_fail(__FILE__, __LINE__, "%s: expected %lld, got %lld", #a, \
                       check_b_, check_a_);                                   \
    } while (0)

#define CASE(fn) { #fn, fn }
#define CHECK_MAIN(...)                                                       \
    int main(int argc, char **argv)                                           \
    {                                                                         \
        static const struct check_case cases_[] = { __VA_ARGS__ };            \
        return check_run(cases_, (int)(sizeof cases_ / sizeof cases_[0]),     \
                         argc, argv);                                         \
    }

#endif
