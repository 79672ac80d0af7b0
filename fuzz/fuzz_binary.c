/* libFuzzer target: the binary reader on arbitrary bytes as each message
 * Caffe stores in files or databases; whatever parses must print as text. */
#include <stdint.h>
#include <stdlib.h>

#include "proto/proto_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ProtobufCMessageDescriptor *const descs[] = {
        &caffe__net_parameter__descriptor,
        &caffe__solver_state__descriptor,
        &caffe__blob_proto__descriptor,
        &caffe__datum__descriptor,
    };
    for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++) {
        ProtobufCMessage *m = NULL;
        if (proto_parse_binary(descs[i], data, size, "fuzz", &m) != 0)
            continue;
        char *text;
        if (proto_print_text(m, &text, NULL) == 0)
            free(text);
        proto_free(m);
    }
    return 0;
}
