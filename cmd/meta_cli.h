/* meta_cli.h: the metadata zone of dh-write --meta and dh-read --meta (meta_cli.c). See LICENSE. */
#ifndef DH_META_CLI_H
#define DH_META_CLI_H

#include "cli.h"

/* Replace the metadata zone of channel name with the contents of file
 * ("-": standard input);
 * any failure is "prog: name: reason" and exit 1. */
void cli_meta_write(const char *name, const char *file, const struct cli_owner *owner);

/* Copy the metadata zone of channel name to stdout; returns the exit
 * status (failures to open or read it exit 1). */
int cli_meta_print(const char *name, const struct cli_owner *owner);

#endif
