/* The data module: DB round trips, Datum decoding and its errors, the
 * transformer's arithmetic, and the Data layer's sharding and prefetch. */
#include "check.h"
#include "data/datum.h"
#include "data/db.h"
#include "data/image.h"
#include "data/transformer.h"
#include "layers/data_source.h"
#include "layers/layer.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A DB of n 1x2x3 raw records, record i: pixels i+k, label i. */
static void make_db(const char *path, enum db_backend be, int n)
{
    struct db *db = NULL;
    CHECK_OK(db_create(path, be, &db));
    for (int i = 0; db && i < n; i++) {
        uint8_t pix[6], *val;
        size_t vlen;
        for (int k = 0; k < 6; k++)
            pix[k] = (uint8_t)(i + k);
        char key[16];
        snprintf(key, sizeof key, "%08d", i);
        CHECK_OK(datum_pack(1, 2, 3, pix, 6, i, -1, &val, &vlen));
        CHECK_OK(db_put(db, key, strlen(key), val, vlen));
        free(val);
    }
    CHECK_OK(db_close(db));
}

static void roundtrip(enum db_backend be)
{
    char *dir = check_tmpdir(be == DB_LMDB ? "db_lmdb" : "db_leveldb");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    make_db(path, be, 2500); /* three commits: 1000, 1000, 500 */
    struct db *db = NULL;
    CHECK_OK(db_open_read(path, be, &db));
    size_t n = 0;
    if (db)
        CHECK_OK(db_count(db, &n));
    CHECK_EQ_INT(n, 2500);
    struct db_cursor *c = NULL;
    if (db)
        CHECK_OK(db_cursor_open(db, &c));
    int i = 0;
    struct datum d = { 0 };
    for (; c && db_cursor_valid(c); i++) {
        size_t kl, vl;
        const uint8_t *k = db_cursor_key(c, &kl), *v = db_cursor_value(c, &vl);
        char want[16];
        snprintf(want, sizeof want, "%08d", i);
        CHECK_MSG(kl == 8 && memcmp(k, want, 8) == 0, "key %d: expected %s", i, want);
        CHECK_OK(datum_decode(v, vl, IMAGE_NATIVE, "test", &d));
        CHECK_EQ_INT(d.label, i);
        CHECK_EQ_INT(d.u8[5], (uint8_t)(i + 5));
        CHECK_OK(db_cursor_next(c));
    }
    CHECK_EQ_INT(i, 2500);
    datum_free(&d);
    db_cursor_close(c);
    CHECK_OK(db_close(db));
    /* creating over an existing database is refused, as Caffe's NEW */
    CHECK(db_create(path, be, &db) != 0);
    free(dir);
}

static void db_roundtrip_lmdb(void)
{
    roundtrip(DB_LMDB);
}

static void db_roundtrip_leveldb(void)
{
    roundtrip(DB_LEVELDB);
}

static void db_errors(void)
{
    struct db *db = NULL;
    CHECK(db_open_read("/nonexistent/crema/db", DB_LMDB, &db) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "/nonexistent/crema/db") != NULL, "message: %s", crema_errmsg());
    CHECK(db_open_read("/nonexistent/crema/db", DB_LEVELDB, &db) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "/nonexistent/crema/db") != NULL, "message: %s", crema_errmsg());
    /* a truncated copy of a real LMDB: refused before anything is mapped */
    char *dir = check_tmpdir("db_trunc");
    char *gold = check_shared("golden/data/lmdb_test_crop/lmdb/data.mdb");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/t' && head -c 4000000 '%s' > '%s/t/data.mdb'", dir, gold, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s/t", dir);
    CHECK(db_open_read(cmd, DB_LMDB, &db) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "truncated") != NULL, "message: %s", crema_errmsg());
    /* a file too short for the header, and garbage */
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/s' && head -c 100 '%s' > '%s/s/data.mdb' && mkdir -p '%s/g' && "
                              "head -c 20000 /dev/urandom > '%s/g/data.mdb'", dir, gold, dir, dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s/s", dir);
    CHECK(db_open_read(cmd, DB_LMDB, &db) != 0);
    snprintf(cmd, sizeof cmd, "%s/g", dir);
    CHECK(db_open_read(cmd, DB_LMDB, &db) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "/g") != NULL, "message: %s", crema_errmsg());
    free(gold);
    free(dir);
}

static void datum_errors(void)
{
    struct datum d = { 0 };
    uint8_t pix[6] = { 1, 2, 3, 4, 5, 6 }, *val;
    size_t vlen;
    /* wrong size: 5 bytes for 1x2x3 */
    CHECK_OK(datum_pack(1, 2, 3, pix, 5, 0, -1, &val, &vlen));
    CHECK(datum_decode(val, vlen, IMAGE_NATIVE, "db X key 7", &d) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "db X key 7") && strstr(crema_errmsg(), "5 bytes"), "message: %s",
              crema_errmsg());
    free(val);
    /* no shape */
    CHECK_OK(datum_pack(-1, -1, -1, pix, 6, 0, -1, &val, &vlen));
    CHECK(datum_decode(val, vlen, IMAGE_NATIVE, "k", &d) != 0);
    free(val);
    /* not protobuf */
    uint8_t junk[4] = { 0xff, 0xff, 0xff, 0xff };
    CHECK(datum_decode(junk, 4, IMAGE_NATIVE, "k", &d) != 0);
    /* encoded but corrupt JPEG: a valid start, then garbage */
    uint8_t bad[64] = { 0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0 };
    for (int i = 11; i < 64; i++)
        bad[i] = (uint8_t)(i * 37);
    CHECK_OK(datum_pack(-1, -1, -1, bad, sizeof bad, 0, 1, &val, &vlen));
    CHECK(datum_decode(val, vlen, IMAGE_NATIVE, "key 9", &d) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "key 9") && strstr(crema_errmsg(), "JPEG"), "message: %s", crema_errmsg());
    free(val);
    /* float_data Datum */
    Caffe__Datum m = CAFFE__DATUM__INIT;
    float fd[6] = { 0.5f, 1, 2, 3, 4, 5 };
    m.has_channels = m.has_height = m.has_width = true;
    m.channels = 1, m.height = 2, m.width = 3;
    m.n_float_data = 6;
    m.float_data = fd;
    uint8_t buf[128];
    size_t n = caffe__datum__pack(&m, buf);
    CHECK_OK(datum_decode(buf, n, IMAGE_NATIVE, "k", &d));
    CHECK(d.is_float && d.f[0] == 0.5f && d.count == 6);
    m.n_float_data = 5;
    n = caffe__datum__pack(&m, buf);
    CHECK(datum_decode(buf, n, IMAGE_NATIVE, "k", &d) != 0);
    datum_free(&d);
}

static void encoded_images(void)
{
    struct image img = { 0 };
    uint8_t *png, *jpg, *val;
    size_t plen, jlen, vlen;
    img.channels = 3, img.height = 5, img.width = 7;
    img.data = malloc(105);
    for (int i = 0; i < 105; i++)
        img.data[i] = (uint8_t)(i * 11);
    CHECK_OK(image_encode(&img, "png", &png, &plen));
    CHECK_OK(image_encode(&img, "jpg", &jpg, &jlen));
    struct datum d = { 0 };
    CHECK_OK(datum_pack(-1, -1, -1, png, plen, 4, 1, &val, &vlen));
    CHECK_OK(datum_decode(val, vlen, IMAGE_NATIVE, "k", &d));
    CHECK_EQ_INT(d.channels, 3);
    CHECK_EQ_INT(d.height, 5);
    CHECK_EQ_INT(d.label, 4);
    CHECK(d.u8 && memcmp(d.u8, img.data, 105) == 0); /* PNG is lossless, BGR kept */
    CHECK_OK(datum_decode(val, vlen, IMAGE_GRAY, "k", &d));
    CHECK_EQ_INT(d.channels, 1);
    free(val);
    CHECK_OK(datum_pack(-1, -1, -1, jpg, jlen, 4, 1, &val, &vlen));
    CHECK_OK(datum_decode(val, vlen, IMAGE_COLOR, "k", &d));
    CHECK_EQ_INT(d.channels, 3);
    CHECK_EQ_INT(d.width, 7);
    free(val);
    /* resize: constant stays constant, identity size copies */
    struct image r;
    CHECK_OK(image_resize(&img, 5, 7, &r));
    CHECK(memcmp(r.data, img.data, 105) == 0);
    image_free(&r);
    memset(img.data, 77, 105);
    CHECK_OK(image_resize(&img, 9, 4, &r));
    int same = 1;
    for (int i = 0; i < 3 * 9 * 4; i++)
        same &= r.data[i] == 77;
    CHECK(same);
    image_free(&r);
    image_free(&img);
    datum_free(&d);
    free(png);
    free(jpg);
}

static void transformer_math(void)
{
    /* 2 x 4 x 5 input, values c*20 + y*5 + x */
    uint8_t in[40];
    for (int i = 0; i < 40; i++)
        in[i] = (uint8_t)i;
    Caffe__TransformationParameter tp = CAFFE__TRANSFORMATION_PARAMETER__INIT;
    float mv[2] = { 3, 7 };
    tp.has_scale = true, tp.scale = 0.5f;
    tp.has_crop_size = true, tp.crop_size = 3;
    tp.n_mean_value = 2, tp.mean_value = mv;
    struct transformer t;
    CHECK_OK(transformer_init(&t, &tp, CAFFE__PHASE__TEST));
    float out[18];
    CHECK_OK(transformer_apply(&t, NULL, in, NULL, 2, 4, 5, out));
    /* centre crop offsets (4-3)/2 = 0, (5-3)/2 = 1 */
    CHECK(out[0] == (1 - 3) * 0.5f);
    CHECK(out[4] == (6 + 1 - 3) * 0.5f);
    CHECK(out[9] == (20 + 1 - 7) * 0.5f);
    transformer_free(&t);
    /* mirror in TRAIN: every output row reversed, or not, as a whole */
    tp.has_mirror = true, tp.mirror = true;
    tp.n_mean_value = 1;
    CHECK_OK(transformer_init(&t, &tp, CAFFE__PHASE__TRAIN));
    struct rng rng;
    rng_seed(&rng, 3);
    int flips = 0, crops = 0;
    for (int trial = 0; trial < 40; trial++) {
        CHECK_OK(transformer_apply(&t, &rng, in, NULL, 2, 4, 5, out));
        /* reconstruct the pixel: v = out/0.5 + 3 */
        int a = (int)(out[0] * 2 + 3), b = (int)(out[2] * 2 + 3);
        bool flipped = a > b;
        flips += flipped;
        int left = flipped ? b : a; /* leftmost source pixel of row 0 */
        CHECK(left % 5 <= 2 && left / 5 <= 1);
        crops += left != 1;
        CHECK(abs(a - b) == 2);
    }
    CHECK_MSG(flips > 5 && flips < 35, "mirror chose %d of 40", flips);
    CHECK_MSG(crops > 0, "random crops never moved");
    transformer_free(&t);
    /* errors: crop too large, mean values for the wrong channel count */
    tp.crop_size = 9;
    CHECK_OK(transformer_init(&t, &tp, CAFFE__PHASE__TEST));
    CHECK(transformer_apply(&t, NULL, in, NULL, 2, 4, 5, out) != 0);
    transformer_free(&t);
    float mv3[3] = { 1, 2, 3 };
    tp.crop_size = 0, tp.n_mean_value = 3, tp.mean_value = mv3;
    CHECK_OK(transformer_init(&t, &tp, CAFFE__PHASE__TEST));
    CHECK(transformer_apply(&t, NULL, in, NULL, 2, 4, 5, out) != 0);
    transformer_free(&t);
    tp.mean_file = "/nonexistent/mean.binaryproto";
    CHECK(transformer_init(&t, &tp, CAFFE__PHASE__TEST) != 0);
}

/* A Data layer over path with the given parameters. */
static int data_layer(const char *path, int batch, Caffe__Phase phase, const Caffe__TransformationParameter *tp,
                      struct rng *rng, struct tensor **tops, struct layer **l)
{
    static Caffe__DataParameter dp;
    static Caffe__LayerParameter lp;
    Caffe__DataParameter dpi = CAFFE__DATA_PARAMETER__INIT;
    Caffe__LayerParameter lpi = CAFFE__LAYER_PARAMETER__INIT;
    dp = dpi;
    lp = lpi;
    dp.source = (char *)path;
    dp.has_batch_size = true, dp.batch_size = (uint32_t)batch;
    dp.has_backend = true, dp.backend = CAFFE__DATA_PARAMETER__DB__LMDB;
    lp.name = "data", lp.type = "Data";
    lp.data_param = &dp;
    lp.transform_param = (Caffe__TransformationParameter *)tp;
    return layer_create(&lp, phase, rng, NULL, 0, tops, 2, l);
}

static void sharding(void)
{
    char *dir = check_tmpdir("shard");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    make_db(path, DB_LMDB, 10);
    int seen[10] = { 0 };
    for (int r = 0; r < 3; r++) {
        struct tensor *tops[2] = { tensor_new(), tensor_new() };
        struct layer *l = NULL;
        CHECK_OK(data_layer(path, 2, CAFFE__PHASE__TRAIN, NULL, NULL, tops, &l));
        if (!l)
            continue;
        CHECK_OK(data_source_set_shard(l, r, 3));
        int per_pass = (10 - r + 2) / 3; /* records r, r+3, ... */
        int got = 0;
        for (int f = 0; f < per_pass; f++) { /* two passes' worth in batches of 2 */
            CHECK_OK(l->kind->forward(l, NULL, tops));
            for (int i = 0; i < 2; i++) {
                int lab = (int)tensor_data(tops[1])[i];
                CHECK_MSG(lab % 3 == r, "rank %d read record %d", r, lab);
                if (got < per_pass)
                    seen[lab]++;
                got++;
            }
        }
        CHECK(data_source_set_shard(l, 0, 1) != 0); /* too late: already reading */
        layer_free(l);
        tensor_free(tops[0]);
        tensor_free(tops[1]);
    }
    for (int i = 0; i < 10; i++)
        CHECK_MSG(seen[i] == 1, "record %d read %d times in one pass over all ranks", i, seen[i]);
    free(dir);
}

static void wraparound_and_labels(void)
{
    char *dir = check_tmpdir("wrap");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    make_db(path, DB_LMDB, 5);
    struct tensor *tops[2] = { tensor_new(), tensor_new() };
    struct layer *l = NULL;
    CHECK_OK(data_layer(path, 3, CAFFE__PHASE__TEST, NULL, NULL, tops, &l));
    int want[9] = { 0, 1, 2, 3, 4, 0, 1, 2, 3 };
    for (int f = 0; l && f < 3; f++) {
        CHECK_OK(l->kind->forward(l, NULL, tops));
        CHECK_EQ_INT(tops[0]->shape[0], 3);
        CHECK_EQ_INT(tops[1]->num_axes, 1);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(tensor_data(tops[1])[i], want[f * 3 + i]);
            CHECK_EQ_INT(tensor_data(tops[0])[i * 6 + 2], want[f * 3 + i] + 2);
        }
    }
    layer_free(l);
    tensor_free(tops[0]);
    tensor_free(tops[1]);
    free(dir);
}

static void prefetch_determinism(void)
{
    char *dir = check_tmpdir("prefetch");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    make_db(path, DB_LMDB, 7);
    Caffe__TransformationParameter tp = CAFFE__TRANSFORMATION_PARAMETER__INIT;
    tp.has_mirror = true, tp.mirror = true;
    tp.has_crop_size = true, tp.crop_size = 2;
    float runs[2][5][8];
    for (int run = 0; run < 2; run++) {
        struct rng rng;
        rng_seed(&rng, 42);
        struct tensor *tops[2] = { tensor_new(), tensor_new() };
        struct layer *l = NULL;
        CHECK_OK(data_layer(path, 4, CAFFE__PHASE__TRAIN, &tp, &rng, tops, &l));
        for (int f = 0; l && f < 5; f++) {
            if (run == 1)
                usleep(2000); /* a different interleaving with the prefetch thread */
            CHECK_OK(l->kind->forward(l, NULL, tops));
            CHECK_EQ_INT(tops[0]->count, 16);
            memcpy(runs[run][f], tensor_data(tops[0]), 8 * sizeof(float));
        }
        layer_free(l);
        tensor_free(tops[0]);
        tensor_free(tops[1]);
    }
    CHECK(memcmp(runs[0], runs[1], sizeof runs[0]) == 0);
    free(dir);
}

static void data_layer_errors(void)
{
    char *dir = check_tmpdir("empty");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    make_db(path, DB_LMDB, 0);
    struct tensor *tops[2] = { tensor_new(), tensor_new() };
    struct layer *l = NULL;
    CHECK(data_layer(path, 2, CAFFE__PHASE__TEST, NULL, NULL, tops, &l) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "empty") != NULL, "message: %s", crema_errmsg());
    CHECK(data_layer("/nonexistent/db", 2, CAFFE__PHASE__TEST, NULL, NULL, tops, &l) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "/nonexistent/db") != NULL, "message: %s", crema_errmsg());
    /* a bad record in the middle: the forward that reaches it fails, naming it */
    snprintf(path, sizeof path, "%s/bad", dir);
    struct db *db = NULL;
    CHECK_OK(db_create(path, DB_LMDB, &db));
    uint8_t pix[6] = { 0 }, *val;
    size_t vlen;
    CHECK_OK(datum_pack(1, 2, 3, pix, 6, 0, -1, &val, &vlen));
    CHECK_OK(db_put(db, "a", 1, val, vlen));
    CHECK_OK(db_put(db, "b", 1, val, vlen - 1));
    free(val);
    CHECK_OK(db_close(db));
    CHECK_OK(data_layer(path, 2, CAFFE__PHASE__TEST, NULL, NULL, tops, &l));
    if (l) {
        CHECK(l->kind->forward(l, NULL, tops) != 0);
        CHECK_MSG(strstr(crema_errmsg(), "key b") != NULL, "message: %s", crema_errmsg());
        CHECK(l->kind->forward(l, NULL, tops) != 0); /* stays failed, no hang */
        layer_free(l);
    }
    tensor_free(tops[0]);
    tensor_free(tops[1]);
    free(dir);
}

/* convert-imageset's records read back through the Data layer. */
static void imageset_through_data_layer(void)
{
    char *dir = check_tmpdir("imageset");
    char *cd = check_shared("corpus/caffeonspark/images_catdog");
    const char *modes[2] = { "-resize_height 16 -resize_width 16", "-encoded -resize_height 16 -resize_width 16 -encode_type png" };
    float first[2][3];
    for (int m = 0; m < 2; m++) {
        char cmd[4096], path[600];
        snprintf(path, sizeof path, "%s/db%d", dir, m);
        snprintf(cmd, sizeof cmd, "'%s' convert-imageset '%s/' '%s/labels.txt' '%s' %s >/dev/null", check_crema_bin(),
                 cd, cd, path, modes[m]);
        CHECK_EQ_INT(system(cmd), 0);
        struct tensor *tops[2] = { tensor_new(), tensor_new() };
        struct layer *l = NULL;
        CHECK_OK(data_layer(path, 53, CAFFE__PHASE__TEST, NULL, NULL, tops, &l));
        if (l) {
            CHECK_OK(l->kind->forward(l, NULL, tops));
            CHECK_EQ_INT(tops[0]->shape[1], 3);
            CHECK_EQ_INT(tops[0]->shape[2], 16);
            int cats = 0;
            for (int i = 0; i < 53; i++)
                cats += tensor_data(tops[1])[i] == 0;
            CHECK_MSG(cats > 0 && cats < 53, "labels: %d cats of 53", cats);
            for (int k = 0; k < 3; k++)
                first[m][k] = tensor_data(tops[0])[k];
            layer_free(l);
        }
        tensor_free(tops[0]);
        tensor_free(tops[1]);
    }
    /* PNG is lossless: encoded and raw records give the same pixels */
    CHECK(memcmp(first[0], first[1], sizeof first[0]) == 0);
    free(cd);
    free(dir);
}

CHECK_MAIN(CASE(db_roundtrip_lmdb), CASE(db_roundtrip_leveldb), CASE(db_errors), CASE(datum_errors),
           CASE(encoded_images), CASE(transformer_math), CASE(sharding), CASE(wraparound_and_labels),
           CASE(prefetch_determinism), CASE(data_layer_errors), CASE(imageset_through_data_layer))
