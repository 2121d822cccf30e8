/* dh.h: umbrella header of libdh, the DataBlock core. See LICENSE. */
#ifndef DH_H
#define DH_H

/* The version is written once, as VERSION in config.mk: the build passes it
 * with -DDH_VERSION and make install writes it into the installed copy. */
#ifndef DH_VERSION
#define DH_VERSION "unknown"
#endif

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
#include "dh_net.h"

#endif
