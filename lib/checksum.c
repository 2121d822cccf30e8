/* checksum.c: per-message checksums over sequence, length and payload. See LICENSE. */
#include <string.h>

#include <sodium.h>
#include <xxhash.h>

#include "dh_impl.h"

/* The seed binds seq and length into the xxh3 value so a frame replayed at
 * another seq, or cut short, fails even though xxh3 is not a MAC. */
static uint64_t
xxh3_of(uint64_t seq, const void *data, uint32_t len)
{
	uint64_t seed = (seq * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)len << 32 | len);

	return XXH3_64bits_withSeed(data, len, seed);
}

/* With a key (MAC) the channel id is hashed too, so a frame copied from
 * another channel keyed alike, even at the same seq, fails. */
static void
blake2b_of(const uint8_t *key, const uint8_t chan_id[16], uint64_t seq, const void *data, uint32_t len,
	   uint8_t out[32])
{
	crypto_generichash_state st;
	uint8_t le[12];

	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(seq >> (8 * i));
	for (int i = 0; i < 4; i++)
		le[8 + i] = (uint8_t)(len >> (8 * i));
	crypto_generichash_init(&st, key, key ? DH_KEY_BYTES : 0, 32);
	if (key)
		crypto_generichash_update(&st, chan_id, 16);
	crypto_generichash_update(&st, le, sizeof le);
	crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, out, 32);
}

void
dh__check_compute(const struct dh_block *b, uint64_t seq, const void *data, uint32_t len, uint8_t out[32])
{
	uint64_t h;

	switch (b->cfg.checksum) {
	case DH_CHECKSUM_XXH3:
		h = xxh3_of(seq, data, len);
		memcpy(out, &h, sizeof h);
		break;
	case DH_CHECKSUM_BLAKE2B:
		blake2b_of(NULL, NULL, seq, data, len, out);
		break;
	case DH_CHECKSUM_MAC:
		blake2b_of(b->key, b->chan_id, seq, data, len, out);
		break;
	default:
		break;
	}
}

int
dh__check_verify(const struct dh_block *b, uint64_t seq, const void *data, uint32_t len, const uint8_t expect[32])
{
	uint8_t got[32];
	uint64_t h;

	switch (b->cfg.checksum) {
	case DH_CHECKSUM_XXH3:
		h = xxh3_of(seq, data, len);
		return memcmp(&h, expect, sizeof h) == 0 ? 0 : -DH_ECHECKSUM;
	case DH_CHECKSUM_BLAKE2B:
	case DH_CHECKSUM_MAC:
		/* constant time: a MAC compared early-out leaks where it differs */
		blake2b_of(b->cfg.checksum == DH_CHECKSUM_MAC ? b->key : NULL, b->chan_id, seq, data, len, got);
		return sodium_memcmp(got, expect, 32) == 0 ? 0 : -DH_ECHECKSUM;
	default:
		return 0;
	}
}
