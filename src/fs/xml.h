/* The filesystem state as XML: the seed's format, byte-exact, plus symlinks
 * and base64 bodies (docs/FORMAT.md §1 is the specification).
 *
 * The writer produces the one canonical form (what Python's ElementTree
 * writes for the seed's trees); the parser is strict but also takes
 * whitespace between elements, any attribute order and an XML declaration,
 * so parse -> write turns any accepted document into its canonical form and
 * the canonical form is a fixed point. */
#ifndef LLMFUSE_FS_XML_H
#define LLMFUSE_FS_XML_H

#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"
#include "fs/tree.h"

enum {
    /* Metadata only: files are written as empty elements with their size,
     * and the parser takes files without a body as `size` zero bytes. */
    LF_XML_WITHOUT_BODIES = 1,
    /* Every directory's entries in bytewise order of their names instead
     * of the tree's order: a form that compares trees whatever order their
     * entries were made in (a scanned directory's and an operated tree's). */
    LF_XML_SORTED = 2,
};

/* Appends the canonical form of tree to out and returns the number of bytes
 * appended.  -LF_EUNREPRESENTABLE (with the node's path in diag) for a name,
 * owner, group or symlink target that is not XML-safe UTF-8, an empty
 * symlink target, or an mtime outside years 0001..9999; sub-second time is
 * dropped.  Hard links come out as separate files with the same content.
 * On error out keeps its length. */
int64_t lf_xml_write(const lf_tree *tree, unsigned flags, lf_buffer *out, lf_diagnostic *diag);

/* Appends a time as the XML's mtime attribute holds it, UTC to the second:
 * `2024-06-30T09:04:49`.  -LF_EUNREPRESENTABLE outside years 0001..9999.
 * The dataset's lines use it too, so that the model copies times rather
 * than converts them. */
int64_t lf_xml_append_time(lf_buffer *out, int64_t seconds);

/* Builds a new tree from a document.  Returns 0 and *tree, or -LF_EFORMAT
 * (diag says what and where: line:column and the element's path), -ENOMEM;
 * on error *tree is NULL. Owner and group names the system does not know
 * (and that are not decimal ids) stay as written, with id 65534 (nobody).
 * atime and ctime are set to mtime. */
int64_t lf_xml_parse(const void *data, size_t size, unsigned flags, lf_tree **tree,
                     lf_diagnostic *diag);

#endif
