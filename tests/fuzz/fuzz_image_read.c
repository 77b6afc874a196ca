/* libFuzzer target for the image reader (image/image.h): no input may crash,
 * hang, leak or trip a sanitizer, and a refusal must say why.  Whatever
 * opens is listed and has every stream read; whatever tree loads has every
 * node visited, every file read through the tree (its bytes must be its
 * stream's), its contents dropped and read again, and is written as a new
 * image (unchanged streams copied) whose tree must be the same.
 *
 * The input reaches the reader as a file: a memfd, opened by its
 * /proc/self/fd path.  This build defines
 * FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which makes the image's and the
 * archives' checksums pass, so the fuzzer gets past them into the table,
 * the node table, the metadata and the decoders; and a mutator that knows
 * the layout makes half the mutations inside the structure. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "codec/llmz.h"
#include "common/bytes.h"
#include "fs/tree.h"
#include "fs/xml.h"
#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed);

/* Model decoding runs at a few KB/s under the sanitizers: bound the work. */
enum { MAX_DECODED = 1 << 16, MAX_STREAMS = 64 };

static void check(bool condition, const char *what)
{
    if (!condition) {
        fprintf(stderr, "fuzz_image_read: %s\n", what);
        abort();
    }
}

/* Whether decoding a stream is bounded: the table and, for an archive, its
 * header claim at most MAX_DECODED bytes (a header that does not read makes
 * decoding fail at once). */
static bool small_enough(const uint8_t *data, const lf_image_stream *stream)
{
    if (stream->original_size > MAX_DECODED)
        return false;
    if (stream->kind == LF_IMAGE_STREAM_STORED)
        return true;
    /* a gzip stream's archive follows its varint header size, header and
     * the file's checksum */
    lf_bytes_reader in = {.data = data + stream->offset, .size = stream->stored_size};
    uint64_t header_size = 0;
    if (stream->kind == LF_IMAGE_STREAM_GZIP &&
        (lf_bytes_get_varint(&in, &header_size) < 0 || header_size + 4 > in.size - in.position))
        return true;
    in.position += stream->kind == LF_IMAGE_STREAM_GZIP ? header_size + 4 : 0;
    lf_llmz_header header;
    if (lf_llmz_read_header(in.data + in.position, in.size - in.position, &header, NULL) != 0)
        return true;
    bool small = header.original_size <= MAX_DECODED;
    lf_llmz_header_free(&header);
    return small;
}

typedef struct reader {
    lf_image *image;
    lf_tree *tree;
    lf_buffer *contents; /* each stream's bytes, when it read */
    bool *readable, *small;
    size_t count;
    lf_buffer path;
} reader;

static int count_entry(void *context, const char *name, const struct stat *attributes)
{
    (void)name;
    (void)attributes;
    (*(size_t *)context)++;
    return 0;
}

/* Reads the file at r->path through the tree (its loader decodes it). */
static void read_file(reader *r, lf_node *node, const struct stat *attributes)
{
    uint64_t key = lf_node_content_key(node);
    size_t stream = lf_image_content_stream(key);
    uint64_t offset = lf_image_content_offset(key);
    check(stream < r->count, "a file's content key is not a stream");
    if (attributes->st_size > MAX_DECODED || (key && !r->small[stream]))
        return;
    size_t size = (size_t)attributes->st_size;
    uint8_t *content = malloc(size + 1);
    check(content != NULL, "out of memory");
    int64_t got = lf_tree_read(r->tree, lf_buffer_string(&r->path), content, size + 1, 0);
    if (key == 0) {
        check(got == (int64_t)size, "an empty or unstored file does not read");
    } else if (got >= 0) {
        /* read through the tree: exactly its part of its stream */
        const lf_buffer *bytes = &r->contents[stream];
        check(r->readable[stream] && (size_t)got == size && offset <= bytes->length &&
                  size <= bytes->length - offset && memcmp(content, bytes->data + offset, size) == 0,
              "a file reads other bytes than its stream holds");
    } else {
        check(got == -EIO && !r->readable[stream], "a file whose stream reads fails to load");
    }
    free(content);
}

/* Visits node (at r->path) and everything below it. */
static void visit(reader *r, lf_node *node)
{
    const char *path = lf_buffer_string(&r->path);
    struct stat attributes;
    check(lf_tree_getattr(r->tree, path, &attributes) == 0, "a node's path does not resolve");
    if (S_ISLNK(attributes.st_mode)) {
        char target[64];
        check(lf_tree_readlink(r->tree, path, target, sizeof target) >= 0, "a symlink does not read");
    } else if (S_ISREG(attributes.st_mode)) {
        read_file(r, node, &attributes);
    } else {
        check(S_ISDIR(attributes.st_mode), "a node of no known type");
        size_t entries = 0;
        int64_t listed = lf_tree_readdir(r->tree, path, count_entry, &entries);
        check(listed >= 0 && (size_t)listed == entries && entries == lf_node_child_count(node) + 2,
              "a directory does not list");
        for (size_t i = 0; i < lf_node_child_count(node); i++) {
            const char *name;
            lf_node *child = lf_node_child(node, i, &name);
            size_t length = r->path.length;
            check(lf_buffer_printf(&r->path, "%s%s", length > 1 ? "/" : "", name) == 0,
                  "out of memory");
            visit(r, child);
            r->path.length = length;
        }
    }
}

/* Writes the tree as a new image beside the input, copying unchanged
 * streams, and checks that it loads as the same tree. */
static void write_again(reader *r, const char *directory)
{
    char path[256];
    snprintf(path, sizeof path, "%s/again.img", directory);
    lf_image_write_options options = {.model = lf_image_model(r->image), .threads = 1,
                                      .previous = r->image};
    lf_image *written = NULL;
    lf_tree *tree = NULL;
    lf_buffer before = {0}, after = {0};
    lf_diagnostic diagnostic = {0};
    int64_t status = lf_image_write(r->tree, path, &options, &written, NULL, &diagnostic);
    check(status == 0 || diagnostic.message[0], "a write failed without saying why");
    if (status == 0) {
        check(lf_image_load_tree(written, &tree, &diagnostic) == 0, diagnostic.message);
        check(lf_xml_write(r->tree, LF_XML_WITHOUT_BODIES, &before, NULL) >= 0 &&
                  lf_xml_write(tree, LF_XML_WITHOUT_BODIES, &after, NULL) >= 0,
              "a tree does not write as XML");
        check(before.length == after.length && memcmp(before.data, after.data, before.length) == 0,
              "the written image holds another tree");
    }
    lf_buffer_free(&before);
    lf_buffer_free(&after);
    lf_tree_free(tree);
    lf_image_close(written);
    unlink(path);
}

/* Where write_again writes: made once, removed at exit (it is empty then). */
static char directory[] = "/tmp/fuzz_image_read-XXXXXX";

static void remove_directory(void) { rmdir(directory); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char input_path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_image_read", MFD_CLOEXEC);
        check(fd >= 0 && mkdtemp(directory) != NULL, "no memfd or temporary directory");
        atexit(remove_directory);
        snprintf(input_path, sizeof input_path, "/proc/self/fd/%d", fd);
    }
    check(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size,
          "cannot write the input");

    lf_diagnostic diagnostic = {0};
    reader r = {0};
    if (lf_image_open(input_path, "cm", &r.image, &diagnostic) != 0) {
        check(diagnostic.message[0] != '\0', "a refused image gave no message");
        check(r.image == NULL, "a refused image was returned");
        return 0;
    }
    r.count = lf_image_stream_count(r.image);
    check(r.count >= LF_IMAGE_FIRST_FILE_STREAM, "an image without metadata or node table");
    check(lf_image_size(r.image) == size, "the image's size is not the file's");
    r.contents = calloc(r.count, sizeof *r.contents);
    r.readable = calloc(r.count, sizeof *r.readable);
    r.small = calloc(r.count, sizeof *r.small);
    check(r.contents && r.readable && r.small, "out of memory");
    for (size_t i = 0; i < r.count; i++) {
        const lf_image_stream *stream = lf_image_stream_at(r.image, i);
        check(stream && stream->offset + stream->stored_size <= size,
              "a stream lies outside the file");
        check(lf_image_stream_coder(r.image, i)[0] != '\0', "a stream without a coder");
        r.small[i] = small_enough(data, stream);
        if (!r.small[i] || i >= MAX_STREAMS)
            continue;
        lf_diagnostic stream_diagnostic = {0};
        int64_t status = lf_image_read_stream(r.image, i, &r.contents[i], &stream_diagnostic);
        r.readable[i] = status == 0;
        check(status == 0 ? r.contents[i].length == stream->original_size
                          : r.contents[i].length == 0 && stream_diagnostic.message[0],
              "a stream read the wrong size, or failed without saying why");
    }
    check(lf_image_stream_at(r.image, r.count) == NULL, "a stream past the end");

    if (r.small[LF_IMAGE_METADATA_STREAM] && r.small[LF_IMAGE_NODE_TABLE_STREAM]) {
        diagnostic = (lf_diagnostic){0};
        int64_t status = lf_image_load_tree(r.image, &r.tree, &diagnostic);
        check(status == 0 || (diagnostic.message[0] && !r.tree), "a refused tree gave no message");
        if (status == 0 && r.count <= MAX_STREAMS) {
            check(lf_buffer_append_string(&r.path, "/") == 0, "out of memory");
            visit(&r, lf_tree_root(r.tree));
            /* dropped contents load again, the same */
            check(lf_image_drop_clean_contents(r.tree) >= 0, "contents do not drop");
            visit(&r, lf_tree_root(r.tree));
            bool all_read = true;
            for (size_t i = LF_IMAGE_FIRST_FILE_STREAM; i < r.count; i++)
                all_read = all_read && r.readable[i];
            if (all_read)
                write_again(&r, directory);
        }
    }
    for (size_t i = 0; i < r.count; i++)
        lf_buffer_free(&r.contents[i]);
    free(r.contents);
    free(r.readable);
    free(r.small);
    lf_buffer_free(&r.path);
    lf_tree_free(r.tree);
    lf_image_close(r.image);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The structure-aware mutator.  A byte mutation rarely survives the      */
/* image's structure (the table is a zstd frame, and it records every     */
/* stream's size), so half the mutations are made inside it: to one      */
/* stream's bytes, or to the decompressed table; then the image is put    */
/* back together (sizes, the table's frame, the superblock, checksums).   */

enum { MUTATION_ROOM = 1024, MAX_TABLE = 1 << 16 };

typedef struct table_entry {
    uint8_t kind;
    uint32_t checksum;
    uint64_t offset, stored_size, original_size, prefix_size;
    const uint8_t *prefix;
} table_entry;

/* Parses the image's stream table into *entries (count of them); false when
 * the input is not that far an image. */
static bool parse_layout(const uint8_t *data, size_t size, lf_buffer *table, table_entry **entries,
                         uint64_t *count)
{
    uint64_t table_offset = lf_bytes_load_u64(data + 24);
    if (table_offset < LF_IMAGE_SUPERBLOCK_SIZE || table_offset > size)
        return false;
    unsigned long long content = ZSTD_getFrameContentSize(data + table_offset, size - table_offset);
    if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN ||
        content > MAX_TABLE || lf_buffer_reserve(table, (size_t)content + MUTATION_ROOM) < 0)
        return false;
    size_t length = ZSTD_decompress(table->data, (size_t)content, data + table_offset,
                                    size - table_offset);
    if (ZSTD_isError(length))
        return false;
    table->length = length;
    lf_bytes_reader in = {.data = table->data, .size = length};
    if (lf_bytes_get_varint(&in, count) < 0 || *count > length || *count == 0)
        return false;
    *entries = calloc((size_t)*count, sizeof **entries);
    uint64_t offset = LF_IMAGE_SUPERBLOCK_SIZE;
    for (uint64_t i = 0; *entries && i < *count; i++) {
        table_entry *entry = &(*entries)[i];
        if (!lf_bytes_get(&in, &entry->kind, 1) || !lf_bytes_get_u32(&in, &entry->checksum) ||
            lf_bytes_get_varint(&in, &entry->stored_size) < 0 ||
            lf_bytes_get_varint(&in, &entry->original_size) < 0 ||
            lf_bytes_get_varint(&in, &entry->prefix_size) < 0 ||
            entry->prefix_size > in.size - in.position || entry->stored_size > table_offset - offset)
            return false;
        entry->prefix = table->data + in.position;
        in.position += (size_t)entry->prefix_size;
        entry->offset = offset;
        offset += entry->stored_size;
    }
    return *entries && offset == table_offset;
}

/* The image of the given superblock, streams and table, with the sizes and
 * checksums a reader checks. */
static bool assemble_image(const uint8_t *superblock, const lf_buffer *streams,
                           const lf_buffer *table, lf_buffer *out)
{
    size_t bound = ZSTD_compressBound(table->length);
    if (lf_buffer_append(out, superblock, LF_IMAGE_SUPERBLOCK_SIZE) < 0 ||
        lf_buffer_append(out, streams->data, streams->length) < 0 ||
        lf_buffer_reserve(out, bound) < 0)
        return false;
    size_t table_offset = out->length;
    size_t length = ZSTD_compress(out->data + table_offset, bound, table->data, table->length, 1);
    if (ZSTD_isError(length))
        return false;
    out->length += length;
    uint8_t *super = out->data;
    lf_bytes_store_u64(super + 24, table_offset);
    lf_bytes_store_u64(super + 32, length);
    lf_bytes_store_u64(super + 40, out->length);
    lf_bytes_store_u32(super + 48, XXH32(out->data + table_offset, length, 0));
    lf_bytes_store_u32(super + 60, XXH32(super, 60, 0));
    return true;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    if (seed % 2 || size < LF_IMAGE_SUPERBLOCK_SIZE)
        return LLVMFuzzerMutate(data, size, max_size);
    lf_buffer table = {0}, streams = {0}, new_table = {0}, out = {0};
    table_entry *entries = NULL;
    uint64_t count = 0;
    bool made = parse_layout(data, size, &table, &entries, &count);
    uint64_t table_offset = made ? lf_bytes_load_u64(data + 24) : 0;
    if (made && seed / 2 % 3 == 0) {
        /* the table's bytes, streams unchanged */
        table.length = LLVMFuzzerMutate(table.data, table.length, table.length + MUTATION_ROOM);
        made = lf_buffer_append(&streams, data + LF_IMAGE_SUPERBLOCK_SIZE,
                                (size_t)table_offset - LF_IMAGE_SUPERBLOCK_SIZE) == 0 &&
               assemble_image(data, &streams, &table, &out);
    } else if (made) {
        /* one stream's bytes, its sizes following (a stored stream's
         * original size is its stored size; an archive keeps its claim) */
        size_t chosen = (size_t)(seed / 6 % count);
        made = lf_bytes_put_varint(&new_table, count) == 0;
        for (size_t i = 0; made && i < count; i++) {
            table_entry *entry = &entries[i];
            size_t at = streams.length;
            made = lf_buffer_append(&streams, data + entry->offset, (size_t)entry->stored_size) == 0;
            if (made && i == chosen && lf_buffer_reserve(&streams, MUTATION_ROOM) == 0) {
                size_t length = LLVMFuzzerMutate(streams.data + at, (size_t)entry->stored_size,
                                                 (size_t)entry->stored_size + MUTATION_ROOM);
                streams.length = at + length;
                if (entry->kind == LF_IMAGE_STREAM_STORED)
                    entry->original_size = length;
                entry->stored_size = length;
                entry->checksum = XXH32(streams.data + at, length, 0);
            }
            made = made && lf_buffer_append(&new_table, &entry->kind, 1) == 0 &&
                   lf_bytes_put_u32(&new_table, entry->checksum) == 0 &&
                   lf_bytes_put_varint(&new_table, entry->stored_size) == 0 &&
                   lf_bytes_put_varint(&new_table, entry->original_size) == 0 &&
                   lf_bytes_put_varint(&new_table, entry->prefix_size) == 0 &&
                   lf_buffer_append(&new_table, entry->prefix, (size_t)entry->prefix_size) == 0;
        }
        made = made && assemble_image(data, &streams, &new_table, &out);
    }
    size_t result = made && out.length <= max_size ? out.length : 0;
    if (result)
        memcpy(data, out.data, result);
    lf_buffer_free(&table);
    lf_buffer_free(&streams);
    lf_buffer_free(&new_table);
    lf_buffer_free(&out);
    free(entries);
    return result ? result : LLVMFuzzerMutate(data, size, max_size);
}
