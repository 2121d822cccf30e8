/* validate_print.h: dh-validate's reports (validate_print.c). See LICENSE. */
#ifndef DH_VALIDATE_PRINT_H
#define DH_VALIDATE_PRINT_H

#include "cli.h"

/* How to report: --json (one object per channel), --quiet (problems and
 * repairs only), --repair (what the summary suggests). */
struct validate_out {
	int json, quiet, repair;
};

/* A channel that could not be checked (status 2, a warning on stderr) or
 * whose header is corrupt (1, a line on stdout); returns status. */
int validate_report_error(const struct validate_out *o, const char *name, int status, const char *msg);

/* The findings of a check and the summary line; status is "valid",
 * "repaired" or "problems", ret the channel's exit status. */
void validate_report(const struct validate_out *o, const char *name, const struct dh_report *rep, const char *status,
		     int ret);

#endif
