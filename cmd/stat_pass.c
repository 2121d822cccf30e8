/* stat_pass.c: one pass of dh-stat: the channels listed or named, a snapshot of each, rates against the last. See LICENSE. */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stat_mon.h"
#include "stat_pass.h"

/* A segment truncated under us raises SIGBUS on access: report it as
 * corrupt instead of dying. */
static int
snapshot(struct dh_block *b, struct dh_snapshot *s, char *schema, size_t cap)
{
	int rc;

	if (sigsetjmp(cli_bus_env, 1))
		return -DH_ECORRUPT;
	cli_bus_armed = 1;
	rc = dh_block_snapshot(b, s);
	if (rc == 0 && s->record_size > 0)
		dh_block_schema(b, schema, cap, NULL);
	cli_bus_armed = 0;
	return rc;
}

uint64_t
stat_now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
stat_take(struct chan *c)
{
	char schema[DH_SCHEMA_MAX];
	struct dh_block *b;
	int rc;

	if (dh_name_check(c->name) < 0) {
		c->error = -DH_EFOREIGN; /* a dh.* file no dh tool could have made */
		return;
	}
	if (!c->snap && !(c->snap = malloc(sizeof *c->snap)))
		cli_die(EXIT_FAIL, "out of memory");
	/* a listing does not wait for creators: an unpublished file says so at once */
	if ((rc = dh_block_open(c->name, DH_OPEN_RDONLY | DH_OPEN_NOWAIT, &b)) == 0) {
		schema[0] = '\0';
		rc = snapshot(b, c->snap, schema, sizeof schema);
		c->mono_ns = stat_now_ns(CLOCK_MONOTONIC);
		dh_block_close(b);
		if (rc == 0 && c->snap->record_size > 0 && !(c->schema = strdup(schema)))
			cli_die(EXIT_FAIL, "out of memory");
	}
	c->error = rc;
}

void
stat_add(struct pass *p, const char *name)
{
	struct chan *c;

	if (!(c = realloc(p->c, (p->n + 1) * sizeof *c)))
		cli_die(EXIT_FAIL, "out of memory");
	p->c = c;
	c = &p->c[p->n++];
	memset(c, 0, sizeof *c);
	if (!(c->name = strdup(name)))
		cli_die(EXIT_FAIL, "out of memory");
}

/* Every channel of the channel directory, sorted by name. */
int
stat_list(struct pass *p, const char *filter)
{
	char **names;
	int rc;

	if ((rc = dh_channel_list(&names, NULL)) < 0) {
		cli_warnc(rc, "%s", dh_block_dir());
		return -1;
	}
	for (size_t i = 0; names[i] != NULL; i++)
		if (filter == NULL || stat_filter_match(filter, names[i]))
			stat_add(p, names[i]);
	dh_channel_list_free(names);
	return 0;
}

void
stat_pass_free(struct pass *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->c[i].name);
		free(p->c[i].snap);
		free(p->c[i].schema);
	}
	free(p->c);
	memset(p, 0, sizeof *p);
}

/* Rates against the previous pass's view of the same channel. */
void
stat_rates(struct pass *cur, const struct pass *prev)
{
	for (size_t i = 0; i < cur->n; i++) {
		struct chan *c = &cur->c[i];

		for (size_t j = 0; j < prev->n && c->error == 0; j++) {
			const struct chan *o = &prev->c[j];

			if (o->error != 0 || strcmp(o->name, c->name) != 0)
				continue;
			c->has_rate = dh_stat_rate(o->snap, c->snap, c->mono_ns - o->mono_ns, &c->msgs_per_s,
						   &c->bytes_per_s) == 0;
			break;
		}
	}
}

/* --- main loop ------------------------------------------------------------- */
