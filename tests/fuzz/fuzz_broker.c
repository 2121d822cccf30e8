/* fuzz_broker.c: the broker's request handler on arbitrary request sequences. See LICENSE.
 *
 * The input is a sequence of requests separated by a 0x1e byte; a request
 * starting with 0x1f advances the clock by its second byte times 50 ms
 * instead.  The placeholder token "tttt..." (32 t) is replaced with the
 * last token a reply issued, so heartbeats and deregistrations reach real
 * registrations.  Every reply and event must be one well-formed JSON
 * object, the caps must hold, and time must expire every registration. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dh_broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MS 1000000LL
#define PLACEHOLDER "tttttttttttttttttttttttttttttttt"

static char token[DH_BROKER_TOKEN_LEN + 1] = PLACEHOLDER;

static void
check_object(const char *s, size_t len, int reply)
{
	json_t *j;
	const char *st;

	if (strlen(s) != len || (j = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(j))
		abort();
	if (reply) {
		st = json_string_value(json_object_get(j, "status"));
		if (json_object_get(j, "id") == NULL || st == NULL ||
		    (strcmp(st, "ok") != 0 && strcmp(st, "error") != 0))
			abort();
		if (strcmp(st, "error") == 0 && !json_is_string(json_object_get(j, "error")))
			abort();
		const char *t = json_string_value(json_object_get(j, "token"));
		if (t) {
			if (strlen(t) != DH_BROKER_TOKEN_LEN)
				abort();
			memcpy(token, t, DH_BROKER_TOKEN_LEN);
		}
	} else if (!json_is_string(json_object_get(j, "event")) || !json_is_integer(json_object_get(j, "seq"))) {
		abort();
	}
	json_decref(j);
}

static void
on_emit(void *arg, const char *json, size_t len)
{
	(void)arg;
	check_object(json, len, 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dh_broker_config cfg;
	struct dh_broker *b;
	char buf[DH_BROKER_MSG_MAX + 1];
	int64_t now = 1000 * MS;
	size_t pos = 0;
	unsigned readers;

	dh_broker_config_init(&cfg);
	cfg.heartbeat_ns = 100 * MS;
	cfg.max_regs = 8;
	cfg.max_per_peer = 4;
	cfg.max_readers = 2;
	cfg.emit = on_emit;
	if (dh_broker_new(&cfg, &b) < 0)
		return 0;
	memcpy(token, PLACEHOLDER, 32);
	while (pos <= size) {
		const uint8_t *end = memchr(data + pos, 0x1e, size - pos);
		size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
		const uint8_t *req = data + pos;
		char *reply, *ph;
		size_t rlen;

		if (len <= DH_BROKER_MSG_MAX) {
			memcpy(buf, req, len);
			buf[len] = '\0';
			for (ph = buf; (ph = memmem(ph, len - (size_t)(ph - buf), PLACEHOLDER, 32)) != NULL; ph += 32)
				memcpy(ph, token, 32);
			req = (const uint8_t *)buf;
		}

		if (len >= 2 && req[0] == 0x1f) {
			now += (int64_t)req[1] * 50 * MS;
			dh_broker_tick(b, now);
		} else if (dh_broker_handle(b, req, len, len % 3 ? "p1" : "p2", now, &reply, &rlen) == 0) {
			check_object(reply, rlen, 1);
			free(reply);
		}
		if (dh_broker_count(b, &readers) + readers > cfg.max_regs)
			abort();
		pos += len + 1;
	}
	dh_broker_tick(b, now + 2000 * MS);
	if (dh_broker_count(b, &readers) != 0 || readers != 0)
		abort();
	dh_broker_free(b);
	return 0;
}
