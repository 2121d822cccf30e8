/* dh_frame.h: stdin/stdout framing codecs of dh-write and dh-read. See LICENSE. */
#ifndef DH_FRAME_H
#define DH_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * How a byte stream maps to messages.
 *
 *   raw     bytes in = bytes out; boundaries carry no meaning
 *   lines   one message per line, newline stripped; a last line without
 *           a newline still counts
 *   null    one message per NUL-terminated record (same rules as lines)
 *   framed  4-byte little-endian length, then that many bytes
 *   record  fixed-size binary records (input only)
 *   json    one JSON object per line (output only)
 *
 * Nothing here does I/O: the caller reads and writes, these functions
 * cut and wrap.  No global state; every function is thread-safe on
 * distinct objects.
 */
enum dh_frame_mode {
	DH_FRAME_RAW = 0,
	DH_FRAME_LINES,
	DH_FRAME_NULL,
	DH_FRAME_FRAMED,
	DH_FRAME_RECORD,
	DH_FRAME_JSON
};

#define DH_FRAME_HEAD_MAX 4      /* longest prefix dh_frame_wrap produces */

const char *dh_frame_mode_name(enum dh_frame_mode mode);

/* ---- input: byte stream -> messages ---------------------------------- */

/*
 * Incremental decoder.  It owns one input buffer; the caller read()s into
 * the space it hands out, reports the count, and takes complete items out
 * (pointers into that buffer, copied once into a reserved slot):
 *
 *     for (;;) {
 *             while ((rc = dh_frame_dec_next(d, &item)) == 0)
 *                     dh_writer_write(w, item.data, item.len, t);
 *             if (rc == DH_FRAME_EOF || rc < 0) break;
 *             dh_frame_dec_space(d, &p, &n);
 *             dh_frame_dec_fill(d, read(fd, p, n));   // 0 = end of input
 *     }
 *
 * In raw mode an item is whatever is buffered, at most max_item bytes (a
 * caller that can should rather read(2) straight into the slot and skip
 * the decoder).
 */
struct dh_frame_dec;

struct dh_frame_item {
	const void *data;        /* valid until the next space/fill/next call */
	size_t len;
	uint64_t ordinal;        /* 1 for the first item of the stream */
	uint64_t offset;         /* input byte offset of its first byte (framed: of its header) */
};

/* What a -DH_ETOOBIG or -EPROTO from dh_frame_dec_next was about. */
struct dh_frame_error {
	uint64_t ordinal;        /* which item (1-based) */
	uint64_t offset;         /* input byte offset where it starts */
	uint64_t size;           /* its size (oversize) or the size announced (truncated) */
	uint64_t have;           /* truncated: bytes of it present before EOF */
};

#define DH_FRAME_NEED 1          /* dh_frame_dec_next: feed more input */
#define DH_FRAME_EOF 2           /* dh_frame_dec_next: input ended, everything returned */

/*
 * New decoder for mode (not json) whose items may be at most max_item
 * bytes (the slot payload).  record_size is the record length in record
 * mode, ignored otherwise.  Errors: -EINVAL (bad mode, max_item 0, record
 * size 0), -DH_ETOOBIG (record_size > max_item), -ENOMEM.  Free with
 * dh_frame_dec_free (NULL is a no-op).
 */
int dh_frame_dec_new(enum dh_frame_mode mode, size_t max_item, size_t record_size,
		     struct dh_frame_dec **out);
void dh_frame_dec_free(struct dh_frame_dec *d);

/* Where to read next: *buf, up to *len (> 0) bytes. Compacts or grows the
 * buffer as needed; -ENOMEM if it cannot grow, -EINVAL after EOF. */
int dh_frame_dec_space(struct dh_frame_dec *d, void **buf, size_t *len);

/* Report n bytes read into the space (n <= *len), or 0 for end of input. */
void dh_frame_dec_fill(struct dh_frame_dec *d, size_t n);

/*
 * Take the next complete item.  0 and *item filled; DH_FRAME_NEED when
 * more input is needed; DH_FRAME_EOF at the end.  Errors, sticky, with
 * details from dh_frame_dec_error:
 *   -DH_ETOOBIG  an item larger than max_item.  Lines and null records are
 *                skipped to their end to learn their size, so this comes
 *                once the delimiter (or EOF) has been read.
 *   -EPROTO      a frame or record cut short by EOF.
 */
int dh_frame_dec_next(struct dh_frame_dec *d, struct dh_frame_item *item);

const struct dh_frame_error *dh_frame_dec_error(const struct dh_frame_dec *d);

/* Input bytes consumed (returned in items or delimiters) so far. */
uint64_t dh_frame_dec_offset(const struct dh_frame_dec *d);

/* ---- output: messages -> byte stream --------------------------------- */

/*
 * For raw, lines, null and framed the payload is written verbatim, so a
 * caller can write(2) it straight from the slot: dh_frame_wrap gives the
 * bytes that go before it (head, 0 or 4 bytes) and after it (tail, 0 or 1).
 * -EINVAL for json and record, -DH_ETOOBIG if a frame exceeds 4 GiB - 1.
 */
int dh_frame_wrap(enum dh_frame_mode mode, size_t len, unsigned char head[DH_FRAME_HEAD_MAX],
		  size_t *head_len, unsigned char *tail, size_t *tail_len);

/* Upper bound of dh_frame_encode's output for a len-byte payload, or
 * SIZE_MAX if it would overflow. */
size_t dh_frame_encode_bound(enum dh_frame_mode mode, size_t len);

/*
 * Encode one message into out (cap bytes) and return its length: the
 * payload wrapped per mode, or for json one object and a newline:
 *   {"seq":42,"time":"2024-05-01T12:00:00.000000042Z","length":5,"text":"hello"}
 * with "base64" instead of "text" when the payload is not valid UTF-8.
 * time_ns is CLOCK_REALTIME nanoseconds.  -ENOBUFS if cap is too small
 * (dh_frame_encode_bound is always enough), -EINVAL for record mode.
 */
ssize_t dh_frame_encode(enum dh_frame_mode mode, const void *data, size_t len, uint64_t seq,
			uint64_t time_ns, void *out, size_t cap);

/* ---- building blocks, exported for tests ------------------------------ */

/* 1 if buf is well-formed UTF-8 (no overlongs, surrogates or code points
 * above U+10FFFF), else 0. */
int dh_frame_utf8_valid(const void *buf, size_t len);

/* Standard base64 with padding; out needs 4 * ((len + 2) / 3) bytes.
 * Returns the length written. */
size_t dh_frame_base64(const void *buf, size_t len, char *out);

/* JSON string body (no quotes) of valid UTF-8 text: escapes '"', '\\' and
 * control characters; out needs 6 * len bytes at most.  Returns the
 * length written. */
size_t dh_frame_json_escape(const void *buf, size_t len, char *out);

/* RFC 3339 UTC time with nanoseconds, "1970-01-01T00:00:00.000000000Z"
 * (30 chars + NUL; out needs DH_FRAME_TIME_LEN + 1 bytes). Returns 30, or
 * -EOVERFLOW if the year does not fit in four digits. */
#define DH_FRAME_TIME_LEN 30
int dh_frame_time(uint64_t time_ns, char *out);

#endif
