/* dh_key.h: MAC key files. See LICENSE. */
#ifndef DH_KEY_H
#define DH_KEY_H

#include <stdint.h>

#include "dh_block.h"

/*
 * A key file holds exactly DH_KEY_BYTES random bytes and must be a regular
 * file owned by the caller with no permission bits for group or others.
 * Callers wipe keys with dh_key_wipe() when done.
 */

/* Load path into key. -ENOENT/-EACCES/..., -DH_EKEYMODE (not a regular
 * file, not ours, or group/other bits set), -DH_EKEYSIZE. Opens with
 * O_NOFOLLOW: a symlink is refused (-ELOOP). */
int dh_key_load(const char *path, uint8_t key[DH_KEY_BYTES]);

/* Create path with O_EXCL|O_NOFOLLOW and mode 0600 holding a new random
 * key. -EEXIST if it exists; nothing is left behind on failure. */
int dh_key_generate(const char *path);

void dh_key_wipe(uint8_t key[DH_KEY_BYTES]);

#endif
