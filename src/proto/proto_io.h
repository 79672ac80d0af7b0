/* Caffe's files as protobuf messages: the text format (read and print,
 * generic over protobuf-c descriptors) and the binary format, from memory
 * or from files. Messages returned here are freed with proto_free. */
#ifndef CREMA_PROTO_PROTO_IO_H
#define CREMA_PROTO_PROTO_IO_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#include "caffe.pb-c.h"

/* Text format. Errors read "FILE:LINE:COL: ..." naming the field and what
 * was expected. filename is only used in messages. */
int proto_parse_text(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                     const char *filename, ProtobufCMessage **out);
/* Prints msg in protobuf's text format (as Caffe's PrintToString would);
 * *out is malloc'd and NUL-terminated. */
int proto_print_text(const ProtobufCMessage *msg, char **out, size_t *len);

/* Binary format. */
int proto_parse_binary(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                       const char *filename, ProtobufCMessage **out);

/* Files ("file:" URIs accepted). Writers are atomic (temp name + rename). */
int proto_read_text(const char *path, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
int proto_read_binary(const char *path, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
int proto_write_text(const char *path, const ProtobufCMessage *msg);
int proto_write_binary(const char *path, const ProtobufCMessage *msg);

void proto_free(ProtobufCMessage *msg);

#endif
