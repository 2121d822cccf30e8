/* diagnose.h: dh-diagnose's view of a channel (diagnose_model.c) and its text and JSON renderings (diagnose_print.c). See LICENSE. */
#ifndef DH_DIAGNOSE_H
#define DH_DIAGNOSE_H

#include <stdint.h>

#include <jansson.h>

#include "cli.h"

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

struct slotview {
	struct dh_slot_info i;
	const char *state, *integrity;
};

/* The model: what each participant is (ALIVE, DEAD, STALLED, EVICTED,
 * INACCESSIBLE, NONE), how far behind, what a finding blocks and the
 * command that fixes it, the integrity verdict, one slot decoded. */
const char *diag_pstate(const struct model *m, const struct dh_participant *p);
uint64_t diag_lag_of(const struct model *m, const struct dh_participant *p);
uint64_t diag_claim_of(const struct model *m, int index);
void diag_advise(const struct model *m, struct fview *v);
const char *diag_verdict_of(const struct model *m);
void diag_slot_view(const struct model *m, uint32_t i, struct slotview *v);

/* The renderings: text on stdout, or JSON objects in the vocabulary of
 * dh-json(5); diag_emit_json prints one on a line and frees it. */
void diag_channel_text(const struct model *m);
json_t *diag_channel_json(const struct model *m);
void diag_slot_text(const struct model *m, const struct slotview *v);
json_t *diag_slot_json(const struct slotview *v);
int diag_emit_json(json_t *o);

#endif
