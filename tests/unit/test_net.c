/* test_net.c: the subscriber's checks (dh_net_rx) against crafted exporter frames, the frame codecs, and the relay reader. See LICENSE. */
#define TAP_CHAN_TAG "net"
#include <stdlib.h>
#include <string.h>

#include "dh.h"
#include "dhtest.h"

static const uint8_t CHAN_ID[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

/* The check a writer of a channel with this kind, id and key stores. */
static void
mkcheck(enum dh_checksum kind, const uint8_t *key, uint64_t seq, const void *data, size_t len, uint8_t out[32])
{
	struct dh_block *b = calloc(1, sizeof *b);

	memset(out, 0, 32);
	b->cfg.checksum = kind;
	memcpy(b->chan_id, CHAN_ID, 16);
	if (key) {
		memcpy(b->key, key, DH_KEY_BYTES);
		b->has_key = 1;
	}
	dh__check_compute(b, seq, data, (uint32_t)len, out);
	free(b);
}

struct wire {
	unsigned char w[2048], d[DH_NET_DATA_HEAD + 8];
	size_t wl, dl;
};

static struct dh_net_welcome
welcome(enum dh_policy pol, enum dh_checksum ck)
{
	struct dh_net_welcome w;

	memset(&w, 0, sizeof w);
	w.session = 77;
	w.policy = pol;
	w.checksum = ck;
	w.slots = 8;
	w.slot_size = 64;
	memcpy(w.chan_id, CHAN_ID, 16);
	return w;
}

static int
feed1(struct dh_net_rx *rx, const void *buf, size_t len)
{
	const void *p[1] = { buf };
	size_t l[1] = { len };
	struct dh_msg m;
	struct dh_net_notice n;

	return dh_net_rx_feed(rx, p, l, 1, &m, &n);
}

static int
feed_welcome(struct dh_net_rx *rx, const struct dh_net_welcome *w)
{
	unsigned char buf[2048];
	ssize_t n = dh_net_welcome_encode(w, buf, sizeof buf);

	return n < 0 ? (int)n : feed1(rx, buf, (size_t)n);
}

/* A DATA message: header for seq/lost/session with the right check of
 * payload (or a forged one), payload of plen bytes (announced len). */
static int
feed_data(struct dh_net_rx *rx, uint32_t session, uint64_t seq, uint64_t lost, const char *payload, size_t plen,
	  uint32_t announced, int forge, enum dh_checksum ck, const uint8_t *key, struct dh_msg *m)
{
	struct dh_net_data d = { .session = session, .len = announced, .seq = seq, .lost = lost, .time_ns = 5 };
	static unsigned char frame[DH_NET_DATA_HEAD + 256];
	const void *p[1] = { frame };
	size_t l[1] = { DH_NET_DATA_HEAD + plen };
	struct dh_net_notice n;

	mkcheck(ck, key, seq, payload, plen, d.check);
	if (forge)
		d.check[0] ^= 1;
	if (dh_net_data_encode(&d, frame, DH_NET_DATA_HEAD) < 0 || plen > 256)
		return -999;
	memcpy(frame + DH_NET_DATA_HEAD, payload, plen);
	return dh_net_rx_feed(rx, p, l, 1, m, &n);
}

static struct dh_net_rx *
rx_new(const uint8_t *key)
{
	struct dh_net_rx_opts o = { 0 };
	struct dh_net_rx *rx;

	o.key = key;
	return dh_net_rx_new(&o, &rx) == 0 ? rx : NULL;
}

/* One request to the broker handler: the reply text (static). */
static const char *
breq(struct dh_broker *b, const char *json)
{
	static char out[8192];
	char *rep = NULL;
	size_t len;

	out[0] = '\0';
	if (dh_broker_handle(b, json, strlen(json), "test", 1000000000LL, &rep, &len) == 0)
		snprintf(out, sizeof out, "%s", rep);
	free(rep);
	return out;
}

int
main(void)
{
	struct dh_net_welcome w = welcome(DH_POLICY_RING, DH_CHECKSUM_XXH3);
	struct dh_net_rx *rx;
	struct dh_msg m;
	unsigned char buf[2048];
	ssize_t n;
	int r;

	plan(70);

	/* ---- a good stream ---- */
	rx = rx_new(NULL);
	ok(feed_welcome(rx, &w) == DH_NET_EV_WELCOME, "a WELCOME is accepted");
	r = feed_data(rx, 77, 0, 0, "hello", 5, 5, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == DH_NET_EV_DATA && m.len == 5 && memcmp(m.data, "hello", 5) == 0 && m.seq == 0 && m.time_ns == 5,
	   "a DATA with its check is delivered with seq, time and payload");
	r = feed_data(rx, 77, 3, 2, "abc", 3, 3, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == DH_NET_EV_DATA && m.lost == 2, "ring: a gap that reports its loss is accepted (lost %llu)",
	   (unsigned long long)m.lost);
	r = feed_data(rx, 77, 4, 0, "abc", 3, 3, 1, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == -DH_ECHECKSUM && m.seq == 4, "a forged check is refused as a checksum failure (seq %llu)",
	   (unsigned long long)m.seq);
	r = feed_data(rx, 77, 5, 0, "abc", 3, 3, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == DH_NET_EV_DATA, "the stream goes on after a checksum failure");
	r = feed_data(rx, 77, 5, 0, "abc", 3, 3, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == -EPROTO && strstr(dh_net_rx_error(rx), "replayed"), "a replayed DATA is a protocol error: %s",
	   dh_net_rx_error(rx));
	r = feed_data(rx, 77, 6, 0, "abc", 3, 3, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == -EPROTO, "after a protocol error nothing more is accepted");
	dh_net_rx_free(rx);

	/* ---- one fault each ---- */
	rx = rx_new(NULL);
	feed_welcome(rx, &w);
	feed_data(rx, 77, 0, 0, "x", 1, 1, 0, DH_CHECKSUM_XXH3, NULL, &m);
	r = feed_data(rx, 77, 3, 0, "abc", 3, 3, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == -EPROTO && strstr(dh_net_rx_error(rx), "silent gap"), "ring: a gap without its loss: %s",
	   dh_net_rx_error(rx));
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	feed_welcome(rx, &w);
	feed_data(rx, 77, 5, 5, "x", 1, 1, 0, DH_CHECKSUM_XXH3, NULL, &m);
	r = feed_data(rx, 77, 4, 0, "abc", 3, 3, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == -EPROTO && strstr(dh_net_rx_error(rx), "reordered"), "a reordered DATA: %s", dh_net_rx_error(rx));
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	feed_welcome(rx, &w);
	r = feed_data(rx, 77, 0, 0, "hello", 3, 5, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == -EPROTO && strstr(dh_net_rx_error(rx), "truncated"), "a truncated payload: %s",
	   dh_net_rx_error(rx));
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	feed_welcome(rx, &w);
	{
		char big[100];

		memset(big, 'z', sizeof big);
		r = feed_data(rx, 77, 0, 0, big, sizeof big, sizeof big, 0, DH_CHECKSUM_XXH3, NULL, &m);
	}
	ok(r == -EPROTO && strstr(dh_net_rx_error(rx), "oversized"), "a payload over the slot size: %s",
	   dh_net_rx_error(rx));
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	feed_welcome(rx, &w);
	r = feed_data(rx, 78, 0, 0, "x", 1, 1, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == -EPROTO && strstr(dh_net_rx_error(rx), "another session"), "a DATA of another session: %s",
	   dh_net_rx_error(rx));
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	r = feed_data(rx, 77, 0, 0, "x", 1, 1, 0, DH_CHECKSUM_XXH3, NULL, &m);
	ok(r == -EPROTO && strstr(dh_net_rx_error(rx), "before WELCOME"), "a DATA before WELCOME: %s",
	   dh_net_rx_error(rx));
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	n = dh_net_welcome_encode(&w, buf, sizeof buf);
	buf[3] = 9;
	r = feed1(rx, buf, (size_t)n);
	ok(r == -EPROTONOSUPPORT && strstr(dh_net_rx_error(rx), "version 9"), "another protocol version: %s",
	   dh_net_rx_error(rx));
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	r = feed1(rx, "GET / HTTP/1.0\r\n\r\n", 18);
	ok(r == -EPROTO && strstr(dh_net_rx_error(rx), "not a dh-net frame"), "not a dh-net frame: %s",
	   dh_net_rx_error(rx));
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	n = dh_net_welcome_encode(&w, buf, sizeof buf);
	buf[n] = 0;
	ok(feed1(rx, buf, (size_t)n + 1) == -EPROTO, "a WELCOME with a trailing byte is refused");
	ok(feed_welcome(rx, &w) == -EPROTO, "... and the session with it");
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	n = dh_net_welcome_encode(&w, buf, sizeof buf);
	buf[5] = 1;
	ok(feed1(rx, buf, (size_t)n) == -EPROTO, "reserved head bytes set are refused");
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	feed_welcome(rx, &w);
	ok(feed_welcome(rx, &w) == -EPROTO, "a second WELCOME in a session is refused");
	dh_net_rx_free(rx);

	rx = rx_new(NULL);
	feed_welcome(rx, &w);
	{
		unsigned char hdr[DH_NET_DATA_HEAD];
		struct dh_net_data d = { .session = 77, .len = 1, .seq = 0 };
		const void *p[2] = { hdr, "x" };
		size_t l[2] = { sizeof hdr, 1 };
		struct dh_net_notice nn;

		dh_net_data_encode(&d, hdr, sizeof hdr);
		ok(dh_net_rx_feed(rx, p, l, 2, &m, &nn) == -EPROTO, "a DATA split in two frames is refused");
	}
	dh_net_rx_free(rx);

	/* end of stream, then anything */
	rx = rx_new(NULL);
	feed_welcome(rx, &w);
	{
		struct dh_net_notice nn = { .session = 77, .code = DH_NET_N_EOS, .seq = 0 }, got;
		const void *p[1] = { buf };
		size_t l[1];

		n = dh_net_notice_encode(&nn, buf, sizeof buf);
		l[0] = (size_t)n;
		r = dh_net_rx_feed(rx, p, l, 1, &m, &got);
		ok(r == DH_NET_EV_NOTICE && got.code == DH_NET_N_EOS, "an EOS notice ends the stream");
		r = feed_data(rx, 77, 0, 0, "x", 1, 1, 0, DH_CHECKSUM_XXH3, NULL, &m);
		ok(r == -EPROTO && strstr(dh_net_rx_error(rx), "after the end"), "a DATA after EOS: %s",
		   dh_net_rx_error(rx));
	}
	dh_net_rx_free(rx);

	/* notices with bad text */
	{
		struct dh_net_notice nn = { .session = 77, .code = DH_NET_N_ERROR };

		snprintf(nn.text, sizeof nn.text, "ok text");
		n = dh_net_notice_encode(&nn, buf, sizeof buf);
		buf[32] = '\n';
		rx = rx_new(NULL);
		feed_welcome(rx, &w);
		ok(feed1(rx, buf, (size_t)n) == -EPROTO, "a NOTICE whose text has a control character is refused");
		dh_net_rx_free(rx);
	}

	/* ---- resume: after = the seq asked for ---- */
	{
		struct dh_net_rx_opts o = { .after = 10 };

		dh_net_rx_new(&o, &rx);
		feed_welcome(rx, &w);
		r = feed_data(rx, 77, 9, 0, "x", 1, 1, 0, DH_CHECKSUM_XXH3, NULL, &m);
		ok(r == -EPROTO, "resuming at 10: seq 9 is a duplicate and refused");
		dh_net_rx_free(rx);
		dh_net_rx_new(&o, &rx);
		feed_welcome(rx, &w);
		r = feed_data(rx, 77, 12, 0, "x", 1, 1, 0, DH_CHECKSUM_XXH3, NULL, &m);
		ok(r == -EPROTO, "resuming at 10: seq 12 without its loss is a silent gap, refused");
		dh_net_rx_free(rx);
		dh_net_rx_new(&o, &rx);
		feed_welcome(rx, &w);
		r = feed_data(rx, 77, 12, 2, "x", 1, 1, 0, DH_CHECKSUM_XXH3, NULL, &m);
		ok(r == DH_NET_EV_DATA && m.lost == 2, "resuming at 10: seq 12 reporting 2 lost is accepted");
		dh_net_rx_free(rx);
	}

	/* ---- identity: schema and key ---- */
	{
		struct dh_net_welcome ws = w;
		struct dh_net_rx_opts o = { .has_schema = 1 };

		memset(o.schema_hash, 0xaa, 32);
		ws.has_schema = 1;
		ws.record_size = 4;
		memset(ws.schema_hash, 0xbb, 32);
		dh_net_rx_new(&o, &rx);
		r = feed_welcome(rx, &ws);
		ok(r == -DH_ESCHEMA && strstr(dh_net_rx_error(rx), "schema mismatch"), "another schema: %s",
		   dh_net_rx_error(rx));
		dh_net_rx_free(rx);
		memset(ws.schema_hash, 0xaa, 32);
		dh_net_rx_new(&o, &rx);
		ok(feed_welcome(rx, &ws) == DH_NET_EV_WELCOME, "the expected schema is accepted");
		r = feed_data(rx, 77, 0, 0, "abcde", 5, 5, 0, DH_CHECKSUM_XXH3, NULL, &m);
		ok(r == -EPROTO, "a message that is not a record of the schema is refused");
		dh_net_rx_free(rx);
	}
	{
		uint8_t key[DH_KEY_BYTES], other[DH_KEY_BYTES];
		struct dh_net_welcome wk = welcome(DH_POLICY_SYNC, DH_CHECKSUM_MAC);

		memset(key, 7, sizeof key);
		memset(other, 8, sizeof other);
		wk.keyed = 1;
		dh__key_id(key, wk.key_id);
		rx = rx_new(NULL);
		ok(feed_welcome(rx, &wk) == -DH_EKEYNEEDED, "a keyed channel without the key is refused");
		dh_net_rx_free(rx);
		rx = rx_new(other);
		ok(feed_welcome(rx, &wk) == -DH_EKEY, "a keyed channel with another key is refused");
		dh_net_rx_free(rx);
		rx = rx_new(key);
		ok(feed_welcome(rx, &wk) == DH_NET_EV_WELCOME, "the channel's key is accepted");
		r = feed_data(rx, 77, 0, 0, "secret", 6, 6, 0, DH_CHECKSUM_MAC, key, &m);
		ok(r == DH_NET_EV_DATA, "a message with its MAC is delivered");
		r = feed_data(rx, 77, 1, 0, "secreT", 6, 6, 0, DH_CHECKSUM_MAC, other, &m);
		ok(r == -DH_ECHECKSUM, "a message MACed with another key is refused (forged)");
		dh_net_rx_free(rx);
	}

	/* ---- the relay reader: a keyed channel served without its key ---- */
	{
		char name[DH_NAME_MAX + 1];
		struct dh_config cfg;
		uint8_t key[DH_KEY_BYTES], chk[32];
		struct dh_writer *wr;
		struct dh_reader *rd;
		struct dh_reader_opts ro = { .start = DH_START_OLDEST };

		memset(key, 3, sizeof key);
		tap_chan(name);
		dh_config_init(&cfg);
		cfg.slots = 4;
		cfg.slot_size = 64;
		cfg.key = key;
		ok(dh_block_create(name, &cfg) == 0, "keyed channel created");
		struct dh_writer_opts wo = { .key = key };
		dh_writer_open_opts(name, &wo, &wr, NULL);
		dh_writer_write(wr, "payload", 7, 0);
		ok(dh_reader_open(name, &ro, &rd) == -DH_EKEYNEEDED, "an ordinary reader needs the key");
		ok(dh_reader_open_relay(name, &ro, &rd) == 0, "a relay reader opens it without the key");
		r = dh_reader_next(rd, &m, 0);
		ok(r == 0 && m.len == 7 && dh_reader_check(rd, chk) == 32,
		   "the relay gets the message and its 32-byte MAC");
		{
			struct dh_block *b = dh_reader_block(rd);
			ok(dh_net_check_verify(DH_CHECKSUM_MAC, b->chan_id, key, m.seq, m.data, m.len, chk) == 0,
			   "the far end verifies that MAC with the key");
			ok(dh_net_check_verify(DH_CHECKSUM_MAC, b->chan_id, key, m.seq + 1, m.data, m.len, chk) ==
				   -DH_ECHECKSUM,
			   "... and refuses it at another seq (replay)");
		}
		dh_reader_close(rd);
		dh_writer_close(wr);
	}

	/* ---- a relay's acknowledged queue claims (dh_reader_release_before) ---- */
	{
		char name[DH_NAME_MAX + 1];
		struct dh_config cfg;
		struct dh_writer *wr;
		struct dh_reader *rd;
		struct dh_snapshot *st = malloc(sizeof *st);

		tap_chan(name);
		dh_config_init(&cfg);
		cfg.slots = 4;
		cfg.slot_size = 16;
		cfg.policy = DH_POLICY_QUEUE;
		ok(dh_block_create(name, &cfg) == 0, "queue channel created");
		ok(dh_writer_open(name, NULL, &wr, NULL) == 0, "its writer");
		ok(dh_reader_open_relay(name, NULL, &rd) == 0 && dh_reader_keep_claims(rd) == 0, "a relay keeping claims");
		for (int i = 0; i < 4; i++)
			dh_writer_write(wr, "m", 1, 0);
		for (int i = 0; i < 4; i++)
			r = dh_reader_next(rd, &m, 0);
		ok(r == 0 && m.seq == 3, "the relay took all four");
		ok(dh_writer_write(wr, "m", 1, 0) == -EAGAIN, "the writer waits: every slot is claimed");
		ok(dh_reader_release_before(rd, 2) == 2, "seqs 0 and 1 acknowledged: two claims still kept");
		ok(dh_writer_write(wr, "m", 1, 0) == 0 && dh_writer_write(wr, "m", 1, 0) == 0 &&
			   dh_writer_write(wr, "m", 1, 0) == -EAGAIN,
		   "... so exactly their two slots are free again");
		ok(dh_reader_release_before(rd, 2) == 2, "acknowledging again frees nothing more");
		{
			uint8_t kc[32], wc[32];
			struct dh_msg k;

			ok(dh_reader_kept_next(rd, 0, &k, kc) == 0 && k.seq == 2 && k.len == 1 &&
				   memcmp(k.data, "m", 1) == 0,
			   "the first kept claim from seq 0 is seq 2, its message still in place");
			dh_reader_check(rd, wc);
			ok(dh_reader_kept_next(rd, 3, &k, kc) == 0 && k.seq == 3 && memcmp(kc, wc, 32) == 0,
			   "from seq 3: the current one, with its stored check");
			ok(dh_reader_kept_next(rd, 4, &k, kc) == -ENOENT, "nothing kept from seq 4");
		}
		ok(dh_reader_release_before(rd, 4) == 0, "seq 3, the current one, acknowledged: nothing kept");
		ok(dh_reader_next(rd, &m, 0) == 0 && m.seq == 4 && dh_reader_settle(rd, 0) == 1,
		   "a claim never acknowledged is counted lost when the relay settles");
		ok(st && dh_block_snapshot(dh_writer_block(wr), st) == 0 && st->queue_lost == 1, "queue_lost says one");
		free(st);
		dh_reader_close(rd);
		dh_writer_close(wr);
	}

	/* ---- broker protocol 3: exporters register their endpoint ---- */
	{
		struct dh_broker_config bc;
		struct dh_broker *b;

		dh_broker_config_init(&bc);
		ok(dh_broker_new(&bc, &b) == 0, "a broker handler");
		breq(b, "{\"id\":\"1\",\"type\":\"register\",\"channel\":\"temp\",\"host\":\"a\",\"pid\":10,"
			"\"policy\":\"sync\",\"slots\":8,\"slot_size\":64,\"max_readers\":4,\"checksum\":\"xxh3\"}");
		ok(strstr(breq(b, "{\"id\":\"2\",\"type\":\"ping\"}"), "\"protocol\":3") != NULL, "ping says protocol 3");
		ok(strstr(breq(b, "{\"id\":\"3\",\"type\":\"reader\",\"channel\":\"temp\",\"host\":\"a\",\"pid\":11,"
				  "\"transport\":\"zmq\"}"), "invalid_request") != NULL,
		   "transport zmq without an endpoint is refused");
		ok(strstr(breq(b, "{\"id\":\"4\",\"type\":\"reader\",\"channel\":\"temp\",\"host\":\"a\",\"pid\":11,"
				  "\"transport\":\"zmq\",\"endpoint\":\"tcp://a:99999\"}"), "invalid_request") != NULL,
		   "an endpoint with a port out of range is refused");
		ok(strstr(breq(b, "{\"id\":\"5\",\"type\":\"reader\",\"channel\":\"temp\",\"host\":\"a\",\"pid\":11,"
				  "\"transport\":\"zmq\",\"endpoint\":\"tcp://a:7000\"}"), "\"ok\"") != NULL,
		   "an exporter registers with transport zmq and its endpoint");
		ok(strstr(breq(b, "{\"id\":\"6\",\"type\":\"discover\",\"channel\":\"temp\"}"),
			  "\"data_transport\":\"zmq\",\"zmq_endpoint\":\"tcp://a:7000\"") != NULL,
		   "discover hands the endpoint out");
		ok(strstr(breq(b, "{\"id\":\"7\",\"type\":\"reader\",\"channel\":\"temp\",\"host\":\"a\",\"pid\":12,"
				  "\"role\":\"subscriber\"}"), "invalid_request") != NULL,
		   "a role without transport zmq is refused");
		ok(strstr(breq(b, "{\"id\":\"8\",\"type\":\"reader\",\"channel\":\"temp\",\"host\":\"a\",\"pid\":12,"
				  "\"transport\":\"zmq\",\"endpoint\":\"tcp://a:7000\",\"role\":\"boss\"}"),
			  "invalid_request") != NULL,
		   "an unknown role is refused");
		ok(strstr(breq(b, "{\"id\":\"9\",\"type\":\"reader\",\"channel\":\"temp\",\"host\":\"a\",\"pid\":13,"
				  "\"transport\":\"zmq\",\"endpoint\":\"tcp://a:7001\",\"role\":\"subscriber\"}"),
			  "\"ok\"") != NULL,
		   "a remote reader registers as a subscriber of an exporter");
		{
			const char *d = breq(b, "{\"id\":\"10\",\"type\":\"discover\",\"channel\":\"temp\"}");

			ok(strstr(d, "\"zmq_endpoint\":\"tcp://a:7000\"") != NULL &&
				   strstr(d, "\"transport\":\"zmq\",\"endpoint\":\"tcp://a:7001\",\"role\":\"subscriber\"") !=
					   NULL &&
				   strstr(d, "\"endpoint\":\"tcp://a:7000\",\"role\":\"exporter\"") != NULL,
			   "it shows as a zmq subscriber with its path; the exporter stays the one handed out");
		}
		breq(b, "{\"id\":\"11\",\"type\":\"reader\",\"channel\":\"temp\",\"host\":\"a\",\"pid\":11}");
		ok(strstr(breq(b, "{\"id\":\"12\",\"type\":\"discover\",\"channel\":\"temp\"}"),
			  "\"data_transport\":\"shm\",\"zmq_endpoint\":null") != NULL,
		   "with the exporter gone (re-registered as shm), a subscriber's endpoint is never handed out");
		dh_broker_free(b);
	}

	/* ---- codecs ---- */
	{
		struct dh_net_hello h = { .window = 10, .start = DH_START_SEQ, .start_seq = 42 }, h2;

		snprintf(h.channel, sizeof h.channel, "temp");
		n = dh_net_hello_encode(&h, buf, sizeof buf);
		ok(n > 0 && dh_net_hello_decode(buf, (size_t)n, &h2) == 0 && h2.start_seq == 42 &&
			   strcmp(h2.channel, "temp") == 0 && h2.window == 10,
		   "HELLO round trip");
		buf[n - 1] = '/';
		ok(dh_net_hello_decode(buf, (size_t)n, &h2) == -EPROTO, "a HELLO naming an invalid channel is refused");
		h.flags = DH_NET_F_RESUME;
		h.resume = 0xdeadbeef;
		n = dh_net_hello_encode(&h, buf, sizeof buf);
		ok(n > 0 && dh_net_hello_decode(buf, (size_t)n, &h2) == 0 && h2.resume == 0xdeadbeef &&
			   h2.flags == DH_NET_F_RESUME && strcmp(h2.channel, "temp") == 0 && h2.start_seq == 42,
		   "HELLO resuming a session: round trip");
		buf[28] = buf[29] = buf[30] = buf[31] = 0;
		ok(dh_net_hello_decode(buf, (size_t)n, &h2) == -EPROTO, "a HELLO resuming session 0 is refused");
		ok(dh_net_hello_decode(buf, (size_t)n - 4, &h2) == -EPROTO,
		   "a HELLO with the resume flag and no session is refused");
	}
	return done();
}
