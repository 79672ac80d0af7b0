/* Caffe's upgrades of old net and solver definitions, applied on load as
 * Caffe's upgrade_proto does: V0 layers -> V1, data-layer transform fields
 * -> transform_param, V1 `layers` -> V2 `layer`, net inputs -> an Input
 * layer, BatchNorm param specs, solver_type enum -> type string. */
#ifndef CREMA_PROTO_UPGRADE_H
#define CREMA_PROTO_UPGRADE_H

#include <stdbool.h>

#include "caffe.pb-c.h"

/* Problems Caffe logs and then goes past (a V0 field that does not apply to
 * the layer's type is dropped, a V1 layer that still holds a V0 layer loses
 * it). Caffe's upgrade tools exit with status 1 when there were any. */
struct upgrade_notes {
    int count;
    char text[4096]; /* one line per note, cut when long */
};

/* Which upgrades a net needs (Caffe's NetNeeds*Upgrade). */
bool upgrade_net_needs_v0(const Caffe__NetParameter *net);
bool upgrade_net_needs_data_transform(const Caffe__NetParameter *net);
bool upgrade_net_needs_v1(const Caffe__NetParameter *net);
bool upgrade_net_needs_input(const Caffe__NetParameter *net);
bool upgrade_net_needs_batch_norm(const Caffe__NetParameter *net);
bool upgrade_net_needed(const Caffe__NetParameter *net);

/* The steps, each in place; filename only names the file in messages.
 * notes may be NULL. On error *net stays a valid message (free it as usual)
 * but may be half upgraded. */
int upgrade_net_v0(Caffe__NetParameter *net, const char *filename, struct upgrade_notes *notes);
int upgrade_net_data_transform(Caffe__NetParameter *net, const char *filename);
int upgrade_net_v1(Caffe__NetParameter *net, const char *filename, struct upgrade_notes *notes);
int upgrade_net_input(Caffe__NetParameter *net, const char *filename);
/* BVLC Caffe 1.0 (after its PR 5184): a BatchNorm layer with three param
 * specs keeps them, names included, with lr_mult and decay_mult set to 0. */
int upgrade_net_batch_norm(Caffe__NetParameter *net, bool *changed);

/* Every step the net needs, in Caffe's order (UpgradeNetAsNeeded). *changed
 * (may be NULL) tells whether anything changed. Errors are the cases Caffe
 * aborts on: an unknown V0 or V1 layer type, a padding layer feeding
 * something other than one convolution or pooling, an unknown bottom in a
 * V0 net, both `layer` and `layers`, too few input_dim values. */
int upgrade_net(Caffe__NetParameter *net, const char *filename, bool *changed);
int upgrade_net_noted(Caffe__NetParameter *net, const char *filename, bool *changed,
                      struct upgrade_notes *notes);

/* Solver: `solver_type: SGD` etc. -> `type: "SGD"` (Caffe's
 * UpgradeSolverType); both given is an error. */
bool upgrade_solver_needed(const Caffe__SolverParameter *s);
int upgrade_solver(Caffe__SolverParameter *s, const char *filename, bool *changed);

/* Reading with upgrade, as Caffe's ReadNetParamsFrom{Text,Binary}FileOrDie
 * and ReadSolverParamsFromTextFileOrDie do: every reader of a net, weights
 * or solver file goes through these, so that every command and front end
 * takes old files. When something was upgraded, one notice on standard
 * error names the file and what was old (and the problems Caffe would log
 * and go past). "file:" URIs accepted. */
int upgrade_read_net(const char *path, bool binary, Caffe__NetParameter **out);
int upgrade_read_solver(const char *path, Caffe__SolverParameter **out);
/* The same for a net already in memory (a solver's net_param); what names
 * it in the notice and in errors. */
int upgrade_net_on_load(Caffe__NetParameter *net, const char *what);

/* Type strings Caffe's upgrades produce: NULL for an unknown value. */
const char *upgrade_v1_layer_type_name(int v1_type);
const char *upgrade_solver_type_name(int solver_type);

#endif
