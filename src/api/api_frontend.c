/* The C API's calls for front ends in other languages (the JVM's, over JNI):
 * Caffe's messages between text and binary, and a restore that takes its
 * weights from a given file. */
#include "crema.h"
#include "api/handles.h"
#include "proto/hdf5_snapshot.h"
#include "proto/proto_io.h"
#include "proto/upgrade.h"
#include "util/err.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

crema_status crema_proto_text_to_binary(const char *message, const char *text, size_t len, const char *name,
                                        uint8_t **out, size_t *out_len)
{
    if (!out || !out_len)
        return err_set(CREMA_ERR_INVALID, "crema_proto_text_to_binary: out is NULL");
    *out = NULL;
    *out_len = 0;
    if (!text && len)
        return err_set(CREMA_ERR_INVALID, "crema_proto_text_to_binary: no text");
    const ProtobufCMessageDescriptor *desc;
    const char *type;
    int rc = api_proto_type(message, &desc, &type);
    if (rc)
        return rc;
    const char *where = name ? name : "(text)";
    ProtobufCMessage *msg = NULL;
    rc = proto_parse_text(desc, text ? text : "", len, where, &msg);
    if (rc)
        return rc;
    /* what Caffe's ReadNetParamsFromTextFile / ReadSolverParamsFromTextFile
     * give: old formats upgraded */
    if (desc == &caffe__net_parameter__descriptor && upgrade_net_needed((Caffe__NetParameter *)msg))
        rc = upgrade_net((Caffe__NetParameter *)msg, where, NULL);
    else if (desc == &caffe__solver_parameter__descriptor && upgrade_solver_needed((Caffe__SolverParameter *)msg))
        rc = upgrade_solver((Caffe__SolverParameter *)msg, where, NULL);
    if (!rc) {
        size_t n = protobuf_c_message_get_packed_size(msg);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf) {
            rc = err_set(CREMA_ERR_NOMEM, "%s: out of memory for %zu bytes", where, n);
        } else {
            protobuf_c_message_pack(msg, buf);
            *out = buf;
            *out_len = n;
        }
    }
    proto_free(msg);
    return rc;
}

crema_status crema_proto_binary_to_text(const char *message, const uint8_t *data, size_t len, char **out,
                                        size_t *out_len)
{
    if (!out)
        return err_set(CREMA_ERR_INVALID, "crema_proto_binary_to_text: out is NULL");
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!data && len)
        return err_set(CREMA_ERR_INVALID, "crema_proto_binary_to_text: no data");
    const ProtobufCMessageDescriptor *desc;
    const char *type;
    int rc = api_proto_type(message, &desc, &type);
    if (rc)
        return rc;
    static const uint8_t empty[1];
    ProtobufCMessage *msg = NULL;
    rc = proto_parse_binary(desc, data ? data : empty, len, "(binary)", &msg);
    if (rc)
        return rc;
    size_t n = 0;
    rc = proto_print_text(msg, out, &n);
    proto_free(msg);
    if (!rc && out_len)
        *out_len = n;
    return rc;
}

/* The state rewritten to name weights_file, beside the state (the caller's
 * own directory), then restored as Caffe restores. An HDF5 state's
 * data-layer read positions are not carried over: the nets front ends feed
 * have no Data layer whose position matters. */
crema_status crema_solver_restore_weights(crema_solver *s, const char *state_file, const char *weights_file)
{
    if (!s || !state_file || !weights_file)
        return err_set(CREMA_ERR_INVALID, "crema_solver_restore_weights: NULL argument");
    bool h5 = hdf5_is_snapshot_name(state_file);
    Caffe__SolverState *st = NULL;
    int rc = h5 ? hdf5_read_solver_state(state_file, &st)
                : proto_read_binary(state_file, &caffe__solver_state__descriptor, (ProtobufCMessage **)&st);
    if (rc)
        return err_prefix(rc, "restoring %s", state_file);
    char *weights = strdup(weights_file);
    size_t n = strlen(state_file) + 64;
    char *tmp = malloc(n);
    if (!weights || !tmp) {
        free(weights);
        free(tmp);
        proto_free(&st->base);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    free(st->learned_net);
    st->learned_net = weights;
    snprintf(tmp, n, "%s.restore-%ld-%p%s", state_file, (long)getpid(), (void *)s, h5 ? ".h5" : "");
    rc = h5 ? hdf5_write_solver_state(tmp, st) : proto_write_binary(tmp, &st->base);
    proto_free(&st->base);
    if (!rc)
        rc = crema_solver_restore(s, tmp);
    unlink(tmp);
    free(tmp);
    return rc;
}
