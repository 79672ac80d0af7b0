/* Caffe's HDF5 snapshot files, .caffemodel.h5 and .solverstate.h5, read into
 * and written from the same messages the binary formats use. */
#ifndef CREMA_PROTO_HDF5_SNAPSHOT_H
#define CREMA_PROTO_HDF5_SNAPSHOT_H

#include <stdbool.h>

#include "caffe.pb-c.h"

/* Reads a .caffemodel.h5 into a NetParameter whose `layer` entries carry only
 * a name and blobs (shape + data, plus diff where the file has a "diff"
 * group), in the file's order of layer groups: creation order when the file
 * tracks it (crema's files do), else by name, as Caffe iterates them. Floats
 * stay float; double datasets fill double_data/double_diff. A blob Caffe left
 * out of "data" (a weight shared with an earlier layer) comes back as an empty
 * BlobProto: no shape, no data. Free *out with protobuf_c_message_free_unpacked
 * (or proto_free). */
int hdf5_read_net(const char *path, Caffe__NetParameter **out);

/* Writes every layer (`layer`, then V1 `layers`) that has a name, with its
 * blobs as datasets "0".."n-1" under data/<name>/; with write_diff also
 * diff/<name>/ (zeros for blobs without a diff, as a fresh Caffe blob has).
 * Empty blobs (no shape, no data) are left out, as Caffe leaves out shared
 * weights. Atomic: built in memory, then written to a temporary name and
 * renamed. */
int hdf5_write_net(const char *path, const Caffe__NetParameter *net, bool write_diff);

/* Solver state: datasets "iter", "current_step" (int, shape {1}),
 * "learned_net" (fixed-length string, optional on read), group "history"
 * with datasets "0".."N-1". */
int hdf5_read_solver_state(const char *path, Caffe__SolverState **out);
int hdf5_write_solver_state(const char *path, const Caffe__SolverState *st);

/* True when the name ends in ".h5", Caffe's test for picking the HDF5
 * reader for weights and solver states. */
bool hdf5_is_snapshot_name(const char *path);

#endif
