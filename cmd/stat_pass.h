/* stat_pass.h: dh-stat's passes over the channels (stat_pass.c). See LICENSE. */
#ifndef DH_STAT_PASS_H
#define DH_STAT_PASS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cli.h"

/* One channel seen in one pass. */
struct chan {
	char *name;
	int error;
	struct dh_snapshot *snap;
	char *schema;              /* canonical schema text, NULL if none */
	uint64_t mono_ns;          /* when snap was taken */
	int has_rate;
	double msgs_per_s, bytes_per_s;
};

struct pass {
	struct chan *c;
	size_t n;
	uint64_t now_ns;           /* CLOCK_REALTIME of the pass */
};

/* stat_add: append channel name (not yet read); stat_list: every channel
 * of the channel directory whose name matches filter (--filter, NULL: all),
 * sorted, or -1 after a message; stat_take: open c read-only without
 * waiting and snapshot it (c->error on failure; a segment truncated
 * underneath is -DH_ECORRUPT, through the SIGBUS guard, cli_bus_catch()
 * first); stat_rates: message and byte rates against the previous pass. */
void stat_add(struct pass *p, const char *name);
int stat_list(struct pass *p, const char *filter);
void stat_take(struct chan *c);
void stat_rates(struct pass *cur, const struct pass *prev);
void stat_pass_free(struct pass *p);
uint64_t stat_now_ns(clockid_t clk);

#endif
