/* Base64 (RFC 4648, standard alphabet, '=' padding, no line breaks): how the
 * XML state carries file bodies that are not valid XML text. */
#ifndef LLMFUSE_COMMON_BASE64_H
#define LLMFUSE_COMMON_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"

/* Appends the encoding of data to out; returns the number of characters
 * appended or -ENOMEM. */
int64_t lf_base64_encode(const uint8_t *data, size_t size, lf_buffer *out);

/* Appends the decoded bytes to out; returns their number, -ENOMEM, or
 * -LF_EFORMAT for anything but the one canonical encoding of some bytes:
 * a length that is not a multiple of 4, characters outside the alphabet
 * (whitespace included), misplaced padding, or padded-out bits that are not
 * zero.  Strictness makes decode(text) -> encode give back text exactly, which
 * the XML form's canonical fixed point relies on.  On error out is unchanged. */
int64_t lf_base64_decode(const char *text, size_t length, lf_buffer *out);

#endif
