/* Snapshots in Caffe's binary and HDF5 formats (each file written to a
 * temporary name and renamed), restore, and the data layers' positions. */
#include "solvers/solver_internal.h"
#include "dist/dist.h"
#include "layers/data_source.h"
#include "core/blob_proto.h"
#include "proto/hdf5_snapshot.h"
#include "proto/proto_io.h"
#include "proto/upgrade.h"
#include "util/err.h"
#include "util/io.h"

#include <hdf5.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *solver_snapshot_name(const struct solver *s, const char *extension)
{
    const char *prefix = s->param->snapshot_prefix ? s->param->snapshot_prefix : "";
    size_t n = strlen(prefix) + strlen(extension) + 32;
    char *name = malloc(n);
    if (!name) {
        err_set(CREMA_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(name, n, "%s_iter_%d%s", prefix, s->update.iter, extension);
    return name;
}

void free_positions(Caffe__CremaDataPosition **pos, size_t n)
{
    for (size_t i = 0; i < n; i++)
        caffe__crema_data_position__free_unpacked(pos[i], NULL);
    free(pos);
}

/* Every data layer's position, train net first (net 0), then test nets. */
int collect_positions(struct solver *s, Caffe__CremaDataPosition ***out, size_t *n_out)
{
    size_t n = 0, cap = 0;
    Caffe__CremaDataPosition **pos = NULL;
    int rc = CREMA_OK;
    for (int k = 0; !rc && k <= s->n_test_nets; k++) {
        struct net *net = k == 0 ? s->net : s->test_nets[k - 1];
        for (int i = 0; !rc && i < net->n_layers; i++) {
            struct layer *l = net->layers[i].layer;
            if (!data_source_has_position(l))
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 4;
                Caffe__CremaDataPosition **np = realloc(pos, cap * sizeof *np);
                if (!np) {
                    rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                    break;
                }
                pos = np;
            }
            Caffe__CremaDataPosition *m = malloc(sizeof *m);
            if (!m) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                break;
            }
            caffe__crema_data_position__init(m);
            pos[n++] = m;
            m->layer = dup_str(l->name);
            m->has_net = true;
            m->net = k;
            if (!m->layer)
                rc = CREMA_ERR_NOMEM;
            else if ((rc = data_source_get_position(l, m)))
                err_prefix(rc, "layer %s: reading position", l->name);
        }
    }
    if (rc) {
        free_positions(pos, n);
        return rc;
    }
    *out = pos;
    *n_out = n;
    return CREMA_OK;
}

int apply_positions(struct solver *s, Caffe__CremaDataPosition **pos, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const Caffe__CremaDataPosition *m = pos[i];
        if (!m->layer || m->net < 0 || m->net > s->n_test_nets)
            continue; /* a net or layer this solver does not have: as Caffe ignores unknown layers */
        struct net *net = m->net == 0 ? s->net : s->test_nets[m->net - 1];
        struct layer *l = net_layer_by_name(net, m->layer);
        if (!l || !data_source_has_position(l))
            continue;
        int rc = data_source_set_position(l, m);
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

/* Caffe's HDF5 files leave out weights a layer shares with an earlier one. */
static void drop_shared_blobs(struct net *net, Caffe__NetParameter *np)
{
    for (int p = 0; p < net->n_params; p++) {
        if (net->param_owner[p] < 0)
            continue;
        Caffe__BlobProto *bp = np->layer[net->param_layer[p]]->blobs[net->param_layer_index[p]];
        caffe__blob_proto__free_unpacked(bp, NULL);
        bp = malloc(sizeof *bp);
        if (bp)
            caffe__blob_proto__init(bp);
        np->layer[net->param_layer[p]]->blobs[net->param_layer_index[p]] = bp;
    }
}

static int write_model(struct solver *s, bool h5, char **model_name)
{
    char *name = solver_snapshot_name(s, h5 ? ".caffemodel.h5" : ".caffemodel");
    if (!name)
        return CREMA_ERR_NOMEM;
    LOG(s, "Snapshotting to %s file %s\n", h5 ? "HDF5" : "binary proto", name);
    Caffe__NetParameter *np = NULL;
    int rc = net_to_proto(s->net, s->param->snapshot_diff, &np);
    if (!rc && h5) {
        drop_shared_blobs(s->net, np);
        for (size_t i = 0; i < np->n_layer && !rc; i++)
            for (size_t j = 0; j < np->layer[i]->n_blobs; j++)
                if (!np->layer[i]->blobs[j])
                    rc = err_set(CREMA_ERR_NOMEM, "out of memory");
        if (!rc)
            rc = hdf5_write_net(name, np, s->param->snapshot_diff);
    } else if (!rc) {
        rc = proto_write_binary(name, &np->base);
    }
    if (np)
        caffe__net_parameter__free_unpacked(np, NULL);
    if (rc) {
        free(name);
        return err_prefix(rc, "snapshot %s", name ? "model" : "");
    }
    *model_name = name;
    return CREMA_OK;
}

/* The positions as a uint8 dataset (a serialized SolverState carrying only
 * them) in an HDF5 state written at tmp; Caffe reads past unknown datasets. */
static int h5_add_positions(const char *tmp, Caffe__CremaDataPosition **pos, size_t n)
{
    Caffe__SolverState only = CAFFE__SOLVER_STATE__INIT;
    only.n_crema_data_position = n;
    only.crema_data_position = pos;
    size_t len = caffe__solver_state__get_packed_size(&only);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    caffe__solver_state__pack(&only, buf);
    int rc = CREMA_OK;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t dims[1] = { len };
    hid_t space = f < 0 ? -1 : H5Screate_simple(1, dims, NULL);
    hid_t ds = space < 0 ? -1 : H5Dcreate2(f, "crema_data_position", H5T_STD_U8LE, space, H5P_DEFAULT,
                                           H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0 || (len && H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0))
        rc = err_set(CREMA_ERR_IO, "%s: cannot write dataset \"crema_data_position\"", tmp);
    if (ds >= 0)
        H5Dclose(ds);
    if (space >= 0)
        H5Sclose(space);
    if (f >= 0 && H5Fclose(f) < 0 && !rc)
        rc = err_set(CREMA_ERR_IO, "%s: cannot close", tmp);
    free(buf);
    if (!rc) {
        int fd = open(tmp, O_RDONLY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    return rc;
}

static int h5_read_positions(const char *path, Caffe__SolverState **out)
{
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return err_set(CREMA_ERR_IO, "%s: cannot open as HDF5", path);
    int rc = CREMA_OK;
    if (H5Lexists(f, "crema_data_position", H5P_DEFAULT) > 0) {
        hid_t ds = H5Dopen2(f, "crema_data_position", H5P_DEFAULT);
        hid_t space = ds < 0 ? -1 : H5Dget_space(ds);
        hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
        uint8_t *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (!buf || (n > 0 && H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0))
            rc = err_set(CREMA_ERR_IO, "%s: cannot read dataset \"crema_data_position\"", path);
        else
            rc = proto_parse_binary(&caffe__solver_state__descriptor, buf, (size_t)n, path, (ProtobufCMessage **)out);
        free(buf);
        if (space >= 0)
            H5Sclose(space);
        if (ds >= 0)
            H5Dclose(ds);
    }
    H5Fclose(f);
    return rc;
}

static int write_state(struct solver *s, bool h5, const char *model_name)
{
    Caffe__SolverState st = CAFFE__SOLVER_STATE__INIT;
    st.has_iter = st.has_current_step = true;
    st.iter = s->update.iter;
    st.current_step = s->update.current_step;
    st.learned_net = (char *)model_name;
    Caffe__BlobProto *blobs = calloc((size_t)s->update.n_history + 1, sizeof *blobs);
    Caffe__BlobProto **hist = calloc((size_t)s->update.n_history + 1, sizeof *hist);
    char *name = solver_snapshot_name(s, h5 ? ".solverstate.h5" : ".solverstate");
    Caffe__CremaDataPosition **pos = NULL;
    size_t n_pos = 0;
    int rc = (!blobs || !hist || !name) ? err_set(CREMA_ERR_NOMEM, "out of memory") : CREMA_OK;
    for (int i = 0; !rc && i < s->update.n_history; i++) {
        caffe__blob_proto__init(&blobs[i]);
        hist[i] = &blobs[i];
        st.n_history = (size_t)i + 1;
        rc = tensor_to_proto(s->update.history[i], &blobs[i], false);
    }
    st.history = hist;
    if (!rc)
        rc = collect_positions(s, &pos, &n_pos);
    if (!rc) {
        LOG(s, "Snapshotting solver state to %s file %s\n", h5 ? "HDF5" : "binary proto", name);
        if (h5) {
            /* HDF5 writes by name: a temporary next to the target (a
             * symbolic link followed), renamed over it, as io_write_atomic. */
            char *target = NULL, *tmp = NULL;
            struct stat ts;
            bool exists;
            rc = io_resolve_output(name, &target, &ts, &exists);
            if (!rc && exists && !S_ISREG(ts.st_mode))
                rc = err_set(CREMA_ERR_IO, "%s: is %s; an HDF5 solver state needs a regular file", name,
                             io_file_kind(ts.st_mode));
            if (!rc) {
                io_remove_stale_temps(target, IO_TEMP_TAG);
                if (!(tmp = io_temp_name(target)))
                    rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            }
            if (!rc) {
                rc = hdf5_write_solver_state(tmp, &st);
                if (!rc)
                    rc = h5_add_positions(tmp, pos, n_pos);
                if (!rc && rename(tmp, target) != 0)
                    rc = err_set(CREMA_ERR_IO, "%s: cannot rename into place", name);
                if (rc)
                    unlink(tmp);
            }
            free(tmp);
            free(target);
        } else {
            st.n_crema_data_position = n_pos;
            st.crema_data_position = pos;
            rc = proto_write_binary(name, &st.base);
        }
    }
    for (size_t i = 0; i < st.n_history; i++)
        blob_proto_clear(&blobs[i]);
    free(blobs);
    free(hist);
    free_positions(pos, n_pos);
    if (rc)
        err_prefix(rc, "snapshot %s", name ? name : "");
    free(name);
    return rc;
}

int solver_snapshot(struct solver *s)
{
    if (s->dist && s->dist->rank != 0)
        return CREMA_OK; /* every rank holds the same weights; rank 0 writes them */
    bool h5 = s->param->snapshot_format == CAFFE__SOLVER_PARAMETER__SNAPSHOT_FORMAT__HDF5;
    char *model = NULL;
    int rc = write_model(s, h5, &model);
    if (!rc)
        rc = write_state(s, h5, model);
    free(model);
    return rc;
}

int solver_restore(struct solver *s, const char *state_file)
{
    bool h5 = hdf5_is_snapshot_name(state_file);
    Caffe__SolverState *st = NULL, *extra = NULL;
    int rc = h5 ? hdf5_read_solver_state(state_file, &st)
                : proto_read_binary(state_file, &caffe__solver_state__descriptor, (ProtobufCMessage **)&st);
    if (!rc && h5)
        rc = h5_read_positions(state_file, &extra);
    if (rc)
        goto done;
    if (st->learned_net && *st->learned_net && (rc = net_load_weights(s->net, st->learned_net)))
        goto done;
    if ((int)st->n_history != s->update.n_history) {
        rc = err_set(CREMA_ERR_INVALID, "%s: %zu history blobs, the %s solver over this net has %d", state_file,
                     st->n_history, solver_kind_name(s->update.kind), s->update.n_history);
        goto done;
    }
    LOG(s, "SGDSolver: restoring history\n");
    for (int i = 0; i < s->update.n_history; i++) {
        struct tensor *h = s->update.history[i];
        if ((rc = tensor_from_proto(h, st->history[i], true)))
            goto done;
        if (h->count != s->params[i % s->update.n_params]->count) {
            rc = err_set(CREMA_ERR_SHAPE, "%s: history blob %d has %zu values, its parameter %zu", state_file, i,
                         h->count, s->params[i % s->update.n_params]->count);
            goto done;
        }
    }
    s->update.iter = st->iter;
    s->update.current_step = st->current_step;
    rc = apply_positions(s, st->crema_data_position, st->n_crema_data_position);
    if (!rc && extra)
        rc = apply_positions(s, extra->crema_data_position, extra->n_crema_data_position);
done:
    if (rc)
        err_prefix(rc, "restoring %s", state_file);
    if (st)
        proto_free(&st->base);
    if (extra)
        proto_free(&extra->base);
    return rc;
}
