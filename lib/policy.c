/* policy.c: what each consumer policy and checksum kind is, in one table each. See LICENSE. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dh_block.h"

/*
 * Every place that behaves differently per policy asks this table, never
 * the enum value: a fifth policy is a row here, its functions in ring.c
 * (the ops table there), and its name in the docs and completions.
 * docs/DESIGN.md lists the files such a change touches.
 */
static const struct dh_policy_desc policies[] = {
	[DH_POLICY_LATEST] = {
		.name = "latest",
		.summary = "each reader takes the newest message it has not seen; the writer never waits",
		.newest_only = 1,
	},
	[DH_POLICY_RING] = {
		.name = "ring",
		.summary = "every reader reads in order; the writer never waits; a lapped reader counts its losses",
		.counts_lost = 1,
		.in_order = 1,
	},
	[DH_POLICY_SYNC] = {
		.name = "sync",
		.summary = "lossless fan-out: the writer waits for the slowest live reader",
		.writer_waits = 1,
		.zero_copy = 1,
		.positions_hold = 1,
		.evictable = 1,
		.in_order = 1,
	},
	[DH_POLICY_QUEUE] = {
		.name = "queue",
		.summary = "lossless work queue: each message goes to exactly one reader",
		.writer_waits = 1,
		.zero_copy = 1,
		.claims = 1,
	},
};

#define NPOLICIES (sizeof policies / sizeof policies[0])

const struct dh_policy_desc *
dh_policy_info(enum dh_policy p)
{
	return (unsigned)p < NPOLICIES ? &policies[p] : NULL;
}

const char *
dh_policy_name(enum dh_policy p)
{
	return (unsigned)p < NPOLICIES ? policies[p].name : "?";
}

int
dh_policy_parse(const char *s, enum dh_policy *out)
{
	for (unsigned i = 0; i < NPOLICIES; i++)
		if (strcmp(s, policies[i].name) == 0) {
			*out = (enum dh_policy)i;
			return 0;
		}
	return -EINVAL;
}

static const struct dh_checksum_desc checksums[] = {
	[DH_CHECKSUM_NONE] = { .name = "none", .digest_len = 0, .parseable = 1 },
	[DH_CHECKSUM_XXH3] = { .name = "xxh3", .digest_len = 8, .parseable = 1 },
	[DH_CHECKSUM_BLAKE2B] = { .name = "blake2b", .digest_len = 32, .parseable = 1, .needs_sodium = 1 },
	/* chosen by creating with a key, never by name */
	[DH_CHECKSUM_MAC] = { .name = "blake2b-mac", .digest_len = 32, .keyed = 1, .needs_sodium = 1 },
};

#define NCHECKSUMS (sizeof checksums / sizeof checksums[0])

const struct dh_checksum_desc *
dh_checksum_info(enum dh_checksum c)
{
	return (unsigned)c < NCHECKSUMS ? &checksums[c] : NULL;
}

const char *
dh_checksum_name(enum dh_checksum c)
{
	return (unsigned)c < NCHECKSUMS ? checksums[c].name : "?";
}

int
dh_checksum_parse(const char *s, enum dh_checksum *out)
{
	for (unsigned i = 0; i < NCHECKSUMS; i++)
		if (checksums[i].parseable && strcmp(s, checksums[i].name) == 0) {
			*out = (enum dh_checksum)i;
			return 0;
		}
	return -EINVAL;
}

/* names: the i-th name a parse accepts, NULL past the end, "" to skip */
static const char *
join(const char *(*names)(unsigned), const char *sep, char *buf, size_t cap)
{
	size_t n = 0;
	const char *name;

	if (cap > 0)
		buf[0] = '\0';
	for (unsigned i = 0; (name = names(i)) != NULL; i++) {
		if (*name == '\0')
			continue;
		n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n ? sep : "", name);
		if (n >= cap)
			n = cap;       /* cut short: what fitted stays terminated */
	}
	return buf;
}

static const char *
policy_at(unsigned i)
{
	return i < NPOLICIES ? policies[i].name : NULL;
}

static const char *
checksum_at(unsigned i)
{
	return i >= NCHECKSUMS ? NULL : checksums[i].parseable ? checksums[i].name : "";
}

const char *
dh_policy_names(const char *sep, char *buf, size_t cap)
{
	return join(policy_at, sep, buf, cap);
}

const char *
dh_checksum_names(const char *sep, char *buf, size_t cap)
{
	return join(checksum_at, sep, buf, cap);
}
