/* net_wire.c: dh-net frames (encode, decode) and the subscriber's validation of what an exporter sends. See LICENSE. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <sodium.h>

#include "dh_impl.h"
#include "dh_net.h"

/* ---- little-endian fields -------------------------------------------- */

static void
put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void
put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t
get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t
get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void
head(unsigned char *p, enum dh_net_type t)
{
	p[0] = 'D';
	p[1] = 'H';
	p[2] = 'N';
	p[3] = DH_NET_VERSION;
	p[4] = (unsigned char)t;
	p[5] = p[6] = p[7] = 0;
}

static int
all_zero(const unsigned char *p, size_t n)
{
	unsigned char acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

int
dh_net_frame_type(const void *buf, size_t len, unsigned *version)
{
	const unsigned char *p = buf;

	if (len < DH_NET_HEAD || p[0] != 'D' || p[1] != 'H' || p[2] != 'N')
		return -EPROTO;
	if (version)
		*version = p[3];
	if (p[3] != DH_NET_VERSION)
		return -EPROTONOSUPPORT;
	if (p[5] || p[6] || p[7] || p[4] < DH_NET_HELLO || p[4] > DH_NET_BYE)
		return -EPROTO;
	return p[4];
}

static int
expect(const void *buf, size_t len, enum dh_net_type t)
{
	int r = dh_net_frame_type(buf, len, NULL);

	if (r < 0)
		return r;
	return r == (int)t ? 0 : -EPROTO;
}

/* ---- HELLO: head, window u32, flags u32, start u8, name length u8, 2 zero, start_seq u64,
 * (with DH_NET_F_RESUME: resume u32), name */

#define HELLO_FIXED 28

ssize_t
dh_net_hello_encode(const struct dh_net_hello *h, void *buf, size_t cap)
{
	size_t n = strnlen(h->channel, sizeof h->channel);
	size_t fixed = HELLO_FIXED + (h->flags & DH_NET_F_RESUME ? 4 : 0);
	unsigned char *p = buf;

	if ((n > 0 && dh_name_check(h->channel) < 0) || h->window < 1 || h->window > DH_NET_WINDOW_MAX ||
	    h->start > DH_START_HELD || (h->flags & ~(DH_NET_F_FOLLOW | DH_NET_F_RESUME)) ||
	    ((h->flags & DH_NET_F_RESUME) && h->resume == 0))
		return -EINVAL;
	if (cap < fixed + n)
		return -ENOBUFS;
	head(p, DH_NET_HELLO);
	put32(p + 8, h->window);
	put32(p + 12, h->flags);
	p[16] = h->start;
	p[17] = (unsigned char)n;
	p[18] = p[19] = 0;
	put64(p + 20, h->start_seq);
	if (h->flags & DH_NET_F_RESUME)
		put32(p + HELLO_FIXED, h->resume);
	memcpy(p + fixed, h->channel, n);
	return (ssize_t)(fixed + n);
}

int
dh_net_hello_decode(const void *buf, size_t len, struct dh_net_hello *out)
{
	const unsigned char *p = buf;
	size_t fixed = HELLO_FIXED;
	int r;

	if ((r = expect(buf, len, DH_NET_HELLO)) < 0)
		return r;
	if (len >= HELLO_FIXED && (get32(p + 12) & DH_NET_F_RESUME))
		fixed += 4;
	if (len < fixed || len != fixed + (size_t)p[17] || p[18] || p[19])
		return -EPROTO;
	memset(out, 0, sizeof *out);
	out->window = get32(p + 8);
	out->flags = get32(p + 12);
	out->start = p[16];
	out->start_seq = get64(p + 20);
	if (out->flags & DH_NET_F_RESUME)
		out->resume = get32(p + HELLO_FIXED);
	memcpy(out->channel, p + fixed, p[17]);
	out->channel[p[17]] = '\0';
	if (out->window < 1 || out->window > DH_NET_WINDOW_MAX || out->start > DH_START_HELD ||
	    (out->flags & ~(DH_NET_F_FOLLOW | DH_NET_F_RESUME)) || ((out->flags & DH_NET_F_RESUME) && !out->resume) ||
	    strlen(out->channel) != p[17] ||
	    (p[17] > 0 && dh_name_check(out->channel) < 0))
		return -EPROTO;
	return 0;
}

/* ---- WELCOME: head, session u32, policy u8, checksum u8, keyed u8, has_schema u8,
 * slots u32, slot_size u32, record_size u32, 4 zero, start u64, chan_id 16, key_id 32,
 * schema_hash 32, schema length u16, 2 zero, schema */

#define WELCOME_FIXED 124

static int
schema_text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return 0;
	return 1;
}

static int
welcome_ok(const struct dh_net_welcome *w)
{
	size_t sl = strnlen(w->schema, sizeof w->schema);

	if (w->session == 0 || !dh_policy_info(w->policy) || !dh_checksum_info(w->checksum))
		return 0;
	if ((w->keyed != 0) != (w->checksum == DH_CHECKSUM_MAC) || (w->has_schema != 0 && w->has_schema != 1))
		return 0;
	if (!w->keyed && !all_zero(w->key_id, 32))
		return 0;
	if (!w->has_schema && (!all_zero(w->schema_hash, 32) || w->record_size != 0 || sl != 0))
		return 0;
	if (w->has_schema && (w->record_size == 0 || w->record_size > w->slot_size))
		return 0;
	if (w->slots < 1 || w->slots > DH_SLOTS_MAX || w->slot_size < 1 || w->slot_size > DH_NET_PAYLOAD_MAX)
		return 0;
	return sl < sizeof w->schema && schema_text_ok(w->schema, sl);
}

ssize_t
dh_net_welcome_encode(const struct dh_net_welcome *w, void *buf, size_t cap)
{
	size_t sl = strnlen(w->schema, sizeof w->schema);
	unsigned char *p = buf;

	if (!welcome_ok(w))
		return -EINVAL;
	if (cap < WELCOME_FIXED + sl)
		return -ENOBUFS;
	head(p, DH_NET_WELCOME);
	put32(p + 8, w->session);
	p[12] = (unsigned char)w->policy;
	p[13] = (unsigned char)w->checksum;
	p[14] = (unsigned char)(w->keyed != 0);
	p[15] = (unsigned char)w->has_schema;
	put32(p + 16, w->slots);
	put32(p + 20, w->slot_size);
	put32(p + 24, w->record_size);
	put32(p + 28, 0);
	put64(p + 32, w->start);
	memcpy(p + 40, w->chan_id, 16);
	memcpy(p + 56, w->key_id, 32);
	memcpy(p + 88, w->schema_hash, 32);
	put16(p + 120, (uint16_t)sl);
	put16(p + 122, 0);
	memcpy(p + WELCOME_FIXED, w->schema, sl);
	return (ssize_t)(WELCOME_FIXED + sl);
}

int
dh_net_welcome_decode(const void *buf, size_t len, struct dh_net_welcome *out)
{
	const unsigned char *p = buf;
	size_t sl;
	int r;

	if ((r = expect(buf, len, DH_NET_WELCOME)) < 0)
		return r;
	if (len < WELCOME_FIXED)
		return -EPROTO;
	sl = get16(p + 120);
	if (len != WELCOME_FIXED + sl || sl >= sizeof out->schema || get32(p + 28) || get16(p + 122))
		return -EPROTO;
	if (!dh_policy_info((enum dh_policy)p[12]) || !dh_checksum_info((enum dh_checksum)p[13]) || p[14] > 1 || p[15] > 1)
		return -EPROTO;
	memset(out, 0, sizeof *out);
	out->session = get32(p + 8);
	out->policy = (enum dh_policy)p[12];
	out->checksum = (enum dh_checksum)p[13];
	out->keyed = p[14];
	out->has_schema = p[15];
	out->slots = get32(p + 16);
	out->slot_size = get32(p + 20);
	out->record_size = get32(p + 24);
	out->start = get64(p + 32);
	memcpy(out->chan_id, p + 40, 16);
	memcpy(out->key_id, p + 56, 32);
	memcpy(out->schema_hash, p + 88, 32);
	memcpy(out->schema, p + WELCOME_FIXED, sl);
	out->schema[sl] = '\0';
	if (strlen(out->schema) != sl || !welcome_ok(out))
		return -EPROTO;
	return 0;
}

/* ---- CREDIT: head, grant u32, 4 zero, ack u64 */

#define CREDIT_LEN 24

ssize_t
dh_net_credit_encode(const struct dh_net_credit *c, void *buf, size_t cap)
{
	unsigned char *p = buf;

	if (c->grant > DH_NET_WINDOW_MAX)
		return -EINVAL;
	if (cap < CREDIT_LEN)
		return -ENOBUFS;
	head(p, DH_NET_CREDIT);
	put32(p + 8, c->grant);
	put32(p + 12, 0);
	put64(p + 16, c->ack);
	return CREDIT_LEN;
}

int
dh_net_credit_decode(const void *buf, size_t len, struct dh_net_credit *out)
{
	const unsigned char *p = buf;
	int r;

	if ((r = expect(buf, len, DH_NET_CREDIT)) < 0)
		return r;
	if (len != CREDIT_LEN || get32(p + 12))
		return -EPROTO;
	out->grant = get32(p + 8);
	out->ack = get64(p + 16);
	return out->grant > DH_NET_WINDOW_MAX ? -EPROTO : 0;
}

/* ---- DATA: head, session u32, len u32, seq u64, time u64, lost u64, check 32 */

ssize_t
dh_net_data_encode(const struct dh_net_data *d, void *buf, size_t cap)
{
	unsigned char *p = buf;

	if (d->len > DH_NET_PAYLOAD_MAX || d->session == 0)
		return -EINVAL;
	if (cap < DH_NET_DATA_HEAD)
		return -ENOBUFS;
	head(p, DH_NET_DATA);
	put32(p + 8, d->session);
	put32(p + 12, d->len);
	put64(p + 16, d->seq);
	put64(p + 24, d->time_ns);
	put64(p + 32, d->lost);
	memcpy(p + 40, d->check, 32);
	return DH_NET_DATA_HEAD;
}

int
dh_net_data_decode(const void *buf, size_t len, struct dh_net_data *out)
{
	const unsigned char *p = buf;
	int r;

	if ((r = expect(buf, len, DH_NET_DATA)) < 0)
		return r;
	if (len != DH_NET_DATA_HEAD)
		return -EPROTO;
	out->session = get32(p + 8);
	out->len = get32(p + 12);
	out->seq = get64(p + 16);
	out->time_ns = get64(p + 24);
	out->lost = get64(p + 32);
	memcpy(out->check, p + 40, 32);
	return out->len > DH_NET_PAYLOAD_MAX || out->session == 0 || out->seq == UINT64_MAX ? -EPROTO : 0;
}

/* ---- NOTICE: head, session u32, code u16, text length u16, err i32, 4 zero, seq u64, text */

#define NOTICE_FIXED 32

static int
text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

ssize_t
dh_net_notice_encode(const struct dh_net_notice *n, void *buf, size_t cap)
{
	size_t tl = strnlen(n->text, sizeof n->text);
	unsigned char *p = buf;

	if (n->code < DH_NET_N_EOS || n->code >= DH_NET_N_LAST || tl > DH_NET_TEXT_MAX || !text_ok(n->text, tl))
		return -EINVAL;
	if (cap < NOTICE_FIXED + tl)
		return -ENOBUFS;
	head(p, DH_NET_NOTICE);
	put32(p + 8, n->session);
	put16(p + 12, (uint16_t)n->code);
	put16(p + 14, (uint16_t)tl);
	put32(p + 16, (uint32_t)n->err);
	put32(p + 20, 0);
	put64(p + 24, n->seq);
	memcpy(p + NOTICE_FIXED, n->text, tl);
	return (ssize_t)(NOTICE_FIXED + tl);
}

int
dh_net_notice_decode(const void *buf, size_t len, struct dh_net_notice *out)
{
	const unsigned char *p = buf;
	size_t tl;
	int r;

	if ((r = expect(buf, len, DH_NET_NOTICE)) < 0)
		return r;
	if (len < NOTICE_FIXED)
		return -EPROTO;
	tl = get16(p + 14);
	if (len != NOTICE_FIXED + tl || tl > DH_NET_TEXT_MAX || get32(p + 20))
		return -EPROTO;
	memset(out, 0, sizeof *out);
	out->session = get32(p + 8);
	out->code = (enum dh_net_code)get16(p + 12);
	out->err = (int32_t)get32(p + 16);
	out->seq = get64(p + 24);
	memcpy(out->text, p + NOTICE_FIXED, tl);
	out->text[tl] = '\0';
	if (out->code < DH_NET_N_EOS || out->code >= DH_NET_N_LAST || !text_ok(out->text, tl) ||
	    out->err > 0 || out->err < -(DH_ELAST + 64))
		return -EPROTO;
	return 0;
}

ssize_t
dh_net_bye_encode(void *buf, size_t cap)
{
	if (cap < DH_NET_HEAD)
		return -ENOBUFS;
	head(buf, DH_NET_BYE);
	return DH_NET_HEAD;
}

/* ---- verification ------------------------------------------------------ */

int
dh_net_check_verify(enum dh_checksum kind, const uint8_t chan_id[16], const uint8_t *key, uint64_t seq,
		    const void *data, size_t len, const uint8_t check[32])
{
	/* check.c computes from a block: give it one that holds only what
	 * the computation reads (kind, channel id, key) */
	struct dh_block *b;
	int r;

	if (kind == DH_CHECKSUM_NONE)
		return 0;
	if (len > UINT32_MAX || (kind == DH_CHECKSUM_MAC && key == NULL))
		return -DH_ECHECKSUM;
	if ((b = calloc(1, sizeof *b)) == NULL)
		return -ENOMEM;
	b->cfg.checksum = kind;
	memcpy(b->chan_id, chan_id, 16);
	if (key) {
		memcpy(b->key, key, DH_KEY_BYTES);
		b->has_key = 1;
	}
	r = dh__check_verify(b, seq, data, (uint32_t)len, check);
	sodium_memzero(b->key, sizeof b->key);
	free(b);
	return r;
}

/* ---- the receiver ------------------------------------------------------ */

enum { RX_WAIT = 0, RX_STREAM, RX_ENDED, RX_BROKEN };

struct dh_net_rx {
	struct dh_net_rx_opts o;
	uint8_t key[DH_KEY_BYTES];
	int has_key;
	int state;
	struct dh_net_welcome w;
	int have_last;           /* a message (or a checked skip) was accepted this session or before */
	uint64_t next;           /* seq expected next at the earliest */
	struct dh_block *vb;     /* what check.c verifies with: kind, channel id, key */
	char err[192];
};

int
dh_net_rx_new(const struct dh_net_rx_opts *o, struct dh_net_rx **out)
{
	struct dh_net_rx *rx = calloc(1, sizeof *rx);

	*out = NULL;
	if (rx == NULL || (rx->vb = calloc(1, sizeof *rx->vb)) == NULL) {
		free(rx);
		return -ENOMEM;
	}
	if (o)
		rx->o = *o;
	if (rx->o.key) {
		memcpy(rx->key, rx->o.key, DH_KEY_BYTES);
		rx->has_key = 1;
	}
	rx->o.key = NULL;
	rx->next = rx->o.after;
	rx->have_last = rx->o.after > 0;
	*out = rx;
	return 0;
}

void
dh_net_rx_free(struct dh_net_rx *rx)
{
	if (rx == NULL)
		return;
	sodium_memzero(rx->key, sizeof rx->key);
	sodium_memzero(rx->vb->key, sizeof rx->vb->key);
	free(rx->vb);
	free(rx);
}

const char *
dh_net_rx_error(const struct dh_net_rx *rx)
{
	return rx->err;
}

const struct dh_net_welcome *
dh_net_rx_welcome(const struct dh_net_rx *rx)
{
	return rx->state == RX_WAIT ? NULL : &rx->w;
}

uint64_t
dh_net_rx_next_seq(const struct dh_net_rx *rx)
{
	return rx->next;
}

void
dh_net_rx_reset(struct dh_net_rx *rx)
{
	if (rx->state != RX_BROKEN)
		rx->state = RX_WAIT;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
broken(struct dh_net_rx *rx, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rx->err, sizeof rx->err, fmt, ap);
	va_end(ap);
	if (code != -DH_ECHECKSUM)
		rx->state = RX_BROKEN;
	return code;
}

static const char *
type_name(int t)
{
	static const char *const names[] = { "?", "HELLO", "WELCOME", "CREDIT", "DATA", "NOTICE", "BYE" };

	return t > 0 && t <= DH_NET_BYE ? names[t] : "?";
}

static int
on_welcome(struct dh_net_rx *rx, const void *buf, size_t len)
{
	struct dh_net_welcome w;
	uint8_t id[32];

	if (dh_net_welcome_decode(buf, len, &w) < 0)
		return broken(rx, -EPROTO, "malformed WELCOME frame (%zu bytes)", len);
	if (rx->o.has_schema && (!w.has_schema || sodium_memcmp(w.schema_hash, rx->o.schema_hash, 32) != 0))
		return broken(rx, -DH_ESCHEMA, "schema mismatch: the remote channel %s",
			      w.has_schema ? "has another schema" : "has no schema");
	if (w.keyed && !rx->has_key)
		return broken(rx, -DH_EKEYNEEDED, "the remote channel is keyed: its MAC key is needed (--key)");
	if (!w.keyed && rx->has_key)
		return broken(rx, -DH_ENOTKEYED, "a key was given but the remote channel is not keyed");
	if (w.keyed) {
		dh__key_id(rx->key, id);
		if (sodium_memcmp(id, w.key_id, 32) != 0)
			return broken(rx, -DH_EKEY, "the key is not the remote channel's");
	}
	if (rx->state == RX_STREAM && (rx->w.checksum != w.checksum || memcmp(rx->w.chan_id, w.chan_id, 16) != 0))
		return broken(rx, -EPROTO, "the exporter's channel changed identity within a session");
	if (rx->have_last && rx->state == RX_WAIT && rx->w.session != 0 &&
	    memcmp(rx->w.chan_id, w.chan_id, 16) != 0) {
		/* resuming on another channel of that name: seqs do not carry over */
		return broken(rx, -EPROTO, "the remote channel was recreated: cannot resume at seq %llu",
			      (unsigned long long)rx->next);
	}
	if (rx->state != RX_WAIT)
		return broken(rx, -EPROTO, "unexpected second WELCOME frame");
	rx->w = w;
	rx->state = RX_STREAM;
	rx->vb->cfg.checksum = w.checksum;
	memcpy(rx->vb->chan_id, w.chan_id, 16);
	if (w.keyed) {
		memcpy(rx->vb->key, rx->key, DH_KEY_BYTES);
		rx->vb->has_key = 1;
	}
	return DH_NET_EV_WELCOME;
}

static int
ordered(const struct dh_net_rx *rx)
{
	return dh_policy_info(rx->w.policy)->in_order;
}

/* DATA: one frame, the 72-byte header and then the payload. */
static int
on_data(struct dh_net_rx *rx, const void *const *parts, const size_t *lens, struct dh_msg *m)
{
	struct dh_net_data d;

	const unsigned char *payload = (const unsigned char *)parts[0] + DH_NET_DATA_HEAD;
	size_t plen = lens[0] - DH_NET_DATA_HEAD;

	if (lens[0] < DH_NET_DATA_HEAD || dh_net_data_decode(parts[0], DH_NET_DATA_HEAD, &d) < 0)
		return broken(rx, -EPROTO, "malformed DATA header (%zu bytes)", lens[0]);
	if (rx->state != RX_STREAM)
		return broken(rx, -EPROTO, "DATA frame before WELCOME");
	if (d.session != rx->w.session)
		return broken(rx, -EPROTO, "DATA frame of another session (%u, not %u): forged or replayed",
			      d.session, rx->w.session);
	if (d.len != plen)
		return broken(rx, -EPROTO, "DATA seq %llu announces %u bytes but carries %zu: truncated or forged",
			      (unsigned long long)d.seq, d.len, plen);
	if (d.len > rx->w.slot_size)
		return broken(rx, -EPROTO, "DATA seq %llu is %u bytes, over the channel's slot size %u: oversized",
			      (unsigned long long)d.seq, d.len, rx->w.slot_size);
	if (rx->w.record_size && d.len != rx->w.record_size)
		return broken(rx, -EPROTO, "DATA seq %llu is %u bytes, not a record of the schema (%u)",
			      (unsigned long long)d.seq, d.len, rx->w.record_size);
	if (rx->have_last && d.seq < rx->next)
		return broken(rx, -EPROTO, "DATA seq %llu after seq %llu: replayed or reordered",
			      (unsigned long long)d.seq, (unsigned long long)(rx->next - 1));
	if (rx->have_last && ordered(rx) && (d.lost > d.seq - rx->next || d.seq - rx->next != d.lost))
		return broken(rx, -EPROTO, "DATA seq %llu after seq %llu reports %llu lost: a silent gap",
			      (unsigned long long)d.seq, (unsigned long long)(rx->next - 1),
			      (unsigned long long)d.lost);
	if (!rx->have_last && ordered(rx) && (d.seq < rx->w.start || d.seq - rx->w.start != d.lost))
		return broken(rx, -EPROTO, "first DATA seq %llu reports %llu lost from seq %llu: a silent gap",
			      (unsigned long long)d.seq, (unsigned long long)d.lost,
			      (unsigned long long)rx->w.start);
	if (d.lost > d.seq)
		return broken(rx, -EPROTO, "DATA seq %llu reports %llu lost: impossible",
			      (unsigned long long)d.seq, (unsigned long long)d.lost);
	rx->next = d.seq + 1;
	rx->have_last = 1;
	m->data = payload;
	m->len = d.len;
	m->seq = d.seq;
	m->time_ns = d.time_ns;
	m->lost = d.lost;
	if (rx->w.checksum != DH_CHECKSUM_NONE && dh__check_verify(rx->vb, d.seq, payload, d.len, d.check) < 0)
		return broken(rx, -DH_ECHECKSUM, "message seq %llu failed its %s check: corrupted or forged",
			      (unsigned long long)d.seq, dh_checksum_name(rx->w.checksum));
	return DH_NET_EV_DATA;
}

static int
on_notice(struct dh_net_rx *rx, const void *buf, size_t len, struct dh_net_notice *n)
{
	if (dh_net_notice_decode(buf, len, n) < 0)
		return broken(rx, -EPROTO, "malformed NOTICE frame (%zu bytes)", len);
	/* a refusal or a reset may come before any WELCOME: session 0 */
	if (n->code == DH_NET_N_REFUSED || n->code == DH_NET_N_RESET) {
		if (n->session != 0 && (rx->state != RX_STREAM || n->session != rx->w.session))
			return broken(rx, -EPROTO, "NOTICE of another session");
		return DH_NET_EV_NOTICE;
	}
	if (rx->state != RX_STREAM)
		return broken(rx, -EPROTO, "NOTICE frame before WELCOME");
	if (n->session != rx->w.session)
		return broken(rx, -EPROTO, "NOTICE of another session (%u, not %u): forged or replayed",
			      n->session, rx->w.session);
	if (n->code == DH_NET_N_CHECKSUM) {
		/* the exporter skipped it: it counts as passed, like a local reader's skip */
		if (rx->have_last && (n->seq < rx->next || (ordered(rx) && n->seq != rx->next)))
			return broken(rx, -EPROTO, "checksum NOTICE for seq %llu out of order",
				      (unsigned long long)n->seq);
		rx->next = n->seq + 1;
		rx->have_last = 1;
	}
	if (n->code == DH_NET_N_EOS || n->code == DH_NET_N_WRITER_DEAD || n->code == DH_NET_N_EVICTED ||
	    n->code == DH_NET_N_ERROR)
		rx->state = RX_ENDED;
	return DH_NET_EV_NOTICE;
}

int
dh_net_rx_feed(struct dh_net_rx *rx, const void *const *parts, const size_t *lens, int nparts,
	       struct dh_msg *m, struct dh_net_notice *n)
{
	unsigned version = 0;
	int t;

	if (rx->state == RX_BROKEN)
		return -EPROTO;
	if (nparts < 1)
		return broken(rx, -EPROTO, "empty message");
	t = dh_net_frame_type(parts[0], lens[0], &version);
	if (t == -EPROTONOSUPPORT)
		return broken(rx, t, "the peer speaks dh-net protocol version %u, this is version %d", version,
			      DH_NET_VERSION);
	if (t < 0)
		return broken(rx, -EPROTO, "not a dh-net frame (%zu bytes)", lens[0]);
	if (rx->state == RX_ENDED)
		return broken(rx, -EPROTO, "%s frame after the end of the stream", type_name(t));
	if (nparts != 1)
		return broken(rx, -EPROTO, "%s message of %d frames", type_name(t), nparts);
	switch (t) {
	case DH_NET_WELCOME:
		return on_welcome(rx, parts[0], lens[0]);
	case DH_NET_DATA:
		return on_data(rx, parts, lens, m);
	case DH_NET_NOTICE:
		return on_notice(rx, parts[0], lens[0], n);
	default:
		return broken(rx, -EPROTO, "unexpected %s frame from the exporter", type_name(t));
	}
}
