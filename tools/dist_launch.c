/* Distributed training from the command line: the rank flags and the
 * launcher environments into a dist config, and -clusterSize N on one host,
 * which starts N copies of this program as ranks 0..N-1 and watches them. */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "api/internal.h"

#define CLI_RANKS_PER_CORE 4

int cli_dist_setup(const char *cmd, const struct cli_dist_opts *o, struct dist_config *cfg)
{
    dist_config_init(cfg);
    if (o->cluster_size < 0 || o->cluster_size > 4096) {
        fprintf(stderr, "crema %s: -clusterSize must be in 0..4096, got %lld\n", cmd, o->cluster_size);
        return -1;
    }
    if (o->timeout_s < 1 || o->timeout_s > 86400) {
        fprintf(stderr, "crema %s: -dist_timeout must be 1..86400 seconds, got %lld\n", cmd, o->timeout_s);
        return -1;
    }
    if (o->rank < -1 || o->rank > 1000000) {
        fprintf(stderr, "crema %s: -rank %lld is not a rank\n", cmd, o->rank);
        return -1;
    }
    if (o->cluster_size > 0)
        cfg->size = (int)o->cluster_size;
    cfg->rank = (int)o->rank;
    if (o->rendezvous && *o->rendezvous)
        cfg->rendezvous = o->rendezvous;
    if (o->secret && *o->secret)
        cfg->secret = o->secret;
    if (o->iface && *o->iface)
        cfg->iface = o->iface;
    cfg->timeout_ms = (int)o->timeout_s * 1000;
    if (dist_transport_parse(o->connection, &cfg->transport)) {
        fprintf(stderr, "crema %s: -%s\n", cmd, crema_errmsg());
        return -1;
    }
    if (dist_config_from_env(cfg)) {
        fprintf(stderr, "crema %s: %s\n", cmd, crema_errmsg());
        return -1;
    }
    if (cfg->size <= 1) {
        if (cfg->rank > 0) {
            fprintf(stderr, "crema %s: rank %d is out of range for a job of %d rank (0..0)\n", cmd, cfg->rank,
                    cfg->size < 1 ? 1 : cfg->size);
            return -1;
        }
        return CLI_DIST_NONE;
    }
    if (cfg->rank < 0) {
        /* Every rank would start here: each holds the whole model and its
         * own threads, so far more ranks than cores only thrash. */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        if (cores < 1)
            cores = 1;
        if ((long)cfg->size > CLI_RANKS_PER_CORE * cores) {
            fprintf(stderr, "crema %s: -clusterSize %d would start %d ranks on this machine, which has %ld core%s "
                    "(at most %ld here, %d a core); spread the ranks over hosts with mpirun, srun or -rank and "
                    "-rendezvous\n", cmd, cfg->size, cfg->size, cores, cores == 1 ? "" : "s",
                    CLI_RANKS_PER_CORE * cores, CLI_RANKS_PER_CORE);
            return -1;
        }
        return CLI_DIST_LAUNCH;
    }
    if (cfg->rank >= cfg->size) {
        fprintf(stderr, "crema %s: rank %d is out of range for a job of %d ranks (0..%d)\n", cmd, cfg->rank,
                cfg->size, cfg->size - 1);
        return -1;
    }
    return CLI_DIST_RANK;
}

int cli_dist_connect(const char *cmd, const struct dist_config *cfg, struct dist_comm **out)
{
    if (dist_comm_create(cfg, out)) {
        fprintf(stderr, "crema %s: rank %d: %s\n", cmd, cfg->rank, crema_errmsg());
        return 1;
    }
    return 0;
}

/* ---- the launcher ---- */

static int free_local_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int random_secret(char *out, size_t len)
{
    unsigned char raw[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, raw, sizeof raw);
    close(fd);
    if (n != (ssize_t)sizeof raw || len < 2 * sizeof raw + 1)
        return -1;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static volatile sig_atomic_t got_term, got_int, got_hup;

static void on_launcher_signal(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    /* SIGINT and SIGHUP from a terminal (the kernel sends them to the whole
     * foreground process group) reach every rank by themselves; sent to the
     * launcher alone (kill PID, a scheduler), they are passed on, as SIGTERM
     * always is. */
    bool from_tty = info && info->si_code == SI_KERNEL;
    if (sig == SIGTERM)
        got_term = 1;
    else if (sig == SIGINT && !from_tty)
        got_int = 1;
    else if (sig == SIGHUP && !from_tty)
        got_hup = 1;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "stopped (status 0x%x)", status);
}

int cli_dist_launch(const char *cmd, int argc, char **argv, const struct dist_config *cfg)
{
    (void)argc;
    int size = cfg->size;
    char master[64], secret[64], num[32];
    if (!cfg->rendezvous) {
        int port = free_local_port();
        if (port < 0) {
            fprintf(stderr, "crema %s: no free port on 127.0.0.1 for the rendezvous: %s\n", cmd, strerror(errno));
            return 1;
        }
        snprintf(master, sizeof master, "127.0.0.1:%d", port);
        setenv("CREMA_MASTER", master, 1);
    }
    if (!cfg->secret) {
        if (random_secret(secret, sizeof secret)) {
            fprintf(stderr, "crema %s: cannot read /dev/urandom for the rendezvous secret\n", cmd);
            return 1;
        }
        setenv("CREMA_SECRET", secret, 1);
    }
    snprintf(num, sizeof num, "%d", size);
    setenv("CREMA_SIZE", num, 1);
    pid_t *pids = calloc((size_t)size, sizeof *pids);
    if (!pids) {
        fprintf(stderr, "crema %s: out of memory\n", cmd);
        return 1;
    }
    struct sigaction sa, old_int, old_hup, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_launcher_signal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGHUP, &sa, &old_hup);
    sigaction(SIGTERM, &sa, &old_term);
    got_term = got_int = got_hup = 0;
    fflush(NULL);
    pid_t parent = getpid();
    int started = 0;
    for (int r = 0; r < size; r++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* the handlers above are reset by exec; ranks die with us */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(1);
            snprintf(num, sizeof num, "%d", r);
            setenv("CREMA_RANK", num, 1);
            execv("/proc/self/exe", argv);
            fprintf(stderr, "crema %s: rank %d: cannot start /proc/self/exe: %s\n", cmd, r, strerror(errno));
            _exit(127);
        }
        if (pid < 0) {
            fprintf(stderr, "crema %s: cannot start rank %d: %s\n", cmd, r, strerror(errno));
            break;
        }
        pids[r] = pid;
        started++;
    }
    int first_bad = started < size ? started : -1, running = started;
    char why[128] = "could not be started";
    double kill_at = first_bad >= 0 ? mono_s() : 0;
    if (first_bad >= 0)
        fprintf(stderr, "crema %s: rank %d %s; stopping the other ranks\n", cmd, first_bad, why);
    bool killed = false, blame_signal = false;
    /* After the first failure the others get a moment to notice and name
     * the lost rank themselves (a closed connection shows at once); then
     * they are killed. Not the whole -dist_timeout again: the job is to end
     * within it. A rank that hangs is found by the others' timeout. */
    double grace_died = 2.5, grace_failed = 0.3;
    while (running > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            int r = 0;
            while (r < size && pids[r] != pid)
                r++;
            if (r == size)
                continue;
            pids[r] = 0;
            running--;
            bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            /* The rank to blame: one that died of a signal over ones that
             * exited with an error (usually because they lost it), which
             * waitpid may report first. */
            bool died = WIFSIGNALED(status) && !killed;
            if (!ok && (first_bad < 0 || (died && !blame_signal))) {
                first_bad = r;
                blame_signal = died;
                describe_exit(status, why, sizeof why);
                /* a rank that failed has said why; one that died needs the
                 * others to say it */
                if (kill_at == 0)
                    kill_at = mono_s() + (died ? grace_died : grace_failed);
            }
            continue;
        }
        if (pid < 0 && errno != EINTR)
            break;
        static const int fwd_sig[3] = { SIGTERM, SIGINT, SIGHUP };
        volatile sig_atomic_t *fwd_flag[3] = { &got_term, &got_int, &got_hup };
        for (int k = 0; k < 3; k++) {
            if (!*fwd_flag[k])
                continue;
            *fwd_flag[k] = 0;
            for (int r = 0; r < size; r++)
                if (pids[r] > 0)
                    kill(pids[r], fwd_sig[k]);
        }
        if (first_bad >= 0 && !killed && mono_s() >= kill_at) {
            for (int r = 0; r < size; r++)
                if (pids[r] > 0)
                    kill(pids[r], SIGKILL);
            killed = true;
        }
        usleep(50000);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(pids);
    if (first_bad >= 0) {
        fprintf(stderr, "crema %s: distributed training failed: rank %d %s\n", cmd, first_bad, why);
        return 1;
    }
    return 0;
}
