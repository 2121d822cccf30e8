/* inspect.c: a public read-only view of slots and identity, for tools that explain a channel. See LICENSE. */
#include <errno.h>
#include <string.h>

#include "dh_impl.h"

unsigned
dh_format_version(void)
{
	return DH_FORMAT_VERSION;
}

const struct dh_config *
dh_block_config(const struct dh_block *b)
{
	return &b->cfg;
}

int
dh_block_verifiable(const struct dh_block *b)
{
	return dh__verifiable(b);
}

int
dh_block_key_id(const struct dh_block *b, uint8_t id[32])
{
	if (!b->ck->keyed)
		return -DH_ENOTKEYED;
	memcpy(id, b->hdr->key_id, 32);
	return 0;
}

/*
 * The stamp and claim encodings are known here and in ring.c/validate.c
 * only: tools get them decoded.  Fields are read once each, so a live
 * writer can make the result a mix of two moments; the stamp is read first
 * and decides the state.
 */
int
dh_block_slot(struct dh_block *b, uint64_t committed, uint32_t slot, struct dh_slot_info *v)
{
	struct dh_desc *d;
	uint64_t n = b->cfg.slots, tag;

	if (slot >= n)
		return -EINVAL;
	d = &b->desc[slot];
	memset(v, 0, sizeof *v);
	v->slot = slot;
	v->stamp = atomic_load(&d->stamp);
	v->qword = atomic_load(&d->qword);
	v->length = d->length;
	v->flags = d->flags;
	v->quarantined = (d->flags & DH_DESC_QUARANTINED) != 0;
	v->time_ns = d->time_ns;
	v->check_len = b->ck->digest_len;
	memcpy(v->check, d->check, sizeof v->check);
	v->expected = committed > slot ? committed - 1 - ((committed - 1 - slot) % n) : DH_SEQ_NONE;
	v->seq = DH_SEQ_NONE;
	if (v->stamp == 0) {
		v->state = DH_SLOT_EMPTY;
	} else if (v->stamp & 1) {
		v->seq = (v->stamp - 1) / 2;
		v->state = DH_SLOT_WRITING;
	} else {
		v->seq = v->stamp / 2 - 1;
		v->state = v->seq == v->expected ? DH_SLOT_COMMITTED
			 : v->seq >= committed && v->seq - committed < n && v->seq % n == slot ? DH_SLOT_UNPUBLISHED
						 : DH_SLOT_INCONSISTENT;
	}
	if (!b->pol->claims)
		return 0;
	tag = v->qword & ((1u << DH_Q_SHIFT) - 1);
	v->claim_seq = v->qword >> DH_Q_SHIFT;
	v->claim = tag == DH_Q_AVAIL ? DH_CLAIM_AVAILABLE : tag == DH_Q_DONE ? DH_CLAIM_DONE : DH_CLAIM_HELD;
	v->claim_reader = v->claim == DH_CLAIM_HELD ? (int)tag : -1;
	return 0;
}
