/* libFuzzer target: decode arbitrary bytes as a Datum (raw, float_data or an
 * encoded JPEG/PNG), then as a bare image, in every colour mode. */
#include <stddef.h>
#include <stdint.h>

#include "data/datum.h"
#include "data/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct datum d = { 0 };
    for (int mode = 0; mode < 3; mode++)
        (void)datum_decode(data, size, (enum image_color)mode, "fuzz", &d);
    datum_free(&d);
    struct image img;
    if (image_decode(data, size, IMAGE_NATIVE, &img) == 0)
        image_free(&img);
    return 0;
}
