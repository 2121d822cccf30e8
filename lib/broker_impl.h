/* broker_impl.h: what the broker's files share and nobody else uses: ZeroMQ plumbing (broker_zmq.c). See LICENSE. */
#ifndef DH_BROKER_IMPL_H
#define DH_BROKER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <zmq.h>

#include "dh_broker_client.h"

/* CLOCK_MONOTONIC in ns. */
int64_t dh__broker_mono_ns(void);

/* Receive one multipart message: up to max frames into parts (the rest
 * are dropped); returns the number stored, or -errno. */
int dh__broker_recv_parts(void *sock, zmq_msg_t *parts, int max, int flags);
void dh__broker_close_parts(zmq_msg_t *parts, int n);

/* pthread_create with every signal blocked in the new thread. */
int dh__broker_spawn(pthread_t *th, void *(*fn)(void *), void *arg);

/* A context and a client socket of type (DEALER, SUB) with our limits and
 * keys, connected to o->endpoint (or the default; its text into ep). */
int dh__broker_open_socket(const struct dh_broker_opts *o, int type, void **ctxp, void **sockp, char *ep,
			   size_t cap);

/* Is s (len bytes) a Z85 CurveZMQ key? Decoded into out when not NULL
 * (broker_keys.c). */
int dh__broker_z85_ok(const char *s, size_t len, uint8_t out[32]);

/* A session stopping sets *flag: c then gives up waiting (broker_client.c). */
void dh__broker_client_cancel(struct dh_broker_client *c, atomic_int *flag);

/* Requests of c time out after max_ns at most from now on. */
void dh__broker_client_limit(struct dh_broker_client *c, int64_t max_ns);

#endif
