/* The test runner behind check.h. */
#include "check.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int check_case_failed;
int check_case_skipped;
static int check_fail_lines;

void check_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    check_case_failed = 1;
    if (check_fail_lines++ > 50)
        return;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void check_skip(const char *fmt, ...)
{
    va_list ap;
    check_case_skipped = 1;
    fprintf(stderr, "    skipped: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int check_run(const struct check_case *cases, int n, int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n; i++) {
        if (argc > 1) {
            int want = 0;
            for (int a = 1; a < argc; a++)
                if (strstr(cases[i].name, argv[a]))
                    want = 1;
            if (!want)
                continue;
        }
        check_case_failed = 0;
        check_case_skipped = 0;
        check_fail_lines = 0;
        cases[i].fn();
        fflush(stdout);
        if (check_case_failed) {
            fprintf(stderr, "FAIL %s\n", cases[i].name);
            failed++;
        } else if (check_case_skipped) {
            fprintf(stderr, "skip %s\n", cases[i].name);
            skipped++;
        } else {
            fprintf(stderr, "ok   %s\n", cases[i].name);
            passed++;
        }
    }
    fprintf(stderr, "%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

char *check_shared(const char *rel)
{
    const char *base = getenv("CREMA_SHARED");
    if (!base)
        base = "../shared";
    size_t n = strlen(base) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", base, rel);
    return p;
}

char *check_tmpdir(const char *name)
{
    const char *base = getenv("CREMA_TMP");
    if (!base)
        base = "build/tmp";
    mkdir(base, 0755);
    size_t n = strlen(base) + strlen(name) + 32;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s.%ld", base, name, (long)getpid());
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0)
        fprintf(stderr, "    could not clear %s\n", p);
    mkdir(p, 0755);
    return p;
}

const char *check_crema_bin(void)
{
    const char *b = getenv("CREMA_BIN");
    return b ? b : "build/bin/crema";
}
