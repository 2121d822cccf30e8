/* diagnose_model.c: dh-diagnose's reading of a check report: participant states, what each finding blocks, the fix. See LICENSE. */
#include <stdio.h>
#include <string.h>

#include "diagnose.h"

const char *
diag_pstate(const struct model *m, const struct dh_participant *p)
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
uint64_t
diag_lag_of(const struct model *m, const struct dh_participant *p)
{
	uint64_t at = dh_policy_info(m->s->cfg.policy)->claims ? m->claim_head : p->position;

	return m->s->committed > at ? m->s->committed - at : 0;
}

uint64_t
diag_claim_of(const struct model *m, int index)
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

void
diag_advise(const struct model *m, struct fview *v)
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

const char *
diag_verdict_of(const struct model *m)
{
	if (m->s->cfg.checksum == DH_CHECKSUM_NONE)
		return "unchecked";
	if (!m->verifiable)
		return "unverified";
	return m->failing ? "failing" : "ok";
}

static const char *const slot_state_names[] = {
	[DH_SLOT_EMPTY] = "empty",
	[DH_SLOT_WRITING] = "writing",
	[DH_SLOT_COMMITTED] = "committed",
	[DH_SLOT_UNPUBLISHED] = "unpublished",
	[DH_SLOT_INCONSISTENT] = "inconsistent",
};

void
diag_slot_view(const struct model *m, uint32_t i, struct slotview *v)
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
