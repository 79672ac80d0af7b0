/* The crema command line: one function per subcommand, and Caffe-style flag
 * parsing (-x v, --x v, --x=v) shared by all of them. */
#ifndef CREMA_TOOLS_CLI_H
#define CREMA_TOOLS_CLI_H

#include <stdbool.h>

enum flag_type { FLAG_STRING, FLAG_INT, FLAG_DOUBLE, FLAG_BOOL };

struct flag {
    const char *name;
    enum flag_type type;
    const char *def; /* default, as text ("" for none) */
    const char *help;
    /* filled by cli_parse_flags */
    const char *value;
    bool set;
};

/* Parses argv[start..] into flags; positional arguments are returned in
 * pos (at most max_pos). Unknown flags and bad values print one line and
 * return non-zero. */
int cli_parse_flags(const char *cmd, int argc, char **argv, int start, struct flag *flags, int n_flags,
                    const char **pos, int max_pos, int *n_pos);
const char *cli_str(const struct flag *flags, int n, const char *name);
long long cli_int(const struct flag *flags, int n, const char *name);
double cli_double(const struct flag *flags, int n, const char *name);
bool cli_bool(const struct flag *flags, int n, const char *name);
void cli_print_flags(const char *cmd, const char *usage, const struct flag *flags, int n);

/* Subcommands: each returns the process exit code. */
int cmd_upgrade_net(int argc, char **argv);
int cmd_upgrade_solver(int argc, char **argv);
/* data tools (data_tools.c) */
int cmd_convert_mnist(int argc, char **argv);
int cmd_convert_imageset(int argc, char **argv);
int cmd_compute_mean(int argc, char **argv);
int cmd_db_info(int argc, char **argv);
/* training (train.c) */
int cmd_train(int argc, char **argv);

#endif
