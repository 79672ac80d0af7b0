/* The CoSData layer (CaffeOnSpark's DataFrame-fed data layer) and image
 * feeding of MemoryData layers, through the C API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crema.h"
#include "data/image.h"

static char *write_net(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static crema_net *open_net(const char *name, const char *text)
{
    char *dir = check_tmpdir("cos_data");
    char *path = write_net(dir, name, text);
    crema_net *net = NULL;
    CHECK_OK(crema_net_open(path, NULL, CREMA_TRAIN, &net));
    free(path);
    free(dir);
    return net;
}

static void expect_open_error(const char *name, const char *text, const char *needle)
{
    char *dir = check_tmpdir("cos_data");
    char *path = write_net(dir, name, text);
    crema_net *net = NULL;
    CHECK(crema_net_open(path, NULL, CREMA_TRAIN, &net) != 0);
    CHECK_MSG(strstr(crema_errmsg(), needle) != NULL, "expected \"%s\" in: %s", needle, crema_errmsg());
    crema_net_free(net);
    free(path);
    free(dir);
}

static void test_numeric_tops(void)
{
    crema_net *net = open_net("num.prototxt",
        "layer { name: \"cos\" type: \"CoSData\" top: \"a\" top: \"t\"\n"
        "  cos_data_param { batch_size: 2\n"
        "    top { name: \"a\" type: FLOAT_ARRAY channels: 2 height: 3 sample_num_axes: 2 }\n"
        "    top { name: \"t\" type: INT_ARRAY channels: 3 transpose: true } } }\n");
    if (!net)
        return;
    CHECK_EQ_INT(crema_net_cos_top_type(net, "cos", 0), 4);
    CHECK_EQ_INT(crema_net_cos_top_type(net, "cos", 1), 3);
    CHECK_EQ_INT((int)crema_net_cos_top_size(net, "cos", 0), 6);
    CHECK_EQ_INT(crema_net_cos_top_type(net, "cos", 2), -1);
    crema_blob b;
    CHECK_OK(crema_net_blob(net, "a", &b));
    CHECK(b.num_axes == 3 && b.shape[0] == 2 && b.shape[1] == 2 && b.shape[2] == 3);
    CHECK_OK(crema_net_blob(net, "t", &b));
    CHECK(b.num_axes == 2 && b.shape[0] == 3 && b.shape[1] == 2);
    /* forward before feeding names the call to make */
    CHECK(crema_net_forward(net, NULL) != 0);
    CHECK(strstr(crema_errmsg(), "crema_net_set_cos_data") != NULL);
    float a[4 * 6], t[4 * 3];
    for (int i = 0; i < 24; i++)
        a[i] = (float)i;
    for (int i = 0; i < 12; i++)
        t[i] = (float)(100 + i);
    CHECK_OK(crema_net_set_cos_data(net, "cos", 0, a, NULL, 4));
    CHECK_OK(crema_net_set_cos_data(net, "cos", 1, t, NULL, 4));
    for (int pass = 0; pass < 3; pass++) {
        CHECK_OK(crema_net_forward(net, NULL));
        int first = pass % 2 == 0 ? 0 : 2; /* wraps after two batches */
        CHECK_OK(crema_net_blob(net, "a", &b));
        for (int i = 0; i < 12; i++)
            CHECK_MSG(b.data[i] == a[first * 6 + i], "a[%d] = %g, expected %g", i, b.data[i], a[first * 6 + i]);
        CHECK_OK(crema_net_blob(net, "t", &b));
        /* (channels, batch): sample s's element c at c * batch + s */
        for (int c = 0; c < 3; c++)
            for (int s = 0; s < 2; s++)
                CHECK_MSG(b.data[c * 2 + s] == t[(first + s) * 3 + c], "t[%d][%d] = %g", c, s, b.data[c * 2 + s]);
    }
    CHECK(crema_net_set_cos_data(net, "cos", 0, a, NULL, 3) != 0);
    CHECK(strstr(crema_errmsg(), "multiple of batch_size") != NULL);
    CHECK(crema_net_set_cos_data(net, "cos", 2, a, NULL, 2) != 0);
    CHECK(crema_net_set_cos_data(net, "nope", 0, a, NULL, 2) != 0);
    CHECK(strstr(crema_errmsg(), "nope") != NULL);
    size_t lens[2] = { 1, 1 };
    CHECK(crema_net_set_cos_data(net, "cos", 0, a, lens, 2) != 0);
    crema_net_free(net);
}

static void test_image_tops(void)
{
    crema_net *net = open_net("img.prototxt",
        "layer { name: \"cos\" type: \"CoSData\" top: \"enc\" top: \"raw\"\n"
        "  cos_data_param { batch_size: 2\n"
        "    top { name: \"enc\" type: ENCODED_IMAGE channels: 1 height: 4 width: 4 sample_num_axes: 3\n"
        "          transform_param { scale: 0.5 mean_value: 2 } }\n"
        "    top { name: \"raw\" type: RAW_IMAGE channels: 1 height: 3 width: 3 sample_num_axes: 3\n"
        "          transform_param { crop_size: 2 } out_height: 2 out_width: 2 } } }\n");
    if (!net)
        return;
    /* two 8x8 PNGs of constant grey, resized to the top's 4x4 */
    uint8_t *files[2] = { NULL, NULL };
    size_t lens[2] = { 0, 0 };
    for (int i = 0; i < 2; i++) {
        struct image img = { 1, 8, 8, malloc(64) };
        memset(img.data, 10 + 20 * i, 64);
        CHECK_OK(image_encode(&img, "png", &files[i], &lens[i]));
        image_free(&img);
    }
    uint8_t *cat = malloc(lens[0] + lens[1]);
    memcpy(cat, files[0], lens[0]);
    memcpy(cat + lens[0], files[1], lens[1]);
    CHECK_OK(crema_net_set_cos_data(net, "cos", 0, cat, lens, 2));
    uint8_t raw[2 * 9];
    for (int i = 0; i < 18; i++)
        raw[i] = (uint8_t)i;
    CHECK_OK(crema_net_set_cos_data(net, "cos", 1, raw, NULL, 2));
    CHECK_OK(crema_net_forward(net, NULL));
    crema_blob b;
    CHECK_OK(crema_net_blob(net, "enc", &b));
    CHECK(b.count == 32);
    for (int i = 0; i < 16; i++) {
        CHECK_MSG(b.data[i] == (10 - 2) * 0.5f, "enc[0][%d] = %g", i, b.data[i]);
        CHECK_MSG(b.data[16 + i] == (30 - 2) * 0.5f, "enc[1][%d] = %g", i, b.data[16 + i]);
    }
    /* TRAIN crop of a 3x3 image to 2x2: a window of the original values */
    CHECK_OK(crema_net_blob(net, "raw", &b));
    CHECK(b.count == 8);
    CHECK(b.data[1] == b.data[0] + 1 && b.data[2] == b.data[0] + 3 && b.data[0] <= 4);
    /* a broken file names its image */
    size_t bad_lens[2] = { 4, lens[1] };
    CHECK(crema_net_set_cos_data(net, "cos", 0, cat, bad_lens, 2) != 0);
    CHECK_MSG(strstr(crema_errmsg(), "image 0") != NULL, "%s", crema_errmsg());
    CHECK(crema_net_set_cos_data(net, "cos", 0, cat, NULL, 2) != 0);
    CHECK(strstr(crema_errmsg(), "lengths") != NULL);
    free(cat);
    free(files[0]);
    free(files[1]);
    crema_net_free(net);
}

static void test_bad_params(void)
{
    expect_open_error("count.prototxt",
                      "layer { name: \"c\" type: \"CoSData\" top: \"a\" top: \"b\"\n"
                      "  cos_data_param { batch_size: 2 top { name: \"a\" type: FLOAT channels: 1 } } }\n",
                      "must match");
    expect_open_error("axes.prototxt",
                      "layer { name: \"c\" type: \"CoSData\" top: \"a\"\n"
                      "  cos_data_param { batch_size: 2 top { name: \"a\" type: FLOAT channels: 1 sample_num_axes: 4 } } }\n",
                      "sample_num_axes");
    expect_open_error("transpose.prototxt",
                      "layer { name: \"c\" type: \"CoSData\" top: \"a\"\n"
                      "  cos_data_param { batch_size: 2 top { name: \"a\" type: FLOAT_ARRAY channels: 2 height: 2\n"
                      "    sample_num_axes: 2 transpose: true } } }\n",
                      "transpose");
    expect_open_error("batch.prototxt",
                      "layer { name: \"c\" type: \"CoSData\" top: \"a\"\n"
                      "  cos_data_param { top { name: \"a\" type: FLOAT channels: 1 } } }\n",
                      "batch_size");
    expect_open_error("dims.prototxt",
                      "layer { name: \"c\" type: \"CoSData\" top: \"a\"\n"
                      "  cos_data_param { batch_size: 1 top { name: \"a\" type: FLOAT_ARRAY channels: 2 sample_num_axes: 2 } } }\n",
                      "height must be positive");
}

static void test_memory_images(void)
{
    crema_net *net = open_net("mem.prototxt",
        "layer { name: \"data\" type: \"MemoryData\" top: \"data\" top: \"label\"\n"
        "  memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 }\n"
        "  transform_param { scale: 0.5 mean_value: 1 } }\n");
    if (!net)
        return;
    uint8_t px[8] = { 1, 3, 5, 7, 9, 11, 13, 15 };
    float labels[2] = { 4, 5 };
    CHECK_OK(crema_net_set_memory_images(net, "data", px, NULL, 2, 1, 2, 2, labels));
    CHECK_OK(crema_net_forward(net, NULL));
    crema_blob b;
    CHECK_OK(crema_net_blob(net, "data", &b));
    for (int i = 0; i < 8; i++)
        CHECK_MSG(b.data[i] == (px[i] - 1) * 0.5f, "data[%d] = %g", i, b.data[i]);
    CHECK_OK(crema_net_blob(net, "label", &b));
    CHECK(b.data[0] == 4 && b.data[1] == 5);
    CHECK(crema_net_set_memory_images(net, "data", px, NULL, 2, 1, 1, 4, labels) == 0); /* 1x4 has 4 values too */
    CHECK(crema_net_set_memory_images(net, "data", px, NULL, 2, 2, 2, 2, labels) != 0);
    CHECK(strstr(crema_errmsg(), "the top takes 4") != NULL);
    crema_net_free(net);
}

CHECK_MAIN(CASE(test_numeric_tops), CASE(test_image_tops), CASE(test_bad_params), CASE(test_memory_images))
