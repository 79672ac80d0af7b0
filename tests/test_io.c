/* Output paths are never destroyed: a symbolic link is followed (even to a
 * file not there yet), a FIFO and a character device are written through,
 * a directory is refused, a regular file is replaced atomically with its
 * permissions kept, and temporaries of killed runs are cleaned up. Inputs:
 * devices are refused before a byte is read, FIFOs are streams. */
#include "check.h"
#include "util/io.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static char *tmp;

static char *path(const char *name)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 4096, "%s/%s", tmp, name);
    return p;
}

static void put(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    CHECK_MSG(f != NULL, "cannot create %s", p);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void expect_content(const char *p, const char *want)
{
    uint8_t *d = NULL;
    size_t n = 0;
    CHECK_OK(io_read_file(p, 1 << 20, &d, &n));
    CHECK_MSG(d && n == strlen(want) && memcmp(d, want, n) == 0, "%s: expected \"%s\", got \"%.*s\"", p, want,
              (int)n, d ? (const char *)d : "");
    free(d);
}

static void test_symlink_followed(void)
{
    put(path("real"), "old");
    unlink(path("link"));
    CHECK(symlink("real", path("link")) == 0);
    CHECK_OK(io_write_atomic(path("link"), "new", 3));
    struct stat st;
    CHECK_MSG(lstat(path("link"), &st) == 0 && S_ISLNK(st.st_mode), "the symbolic link was replaced");
    expect_content(path("real"), "new");
    /* a link to a file not there yet: the file is made where it points */
    unlink(path("later"));
    unlink(path("dangling"));
    CHECK(symlink("later", path("dangling")) == 0);
    CHECK_OK(io_write_atomic(path("dangling"), "made", 4));
    CHECK_MSG(lstat(path("dangling"), &st) == 0 && S_ISLNK(st.st_mode), "the dangling link was replaced");
    expect_content(path("later"), "made");
}

static void test_fifo_written_through(void)
{
    const char *f = path("fifo");
    unlink(f);
    CHECK(mkfifo(f, 0600) == 0);
    /* nobody reading: an error, not a hang and not a regular file */
    int rc = io_write_atomic(f, "x", 1);
    struct stat st;
    CHECK_MSG(rc != 0 && strstr(crema_errmsg(), "FIFO"), "expected a FIFO error, got %d: %s", rc, crema_errmsg());
    CHECK_MSG(lstat(f, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        int fd = open(f, O_RDONLY);
        char buf[64];
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
        while (n > 0) {
            if (write(pfd[1], buf, (size_t)n) != n)
                _exit(2);
            n = read(fd, buf, sizeof buf);
        }
        _exit(0);
    }
    close(pfd[1]);
    /* the reader opens the FIFO in its own time */
    for (int i = 0; i < 200; i++) {
        rc = io_write_atomic(f, "through a fifo", 14);
        if (rc == 0 || !strstr(crema_errmsg(), "no process is reading"))
            break;
        usleep(20000);
    }
    CHECK_OK(rc);
    char got[64] = "";
    ssize_t n = read(pfd[0], got, sizeof got - 1);
    got[n > 0 ? n : 0] = 0;
    close(pfd[0]);
    waitpid(pid, NULL, 0);
    CHECK_MSG(strcmp(got, "through a fifo") == 0, "the reader got \"%s\"", got);
    CHECK_MSG(lstat(f, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced by %s", io_file_kind(st.st_mode));
}

static void test_char_device_written_through(void)
{
    /* A null device of our own (as root): the real /dev/null is not put at
     * risk even where this test fails. */
    const char *d = path("null");
    unlink(d);
    if (mknod(d, S_IFCHR | 0666, makedev(1, 3)) != 0) {
        check_skip("cannot make a device node here (%s): needs root", strerror(errno));
        return;
    }
    CHECK_OK(io_write_atomic(d, "gone", 4));
    struct stat st;
    CHECK_MSG(lstat(d, &st) == 0 && S_ISCHR(st.st_mode), "the device node was replaced by %s",
              io_file_kind(st.st_mode));
    unlink(d);
}

static void test_directory_refused(void)
{
    const char *d = path("dir");
    mkdir(d, 0755);
    int rc = io_write_atomic(d, "x", 1);
    CHECK_MSG(rc != 0 && strstr(crema_errmsg(), "directory"), "expected a refusal naming the directory, got %d: %s",
              rc, crema_errmsg());
    struct stat st;
    CHECK(stat(d, &st) == 0 && S_ISDIR(st.st_mode));
}

static void test_regular_file_replaced(void)
{
    const char *f = path("plain");
    put(f, "before");
    chmod(f, 0640);
    CHECK_OK(io_write_atomic(f, "after", 5));
    expect_content(f, "after");
    struct stat st;
    CHECK_MSG(stat(f, &st) == 0 && (st.st_mode & 07777) == 0640, "mode 0%o, expected 0640",
              (unsigned)(st.st_mode & 07777));
}

/* The pid of a process that has exited. */
static pid_t dead_pid(void)
{
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

static void test_stale_temps_removed(void)
{
    const char *f = path("out");
    char stale[4200], live[4200], other[4200];
    snprintf(stale, sizeof stale, "%s.tmp.%d", f, (int)dead_pid());
    snprintf(live, sizeof live, "%s.tmp.%d", f, (int)getppid());
    snprintf(other, sizeof other, "%s.tmpfoo.%d", f, (int)dead_pid());
    put(stale, "left by a killed run");
    put(live, "a run still going");
    put(other, "not ours");
    CHECK_OK(io_write_atomic(f, "x", 1));
    CHECK_MSG(access(stale, F_OK) != 0, "%s was left behind", stale);
    CHECK_MSG(access(live, F_OK) == 0, "%s (its process is alive) was removed", live);
    CHECK_MSG(access(other, F_OK) == 0, "%s (not a temporary of ours) was removed", other);
    unlink(live);
    unlink(other);
}

static void test_read_refuses_devices(void)
{
    uint8_t *d = NULL;
    size_t n = 0;
    /* refused before reading: /dev/zero would otherwise fill max_len */
    int rc = io_read_file("/dev/zero", (size_t)1 << 33, &d, &n);
    CHECK_MSG(rc == CREMA_ERR_IO && strstr(crema_errmsg(), "character device"), "got %d: %s", rc, crema_errmsg());
    CHECK(d == NULL);
    rc = io_read_regular_file(tmp, 1 << 20, &d, &n);
    CHECK_MSG(rc == CREMA_ERR_IO && strstr(crema_errmsg(), "directory"), "got %d: %s", rc, crema_errmsg());
    /* a FIFO is a stream for io_read_file, refused by io_read_regular_file */
    const char *f = path("rfifo");
    unlink(f);
    CHECK(mkfifo(f, 0600) == 0);
    rc = io_read_regular_file(f, 1 << 20, &d, &n);
    CHECK_MSG(rc == CREMA_ERR_IO && strstr(crema_errmsg(), "FIFO"), "got %d: %s", rc, crema_errmsg());
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(f, O_WRONLY);
        _exit(fd >= 0 && write(fd, "streamed", 8) == 8 ? 0 : 1);
    }
    CHECK_OK(io_read_file(f, 1 << 20, &d, &n));
    CHECK_MSG(d && n == 8 && memcmp(d, "streamed", 8) == 0, "read %zu bytes", n);
    free(d);
    waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
    tmp = check_tmpdir("io");
    static const struct check_case cases[] = {
        CASE(test_symlink_followed),     CASE(test_fifo_written_through), CASE(test_char_device_written_through),
        CASE(test_directory_refused),    CASE(test_regular_file_replaced), CASE(test_stale_temps_removed),
        CASE(test_read_refuses_devices),
    };
    int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
    free(tmp);
    return rc;
}
