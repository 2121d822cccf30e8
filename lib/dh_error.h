/* dh_error.h: error codes of libdh. See LICENSE. */
#ifndef DH_ERROR_H
#define DH_ERROR_H

/*
 * Every libdh function that can fail returns 0 (or a non-negative count) on
 * success and a negative code on failure: either -errno (-ENOENT, -EBUSY,
 * -ETIMEDOUT, ...) or -DH_E* for conditions errno has no word for.  The
 * DH_E* values sit above any errno value, like ZMQ_HAUSNUMERO.
 */
#define DH_EBASE 0x4448

enum {
	DH_ECORRUPT = DH_EBASE + 1, /* segment header or descriptor inconsistent */
	DH_EFOREIGN,                /* not a dh segment (bad magic) */
	DH_EVERSION,                /* dh segment of an unsupported format version */
	DH_ECHECKSUM,               /* message failed its checksum; not delivered */
	DH_ESCHEMA,                 /* schema hash differs from the channel's */
	DH_EWRITERDEAD,             /* writer died without marking end-of-stream */
	DH_EEVICTED,                /* this reader was evicted for stalling a sync channel */
	DH_EKEY,                    /* wrong MAC key */
	DH_ETOOBIG,                 /* message larger than the slot payload */
	DH_EUNSUPPORTED,            /* option not supported by this build or channel */
	DH_EKEYNEEDED,              /* channel is keyed and no key was given */
	DH_ENOTKEYED,               /* a key was given for a channel without one */
	DH_EKEYMODE,                /* key file not a regular file of ours with mode 0600 or stricter */
	DH_EKEYSIZE,                /* key file does not hold exactly DH_KEY_BYTES bytes */
	DH_ENOTREG,                 /* the channel's name is not a regular file (FIFO, socket, directory, ...) */
	DH_EMODE,                   /* channel mode grants some user read-only or write-only access */
	DH_EOWNER,                  /* channel owned by a user the caller does not trust */
	DH_EDIR,                    /* channel directory unsafe (writable by others without the sticky bit,
				     * or owned by another user) or DH_SHM_DIR not absolute */
	DH_ELAST
};

/* Message for a code as returned by libdh (negative) or its absolute value.
 * Never NULL; the string is static. Thread-safe. */
const char *dh_strerror(int code);

#endif
