/* diagnose_print.c: dh-diagnose's text report and its JSON (dh-json(5)). See LICENSE. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "diagnose.h"

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

json_t *
diag_slot_json(const struct slotview *v)
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

void
diag_slot_text(const struct model *m, const struct slotview *v)
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
	uint64_t claim = diag_claim_of(m, p->index);

	if (p->index > 0)
		json_object_set_new(o, "index", json_integer(p->index));
	json_object_set_new(o, "state", json_string(diag_pstate(m, p)));
	json_object_set_new(o, "pid", p->state == DH_P_FREE || !p->pid ? json_null() : json_integer(p->pid));
	json_object_set_new(o, "name", p->state == DH_P_FREE ? json_null() : jstr(p->name));
	json_object_set_new(o, "position", ju64(p->position));
	if (p->index > 0) {
		json_object_set_new(o, "lag", ju64(diag_lag_of(m, p)));
		json_object_set_new(o, "claim", claim == UINT64_MAX ? json_null() : ju64(claim));
	}
	json_object_set_new(o, "last_active_ns", ju64(p->last_active_ns));
	json_object_set_new(o, "idle_ns", ju64(p->idle_ns));
	json_object_set_new(o, "age_ns", ju64(p->idle_ns));    /* deprecated alias until 0.2 */
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

json_t *
diag_channel_json(const struct model *m)
{
	const struct dh_snapshot *s = m->s;
	json_t *o = json_object(), *g = json_object(), *l = json_object();
	json_t *c = json_object(), *rd = json_array(), *fs = json_array(), *in = json_object();
	char h[65];

	/* The vocabulary of dh-json(5), shared with dh-stat and dh-validate. */
	json_object_set_new(o, "channel", json_string(m->name));
	json_object_set_new(o, "verdict", json_string(m->rep.problems ? "problems" : "healthy"));
	json_object_set_new(o, "exit", json_integer(m->rep.problems ? EXIT_FAIL : EXIT_OK));
	json_object_set_new(o, "error", json_null());
	json_object_set_new(o, "format_version", json_integer(dh_format_version()));
	json_object_set_new(o, "created_ns", ju64(s->created_ns));
	json_object_set_new(o, "creator_uid", json_integer(s->creator_uid));
	json_object_set_new(o, "creator_pid", json_integer(s->creator_pid));
	json_object_set_new(o, "slots", json_integer(s->cfg.slots));
	json_object_set_new(o, "slot_size", json_integer(s->cfg.slot_size));
	json_object_set_new(o, "stride", ju64(s->lay.stride));
	json_object_set_new(o, "meta_size", json_integer(s->cfg.meta_size));
	json_object_set_new(o, "max_readers", json_integer(s->cfg.max_readers));
	json_object_set_new(o, "segment_size", ju64(s->lay.total));
	/* the same as "geometry", the old nesting: a deprecated alias until 0.2 */
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
		hex(m->schema_hash, 32, h);
		json_object_set_new(o, "schema", jstr(m->schema));
		json_object_set_new(o, "schema_hash", json_string(h));
		json_object_set_new(o, "record_size", json_integer(m->record_size));
	} else {
		json_object_set_new(o, "schema", json_null());
		json_object_set_new(o, "schema_hash", json_null());
		json_object_set_new(o, "record_size", json_null());
	}
	json_object_set_new(o, "committed", ju64(s->committed));
	json_object_set_new(o, "oldest", ju64(s->committed > s->cfg.slots ? s->committed - s->cfg.slots : 0));
	json_object_set_new(o, "end_of_stream", json_boolean(s->eos));
	json_object_set_new(o, "stream", ju64(s->stream));
	json_object_set_new(o, "stream_start", ju64(s->stream_start));
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
	json_object_set_new(in, "verdict", json_string(diag_verdict_of(m)));
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
	uint64_t cl = diag_claim_of(m, p->index);

	snprintf(pid, sizeof pid, p->pid ? "pid %ld" : "pid -", (long)p->pid);
	if (p->index == 0) {
		if (p->state == DH_P_FREE) {
			printf("writer      none\n");
			return;
		}
		printf("writer      %s %s %s, next seq %" PRIu64 ", last active %.1fs ago, %" PRIu64
		       " messages, %" PRIu64 " bytes\n",
		       diag_pstate(m, p), pid, safe(p->name, nm, sizeof nm), p->position,
		       (double)p->idle_ns / 1e9, p->messages, p->bytes);
		return;
	}
	snprintf(lag, sizeof lag, ", lag %" PRIu64, diag_lag_of(m, p));
	if (cl != UINT64_MAX)
		snprintf(claim, sizeof claim, ", holds %" PRIu64, cl);
	printf("  %-3d %s %s %s, position %" PRIu64 "%s%s, last active %.1fs ago, %" PRIu64 " messages, %" PRIu64
	       " bytes, %" PRIu64 " lost, %" PRIu64 " checksum failures\n",
	       p->index, diag_pstate(m, p), pid, safe(p->name, nm, sizeof nm), p->position, lag, claim,
	       (double)p->idle_ns / 1e9, p->messages, p->bytes, p->lost, p->checksum_failures);
}

void
diag_channel_text(const struct model *m)
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
	       diag_verdict_of(m), m->rep.slots_checked, m->failing, m->quarantined);
	printf("verdict     %s\n", m->rep.problems ? "problems found" : "healthy");
}

int
diag_emit_json(json_t *o)
{
	int rc = json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(o);
	putchar('\n');
	return rc;
}

/* The header did not validate: a dh segment, but not one we can look into. */