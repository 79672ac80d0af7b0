/* crema features: CaffeOnSpark's feature extraction without Spark: the named
 * blobs of a trained net for every sample of its test source, one record per
 * sample (SampleID, one float array per blob), as JSON lines, CSV or .npy.
 * The same walk serves the CaffeOnSpark -test mode (means of the outputs). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "api/internal.h"

#define COS_LMDB_SOURCE_CLASS "com.yahoo.ml.caffe.LMDB"

/* The test source as the records' names come from it. */
struct source_info {
    char *path; /* NULL: no database source (SampleID is the index) */
    enum db_backend backend;
    int batch_size;
    bool rand_skip;
};

/* The first layer that reads a database: a Data layer, or CaffeOnSpark's
 * MemoryData with source_class LMDB. Other sources give batch size only. */
static int find_source(const struct net *net, struct source_info *si)
{
    memset(si, 0, sizeof *si);
    for (int i = 0; i < net->n_layers; i++) {
        const struct layer *l = net->layers[i].layer;
        const Caffe__LayerParameter *lp = l->param;
        const char *type = l->kind->type;
        if (strcmp(type, "Data") == 0 && lp->data_param) {
            const Caffe__DataParameter *dp = lp->data_param;
            si->backend = dp->backend == CAFFE__DATA_PARAMETER__DB__LMDB ? DB_LMDB : DB_LEVELDB;
            si->batch_size = (int)dp->batch_size;
            si->rand_skip = dp->rand_skip > 0;
            si->path = dp->source ? strdup(io_strip_file_uri(dp->source)) : NULL;
            return 0;
        }
        if (strcmp(type, "MemoryData") == 0 && lp->memory_data_param) {
            si->batch_size = (int)lp->memory_data_param->batch_size;
            if (lp->source_class && strcmp(lp->source_class, COS_LMDB_SOURCE_CLASS) == 0 &&
                lp->memory_data_param->source) {
                si->backend = DB_LMDB;
                si->path = strdup(io_strip_file_uri(lp->memory_data_param->source));
            }
            return 0;
        }
        /* any other first layer without bottoms feeds the batch */
        if (net->layers[i].n_bottom == 0 && net->layers[i].n_top > 0 && net->layers[i].top[0]->num_axes > 0) {
            si->batch_size = net->layers[i].top[0]->shape[0];
            return 0;
        }
    }
    return 0;
}

/* Every key of the database in key order (the Data layer's reading order). */
static int read_keys(const struct source_info *si, char ***keys, size_t *n)
{
    struct db *db = NULL;
    struct db_cursor *c = NULL;
    *keys = NULL;
    *n = 0;
    int rc = db_open_read(si->path, si->backend, &db);
    if (!rc)
        rc = db_cursor_open(db, &c);
    size_t cap = 0;
    while (!rc && db_cursor_valid(c)) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **g = realloc(*keys, cap * sizeof *g);
            if (!g) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                break;
            }
            *keys = g;
        }
        size_t klen;
        const uint8_t *k = db_cursor_key(c, &klen);
        char *s = malloc(klen + 1);
        if (!s) {
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(s, k, klen);
        s[klen] = 0;
        (*keys)[(*n)++] = s;
        rc = db_cursor_next(c);
    }
    db_cursor_close(c);
    db_close(db);
    return rc;
}

static void free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* What one run of the source produced: per blob, records x dim floats. */
struct table {
    int n_blobs;
    const char **names;
    size_t *dim;
    float **vals;
    size_t n_records;
    char **ids; /* n_records SampleIDs */
};

static void table_free(struct table *t)
{
    for (int j = 0; j < t->n_blobs; j++)
        free(t->vals ? t->vals[j] : NULL);
    free(t->vals);
    free(t->dim);
    free_keys(t->ids, t->n_records);
    memset(t, 0, sizeof *t);
}

/* Runs the source once: ceil(records / batch) forwards, the first `records`
 * samples kept. A blob with fewer values than the batch has samples (a
 * per-batch value such as accuracy) is given whole to every sample of its
 * batch, as CaffeOnSpark's doFeatures did. */
static int run_source(struct net *net, const struct source_info *si, char **keys, size_t records,
                      struct table *t)
{
    const size_t batch = (size_t)si->batch_size;
    int idx[256];
    for (int j = 0; j < t->n_blobs; j++)
        if ((idx[j] = net_blob_index(net, t->names[j])) < 0)
            return err_set(CREMA_ERR_NOTFOUND, "the net has no blob \"%s\"", t->names[j]);
    t->dim = calloc((size_t)t->n_blobs, sizeof *t->dim);
    t->vals = calloc((size_t)t->n_blobs, sizeof *t->vals);
    t->ids = calloc(records ? records : 1, sizeof *t->ids);
    if (!t->dim || !t->vals || !t->ids)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    size_t done = 0;
    for (size_t it = 0; done < records; it++) {
        int rc = net_forward(net, NULL);
        if (rc)
            return err_prefix(rc, "batch %zu", it);
        size_t take = records - done < batch ? records - done : batch;
        for (int j = 0; j < t->n_blobs; j++) {
            struct tensor *b = net->blobs[idx[j]];
            size_t per = b->count / batch, dim = per ? per : b->count;
            if (it == 0) {
                t->dim[j] = dim;
                if (dim && records > SIZE_MAX / sizeof(float) / dim)
                    return err_set(CREMA_ERR_NOMEM, "blob %s: too many values to keep", t->names[j]);
                t->vals[j] = malloc(records * dim * sizeof(float) + 1);
                if (!t->vals[j])
                    return err_set(CREMA_ERR_NOMEM, "out of memory keeping blob %s (%zu x %zu floats)",
                                   t->names[j], records, dim);
            } else if (dim != t->dim[j]) {
                return err_set(CREMA_ERR_SHAPE, "batch %zu: blob %s has %zu values per sample, the first batch %zu",
                               it, t->names[j], dim, t->dim[j]);
            }
            const float *d = tensor_data(b);
            if (!d)
                return err_set(CREMA_ERR_NOMEM, "out of memory");
            for (size_t i = 0; i < take; i++)
                memcpy(t->vals[j] + (done + i) * dim, d + per * i, dim * sizeof(float));
        }
        for (size_t i = 0; i < take; i++) {
            char buf[32];
            if (keys) {
                t->ids[done + i] = keys[done + i];
                keys[done + i] = NULL;
            } else {
                snprintf(buf, sizeof buf, "%zu", done + i);
                t->ids[done + i] = strdup(buf);
            }
            if (!t->ids[done + i])
                return err_set(CREMA_ERR_NOMEM, "out of memory");
            t->n_records = done + i + 1;
        }
        done += take;
    }
    return 0;
}

/* ---- output ---------------------------------------------------------- */

static void put_float(FILE *f, float v)
{
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "Infinity" : "-Infinity", f);
    else
        fprintf(f, "%.9g", v);
}

static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

static void put_csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *c = s; *c; c++) {
        if (*c == '"')
            fputc('"', f);
        fputc(*c, f);
    }
    fputc('"', f);
}

static void write_json(FILE *f, const struct table *t)
{
    for (size_t r = 0; r < t->n_records; r++) {
        fputs("{\"SampleID\":", f);
        put_json_string(f, t->ids[r]);
        for (int j = 0; j < t->n_blobs; j++) {
            fputc(',', f);
            put_json_string(f, t->names[j]);
            fputs(":[", f);
            for (size_t k = 0; k < t->dim[j]; k++) {
                if (k)
                    fputc(',', f);
                put_float(f, t->vals[j][r * t->dim[j] + k]);
            }
            fputc(']', f);
        }
        fputs("}\n", f);
    }
}

/* One column per value: blob_0, blob_1, ... */
static void write_csv(FILE *f, const struct table *t)
{
    fputs("SampleID", f);
    for (int j = 0; j < t->n_blobs; j++)
        for (size_t k = 0; k < t->dim[j]; k++) {
            char col[512];
            snprintf(col, sizeof col, "%s_%zu", t->names[j], k);
            fputc(',', f);
            put_csv_field(f, col);
        }
    fputc('\n', f);
    for (size_t r = 0; r < t->n_records; r++) {
        put_csv_field(f, t->ids[r]);
        for (int j = 0; j < t->n_blobs; j++)
            for (size_t k = 0; k < t->dim[j]; k++) {
                fputc(',', f);
                put_float(f, t->vals[j][r * t->dim[j] + k]);
            }
        fputc('\n', f);
    }
}

/* A blob's file name: its name with path separators made harmless. */
static void file_name(char *out, size_t n, const char *dir, const char *blob, const char *ext)
{
    int m = snprintf(out, n, "%s/", dir);
    for (const char *c = blob; *c && (size_t)m + 1 < n; c++)
        out[m++] = (*c == '/' || *c == '\\') ? '_' : *c;
    out[m < (int)n ? m : (int)n - 1] = 0;
    strncat(out, ext, n - strlen(out) - 1);
}

/* A new directory written under a temporary name and renamed into place:
 * <blob>.npy (records x dim) per blob and SampleID.txt, one ID a line. */
static int write_npy_dir(const char *path, const struct table *t)
{
    char tmp[4096], f[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (mkdir(tmp, 0777) != 0)
        return err_set(CREMA_ERR_IO, "%s: %s", tmp, strerror(errno));
    int rc = 0;
    for (int j = 0; j < t->n_blobs && !rc; j++) {
        file_name(f, sizeof f, tmp, t->names[j], ".npy");
        int shape[2] = { (int)t->n_records, (int)t->dim[j] };
        rc = npy_write(f, 2, shape, t->vals[j]);
    }
    if (!rc) {
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        if (!m)
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
        for (size_t r = 0; m && r < t->n_records; r++)
            fprintf(m, "%s\n", t->ids[r]);
        if (m)
            fclose(m);
        snprintf(f, sizeof f, "%s/SampleID.txt", tmp);
        if (!rc)
            rc = io_write_atomic(f, buf ? buf : "", len);
        free(buf);
    }
    if (!rc && rename(tmp, path) != 0)
        rc = err_set(CREMA_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc) {
        for (int j = 0; j < t->n_blobs; j++) {
            file_name(f, sizeof f, tmp, t->names[j], ".npy");
            unlink(f);
        }
        snprintf(f, sizeof f, "%s/SampleID.txt", tmp);
        unlink(f);
        rmdir(tmp);
    }
    return rc;
}

/* Text output to a file (temporary name, renamed) or, for "", stdout. */
static int write_text(const char *path, const struct table *t, bool csv)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    if (csv)
        write_csv(m, t);
    else
        write_json(m, t);
    fclose(m);
    int rc = 0;
    if (!*path) {
        if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
            rc = err_set(CREMA_ERR_IO, "standard output: %s", strerror(errno));
    } else {
        rc = io_write_atomic(path, buf, len);
    }
    free(buf);
    return rc;
}

int cli_check_output(const char *cmd, const char *output, const char *format)
{
    if (strcmp(format, "json") != 0 && strcmp(format, "csv") != 0 && strcmp(format, "npy") != 0) {
        fprintf(stderr, "crema %s: -outputFormat wants json, csv or npy, got \"%s\"\n", cmd, format);
        return 1;
    }
    if (strncmp(output, "file:", 5) != 0 && strstr(output, "://")) {
        fprintf(stderr, "crema %s: -output %s: only local paths and file: URIs are supported\n", cmd, output);
        return 1;
    }
    const char *path = io_strip_file_uri(output);
    if (strcmp(format, "npy") == 0) {
        struct stat st;
        if (!*path) {
            fprintf(stderr, "crema %s: -outputFormat npy needs -output DIR (a new directory)\n", cmd);
            return 1;
        }
        if (stat(path, &st) == 0) {
            fprintf(stderr, "crema %s: -output %s exists; npy output makes a new directory\n", cmd, output);
            return 1;
        }
    }
    /* the parent directory must exist, so that no work is lost at the end */
    if (*path) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        struct stat st;
        if (slash && slash != dir) {
            *slash = 0;
            if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
                fprintf(stderr, "crema %s: -output %s: no directory %s\n", cmd, output, dir);
                return 1;
            }
        }
    }
    return 0;
}

/* Splits "a,b,c" into names (pointers into a malloc'd copy, *store). */
static int split_names(const char *list, const char **names, int max, char **store)
{
    *store = strdup(list);
    if (!*store)
        return -1;
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(*store, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return -1;
        names[n++] = t;
    }
    return n;
}

int cli_extract(const char *cmd, const struct extract_job *job)
{
    const char *names[256];
    char *store = NULL;
    int n = 0;
    if (job->test_mode) {
        n = 0;
    } else {
        n = split_names(job->blobs, names, 255, &store);
        if (n <= 0) {
            fprintf(stderr, "crema %s: -features wants blob names separated by commas, got \"%s\"\n", cmd,
                    job->blobs);
            free(store);
            return 1;
        }
        if (job->label && *job->label) {
            bool have = false;
            for (int j = 0; j < n; j++)
                have |= strcmp(names[j], job->label) == 0;
            if (!have)
                names[n++] = job->label;
        }
    }
    /* The keys are read before the net opens its own reader: LevelDB allows
     * one open handle per process. */
    struct net *net = NULL;
    if (cli_load_net(cmd, job->model, NULL, CAFFE__PHASE__TEST, job->level, job->stages, false, &net)) {
        free(store);
        return 1;
    }
    struct source_info si;
    find_source(net, &si);
    net_free(net);
    net = NULL;
    char **keys = NULL;
    size_t n_keys = 0;
    int rc = 0;
    if (si.batch_size <= 0) {
        fprintf(stderr, "crema %s: %s: cannot tell the batch size of the net's input\n", cmd, job->model);
        rc = 1;
    } else if (si.path) {
        if (read_keys(&si, &keys, &n_keys)) {
            fprintf(stderr, "crema %s: test source %s: %s\n", cmd, si.path, crema_errmsg());
            rc = 1;
        } else if (n_keys == 0) {
            fprintf(stderr, "crema %s: test source %s is empty\n", cmd, si.path);
            rc = 1;
        } else if (si.rand_skip) {
            /* the reader starts at a random record: keys cannot be matched */
            fprintf(stderr, "crema %s: note: data_param.rand_skip is set; SampleID is the sample's index\n", cmd);
        }
    } else if (job->iterations < 0) {
        fprintf(stderr, "crema %s: the net's input is not a database, so its size is unknown: give -iterations N\n",
                cmd);
        rc = 1;
    }
    size_t records = 0;
    if (!rc) {
        records = n_keys;
        if (job->iterations >= 0) {
            size_t want = (size_t)job->iterations * (size_t)si.batch_size;
            records = (si.path && want > n_keys) ? n_keys : want;
        }
    }
    if (!rc && cli_load_net(cmd, job->model, job->weights, CAFFE__PHASE__TEST, job->level, job->stages,
                            job->allow_unmatched, &net))
        rc = 1;
    struct table t = { 0 };
    if (!rc && job->test_mode) {
        for (int j = 0; j < net->n_outputs && j < 256; j++)
            names[n++] = net->blob_names[net->output_ids[j]];
    }
    t.n_blobs = n;
    t.names = names;
    if (!rc && run_source(net, &si, si.rand_skip ? NULL : keys, records, &t)) {
        fprintf(stderr, "crema %s: %s\n", cmd, crema_errmsg());
        rc = 1;
    }
    const char *out = io_strip_file_uri(job->output);
    if (!rc && job->test_mode) {
        /* CaffeOnSpark's test: the mean over samples of each output. */
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        for (int j = 0; m && j < t.n_blobs; j++) {
            fprintf(m, "%s: ", t.names[j]);
            for (size_t k = 0; k < t.dim[j]; k++) {
                double s = 0;
                for (size_t r = 0; r < t.n_records; r++)
                    s += t.vals[j][r * t.dim[j] + k];
                fprintf(m, "%s%.9g", k ? "," : "", t.n_records ? s / (double)t.n_records : 0.0);
            }
            fputc('\n', m);
        }
        if (m)
            fclose(m);
        if (!m || (*out ? io_write_atomic(out, buf, len) : (fwrite(buf, 1, len, stdout) != len))) {
            fprintf(stderr, "crema %s: -output %s: %s\n", cmd, job->output, m ? crema_errmsg() : "out of memory");
            rc = 1;
        }
        if (!rc && *out)
            fwrite(buf, 1, len, stderr);
        free(buf);
    } else if (!rc) {
        int wrc = strcmp(job->format, "npy") == 0 ? write_npy_dir(out, &t)
                                                  : write_text(out, &t, strcmp(job->format, "csv") == 0);
        if (wrc) {
            fprintf(stderr, "crema %s: -output %s: %s\n", cmd, job->output, crema_errmsg());
            rc = 1;
        } else if (*out) {
            fprintf(stderr, "crema %s: wrote %zu records to %s (%s)\n", cmd, t.n_records, job->output, job->format);
        }
    }
    table_free(&t);
    free_keys(keys, n_keys);
    free(si.path);
    net_free(net);
    free(store);
    return rc;
}

static struct flag features_flags[] = {
    { "model", FLAG_STRING, "", "the net (prototxt; its TEST phase is used; file: URIs accepted)", NULL, false },
    { "weights", FLAG_STRING, "", "trained weights: comma-separated .caffemodel(.h5) files", NULL, false },
    { "allow_unmatched_weights", FLAG_BOOL, "false",
      "load -weights even when no layer of the net gets weights from them (an empty or unrelated file)", NULL,
      false },
    { "features", FLAG_STRING, "", "comma-separated blobs to extract, e.g. ip1,accuracy", NULL, false },
    { "label", FLAG_STRING, "", "a label blob to add to every record (as CaffeOnSpark's -label)", NULL, false },
    { "output", FLAG_STRING, "", "where to write (path or file: URI; empty: standard output; npy: a new dir)", NULL,
      false },
    { "outputFormat", FLAG_STRING, "json", "json (JSON lines), csv, or npy (one .npy per blob + SampleID.txt)", NULL,
      false },
    { "iterations", FLAG_STRING, "all", "batches to run, or all: every sample of the test source once", NULL,
      false },
    { "level", FLAG_INT, "0", "the net state's level", NULL, false },
    { "stage", FLAG_STRING, "", "comma-separated stages of the net state", NULL, false },
    { "help", FLAG_BOOL, "false", "print this list", NULL, false },
};
#define N_FEATURES_FLAGS ((int)(sizeof features_flags / sizeof features_flags[0]))

int cmd_features(int argc, char **argv)
{
    struct flag *fl = features_flags;
    const int nf = N_FEATURES_FLAGS;
    int start = cli_parse_command_flags(
        "features",
        "-model NET -weights W -features b1,b2 [flags]\n\nWrites the named blobs of every "
        "sample of the net's test source, one record per sample (as CaffeOnSpark).",
        argc, argv, fl, nf);
    if (start >= 0)
        return start;
    struct extract_job job = { 0 };
    job.model = cli_str(fl, nf, "model");
    job.weights = cli_str(fl, nf, "weights");
    job.blobs = cli_str(fl, nf, "features");
    job.label = cli_str(fl, nf, "label");
    job.output = cli_str(fl, nf, "output");
    job.format = cli_str(fl, nf, "outputFormat");
    job.level = (int)cli_int(fl, nf, "level");
    job.stages = cli_str(fl, nf, "stage");
    job.allow_unmatched = cli_bool(fl, nf, "allow_unmatched_weights");
    const char *iters = cli_str(fl, nf, "iterations");
    if (strcmp(iters, "all") == 0) {
        job.iterations = -1;
    } else {
        char *end;
        errno = 0;
        long long v = strtoll(iters, &end, 10);
        if (!*iters || *end || errno || v <= 0 || v > 1000000000) {
            fprintf(stderr, "crema features: -iterations wants a positive integer or all, got \"%s\"\n", iters);
            return 1;
        }
        job.iterations = v;
    }
    if (cli_check_file("features", "model", job.model))
        return 1;
    if (!*job.weights) {
        fprintf(stderr, "crema features: -weights is required: features come from a trained model\n");
        return 1;
    }
    if (!*job.blobs) {
        fprintf(stderr, "crema features: -features is required: name the blobs to extract\n");
        return 1;
    }
    if (cli_check_output("features", job.output, job.format))
        return 1;
    return cli_extract("features", &job);
}
