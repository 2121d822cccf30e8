/* read_pump.c: dh-read's copy loop: output buffering, lap-loss reports, queue claims kept until written. See LICENSE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "read.h"

/* Where messages come from: the local channel, or an exporter (--connect). */
struct src {
	struct dh_reader *r;
	struct dh_net_client *c;
};

static int
src_next(struct src *s, struct dh_msg *m, int64_t timeout_ns)
{
	return s->c ? dh_net_client_next(s->c, m, timeout_ns) : dh_reader_next(s->r, m, timeout_ns);
}

static void
src_release(struct src *s)
{
	if (s->r)
		dh_reader_release(s->r);
}

/* Output buffer: small messages are gathered, large ones written from the slot. */
#define OUT_CAP (256u << 10)
#define DIRECT_MIN (64u << 10)

struct out {
	char *buf;
	size_t len, cap;
	int err;                   /* first write error (-errno) */
	size_t done;               /* bytes the failed flush got out */
	/* queue: claims are kept until their bytes are out; where each kept
	 * message ends in buf (0: written directly) */
	struct dh_reader *keeper;
	size_t *ends;
	size_t nends;
	/* --connect: the exporter of a queue keeps what we have not
	 * acknowledged, so acknowledge only what is out: the seq after the
	 * last message in buf, told at each complete flush */
	struct dh_net_client *acker;
	uint64_t ack_next;
};

/* writev until done; EINTR retried unless a signal is pending. */
static int
writev_all(struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(1, iov, n);

		if (w < 0) {
			if (errno == EINTR && !cli_signal)
				continue;
			return -errno;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int
flush(struct out *o)
{
	while (o->err == 0 && o->done < o->len) {
		ssize_t n = write(1, o->buf + o->done, o->len - o->done);

		if (n < 0 && errno == EINTR && !cli_signal)
			continue;
		if (n < 0) {
			o->err = -errno;
		} else {
			o->done += (size_t)n;
			/* a signal cut the write short: do not block again */
			if (cli_signal && o->done < o->len)
				o->err = -EINTR;
		}
	}
	if (o->err != 0)
		return o->err;
	o->len = o->done = 0;
	/* everything delivered before the current message is out now */
	if (o->keeper)
		dh_reader_release_kept(o->keeper);
	if (o->acker && o->ack_next)
		dh_net_client_ack(o->acker, o->ack_next);
	o->nends = 0;
	return 0;
}

static int
emit(struct out *o, enum dh_frame_mode mode, const struct dh_msg *m)
{
	unsigned char head[DH_FRAME_HEAD_MAX], tail;
	size_t hl, tl;
	ssize_t n;

	if (mode == DH_FRAME_JSON) {
		size_t bound = dh_frame_encode_bound(mode, m->len);

		if (bound > o->cap - o->len && flush(o) < 0)
			return o->err;
		if (bound > o->cap) {
			char *nb = bound == SIZE_MAX ? NULL : realloc(o->buf, bound);

			if (nb == NULL)
				return o->err = -ENOMEM;
			o->buf = nb;
			o->cap = bound;
		}
		n = dh_frame_encode(mode, m->data, m->len, m->seq, m->time_ns, o->buf + o->len,
				    o->cap - o->len);
		if (n < 0)
			return o->err = (int)n;
		o->len += (size_t)n;
		return 0;
	}
	if ((n = dh_frame_wrap(mode, m->len, head, &hl, &tail, &tl)) < 0)
		return o->err = (int)n;
	if (m->len >= DIRECT_MIN) {
		/* zero copy: straight from the slot (or the validated copy) */
		struct iovec iov[3] = { { head, hl }, { (void *)m->data, m->len }, { &tail, tl } };

		if (flush(o) < 0)
			return o->err;
		return o->err = writev_all(iov, 3);
	}
	if (hl + m->len + tl > o->cap - o->len && flush(o) < 0)
		return o->err;
	memcpy(o->buf + o->len, head, hl);
	memcpy(o->buf + o->len + hl, m->data, m->len);
	memcpy(o->buf + o->len + hl + m->len, &tail, tl);
	o->len += hl + m->len + tl;
	return 0;
}

/* Room for bound more bytes in the output buffer (flushing, or growing it
 * for a large record). */
static int
room(struct out *o, size_t bound)
{
	char *nb;

	if (bound > o->cap - o->len && flush(o) < 0)
		return o->err;
	if (bound > o->cap) {
		if ((nb = realloc(o->buf, bound)) == NULL)
			return o->err = -ENOMEM;
		o->buf = nb;
		o->cap = bound;
	}
	return 0;
}

/* --json or --csv on a schema channel: the decoded record and a newline.
 * -EMSGSIZE (out->err untouched) for a message that is not a record. */
static int
emit_record(struct out *o, const struct read_opts *opt, const struct dh_msg *m)
{
	size_t bound = opt->csv ? dh_schema_csv_bound(opt->sc) : dh_schema_json_bound(opt->sc);
	ssize_t n;

	if (room(o, bound) < 0)      /* bound counts a NUL: room for the newline */
		return o->err;
	if (opt->csv)
		n = dh_schema_to_csv(opt->sc, m->data, m->len, o->buf + o->len, o->cap - o->len);
	else
		n = dh_schema_to_json(opt->sc, m->data, m->len, o->buf + o->len, o->cap - o->len);
	if (n == -EMSGSIZE)
		return (int)n;
	if (n < 0)
		return o->err = (int)n;
	o->len += (size_t)n;
	o->buf[o->len++] = '\n';
	return 0;
}

/* --csv: the header line, before the first record. */
static int
emit_header(struct out *o, const struct dh_schema *sc)
{
	ssize_t n;

	if (room(o, dh_schema_csv_bound(sc)) < 0)
		return o->err;
	if ((n = dh_schema_csv_header(sc, o->buf + o->len, o->cap - o->len)) < 0)
		return o->err = (int)n;
	o->len += (size_t)n;
	o->buf[o->len++] = '\n';
	return 0;
}

/* Losses to a lap, reported at once but then at most once a second. */
struct lost {
	uint64_t pending, seq;
	time_t last;
};

static void
lost_report(const struct read_opts *o, struct lost *l, uint64_t n, uint64_t seq, int final)
{
	struct timespec t;

	l->pending += n;
	if (n > 0)
		l->seq = seq;
	if (l->pending == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (!final && l->last != 0 && t.tv_sec - l->last < 1)
		return;
	cli_warn("%s: lost %llu messages before seq %llu", o->name, (unsigned long long)l->pending,
		 (unsigned long long)l->seq);
	l->pending = 0;
	l->last = t.tv_sec ? t.tv_sec : 1;
}

/* The copy loop. Returns the exit status; a caught signal leaves cli_signal set. */
int
read_pump(const struct read_opts *o, struct dh_reader *r, struct dh_net_client *c)
{
	struct src srcs = { r, c }, *src = &srcs;
	struct out out = { .cap = OUT_CAP };
	struct lost lost = { 0 };
	struct dh_msg m;
	uint64_t got = 0;
	int rc, ret = EXIT_OK;

	if ((out.buf = malloc(out.cap)) == NULL)
		cli_diec(EXIT_FAIL, -ENOMEM, "%s", o->name);
	/* A queue message is done only once written out: killed or cut off
	 * before that, it is counted lost, never silently dropped. */
	if (src->r && dh_reader_keep_claims(src->r) == 0) {
		out.keeper = src->r;
		if ((out.ends = malloc(sizeof *out.ends * (dh_block_config(dh_reader_block(src->r))->slots + 1))) == NULL)
			cli_diec(EXIT_FAIL, -ENOMEM, "%s", o->name);
	}
	/* On a channel that evicts stalled readers, a message used in place
	 * stays held until we let go of it: copy it out and let go before
	 * writing, so a stalled consumer downstream holds nothing. */
	const struct dh_config *cfg = src->r ? dh_block_config(dh_reader_block(src->r)) : NULL;
	unsigned char *own = NULL;
	if (cfg && dh_policy_info(cfg->policy)->zero_copy && cfg->evict_after_ns &&
	    (own = malloc(cfg->slot_size ? cfg->slot_size : 1)) == NULL)
		cli_diec(EXIT_FAIL, -ENOMEM, "%s", o->name);
	out.acker = src->c;
	if (o->csv)
		emit_header(&out, o->sc);
	while (out.err == 0 && (o->count == 0 || got < o->count)) {
		if (cli_signal)
			break;
		rc = src_next(src, &m, 0);
		if ((rc == -EAGAIN || (src->c && rc == -ETIMEDOUT)) && !o->no_wait) {
			/* about to block: hand over what we have first */
			if (flush(&out) < 0 || cli_signal)
				break;
			rc = src_next(src, &m, o->timeout_ns);
		}
		if (rc == 0 && own != NULL) {
			memcpy(own, m.data, m.len);
			m.data = own;
			src_release(src);
		}
		if (rc == 0) {
			if (m.lost > 0 && !o->quiet)
				lost_report(o, &lost, m.lost, m.seq, 0);
			rc = o->sc != NULL ? emit_record(&out, o, &m) : emit(&out, o->mode, &m);
			if (out.keeper && out.err == 0)
				out.ends[out.nends++] = out.len;
			if (rc == -EMSGSIZE && out.err == 0) {
				cli_warn("%s: message at seq %llu is %zu bytes, not a record of the schema (%u bytes)",
					 o->name, (unsigned long long)m.seq, m.len, o->sc->size);
				ret = EXIT_FAIL;
				continue;
			}
			if (rc < 0)
				break;
			out.ack_next = m.seq + 1;
			got++;
			progress_add(o->pg, m.len);
		} else if (rc == -DH_ECHECKSUM) {
			cli_warn("%s: checksum mismatch at seq %llu", o->name, (unsigned long long)m.seq);
			if (src->r)
				cli_broker_checksum(&o->broker, m.seq);
			ret = EXIT_FAIL;
			if (o->strict)
				break;
		} else if (rc == -EINTR) {
			continue;
		} else {
			if (rc == -ETIMEDOUT) {
				cli_warn("%s: no message within the timeout", o->name);
				ret = EXIT_TIMEOUT;
			} else if (rc == -DH_EWRITERDEAD) {
				cli_warn("%s: %swriter died without marking end-of-stream", o->name,
					 src->c ? "the remote " : "");
				ret = EXIT_FAIL;
			} else if (rc < 0 && rc != -EAGAIN && src->c) {
				cli_warn("%s: %s", o->name, cli_net_error(src->c, rc));
				ret = EXIT_FAIL;
			} else if (rc < 0 && rc != -EAGAIN) {
				cli_warnc(rc, "%s", o->name);
				ret = EXIT_FAIL;
			}
			break;          /* DH_END, -EAGAIN with --no-wait, or an error */
		}
	}
	lost_report(o, &lost, 0, 0, 1);
	flush(&out);
	if (out.err == 0) {
		src_release(src);
	} else if (out.keeper) {
		size_t passed = 0;

		while (passed < out.nends && out.ends[passed] <= out.done)
			passed++;
		uint64_t n = dh_reader_settle(out.keeper, passed);

		if (n > 0 && !o->quiet)
			cli_warn("%s: %llu claimed messages not written out, counted lost", o->name,
				 (unsigned long long)n);
	}
	free(out.buf);
	free(out.ends);
	free(own);
	/* interrupted while the output was blocked: a signal exit, not a write error */
	if (out.err != 0 && out.err != -EPIPE && !(out.err == -EINTR && cli_signal)) {
		cli_warnc(out.err, "write error");
		ret = EXIT_FAIL;
	}
	return ret;
}
