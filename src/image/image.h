/* Compressed filesystem images (docs/FORMAT.md §7): a tree's metadata (the
 * XML state without bodies, LM-coded), a node table (owners, hard links,
 * where each file's content is) and the distinct file contents, coded by the
 * model with a file's path read first: a big or binary file as a stream of
 * its own, small text files together in packs, so that the model and the
 * codec's adaptive statistics learn from a file's neighbours (squashfs's
 * fragments, DwarFS's blocks).  Every stream and the table carry checksums,
 * so damage is found and named stream by stream.
 *
 * An image is written whole and atomically (a temporary beside it, fsync,
 * rename): readers and a crash see the old image or the new one.  A tree
 * loaded from an image holds its files' contents lazily: each file is
 * pending with its stream as content key (fs/tree.h) until first read, and
 * writing the tree back copies the streams of unchanged files. */
#ifndef LLMFUSE_IMAGE_IMAGE_H
#define LLMFUSE_IMAGE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"
#include "common/error.h"
#include "fs/tree.h"
#include "model/model.h"

#define LF_IMAGE_VERSION 3
#define LF_IMAGE_OLDEST_VERSION 2 /* 2 is 3 without gzip streams */
#define LF_IMAGE_SUPERBLOCK_SIZE 64

enum {
    LF_IMAGE_METADATA_STREAM = 0, /* the XML state without bodies */
    LF_IMAGE_NODE_TABLE_STREAM,   /* owners, links, content streams */
    LF_IMAGE_FIRST_FILE_STREAM,
};

typedef enum lf_image_stream_kind {
    LF_IMAGE_STREAM_STORED = 0, /* the original bytes */
    LF_IMAGE_STREAM_LLMZ = 1,   /* a .llmz archive (§2) of them */
    LF_IMAGE_STREAM_GZIP = 2,   /* a .gz file: its header and an archive of its text
                                   (codec/gzip.h), rebuilt when read */
} lf_image_stream_kind;

typedef struct lf_image_stream {
    lf_image_stream_kind kind;
    uint64_t offset; /* in the image file */
    uint64_t stored_size, original_size;
    uint32_t checksum; /* XXH32 of the stored bytes */
    const uint8_t *prefix; /* what the model read first: a file's path and a newline */
    size_t prefix_size;
} lf_image_stream;

typedef struct lf_image lf_image;

/* Maps and validates an image: superblock, stream table, that the streams
 * fill the file.  model_name: the model to decode with (a GGUF file or a
 * built-in name); NULL takes the built-in model the superblock names.
 * -LF_EFORMAT / -LF_ECHECKSUM / -LF_ETRUNCATED / -LF_EVERSION / -LF_EMODEL
 * with a diagnostic that names the part that is wrong. */
int64_t lf_image_open(const char *path, const char *model_name, lf_image **image,
                      lf_diagnostic *diagnostic);
void lf_image_close(lf_image *image);

const lf_model *lf_image_model(const lf_image *image);
const char *lf_image_path(const lf_image *image);
uint64_t lf_image_size(const lf_image *image);
size_t lf_image_stream_count(const lf_image *image);
const lf_image_stream *lf_image_stream_at(const lf_image *image, size_t index);

/* Appends stream `index`'s original bytes to out after checking its stored
 * checksum, its archive's checksums and its size; on error out keeps its
 * length.  Safe to call from several threads. */
int64_t lf_image_read_stream(const lf_image *image, size_t index, lf_buffer *out,
                             lf_diagnostic *diagnostic);

/* The model that coded an llmz stream ("base", "cm", a file name), for
 * reports; "stored" or "zstd" when no model's bytes were kept. */
const char *lf_image_stream_coder(const lf_image *image, size_t index);

/* The image's tree: metadata and node table decoded and checked against
 * each other and the stream table.  Every non-empty file is pending with a
 * content key that names its stream and its offset there (see
 * lf_image_content_stream), and the tree's content loader decodes from this
 * image, which must stay open as long as the tree may load. */
int64_t lf_image_load_tree(lf_image *image, lf_tree **tree, lf_diagnostic *diagnostic);

/* The content loader lf_image_load_tree installs, for a front end that
 * wraps it (context: the image).  Files of one pack are cut from one
 * decoding: the image keeps the last few packs it decoded. */
int64_t lf_image_load_content(void *image, lf_node *file, uint64_t key);

/* Where the content a key names is: its stream, and the offset of its
 * first byte in the stream's original bytes (0 but in packs). */
size_t lf_image_content_stream(uint64_t key);
uint64_t lf_image_content_offset(uint64_t key);

/* Drops the content of every loaded file that still equals its stream
 * (content key set, not pending), so it reloads on the next access: how a
 * mount keeps its decoded contents within a memory bound.  Returns the
 * bytes dropped. */
int64_t lf_image_drop_clean_contents(lf_tree *tree);

#define LF_IMAGE_PACK_SIZE (32 * 1024)        /* mkfs's and commits' default */
#define LF_IMAGE_PACK_MEMBER_LIMIT (16 * 1024) /* bigger files are streams of their own */

typedef void (*lf_image_progress_fn)(void *context, uint64_t done, uint64_t total);

typedef struct lf_image_write_options {
    const lf_model *model; /* codes new streams (with its fallback) */
    unsigned threads;      /* 0: every core; never changes the bytes */
    /* The image the tree was loaded from, or NULL: files whose content key
     * names one of its streams are copied from it, not coded again. */
    const lf_image *previous;
    /* Files under LF_IMAGE_PACK_MEMBER_LIMIT bytes that look like text are
     * coded in packs of up to this many bytes (0: LF_IMAGE_PACK_SIZE; 1
     * leaves every file alone).  A bigger pack compresses better and takes
     * longer to decode when one of its files is read. */
    uint64_t pack_size;
    lf_image_progress_fn progress; /* bytes coded so far, of the total to code */
    void *progress_context;
} lf_image_write_options;

typedef struct lf_image_write_report {
    uint64_t image_size;
    uint64_t streams_coded, streams_copied;
    uint64_t bytes_coded; /* original bytes of the streams coded */
    uint64_t duplicates;  /* files whose content another file's stream holds */
} lf_image_write_report;

/* Writes the image of tree to path atomically and opens it (*written, with
 * the model of options->model).  On success every file's content key is
 * its stream in the new image (pending files stay pending); on failure the
 * file at path and the tree are unchanged.  The tree's files must be
 * loaded, or pending with a content key of options->previous. */
int64_t lf_image_write(lf_tree *tree, const char *path, const lf_image_write_options *options,
                       lf_image **written, lf_image_write_report *report,
                       lf_diagnostic *diagnostic);

#endif
