/* stat_mon.h: dh-stat's long-running views: the Prometheus endpoint (--serve) and the full-screen --watch. See LICENSE. */
#ifndef DH_STAT_MON_H
#define DH_STAT_MON_H

#include <stddef.h>
#include <stdint.h>

#include "dh_stat.h"

/*
 * dh-stat owns the listing and the snapshots; these views only ask it for
 * a pass whenever they need one, so they stay apart from how channels are
 * found (and from the command's option parsing).
 */
struct stat_frame {
	const struct dh_stat_channel *ch;  /* n channels, sorted by name; rates against the previous pass */
	size_t n;
	uint64_t now_ns;                   /* CLOCK_REALTIME of the pass */
};

struct stat_source {
	/* Take a pass into *f, valid until the next call: 0, or -errno. */
	int (*take)(void *arg, struct stat_frame *f);
	void *arg;
	unsigned flags;                    /* DH_STAT_ALL: for the renderers */
};

/* --serve ADDR: answer Prometheus scrapes until SIGINT or SIGTERM (exit
 * status 0), or fail to start (1, with a message; a malformed ADDR is a
 * usage error, 2).  ADDR is PORT (loopback), HOST:PORT or [IPv6]:PORT. */
int stat_serve(const char *addr, const char *synopsis, const struct stat_source *src);

/* --watch on a terminal: the full-screen view until q or a signal (exit
 * status as dh-stat's).  Returns -1 without touching the terminal when it
 * cannot drive it (unknown TERM): the caller falls back to plain output.
 * filter: the initial --filter PATTERN, or NULL. */
int stat_top(const struct stat_source *src, int64_t interval_ns, const char *filter);

/* --filter: PATTERN is a glob (fnmatch) matched against the whole name; a
 * PATTERN without any of * ? [ matches the names that contain it. */
int stat_filter_match(const char *pattern, const char *name);

#endif
