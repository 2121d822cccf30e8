/* xport.c: the transports under test behind one small interface. See LICENSE. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zmq.h>

#include "bench.h"
#include "dh_error.h"
#include "dh_ring.h"

#define STREAM_BUF (256u << 10)

const char *
x_label(const struct xport *x)
{
	static char buf[64];

	switch (x->kind) {
	case X_DH:
		snprintf(buf, sizeof buf, "libdh %s%s%s%s", dh_checksum_name(x->ck), x->copy ? " +copy" : "",
			 x->busy ? " busy-poll" : "", x->batch > 1 ? " batched" : "");
		return buf;
	case X_PIPE:
		return x->nreaders > 1 ? "pipe (one per reader)" : "pipe";
	case X_UNIX:
		return x->nreaders > 1 ? "unix stream (one per reader)" : "unix stream socket";
	case X_ZMQ:
		return x->nreaders > 1 ? "zmq ipc PUB/SUB (nodrop)" : "zmq ipc PUSH/PULL";
	case X_IOX:
		return x->busy ? "iceoryx busy-poll" : "iceoryx (waitset, lossless)";
	}
	return "?";
}

void
x_setup(struct xport *x)
{
	static unsigned serial;
	char tag[32];
	int rc;

	for (int i = 0; i < MAX_READERS; i++)
		x->fds[i][0] = x->fds[i][1] = -1;
	if (x->nreaders < 1)
		x->nreaders = 1;
	switch (x->kind) {
	case X_DH:
		snprintf(tag, sizeof tag, "x%u", serial++);
		channel_name(x->name, sizeof x->name, tag);
		rc = make_channel(x->name, x->slots, (uint32_t)x->size, DH_POLICY_SYNC, x->ck,
				  (uint32_t)(x->nreaders > 16 ? x->nreaders : 16));
		if (rc < 0)
			die("create %s: %s", x->name, dh_strerror(rc));
		break;
	case X_PIPE:
		for (int i = 0; i < x->nreaders; i++)
			if (pipe2(x->fds[i], O_CLOEXEC) < 0)
				die("pipe: %s", strerror(errno));
		break;
	case X_UNIX:
		for (int i = 0; i < x->nreaders; i++) {
			int sv[2];
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
				die("socketpair: %s", strerror(errno));
			x->fds[i][0] = sv[0];
			x->fds[i][1] = sv[1];
			shutdown(sv[0], SHUT_WR);
			shutdown(sv[1], SHUT_RD);
		}
		break;
	case X_ZMQ:
		for (int i = 0; i < x->nreaders; i++) {
			snprintf(x->ep[i], sizeof x->ep[i], "/tmp/dhbench-%ld-z%u-%d.ipc", (long)getpid(),
				 serial, i);
			register_path(x->ep[i]);
		}
		serial++;
		break;
	case X_IOX:
		iox_x_setup(x);
		break;
	}
}

void
x_teardown(struct xport *x)
{
	for (int i = 0; i < MAX_READERS; i++)
		for (int j = 0; j < 2; j++)
			if (x->fds[i][j] >= 0) {
				close(x->fds[i][j]);
				x->fds[i][j] = -1;
			}
	if (x->kind == X_DH)
		drop_channel(x->name);
	if (x->kind == X_ZMQ)
		for (int i = 0; i < x->nreaders; i++)
			forget_path(x->ep[i]);
}

/* Keep only what this side needs: reader idx keeps its read end, the
 * writer (reader < 0) keeps every write end. */
void
x_close_unused(struct xport *x, int reader)
{
	for (int i = 0; i < MAX_READERS; i++)
		for (int j = 0; j < 2; j++) {
			int keep = reader < 0 ? j == 1 : (i == reader && j == 0);
			if (x->fds[i][j] >= 0 && !keep) {
				close(x->fds[i][j]);
				x->fds[i][j] = -1;
			}
		}
}

static void
zmq_or_die(int rc, const char *what)
{
	if (rc < 0)
		die("zmq %s: %s", what, zmq_strerror(zmq_errno()));
}

void
x_reader_open(struct xport *x, int idx)
{
	char ep[160];
	int rc;

	x->me = idx;
	switch (x->kind) {
	case X_DH:
		if ((rc = dh_reader_open(x->name, NULL, &x->r)) < 0)
			die("reader %s: %s", x->name, dh_strerror(rc));
		if (x->copy && !(x->buf = malloc(x->size)))
			die("out of memory");
		break;
	case X_PIPE:
	case X_UNIX:
		x_close_unused(x, idx);
		x->cap = (STREAM_BUF + x->size - 1) / x->size * x->size;
		if (x->cap < 4 * x->size)
			x->cap = 4 * x->size;
		if (!(x->buf = aligned_alloc(64, x->cap)))
			die("out of memory");
		memset(x->buf, 0, x->cap);
		x->fill = x->off = 0;
		break;
	case X_ZMQ:
		if (!(x->zctx = zmq_ctx_new()))
			die("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
		x->zs[0] = zmq_socket(x->zctx, x->nreaders > 1 ? ZMQ_SUB : ZMQ_PULL);
		if (!x->zs[0])
			die("zmq_socket: %s", zmq_strerror(zmq_errno()));
		if (x->nreaders > 1)
			zmq_or_die(zmq_setsockopt(x->zs[0], ZMQ_SUBSCRIBE, "", 0), "subscribe");
		snprintf(ep, sizeof ep, "ipc://%s", x->ep[idx]);
		zmq_or_die(zmq_bind(x->zs[0], ep), "bind");
		if (!(x->zmsg = malloc(sizeof(zmq_msg_t))))
			die("out of memory");
		zmq_msg_init(x->zmsg);
		break;
	case X_IOX:
		iox_reader_open(x, idx);
		break;
	}
}

int
x_reader_next(struct xport *x, const unsigned char **p)
{
	struct dh_msg m;
	ssize_t n;
	int rc;

	switch (x->kind) {
	case X_DH:
		for (;;) {
			rc = dh_reader_next(x->r, &m, x->busy ? 0 : -1);
			if (rc == -EAGAIN && x->busy)
				continue;
			if (rc == DH_END)
				return 0;
			if (rc < 0)
				return rc;
			break;
		}
		if (m.len != x->size)
			return -EPROTO;
		if (x->copy) {
			memcpy(x->buf, m.data, m.len);
			*p = x->buf;
		} else {
			*p = m.data;
		}
		return 1;
	case X_PIPE:
	case X_UNIX:
		for (;;) {
			if (x->fill - x->off >= x->size) {
				*p = x->buf + x->off;
				x->off += x->size;
				return 1;
			}
			if (x->off == x->cap)
				x->off = x->fill = 0;
			n = read(x->fds[x->me][0], x->buf + x->fill, x->cap - x->fill);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (n == 0)
				return x->fill == x->off ? 0 : -EPROTO;
			x->fill += (size_t)n;
		}
	case X_ZMQ:
		while ((rc = zmq_msg_recv(x->zmsg, x->zs[0], 0)) < 0)
			if (zmq_errno() != EINTR)
				return -zmq_errno();
		if (rc == 0)
			return 0;
		if ((size_t)rc != x->size)
			return -EPROTO;
		*p = zmq_msg_data(x->zmsg);
		return 1;
	case X_IOX:
		return iox_reader_next(x, p);
	}
	return -EINVAL;
}

void
x_reader_close(struct xport *x)
{
	switch (x->kind) {
	case X_DH:
		dh_reader_close(x->r);
		break;
	case X_PIPE:
	case X_UNIX:
		break;
	case X_ZMQ:
		zmq_msg_close(x->zmsg);
		zmq_close(x->zs[0]);
		zmq_ctx_term(x->zctx);
		break;
	case X_IOX:
		iox_reader_close(x);
		break;
	}
	free(x->buf);
	x->buf = NULL;
}

void
x_writer_open(struct xport *x)
{
	char ep[160];
	int rc, one = 1;

	switch (x->kind) {
	case X_DH:
		if ((rc = dh_writer_open(x->name, "dh-bench", &x->w, NULL)) < 0)
			die("writer %s: %s", x->name, dh_strerror(rc));
		if (x->batch > 1)
			dh_writer_set_batch(x->w, x->batch);
		if (x->copy && !(x->buf = calloc(1, x->size)))
			die("out of memory");
		break;
	case X_PIPE:
	case X_UNIX:
		x_close_unused(x, -1);
		if (!(x->buf = aligned_alloc(64, (x->size + 63) / 64 * 64)))
			die("out of memory");
		memset(x->buf, 0, x->size);
		break;
	case X_ZMQ:
		if (!(x->zctx = zmq_ctx_new()))
			die("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
		if (x->nreaders > 1) {
			x->zs[0] = zmq_socket(x->zctx, ZMQ_PUB);
			if (!x->zs[0])
				die("zmq_socket: %s", zmq_strerror(zmq_errno()));
			/* lossless like the other fan-outs: block instead of dropping */
			zmq_or_die(zmq_setsockopt(x->zs[0], ZMQ_XPUB_NODROP, &one, sizeof one), "nodrop");
		} else {
			x->zs[0] = zmq_socket(x->zctx, ZMQ_PUSH);
			if (!x->zs[0])
				die("zmq_socket: %s", zmq_strerror(zmq_errno()));
		}
		for (int i = 0; i < x->nreaders; i++) {
			snprintf(ep, sizeof ep, "ipc://%s", x->ep[i]);
			zmq_or_die(zmq_connect(x->zs[0], ep), "connect");
		}
		if (!(x->buf = calloc(1, x->size)))
			die("out of memory");
		break;
	case X_IOX:
		iox_writer_open(x);
		break;
	}
}

unsigned char *
x_writer_begin(struct xport *x)
{
	void *buf;
	size_t cap;
	int rc;

	if (x->kind == X_IOX)
		return iox_writer_begin(x);
	if (x->kind != X_DH || x->copy)
		return x->buf;
	if ((rc = dh_writer_reserve(x->w, &buf, &cap, -1)) < 0)
		die("reserve %s: %s", x->name, dh_strerror(rc));
	return buf;
}

static void
zsend(struct xport *x, const void *buf, size_t len)
{
	while (zmq_send(x->zs[0], buf, len, 0) < 0) {
		if (zmq_errno() == EINTR)
			continue;
		if (zmq_errno() == EAGAIN) {  /* PUB with nodrop at its high-water mark */
			sleep_ns(1000);
			continue;
		}
		die("zmq_send: %s", zmq_strerror(zmq_errno()));
	}
}

void
x_writer_commit(struct xport *x)
{
	int rc;

	switch (x->kind) {
	case X_DH:
		rc = x->copy ? dh_writer_write(x->w, x->buf, x->size, -1) : dh_writer_commit(x->w, x->size);
		if (rc < 0)
			die("commit %s: %s", x->name, dh_strerror(rc));
		break;
	case X_PIPE:
	case X_UNIX:
		for (int i = 0; i < x->nreaders; i++)
			if ((rc = write_full(x->fds[i][1], x->buf, x->size)) < 0)
				die("write: %s", strerror(-rc));
		break;
	case X_ZMQ:
		zsend(x, x->buf, x->size);
		break;
	case X_IOX:
		iox_writer_commit(x);
		break;
	}
}

void
x_writer_flush(struct xport *x)
{
	if (x->kind == X_DH)
		dh_writer_flush(x->w);
}

void
x_writer_end(struct xport *x)
{
	switch (x->kind) {
	case X_DH:
		dh_writer_eos(x->w);
		break;
	case X_PIPE:
	case X_UNIX:
		for (int i = 0; i < x->nreaders; i++)
			if (x->fds[i][1] >= 0) {
				close(x->fds[i][1]);
				x->fds[i][1] = -1;
			}
		break;
	case X_ZMQ:
		zsend(x, "", 0);
		break;
	case X_IOX:
		iox_writer_end(x);
		break;
	}
}

void
x_writer_close(struct xport *x)
{
	switch (x->kind) {
	case X_DH:
		dh_writer_close(x->w);
		x->w = NULL;
		break;
	case X_PIPE:
	case X_UNIX:
		break;
	case X_ZMQ:
		zmq_close(x->zs[0]);
		zmq_ctx_term(x->zctx);   /* lingers until the end marker is out */
		break;
	case X_IOX:
		iox_writer_close(x);
		break;
	}
	free(x->buf);
	x->buf = NULL;
}
