/* File helpers shared by every reader and writer. */
#include "util/io.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int io_read_file(const char *path, size_t max_len, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return err_set(CREMA_ERR_IO, "%s: is a directory", path);
    }
    if ((uint64_t)st.st_size > max_len) {
        close(fd);
        return err_set(CREMA_ERR_NOMEM, "%s: file of %lld bytes is larger than the %zu allowed",
                       path, (long long)st.st_size, max_len);
    }
    size_t cap = (size_t)st.st_size;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return err_set(CREMA_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap + 1);
    }
    size_t got = 0;
    for (;;) {
        if (got == cap) {
            /* The file may have grown (or be a pipe): read on until EOF. */
            if (cap >= max_len) {
                uint8_t probe;
                ssize_t r = read(fd, &probe, 1);
                if (r == 0)
                    break;
                free(buf);
                close(fd);
                return err_set(CREMA_ERR_NOMEM, "%s: larger than the %zu bytes allowed", path, max_len);
            }
            size_t ncap = cap ? cap * 2 : 4096;
            if (ncap > max_len)
                ncap = max_len;
            uint8_t *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                close(fd);
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
            close(fd);
            return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    *data = buf;
    *len = got;
    return CREMA_OK;
}

int io_write_atomic(const char *path, const void *data, size_t len)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
    }
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            free(tmp);
            return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(e));
    }
    free(tmp);
    return CREMA_OK;
}

const char *io_strip_file_uri(const char *path)
{
    if (strncmp(path, "file://", 7) == 0)
        return path + 7;
    if (strncmp(path, "file:", 5) == 0)
        return path + 5;
    return path;
}
