/* One walk over a MsgPack value's headers, shared by units and hosts. */
#include "molt/mpsize.h"

#include <stdint.h>

/* Reads a k-byte big-endian length at p[*at], if the bytes are there. */
static int be_len(const unsigned char *p, size_t n, size_t *at, size_t k, uint64_t *v)
{
	size_t i;

	if (k > n - *at)
		return 0;
	for (*v = 0, i = 0; i < k; i++)
		*v = *v << 8 | p[(*at)++];
	return 1;
}

size_t molt__msgpack_size(const unsigned char *p, size_t n)
{
	static const unsigned char fixed[32] = {
		/* c0-df: bytes after the type byte; 0xff marks the variable ones */
		0, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 4, 8, 1, 2, 4, 8,
		1, 2, 4, 8, 2, 3, 5, 9, 17, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	size_t at = 0;
	uint64_t want = 1; /* values still to read */

	while (want) {
		uint64_t len = 0, items = 0;
		unsigned char c;

		if (at >= n)
			return 0;
		c = p[at++];
		want--;
		if (c <= 0x7f || c >= 0xe0)
			;
		else if (c >= 0xa0 && c <= 0xbf)
			len = c & 0x1f;
		else if (c >= 0x90 && c <= 0x9f)
			items = c & 0x0f;
		else if (c >= 0x80 && c <= 0x8f)
			items = 2u * (c & 0x0f);
		else if (fixed[c - 0xc0] != 0xff)
			len = fixed[c - 0xc0];
		else if (c == 0xc4 || c == 0xd9 || c == 0xc7) {
			if (!be_len(p, n, &at, 1, &len))
				return 0;
			len += c == 0xc7;
		} else if (c == 0xc5 || c == 0xda || c == 0xc8) {
			if (!be_len(p, n, &at, 2, &len))
				return 0;
			len += c == 0xc8;
		} else if (c == 0xc6 || c == 0xdb || c == 0xc9) {
			if (!be_len(p, n, &at, 4, &len))
				return 0;
			len += c == 0xc9;
		} else if (c == 0xdc || c == 0xde) {
			if (!be_len(p, n, &at, 2, &items))
				return 0;
			items <<= c == 0xde;
		} else if (c == 0xdd || c == 0xdf) {
			if (!be_len(p, n, &at, 4, &items))
				return 0;
			items <<= c == 0xdf;
		} else {
			return 0; /* 0xc1: never used */
		}
		if (len > n - at)
			return 0;
		at += len;
		/* Every value takes at least a byte. */
		if (items > n - at || (want += items) > n - at)
			return 0;
	}
	return at;
}
