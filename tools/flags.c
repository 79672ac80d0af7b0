/* Caffe-style flags: -name value, --name value, --name=value, and bare
 * -name for booleans. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct flag *find(struct flag *flags, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

static bool is_bool_text(const char *v)
{
    return !strcmp(v, "true") || !strcmp(v, "false") || !strcmp(v, "1") || !strcmp(v, "0");
}

static int check_value(const char *cmd, const struct flag *f, const char *v)
{
    char *end;
    errno = 0;
    switch (f->type) {
    case FLAG_INT:
        strtoll(v, &end, 10);
        if (!*v || *end || errno) {
            fprintf(stderr, "crema %s: -%s wants an integer, got \"%s\"\n", cmd, f->name, v);
            return 1;
        }
        break;
    case FLAG_DOUBLE:
        strtod(v, &end);
        if (!*v || *end || errno) {
            fprintf(stderr, "crema %s: -%s wants a number, got \"%s\"\n", cmd, f->name, v);
            return 1;
        }
        break;
    case FLAG_BOOL:
        if (!is_bool_text(v)) {
            fprintf(stderr, "crema %s: -%s wants true or false, got \"%s\"\n", cmd, f->name, v);
            return 1;
        }
        break;
    case FLAG_STRING:
    case FLAG_LIST:
        break;
    }
    return 0;
}

/* One walk over argv serves parsing and, for FLAG_LIST flags, collecting
 * every occurrence (collect names the flag; its values go to out). */
static int walk_flags(const char *cmd, int argc, char **argv, int start, struct flag *flags, int n_flags,
                      const char **pos, int max_pos, int *n_pos, const char *collect, const char **out,
                      int max_out, int *n_out)
{
    *n_pos = 0;
    for (int i = start; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == 0) {
            if (*n_pos >= max_pos) {
                fprintf(stderr, "crema %s: unexpected argument \"%s\"\n", cmd, a);
                return 1;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + 1;
        if (*name == '-')
            name++;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        struct flag *f = find(flags, n_flags, name, len);
        if (!f) {
            fprintf(stderr, "crema %s: unknown flag \"%s\" (crema help %s lists the flags)\n", cmd, a, cmd);
            return 1;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (f->type == FLAG_BOOL && (i + 1 >= argc || !is_bool_text(argv[i + 1]))) {
            /* a bare boolean flag: what follows is not its value */
            v = "true";
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "crema %s: flag -%s needs a value\n", cmd, f->name);
                return 1;
            }
            v = argv[++i];
        }
        if (check_value(cmd, f, v))
            return 1;
        if (collect && strcmp(f->name, collect) == 0 && *n_out < max_out)
            out[(*n_out)++] = v;
        f->value = v;
        f->set = true;
    }
    return 0;
}

int cli_parse_flags(const char *cmd, int argc, char **argv, int start, struct flag *flags, int n_flags,
                    const char **pos, int max_pos, int *n_pos)
{
    return walk_flags(cmd, argc, argv, start, flags, n_flags, pos, max_pos, n_pos, NULL, NULL, 0, NULL);
}

int cli_list(const char *cmd, int argc, char **argv, int start, struct flag *flags, int n_flags,
             const char *name, const char **out, int max_out)
{
    const char *pos[64];
    int n_pos = 0, n_out = 0;
    if (walk_flags(cmd, argc, argv, start, flags, n_flags, pos, 64, &n_pos, name, out, max_out, &n_out))
        return -1;
    return n_out;
}

static const struct flag *get(const struct flag *flags, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(flags[i].name, name) == 0)
            return &flags[i];
    return NULL;
}

const char *cli_str(const struct flag *flags, int n, const char *name)
{
    const struct flag *f = get(flags, n, name);
    if (!f)
        return "";
    return f->set ? f->value : f->def;
}

long long cli_int(const struct flag *flags, int n, const char *name)
{
    return strtoll(cli_str(flags, n, name), NULL, 10);
}

double cli_double(const struct flag *flags, int n, const char *name)
{
    return strtod(cli_str(flags, n, name), NULL);
}

bool cli_bool(const struct flag *flags, int n, const char *name)
{
    const char *v = cli_str(flags, n, name);
    return strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

void cli_print_flags(const char *cmd, const char *usage, const struct flag *flags, int n)
{
    printf("usage: crema %s %s\n\nflags:\n", cmd, usage);
    for (int i = 0; i < n; i++)
        printf("  -%-22s %s (default: \"%s\")\n", flags[i].name, flags[i].help, flags[i].def);
}

int cli_parse_command(const char *cmd, const char *usage, int argc, char **argv, struct flag *flags, int n_flags,
                      const char **pos, int max_pos, int *n_pos)
{
    if (cli_parse_flags(cmd, argc, argv, 2, flags, n_flags, pos, max_pos, n_pos))
        return 1;
    if (cli_bool(flags, n_flags, "help")) {
        cli_print_flags(cmd, usage, flags, n_flags);
        return 0;
    }
    return -1;
}

int cli_parse_command_flags(const char *cmd, const char *usage, int argc, char **argv, struct flag *flags,
                            int n_flags)
{
    const char *pos[1];
    int n_pos;
    return cli_parse_command(cmd, usage, argc, argv, flags, n_flags, pos, 0, &n_pos);
}
