/* File helpers shared by every reader and writer: whole-file reads that
 * stop at the file's size, and output writes that never destroy what is at
 * the output path (devices and FIFOs are written through, symlinks
 * followed, regular files replaced atomically). */
#include "util/io.h"
#include "util/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *io_file_kind(mode_t mode)
{
    return S_ISREG(mode)    ? "a regular file"
           : S_ISDIR(mode)  ? "a directory"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISSOCK(mode) ? "a socket"
           : S_ISLNK(mode)  ? "a symbolic link"
                            : "not a regular file";
}

static int read_fd(int fd, const char *path, size_t cap, size_t max_len, bool to_eof, uint8_t **data, size_t *len)
{
    uint8_t *buf = malloc(cap + 1);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap + 1);
    size_t got = 0;
    for (;;) {
        if (got == cap) {
            if (!to_eof)
                break; /* a regular file: its size when opened, no more */
            if (cap >= max_len) {
                uint8_t probe;
                ssize_t r = read(fd, &probe, 1);
                if (r == 0)
                    break;
                free(buf);
                return err_set(CREMA_ERR_NOMEM, "%s: larger than the %zu bytes allowed", path, max_len);
            }
            size_t ncap = cap ? cap * 2 : 4096;
            if (ncap > max_len)
                ncap = max_len;
            uint8_t *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                return err_set(CREMA_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, ncap + 1);
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    buf[got] = 0;
    *data = buf;
    *len = got;
    return CREMA_OK;
}

static int read_file(const char *path, size_t max_len, bool allow_fifo, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    /* Look before opening: opening a device can have effects of its own. */
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) && !(allow_fifo && S_ISFIFO(st.st_mode)))
        return err_set(CREMA_ERR_IO, "%s: is %s, not a regular file", path, io_file_kind(st.st_mode));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
    int rc;
    if (fstat(fd, &st) != 0) {
        rc = err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
    } else if (S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > max_len)
            rc = err_set(CREMA_ERR_NOMEM, "%s: file of %lld bytes is larger than the %zu allowed", path,
                         (long long)st.st_size, max_len);
        else
            rc = read_fd(fd, path, (size_t)st.st_size, max_len, false, data, len);
    } else if (allow_fifo && S_ISFIFO(st.st_mode)) {
        rc = read_fd(fd, path, 0, max_len, true, data, len);
    } else {
        rc = err_set(CREMA_ERR_IO, "%s: is %s, not a regular file", path, io_file_kind(st.st_mode));
    }
    close(fd);
    return rc;
}

int io_read_file(const char *path, size_t max_len, uint8_t **data, size_t *len)
{
    return read_file(path, max_len, true, data, len);
}

int io_read_regular_file(const char *path, size_t max_len, uint8_t **data, size_t *len)
{
    return read_file(path, max_len, false, data, len);
}

/* ---- writing ---- */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int io_resolve_output(const char *path, char **target, struct stat *st, bool *exists)
{
    *target = strdup(path);
    if (!*target)
        return err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
    for (int hops = 0;; hops++) {
        if (lstat(*target, st) != 0) {
            int e = errno;
            if (e == ENOENT) {
                *exists = false;
                return CREMA_OK;
            }
            free(*target);
            *target = NULL;
            return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
        }
        if (!S_ISLNK(st->st_mode)) {
            *exists = true;
            return CREMA_OK;
        }
        if (hops >= 40) {
            free(*target);
            *target = NULL;
            return err_set(CREMA_ERR_IO, "%s: too many levels of symbolic links", path);
        }
        /* Follow the link by hand, so that a link to a file not yet there
         * is written through too. */
        char link[PATH_MAX];
        ssize_t n = readlink(*target, link, sizeof link - 1);
        if (n < 0) {
            int e = errno;
            free(*target);
            *target = NULL;
            return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
        }
        link[n] = 0;
        char *next;
        if (link[0] == '/') {
            next = strdup(link);
        } else {
            char *dir = dir_of(*target);
            size_t m = dir ? strlen(dir) + strlen(link) + 2 : 0;
            next = dir ? malloc(m) : NULL;
            if (next)
                snprintf(next, m, "%s/%s", dir, link);
            free(dir);
        }
        free(*target);
        *target = next;
        if (!next)
            return err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
    }
}

static int write_all(int fd, const char *path, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
        }
        p += w;
        len -= (size_t)w;
    }
    return CREMA_OK;
}

/* A character device or FIFO takes the bytes as a stream: written through,
 * never replaced. */
static int write_through(const char *path, const char *target, const struct stat *st, const void *data,
                         size_t len)
{
    bool fifo = S_ISFIFO(st->st_mode);
    int fd = open(target, O_WRONLY | O_CLOEXEC | O_NOCTTY | (fifo ? O_NONBLOCK : 0));
    if (fd < 0) {
        if (fifo && errno == ENXIO)
            return err_set(CREMA_ERR_IO, "%s: is a FIFO that no process is reading; start the reader first", path);
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (fifo) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
            int e = errno;
            close(fd);
            return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
        }
    }
    int rc = write_all(fd, path, data, len);
    if (close(fd) != 0 && !rc)
        rc = err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
    return rc;
}

/* Is s "<digits>" naming a process that no longer exists? */
static bool dead_pid(const char *s)
{
    if (!*s)
        return false;
    long pid = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9' || pid > INT_MAX / 10)
            return false;
        pid = pid * 10 + (*c - '0');
    }
    return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void io_remove_stale_temps(const char *target, const char *tag)
{
    char *dir = dir_of(target);
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    DIR *d = dir ? opendir(dir) : NULL;
    size_t bl = strlen(base), tl = strlen(tag);
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) != 0 || strncmp(n + bl, tag, tl) != 0 || !dead_pid(n + bl + tl))
            continue;
        /* Only files: a directory of that name is not a temporary of ours. */
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            unlinkat(dirfd(d), n, 0);
    }
    if (d)
        closedir(d);
    free(dir);
}

char *io_temp_name(const char *target)
{
    size_t n = strlen(target) + 32;
    char *tmp = malloc(n);
    if (tmp)
        snprintf(tmp, n, "%s" IO_TEMP_TAG "%ld", target, (long)getpid());
    return tmp;
}

int io_write_atomic(const char *path, const void *data, size_t len)
{
    char *target = NULL;
    struct stat st;
    bool exists;
    int rc = io_resolve_output(path, &target, &st, &exists);
    if (rc)
        return rc;
    if (exists && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
        rc = write_through(path, target, &st, data, len);
        free(target);
        return rc;
    }
    if (exists && !S_ISREG(st.st_mode)) {
        rc = err_set(CREMA_ERR_IO, "%s: is %s; crema writes outputs to regular files, character devices and FIFOs",
                     path, io_file_kind(st.st_mode));
        free(target);
        return rc;
    }
    io_remove_stale_temps(target, IO_TEMP_TAG);
    char *tmp = io_temp_name(target);
    if (!tmp) {
        free(target);
        return err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, exists ? 0600 : 0644);
    if (fd < 0) {
        rc = err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
    } else {
        /* A file replaced keeps its permissions. */
        if (exists && fchmod(fd, st.st_mode & 07777) != 0)
            rc = err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
        if (!rc)
            rc = write_all(fd, path, data, len);
        if (!rc && fsync(fd) != 0)
            rc = err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
        if (close(fd) != 0 && !rc)
            rc = err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
        if (!rc && rename(tmp, target) != 0)
            rc = err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
        if (rc)
            unlink(tmp);
    }
    free(tmp);
    free(target);
    return rc;
}

const char *io_strip_file_uri(const char *path)
{
    if (strncmp(path, "file://", 7) == 0)
        return path + 7;
    if (strncmp(path, "file:", 5) == 0)
        return path + 5;
    return path;
}
