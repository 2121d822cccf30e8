/* utf8.c: UTF-8 well-formedness, shared by the framing and schema codecs. See LICENSE. */
#include <stddef.h>

#include "dh_impl.h"

/* Length of the well-formed UTF-8 sequence at p (1..4), 0 if there is none:
 * no overlongs, surrogates or code points above U+10FFFF. */
size_t
dh__utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		if (c == 0xe0)
			lo = 0xa0;        /* overlong */
		else if (c == 0xed)
			hi = 0x9f;        /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		if (c == 0xf0)
			lo = 0x90;        /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;        /* above U+10FFFF */
	} else {
		return 0;
	}
	if ((size_t)(end - p) <= n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i <= n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n + 1;
}
