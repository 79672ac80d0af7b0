/* crema's data tools, as Caffe's: convert-mnist (convert_mnist_data),
 * convert-imageset, compute-mean (compute_image_mean) and db-info. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "caffe.pb-c.h"
#include "cli.h"
#include "crema.h"
#include "api/internal.h"

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static bool wants_help(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static int fail(const char *cmd)
{
    fprintf(stderr, "crema %s: %s\n", cmd, crema_errmsg());
    return 1;
}

/* ---- convert-mnist ---- */

struct idx_file {
    gzFile gz;
    const char *path;
};

static int idx_read(struct idx_file *f, void *buf, size_t n, const char *what)
{
    size_t got = 0;
    while (got < n) {
        unsigned chunk = (unsigned)(n - got > (1u << 30) ? (1u << 30) : n - got);
        int r = gzread(f->gz, (char *)buf + got, chunk);
        if (r <= 0) {
            int e;
            const char *msg = gzerror(f->gz, &e);
            return err_set(CREMA_ERR_PARSE, "%s: truncated or unreadable while reading %s%s%s", f->path, what,
                           r < 0 ? ": " : "", r < 0 ? msg : "");
        }
        got += (size_t)r;
    }
    return CREMA_OK;
}

static int idx_u32(struct idx_file *f, uint32_t *v, const char *what)
{
    uint8_t b[4];
    int rc = idx_read(f, b, 4, what);
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return rc;
}

/* gzopen reads plain files as they are, so .gz and raw IDX both work. */
static int idx_open(struct idx_file *f, const char *path)
{
    f->path = path;
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        return err_set(CREMA_ERR_IO, "%s: cannot open", path);
    return CREMA_OK;
}

static int convert_mnist(const char *images, const char *labels, const char *out, enum db_backend be)
{
    struct idx_file fi = { 0 }, fl = { 0 };
    struct db *db = NULL;
    uint8_t *pix = NULL;
    uint32_t magic = 0, n_img = 0, n_lab = 0, rows = 0, cols = 0;
    int rc = idx_open(&fi, images);
    if (!rc)
        rc = idx_open(&fl, labels);
    if (!rc)
        rc = idx_u32(&fi, &magic, "the magic number");
    if (!rc && magic != 2051)
        rc = err_set(CREMA_ERR_PARSE, "%s: magic %u is not an IDX image file's (2051)", images, magic);
    if (!rc)
        rc = idx_u32(&fl, &magic, "the magic number");
    if (!rc && magic != 2049)
        rc = err_set(CREMA_ERR_PARSE, "%s: magic %u is not an IDX label file's (2049)", labels, magic);
    if (!rc)
        rc = idx_u32(&fi, &n_img, "the item count");
    if (!rc)
        rc = idx_u32(&fl, &n_lab, "the item count");
    if (!rc && n_img != n_lab)
        rc = err_set(CREMA_ERR_INVALID, "%s has %u images but %s has %u labels", images, n_img, labels, n_lab);
    if (!rc)
        rc = idx_u32(&fi, &rows, "the row count");
    if (!rc)
        rc = idx_u32(&fi, &cols, "the column count");
    if (!rc && (rows == 0 || cols == 0 || rows > 65535 || cols > 65535))
        rc = err_set(CREMA_ERR_INVALID, "%s: image size %ux%u out of range", images, rows, cols);
    if (!rc)
        rc = db_create(out, be, &db);
    size_t size = (size_t)rows * cols;
    if (!rc && !(pix = malloc(size)))
        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; !rc && i < n_img; i++) {
        uint8_t label;
        char what[64];
        snprintf(what, sizeof what, "item %u", i);
        rc = idx_read(&fi, pix, size, what);
        if (!rc)
            rc = idx_read(&fl, &label, 1, what);
        uint8_t *val = NULL;
        size_t vlen;
        if (!rc)
            rc = datum_pack(1, (int)rows, (int)cols, pix, size, label, -1, &val, &vlen);
        char key[16];
        snprintf(key, sizeof key, "%08u", i);
        if (!rc)
            rc = db_put(db, key, strlen(key), val, vlen);
        free(val);
    }
    if (db) {
        int crc = db_close(db);
        rc = rc ? rc : crc;
    }
    if (fi.gz)
        gzclose(fi.gz);
    if (fl.gz)
        gzclose(fl.gz);
    free(pix);
    if (!rc)
        printf("wrote %u records (%ux%u) to %s (%s)\n", n_img, rows, cols, out, db_backend_name(be));
    return rc;
}

int cmd_convert_mnist(int argc, char **argv)
{
    struct flag flags[] = {
        { "backend", FLAG_STRING, "lmdb", "the db backend to write: lmdb or leveldb", NULL, false },
    };
    const char *usage = "IMAGES LABELS DB [-backend lmdb|leveldb]  (IDX files, gzipped or not)";
    if (wants_help(argc, argv)) {
        cli_print_flags("convert-mnist", usage, flags, N_OF(flags));
        return 0;
    }
    const char *pos[3];
    int n_pos;
    if (cli_parse_flags("convert-mnist", argc, argv, 2, flags, N_OF(flags), pos, 3, &n_pos))
        return 1;
    if (n_pos != 3) {
        fprintf(stderr, "crema convert-mnist: expected IMAGES LABELS DB (crema help convert-mnist)\n");
        return 1;
    }
    enum db_backend be;
    if (db_backend_parse(cli_str(flags, N_OF(flags), "backend"), &be) ||
        convert_mnist(pos[0], pos[1], pos[2], be))
        return fail("convert-mnist");
    return 0;
}

/* ---- compute-mean ---- */

static int compute_mean(const char *in, enum db_backend be, const char *out)
{
    struct db *db = NULL;
    struct db_cursor *cur = NULL;
    struct datum dt = { 0 };
    float *sum = NULL;
    size_t count = 0, n = 0;
    int c = 0, h = 0, w = 0;
    int rc = db_open_read(in, be, &db);
    if (!rc)
        rc = db_cursor_open(db, &cur);
    if (!rc && !db_cursor_valid(cur))
        rc = err_set(CREMA_ERR_INVALID, "%s: the database is empty", in);
    /* As compute_image_mean: float running sums, one division at the end. */
    for (; !rc && db_cursor_valid(cur); n++) {
        size_t vlen;
        const uint8_t *v = db_cursor_value(cur, &vlen);
        char key[160], where[400];
        snprintf(where, sizeof where, "%s: record %zu (key %s)", in, n, db_cursor_key_text(cur, key, sizeof key));
        rc = datum_decode(v, vlen, IMAGE_NATIVE, where, &dt);
        if (rc)
            break;
        if (!sum) {
            c = dt.channels;
            h = dt.height;
            w = dt.width;
            count = dt.count;
            sum = calloc(count, sizeof(float));
            if (!sum) {
                rc = err_set(CREMA_ERR_NOMEM, "out of memory");
                break;
            }
        } else if (dt.count != count) {
            rc = err_set(CREMA_ERR_SHAPE, "%s: has %zu values, the first record had %zu (%dx%dx%d)", where, dt.count,
                         count, c, h, w);
            break;
        }
        if (dt.is_float)
            for (size_t i = 0; i < count; i++)
                sum[i] += dt.f[i];
        else
            for (size_t i = 0; i < count; i++)
                sum[i] += (float)dt.u8[i];
        rc = db_cursor_next(cur);
    }
    if (!rc) {
        for (size_t i = 0; i < count; i++)
            sum[i] = sum[i] / (float)n;
        Caffe__BlobProto bp = CAFFE__BLOB_PROTO__INIT;
        bp.has_num = bp.has_channels = bp.has_height = bp.has_width = true;
        bp.num = 1;
        bp.channels = c;
        bp.height = h;
        bp.width = w;
        bp.n_data = count;
        bp.data = sum;
        rc = proto_write_binary(out, &bp.base);
        if (!rc) {
            printf("%zu records of %dx%dx%d; mean written to %s\n", n, c, h, w, out);
            for (int k = 0; k < c; k++) {
                double s = 0;
                for (size_t i = 0; i < (size_t)h * (size_t)w; i++)
                    s += sum[(size_t)k * (size_t)h * (size_t)w + i];
                printf("mean value channel %d: %g\n", k, s / ((double)h * w));
            }
        }
    }
    free(sum);
    datum_free(&dt);
    db_cursor_close(cur);
    db_close(db);
    return rc;
}

int cmd_compute_mean(int argc, char **argv)
{
    struct flag flags[] = {
        { "backend", FLAG_STRING, "lmdb", "the db backend to read: lmdb or leveldb", NULL, false },
    };
    const char *usage = "DB OUT.binaryproto [-backend lmdb|leveldb]";
    if (wants_help(argc, argv)) {
        cli_print_flags("compute-mean", usage, flags, N_OF(flags));
        return 0;
    }
    const char *pos[2];
    int n_pos;
    if (cli_parse_flags("compute-mean", argc, argv, 2, flags, N_OF(flags), pos, 2, &n_pos))
        return 1;
    if (n_pos != 2) {
        fprintf(stderr, "crema compute-mean: expected DB OUT.binaryproto (crema help compute-mean)\n");
        return 1;
    }
    enum db_backend be;
    if (db_backend_parse(cli_str(flags, N_OF(flags), "backend"), &be) || compute_mean(pos[0], be, pos[1]))
        return fail("compute-mean");
    return 0;
}

/* ---- db-info ---- */

static int db_info(const char *path, enum db_backend be)
{
    struct db *db = NULL;
    struct db_cursor *cur = NULL;
    struct datum dt = { 0 };
    size_t n = 0;
    int rc = db_open_read(path, be, &db);
    if (!rc)
        rc = db_count(db, &n);
    if (!rc)
        rc = db_cursor_open(db, &cur);
    if (!rc) {
        printf("%s (%s): %zu records\n", path, db_backend_name(be), n);
        if (db_cursor_valid(cur)) {
            size_t vlen;
            const uint8_t *v = db_cursor_value(cur, &vlen);
            char key[160], where[400];
            db_cursor_key_text(cur, key, sizeof key);
            snprintf(where, sizeof where, "%s: record 0 (key %s)", path, key);
            rc = datum_decode(v, vlen, IMAGE_NATIVE, where, &dt);
            if (!rc)
                printf("first record: key %s, %d x %d x %d (channels x height x width), %s%s, label %d\n", key,
                       dt.channels, dt.height, dt.width, dt.is_float ? "float" : "uint8",
                       dt.was_encoded ? " (encoded image)" : "", dt.label);
        }
    }
    datum_free(&dt);
    db_cursor_close(cur);
    db_close(db);
    return rc;
}

int cmd_db_info(int argc, char **argv)
{
    struct flag flags[] = {
        { "backend", FLAG_STRING, "", "lmdb or leveldb (default: guessed: lmdb if DB/data.mdb exists)", NULL, false },
    };
    const char *usage = "DB [-backend lmdb|leveldb]";
    if (wants_help(argc, argv)) {
        cli_print_flags("db-info", usage, flags, N_OF(flags));
        return 0;
    }
    const char *pos[1];
    int n_pos;
    if (cli_parse_flags("db-info", argc, argv, 2, flags, N_OF(flags), pos, 1, &n_pos))
        return 1;
    if (n_pos != 1) {
        fprintf(stderr, "crema db-info: expected DB (crema help db-info)\n");
        return 1;
    }
    enum db_backend be = DB_LMDB;
    const char *b = cli_str(flags, N_OF(flags), "backend");
    if (*b) {
        if (db_backend_parse(b, &be))
            return fail("db-info");
    } else {
        char probe[4096];
        snprintf(probe, sizeof probe, "%s/CURRENT", pos[0]);
        FILE *f = fopen(probe, "rb");
        if (f) {
            fclose(f);
            be = DB_LEVELDB;
        }
    }
    if (db_info(pos[0], be))
        return fail("db-info");
    return 0;
}

/* ---- convert-imageset ---- */

/* Caffe's matchExt: the extension equals the encoding (jpeg counts as jpg). */
static bool ext_matches(const char *file, const char *enc)
{
    const char *dot = strrchr(file, '.');
    const char *ext = dot ? dot + 1 : file;
    return strcasecmp(ext, enc) == 0 || (strcasecmp(enc, "jpg") == 0 && strcasecmp(ext, "jpeg") == 0);
}

struct imageset_opts {
    int resize_h, resize_w;
    bool gray, encoded, shuffle, check_size;
    const char *encode_type;
    uint64_t seed;
};

static int convert_one(const char *root, const struct image_list_entry *ln, size_t index, const struct imageset_opts *o,
                       struct db *db, size_t *first_size)
{
    char *path = malloc(strlen(root) + strlen(ln->file) + 1);
    if (!path)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    strcpy(path, root);
    strcat(path, ln->file);
    struct image img = { 0 }, rs = { 0 };
    uint8_t *val = NULL, *enc = NULL, *raw = NULL;
    size_t vlen, enclen = 0, rawlen = 0;
    int rc = image_read(path, o->gray ? IMAGE_GRAY : IMAGE_COLOR, &img);
    bool resize = o->resize_h > 0 && o->resize_w > 0;
    if (!rc && resize) {
        rc = image_resize(&img, o->resize_h, o->resize_w, &rs);
        if (!rc) {
            image_free(&img);
            img = rs;
        }
    }
    char encbuf[16] = "";
    const char *type = o->encode_type && *o->encode_type ? o->encode_type : NULL;
    if (!rc && o->encoded && !type) {
        const char *dot = strrchr(ln->file, '.');
        snprintf(encbuf, sizeof encbuf, "%s", dot ? dot + 1 : "");
        for (char *q = encbuf; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        type = encbuf;
    }
    if (!rc && type) {
        /* Caffe stores the file's own bytes when there is no resize and the
         * extension is the encoding (its colour test always passes, since it
         * compares the decoded image with the flag it was decoded by). */
        bool keep_file = !resize && ext_matches(ln->file, type);
        if (keep_file) {
            FILE *f = fopen(path, "rb");
            if (!f) {
                rc = err_set(CREMA_ERR_IO, "%s: cannot open", path);
            } else {
                fseek(f, 0, SEEK_END);
                long sz = ftell(f);
                fseek(f, 0, SEEK_SET);
                raw = malloc(sz > 0 ? (size_t)sz : 1);
                rawlen = raw && sz > 0 ? fread(raw, 1, (size_t)sz, f) : 0;
                if (!raw || (long)rawlen != sz)
                    rc = err_set(CREMA_ERR_IO, "%s: read failed", path);
                fclose(f);
            }
            if (!rc)
                rc = datum_pack(-1, -1, -1, raw, rawlen, ln->label, 1, &val, &vlen);
        } else {
            rc = image_encode(&img, type, &enc, &enclen);
            if (!rc)
                rc = datum_pack(img.channels, img.height, img.width, enc, enclen, ln->label, 1, &val, &vlen);
        }
    } else if (!rc) {
        size_t sz = (size_t)img.channels * (size_t)img.height * (size_t)img.width;
        if (o->check_size) {
            if (*first_size == 0)
                *first_size = sz;
            else if (sz != *first_size)
                rc = err_set(CREMA_ERR_SHAPE, "%s: %zu bytes of pixels, the first image had %zu", path, sz,
                             *first_size);
        }
        if (!rc)
            rc = datum_pack(img.channels, img.height, img.width, img.data, sz, ln->label, 0, &val, &vlen);
    }
    if (!rc) {
        size_t klen = strlen(ln->file) + 16;
        char *key = malloc(klen);
        if (!key) {
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
        } else {
            snprintf(key, klen, "%08zu_%s", index, ln->file);
            rc = db_put(db, key, strlen(key), val, vlen);
            free(key);
        }
    }
    image_free(&img);
    free(val);
    free(enc);
    free(raw);
    free(path);
    return rc;
}

static int convert_imageset(const char *root, const char *list, const char *out, enum db_backend be,
                            const struct imageset_opts *o)
{
    struct image_list lines;
    size_t first_size = 0;
    int rc = image_list_read(list, &lines);
    if (rc)
        return rc;
    size_t n = lines.n;
    if (o->shuffle) {
        struct rng r;
        rng_seed(&r, o->seed);
        image_list_shuffle(&lines, &r);
    }
    struct db *db = NULL;
    rc = db_create(out, be, &db);
    for (size_t i = 0; !rc && i < n; i++) {
        rc = convert_one(root, &lines.items[i], i, o, db, &first_size);
        if (rc)
            err_prefix(rc, "%s:%zu", list, lines.items[i].line);
    }
    if (db) {
        int crc = db_close(db);
        rc = rc ? rc : crc;
    }
    if (!rc)
        printf("wrote %zu records to %s (%s)\n", n, out, db_backend_name(be));
    image_list_free(&lines);
    return rc;
}

int cmd_convert_imageset(int argc, char **argv)
{
    struct flag flags[] = {
        { "gray", FLAG_BOOL, "false", "treat images as grayscale", NULL, false },
        { "shuffle", FLAG_BOOL, "false", "shuffle the list (seeded by -seed)", NULL, false },
        { "seed", FLAG_INT, "1", "random seed for -shuffle", NULL, false },
        { "backend", FLAG_STRING, "lmdb", "the db backend to write: lmdb or leveldb", NULL, false },
        { "resize_width", FLAG_INT, "0", "width images are resized to (bilinear)", NULL, false },
        { "resize_height", FLAG_INT, "0", "height images are resized to (bilinear)", NULL, false },
        { "check_size", FLAG_BOOL, "false", "check that all raw records have the same size", NULL, false },
        { "encoded", FLAG_BOOL, "false", "store encoded images in the records", NULL, false },
        { "encode_type", FLAG_STRING, "", "encoding to store: jpg or png (implies -encoded)", NULL, false },
    };
    const char *usage = "ROOTFOLDER/ LISTFILE DB [flags]  (LISTFILE lines: \"subfolder/file.jpg 7\")";
    if (wants_help(argc, argv)) {
        cli_print_flags("convert-imageset", usage, flags, N_OF(flags));
        return 0;
    }
    const char *pos[3];
    int n_pos;
    if (cli_parse_flags("convert-imageset", argc, argv, 2, flags, N_OF(flags), pos, 3, &n_pos))
        return 1;
    if (n_pos != 3) {
        fprintf(stderr, "crema convert-imageset: expected ROOTFOLDER/ LISTFILE DB (crema help convert-imageset)\n");
        return 1;
    }
    int n = N_OF(flags);
    struct imageset_opts o = {
        .resize_h = (int)cli_int(flags, n, "resize_height"),
        .resize_w = (int)cli_int(flags, n, "resize_width"),
        .gray = cli_bool(flags, n, "gray"),
        .encoded = cli_bool(flags, n, "encoded"),
        .shuffle = cli_bool(flags, n, "shuffle"),
        .check_size = cli_bool(flags, n, "check_size"),
        .encode_type = cli_str(flags, n, "encode_type"),
        .seed = (uint64_t)cli_int(flags, n, "seed"),
    };
    if (*o.encode_type)
        o.encoded = true;
    if (o.resize_h < 0 || o.resize_w < 0 || o.resize_h > IMAGE_MAX_SIDE || o.resize_w > IMAGE_MAX_SIDE ||
        (o.resize_h > 0) != (o.resize_w > 0)) {
        fprintf(stderr, "crema convert-imageset: give both -resize_height and -resize_width (positive), or neither\n");
        return 1;
    }
    enum db_backend be;
    if (db_backend_parse(cli_str(flags, n, "backend"), &be) || convert_imageset(pos[0], pos[1], pos[2], be, &o))
        return fail("convert-imageset");
    return 0;
}
