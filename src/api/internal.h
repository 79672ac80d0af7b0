/* The one internal header of the command line (tools/): the engine's
 * modules that the public header crema.h does not expose yet. Tools include
 * crema.h, this header and their own headers, nothing else of src/, so this
 * file is the whole of what the command line depends on below the API. */
#ifndef CREMA_API_INTERNAL_H
#define CREMA_API_INTERNAL_H

#include "crema.h"

#include "api/onnx_export.h"
#include "data/datum.h"
#include "data/db.h"
#include "data/image.h"
#include "data/image_list.h"
#include "dist/dist.h"
#include "net/device.h"
#include "net/net.h"
#include "proto/proto_io.h"
#include "proto/upgrade.h"
#include "solvers/solver.h"
#include "util/err.h"
#include "util/io.h"
#include "util/npy.h"
#include "util/plot.h"
#include "util/rng.h"
#include "util/tensorboard.h"

#endif
