/* Caffe's HDF5 snapshots (.caffemodel.h5, .solverstate.h5) <-> NetParameter
 * and SolverState, on libhdf5's core API with its error printing silenced. */
#include "proto/hdf5_snapshot.h"
#include "core/blob_proto.h"
#include "util/err.h"
#include "util/io.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Caffe's kMaxBlobAxes. */
#define H5S_MAX_AXES 32
/* Blob indices above this are not Caffe's (a layer has a handful). */
#define H5S_MAX_BLOBS 65536

/* ---- errors ---- */

/* HDF5 keeps its own error stack and prints it unless told not to; each
 * entry point turns printing off and restores the caller's setting after. */
struct quiet {
    H5E_auto2_t func;
    void *data;
};

static void quiet_begin(struct quiet *q)
{
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_end(const struct quiet *q)
{
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static herr_t first_error(unsigned n, const H5E_error2_t *e, void *client)
{
    char *buf = client;
    if (n == 0 && e->desc && e->desc[0])
        snprintf(buf, 256, "%s", e->desc);
    return 0;
}

/* Our message, then HDF5's most specific reason when it gave one. */
static int h5_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int h5_fail(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char why[256] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_error, why);
    H5Eclear2(H5E_DEFAULT);
    if (why[0])
        return err_set(code, "%s (HDF5: %s)", msg, why);
    return err_set(code, "%s", msg);
}

static void close_id(hid_t id)
{
    if (id < 0)
        return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

bool hdf5_is_snapshot_name(const char *path)
{
    size_t n = strlen(path);
    return n >= 3 && strcmp(path + n - 3, ".h5") == 0;
}

/* ---- reading ---- */

/* Opens an existing HDF5 file read-only, telling a missing file, a file that
 * is not HDF5 and a damaged one apart. */
static int open_for_read(const char *path, hid_t *file)
{
    *file = -1;
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_set(CREMA_ERR_IO, "%s: is %s, not a regular file", path, io_file_kind(st.st_mode));
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return err_set(CREMA_ERR_IO, "%s: %s", path, strerror(errno));
    close(fd);
    htri_t is = H5Fis_hdf5(path);
    if (is == 0)
        return err_set(CREMA_ERR_PARSE, "%s: not an HDF5 file", path);
    if (is < 0)
        return h5_fail(CREMA_ERR_PARSE, "%s: cannot read as HDF5", path);
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0)
        return h5_fail(CREMA_ERR_PARSE, "%s: damaged HDF5 file", path);
    return CREMA_OK;
}

struct values {
    int ndims;
    int64_t dims[H5S_MAX_AXES];
    size_t count;
    bool is_double;
    void *buf; /* float or double, count values; malloc'd */
};

/* Reads dataset `name` under loc ("where" names loc in messages): its shape
 * and its values, converted to float unless the file holds doubles. */
static int read_values(const char *path, const char *where, hid_t loc, const char *name,
                       struct values *v)
{
    memset(v, 0, sizeof *v);
    int rc = CREMA_OK;
    hid_t ds = -1, sp = -1, ty = -1;
    ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s/%s: cannot open", path, where, name);
        goto out;
    }
    sp = H5Dget_space(ds);
    ty = H5Dget_type(ds);
    if (sp < 0 || ty < 0) {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s/%s: cannot read its header", path, where, name);
        goto out;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(sp);
    if (sc == H5S_SCALAR) {
        v->ndims = 0;
    } else if (sc == H5S_SIMPLE) {
        int nd = H5Sget_simple_extent_ndims(sp);
        if (nd < 0 || nd > H5S_MAX_AXES) {
            rc = h5_fail(CREMA_ERR_SHAPE, "%s: dataset %s/%s: %d axes (at most %d allowed)", path, where,
                         name, nd, H5S_MAX_AXES);
            goto out;
        }
        hsize_t dims[H5S_MAX_AXES];
        if (H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
            rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s/%s: cannot read its shape", path, where, name);
            goto out;
        }
        v->ndims = nd;
        for (int i = 0; i < nd; i++)
            v->dims[i] = (int64_t)dims[i];
    } else {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s/%s: has no data space", path, where, name);
        goto out;
    }
    size_t count = 1;
    for (int i = 0; i < v->ndims; i++) {
        if (v->dims[i] > INT32_MAX ||
            (v->dims[i] > 0 && count > (size_t)INT32_MAX / (size_t)v->dims[i])) {
            rc = err_set(CREMA_ERR_SHAPE, "%s: dataset %s/%s: more than %d elements", path, where, name,
                         INT32_MAX);
            goto out;
        }
        count *= (size_t)v->dims[i];
    }
    H5T_class_t tc = H5Tget_class(ty);
    if (tc != H5T_FLOAT && tc != H5T_INTEGER) {
        rc = err_set(CREMA_ERR_PARSE, "%s: dataset %s/%s: holds %s values, not numbers", path, where, name,
                     tc == H5T_STRING ? "string" : tc == H5T_COMPOUND ? "compound" : "non-numeric");
        goto out;
    }
    v->is_double = tc == H5T_FLOAT && H5Tget_size(ty) > sizeof(float);
    size_t elem = v->is_double ? sizeof(double) : sizeof(float);
    if (count > IO_MAX_MESSAGE / elem) {
        rc = err_set(CREMA_ERR_NOMEM, "%s: dataset %s/%s: %zu values is more than crema reads", path, where,
                     name, count);
        goto out;
    }
    v->count = count;
    v->buf = malloc(count ? count * elem : 1);
    if (!v->buf) {
        rc = err_set(CREMA_ERR_NOMEM, "%s: dataset %s/%s: cannot allocate %zu values", path, where, name,
                     count);
        goto out;
    }
    if (count &&
        H5Dread(ds, v->is_double ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                v->buf) < 0) {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s/%s: cannot read its values", path, where, name);
        goto out;
    }
out:
    if (rc) {
        free(v->buf);
        v->buf = NULL;
    }
    close_id(ty);
    close_id(sp);
    close_id(ds);
    return rc;
}

static int read_int(const char *path, hid_t loc, const char *name, int32_t *out)
{
    int rc = CREMA_OK;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT), sp = -1, ty = -1;
    if (ds < 0)
        return h5_fail(CREMA_ERR_PARSE, "%s: dataset %s: missing or unreadable", path, name);
    sp = H5Dget_space(ds);
    ty = H5Dget_type(ds);
    if (sp < 0 || ty < 0) {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s: cannot read its header", path, name);
    } else if (H5Tget_class(ty) != H5T_INTEGER && H5Tget_class(ty) != H5T_FLOAT) {
        rc = err_set(CREMA_ERR_PARSE, "%s: dataset %s: not a number", path, name);
    } else if (H5Sget_simple_extent_npoints(sp) != 1) {
        rc = err_set(CREMA_ERR_PARSE, "%s: dataset %s: holds %lld values, expected 1", path, name,
                     (long long)H5Sget_simple_extent_npoints(sp));
    } else {
        int v = 0;
        if (H5Dread(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0)
            rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s: cannot read its value", path, name);
        *out = v;
    }
    close_id(ty);
    close_id(sp);
    close_id(ds);
    return rc;
}

/* A string dataset, fixed-length (as Caffe writes) or variable-length (as
 * h5py does); *out is malloc'd. */
static int read_string(const char *path, hid_t loc, const char *name, char **out)
{
    *out = NULL;
    int rc = CREMA_OK;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT), sp = -1, ty = -1, mt = -1;
    if (ds < 0)
        return h5_fail(CREMA_ERR_PARSE, "%s: dataset %s: cannot open", path, name);
    sp = H5Dget_space(ds);
    ty = H5Dget_type(ds);
    if (sp < 0 || ty < 0) {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s: cannot read its header", path, name);
        goto out;
    }
    if (H5Tget_class(ty) != H5T_STRING) {
        rc = err_set(CREMA_ERR_PARSE, "%s: dataset %s: not a string", path, name);
        goto out;
    }
    if (H5Sget_simple_extent_npoints(sp) != 1) {
        rc = err_set(CREMA_ERR_PARSE, "%s: dataset %s: holds %lld strings, expected 1", path, name,
                     (long long)H5Sget_simple_extent_npoints(sp));
        goto out;
    }
    mt = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(ty) > 0) {
        char *s = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s) < 0) {
            rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s: cannot read the string", path, name);
            goto out;
        }
        *out = strdup(s ? s : "");
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, &s);
    } else {
        size_t n = H5Tget_size(ty);
        if (n == 0 || n > (1u << 20)) {
            rc = err_set(CREMA_ERR_PARSE, "%s: dataset %s: string of %zu bytes", path, name, n);
            goto out;
        }
        char *s = calloc(n + 1, 1);
        if (!s) {
            rc = err_set(CREMA_ERR_NOMEM, "%s: dataset %s: out of memory", path, name);
            goto out;
        }
        H5Tset_size(mt, n);
        if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) < 0) {
            free(s);
            rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset %s: cannot read the string", path, name);
            goto out;
        }
        *out = s;
    }
    if (!*out)
        rc = err_set(CREMA_ERR_NOMEM, "%s: dataset %s: out of memory", path, name);
out:
    close_id(mt);
    close_id(ty);
    close_id(sp);
    close_id(ds);
    return rc;
}

/* The names of a group's links, in creation order when the group tracks it,
 * else by name. names is malloc'd, each name too. */
static int list_links(const char *path, const char *where, hid_t g, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0)
        return h5_fail(CREMA_ERR_PARSE, "%s: group %s: cannot list its members", path, where);
    H5_index_t idx = H5_INDEX_NAME;
    hid_t cp = H5Gget_create_plist(g);
    unsigned flags = 0;
    if (cp >= 0 && H5Pget_link_creation_order(cp, &flags) >= 0 && (flags & H5P_CRT_ORDER_INDEXED))
        idx = H5_INDEX_CRT_ORDER;
    close_id(cp);
    if (info.nlinks == 0)
        return CREMA_OK;
    char **v = calloc(info.nlinks, sizeof *v);
    if (!v)
        return err_set(CREMA_ERR_NOMEM, "%s: group %s: out of memory", path, where);
    for (hsize_t i = 0; i < info.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(g, ".", idx, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        if (len >= 0)
            v[i] = malloc((size_t)len + 1);
        if (len < 0 || !v[i] ||
            H5Lget_name_by_idx(g, ".", idx, H5_ITER_INC, i, v[i], (size_t)len + 1, H5P_DEFAULT) < 0) {
            for (hsize_t j = 0; j <= i; j++)
                free(v[j]);
            free(v);
            return h5_fail(CREMA_ERR_PARSE, "%s: group %s: cannot read member %llu", path, where,
                           (unsigned long long)i);
        }
    }
    *names = v;
    *n = (size_t)info.nlinks;
    return CREMA_OK;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Dataset names inside a layer's group are blob indices: "0", "1", ... */
static int parse_index(const char *path, const char *where, const char *s, size_t *out)
{
    size_t v = 0;
    bool ok = s[0] != 0 && !(s[0] == '0' && s[1] != 0);
    for (const char *p = s; ok && *p; p++) {
        if (*p < '0' || *p > '9' || v > H5S_MAX_BLOBS)
            ok = false;
        else
            v = v * 10 + (size_t)(*p - '0');
    }
    if (!ok || v >= H5S_MAX_BLOBS)
        return err_set(CREMA_ERR_PARSE, "%s: %s/%s: expected datasets named by blob index (0, 1, ...)", path,
                       where, s);
    *out = v;
    return CREMA_OK;
}

static Caffe__BlobShape *new_shape(const struct values *v)
{
    Caffe__BlobShape *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    caffe__blob_shape__init(s);
    if (v->ndims) {
        s->dim = malloc((size_t)v->ndims * sizeof *s->dim);
        if (!s->dim) {
            free(s);
            return NULL;
        }
        memcpy(s->dim, v->dims, (size_t)v->ndims * sizeof *s->dim);
        s->n_dim = (size_t)v->ndims;
    }
    return s;
}

static bool same_shape(const Caffe__BlobShape *s, const struct values *v)
{
    if (s->n_dim != (size_t)v->ndims)
        return false;
    for (int i = 0; i < v->ndims; i++)
        if (s->dim[i] != v->dims[i])
            return false;
    return true;
}

/* Gives v's values to bp as data (diff false) or diff, setting the shape
 * from them if bp has none yet. */
static int attach_values(const char *path, const char *where, Caffe__BlobProto *bp, struct values *v,
                         bool diff)
{
    if (bp->shape && !same_shape(bp->shape, v))
        return err_set(CREMA_ERR_SHAPE, "%s: %s: diff and data shapes differ", path, where);
    if (!bp->shape) {
        bp->shape = new_shape(v);
        if (!bp->shape)
            return err_set(CREMA_ERR_NOMEM, "%s: %s: out of memory", path, where);
    }
    if (v->is_double) {
        double *d = v->buf;
        if (diff) {
            bp->double_diff = d;
            bp->n_double_diff = v->count;
        } else {
            bp->double_data = d;
            bp->n_double_data = v->count;
        }
    } else {
        float *f = v->buf;
        if (diff) {
            bp->diff = f;
            bp->n_diff = v->count;
        } else {
            bp->data = f;
            bp->n_data = v->count;
        }
    }
    v->buf = NULL;
    return CREMA_OK;
}

/* Reads the datasets of group `where` (data/<layer> or diff/<layer>) into
 * blobs[index]; the blob array grows as indices require. */
static int read_layer_blobs(const char *path, const char *where, hid_t g, Caffe__LayerParameter *lp, bool diff)
{
    char **names;
    size_t n;
    int rc = list_links(path, where, g, &names, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t idx = 0;
        rc = parse_index(path, where, names[i], &idx);
        if (rc)
            break;
        if (idx >= lp->n_blobs) {
            Caffe__BlobProto **nb = realloc(lp->blobs, (idx + 1) * sizeof *nb);
            if (!nb) {
                rc = err_set(CREMA_ERR_NOMEM, "%s: %s: out of memory", path, where);
                break;
            }
            lp->blobs = nb;
            for (size_t j = lp->n_blobs; j <= idx; j++) {
                nb[j] = malloc(sizeof **nb);
                if (!nb[j]) {
                    lp->n_blobs = j;
                    rc = err_set(CREMA_ERR_NOMEM, "%s: %s: out of memory", path, where);
                    break;
                }
                caffe__blob_proto__init(nb[j]);
            }
            if (rc)
                break;
            lp->n_blobs = idx + 1;
        }
        Caffe__BlobProto *bp = lp->blobs[idx];
        if (diff ? (bp->n_diff || bp->n_double_diff) : (bp->n_data || bp->n_double_data))
            continue; /* a second link to the same index cannot happen in HDF5 */
        struct values v;
        rc = read_values(path, where, g, names[i], &v);
        if (rc)
            break;
        char what[1024];
        snprintf(what, sizeof what, "dataset %s/%s", where, names[i]);
        rc = attach_values(path, what, bp, &v, diff);
        free(v.buf);
    }
    free_names(names, n);
    return rc;
}

int hdf5_read_net(const char *path, Caffe__NetParameter **out)
{
    *out = NULL;
    struct quiet q;
    quiet_begin(&q);
    hid_t f = -1, data = -1, diff = -1;
    char **names = NULL;
    size_t n = 0;
    Caffe__NetParameter *net = NULL;
    int rc = open_for_read(path, &f);
    if (rc)
        goto out;
    if (H5Lexists(f, "data", H5P_DEFAULT) <= 0) {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: no group \"data\": not a Caffe HDF5 model", path);
        goto out;
    }
    data = H5Gopen2(f, "data", H5P_DEFAULT);
    if (data < 0) {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: \"data\" is not a readable group", path);
        goto out;
    }
    if (H5Lexists(f, "diff", H5P_DEFAULT) > 0) {
        diff = H5Gopen2(f, "diff", H5P_DEFAULT);
        if (diff < 0) {
            rc = h5_fail(CREMA_ERR_PARSE, "%s: \"diff\" is not a readable group", path);
            goto out;
        }
    }
    rc = list_links(path, "data", data, &names, &n);
    if (rc)
        goto out;
    net = malloc(sizeof *net);
    if (!net) {
        rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    caffe__net_parameter__init(net);
    if (n && !(net->layer = calloc(n, sizeof *net->layer))) {
        rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        Caffe__LayerParameter *lp = malloc(sizeof *lp);
        if (!lp) {
            rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        caffe__layer_parameter__init(lp);
        net->layer[net->n_layer++] = lp;
        lp->name = strdup(names[i]);
        if (!lp->name) {
            rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        char where[1024];
        snprintf(where, sizeof where, "data/%s", names[i]);
        hid_t g = H5Gopen2(data, names[i], H5P_DEFAULT);
        if (g < 0) {
            rc = h5_fail(CREMA_ERR_PARSE, "%s: %s: not a readable group (layer %s)", path, where, names[i]);
            goto out;
        }
        rc = read_layer_blobs(path, where, g, lp, false);
        close_id(g);
        if (rc)
            goto out;
        if (diff >= 0 && H5Lexists(diff, names[i], H5P_DEFAULT) > 0) {
            snprintf(where, sizeof where, "diff/%s", names[i]);
            g = H5Gopen2(diff, names[i], H5P_DEFAULT);
            if (g < 0) {
                rc = h5_fail(CREMA_ERR_PARSE, "%s: %s: not a readable group (layer %s)", path, where,
                             names[i]);
                goto out;
            }
            rc = read_layer_blobs(path, where, g, lp, true);
            close_id(g);
            if (rc)
                goto out;
        }
    }
out:
    free_names(names, n);
    close_id(diff);
    close_id(data);
    close_id(f);
    quiet_end(&q);
    if (rc) {
        if (net)
            protobuf_c_message_free_unpacked(&net->base, NULL);
        return rc;
    }
    *out = net;
    return CREMA_OK;
}

int hdf5_read_solver_state(const char *path, Caffe__SolverState **out)
{
    *out = NULL;
    struct quiet q;
    quiet_begin(&q);
    hid_t f = -1, hist = -1;
    char **names = NULL;
    size_t n = 0;
    Caffe__SolverState *st = malloc(sizeof *st);
    int rc = CREMA_OK;
    if (!st) {
        rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    caffe__solver_state__init(st);
    rc = open_for_read(path, &f);
    if (rc)
        goto out;
    rc = read_int(path, f, "iter", &st->iter);
    if (rc)
        goto out;
    st->has_iter = 1;
    if (H5Lexists(f, "learned_net", H5P_DEFAULT) > 0) {
        rc = read_string(path, f, "learned_net", &st->learned_net);
        if (rc)
            goto out;
    }
    rc = read_int(path, f, "current_step", &st->current_step);
    if (rc)
        goto out;
    st->has_current_step = 1;
    if (H5Lexists(f, "history", H5P_DEFAULT) <= 0) {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: no group \"history\": not a Caffe HDF5 solver state", path);
        goto out;
    }
    hist = H5Gopen2(f, "history", H5P_DEFAULT);
    if (hist < 0) {
        rc = h5_fail(CREMA_ERR_PARSE, "%s: \"history\" is not a readable group", path);
        goto out;
    }
    rc = list_links(path, "history", hist, &names, &n);
    if (rc)
        goto out;
    if (n) {
        st->history = calloc(n, sizeof *st->history);
        if (!st->history) {
            rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
    }
    /* Caffe reads "0".."N-1" by name, N being the number of members. */
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "%zu", i);
        if (H5Lexists(hist, name, H5P_DEFAULT) <= 0) {
            rc = h5_fail(CREMA_ERR_PARSE, "%s: dataset history/%s: missing (the group has %zu members)", path,
                         name, n);
            goto out;
        }
        Caffe__BlobProto *bp = malloc(sizeof *bp);
        if (!bp) {
            rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        caffe__blob_proto__init(bp);
        st->history[st->n_history++] = bp;
        struct values v;
        rc = read_values(path, "history", hist, name, &v);
        if (rc)
            goto out;
        char what[64];
        snprintf(what, sizeof what, "dataset history/%s", name);
        rc = attach_values(path, what, bp, &v, false);
        free(v.buf);
        if (rc)
            goto out;
    }
out:
    free_names(names, n);
    close_id(hist);
    close_id(f);
    quiet_end(&q);
    if (rc) {
        if (st)
            protobuf_c_message_free_unpacked(&st->base, NULL);
        return rc;
    }
    *out = st;
    return CREMA_OK;
}

/* ---- writing ---- */

/* Files are built in memory (HDF5's core driver without a backing store)
 * and then written with io_write_atomic, so a crash never leaves half a
 * snapshot under the final name. */
static int mem_create(const char *path, hid_t *file)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 20, 0) < 0) {
        close_id(fapl);
        return h5_fail(CREMA_ERR_IO, "%s: cannot set up an in-memory HDF5 file", path);
    }
    *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    close_id(fapl);
    if (*file < 0)
        return h5_fail(CREMA_ERR_IO, "%s: cannot create an in-memory HDF5 file", path);
    return CREMA_OK;
}

static int mem_save(const char *path, hid_t file)
{
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        return h5_fail(CREMA_ERR_IO, "%s: cannot finish the HDF5 file", path);
    ssize_t size = H5Fget_file_image(file, NULL, 0);
    if (size <= 0)
        return h5_fail(CREMA_ERR_IO, "%s: cannot get the HDF5 file image", path);
    void *buf = malloc((size_t)size);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "%s: cannot allocate %zd bytes", path, size);
    if (H5Fget_file_image(file, buf, (size_t)size) != size) {
        free(buf);
        return h5_fail(CREMA_ERR_IO, "%s: cannot get the HDF5 file image", path);
    }
    int rc = io_write_atomic(path, buf, (size_t)size);
    free(buf);
    return rc;
}

/* With `ordered`, a group that remembers the order its members were made
 * in, so readers get the layers back in net order; Caffe, looking members up
 * by name, reads it as any other group. */
static hid_t make_group(hid_t loc, const char *name, bool ordered)
{
    hid_t gcpl = ordered ? H5Pcreate(H5P_GROUP_CREATE) : -1;
    if (gcpl >= 0)
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl >= 0 ? gcpl : H5P_DEFAULT, H5P_DEFAULT);
    close_id(gcpl);
    return g;
}

/* One dataset of float or double values with the given shape (a 0-axis
 * shape is HDF5's scalar space). */
static int write_values(const char *path, const char *where, hid_t loc, const char *name, int ndims,
                        const int *shape, size_t count, const void *vals, bool is_double)
{
    hsize_t dims[H5S_MAX_AXES];
    for (int i = 0; i < ndims; i++)
        dims[i] = (hsize_t)shape[i];
    hid_t sp = ndims ? H5Screate_simple(ndims, dims, NULL) : H5Screate(H5S_SCALAR);
    if (sp < 0)
        return h5_fail(CREMA_ERR_IO, "%s: dataset %s/%s: cannot make its shape", path, where, name);
    hid_t mt = is_double ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    hid_t ds = H5Dcreate2(loc, name, mt, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = CREMA_OK;
    if (ds < 0)
        rc = h5_fail(CREMA_ERR_IO, "%s: dataset %s/%s: cannot create", path, where, name);
    else if (count && H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals) < 0)
        rc = h5_fail(CREMA_ERR_IO, "%s: dataset %s/%s: cannot write", path, where, name);
    close_id(ds);
    close_id(sp);
    return rc;
}

static bool blob_is_empty(const Caffe__BlobProto *bp)
{
    return !bp->shape && !bp->has_num && !bp->has_channels && !bp->has_height && !bp->has_width &&
           bp->n_data == 0 && bp->n_double_data == 0;
}

/* Writes a blob's data (diff false) or diff as dataset `name` under loc. */
static int write_blob(const char *path, const char *where, hid_t loc, const char *name,
                      const Caffe__BlobProto *bp, bool diff)
{
    int na = 0, shape[TENSOR_MAX_AXES];
    int rc = blob_proto_shape(bp, &na, shape);
    if (rc)
        return err_prefix(rc, "%s: %s/%s", path, where, name);
    size_t count = 1;
    for (int i = 0; i < na; i++)
        count *= (size_t)shape[i];
    const void *vals;
    bool is_double;
    void *zeros = NULL;
    if (!diff) {
        is_double = bp->n_data == 0 && bp->n_double_data > 0;
        size_t have = is_double ? bp->n_double_data : bp->n_data;
        vals = is_double ? (const void *)bp->double_data : (const void *)bp->data;
        if (have != count)
            return err_set(CREMA_ERR_SHAPE, "%s: %s/%s: blob's shape has %zu elements but it holds %zu values",
                           path, where, name, count, have);
    } else {
        is_double = bp->n_diff == 0 && bp->n_double_diff > 0;
        size_t have = is_double ? bp->n_double_diff : bp->n_diff;
        vals = is_double ? (const void *)bp->double_diff : (const void *)bp->diff;
        if (have == 0) {
            zeros = calloc(count ? count : 1, sizeof(float));
            if (!zeros)
                return err_set(CREMA_ERR_NOMEM, "%s: %s/%s: out of memory", path, where, name);
            vals = zeros;
        } else if (have != count) {
            return err_set(CREMA_ERR_SHAPE, "%s: %s/%s: blob's shape has %zu elements but its diff holds %zu",
                           path, where, name, count, have);
        }
    }
    rc = write_values(path, where, loc, name, na, shape, count, vals, is_double);
    free(zeros);
    return rc;
}

static int write_layer(const char *path, hid_t data, hid_t diff, const char *lname, size_t n_blobs,
                       Caffe__BlobProto *const *blobs)
{
    char where[1024];
    snprintf(where, sizeof where, "data/%s", lname);
    hid_t gd = make_group(data, lname, false), gg = -1;
    if (gd < 0)
        return h5_fail(CREMA_ERR_INVALID, "%s: layer %s: cannot create group %s (duplicate layer name?)", path,
                       lname, where);
    int rc = CREMA_OK;
    if (diff >= 0) {
        gg = make_group(diff, lname, false);
        if (gg < 0)
            rc = h5_fail(CREMA_ERR_INVALID, "%s: layer %s: cannot create group diff/%s", path, lname, lname);
    }
    for (size_t j = 0; j < n_blobs && !rc; j++) {
        if (blob_is_empty(blobs[j]))
            continue;
        char name[32];
        snprintf(name, sizeof name, "%zu", j);
        rc = write_blob(path, where, gd, name, blobs[j], false);
        if (!rc && gg >= 0) {
            char dwhere[1024];
            snprintf(dwhere, sizeof dwhere, "diff/%s", lname);
            rc = write_blob(path, dwhere, gg, name, blobs[j], true);
        }
    }
    close_id(gg);
    close_id(gd);
    return rc;
}

int hdf5_write_net(const char *path, const Caffe__NetParameter *net, bool write_diff)
{
    struct quiet q;
    quiet_begin(&q);
    hid_t f = -1, data = -1, diff = -1;
    int rc = mem_create(path, &f);
    if (rc)
        goto out;
    data = make_group(f, "data", true);
    if (data < 0) {
        rc = h5_fail(CREMA_ERR_IO, "%s: cannot create group data", path);
        goto out;
    }
    if (write_diff) {
        diff = make_group(f, "diff", true);
        if (diff < 0) {
            rc = h5_fail(CREMA_ERR_IO, "%s: cannot create group diff", path);
            goto out;
        }
    }
    for (size_t i = 0; i < net->n_layer && !rc; i++) {
        const Caffe__LayerParameter *lp = net->layer[i];
        if (!lp->name || !lp->name[0]) {
            rc = err_set(CREMA_ERR_INVALID, "%s: layer %zu has no name", path, i);
            break;
        }
        rc = write_layer(path, data, diff, lp->name, lp->n_blobs, lp->blobs);
    }
    for (size_t i = 0; i < net->n_layers && !rc; i++) {
        const Caffe__V1LayerParameter *lp = net->layers[i];
        if (!lp->name || !lp->name[0]) {
            rc = err_set(CREMA_ERR_INVALID, "%s: layers %zu has no name", path, i);
            break;
        }
        rc = write_layer(path, data, diff, lp->name, lp->n_blobs, lp->blobs);
    }
    close_id(diff);
    diff = -1;
    close_id(data);
    data = -1;
    if (!rc)
        rc = mem_save(path, f);
out:
    close_id(diff);
    close_id(data);
    close_id(f);
    quiet_end(&q);
    return rc;
}

static int write_int(const char *path, hid_t loc, const char *name, int v)
{
    hsize_t one = 1;
    hid_t sp = H5Screate_simple(1, &one, NULL);
    hid_t ds = sp < 0 ? -1 : H5Dcreate2(loc, name, H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = CREMA_OK;
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0)
        rc = h5_fail(CREMA_ERR_IO, "%s: dataset %s: cannot write", path, name);
    close_id(ds);
    close_id(sp);
    return rc;
}

/* A fixed-length, NUL-terminated ASCII string in a scalar space, as
 * Caffe's hdf5_save_string makes it. */
static int write_string(const char *path, hid_t loc, const char *name, const char *s)
{
    hid_t ty = H5Tcopy(H5T_C_S1);
    int rc = CREMA_OK;
    hid_t sp = -1, ds = -1;
    if (ty < 0 || H5Tset_size(ty, strlen(s) + 1) < 0 || H5Tset_strpad(ty, H5T_STR_NULLTERM) < 0) {
        rc = h5_fail(CREMA_ERR_IO, "%s: dataset %s: cannot make its type", path, name);
        goto out;
    }
    sp = H5Screate(H5S_SCALAR);
    ds = sp < 0 ? -1 : H5Dcreate2(loc, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) < 0)
        rc = h5_fail(CREMA_ERR_IO, "%s: dataset %s: cannot write", path, name);
out:
    close_id(ds);
    close_id(sp);
    close_id(ty);
    return rc;
}

int hdf5_write_solver_state(const char *path, const Caffe__SolverState *st)
{
    struct quiet q;
    quiet_begin(&q);
    hid_t f = -1, hist = -1;
    int rc = mem_create(path, &f);
    if (rc)
        goto out;
    rc = write_int(path, f, "iter", st->iter);
    if (!rc && st->learned_net)
        rc = write_string(path, f, "learned_net", st->learned_net);
    if (!rc)
        rc = write_int(path, f, "current_step", st->current_step);
    if (rc)
        goto out;
    hist = make_group(f, "history", false);
    if (hist < 0) {
        rc = h5_fail(CREMA_ERR_IO, "%s: cannot create group history", path);
        goto out;
    }
    for (size_t i = 0; i < st->n_history && !rc; i++) {
        char name[32];
        snprintf(name, sizeof name, "%zu", i);
        rc = write_blob(path, "history", hist, name, st->history[i], false);
    }
    close_id(hist);
    hist = -1;
    if (!rc)
        rc = mem_save(path, f);
out:
    close_id(hist);
    close_id(f);
    quiet_end(&q);
    return rc;
}
