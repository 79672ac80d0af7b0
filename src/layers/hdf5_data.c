/* HDF5Data (batches of rows from the .h5 files a list file names, one
 * dataset per top) and HDF5Output (writes its bottoms as datasets "data"
 * and "label"), over libhdf5 with its error printing turned off. */
#include "layers/data_source.h"
#include "util/io.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void h5_quiet(void)
{
    /* HDF5 prints a stack of errors to stderr by default; crema reports
     * through its own messages. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

struct h5_dataset {
    float *data;
    int num_axes, shape[TENSOR_MAX_AXES];
    size_t row; /* values per row */
};

/* Reads one dataset as floats (integer datasets are converted, as Caffe). */
static int h5_load(hid_t file, const char *path, const char *name, struct h5_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return err_set(CREMA_ERR_NOTFOUND, "%s: no dataset \"%s\" (datasets are named after the tops)", path, name);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0)
        return err_set(CREMA_ERR_IO, "%s: cannot open dataset \"%s\"", path, name);
    int rc = CREMA_OK;
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    H5T_class_t cls = H5Tget_class(type);
    int nd = H5Sget_simple_extent_ndims(space);
    hsize_t dims[TENSOR_MAX_AXES];
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        rc = err_set(CREMA_ERR_INVALID, "%s: dataset \"%s\" is neither float nor integer", path, name);
    } else if (nd < 1 || nd > TENSOR_MAX_AXES) {
        rc = err_set(CREMA_ERR_SHAPE, "%s: dataset \"%s\" has %d axes", path, name, nd);
    } else {
        H5Sget_simple_extent_dims(space, dims, NULL);
        size_t count = 1;
        out->num_axes = nd;
        for (int i = 0; i < nd; i++) {
            if (dims[i] > (hsize_t)1 << 30 || (count *= (size_t)dims[i]) > ((size_t)1 << 32)) {
                rc = err_set(CREMA_ERR_SHAPE, "%s: dataset \"%s\" is too large", path, name);
                break;
            }
            out->shape[i] = (int)dims[i];
        }
        if (!rc && dims[0] == 0)
            rc = err_set(CREMA_ERR_SHAPE, "%s: dataset \"%s\" has no rows", path, name);
        if (!rc) {
            out->row = count / dims[0];
            out->data = malloc(count * sizeof(float));
            if (!out->data)
                rc = err_set(CREMA_ERR_NOMEM, "out of memory for dataset \"%s\" of %s", name, path);
            else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data) < 0)
                rc = err_set(CREMA_ERR_IO, "%s: cannot read dataset \"%s\"", path, name);
        }
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(ds);
    if (rc) {
        free(out->data);
        out->data = NULL;
    }
    return rc;
}

/* src.at.record is the row the next forward starts at (cur_row), src.at.rng
 * shuffles files and rows. */
struct hdf5_data_priv {
    struct data_source src;
    char **files;
    int n_files, cur_file;
    int *file_perm;
    struct h5_dataset *sets; /* one per top */
    size_t rows;
    size_t *row_perm;
    bool shuffle;
};
_Static_assert(offsetof(struct hdf5_data_priv, src) == 0, "a data layer's state begins with its data_source");

static void shuffle_ints(struct rng *r, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint32_t)(i + 1)), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static void shuffle_sizes(struct rng *r, size_t *a, size_t n)
{
    for (size_t i = n; i-- > 1;) {
        size_t j = rng_below(r, (uint32_t)(i + 1)), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static void free_sets(struct layer *l, struct hdf5_data_priv *p)
{
    for (int i = 0; p->sets && i < l->n_top; i++) {
        free(p->sets[i].data);
        p->sets[i].data = NULL;
    }
}

static int load_file(struct layer *l, struct hdf5_data_priv *p, int index)
{
    const char *path = p->files[index];
    free_sets(l, p);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return err_set(CREMA_ERR_IO, "%s: cannot open as HDF5", path);
    int rc = CREMA_OK;
    for (int i = 0; !rc && i < l->n_top; i++) {
        const char *name = i < (int)l->param->n_top ? l->param->top[i] : NULL;
        if (!name) {
            rc = err_set(CREMA_ERR_INVALID, "top %d has no name (datasets are named after the tops)", i);
            break;
        }
        rc = h5_load(f, path, name, &p->sets[i]);
        if (!rc && i > 0 && p->sets[i].shape[0] != p->sets[0].shape[0])
            rc = err_set(CREMA_ERR_SHAPE, "%s: dataset \"%s\" has %d rows but \"%s\" has %d", path, name,
                         p->sets[i].shape[0], l->param->top[0], p->sets[0].shape[0]);
    }
    H5Fclose(f);
    if (rc)
        return rc;
    size_t rows = (size_t)p->sets[0].shape[0];
    if (rows != p->rows) {
        size_t *perm = realloc(p->row_perm, rows * sizeof *perm);
        if (!perm)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        p->row_perm = perm;
        p->rows = rows;
    }
    for (size_t i = 0; i < rows; i++)
        p->row_perm[i] = i;
    if (p->shuffle)
        shuffle_sizes(&p->src.at.rng, p->row_perm, rows);
    return CREMA_OK;
}

static int read_list(const char *list, struct hdf5_data_priv *p)
{
    FILE *f = fopen(list, "r");
    if (!f)
        return err_set(CREMA_ERR_IO, "hdf5_data_param.source %s: cannot open", list);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = CREMA_OK, cap_files = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        if (!*s)
            continue;
        if (p->n_files == cap_files) {
            cap_files = cap_files ? cap_files * 2 : 8;
            char **nf = realloc(p->files, (size_t)cap_files * sizeof *nf);
            if (!nf) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                break;
            }
            p->files = nf;
        }
        if (!(p->files[p->n_files] = strdup(s))) {
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            break;
        }
        p->n_files++;
    }
    free(line);
    fclose(f);
    if (!rc && p->n_files == 0)
        rc = err_set(CREMA_ERR_INVALID, "hdf5_data_param.source %s lists no files", list);
    return rc;
}

static int reshape_tops(struct layer *l, struct hdf5_data_priv *p, struct tensor **top)
{
    for (int i = 0; i < l->n_top; i++) {
        int shape[TENSOR_MAX_AXES];
        memcpy(shape, p->sets[i].shape, sizeof shape);
        shape[0] = p->src.batch_size;
        int rc = tensor_reshape(top[i], p->sets[i].num_axes, shape);
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

static int hdf5_data_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    static const Caffe__HDF5DataParameter def = CAFFE__HDF5_DATA_PARAMETER__INIT;
    const Caffe__HDF5DataParameter *hp = l->param->hdf5_data_param ? l->param->hdf5_data_param : &def;
    h5_quiet();
    struct hdf5_data_priv *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = p;
    if (!hp->source || !*hp->source)
        return err_set(CREMA_ERR_INVALID, "hdf5_data_param.source is empty");
    int rc = data_source_init(&p->src, "hdf5_data_param.batch_size", hp->batch_size, DATA_SAVES_RNG);
    if (rc)
        return rc;
    p->shuffle = hp->shuffle;
    data_source_seed(&p->src, l);
    p->sets = calloc((size_t)l->n_top, sizeof *p->sets);
    if (!p->sets)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    rc = read_list(io_strip_file_uri(hp->source), p);
    if (rc)
        return rc;
    p->file_perm = malloc((size_t)p->n_files * sizeof(int));
    if (!p->file_perm)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < p->n_files; i++)
        p->file_perm[i] = i;
    if (p->shuffle)
        shuffle_ints(&p->src.at.rng, p->file_perm, p->n_files);
    rc = load_file(l, p, p->file_perm[0]);
    if (rc)
        return err_prefix(rc, "hdf5_data_param.source %s", hp->source);
    return reshape_tops(l, p, top);
}

static int hdf5_data_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    return reshape_tops(l, l->priv, top);
}

/* After the last row of a file comes the next file (re-shuffled order when
 * the list starts over), as Caffe's HDF5DataLayer::Next. */
static int next_row(struct layer *l, struct hdf5_data_priv *p)
{
    if (++p->src.at.record < p->rows)
        return CREMA_OK;
    if (p->n_files > 1) {
        if (++p->cur_file == p->n_files) {
            p->cur_file = 0;
            if (p->shuffle)
                shuffle_ints(&p->src.at.rng, p->file_perm, p->n_files);
        }
        int rc = load_file(l, p, p->file_perm[p->cur_file]);
        if (rc)
            return rc;
    } else if (p->shuffle) {
        shuffle_sizes(&p->src.at.rng, p->row_perm, p->rows);
    }
    p->src.at.record = 0;
    return CREMA_OK;
}

static int hdf5_data_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    struct hdf5_data_priv *p = l->priv;
    for (int i = 0; i < p->src.batch_size; i++) {
        for (int j = 0; j < l->n_top; j++) {
            const struct h5_dataset *s = &p->sets[j];
            size_t per_item = top[j]->count / (size_t)p->src.batch_size;
            if (s->row != per_item)
                return err_set(CREMA_ERR_SHAPE, "%s: dataset \"%s\" rows have %zu values, the top expects %zu",
                               p->files[p->file_perm[p->cur_file]], l->param->top[j], s->row, per_item);
            float *d = tensor_data(top[j]);
            if (!d)
                return CREMA_ERR_NOMEM;
            memcpy(d + (size_t)i * per_item, s->data + p->row_perm[p->src.at.record] * s->row,
                   per_item * sizeof(float));
        }
        int rc = next_row(l, p);
        if (rc)
            return rc;
    }
    return CREMA_OK;
}

/* The row the next forward starts at, the file order and, with shuffle, the
 * row order and generator that later shuffles continue from. */
static int hdf5_data_get_position(struct layer *l, Caffe__CremaDataPosition *pos)
{
    struct hdf5_data_priv *p = l->priv;
    int rc = data_source_cursor_position(l, pos);
    if (rc)
        return rc;
    pos->has_file = true;
    pos->file = p->cur_file;
    pos->file_order = malloc((size_t)p->n_files * sizeof *pos->file_order);
    if (!pos->file_order)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    pos->n_file_order = (size_t)p->n_files;
    for (int i = 0; i < p->n_files; i++)
        pos->file_order[i] = (uint32_t)p->file_perm[i];
    if (p->shuffle) {
        pos->row_order = malloc((p->rows ? p->rows : 1) * sizeof *pos->row_order);
        if (!pos->row_order)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        pos->n_row_order = p->rows;
        for (size_t i = 0; i < p->rows; i++)
            pos->row_order[i] = p->row_perm[i];
    }
    return CREMA_OK;
}

static int hdf5_data_set_position(struct layer *l, const Caffe__CremaDataPosition *pos)
{
    struct hdf5_data_priv *p = l->priv;
    struct data_cursor at;
    int rc = data_source_read_position(l, &p->src, pos, &at);
    if (rc)
        return rc;
    if (pos->n_file_order && pos->n_file_order != (size_t)p->n_files)
        return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position names %zu files, the list has %d",
                       l->name, pos->n_file_order, p->n_files);
    if (pos->file < 0 || pos->file >= p->n_files)
        return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.file %d is not in 0..%d", l->name,
                       pos->file, p->n_files - 1);
    for (size_t i = 0; i < pos->n_file_order; i++)
        if (pos->file_order[i] >= (uint32_t)p->n_files)
            return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.file_order[%zu] = %u is not a file",
                           l->name, i, pos->file_order[i]);
    for (size_t i = 0; i < pos->n_file_order; i++)
        p->file_perm[i] = (int)pos->file_order[i];
    if (p->n_files > 1 || p->cur_file != pos->file)
        rc = load_file(l, p, p->file_perm[pos->file]);
    if (rc)
        return rc;
    p->cur_file = pos->file;
    if (pos->record >= p->rows)
        return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.record %llu is past the %zu rows of %s",
                       l->name, (unsigned long long)pos->record, p->rows, p->files[p->file_perm[p->cur_file]]);
    if (pos->n_row_order) {
        if (pos->n_row_order != p->rows)
            return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.row_order has %zu rows, the file %zu",
                           l->name, pos->n_row_order, p->rows);
        for (size_t i = 0; i < p->rows; i++) {
            if (pos->row_order[i] >= p->rows)
                return err_set(CREMA_ERR_INVALID, "layer %s: crema_data_position.row_order[%zu] is not a row",
                               l->name, i);
            p->row_perm[i] = (size_t)pos->row_order[i];
        }
    }
    p->src.at = at;
    return CREMA_OK;
}

static void hdf5_data_destroy(struct layer *l)
{
    struct hdf5_data_priv *p = l->priv;
    if (!p)
        return;
    free_sets(l, p);
    free(p->sets);
    for (int i = 0; i < p->n_files; i++)
        free(p->files[i]);
    free(p->files);
    free(p->file_perm);
    free(p->row_perm);
    free(p);
    l->priv = NULL;
}

/* Every rank reads all of the files: HDF5Data is not sharded. */
static const struct data_source_ops hdf5_data_source = {
    .get_position = hdf5_data_get_position,
    .set_position = hdf5_data_set_position,
};

const struct layer_kind hdf5_data_layer = {
    .type = "HDF5Data",
    .min_bottoms = 0,
    .max_bottoms = 0,
    .min_tops = 1,
    .max_tops = -1,
    .setup = hdf5_data_setup,
    .reshape = hdf5_data_reshape,
    .forward = hdf5_data_forward,
    .destroy = hdf5_data_destroy,
    .source = &hdf5_data_source,
};

/* ---- HDF5Output ---- */

struct hdf5_output_priv {
    char *path, *tmp;
    hid_t file;
    bool written;
};

/* Writes t as a 4-D (num, channels, height, width) float dataset, the shape
 * Caffe's HDF5OutputLayer gives its copies of the bottoms. */
static int h5_write4(hid_t file, const char *path, const char *name, struct tensor *t)
{
    hsize_t dims[4];
    for (int i = 0; i < 4; i++)
        dims[i] = (hsize_t)tensor_legacy_dim(t, i);
    hid_t space = H5Screate_simple(4, dims, NULL);
    hid_t ds = space < 0 ? -1 : H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = CREMA_OK;
    const float *d = tensor_data(t);
    if (ds < 0 || !d || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, d) < 0)
        rc = err_set(CREMA_ERR_IO, "%s: cannot write dataset \"%s\"", path, name);
    if (ds >= 0)
        H5Dclose(ds);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

static int hdf5_output_setup(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)bottom;
    (void)top;
    h5_quiet();
    const Caffe__HDF5OutputParameter *hp = l->param->hdf5_output_param;
    if (!hp || !hp->file_name || !*hp->file_name)
        return err_set(CREMA_ERR_INVALID, "hdf5_output_param.file_name is empty");
    struct hdf5_output_priv *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    l->priv = p;
    p->file = -1;
    /* What is at the path is never destroyed (util/io.h's rule): a link is
     * followed to its target; a regular file (or none) is written under a
     * temporary name and renamed over it when the layer closes; anything
     * else (a device, a FIFO: HDF5 needs to seek) is refused. */
    struct stat st;
    bool exists = false;
    int rc = io_resolve_output(io_strip_file_uri(hp->file_name), &p->path, &st, &exists);
    if (rc)
        return err_prefix(rc, "hdf5_output_param.file_name");
    if (exists && !S_ISREG(st.st_mode))
        return err_set(CREMA_ERR_IO, "hdf5_output_param.file_name %s is %s; HDF5Output writes a regular file",
                       p->path, io_file_kind(st.st_mode));
    io_remove_stale_temps(p->path, IO_TEMP_TAG);
    if (!(p->tmp = io_temp_name(p->path)))
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    p->file = H5Fcreate(p->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (p->file < 0)
        return err_set(CREMA_ERR_IO, "hdf5_output_param.file_name %s: cannot create", p->path);
    return CREMA_OK;
}

static int hdf5_output_reshape(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)l;
    (void)bottom;
    (void)top;
    return CREMA_OK;
}

static int hdf5_output_forward(struct layer *l, struct tensor **bottom, struct tensor **top)
{
    (void)top;
    struct hdf5_output_priv *p = l->priv;
    if (tensor_legacy_dim(bottom[0], 0) != tensor_legacy_dim(bottom[1], 0))
        return err_set(CREMA_ERR_SHAPE, "data has %d items but label has %d", tensor_legacy_dim(bottom[0], 0),
                       tensor_legacy_dim(bottom[1], 0));
    if (p->written)
        /* Caffe writes the datasets once; later batches would need them to grow. */
        return err_set(CREMA_ERR_UNSUPPORTED, "%s: HDF5Output writes one batch (Caffe's limit too)", p->path);
    int rc = h5_write4(p->file, p->path, "data", bottom[0]);
    if (!rc)
        rc = h5_write4(p->file, p->path, "label", bottom[1]);
    if (!rc && H5Fflush(p->file, H5F_SCOPE_GLOBAL) < 0)
        rc = err_set(CREMA_ERR_IO, "%s: flush failed", p->path);
    p->written = true;
    return rc;
}

static void hdf5_output_destroy(struct layer *l)
{
    struct hdf5_output_priv *p = l->priv;
    if (!p)
        return;
    if (p->file >= 0) {
        H5Fclose(p->file);
        if (rename(p->tmp, p->path) != 0)
            unlink(p->tmp);
    }
    free(p->path);
    free(p->tmp);
    free(p);
    l->priv = NULL;
}

const struct layer_kind hdf5_output_layer = {
    .type = "HDF5Output",
    .min_bottoms = 2,
    .max_bottoms = 2,
    .min_tops = 0,
    .max_tops = 0,
    .setup = hdf5_output_setup,
    .reshape = hdf5_output_reshape,
    .forward = hdf5_output_forward,
    .destroy = hdf5_output_destroy,
};
