/* dh.h: umbrella header of libdh, the DataBlock core. See LICENSE. */
#ifndef DH_H
#define DH_H

/* The one place the version is written: config.mk reads it from here for
 * pkg-config, the Python package and the tarball. */
#define DH_VERSION "0.1.0"

#include "dh_error.h"
#include "dh_block.h"
#include "dh_cancel.h"
#include "dh_ring.h"
#include "dh_frame.h"
#include "dh_broker.h"
#include "dh_validate.h"
#include "dh_key.h"
#include "dh_schema.h"
#include "dh_stat.h"

#endif
