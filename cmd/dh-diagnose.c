/* dh-diagnose: explain the state of a channel: who is dead or stalled, what is stuck, how to fix it. See LICENSE. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

static const char synopsis[] = "dh-diagnose [--json] [--slot N] [--key FILE] [--stall-after DUR] NAME";

#define STALL_DEFAULT_NS 10000000000ull

enum { OPT_JSON = 256, OPT_KEY, OPT_SLOT, OPT_STALL };

static const struct option longopts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "slot", required_argument, NULL, OPT_SLOT },
	{ "stall-after", required_argument, NULL, OPT_STALL },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

struct opts {
	const char *name, *keyfile;
	int json;
	int64_t slot;            /* -1: whole channel */
	uint64_t stall_ns;
};

/* One finding with what it blocks and the command that fixes it. */
struct fview {
	const struct dh_finding *f;
	char blocks[200];
	char fix[300];           /* "" when nothing is to be run */
};

struct model {
	const char *name;
	struct dh_block *b;
	struct dh_snapshot *s;
	struct dh_report rep;
	struct fview *fv;
	uint64_t claim_head;
	uint64_t failing, quarantined;
	int verifiable;          /* checksums were verified */
	char schema[1024];
	uint8_t schema_hash[32];
	int record_size;
};

static sigjmp_buf bus_jmp;

static void
on_bus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

static _Noreturn void
help(void)
{
	cli_print_usage(stdout, (const char *const[]){ synopsis, NULL });
	putchar('\n');
	printf("Explain the state of channel NAME without changing it: geometry, writer and\n"
	       "readers (ALIVE, DEAD, STALLED, EVICTED, INACCESSIBLE), slots in unusual\n"
	       "states with what they block and the command that fixes them, and the\n"
	       "integrity of the committed messages.\n\n"
	       "  --json             one JSON object with the same content\n"
	       "  --slot N           show slot N's descriptor in detail\n"
	       "  --key FILE         MAC key file: verify the MACs of a keyed channel\n"
	       "  --stall-after DUR  a live reader holding the writer back this long is\n"
	       "                     STALLED (default 10s)\n"
	       "  -h, --help         print this help and exit\n"
	       "  -V, --version      print the version and exit\n\n"
	       "Exit status: 0 healthy, 1 problems found, 2 cannot check.\n");
	exit(cli_close_stdout());
}

static void
parse(int argc, char **argv, struct opts *o)
{
	char buf[64];
	uint64_t v;
	int64_t ns;
	int c;

	memset(o, 0, sizeof *o);
	o->slot = -1;
	o->stall_ns = STALL_DEFAULT_NS;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			help();
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_KEY:
			o->keyfile = optarg;
			break;
		case OPT_SLOT:
			if (cli_parse_u64(optarg, 0, DH_SLOTS_MAX - 1, &v) < 0)
				cli_die(EXIT_USAGE, "--slot %s: invalid slot number", cli_safe(optarg, buf, sizeof buf));
			o->slot = (int64_t)v;
			break;
		case OPT_STALL:
			if (cli_parse_duration(optarg, &ns) < 0)
				cli_die(EXIT_USAGE, "--stall-after %s: invalid duration", cli_safe(optarg, buf, sizeof buf));
			o->stall_ns = ns < 0 ? UINT64_MAX : (uint64_t)ns;
			break;
		case 'V':
			cli_version();
		case ':':
			cli_usage(synopsis, "option %s needs an argument", argv[optind - 1]);
		default:
			if (optopt != 0)
				cli_usage(synopsis, "unknown option -%c", optopt);
			cli_usage(synopsis, "unknown option %s", argv[optind - 1]);
		}
	}
	if (argc - optind < 1)
		cli_usage(synopsis, "missing channel name");
	if (argc - optind > 1)
		cli_usage(synopsis, "one channel name expected, got %d", argc - optind);
	o->name = argv[optind];
	if (dh_name_check(o->name) < 0)
		cli_die(EXIT_USAGE, "%s: invalid channel name", cli_safe(o->name, buf, sizeof buf));
}

/* ---- shared formatting ---- */

static json_t *
ju64(uint64_t v)
{
	/* only a corrupt segment holds counters this large */
	return v > INT64_MAX ? json_null() : json_integer((json_int_t)v);
}

static json_t *
jstr(const char *s)
{
	char buf[1024];

	return json_string(s[0] ? cli_safe(s, buf, sizeof buf) : "");
}

static const char *
safe(const char *s, char *buf, size_t cap)
{
	return cli_safe(s, buf, cap);
}

static void
iso_time(uint64_t ns, char *buf, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (ns == 0 || !gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, cap, "-");
}

static const char *
pstate(const struct model *m, const struct dh_participant *p)
{
	for (size_t i = 0; i < m->rep.n; i++) {
		const struct dh_finding *f = &m->rep.f[i];
		if (f->index == p->index &&
		    (f->kind == DH_FIND_WRITER_STALLED || f->kind == DH_FIND_READER_STALLED))
			return "STALLED";
	}
	switch (p->state) {
	case DH_P_FREE:
		return "NONE";
	case DH_P_ALIVE:
		return "ALIVE";
	case DH_P_DEAD:
		return "DEAD";
	case DH_P_EVICTED:
		return "EVICTED";
	default:
		return "INACCESSIBLE";
	}
}

/* How far behind reader p is: for a queue, the backlog nobody has claimed. */
static uint64_t
lag_of(const struct model *m, const struct dh_participant *p)
{
	uint64_t at = dh_policy_info(m->s->cfg.policy)->claims ? m->claim_head : p->position;

	return m->s->committed > at ? m->s->committed - at : 0;
}

static uint64_t
claim_of(const struct model *m, int index)
{
	if (!dh_policy_info(m->s->cfg.policy)->claims || index <= 0)
		return UINT64_MAX;
	return m->s->part[index].claim;
}

static void
command(char *buf, size_t cap, const char *cmd, const char *name)
{
	/* a name may start with '-': end the options first */
	snprintf(buf, cap, "%s %s%s", cmd, name[0] == '-' ? "-- " : "", name);
}

static void
advise(const struct model *m, struct fview *v)
{
	const struct dh_finding *f = v->f;
	const struct dh_snapshot *s = m->s;
	const char *n = m->name;
	unsigned long long seq = f->seq, pos = 0;

	if (f->index >= 0 && f->index < s->nparticipants)
		pos = s->part[f->index].position;
	v->fix[0] = '\0';
	switch (f->kind) {
	case DH_FIND_WRITER_DEAD:
		snprintf(v->blocks, sizeof v->blocks,
			 "readers without --follow stop at seq %llu reporting a dead writer; "
			 "a new writer may attach and continue",
			 (unsigned long long)s->committed);
		command(v->fix, sizeof v->fix, "dh-validate --repair", n);
		break;
	case DH_FIND_WRITER_MIDWRITE:
		snprintf(v->blocks, sizeof v->blocks,
			 "nothing: message %llu was never visible; the next writer rewrites slot %u", seq, f->slot);
		command(v->fix, sizeof v->fix, "dh-validate --repair", n);
		break;
	case DH_FIND_WRITER_UNPUBLISHED:
		snprintf(v->blocks, sizeof v->blocks,
			 "message %llu is complete but invisible to readers; repair publishes it if its check passes",
			 seq);
		command(v->fix, sizeof v->fix, "dh-validate --repair", n);
		break;
	case DH_FIND_WRITER_STALLED:
		snprintf(v->blocks, sizeof v->blocks,
			 "readers wait for messages after seq %llu; no other writer can attach",
			 (unsigned long long)s->committed);
		snprintf(v->fix, sizeof v->fix, "kill -CONT %ld", (long)f->pid);
		break;
	case DH_FIND_READER_DEAD:
		if (dh_policy_info(s->cfg.policy)->positions_hold)
			snprintf(v->blocks, sizeof v->blocks,
				 "the writer cannot pass seq %llu until the entry is reclaimed (a live writer reaps it)",
				 pos + s->cfg.slots);
		else if (dh_policy_info(s->cfg.policy)->claims)
			snprintf(v->blocks, sizeof v->blocks, "reader entry %d and the messages it claimed", f->index);
		else
			snprintf(v->blocks, sizeof v->blocks, "reader entry %d", f->index);
		command(v->fix, sizeof v->fix, "dh-validate --repair", n);
		break;
	case DH_FIND_READER_STALLED:
		if (f->action == DH_ACT_NEEDS_FORCE) {
			snprintf(v->blocks, sizeof v->blocks, "the writer waits: reader %d is at seq %llu of %llu",
				 f->index, pos, (unsigned long long)s->committed);
			command(v->fix, sizeof v->fix, "dh-validate --repair --force", n);
		} else {
			snprintf(v->blocks, sizeof v->blocks, "nothing yet: the writer is not waiting for it");
			if (f->pid > 0 && dh_proc_stopped(f->pid) == 1)
				snprintf(v->fix, sizeof v->fix, "kill -CONT %ld", (long)f->pid);
		}
		break;
	case DH_FIND_CLAIM_DEAD:
		snprintf(v->blocks, sizeof v->blocks,
			 "the writer cannot reuse slot %u; message %llu is counted lost when reclaimed", f->slot, seq);
		command(v->fix, sizeof v->fix, "dh-validate --repair", n);
		break;
	case DH_FIND_CHECKSUM:
		snprintf(v->blocks, sizeof v->blocks,
			 "readers skip message %llu with a checksum error; its payload cannot be recovered", seq);
		command(v->fix, sizeof v->fix, "dh-validate --repair", n);
		break;
	case DH_FIND_QUARANTINED:
		snprintf(v->blocks, sizeof v->blocks, "readers skip message %llu; the writer reuses slot %u in turn",
			 seq, f->slot);
		break;
	case DH_FIND_KEY_UNVERIFIED:
		snprintf(v->blocks, sizeof v->blocks, "nothing: MACs were not verified");
		command(v->fix, sizeof v->fix, "dh-diagnose --key FILE", n);
		break;
	default:
		snprintf(v->blocks, sizeof v->blocks,
			 "readers may stop with \"corrupt segment\"; no repair is provably safe: "
			 "recreate the channel once nobody uses it");
		break;
	}
}

static const char *
verdict_of(const struct model *m)
{
	if (m->s->cfg.checksum == DH_CHECKSUM_NONE)
		return "unchecked";
	if (!m->verifiable)
		return "unverified";
	return m->failing ? "failing" : "ok";
}

/* ---- one slot ---- */

struct slotview {
	struct dh_slot_info i;
	const char *state, *integrity;
};

static const char *const slot_state_names[] = {
	[DH_SLOT_EMPTY] = "empty",
	[DH_SLOT_WRITING] = "writing",
	[DH_SLOT_COMMITTED] = "committed",
	[DH_SLOT_UNPUBLISHED] = "unpublished",
	[DH_SLOT_INCONSISTENT] = "inconsistent",
};

static void
slot_view(const struct model *m, uint32_t i, struct slotview *v)
{
	memset(v, 0, sizeof *v);
	dh_block_slot(m->b, m->s->committed, i, &v->i);
	v->state = slot_state_names[v->i.state];
	v->integrity = "n/a";
	if (v->i.state != DH_SLOT_COMMITTED || v->i.length > m->s->cfg.slot_size)
		return;
	if (m->s->cfg.checksum == DH_CHECKSUM_NONE) {
		v->integrity = "unchecked";
		return;
	}
	if (!m->verifiable) {
		v->integrity = "unverified";
		return;
	}
	v->integrity = "ok";
	for (size_t k = 0; k < m->rep.n; k++) {
		if (m->rep.f[k].slot != i)
			continue;
		if (m->rep.f[k].kind == DH_FIND_CHECKSUM)
			v->integrity = "failing";
		else if (m->rep.f[k].kind == DH_FIND_QUARANTINED)
			v->integrity = "quarantined";
	}
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
queue_owner(const struct dh_slot_info *v, char *buf, size_t cap)
{
	if (v->claim == DH_CLAIM_AVAILABLE)
		snprintf(buf, cap, "available");
	else if (v->claim == DH_CLAIM_DONE)
		snprintf(buf, cap, "done");
	else
		snprintf(buf, cap, "reader %d", v->claim_reader);
}

static json_t *
slot_json(const struct slotview *v)
{
	char ck[65], owner[32];
	json_t *o = json_object();

	hex(v->i.check, v->i.check_len, ck);
	json_object_set_new(o, "slot", json_integer(v->i.slot));
	json_object_set_new(o, "state", json_string(v->state));
	json_object_set_new(o, "seq", v->i.seq == UINT64_MAX ? json_null() : ju64(v->i.seq));
	json_object_set_new(o, "expected_seq", v->i.expected == UINT64_MAX ? json_null() : ju64(v->i.expected));
	json_object_set_new(o, "stamp", ju64(v->i.stamp));
	json_object_set_new(o, "length", json_integer(v->i.length));
	json_object_set_new(o, "flags", json_integer(v->i.flags));
	json_object_set_new(o, "quarantined", json_boolean(v->i.quarantined));
	json_object_set_new(o, "time_ns", ju64(v->i.time_ns));
	json_object_set_new(o, "check", json_string(ck));
	json_object_set_new(o, "integrity", json_string(v->integrity));
	if (v->i.claim != DH_CLAIM_NONE) {
		json_t *q = json_object();
		queue_owner(&v->i, owner, sizeof owner);
		json_object_set_new(q, "seq", ju64(v->i.claim_seq));
		json_object_set_new(q, "owner", json_string(owner));
		json_object_set_new(o, "queue", q);
	} else {
		json_object_set_new(o, "queue", json_null());
	}
	return o;
}

static void
slot_text(const struct model *m, const struct slotview *v)
{
	char ck[65], t[32], owner[32], d[700];

	hex(v->i.check, v->i.check_len, ck);
	iso_time(v->i.time_ns, t, sizeof t);
	printf("channel     %s\nslot        %" PRIu32 " of %" PRIu32 "\nstate       %s\n", m->name, v->i.slot,
	       m->s->cfg.slots, v->state);
	if (v->i.seq != UINT64_MAX)
		printf("seq         %" PRIu64 "\n", v->i.seq);
	if (v->i.expected != UINT64_MAX)
		printf("expected    %" PRIu64 "\n", v->i.expected);
	printf("stamp       %" PRIu64 "\nlength      %" PRIu32 "\nflags       %#" PRIx32 "%s\n", v->i.stamp,
	       v->i.length, v->i.flags, v->i.quarantined ? " (quarantined)" : "");
	printf("time        %s\ncheck       %s\nintegrity   %s\n", t, ck[0] ? ck : "-", v->integrity);
	if (v->i.claim != DH_CLAIM_NONE) {
		queue_owner(&v->i, owner, sizeof owner);
		printf("queue       seq %llu, %s\n", (unsigned long long)v->i.claim_seq, owner);
	}
	for (size_t k = 0; k < m->rep.n; k++)
		if (m->rep.f[k].slot == v->i.slot)
			printf("finding     %s [%s] %s\n", dh_finding_name(m->rep.f[k].kind),
			       dh_action_name(m->rep.f[k].action), safe(m->rep.f[k].detail, d, sizeof d));
}

/* ---- the whole channel ---- */

static json_t *
participant_json(const struct model *m, const struct dh_participant *p)
{
	json_t *o = json_object();
	uint64_t claim = claim_of(m, p->index);

	if (p->index > 0)
		json_object_set_new(o, "index", json_integer(p->index));
	json_object_set_new(o, "state", json_string(pstate(m, p)));
	json_object_set_new(o, "pid", p->state == DH_P_FREE || !p->pid ? json_null() : json_integer(p->pid));
	json_object_set_new(o, "name", p->state == DH_P_FREE ? json_null() : jstr(p->name));
	json_object_set_new(o, "position", ju64(p->position));
	if (p->index > 0) {
		json_object_set_new(o, "lag", ju64(lag_of(m, p)));
		json_object_set_new(o, "claim", claim == UINT64_MAX ? json_null() : ju64(claim));
	}
	json_object_set_new(o, "last_active_ns", ju64(p->last_active_ns));
	json_object_set_new(o, "age_ns", ju64(p->idle_ns));
	json_object_set_new(o, "messages", ju64(p->messages));
	json_object_set_new(o, "bytes", ju64(p->bytes));
	if (p->index > 0) {
		json_object_set_new(o, "lost", ju64(p->lost));
		json_object_set_new(o, "checksum_failures", ju64(p->checksum_failures));
	}
	return o;
}

static json_t *
finding_json(const struct fview *v)
{
	const struct dh_finding *f = v->f;
	json_t *o = json_object();
	int problem = f->action == DH_ACT_REPAIRABLE || f->action == DH_ACT_NEEDS_FORCE ||
		      f->action == DH_ACT_UNREPAIRABLE;

	json_object_set_new(o, "kind", json_string(dh_finding_name(f->kind)));
	json_object_set_new(o, "action", json_string(dh_action_name(f->action)));
	json_object_set_new(o, "problem", json_boolean(problem));
	json_object_set_new(o, "index", f->index < 0 ? json_null() : json_integer(f->index));
	json_object_set_new(o, "pid", f->pid <= 0 ? json_null() : json_integer(f->pid));
	json_object_set_new(o, "seq", f->seq == UINT64_MAX ? json_null() : ju64(f->seq));
	json_object_set_new(o, "slot", f->slot == UINT32_MAX ? json_null() : json_integer(f->slot));
	json_object_set_new(o, "age_ns", ju64(f->age_ns));
	json_object_set_new(o, "detail", jstr(f->detail));
	json_object_set_new(o, "blocks", jstr(v->blocks));
	json_object_set_new(o, "fix", v->fix[0] ? json_string(v->fix) : json_null());
	return o;
}

static json_t *
channel_json(const struct model *m)
{
	const struct dh_snapshot *s = m->s;
	json_t *o = json_object(), *g = json_object(), *l = json_object(), *st = json_object();
	json_t *c = json_object(), *rd = json_array(), *fs = json_array(), *in = json_object();
	char h[65];

	json_object_set_new(o, "channel", json_string(m->name));
	json_object_set_new(o, "verdict", json_string(m->rep.problems ? "problems" : "healthy"));
	json_object_set_new(o, "exit", json_integer(m->rep.problems ? EXIT_FAIL : EXIT_OK));
	json_object_set_new(o, "error", json_null());
	json_object_set_new(o, "format_version", json_integer(dh_format_version()));
	json_object_set_new(o, "created_ns", ju64(s->created_ns));
	json_object_set_new(o, "creator_uid", json_integer(s->creator_uid));
	json_object_set_new(o, "creator_pid", json_integer(s->creator_pid));
	json_object_set_new(g, "slots", json_integer(s->cfg.slots));
	json_object_set_new(g, "slot_size", json_integer(s->cfg.slot_size));
	json_object_set_new(g, "stride", ju64(s->lay.stride));
	json_object_set_new(g, "meta_size", json_integer(s->cfg.meta_size));
	json_object_set_new(g, "max_readers", json_integer(s->cfg.max_readers));
	json_object_set_new(g, "total_size", ju64(s->lay.total));
	json_object_set_new(o, "geometry", g);
	json_object_set_new(l, "table_off", ju64(s->lay.table_off));
	json_object_set_new(l, "desc_off", ju64(s->lay.desc_off));
	json_object_set_new(l, "meta_off", ju64(s->lay.meta_off));
	json_object_set_new(l, "data_off", ju64(s->lay.data_off));
	json_object_set_new(o, "layout", l);
	json_object_set_new(o, "policy", json_string(dh_policy_name(s->cfg.policy)));
	json_object_set_new(o, "checksum", json_string(dh_checksum_name(s->cfg.checksum)));
	json_object_set_new(o, "keyed", json_boolean(s->keyed));
	json_object_set_new(o, "evict_after_ns", ju64(s->cfg.evict_after_ns));
	if (m->record_size > 0) {
		json_t *sc = json_object();
		hex(m->schema_hash, 32, h);
		json_object_set_new(sc, "canonical", jstr(m->schema));
		json_object_set_new(sc, "hash", json_string(h));
		json_object_set_new(sc, "record_size", json_integer(m->record_size));
		json_object_set_new(o, "schema", sc);
	} else {
		json_object_set_new(o, "schema", json_null());
	}
	json_object_set_new(st, "committed", ju64(s->committed));
	json_object_set_new(st, "oldest", ju64(s->committed > s->cfg.slots ? s->committed - s->cfg.slots : 0));
	json_object_set_new(st, "end_of_stream", json_boolean(s->eos));
	json_object_set_new(st, "number", ju64(s->stream));
	json_object_set_new(st, "start", ju64(s->stream_start));
	json_object_set_new(o, "stream", st);
	json_object_set_new(c, "messages_written", ju64(s->messages_written));
	json_object_set_new(c, "bytes_written", ju64(s->bytes_written));
	json_object_set_new(c, "writer_waits", ju64(s->writer_waits));
	json_object_set_new(c, "writer_wait_ns", ju64(s->writer_wait_ns));
	json_object_set_new(c, "readers_reaped", ju64(s->readers_reaped));
	json_object_set_new(c, "evictions", ju64(s->evictions));
	json_object_set_new(c, "eos_count", ju64(s->eos_count));
	json_object_set_new(c, "queue_lost", ju64(s->queue_lost));
	json_object_set_new(c, "readers_lost", ju64(s->readers_lost));
	json_object_set_new(c, "checksum_failures", ju64(s->checksum_failures));
	json_object_set_new(c, "schema_mismatches", ju64(s->schema_mismatches));
	json_object_set_new(c, "key_mismatches", ju64(s->key_mismatches));
	json_object_set_new(o, "counters", c);
	json_object_set_new(o, "writer", participant_json(m, &s->part[0]));
	for (int i = 1; i < s->nparticipants; i++)
		if (s->part[i].state != DH_P_FREE)
			json_array_append_new(rd, participant_json(m, &s->part[i]));
	json_object_set_new(o, "readers", rd);
	for (size_t i = 0; i < m->rep.n; i++)
		json_array_append_new(fs, finding_json(&m->fv[i]));
	json_object_set_new(o, "findings", fs);
	json_object_set_new(in, "verdict", json_string(verdict_of(m)));
	json_object_set_new(in, "checked", ju64(m->rep.slots_checked));
	json_object_set_new(in, "failing", ju64(m->failing));
	json_object_set_new(in, "quarantined", ju64(m->quarantined));
	json_object_set_new(o, "integrity", in);
	return o;
}

static void
participant_text(const struct model *m, const struct dh_participant *p)
{
	char nm[100], pid[24], lag[64] = "", claim[40] = "";
	uint64_t cl = claim_of(m, p->index);

	snprintf(pid, sizeof pid, p->pid ? "pid %ld" : "pid -", (long)p->pid);
	if (p->index == 0) {
		if (p->state == DH_P_FREE) {
			printf("writer      none\n");
			return;
		}
		printf("writer      %s %s %s, next seq %" PRIu64 ", last active %.1fs ago, %" PRIu64
		       " messages, %" PRIu64 " bytes\n",
		       pstate(m, p), pid, safe(p->name, nm, sizeof nm), p->position,
		       (double)p->idle_ns / 1e9, p->messages, p->bytes);
		return;
	}
	snprintf(lag, sizeof lag, ", lag %" PRIu64, lag_of(m, p));
	if (cl != UINT64_MAX)
		snprintf(claim, sizeof claim, ", holds %" PRIu64, cl);
	printf("  %-3d %s %s %s, position %" PRIu64 "%s%s, last active %.1fs ago, %" PRIu64 " messages, %" PRIu64
	       " bytes, %" PRIu64 " lost, %" PRIu64 " checksum failures\n",
	       p->index, pstate(m, p), pid, safe(p->name, nm, sizeof nm), p->position, lag, claim,
	       (double)p->idle_ns / 1e9, p->messages, p->bytes, p->lost, p->checksum_failures);
}

static void
channel_text(const struct model *m)
{
	const struct dh_snapshot *s = m->s;
	char t[32], sc[1100], h[65];
	int nreaders = 0;

	iso_time(s->created_ns, t, sizeof t);
	printf("channel     %s\n", m->name);
	printf("format      version %u, %" PRIu64 " bytes, created %s by uid %" PRIu32 " pid %" PRIu32 "\n",
	       dh_format_version(), s->lay.total, t, s->creator_uid, s->creator_pid);
	printf("geometry    %" PRIu32 " slots of %" PRIu32 " bytes (stride %" PRIu64 "), %" PRIu32
	       " readers max, metadata zone %" PRIu32 " bytes\n",
	       s->cfg.slots, s->cfg.slot_size, s->lay.stride, s->cfg.max_readers, s->cfg.meta_size);
	if (m->record_size > 0) {
		hex(m->schema_hash, 32, h);
		printf("schema      %s (%d bytes, %.16s)\n", safe(m->schema, sc, sizeof sc), m->record_size, h);
	}
	printf("policy      %s, checksum %s%s\n", dh_policy_name(s->cfg.policy), dh_checksum_name(s->cfg.checksum),
	       s->keyed ? ", keyed" : "");
	printf("stream      %" PRIu64 " from seq %" PRIu64 ", committed %" PRIu64 ", oldest held %" PRIu64
	       ", end-of-stream %s\n",
	       s->stream, s->stream_start, s->committed, s->committed > s->cfg.slots ? s->committed - s->cfg.slots : 0,
	       s->eos ? "yes" : "no");
	printf("counters    %" PRIu64 " readers reaped, %" PRIu64 " evictions, %" PRIu64 " queue lost, %" PRIu64
	       " checksum failures, %" PRIu64 " key mismatches, %" PRIu64 " schema mismatches\n",
	       s->readers_reaped, s->evictions, s->queue_lost, s->checksum_failures, s->key_mismatches,
	       s->schema_mismatches);
	participant_text(m, &s->part[0]);
	for (int i = 1; i < s->nparticipants; i++)
		nreaders += s->part[i].state != DH_P_FREE;
	printf("readers     %d\n", nreaders);
	for (int i = 1; i < s->nparticipants; i++)
		if (s->part[i].state != DH_P_FREE)
			participant_text(m, &s->part[i]);
	printf("findings    %zu, %d problem%s\n", m->rep.n, m->rep.problems, m->rep.problems == 1 ? "" : "s");
	for (size_t i = 0; i < m->rep.n; i++) {
		const struct fview *v = &m->fv[i];
		char d[700];
		printf("  %s [%s] %s\n    blocks: %s\n", dh_finding_name(v->f->kind), dh_action_name(v->f->action),
		       safe(v->f->detail, d, sizeof d), v->blocks);
		if (v->fix[0])
			printf("    fix:    %s\n", v->fix);
	}
	printf("integrity   %s, %" PRIu64 " committed messages checked, %" PRIu64 " failing, %" PRIu64
	       " quarantined\n",
	       verdict_of(m), m->rep.slots_checked, m->failing, m->quarantined);
	printf("verdict     %s\n", m->rep.problems ? "problems found" : "healthy");
}

static int
emit_json(json_t *o)
{
	int rc = json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(o);
	putchar('\n');
	return rc;
}

/* The header did not validate: a dh segment, but not one we can look into. */
static int
report_corrupt(const struct opts *o, int rc)
{
	if (o->json) {
		json_t *j = json_object();
		json_object_set_new(j, "channel", json_string(o->name));
		json_object_set_new(j, "verdict", json_string("corrupt"));
		json_object_set_new(j, "exit", json_integer(EXIT_FAIL));
		json_object_set_new(j, "error", json_string(dh_strerror(rc)));
		emit_json(j);
	} else {
		printf("channel     %s\nverdict     corrupt: %s\n"
		       "            no repair is provably safe: recreate the channel once nobody uses it\n",
		       o->name, dh_strerror(rc));
	}
	return cli_close_stdout() ? EXIT_USAGE : EXIT_FAIL;
}

int
main(int argc, char **argv)
{
	static struct dh_snapshot snap;
	struct opts o;
	struct model m;
	struct sigaction sa;
	uint8_t key[DH_KEY_BYTES];
	int rc, ret;

	cli_init(argc, argv);
	parse(argc, argv, &o);
	if (o.keyfile && (rc = dh_key_load(o.keyfile, key)) < 0)
		cli_diec(EXIT_USAGE, rc, "%s", o.keyfile);

	/* A segment truncated under us faults on access: report, never crash. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_bus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(bus_jmp, 1)) {
		cli_warn("%s: segment truncated while being read", o.name);
		return EXIT_FAIL;
	}

	memset(&m, 0, sizeof m);
	m.name = o.name;
	m.s = &snap;
	rc = dh_block_open(o.name, DH_OPEN_RDONLY, &m.b);
	if (rc == -DH_ECORRUPT || rc == -DH_EVERSION)
		return report_corrupt(&o, rc);
	if (rc == -ENOENT)
		cli_die(EXIT_USAGE, "%s: no such channel", o.name);
	if (rc < 0)
		cli_diec(EXIT_USAGE, rc, "%s", o.name);
	if (o.keyfile) {
		rc = dh_block_set_key(m.b, key);
		dh_key_wipe(key);
		if (rc == -DH_ENOTKEYED)
			cli_warn("%s: channel has no key: --key ignored", o.name);
		else if (rc < 0)
			cli_diec(EXIT_USAGE, rc, "%s", o.name);
	}
	m.verifiable = dh_block_verifiable(m.b);
	if ((rc = dh_block_snapshot(m.b, &snap)) < 0)
		cli_diec(EXIT_USAGE, rc, "%s: snapshot", o.name);
	if ((rc = dh_check_run(m.b, 0, o.stall_ns, &m.rep)) < 0)
		cli_diec(EXIT_USAGE, rc, "%s: check", o.name);
	if (o.slot >= 0 && (uint64_t)o.slot >= snap.cfg.slots)
		cli_die(EXIT_USAGE, "--slot %lld: the channel has %" PRIu32 " slots", (long long)o.slot,
			snap.cfg.slots);
	m.claim_head = snap.claim_head;
	m.record_size = dh_block_schema(m.b, m.schema, sizeof m.schema, m.schema_hash);
	if (m.record_size < 0)
		m.record_size = 0;
	if (!(m.fv = calloc(m.rep.n ? m.rep.n : 1, sizeof *m.fv)))
		cli_diec(EXIT_USAGE, -ENOMEM, "%s", o.name);
	for (size_t i = 0; i < m.rep.n; i++) {
		m.fv[i].f = &m.rep.f[i];
		advise(&m, &m.fv[i]);
		m.failing += m.rep.f[i].kind == DH_FIND_CHECKSUM;
		m.quarantined += m.rep.f[i].kind == DH_FIND_QUARANTINED;
	}
	ret = m.rep.problems ? EXIT_FAIL : EXIT_OK;

	if (o.slot >= 0) {
		struct slotview v;
		slot_view(&m, (uint32_t)o.slot, &v);
		if (o.json) {
			json_t *j = json_object();
			json_object_set_new(j, "channel", json_string(o.name));
			json_object_set_new(j, "verdict", json_string(ret ? "problems" : "healthy"));
			json_object_set_new(j, "exit", json_integer(ret));
			json_object_set_new(j, "slot", slot_json(&v));
			emit_json(j);
		} else {
			slot_text(&m, &v);
		}
	} else if (o.json) {
		emit_json(channel_json(&m));
	} else {
		channel_text(&m);
	}
	free(m.fv);
	dh_report_free(&m.rep);
	dh_block_close(m.b);
	if (cli_close_stdout() != 0)
		return EXIT_USAGE;
	return ret;
}
