/* test_broker_contract.c: the request handler against docs/PROTOCOL.md where
 * an independent client found them apart (issue 11): ids of refused
 * requests, C1 controls, the schema alphabet, paged list and discover
 * replies. See LICENSE. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "dh_broker.h"
#include "tap.h"

#define MS (1000000LL)
#define SEC (1000000000LL)

static int64_t now = 1000 * SEC;

static struct dh_broker *
mkbroker(size_t page_bytes)
{
	struct dh_broker_config cfg;
	struct dh_broker *b;

	dh_broker_config_init(&cfg);
	cfg.heartbeat_ns = 100 * MS;
	if (page_bytes)
		cfg.page_bytes = page_bytes;
	return dh_broker_new(&cfg, &b) == 0 ? b : NULL;
}

/* The reply to len bytes as text (*rlen its length) and parsed. */
static json_t *
send_raw(struct dh_broker *b, const char *peer, const void *buf, size_t len, size_t *rlen)
{
	char *rep = NULL;
	size_t n = 0;
	json_t *j;

	if (dh_broker_handle(b, buf, len, peer, now, &rep, &n) < 0)
		return NULL;
	j = json_loads(rep, JSON_REJECT_DUPLICATES, NULL);
	free(rep);
	if (rlen)
		*rlen = n;
	return j;
}

static json_t *
send_str(struct dh_broker *b, const char *peer, const char *s)
{
	return send_raw(b, peer, s, strlen(s), NULL);
}

static const char *
sget(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : "";
}

static int
is_err(json_t *j, const char *code)
{
	return j && strcmp(sget(j, "status"), "error") == 0 && strcmp(sget(j, "error"), code) == 0;
}

static int
is_ok(json_t *j)
{
	int r = j && strcmp(sget(j, "status"), "ok") == 0;

	if (!r && j) {
		char *s = json_dumps(j, JSON_COMPACT);
		diag("expected ok, got %s", s ? s : "?");
		free(s);
	}
	return r;
}

#define REG(name, host, pid, extra)                                                                   \
	"{\"id\":\"r\",\"type\":\"register\",\"channel\":\"" name "\",\"host\":\"" host "\",\"pid\":" pid \
	",\"policy\":\"sync\",\"slots\":4,\"slot_size\":64,\"max_readers\":16,\"checksum\":\"none\"" extra "}"

/* ---- ids ---- */

static void
t_ids(void)
{
	/* each refused before the handler could read "id"; the id is fine */
	static const struct {
		const char *req;
		size_t len; /* 0: strlen */
		const char *id;
		const char *what;
	} keep[] = {
		{ "{\"id\":\"k1\",\"type\":\"ping\",\"x\":1,\"x\":2}", 0, "k1", "a duplicated key (not id)" },
		{ "{\"id\":\"k2\",\"type\":\"register\",\"pid\":18446744073709551616}", 0, "k2",
		  "an integer over 64 bits" },
		{ "{\"id\":\"k3\",\"type\":\"ping\",\"s\":\"\xc3\x28\"}", 0, "k3", "bad UTF-8 in another string" },
		{ "{\"id\":\"k4\",\"type\":\"ping\",\"s\":\"\\u0000\"}", 0, "k4", "U+0000 in another string" },
		{ "{\"type\":\"ping\",\"p\":[[[[{\"id\":\"no\"}]]]],\"id\":\"k5\"}", 0, "k5",
		  "nesting too deep (an id inside does not count)" },
		{ " \n{ \"id\" : \"k6\" , \"type\":\"ping\",\"n\":1e99999}\r\n", 0, "k6",
		  "a number out of range, whitespace around tokens" },
		{ "{\"\\u0069d\":\"k\\u0037\",\"type\":\"ping\",\"x\":1,\"x\":1}", 0, "k7", "escaped key and id" },
		{ "{\"id\":\"k8\",\"type\":\"ping\",\"s\":\"\\\"}\\\\\",\"x\":1,\"x\":1}", 0, "k8",
		  "escaped quote and brace in a skipped string" },
	};
	/* no usable id: the reply carries null */
	static const struct {
		const char *req;
		const char *what;
	} none[] = {
		{ "{\"id\":\"a\",\"type\":\"ping\",\"id\":\"a\"}", "id twice" },
		{ "{\"id\":7,\"type\":\"ping\",\"x\":1,\"x\":1}", "id not a string" },
		{ "{\"id\":\"a b\",\"type\":\"ping\",\"x\":1,\"x\":1}", "id with a space" },
		{ "{\"id\":\"\xc3\xa9\",\"type\":\"ping\",\"x\":1,\"x\":1}", "id not ASCII" },
		{ "{\"id\":\"\\u00e9\",\"type\":\"ping\",\"x\":1,\"x\":1}", "id escaping a non-ASCII character" },
		{ "{\"id\":\"a\",\"type\":\"ping\"} x", "trailing bytes" },
		{ "{\"id\":\"a\",\"type\":\"ping\"", "unterminated object" },
		{ "{\"id\":\"a\"", "unterminated object after the id" },
		{ "[{\"id\":\"a\"}]", "not an object" },
		{ "{\"x\":{\"id\":\"a\"},\"y\":1,\"y\":1}", "id only in a nested object" },
		{ "{\"id\":\"a\",,\"type\":\"ping\"}", "two commas" },
	};
	struct dh_broker *b = mkbroker(0);
	int bad = 0;
	size_t i;

	for (i = 0; i < sizeof keep / sizeof keep[0]; i++) {
		json_t *j = send_raw(b, "p", keep[i].req, keep[i].len ? keep[i].len : strlen(keep[i].req), NULL);
		if (!is_err(j, "invalid_request") || strcmp(sget(j, "id"), keep[i].id) != 0) {
			char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
			diag("%s: %s", keep[i].what, s ? s : "no reply");
			free(s);
			bad++;
		}
		json_decref(j);
	}
	ok(bad == 0, "%zu requests refused before their id was read still echo it", i);

	bad = 0;
	for (i = 0; i < sizeof none / sizeof none[0]; i++) {
		json_t *j = send_str(b, "p", none[i].req);
		if (!is_err(j, "invalid_request") || !json_is_null(json_object_get(j, "id"))) {
			diag("%s: id not null", none[i].what);
			bad++;
		}
		json_decref(j);
	}
	ok(bad == 0, "%zu requests without a usable id get id null", i);

	/* over the size limit: too_large, with the id */
	size_t big = DH_BROKER_MSG_MAX + 100;
	char *p = malloc(big);
	int h = snprintf(p, big, "{\"id\":\"big\",\"type\":\"ping\",\"pad\":\"");
	memset(p + h, 'x', big - (size_t)h - 2);
	memcpy(p + big - 2, "\"}", 2);
	json_t *j = send_raw(b, "p", p, big, NULL);
	ok(is_err(j, "too_large") && strcmp(sget(j, "id"), "big") == 0, "too_large echoes the id");
	json_decref(j);
	/* the deepest nesting the size allows, with an id before it */
	h = snprintf(p, big, "{\"id\":\"deep\",\"p\":");
	size_t depth = (DH_BROKER_MSG_MAX - (size_t)h - 1) / 2;
	memset(p + h, '[', depth);
	memset(p + h + depth, ']', depth);
	p[h + 2 * depth] = '}';
	j = send_raw(b, "p", p, (size_t)h + 2 * depth + 1, NULL);
	ok(is_err(j, "invalid_request") && strcmp(sget(j, "id"), "deep") == 0,
	   "nesting %zu deep: invalid_request with the id", depth);
	json_decref(j);
	free(p);
	dh_broker_free(b);
}

/* ---- text fields ---- */

static void
t_text(void)
{
	struct dh_broker *b = mkbroker(0);
	json_t *j;

	j = send_str(b, "p", REG("dhtest-c1", "h", "1", ",\"label\":\"a\\u0085b\""));
	ok(is_err(j, "invalid_request"), "label with U+0085 (escaped) is refused");
	json_decref(j);
	j = send_str(b, "p", REG("dhtest-c1", "h", "1", ",\"label\":\"a\xc2\x80" "b\""));
	ok(is_err(j, "invalid_request"), "label with U+0080 (raw UTF-8) is refused");
	json_decref(j);
	j = send_str(b, "p",
		     "{\"id\":\"c\",\"type\":\"checksum_failure\",\"channel\":\"dhtest-c1\",\"host\":\"h\","
		     "\"pid\":1,\"message_seq\":1,\"detail\":\"x\\u009f\"}");
	ok(is_err(j, "invalid_request"), "detail with U+009F is refused");
	json_decref(j);
	j = send_str(b, "p", REG("dhtest-c1", "h", "1", ",\"label\":\"\\u00a0\xc3\xa9\\u0100\""));
	ok(is_ok(j), "label with U+00A0, U+00E9 and U+0100 (not controls) is accepted");
	json_decref(j);
	j = send_str(b, "p",
		     "{\"id\":\"c\",\"type\":\"checksum_failure\",\"channel\":\"dhtest-c1\",\"host\":\"h\","
		     "\"pid\":1,\"message_seq\":1,\"detail\":\"\xc2\xa0\xc2\xbf\"}");
	ok(is_ok(j), "detail with U+00A0 and U+00BF is accepted");
	json_decref(j);

	/* "schema" is canonical text: printable ASCII without space */
	char schema[0x7f - 0x21 + 1], esc[2 * sizeof schema + 1], req[1024], hex[65];
	uint8_t hash[32];
	size_t o = 0;
	for (int c = 0x21; c < 0x7f; c++) {
		schema[c - 0x21] = (char)c;
		if (c == '"' || c == '\\')
			esc[o++] = '\\';
		esc[o++] = (char)c;
	}
	schema[sizeof schema - 1] = '\0';
	esc[o] = '\0';
	crypto_generichash(hash, sizeof hash, (const unsigned char *)schema, strlen(schema), NULL, 0);
	sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
	snprintf(req, sizeof req, REG("dhtest-s1", "h", "2", ",\"schema\":\"%s\",\"schema_hash\":\"%s\""), esc,
		 hex);
	j = send_str(b, "p", req);
	ok(is_ok(j), "schema of every character 0x21..0x7e is accepted");
	json_decref(j);
	const char *spaced = "a:u8; b:u8";
	crypto_generichash(hash, sizeof hash, (const unsigned char *)spaced, strlen(spaced), NULL, 0);
	sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
	snprintf(req, sizeof req, REG("dhtest-s2", "h", "3", ",\"schema\":\"%s\",\"schema_hash\":\"%s\""), spaced,
		 hex);
	j = send_str(b, "p", req);
	ok(is_err(j, "invalid_request") && strstr(sget(j, "message"), "\"schema\""),
	   "schema with a space is refused, as docs/PROTOCOL.md says");
	json_decref(j);
	dh_broker_free(b);
}

/* ---- pages ---- */

/* A heartbeat carrying 32 metrics with 63-byte names: big descriptions. */
static void
fat_metrics(struct dh_broker *b, const char *peer, const char *token)
{
	char buf[8192];
	size_t o = (size_t)snprintf(buf, sizeof buf,
				    "{\"id\":\"h\",\"type\":\"heartbeat\",\"token\":\"%s\",\"metrics\":{", token);
	for (int k = 0; k < DH_BROKER_METRICS_MAX; k++)
		o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\"m%02d%060d\":-1.2345678901234567e-300",
				      k ? "," : "", k, 0);
	snprintf(buf + o, sizeof buf - o, "}}");
	json_t *j = send_str(b, peer, buf);
	if (!is_ok(j))
		diag("fat heartbeat refused");
	json_decref(j);
}

/* Register dhtest-pNNNN (i; 0 when fat < 0) on host, pid i + 1, from
 * peers of 100 registrations each (the per-peer cap is 256); its token
 * into tok when not NULL. */
static int
reg_n(struct dh_broker *b, int i, const char *host, int fat, char *tok)
{
	char req[1024], peer[16];
	json_t *j;
	int r;

	snprintf(peer, sizeof peer, "p%d", i / 100);
	snprintf(req, sizeof req,
		 "{\"id\":\"r\",\"type\":\"register\",\"channel\":\"dhtest-p%04d\",\"host\":\"%s\",\"pid\":%d,"
		 "\"policy\":\"ring\",\"slots\":4,\"slot_size\":64,\"max_readers\":4,\"checksum\":\"none\"}",
		 fat < 0 ? 0 : i, host, i + 1);
	j = send_str(b, peer, req);
	r = is_ok(j);
	if (r && fat > 0)
		fat_metrics(b, peer, sget(j, "token"));
	if (r && tok)
		snprintf(tok, DH_BROKER_TOKEN_LEN + 1, "%s", sget(j, "token"));
	json_decref(j);
	return r;
}

static json_t *
list_page(struct dh_broker *b, long long after, size_t *rlen)
{
	char req[128];

	if (after < 0)
		snprintf(req, sizeof req, "{\"id\":\"l\",\"type\":\"list\"}");
	else
		snprintf(req, sizeof req, "{\"id\":\"l\",\"type\":\"list\",\"after\":%lld}", after);
	return send_raw(b, "q", req, strlen(req), rlen);
}

static void
t_pages(void)
{
	struct dh_broker *b = mkbroker(0);
	int regs = 0, pages = 0, total = 0, order = 1, bigpage = 0;
	size_t rlen, maxlen = 0;
	long long after = -1;
	json_t *j;

	for (int i = 0; i < 300; i++)
		regs += reg_n(b, i, "h", 1, NULL);
	ok(regs == 300, "300 channels registered with 32 long metrics each");
	/* the original broker answered this with one reply of about 1 MB */
	do {
		j = list_page(b, after, &rlen);
		json_t *arr = json_object_get(j, "channels"), *next = json_object_get(j, "next");
		if (!is_ok(j) || !json_is_array(arr) || next == NULL)
			break;
		for (size_t k = 0; k < json_array_size(arr); k++) {
			char want[32];
			snprintf(want, sizeof want, "dhtest-p%04d", total);
			order &= strcmp(sget(json_array_get(arr, k), "channel"), want) == 0;
			total++;
		}
		if (rlen > maxlen)
			maxlen = rlen;
		bigpage |= rlen > DH_BROKER_PAGE_BYTES + 256;
		after = json_is_integer(next) ? json_integer_value(next) : -1;
		pages++;
		json_decref(j);
		j = NULL;
	} while (after >= 0 && pages < 1000);
	json_decref(j);
	diag("300 fat channels: %d pages, largest reply %zu bytes", pages, maxlen);
	ok(total == 300 && order && pages > 1, "list: every channel once, in order, over %d pages", pages);
	ok(pages > 1 && !bigpage, "list: no reply over %u bytes (largest %zu)", DH_BROKER_PAGE_BYTES + 256, maxlen);

	/* a cursor survives removals between pages */
	dh_broker_free(b);
	b = mkbroker(2000);
	static char toks[40][DH_BROKER_TOKEN_LEN + 1];
	for (int i = 0; i < 40; i++)
		reg_n(b, i, "h", 0, toks[i]);
	j = list_page(b, -1, NULL);
	size_t first = json_array_size(json_object_get(j, "channels"));
	after = json_integer_value(json_object_get(j, "next"));
	json_decref(j);
	ok(first > 1 && first < 39, "a small page budget: %zu of 40 on page 1", first);
	/* remove the first channel of page 1 and the first of page 2: an
	 * index would now skip one, the cursor does not */
	char req[128];
	int gone = 0;
	for (size_t k = 0; k <= first; k += first) {
		snprintf(req, sizeof req, "{\"id\":\"g\",\"type\":\"deregister\",\"token\":\"%s\"}", toks[k]);
		j = send_str(b, "p0", req);
		gone += is_ok(j);
		json_decref(j);
	}
	char want[32];
	snprintf(want, sizeof want, "dhtest-p%04zu", first + 1);
	j = list_page(b, after, NULL);
	ok(gone == 2 && is_ok(j) &&
		   strcmp(sget(json_array_get(json_object_get(j, "channels"), 0), "channel"), want) == 0,
	   "after removals, the next page starts at the first channel not yet listed (%s)", want);
	json_decref(j);
	j = send_str(b, "q", "{\"id\":\"l\",\"type\":\"list\",\"after\":-1}");
	ok(is_err(j, "invalid_request") && strcmp(sget(j, "id"), "l") == 0, "list: negative after is refused");
	json_decref(j);
	dh_broker_free(b);

	/* one channel larger than a page: a page of its own */
	b = mkbroker(0);
	char tok[DH_BROKER_TOKEN_LEN + 1] = "";
	j = send_str(b, "w", REG("dhtest-big", "h", "1", ""));
	snprintf(tok, sizeof tok, "%s", sget(j, "token"));
	json_decref(j);
	fat_metrics(b, "w", tok);
	int readers = 0;
	for (int r = 0; r < 256; r++) {
		char rq[256];
		snprintf(rq, sizeof rq,
			 "{\"id\":\"x\",\"type\":\"reader\",\"channel\":\"dhtest-big\",\"host\":\"h\",\"pid\":%d,"
			 "\"label\":\"0123456789012345678901234567890\"}",
			 r + 10);
		j = send_str(b, "r", rq);
		if (is_ok(j)) {
			readers++;
			fat_metrics(b, "r", sget(j, "token"));
		}
		json_decref(j);
	}
	reg_n(b, 1, "h", 0, NULL);
	j = list_page(b, -1, &rlen);
	ok(is_ok(j) && readers == 256 && json_array_size(json_object_get(j, "channels")) == 1 &&
		   json_is_integer(json_object_get(j, "next")),
	   "a channel with 256 readers, all with 32 metrics, fills a page alone");
	diag("the largest channel description: a reply of %zu bytes", rlen);
	ok(rlen < (1u << 20), "... and that reply, the largest there is, stays under 1 MiB (%zu bytes)", rlen);
	json_decref(j);
	dh_broker_free(b);

	/* discover: the same name on many hosts */
	b = mkbroker(0);
	regs = 0;
	for (int i = 0; i < 300; i++) {
		char host[32];
		snprintf(host, sizeof host, "host%d", i);
		regs += reg_n(b, i, host, -1, NULL) ? 1 : 0;
	}
	static const char disc[] = "{\"id\":\"d\",\"type\":\"discover\",\"channel\":\"dhtest-p0000\"}";
	j = send_raw(b, "q", disc, sizeof disc - 1, &rlen);
	ok(regs == 300 && is_ok(j) && json_is_true(json_object_get(j, "more")) &&
		   json_array_size(json_object_get(j, "channels")) < 300 && rlen <= DH_BROKER_PAGE_BYTES + 256,
	   "discover of a name on 300 hosts: one page (%zu of them, %zu bytes), \"more\": true",
	   json_array_size(json_object_get(j, "channels")), rlen);
	json_decref(j);
	j = send_str(b, "q", "{\"id\":\"d\",\"type\":\"discover\",\"channel\":\"dhtest-p0000\",\"host\":\"host7\"}");
	ok(is_ok(j) && json_is_false(json_object_get(j, "more")) &&
		   json_array_size(json_object_get(j, "channels")) == 1,
	   "discover of one: \"more\": false");
	json_decref(j);
	dh_broker_free(b);
}

int
main(void)
{
	plan(21);
	if (sodium_init() < 0)
		return 1;
	t_ids();
	t_text();
	t_pages();
	return done();
}
