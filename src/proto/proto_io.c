/* Caffe's binary files (protobuf wire format through protobuf-c) and the
 * file-level readers and writers for both formats. */
#include "proto/proto_io.h"
#include "util/err.h"
#include "util/io.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* protobuf-c says only that unpacking failed; this walk over the wire format
 * finds where, so the message can name the offset and the field. Returns
 * false with why filled in at the first defect; true if the bytes look
 * well-formed (then the defect is a missing required field or the like). */
static bool wire_find_defect(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                             size_t base, int depth, char *why, size_t n)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        uint64_t tag = 0;
        int shift = 0;
        for (;;) {
            if (i >= len) {
                snprintf(why, n, "at byte %zu in %s: truncated field tag", base + start, desc->name);
                return false;
            }
            uint8_t c = data[i++];
            if (shift < 64)
                tag |= (uint64_t)(c & 0x7f) << shift;
            shift += 7;
            if (!(c & 0x80))
                break;
            if (shift >= 70) {
                snprintf(why, n, "at byte %zu in %s: malformed field tag", base + start, desc->name);
                return false;
            }
        }
        uint64_t number = tag >> 3;
        unsigned wt = (unsigned)(tag & 7);
        const ProtobufCFieldDescriptor *f =
            number <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)number) : NULL;
        const char *fname = f ? f->name : "(unknown field)";
        if (number == 0) {
            snprintf(why, n, "at byte %zu in %s: field number 0 is invalid", base + start, desc->name);
            return false;
        }
        switch (wt) {
        case 0: {
            size_t k = 0;
            while (i < len && (data[i] & 0x80) && k < 10) {
                i++;
                k++;
            }
            if (i >= len || k >= 10) {
                snprintf(why, n, "at byte %zu in %s: field %s (number %llu): truncated or malformed varint",
                         base + start, desc->name, fname, (unsigned long long)number);
                return false;
            }
            i++;
            break;
        }
        case 1:
        case 5: {
            size_t w = wt == 1 ? 8 : 4;
            if (len - i < w) {
                snprintf(why, n, "at byte %zu in %s: field %s (number %llu): truncated %zu-byte value",
                         base + start, desc->name, fname, (unsigned long long)number, w);
                return false;
            }
            i += w;
            break;
        }
        case 2: {
            uint64_t l = 0;
            shift = 0;
            for (;;) {
                if (i >= len || shift >= 35) {
                    snprintf(why, n, "at byte %zu in %s: field %s (number %llu): truncated length",
                             base + start, desc->name, fname, (unsigned long long)number);
                    return false;
                }
                uint8_t c = data[i++];
                l |= (uint64_t)(c & 0x7f) << shift;
                shift += 7;
                if (!(c & 0x80))
                    break;
            }
            if (l > len - i) {
                snprintf(why, n,
                         "at byte %zu in %s: field %s (number %llu): length %llu runs past the end "
                         "(%zu bytes left)",
                         base + start, desc->name, fname, (unsigned long long)number, (unsigned long long)l,
                         len - i);
                return false;
            }
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 100 &&
                !wire_find_defect(f->descriptor, data + i, (size_t)l, base + i, depth + 1, why, n))
                return false;
            i += (size_t)l;
            break;
        }
        default:
            snprintf(why, n, "at byte %zu in %s: field %s (number %llu): unsupported wire type %u",
                     base + start, desc->name, fname, (unsigned long long)number, wt);
            return false;
        }
    }
    return true;
}

int proto_parse_binary(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                       const char *filename, ProtobufCMessage **out)
{
    const char *name = filename ? filename : "<binary>";
    *out = protobuf_c_message_unpack(desc, NULL, len, data);
    if (*out)
        return CREMA_OK;
    char why[400];
    why[0] = 0;
    if (wire_find_defect(desc, data, len, 0, 0, why, sizeof why))
        snprintf(why, sizeof why, "the wire format is intact, but a field has the wrong wire type "
                                  "or a required field is missing");
    return err_set(CREMA_ERR_PARSE, "%s: not a valid %s (%zu bytes): %s", name, desc->name, len, why);
}

/* Reads path (a file:// prefix allowed) whole and parses it as text or as
 * binary. */
static int proto_read(const char *path, const ProtobufCMessageDescriptor *desc, bool text, ProtobufCMessage **out)
{
    *out = NULL;
    const char *p = io_strip_file_uri(path);
    uint8_t *data;
    size_t len;
    /* Binary files (weights, solver states, means) must be regular files:
     * -weights /dev/zero would otherwise read gigabytes before failing. */
    int rc = text ? io_read_file(p, IO_MAX_MESSAGE, &data, &len)
                  : io_read_regular_file(p, IO_MAX_MESSAGE, &data, &len);
    if (rc)
        return rc;
    rc = text ? proto_parse_text(desc, (const char *)data, len, p, out) : proto_parse_binary(desc, data, len, p, out);
    free(data);
    return rc;
}

int proto_read_text(const char *path, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    return proto_read(path, desc, true, out);
}

int proto_read_binary(const char *path, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    return proto_read(path, desc, false, out);
}

int proto_write_text(const char *path, const ProtobufCMessage *msg)
{
    char *text;
    size_t len;
    int rc = proto_print_text(msg, &text, &len);
    if (rc)
        return rc;
    rc = io_write_atomic(io_strip_file_uri(path), text, len);
    free(text);
    return rc;
}

int proto_write_binary(const char *path, const ProtobufCMessage *msg)
{
    const char *p = io_strip_file_uri(path);
    size_t size = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return err_set(CREMA_ERR_NOMEM, "%s: cannot allocate %zu bytes for a %s", p, size,
                       msg->descriptor->name);
    size_t got = protobuf_c_message_pack(msg, buf);
    int rc = got == size ? io_write_atomic(p, buf, size)
                         : err_set(CREMA_ERR_INVALID, "%s: packing a %s gave %zu bytes, expected %zu", p,
                                   msg->descriptor->name, got, size);
    free(buf);
    return rc;
}

void proto_free(ProtobufCMessage *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}
