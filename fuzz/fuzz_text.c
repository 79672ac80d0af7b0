/* libFuzzer target: the text format reader and printer on arbitrary bytes,
 * as NetParameter and as SolverParameter; whatever parses must print, and
 * the printed text must read back and print the same (a fixed point: NaN
 * signs and NULs inside strings need not survive the first print). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto_io.h"

static void round_trip(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size)
{
    ProtobufCMessage *m = NULL;
    if (proto_parse_text(desc, (const char *)data, size, "fuzz", &m) != 0)
        return;
    char *text;
    size_t len;
    if (proto_print_text(m, &text, &len) == 0) {
        ProtobufCMessage *m2 = NULL;
        if (proto_parse_text(desc, text, len, "printed", &m2) != 0)
            abort(); /* the printer wrote something the reader refuses */
        char *text2;
        size_t len2;
        if (proto_print_text(m2, &text2, &len2) == 0) {
            if (len2 != len || memcmp(text, text2, len) != 0)
                abort(); /* read-print-read changed the message */
            free(text2);
        }
        proto_free(m2);
        free(text);
    }
    proto_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    round_trip(&caffe__net_parameter__descriptor, data, size);
    round_trip(&caffe__solver_parameter__descriptor, data, size);
    return 0;
}
