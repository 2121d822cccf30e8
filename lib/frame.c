/* frame.c: stdin/stdout framing codecs of dh-write and dh-read. See LICENSE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dh_error.h"
#include "dh_frame.h"
#include "dh_impl.h"

#define BUF_MIN (256u << 10)     /* initial input buffer; read(2) size */

struct dh_frame_dec {
	enum dh_frame_mode mode;
	size_t max;              /* largest item */
	size_t rsize;            /* record mode: record length */
	size_t need;             /* buffer capacity needed for one largest item */
	unsigned char *buf;
	size_t cap;
	size_t start, end;       /* unconsumed input: buf[start..end) */
	size_t scanned;          /* lines/null: bytes after start known to hold no delimiter */
	uint64_t off;            /* input offset of buf[start] */
	uint64_t items;          /* items returned */
	int eof;
	int skipping;            /* lines/null: inside an oversized item, discarding */
	int err;                 /* sticky error */
	struct dh_frame_error e;
};

const char *dh_frame_mode_name(enum dh_frame_mode mode)
{
	switch (mode) {
	case DH_FRAME_RAW: return "raw";
	case DH_FRAME_LINES: return "lines";
	case DH_FRAME_NULL: return "null";
	case DH_FRAME_FRAMED: return "framed";
	case DH_FRAME_RECORD: return "record";
	case DH_FRAME_JSON: return "json";
	}
	return "?";
}

int dh_frame_dec_new(enum dh_frame_mode mode, size_t max_item, size_t record_size,
		     struct dh_frame_dec **out)
{
	struct dh_frame_dec *d;
	size_t need;

	*out = NULL;
	if (max_item == 0 || max_item > SIZE_MAX - 8)
		return -EINVAL;
	switch (mode) {
	case DH_FRAME_RAW: need = max_item; break;
	case DH_FRAME_LINES:
	case DH_FRAME_NULL: need = max_item + 1; break;
	case DH_FRAME_FRAMED: need = max_item + 4; break;
	case DH_FRAME_RECORD:
		if (record_size == 0)
			return -EINVAL;
		if (record_size > max_item)
			return -DH_ETOOBIG;
		need = record_size;
		break;
	default:
		return -EINVAL;
	}
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return -ENOMEM;
	d->mode = mode;
	d->max = max_item;
	d->rsize = record_size;
	d->need = need;
	d->cap = BUF_MIN;         /* read big chunks; grow towards need for large items */
	d->buf = malloc(d->cap);
	if (d->buf == NULL) {
		free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void dh_frame_dec_free(struct dh_frame_dec *d)
{
	if (d == NULL)
		return;
	free(d->buf);
	free(d);
}

int dh_frame_dec_space(struct dh_frame_dec *d, void **buf, size_t *len)
{
	if (d->eof)
		return -EINVAL;
	if (d->start == d->end) {
		d->start = d->end = 0;
	} else if (d->end == d->cap || d->start > d->cap / 2) {
		memmove(d->buf, d->buf + d->start, d->end - d->start);
		d->end -= d->start;
		d->start = 0;
	}
	if (d->end == d->cap) {
		/* One pending item fills the buffer: grow towards d->need. */
		size_t ncap = d->cap <= d->need / 2 ? d->cap * 2 : d->need;
		unsigned char *nb;

		if (ncap <= d->cap)
			return -ENOMEM;   /* cannot happen: next() would have failed */
		nb = realloc(d->buf, ncap);
		if (nb == NULL)
			return -ENOMEM;
		d->buf = nb;
		d->cap = ncap;
	}
	*buf = d->buf + d->end;
	*len = d->cap - d->end;
	return 0;
}

void dh_frame_dec_fill(struct dh_frame_dec *d, size_t n)
{
	if (n == 0) {
		d->eof = 1;
		return;
	}
	if (n > d->cap - d->end)
		n = d->cap - d->end;
	d->end += n;
}

static void consume(struct dh_frame_dec *d, size_t n)
{
	d->start += n;
	d->off += n;
	d->scanned = 0;
}

static int emit(struct dh_frame_dec *d, struct dh_frame_item *item, size_t skip, size_t len,
		size_t total)
{
	item->data = d->buf + d->start + skip;
	item->len = len;
	item->ordinal = ++d->items;
	item->offset = d->off;
	consume(d, total);
	return 0;
}

static int fail(struct dh_frame_dec *d, int err, uint64_t size, uint64_t have)
{
	d->e.ordinal = d->items + 1;
	d->e.offset = d->off;
	d->e.size = size;
	d->e.have = have;
	d->err = err;
	return err;
}

static int next_delimited(struct dh_frame_dec *d, struct dh_frame_item *item, int delim)
{
	size_t pending = d->end - d->start;
	unsigned char *p = d->buf + d->start;
	unsigned char *hit = memchr(p + d->scanned, delim, pending - d->scanned);

	if (d->skipping) {
		/* d->e.size counts the oversized item so far; d->off stays at its start. */
		if (hit != NULL) {
			d->e.size += (uint64_t)(hit - p);
			d->err = -DH_ETOOBIG;
			return d->err;
		}
		d->e.size += pending;
		d->start = d->end;
		if (d->eof) {
			d->err = -DH_ETOOBIG;
			return d->err;
		}
		return DH_FRAME_NEED;
	}
	if (hit != NULL) {
		size_t len = (size_t)(hit - p);

		if (len <= d->max)
			return emit(d, item, 0, len, len + 1);
		return fail(d, -DH_ETOOBIG, len, 0);
	}
	d->scanned = pending;
	if (pending > d->max) {
		/* Too long already: discard up to the delimiter to learn its size. */
		fail(d, 0, pending, 0);  /* details now, error once the size is known */
		d->skipping = 1;
		d->start = d->end;
		d->scanned = 0;
		if (d->eof) {
			d->err = -DH_ETOOBIG;
			return d->err;
		}
		return DH_FRAME_NEED;
	}
	if (d->eof)
		return pending > 0 ? emit(d, item, 0, pending, pending) : DH_FRAME_EOF;
	return DH_FRAME_NEED;
}

static int next_framed(struct dh_frame_dec *d, struct dh_frame_item *item)
{
	size_t pending = d->end - d->start;
	const unsigned char *p = d->buf + d->start;
	uint32_t len;

	if (pending < 4) {
		if (!d->eof)
			return DH_FRAME_NEED;
		return pending == 0 ? DH_FRAME_EOF : fail(d, -EPROTO, 4, pending);
	}
	len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	if (len > d->max)
		return fail(d, -DH_ETOOBIG, len, 0);
	if (pending - 4 < len) {
		if (!d->eof)
			return DH_FRAME_NEED;
		return fail(d, -EPROTO, len, pending - 4);
	}
	return emit(d, item, 4, len, 4 + (size_t)len);
}

int dh_frame_dec_next(struct dh_frame_dec *d, struct dh_frame_item *item)
{
	size_t pending = d->end - d->start;

	if (d->err)
		return d->err;
	switch (d->mode) {
	case DH_FRAME_RAW:
		if (pending > 0)
			return emit(d, item, 0, pending < d->max ? pending : d->max,
				    pending < d->max ? pending : d->max);
		return d->eof ? DH_FRAME_EOF : DH_FRAME_NEED;
	case DH_FRAME_LINES:
		return next_delimited(d, item, '\n');
	case DH_FRAME_NULL:
		return next_delimited(d, item, '\0');
	case DH_FRAME_FRAMED:
		return next_framed(d, item);
	case DH_FRAME_RECORD:
		if (pending >= d->rsize)
			return emit(d, item, 0, d->rsize, d->rsize);
		if (!d->eof)
			return DH_FRAME_NEED;
		return pending == 0 ? DH_FRAME_EOF : fail(d, -EPROTO, d->rsize, pending);
	default:
		return -EINVAL;
	}
}

const struct dh_frame_error *dh_frame_dec_error(const struct dh_frame_dec *d)
{
	return &d->e;
}

uint64_t dh_frame_dec_offset(const struct dh_frame_dec *d)
{
	return d->off;
}

/* ---- output ---------------------------------------------------------- */

int dh_frame_wrap(enum dh_frame_mode mode, size_t len, unsigned char head[DH_FRAME_HEAD_MAX],
		  size_t *head_len, unsigned char *tail, size_t *tail_len)
{
	*head_len = 0;
	*tail_len = 0;
	switch (mode) {
	case DH_FRAME_RAW:
		return 0;
	case DH_FRAME_LINES:
		*tail = '\n';
		*tail_len = 1;
		return 0;
	case DH_FRAME_NULL:
		*tail = '\0';
		*tail_len = 1;
		return 0;
	case DH_FRAME_FRAMED:
		if (len > UINT32_MAX)
			return -DH_ETOOBIG;
		head[0] = (unsigned char)(len & 0xff);
		head[1] = (unsigned char)(len >> 8 & 0xff);
		head[2] = (unsigned char)(len >> 16 & 0xff);
		head[3] = (unsigned char)(len >> 24 & 0xff);
		*head_len = 4;
		return 0;
	default:
		return -EINVAL;
	}
}

/* {"seq":<20>,"time":"<30>","length":<20>,"base64":""}\n */
#define JSON_FIXED 128

size_t dh_frame_encode_bound(enum dh_frame_mode mode, size_t len)
{
	if (mode != DH_FRAME_JSON)
		return len > SIZE_MAX - DH_FRAME_HEAD_MAX - 1 ? SIZE_MAX : len + DH_FRAME_HEAD_MAX + 1;
	if (len > (SIZE_MAX - JSON_FIXED) / 6)
		return SIZE_MAX;
	/* escaped text is at most 6 bytes per input byte, base64 less */
	return JSON_FIXED + 6 * len;
}

static size_t escaped_len(const unsigned char *p, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
			n += 2;
		else if (c < 0x20 || c == 0x7f)
			n += 6;
		else
			n += 1;
	}
	return n;
}

ssize_t dh_frame_encode(enum dh_frame_mode mode, const void *data, size_t len, uint64_t seq,
			uint64_t time_ns, void *out, size_t cap)
{
	char *o = out;
	size_t n, body;
	int text;

	if (mode != DH_FRAME_JSON) {
		unsigned char head[DH_FRAME_HEAD_MAX], tail;
		size_t hl, tl;
		int rc = dh_frame_wrap(mode, len, head, &hl, &tail, &tl);

		if (rc < 0)
			return rc;
		if (cap < hl || cap - hl < len || cap - hl - len < tl)
			return -ENOBUFS;
		memcpy(o, head, hl);
		if (len > 0)
			memcpy(o + hl, data, len);
		memcpy(o + hl + len, &tail, tl);
		return (ssize_t)(hl + len + tl);
	}
	text = dh_frame_utf8_valid(data, len);
	body = text ? escaped_len(data, len) : 4 * (len / 3 + (len % 3 != 0));
	{
		char ts[DH_FRAME_TIME_LEN + 1];
		int m;

		if (dh_frame_time(time_ns, ts) < 0)
			return -EOVERFLOW;
		m = snprintf(o, cap, "{\"seq\":%llu,\"time\":\"%s\",\"length\":%llu,\"%s\":\"",
			     (unsigned long long)seq, ts, (unsigned long long)len,
			     text ? "text" : "base64");
		if (m < 0 || (size_t)m >= cap || cap - (size_t)m < body || cap - (size_t)m - body < 3)
			return -ENOBUFS;
		n = (size_t)m;
	}
	if (text)
		n += dh_frame_json_escape(data, len, o + n);
	else
		n += dh_frame_base64(data, len, o + n);
	memcpy(o + n, "\"}\n", 3);
	return (ssize_t)(n + 3);
}

int dh_frame_utf8_valid(const void *buf, size_t len)
{
	const unsigned char *p = buf, *end = p + len;

	while (p < end) {
		size_t n = dh__utf8_seq(p, end);

		if (n == 0)
			return 0;
		p += n;
	}
	return 1;
}

size_t dh_frame_base64(const void *buf, size_t len, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = buf;
	char *o = out;
	size_t i = 0;

	for (; len - i >= 3; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		*o++ = tab[v >> 18];
		*o++ = tab[v >> 12 & 63];
		*o++ = tab[v >> 6 & 63];
		*o++ = tab[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		*o++ = tab[v >> 18];
		*o++ = tab[v >> 12 & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		*o++ = tab[v >> 18];
		*o++ = tab[v >> 12 & 63];
		*o++ = tab[v >> 6 & 63];
		*o++ = '=';
	}
	return (size_t)(o - out);
}

size_t dh_frame_json_escape(const void *buf, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = buf;
	char *o = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		switch (c) {
		case '"': *o++ = '\\'; *o++ = '"'; break;
		case '\\': *o++ = '\\'; *o++ = '\\'; break;
		case '\b': *o++ = '\\'; *o++ = 'b'; break;
		case '\f': *o++ = '\\'; *o++ = 'f'; break;
		case '\n': *o++ = '\\'; *o++ = 'n'; break;
		case '\r': *o++ = '\\'; *o++ = 'r'; break;
		case '\t': *o++ = '\\'; *o++ = 't'; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				*o++ = '\\';
				*o++ = 'u';
				*o++ = '0';
				*o++ = '0';
				*o++ = hex[c >> 4];
				*o++ = hex[c & 15];
			} else {
				*o++ = (char)c;
			}
		}
	}
	return (size_t)(o - out);
}

static char *digits(char *o, unsigned long v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		o[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return o + n;
}

int dh_frame_time(uint64_t time_ns, char *out)
{
	time_t secs = (time_t)(time_ns / 1000000000u);
	struct tm tm;
	char *o = out;

	if (gmtime_r(&secs, &tm) == NULL || tm.tm_year + 1900 > 9999)
		return -EOVERFLOW;
	o = digits(o, (unsigned long)tm.tm_year + 1900, 4);
	*o++ = '-';
	o = digits(o, (unsigned long)tm.tm_mon + 1, 2);
	*o++ = '-';
	o = digits(o, (unsigned long)tm.tm_mday, 2);
	*o++ = 'T';
	o = digits(o, (unsigned long)tm.tm_hour, 2);
	*o++ = ':';
	o = digits(o, (unsigned long)tm.tm_min, 2);
	*o++ = ':';
	o = digits(o, (unsigned long)tm.tm_sec, 2);
	*o++ = '.';
	o = digits(o, (unsigned long)(time_ns % 1000000000u), 9);
	*o++ = 'Z';
	*o = '\0';
	return DH_FRAME_TIME_LEN;
}
