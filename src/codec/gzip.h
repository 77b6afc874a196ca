/* gzip recompression: a .gz file taken apart into its header and its text,
 * when the text, deflated again, gives back the very same bytes.
 *
 * Compressed files cannot be compressed again, but the text inside them
 * can, much better than deflate did. Debian compresses documentation and
 * changelogs with `gzip -9n`; lf_gzip_deflate is that program's level-9
 * deflate (GNU gzip 1.x: lazy matching with hash chains of 32 KiB windows,
 * blocks cut where gzip cuts them, its Huffman trees), written so its
 * output is bit-identical. lf_gzip_split keeps a file apart only after
 * checking that lf_gzip_join rebuilds it exactly, so a file gzip made
 * otherwise (another level, zlib, pigz) is simply not split: nothing is
 * ever rebuilt differently. The deflate code is part of the formats that
 * use it (docs/FORMAT.md §7): it may never change. */
#ifndef LLMFUSE_CODEC_GZIP_H
#define LLMFUSE_CODEC_GZIP_H

#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"

/* Texts longer than this are not split (-LF_EUNREPRESENTABLE), so a small
 * .gz that inflates to gigabytes costs nothing. */
#define LF_GZIP_TEXT_LIMIT (64u << 20)

/* Appends the raw deflate stream (RFC 1951) `gzip -9` writes for data.
 * 0 or -ENOMEM. */
int64_t lf_gzip_deflate(const uint8_t *data, size_t size, lf_buffer *out);

/* Inflates the raw deflate stream at the start of data, appending at most
 * limit bytes to out; *consumed is the stream's length in bytes. 0,
 * -LF_EFORMAT or -LF_ETRUNCATED for a damaged stream, -LF_EUNREPRESENTABLE
 * past limit, -ENOMEM. */
int64_t lf_gzip_inflate(const uint8_t *data, size_t size, size_t limit, size_t *consumed,
                        lf_buffer *out);

/* CRC-32 as gzip's trailer holds it (ISO 3309), continued from crc (0 to
 * start). */
uint32_t lf_gzip_crc32(uint32_t crc, const uint8_t *data, size_t size);

/* Splits a one-member .gz file: *header_size is the length of its header
 * (the first bytes of file, kept as they are), text receives the inflated
 * bytes. Succeeds only when lf_gzip_join(file, *header_size, text) is the
 * file byte for byte; otherwise -LF_EFORMAT (not gzip, damaged, trailing
 * bytes, or deflated by another program or level), -LF_EUNREPRESENTABLE
 * (text over LF_GZIP_TEXT_LIMIT) or -ENOMEM, and text is unchanged. */
int64_t lf_gzip_split(const uint8_t *file, size_t size, size_t *header_size, lf_buffer *text);

/* Appends header, the deflated text, its CRC-32 and length: the file that
 * lf_gzip_split took apart. 0 or -ENOMEM. */
int64_t lf_gzip_join(const uint8_t *header, size_t header_size, const uint8_t *text,
                     size_t text_size, lf_buffer *out);

#endif
