/* Caffe's files as protobuf messages: the text format (read and print,
 * generic over protobuf-c descriptors) and the binary format, from memory
 * or from files. Messages returned here are freed with proto_free. */
#ifndef CREMA_PROTO_PROTO_IO_H
#define CREMA_PROTO_PROTO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#include "caffe.pb-c.h"

/* Text format. Errors read "FILE:LINE:COL: ..." naming the field and what
 * was expected. filename is only used in messages. */
int proto_parse_text(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                     const char *filename, ProtobufCMessage **out);
/* Reads text into an existing message, as protobuf's TextFormat::Merge:
 * scalars are replaced, repeated fields appended to, a singular message
 * already present takes the new fields. */
int proto_merge_text(ProtobufCMessage *msg, const char *text, size_t len, const char *filename);
/* Prints msg in protobuf's text format (as Caffe's PrintToString would);
 * *out is malloc'd and NUL-terminated. */
int proto_print_text(const ProtobufCMessage *msg, char **out, size_t *len);

/* One value of field f (v points at it as it lies in the message, or at
 * one element of a repeated field) as the text format writes it, without
 * the field name: strings and bytes raw (neither quoted nor escaped), a
 * message as its fields. *out is malloc'd and NUL-terminated. */
int proto_format_value(const ProtobufCFieldDescriptor *f, const void *v, char **out, size_t *len);
/* Whether a field is set (a repeated one: has elements), as the printer and
 * protobuf-c's packer decide; the bytes one element of f takes. */
bool proto_field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f);
size_t proto_field_elem_size(const ProtobufCFieldDescriptor *f);

/* Field paths ("layer[2].memory_data_param.source"; an index after a
 * repeated field, none after a singular one) into a message (proto_path.c).
 * Errors name the path, the message type and the field. */
/* The value at path, formatted as proto_format_value does; an unset scalar
 * reads as its declared default. CREMA_ERR_NOTFOUND when a message on the
 * way (or at the end) is not set, or an index is past the end. */
int proto_path_get(const ProtobufCMessage *root, const char *path, char **out, size_t *len);
/* How many values the field at path has: a repeated field's count; 1 or 0
 * for a singular one, set or not. An absent parent counts 0. */
int proto_path_count(const ProtobufCMessage *root, const char *path, size_t *n);
/* Replaces the field at path (every value of a repeated one) by value, text
 * format for that field: 3, 1.5e-3, true, TEST, "a \"quoted\" string",
 * { name: "x" } for a message. Missing messages on the way are created. */
int proto_path_set(ProtobufCMessage *root, const char *path, const char *value);
/* Appends value to the repeated field at path. */
int proto_path_add(ProtobufCMessage *root, const char *path, const char *value);
/* Unsets the field at path (a repeated one: removes every value; with an
 * index, that one value). An absent field or parent is not an error. */
int proto_path_clear(ProtobufCMessage *root, const char *path);

/* The field a path names, by the descriptors alone (indices are not
 * checked against any message). */
int proto_path_field(const ProtobufCMessageDescriptor *desc, const char *path, const ProtobufCFieldDescriptor **out);
/* The name protobuf gives a field's type ("int32", "float", "enum", ...;
 * a message field's message type, "caffe.LayerParameter"). */
const char *proto_field_type_name(const ProtobufCFieldDescriptor *f);

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
