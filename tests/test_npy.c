/* .npy: our writer reads back, and numpy reads what we write (when numpy is there). */
#include "check.h"
#include "util/npy.h"

#include <stdio.h>
#include <string.h>

static void roundtrip(void)
{
    char *dir = check_tmpdir("npy");
    char path[4096];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    int shape[3] = { 2, 3, 4 };
    float v[24];
    for (int i = 0; i < 24; i++)
        v[i] = (float)i * 0.5f - 3.f;
    CHECK_OK(npy_write(path, 3, shape, v));
    struct npy_array a;
    CHECK_OK(npy_read(path, &a));
    CHECK_EQ_INT(a.num_axes, 3);
    CHECK_EQ_INT(a.shape[2], 4);
    CHECK_EQ_INT(a.count, 24);
    CHECK(a.data && memcmp(a.data, v, sizeof v) == 0);
    npy_free(&a);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import numpy as n; a=n.load('%s'); assert a.dtype==n.float32 and a.shape==(2,3,4) "
             "and a[1,2,3]==%g\"",
             path, v[23]);
    if (system("python3 -c 'import numpy' 2>/dev/null") == 0)
        CHECK_MSG(system(cmd) == 0, "numpy could not read %s as float32 (2,3,4)", path);
    else
        check_skip("numpy is not installed; numpy's own reading is not checked");
    free(dir);
}

static void numpy_written(void)
{
    if (system("python3 -c 'import numpy' 2>/dev/null") != 0) {
        check_skip("numpy is not installed");
        return;
    }
    char *dir = check_tmpdir("npy2");
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import numpy as n; n.save('%s/d.npy', n.arange(6, dtype=n.float64).reshape(3,2)); "
             "n.save('%s/s.npy', n.arange(5, dtype=n.int64))\"", dir, dir);
    CHECK(system(cmd) == 0);
    char path[4096];
    struct npy_array a;
    snprintf(path, sizeof path, "%s/d.npy", dir);
    CHECK_OK(npy_read(path, &a));
    CHECK_EQ_INT(a.num_axes, 2);
    CHECK(a.data && a.data[5] == 5.f);
    npy_free(&a);
    snprintf(path, sizeof path, "%s/s.npy", dir);
    CHECK_OK(npy_read(path, &a));
    CHECK_EQ_INT(a.num_axes, 1);
    CHECK_EQ_INT(a.shape[0], 5);
    npy_free(&a);
    free(dir);
}

static void bad_input(void)
{
    struct npy_array a;
    const unsigned char junk[] = "not an npy file at all";
    CHECK(npy_parse("junk", junk, sizeof junk, &a) != 0);
    CHECK(strstr(crema_errmsg(), "junk") != NULL);
    unsigned char trunc[] = "\x93NUMPY\x01\x00\x40\x00{'descr': '<f4', 'fortran_order': False, 'shape': (100,), }";
    CHECK(npy_parse("trunc", trunc, sizeof trunc - 1, &a) != 0);
    CHECK(npy_read("/nonexistent/x.npy", &a) != 0);
}

CHECK_MAIN(CASE(roundtrip), CASE(numpy_written), CASE(bad_input))
