/* fuzz_net.c: what an exporter (or anyone on the network) may send a subscriber, on arbitrary bytes: every dh-net decoder and the dh_net_rx checks. See LICENSE. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Input: one option byte, then messages: a part count (1..3), then each
 * part as a 2-byte little-endian length and its bytes. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dh_net_rx_opts o = { 0 };
	struct dh_net_rx *rx;
	uint8_t key[DH_KEY_BYTES];
	size_t pos = 1;

	if (size < 1)
		return 0;
	memset(key, data[0], sizeof key);
	if (data[0] & 1)
		o.key = key;
	if (data[0] & 2) {
		o.has_schema = 1;
		memset(o.schema_hash, data[0], 32);
	}
	o.after = (data[0] & 4) ? 3 : 0;
	if (dh_net_rx_new(&o, &rx) < 0)
		return 0;
	while (pos < size) {
		const void *parts[3];
		size_t lens[3];
		int np = 1 + data[pos++] % 3, i;
		struct dh_msg m;
		struct dh_net_notice n;
		union {
			struct dh_net_hello h;
			struct dh_net_welcome w;
			struct dh_net_credit c;
			struct dh_net_data d;
			struct dh_net_notice n;
		} u;

		for (i = 0; i < np; i++) {
			size_t len;

			if (pos + 2 > size)
				goto out;
			len = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
			pos += 2;
			if (len > size - pos)
				len = size - pos;
			parts[i] = data + pos;
			lens[i] = len;
			pos += len;
		}
		/* every decoder on the first part: none may read past it */
		(void)dh_net_hello_decode(parts[0], lens[0], &u.h);
		(void)dh_net_welcome_decode(parts[0], lens[0], &u.w);
		(void)dh_net_credit_decode(parts[0], lens[0], &u.c);
		(void)dh_net_data_decode(parts[0], lens[0], &u.d);
		(void)dh_net_notice_decode(parts[0], lens[0], &u.n);
		int r = dh_net_rx_feed(rx, parts, lens, np, &m, &n);
		if (r == DH_NET_EV_DATA) {
			const struct dh_net_welcome *w = dh_net_rx_welcome(rx);
			/* what is delivered fits what was announced */
			if (np != 1 || m.len + DH_NET_DATA_HEAD != lens[0] || w == NULL || m.len > w->slot_size)
				abort();
		}
	}
out:
	dh_net_rx_free(rx);
	return 0;
}
