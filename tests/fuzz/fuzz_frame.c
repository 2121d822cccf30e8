/* fuzz_frame.c: the input framing decoders and output encoders on arbitrary bytes. See LICENSE. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dh_frame_dec *d;
	struct dh_frame_item it;
	enum dh_frame_mode mode;
	size_t max_item, pos = 0, chunk;
	int rc;

	if (size < 3)
		return 0;
	mode = (enum dh_frame_mode)(data[0] % 5);
	max_item = 1 + data[1] % 64;
	chunk = 1 + data[2] % 17;
	data += 3;
	size -= 3;
	if (dh_frame_dec_new(mode, max_item, 1 + data[-1] % 8, &d) < 0)
		return 0;
	for (;;) {
		while ((rc = dh_frame_dec_next(d, &it)) == 0) {
			if (it.len > max_item)
				abort();
			size_t cap = dh_frame_encode_bound(DH_FRAME_JSON, it.len);
			char *out = malloc(cap);
			if (out) {
				if (dh_frame_encode(DH_FRAME_JSON, it.data, it.len, it.ordinal, 0, out, cap) < 0)
					abort();
				free(out);
			}
		}
		if (rc != DH_FRAME_NEED)
			break;
		void *buf;
		size_t len, n;
		if (dh_frame_dec_space(d, &buf, &len) < 0)
			break;
		n = size - pos < chunk ? size - pos : chunk;
		if (n > len)
			n = len;
		memcpy(buf, data + pos, n);
		pos += n;
		dh_frame_dec_fill(d, n);
	}
	dh_frame_dec_free(d);
	return 0;
}
