/* error.c: messages for libdh error codes. See LICENSE. */
#include <limits.h>
#include <string.h>

#include "dh_error.h"

static const char *const dh_messages[] = {
	[DH_ECORRUPT - DH_EBASE] = "corrupt segment",
	[DH_EFOREIGN - DH_EBASE] = "not a dh channel",
	[DH_EVERSION - DH_EBASE] = "unsupported channel format version",
	[DH_ECHECKSUM - DH_EBASE] = "checksum mismatch",
	[DH_ESCHEMA - DH_EBASE] = "schema mismatch",
	[DH_EWRITERDEAD - DH_EBASE] = "writer died without end-of-stream",
	[DH_EEVICTED - DH_EBASE] = "reader evicted for stalling the channel",
	[DH_EKEY - DH_EBASE] = "wrong key",
	[DH_EKEYNEEDED - DH_EBASE] = "channel is keyed: a key is required",
	[DH_ENOTKEYED - DH_EBASE] = "channel has no key",
	[DH_EKEYMODE - DH_EBASE] = "key file must be a regular file owned by you with mode 0600 or stricter",
	[DH_EKEYSIZE - DH_EBASE] = "key file must hold exactly 32 bytes",
	[DH_ETOOBIG - DH_EBASE] = "message larger than slot size",
	[DH_EUNSUPPORTED - DH_EBASE] = "not supported",
	[DH_ENOTREG - DH_EBASE] = "not a regular file (not a dh channel)",
	[DH_EMODE - DH_EBASE] = "channel mode grants read-only or write-only access (chmod it to 0600, 0660 or 0666)",
	[DH_EOWNER - DH_EBASE] = "channel owned by another user (--owner to trust it)",
	[DH_EDIR - DH_EBASE] = "channel directory unsafe: it must be an absolute path owned by you or root, sticky if others may write",
};

const char *
dh_strerror(int code)
{
	if (code < 0)
		code = code == INT_MIN ? 0 : -code;
	if (code > DH_EBASE && code < DH_ELAST && dh_messages[code - DH_EBASE])
		return dh_messages[code - DH_EBASE];
	if (code > 0 && code < DH_EBASE)
		return strerror(code);
	return "unknown error";
}
