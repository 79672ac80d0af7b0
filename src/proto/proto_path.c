/* Field paths into a message ("layer[2].memory_data_param.source"): read one
 * value, count, replace, append and unset, generically over protobuf-c's
 * descriptors; values go in and out in the text format (text_format.c). */
#include "proto/proto_io.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMBER(msg, off) ((void *)((char *)(msg) + (off)))

/* The end of a path: the message holding the last field, the field, and
 * its index (-1: none given). parent is NULL when a message on the way is
 * not set (and was not to be created). */
struct path_end {
    ProtobufCMessage *parent;
    const ProtobufCFieldDescriptor *f;
    long index;
};

static size_t repeated_count(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return *(const size_t *)((const char *)m + f->quantifier_offset);
}

/* Splits off the component at *p: its name into name[n] and its index. */
static int next_component(const char *path, const char **p, char *name, size_t n, long *index)
{
    const char *s = *p;
    size_t len = strcspn(s, ".[");
    if (len == 0 || len >= n)
        return err_set(CREMA_ERR_INVALID, "path \"%s\": %s at offset %zu", path,
                       len ? "a field name too long" : "a field name expected", (size_t)(s - path));
    memcpy(name, s, len);
    name[len] = 0;
    s += len;
    *index = -1;
    if (*s == '[') {
        char *e;
        s++;
        if (*s < '0' || *s > '9')
            return err_set(CREMA_ERR_INVALID, "path \"%s\": an index (digits) expected after %s[", path, name);
        long v = strtol(s, &e, 10);
        if (*e != ']' || v < 0)
            return err_set(CREMA_ERR_INVALID, "path \"%s\": a closing ] expected after the index of %s", path, name);
        *index = v;
        s = e + 1;
    }
    if (*s == '.') {
        s++;
        if (!*s)
            return err_set(CREMA_ERR_INVALID, "path \"%s\": a field name expected after the last '.'", path);
    } else if (*s) {
        return err_set(CREMA_ERR_INVALID, "path \"%s\": '.' or the end expected after %s", path, name);
    }
    *p = s;
    return CREMA_OK;
}

/* Walks path from root; with create, singular messages on the way that are
 * not set are made (empty). Indices past the end are CREMA_ERR_NOTFOUND. */
static int resolve(ProtobufCMessage *root, const char *path, bool create, struct path_end *end)
{
    if (!root || !path)
        return err_set(CREMA_ERR_INVALID, "a NULL message or path");
    ProtobufCMessage *m = root;
    const char *p = path;
    char name[128];
    for (;;) {
        long index = -1;
        int rc = next_component(path, &p, name, sizeof name, &index);
        if (rc)
            return rc;
        const ProtobufCMessageDescriptor *md = m->descriptor;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(md, name);
        if (!f)
            return err_set(CREMA_ERR_INVALID, "path \"%s\": message %s has no field \"%s\"", path, md->name, name);
        bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
        if (index >= 0 && !repeated)
            return err_set(CREMA_ERR_INVALID, "path \"%s\": field \"%s\" of %s is not repeated, so it takes no "
                           "index", path, name, md->name);
        if (!*p) {
            end->parent = m;
            end->f = f;
            end->index = index;
            return CREMA_OK;
        }
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            return err_set(CREMA_ERR_INVALID, "path \"%s\": field \"%s\" of %s is a %s, not a message", path, name,
                           md->name, f->type == PROTOBUF_C_TYPE_STRING ? "string" : "scalar");
        if (repeated) {
            if (index < 0)
                return err_set(CREMA_ERR_INVALID, "path \"%s\": field \"%s\" of %s is repeated: give an index",
                               path, name, md->name);
            size_t n = repeated_count(m, f);
            if ((size_t)index >= n)
                return err_set(CREMA_ERR_NOTFOUND, "path \"%s\": %s has %zu \"%s\", no index %ld", path, md->name, n,
                               name, index);
            m = (*(ProtobufCMessage ***)MEMBER(m, f->offset))[index];
            continue;
        }
        ProtobufCMessage **sub = MEMBER(m, f->offset);
        if (!*sub) {
            if (!create) {
                end->parent = NULL;
                end->f = f;
                end->index = -1;
                return err_set(CREMA_ERR_NOTFOUND, "path \"%s\": %s of %s is not set", path, name, md->name);
            }
            const ProtobufCMessageDescriptor *sd = f->descriptor;
            ProtobufCMessage *fresh = malloc(sd->sizeof_message);
            if (!fresh)
                return err_set(CREMA_ERR_NOMEM, "out of memory");
            protobuf_c_message_init(sd, fresh);
            *sub = fresh;
        }
        m = *sub;
    }
}

/* Frees what one value owns (not the value's own storage). */
static void free_value(const ProtobufCFieldDescriptor *f, void *v)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char *s = *(char **)v;
        if (s && s != (const char *)f->default_value && s != protobuf_c_empty_string)
            free(s);
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *bd = v;
        const ProtobufCBinaryData *def = f->default_value;
        if (bd->data && (!def || bd->data != def->data))
            free(bd->data);
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage *sub = *(ProtobufCMessage **)v;
        if (sub)
            protobuf_c_message_free_unpacked(sub, NULL);
    }
}

/* Unsets field f of m: a repeated one loses every value (or only value
 * index), a singular one returns to its declared default. */
static void clear_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, long index)
{
    size_t es = proto_field_elem_size(f);
    void *member = MEMBER(m, f->offset);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *n = MEMBER(m, f->quantifier_offset);
        char *arr = *(char **)member;
        if (index >= 0) {
            if ((size_t)index >= *n)
                return;
            free_value(f, arr + (size_t)index * es);
            memmove(arr + (size_t)index * es, arr + ((size_t)index + 1) * es, (*n - (size_t)index - 1) * es);
            (*n)--;
            return;
        }
        for (size_t i = 0; i < *n; i++)
            free_value(f, arr + i * es);
        free(arr);
        *(void **)member = NULL;
        *n = 0;
        return;
    }
    free_value(f, member);
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        /* protobuf-c keeps a string's default by pointer, as its init does */
        *(const void **)member = f->default_value;
        break;
    default:
        if (f->default_value)
            memcpy(member, f->default_value, es);
        else
            memset(member, 0, es);
    }
    if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE &&
        f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)MEMBER(m, f->quantifier_offset) = 0;
        else
            *(protobuf_c_boolean *)MEMBER(m, f->quantifier_offset) = 0;
    }
}

int proto_path_get(const ProtobufCMessage *root, const char *path, char **out, size_t *len)
{
    *out = NULL;
    struct path_end e;
    int rc = resolve((ProtobufCMessage *)root, path, false, &e);
    if (rc)
        return rc;
    const ProtobufCFieldDescriptor *f = e.f;
    const void *v = MEMBER(e.parent, f->offset);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (e.index < 0)
            return err_set(CREMA_ERR_INVALID, "path \"%s\": field \"%s\" of %s is repeated: give an index (or "
                           "count it)", path, f->name, e.parent->descriptor->name);
        size_t n = repeated_count(e.parent, f);
        if ((size_t)e.index >= n)
            return err_set(CREMA_ERR_NOTFOUND, "path \"%s\": %s has %zu \"%s\", no index %ld", path,
                           e.parent->descriptor->name, n, f->name, e.index);
        v = *(const char *const *)v + (size_t)e.index * proto_field_elem_size(f);
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && !*(const void *const *)v) {
        return err_set(CREMA_ERR_NOTFOUND, "path \"%s\": %s of %s is not set", path, f->name,
                       e.parent->descriptor->name);
    }
    return proto_format_value(f, v, out, len);
}

int proto_path_count(const ProtobufCMessage *root, const char *path, size_t *n)
{
    *n = 0;
    struct path_end e;
    int rc = resolve((ProtobufCMessage *)root, path, false, &e);
    if (rc == CREMA_ERR_NOTFOUND) {
        err_clear();
        return CREMA_OK;
    }
    if (rc)
        return rc;
    if (e.index >= 0)
        return err_set(CREMA_ERR_INVALID, "path \"%s\": count a repeated field without an index", path);
    *n = e.f->label == PROTOBUF_C_LABEL_REPEATED ? repeated_count(e.parent, e.f)
                                                  : (size_t)proto_field_present(e.parent, e.f);
    return CREMA_OK;
}

/* Reads "name: value" into m, naming the path in parse errors. */
static int merge_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const char *path, const char *value)
{
    size_t n = strlen(f->name) + strlen(value) + 4;
    char *text = malloc(n);
    if (!text)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    snprintf(text, n, "%s: %s", f->name, value);
    int rc = proto_merge_text(m, text, strlen(text), path);
    free(text);
    return rc;
}

static int prepare_write(ProtobufCMessage *root, const char *path, const char *value, struct path_end *e)
{
    if (!value)
        return err_set(CREMA_ERR_INVALID, "path \"%s\": a NULL value", path ? path : "(null)");
    int rc = resolve(root, path, true, e);
    if (rc)
        return rc;
    if (e->index >= 0)
        return err_set(CREMA_ERR_INVALID, "path \"%s\": give the repeated field \"%s\" without an index (set "
                       "replaces every value, add appends one)", path, e->f->name);
    return CREMA_OK;
}

int proto_path_set(ProtobufCMessage *root, const char *path, const char *value)
{
    struct path_end e;
    int rc = prepare_write(root, path, value, &e);
    if (rc)
        return rc;
    clear_field(e.parent, e.f, -1);
    return merge_field(e.parent, e.f, path, value);
}

int proto_path_add(ProtobufCMessage *root, const char *path, const char *value)
{
    struct path_end e;
    int rc = prepare_write(root, path, value, &e);
    if (rc)
        return rc;
    if (e.f->label != PROTOBUF_C_LABEL_REPEATED)
        return err_set(CREMA_ERR_INVALID, "path \"%s\": field \"%s\" of %s is not repeated: set it", path,
                       e.f->name, e.parent->descriptor->name);
    return merge_field(e.parent, e.f, path, value);
}

int proto_path_clear(ProtobufCMessage *root, const char *path)
{
    struct path_end e;
    int rc = resolve(root, path, false, &e);
    if (rc == CREMA_ERR_NOTFOUND) {
        err_clear();
        return CREMA_OK;
    }
    if (rc)
        return rc;
    clear_field(e.parent, e.f, e.index);
    return CREMA_OK;
}

int proto_path_field(const ProtobufCMessageDescriptor *desc, const char *path, const ProtobufCFieldDescriptor **out)
{
    *out = NULL;
    if (!desc || !path)
        return err_set(CREMA_ERR_INVALID, "a NULL message or path");
    const char *p = path;
    char name[128];
    for (;;) {
        long index = -1;
        int rc = next_component(path, &p, name, sizeof name, &index);
        if (rc)
            return rc;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, name);
        if (!f)
            return err_set(CREMA_ERR_INVALID, "path \"%s\": message %s has no field \"%s\"", path, desc->name, name);
        if (index >= 0 && f->label != PROTOBUF_C_LABEL_REPEATED)
            return err_set(CREMA_ERR_INVALID, "path \"%s\": field \"%s\" of %s is not repeated, so it takes no "
                           "index", path, name, desc->name);
        if (!*p) {
            *out = f;
            return CREMA_OK;
        }
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            return err_set(CREMA_ERR_INVALID, "path \"%s\": field \"%s\" of %s is not a message", path, name,
                           desc->name);
        desc = f->descriptor;
    }
}
