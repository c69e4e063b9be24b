/* The size of one MsgPack value, checked before msgpack-c decodes it. */
#ifndef MOLT_MPSIZE_H
#define MOLT_MPSIZE_H

#include <stddef.h>

/* The length of the MsgPack value at the start of p[0..n), or 0 when there
 * is no complete one or a length or count in it claims more than the n bytes
 * hold. msgpack_unpack reserves room for an array's or map's claimed count
 * before reading any of it, so without this check five bytes could make it
 * allocate gigabytes. Used by the module SDK and by libmolt. */
size_t molt__msgpack_size(const unsigned char *p, size_t n);

#endif
