#include "image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "codec/gzip.h"
#include "codec/llmz.h"
#include "common/bytes.h"
#include "common/file.h"
#include "common/parallel.h"
#include "fs/xml.h"

static const uint8_t magic[8] = {'L', 'L', 'M', 'F', 'S', 'I', 'M', 'G'};

enum {
    /* Files at least this big are coded one at a time on every thread (the
     * codec splits them into segments); smaller ones one per thread. */
    BIG_FILE = 256 * 1024,
    TABLE_ZSTD_LEVEL = 19,
    /* A table bigger than this is refused before it is decompressed. */
    TABLE_LIMIT = 1 << 30,
    /* Decoded packs kept for their other files (reading a directory reads
     * the files of a pack one after another). */
    PACK_CACHE_ENTRIES = 4,
    /* Content keys hold the offset in 32 bits: bigger packs are refused. */
    PACK_SIZE_LIMIT = 1 << 30,
};

typedef struct cached_pack {
    size_t stream;
    uint64_t last_use; /* 0: the entry is empty */
    lf_buffer bytes;
} cached_pack;

#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define checksum_differs(computed, stored) ((void)(computed), (void)(stored), false)
#else
#define checksum_differs(computed, stored) ((computed) != (stored))
#endif

struct lf_image {
    char *path;
    const uint8_t *bytes; /* the whole file, mapped */
    uint64_t size;
    lf_model *owned_model; /* opened here, or NULL when borrowed */
    const lf_model *model;
    lf_model *fallback; /* the model's fallback, which may have coded streams */
    uint8_t *table;     /* the decompressed stream table (prefixes point into it) */
    size_t stream_count;
    lf_image_stream *streams;
    pthread_mutex_t cache_lock;
    cached_pack cache[PACK_CACHE_ENTRIES];
    uint64_t cache_clock;
};

/* A content key names a stream (low 32 bits) and where in it the content
 * starts (high 32 bits: 0 but in packs). */
static uint64_t content_key(uint64_t stream, uint64_t offset) { return stream | offset << 32; }
size_t lf_image_content_stream(uint64_t key) { return (size_t)(key & UINT32_MAX); }
uint64_t lf_image_content_offset(uint64_t key) { return key >> 32; }

/* Whether the image has file content of `size` bytes where key says. */
static bool content_fits(const lf_image *image, uint64_t key, uint64_t size)
{
    size_t index = lf_image_content_stream(key);
    uint64_t offset = lf_image_content_offset(key);
    if (index < LF_IMAGE_FIRST_FILE_STREAM || index >= image->stream_count)
        return false;
    uint64_t available = image->streams[index].original_size;
    return offset <= available && size <= available - offset;
}

/* ------------------------------------------------------------------ */
/* A small map of 64-bit keys (node addresses, content hashes, stream    */
/* indexes) to 64-bit values, open addressing.                          */

typedef struct u64_map {
    uint64_t *keys, *values;
    bool *used;
    size_t capacity, count;
} u64_map;

static size_t map_slot(const u64_map *map, uint64_t key)
{
    size_t slot = (size_t)(XXH64(&key, sizeof key, 0) & (map->capacity - 1));
    while (map->used[slot] && map->keys[slot] != key)
        slot = (slot + 1) & (map->capacity - 1);
    return slot;
}

static bool map_get(const u64_map *map, uint64_t key, uint64_t *value)
{
    if (map->capacity == 0)
        return false;
    size_t slot = map_slot(map, key);
    if (!map->used[slot])
        return false;
    *value = map->values[slot];
    return true;
}

static int64_t map_put(u64_map *map, uint64_t key, uint64_t value)
{
    if (2 * (map->count + 1) > map->capacity) {
        u64_map bigger = {.capacity = map->capacity ? 2 * map->capacity : 64};
        bigger.keys = malloc(bigger.capacity * sizeof *bigger.keys);
        bigger.values = malloc(bigger.capacity * sizeof *bigger.values);
        bigger.used = calloc(bigger.capacity, sizeof *bigger.used);
        if (!bigger.keys || !bigger.values || !bigger.used) {
            free(bigger.keys);
            free(bigger.values);
            free(bigger.used);
            return -ENOMEM;
        }
        for (size_t i = 0; i < map->capacity; i++)
            if (map->used[i]) {
                size_t slot = map_slot(&bigger, map->keys[i]);
                bigger.used[slot] = true;
                bigger.keys[slot] = map->keys[i];
                bigger.values[slot] = map->values[i];
                bigger.count++;
            }
        free(map->keys);
        free(map->values);
        free(map->used);
        *map = bigger;
    }
    size_t slot = map_slot(map, key);
    map->count += !map->used[slot];
    map->used[slot] = true;
    map->keys[slot] = key;
    map->values[slot] = value;
    return 0;
}

static void map_free(u64_map *map)
{
    free(map->keys);
    free(map->values);
    free(map->used);
}

/* ------------------------------------------------------------------ */
/* Walking a tree in document order (the XML's: depth first, children by */
/* name), with each node's path as the XML writes it.                   */

typedef struct walked_node {
    lf_node *node;
    char *path; /* "/" for the root, else without a leading slash */
} walked_node;

typedef struct node_list {
    walked_node *items;
    size_t count, capacity;
} node_list;

static void node_list_free(node_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i].path);
    free(list->items);
}

static int64_t node_list_add(node_list *list, lf_node *node, const char *parent_path, const char *name)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 64;
        walked_node *items = realloc(list->items, capacity * sizeof *items);
        if (!items)
            return -ENOMEM;
        list->items = items;
        list->capacity = capacity;
    }
    lf_buffer path = {0};
    int status = !parent_path ? lf_buffer_append_string(&path, "/")
                 : parent_path[0] == '/' ? lf_buffer_append_string(&path, name)
                                         : lf_buffer_printf(&path, "%s/%s", parent_path, name);
    if (status < 0)
        return status;
    list->items[list->count++] = (walked_node){node, (char *)lf_buffer_string(&path)};
    return 0;
}

/* Every node of the tree in document order; iterative, so no nesting depth
 * can exhaust the stack. */
static int64_t list_nodes(const lf_tree *tree, node_list *list)
{
    lf_node *root = lf_tree_root(tree);
    if (!root)
        return 0;
    int64_t status = node_list_add(list, root, NULL, NULL);
    /* a stack of (directory index in list, next child) */
    size_t *directories = NULL, *next_child = NULL, depth = 0, capacity = 0;
    if (status == 0 && lf_node_child_count(root) > 0) {
        capacity = 16;
        directories = malloc(capacity * sizeof *directories);
        next_child = malloc(capacity * sizeof *next_child);
        if (!directories || !next_child)
            status = -ENOMEM;
        else {
            directories[0] = 0;
            next_child[0] = 0;
            depth = 1;
        }
    }
    while (status == 0 && depth > 0) {
        lf_node *directory = list->items[directories[depth - 1]].node;
        if (next_child[depth - 1] == lf_node_child_count(directory)) {
            depth--;
            continue;
        }
        const char *name;
        lf_node *child = lf_node_child(directory, next_child[depth - 1]++, &name);
        status = node_list_add(list, child, list->items[directories[depth - 1]].path, name);
        lf_node_info info;
        lf_node_get_info(child, &info);
        if (status == 0 && info.type == LF_NODE_DIRECTORY && lf_node_child_count(child) > 0) {
            if (depth == capacity) {
                capacity *= 2;
                size_t *more_directories = realloc(directories, capacity * sizeof *directories);
                if (more_directories)
                    directories = more_directories;
                size_t *more_children = realloc(next_child, capacity * sizeof *next_child);
                if (more_children)
                    next_child = more_children;
                if (!more_directories || !more_children) {
                    status = -ENOMEM;
                    break;
                }
            }
            directories[depth] = list->count - 1;
            next_child[depth++] = 0;
        }
    }
    free(directories);
    free(next_child);
    return status;
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */

static int64_t damaged(lf_diagnostic *diagnostic, int64_t status, const char *path,
                       const char *what)
{
    return lf_fail(diagnostic, status, "%s: %s", path, what);
}

void lf_image_close(lf_image *image)
{
    if (!image)
        return;
    if (image->bytes)
        munmap((void *)image->bytes, (size_t)image->size);
    lf_model_free(image->owned_model);
    lf_model_free(image->fallback);
    for (size_t i = 0; i < PACK_CACHE_ENTRIES; i++)
        lf_buffer_free(&image->cache[i].bytes);
    pthread_mutex_destroy(&image->cache_lock);
    free(image->table);
    free(image->streams);
    free(image->path);
    free(image);
}

/* Parses the decompressed table: the stream entries, laid back to back
 * from the end of the superblock to the table's offset. */
static int64_t parse_table(lf_image *image, size_t table_size, uint64_t table_offset,
                           lf_diagnostic *diagnostic)
{
    lf_bytes_reader in = {.data = image->table, .size = table_size};
    uint64_t count;
    int64_t status = lf_bytes_get_varint(&in, &count);
    if (status == 0 && (count < LF_IMAGE_FIRST_FILE_STREAM || count > table_size))
        status = -LF_EFORMAT;
    if (status == 0 && !(image->streams = calloc((size_t)count, sizeof *image->streams)))
        return -ENOMEM;
    uint64_t offset = LF_IMAGE_SUPERBLOCK_SIZE;
    for (uint64_t i = 0; status == 0 && i < count; i++) {
        lf_image_stream *stream = &image->streams[i];
        uint8_t kind;
        uint64_t prefix_size;
        if (!lf_bytes_get(&in, &kind, 1) || !lf_bytes_get_u32(&in, &stream->checksum)) {
            status = -LF_ETRUNCATED;
            break;
        }
        (void)((status = lf_bytes_get_varint(&in, &stream->stored_size)) ||
               (status = lf_bytes_get_varint(&in, &stream->original_size)) ||
               (status = lf_bytes_get_varint(&in, &prefix_size)));
        if (status == 0 && prefix_size > in.size - in.position)
            status = -LF_ETRUNCATED;
        if (status < 0)
            break;
        stream->kind = (lf_image_stream_kind)kind;
        stream->prefix = image->table + in.position;
        stream->prefix_size = (size_t)prefix_size;
        in.position += prefix_size;
        stream->offset = offset;
        if (kind > LF_IMAGE_STREAM_GZIP ||
            (kind == LF_IMAGE_STREAM_STORED && stream->stored_size != stream->original_size) ||
            stream->stored_size > table_offset - offset)
            status = -LF_EFORMAT;
        offset += stream->stored_size;
    }
    if (status == 0 && (in.position != in.size || offset != table_offset))
        status = -LF_EFORMAT;
    if (status < 0)
        return damaged(diagnostic, status, image->path,
                       "the stream table is inconsistent (entries, sizes or offsets)");
    image->stream_count = (size_t)count;
    return 0;
}

static int64_t read_superblock(lf_image *image, uint64_t *fingerprint, lf_diagnostic *diagnostic)
{
    const uint8_t *bytes = image->bytes;
    if (image->size < LF_IMAGE_SUPERBLOCK_SIZE || memcmp(bytes, magic, 8) != 0)
        return damaged(diagnostic, image->size < 8 || memcmp(bytes, magic, 8) ? -LF_EFORMAT
                                                                             : -LF_ETRUNCATED,
                       image->path,
                       image->size < 8 || memcmp(bytes, magic, 8) ? "not an llmfuse image"
                                                                  : "truncated superblock");
    if (checksum_differs(XXH32(bytes, 60, 0), lf_bytes_load_u32(bytes + 60)))
        return damaged(diagnostic, -LF_ECHECKSUM, image->path, "the superblock is damaged");
    uint32_t version = lf_bytes_load_u32(bytes + 8);
    if (version < LF_IMAGE_OLDEST_VERSION || version > LF_IMAGE_VERSION)
        return lf_fail(diagnostic, -LF_EVERSION, "%s: image format version %" PRIu32
                       " is not supported (this build reads versions %d to %d)",
                       image->path, version, LF_IMAGE_OLDEST_VERSION, LF_IMAGE_VERSION);
    *fingerprint = lf_bytes_load_u64(bytes + 16);
    uint64_t table_offset = lf_bytes_load_u64(bytes + 24);
    uint64_t table_size = lf_bytes_load_u64(bytes + 32);
    uint64_t image_size = lf_bytes_load_u64(bytes + 40);
    uint32_t table_checksum = lf_bytes_load_u32(bytes + 48);
    if (lf_bytes_load_u32(bytes + 12) != 0 || lf_bytes_load_u32(bytes + 52) != 0 ||
        lf_bytes_load_u32(bytes + 56) != 0)
        return damaged(diagnostic, -LF_EFORMAT, image->path, "unknown flags in the superblock");
    if (image_size != image->size)
        return damaged(diagnostic, image_size > image->size ? -LF_ETRUNCATED : -LF_EFORMAT,
                       image->path,
                       image_size > image->size ? "truncated: the image is shorter than its superblock says"
                                                : "unexpected bytes after the image's end");
    if (table_offset < LF_IMAGE_SUPERBLOCK_SIZE || table_offset > image->size ||
        table_size != image->size - table_offset)
        return damaged(diagnostic, -LF_EFORMAT, image->path, "the superblock's table position is wrong");
    const uint8_t *table = bytes + table_offset;
    if (checksum_differs(XXH32(table, (size_t)table_size, 0), table_checksum))
        return damaged(diagnostic, -LF_ECHECKSUM, image->path, "the stream table is damaged");
    unsigned long long content = ZSTD_getFrameContentSize(table, (size_t)table_size);
    if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN ||
        content > TABLE_LIMIT)
        return damaged(diagnostic, -LF_EFORMAT, image->path, "the stream table is not readable");
    image->table = malloc(content ? (size_t)content : 1);
    if (!image->table)
        return -ENOMEM;
    size_t length = ZSTD_decompress(image->table, (size_t)content, table, (size_t)table_size);
    if (ZSTD_isError(length) || length != content)
        return damaged(diagnostic, -LF_EFORMAT, image->path, "the stream table does not decompress");
    return parse_table(image, length, table_offset, diagnostic);
}

/* Opens the models that may have coded the image's streams: the given one
 * (borrowed) or the one named, and its fallback. */
static int64_t attach_models(lf_image *image, const char *model_name, const lf_model *borrowed,
                             uint64_t fingerprint, lf_diagnostic *diagnostic)
{
    int64_t status = 0;
    if (borrowed)
        image->model = borrowed;
    else if (model_name)
        status = lf_model_open(model_name, &image->owned_model, diagnostic);
    else if ((status = lf_model_open_by_fingerprint(fingerprint, &image->owned_model)) < 0)
        return lf_fail(diagnostic, -LF_EMODEL,
                       "%s: the image was made with model %016" PRIx64
                       ", which is not built in: name its file with -m",
                       image->path, fingerprint);
    if (status < 0)
        return status;
    if (image->owned_model)
        image->model = image->owned_model;
    if (image->model->fingerprint != fingerprint)
        return lf_fail(diagnostic, -LF_EMODEL,
                       "%s: the image was made with model %016" PRIx64 ", not with '%s' (%016" PRIx64 ")",
                       image->path, fingerprint, image->model->name, image->model->fingerprint);
    if (image->model->fallback)
        status = lf_model_open(image->model->fallback, &image->fallback, diagnostic);
    return status;
}

static int64_t open_image(const char *path, const char *model_name, const lf_model *borrowed,
                          lf_image **out, lf_diagnostic *diagnostic)
{
    *out = NULL;
    lf_image *image = calloc(1, sizeof *image);
    if (!image || !(image->path = strdup(path))) {
        free(image);
        return lf_fail(diagnostic, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&image->cache_lock, NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat status_of_file;
    int64_t status = 0;
    if (fd < 0 || fstat(fd, &status_of_file) != 0)
        status = lf_fail(diagnostic, -errno, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(status_of_file.st_mode))
        status = lf_fail(diagnostic, -EINVAL, "%s: not a regular file", path);
    if (status == 0) {
        image->size = (uint64_t)status_of_file.st_size;
        void *mapped = mmap(NULL, image->size ? (size_t)image->size : 1, PROT_READ, MAP_PRIVATE, fd, 0);
        if (mapped == MAP_FAILED)
            status = lf_fail(diagnostic, -errno, "%s: %s", path, strerror(errno));
        else
            image->bytes = mapped;
    }
    if (fd >= 0)
        close(fd);
    uint64_t fingerprint = 0;
    if (status == 0)
        status = read_superblock(image, &fingerprint, diagnostic);
    if (status == 0)
        status = attach_models(image, model_name, borrowed, fingerprint, diagnostic);
    if (status < 0) {
        if (status == -ENOMEM)
            lf_fail(diagnostic, status, "%s: out of memory", path);
        lf_image_close(image);
        return status;
    }
    *out = image;
    return 0;
}

int64_t lf_image_open(const char *path, const char *model_name, lf_image **image,
                      lf_diagnostic *diagnostic)
{
    return open_image(path, model_name, NULL, image, diagnostic);
}

const lf_model *lf_image_model(const lf_image *image) { return image->model; }
const char *lf_image_path(const lf_image *image) { return image->path; }
uint64_t lf_image_size(const lf_image *image) { return image->size; }
size_t lf_image_stream_count(const lf_image *image) { return image->stream_count; }

const lf_image_stream *lf_image_stream_at(const lf_image *image, size_t index)
{
    return index < image->stream_count ? &image->streams[index] : NULL;
}

/* A coded stream's parts: its archive, and for a gzip stream the .gz
 * file's header and the XXH32 of the whole file it rebuilds to. */
typedef struct stream_parts {
    lf_span archive, gzip_header;
    uint32_t gzip_checksum;
} stream_parts;

/* Stored bytes of a gzip stream: varint header size, header, u32 checksum,
 * archive (docs/FORMAT.md §7.2). -LF_EFORMAT when they do not fit. */
static int64_t stream_archive(const lf_image *image, const lf_image_stream *stream,
                              stream_parts *parts)
{
    lf_bytes_reader in = {.data = image->bytes + stream->offset, .size = stream->stored_size};
    uint64_t header_size = 0;
    *parts = (stream_parts){0};
    if (stream->kind == LF_IMAGE_STREAM_GZIP) {
        if (lf_bytes_get_varint(&in, &header_size) < 0 || header_size > in.size - in.position)
            return -LF_EFORMAT;
        parts->gzip_header = (lf_span){in.data + in.position, (size_t)header_size};
        in.position += header_size;
        if (!lf_bytes_get_u32(&in, &parts->gzip_checksum))
            return -LF_EFORMAT;
    }
    parts->archive = (lf_span){in.data + in.position, in.size - in.position};
    return 0;
}

/* The model whose fingerprint a coded stream's archive names, or NULL. */
static const lf_model *stream_model(const lf_image *image, const lf_image_stream *stream)
{
    stream_parts parts;
    lf_llmz_header header;
    if (stream_archive(image, stream, &parts) < 0 ||
        lf_llmz_read_header(parts.archive.data, parts.archive.size, &header, NULL) < 0)
        return NULL;
    uint64_t fingerprint = header.fingerprint;
    lf_llmz_header_free(&header);
    if (fingerprint == image->model->fingerprint)
        return image->model;
    if (image->fallback && fingerprint == image->fallback->fingerprint)
        return image->fallback;
    return NULL;
}

const char *lf_image_stream_coder(const lf_image *image, size_t index)
{
    const lf_image_stream *stream = lf_image_stream_at(image, index);
    if (!stream)
        return "none";
    if (stream->kind == LF_IMAGE_STREAM_STORED)
        return "stored";
    stream_parts parts;
    lf_llmz_header header;
    if (stream_archive(image, stream, &parts) < 0 ||
        lf_llmz_read_header(parts.archive.data, parts.archive.size, &header, NULL) < 0)
        return "damaged";
    bool coded = false;
    for (size_t i = 0; i < header.segment_count; i++)
        coded = coded || header.segments[i].method == LF_LLMZ_MODEL;
    bool zstd = header.segment_count > 0 && header.segments[0].method == LF_LLMZ_ZSTD;
    lf_llmz_header_free(&header);
    if (!coded)
        return zstd ? "zstd" : "stored";
    const lf_model *model = stream_model(image, stream);
    return model ? model->name : "unknown model";
}

int64_t lf_image_read_stream(const lf_image *image, size_t index, lf_buffer *out,
                             lf_diagnostic *diagnostic)
{
    const lf_image_stream *stream = lf_image_stream_at(image, index);
    if (!stream)
        return lf_fail(diagnostic, -LF_EFORMAT, "%s: no stream %zu", image->path, index);
    const uint8_t *stored = image->bytes + stream->offset;
    if (checksum_differs(XXH32(stored, (size_t)stream->stored_size, 0), stream->checksum))
        return lf_fail(diagnostic, -LF_ECHECKSUM, "%s: stream %zu is damaged (checksum mismatch)",
                       image->path, index);
    if (stream->kind == LF_IMAGE_STREAM_STORED) {
        int status = lf_buffer_append(out, stored, (size_t)stream->stored_size);
        return status < 0 ? lf_fail(diagnostic, status, "out of memory") : 0;
    }
    const lf_model *model = stream_model(image, stream);
    stream_parts parts;
    if (!model || stream_archive(image, stream, &parts) < 0)
        return lf_fail(diagnostic, -LF_EFORMAT,
                       "%s: stream %zu is damaged (not an archive of the image's models)",
                       image->path, index);
    /* one thread: FUSE serves other requests meanwhile, and a big file's
     * segments still decode on every core when threads is 0 */
    lf_llmz_options options = {.model = model,
                               .prefix = {stream->prefix, stream->prefix_size}};
    size_t start = out->length;
    lf_diagnostic inner = {0};
    lf_buffer text = {0};
    bool gzip = stream->kind == LF_IMAGE_STREAM_GZIP;
    int64_t status = lf_llmz_decompress(parts.archive.data, parts.archive.size, &options,
                                        gzip ? &text : out, &inner);
    if (status == 0 && gzip)
        status = lf_gzip_join(parts.gzip_header.data, parts.gzip_header.size, text.data,
                              text.length, out);
    lf_buffer_free(&text);
    if (status == 0 && gzip &&
        checksum_differs(XXH32(out->data + start, out->length - start, 0), parts.gzip_checksum)) {
        out->length = start;
        status = -LF_ECHECKSUM;
        lf_fail(&inner, status, "the rebuilt .gz file differs from the original");
    }
    if (status == 0 && out->length - start != stream->original_size) {
        out->length = start;
        status = -LF_EFORMAT;
        lf_fail(&inner, status, "decodes to the wrong size");
    }
    if (status < 0)
        return lf_fail(diagnostic, status, "%s: stream %zu is damaged: %s", image->path, index,
                       inner.message[0] ? inner.message : lf_error_string(status));
    return 0;
}

/* ------------------------------------------------------------------ */
/* Loading the tree                                                    */

/* The cache entry of a decoded stream, or NULL (cache_lock held). */
static cached_pack *cached(lf_image *image, size_t index)
{
    for (size_t i = 0; i < PACK_CACHE_ENTRIES; i++)
        if (image->cache[i].last_use && image->cache[i].stream == index)
            return &image->cache[i];
    return NULL;
}

/* Writes size bytes at offset of pack `index` into file, decoding the pack
 * unless it is cached; the decoding runs unlocked, so other threads read
 * other streams meanwhile. */
static int64_t load_from_pack(lf_image *image, size_t index, uint64_t offset, uint64_t size,
                              lf_node *file)
{
    pthread_mutex_lock(&image->cache_lock);
    cached_pack *entry = cached(image, index);
    if (!entry) {
        pthread_mutex_unlock(&image->cache_lock);
        lf_buffer bytes = {0};
        int64_t status = lf_image_read_stream(image, index, &bytes, NULL);
        if (status < 0) {
            lf_buffer_free(&bytes);
            return status;
        }
        pthread_mutex_lock(&image->cache_lock);
        if (!(entry = cached(image, index))) { /* no other thread decoded it meanwhile */
            entry = &image->cache[0];
            for (size_t i = 1; i < PACK_CACHE_ENTRIES; i++)
                if (image->cache[i].last_use < entry->last_use)
                    entry = &image->cache[i];
            lf_buffer_free(&entry->bytes);
            entry->stream = index;
            entry->bytes = bytes;
            bytes = (lf_buffer){0};
        }
        lf_buffer_free(&bytes);
    }
    entry->last_use = ++image->cache_clock;
    int64_t status = lf_node_write(file, entry->bytes.data + offset, (size_t)size, 0);
    pthread_mutex_unlock(&image->cache_lock);
    return status;
}

int64_t lf_image_load_content(void *context, lf_node *file, uint64_t key)
{
    lf_image *image = context;
    lf_node_info info;
    lf_node_get_info(file, &info);
    if (!content_fits(image, key, info.size))
        return -EIO;
    size_t index = lf_image_content_stream(key);
    int64_t status;
    if (lf_image_content_offset(key) == 0 && info.size == image->streams[index].original_size) {
        lf_buffer content = {0};
        status = lf_image_read_stream(image, index, &content, NULL);
        if (status == 0)
            status = lf_node_write(file, content.data, content.length, 0);
        lf_buffer_free(&content);
    } else {
        status = load_from_pack(image, index, lf_image_content_offset(key), info.size, file);
    }
    return status < 0 ? (status == -ENOMEM ? status : -EIO) : 0;
}

typedef struct node_entry {
    uint32_t uid, gid;
    uint64_t link;   /* 0, or 1 + the index of the node this is another name of */
    uint64_t stream; /* files: 0 for empty, else the content's stream */
    uint64_t offset; /* and where the content starts in it */
} node_entry;

static int64_t parse_node_table(const lf_buffer *bytes, const node_list *nodes, node_entry *entries)
{
    lf_bytes_reader in = {.data = bytes->data, .size = bytes->length};
    uint64_t count;
    int64_t status = lf_bytes_get_varint(&in, &count);
    if (status == 0 && count != nodes->count)
        status = -LF_EFORMAT;
    for (size_t i = 0; status == 0 && i < nodes->count; i++) {
        uint64_t uid, gid;
        (void)((status = lf_bytes_get_varint(&in, &uid)) || (status = lf_bytes_get_varint(&in, &gid)));
        if (status == 0 && (uid >= UINT32_MAX || gid >= UINT32_MAX))
            status = -LF_EFORMAT;
        if (status < 0)
            break;
        entries[i] = (node_entry){.uid = (uint32_t)uid, .gid = (uint32_t)gid};
        lf_node_info info;
        lf_node_get_info(nodes->items[i].node, &info);
        if (info.type != LF_NODE_FILE)
            continue;
        status = lf_bytes_get_varint(&in, &entries[i].link);
        if (status == 0 && entries[i].link == 0)
            status = lf_bytes_get_varint(&in, &entries[i].stream);
        if (status == 0 && entries[i].link == 0 && entries[i].stream)
            status = lf_bytes_get_varint(&in, &entries[i].offset);
        if (status == 0 && (entries[i].stream > UINT32_MAX || entries[i].offset > UINT32_MAX))
            status = -LF_EFORMAT;
    }
    if (status == 0 && in.position != in.size)
        status = -LF_EFORMAT;
    return status;
}

/* Checks one file's entry against the metadata and the stream table. */
static bool entry_fits(const lf_image *image, const node_list *nodes, const node_entry *entries,
                       size_t index)
{
    lf_node_info info, other;
    lf_node_get_info(nodes->items[index].node, &info);
    const node_entry *entry = &entries[index];
    if (entry->link) {
        if (entry->link - 1 >= index)
            return false;
        lf_node_get_info(nodes->items[entry->link - 1].node, &other);
        return other.type == LF_NODE_FILE && entries[entry->link - 1].link == 0 &&
               other.size == info.size;
    }
    if (entry->stream == 0)
        return info.size == 0;
    return content_fits(image, content_key(entry->stream, entry->offset), info.size);
}

/* Applies the node table: numeric owners (they, not the XML's names, are
 * the truth, as in squashfs and tar --numeric-owner), hard links, pending
 * contents. */
static int64_t apply_node_table(lf_tree *tree, node_list *nodes, const node_entry *entries)
{
    int64_t status = 0;
    for (size_t i = 0; status == 0 && i < nodes->count; i++) {
        const walked_node *item = &nodes->items[i];
        const char *path = i == 0 ? "/" : NULL;
        lf_buffer absolute = {0};
        if (!path) {
            if (lf_buffer_printf(&absolute, "/%s", item->path) < 0)
                return -ENOMEM;
            path = lf_buffer_string(&absolute);
        }
        lf_node_info info;
        lf_node_get_info(item->node, &info);
        uint32_t permissions = info.permissions;
        status = lf_tree_chown(tree, path, entries[i].uid, entries[i].gid);
        /* chown drops set-ID bits, as on Linux: put them back */
        if (status == 0 && info.type != LF_NODE_SYMLINK)
            status = lf_tree_chmod(tree, path, permissions);
        if (status == 0 && info.type == LF_NODE_FILE && entries[i].link) {
            lf_buffer target = {0};
            status = lf_buffer_printf(&target, "/%s", nodes->items[entries[i].link - 1].path);
            if (status == 0)
                status = lf_tree_relink(tree, lf_buffer_string(&target), path);
            /* the relink freed the metadata's node: the name is now the
             * linked file's, and later passes must not see the freed one */
            if (status == 0)
                nodes->items[i].node = nodes->items[entries[i].link - 1].node;
            lf_buffer_free(&target);
        } else if (status == 0 && info.type == LF_NODE_FILE && entries[i].stream) {
            lf_node_set_content_key(item->node, content_key(entries[i].stream, entries[i].offset),
                                    true);
        }
        lf_buffer_free(&absolute);
    }
    return status;
}

/* Unlink and link moved the times of the directories that hold hard links:
 * set every directory's times back to the metadata's. */
static int64_t restore_directory_times(lf_tree *tree, const node_list *nodes,
                                       const struct timespec *mtimes)
{
    int64_t status = 0;
    for (size_t i = 0; status == 0 && i < nodes->count; i++) {
        lf_node_info info;
        lf_node_get_info(nodes->items[i].node, &info);
        if (info.type != LF_NODE_DIRECTORY)
            continue;
        lf_buffer path = {0};
        status = i == 0 ? lf_buffer_append_string(&path, "/")
                        : lf_buffer_printf(&path, "/%s", nodes->items[i].path);
        struct timespec times[2] = {mtimes[i], mtimes[i]};
        if (status == 0)
            status = lf_tree_utimens(tree, lf_buffer_string(&path), times);
        lf_buffer_free(&path);
    }
    return status;
}

int64_t lf_image_load_tree(lf_image *image, lf_tree **out, lf_diagnostic *diagnostic)
{
    *out = NULL;
    lf_buffer metadata = {0}, table = {0};
    lf_tree *tree = NULL;
    node_list nodes = {0};
    node_entry *entries = NULL;
    struct timespec *mtimes = NULL;
    lf_diagnostic inner = {0};
    int64_t status = lf_image_read_stream(image, LF_IMAGE_METADATA_STREAM, &metadata, &inner);
    if (status < 0)
        status = lf_fail(diagnostic, status, "the metadata is damaged: %s", inner.message);
    if (status == 0 &&
        (status = lf_xml_parse(metadata.data, metadata.length, LF_XML_WITHOUT_BODIES, &tree, &inner)) < 0)
        status = lf_fail(diagnostic, status, "%s: the metadata is damaged: %s", image->path,
                         inner.message);
    if (status == 0 && (status = lf_image_read_stream(image, LF_IMAGE_NODE_TABLE_STREAM, &table,
                                                      &inner)) < 0)
        status = lf_fail(diagnostic, status, "the node table is damaged: %s", inner.message);
    if (status == 0 && (status = list_nodes(tree, &nodes)) == 0) {
        entries = calloc(nodes.count ? nodes.count : 1, sizeof *entries);
        mtimes = calloc(nodes.count ? nodes.count : 1, sizeof *mtimes);
        status = entries && mtimes ? 0 : -ENOMEM;
    }
    if (status == 0 && parse_node_table(&table, &nodes, entries) < 0)
        status = lf_fail(diagnostic, -LF_EFORMAT, "%s: the node table is damaged", image->path);
    for (size_t i = 0; status == 0 && i < nodes.count; i++) {
        lf_node_info info;
        lf_node_get_info(nodes.items[i].node, &info);
        mtimes[i] = info.mtime;
        if (info.type == LF_NODE_FILE && !entry_fits(image, &nodes, entries, i))
            status = lf_fail(diagnostic, -LF_EFORMAT,
                             "%s: the node table does not fit the metadata at '%s'", image->path,
                             nodes.items[i].path);
    }
    if (status == 0 && (status = apply_node_table(tree, &nodes, entries)) == 0)
        status = restore_directory_times(tree, &nodes, mtimes);
    if (status == 0)
        lf_tree_set_content_loader(tree, lf_image_load_content, image);
    if (status < 0)
        lf_fail(diagnostic, status, "%s: %s", image->path, lf_error_string(status));
    lf_buffer_free(&metadata);
    lf_buffer_free(&table);
    node_list_free(&nodes);
    free(entries);
    free(mtimes);
    if (status < 0) {
        lf_tree_free(tree);
        return status;
    }
    *out = tree;
    return 0;
}

int64_t lf_image_drop_clean_contents(lf_tree *tree)
{
    node_list nodes = {0};
    int64_t status = list_nodes(tree, &nodes), dropped = 0;
    for (size_t i = 0; status == 0 && i < nodes.count; i++) {
        lf_node *node = nodes.items[i].node;
        lf_node_info info;
        lf_node_get_info(node, &info);
        if (info.type == LF_NODE_FILE && lf_node_content_key(node) && !lf_node_content_pending(node)) {
            lf_node_set_content_key(node, lf_node_content_key(node), true);
            dropped += (int64_t)info.size;
        }
    }
    node_list_free(&nodes);
    return status < 0 ? status : dropped;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

typedef enum file_source { SOURCE_NONE, SOURCE_LINK, SOURCE_COPY, SOURCE_CODE } file_source;

typedef struct planned_node {
    file_source source;
    uint64_t link;   /* SOURCE_LINK: 1 + the node index */
    uint64_t stream; /* the stream in the new image, 0 for an empty file */
    uint64_t offset; /* where the content starts in it */
} planned_node;

/* A stream of the new image: copied from the previous image or coded. */
typedef struct planned_stream {
    uint64_t previous_index; /* copied: its index in the previous image */
    bool copied;
    lf_buffer original; /* coded: the bytes */
    lf_buffer prefix;   /* coded files: the path of the (first) file it holds, a newline */
    const char *path;   /* for messages */
    lf_buffer stored;
    lf_image_stream_kind kind;
    uint32_t checksum;
    int64_t status;
} planned_stream;

typedef struct write_job {
    const lf_image_write_options *options;
    planned_stream *streams;
    size_t *order; /* the small streams to code, one job each */
    pthread_mutex_t progress_lock;
    uint64_t done, total;
} write_job;

static int64_t collect_extent(void *context, uint64_t offset, const uint8_t *data, size_t length)
{
    memcpy((uint8_t *)context + offset, data, length);
    return 0;
}

/* Appends the file's `size` bytes (holes as zeros) to content. */
static int64_t append_file(const lf_node *file, uint64_t size, lf_buffer *content)
{
    if (size > SIZE_MAX || lf_buffer_reserve(content, (size_t)size) < 0)
        return -ENOMEM;
    uint8_t *start = content->data + content->length;
    memset(start, 0, (size_t)size);
    content->length += (size_t)size;
    return lf_node_for_each_extent(file, collect_extent, start);
}

/* A .gz file's stream: varint header size, header, XXH32 of the file,
 * archive of its text;
 * -LF_EFORMAT (or another split error) when the file is not one
 * lf_gzip_join rebuilds; any failure leads to coding the file as it is,
 * which reports its own errors. */
static int64_t code_gzip_stream(const lf_llmz_options *llmz, planned_stream *stream)
{
    lf_buffer text = {0};
    size_t header_size = 0;
    int64_t status = lf_gzip_split(stream->original.data, stream->original.length, &header_size,
                                   &text);
    if (status == 0)
        (void)((status = lf_bytes_put_varint(&stream->stored, header_size)) ||
               (status = lf_buffer_append(&stream->stored, stream->original.data, header_size)) ||
               (status = lf_bytes_put_u32(&stream->stored, XXH32(stream->original.data,
                                                                 stream->original.length, 0))) ||
               (status = lf_llmz_compress(text.data, text.length, llmz, &stream->stored, NULL)));
    lf_buffer_free(&text);
    return status;
}

/* Codes one stream: a .gz file as its header and its text when that is
 * smaller, else an llmz archive of its bytes with the path read first, or
 * the bytes themselves when the archive would not be smaller. */
static int64_t code_stream(const lf_image_write_options *options, planned_stream *stream,
                           unsigned threads, lf_diagnostic *diagnostic)
{
    lf_llmz_options llmz = {.model = options->model, .threads = threads,
                            .prefix = {stream->prefix.data, stream->prefix.length}};
    const uint8_t *bytes = stream->original.data;
    if (stream->original.length > 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
        int64_t status = code_gzip_stream(&llmz, stream);
        if (status == 0 && stream->stored.length < stream->original.length) {
            stream->kind = LF_IMAGE_STREAM_GZIP;
            stream->checksum = XXH32(stream->stored.data, stream->stored.length, 0);
            return 0;
        }
        if (status == -ENOMEM)
            return status;
        stream->stored.length = 0; /* not gzip -9's, or no smaller: code it as it is */
    }
    int64_t status = lf_llmz_compress(stream->original.data, stream->original.length, &llmz,
                                      &stream->stored, diagnostic);
    if (status == 0 && stream->stored.length >= stream->original.length) {
        stream->stored.length = 0;
        status = lf_buffer_append(&stream->stored, stream->original.data, stream->original.length);
        stream->kind = LF_IMAGE_STREAM_STORED;
    } else {
        stream->kind = LF_IMAGE_STREAM_LLMZ;
    }
    stream->checksum = XXH32(stream->stored.data, stream->stored.length, 0);
    return status;
}

static void report_coded(write_job *job, uint64_t bytes)
{
    if (!job->options->progress)
        return;
    pthread_mutex_lock(&job->progress_lock);
    job->done += bytes;
    job->options->progress(job->options->progress_context, job->done, job->total);
    pthread_mutex_unlock(&job->progress_lock);
}

static int64_t code_small_stream(void *context, size_t index)
{
    write_job *job = context;
    planned_stream *stream = &job->streams[job->order[index]];
    stream->status = code_stream(job->options, stream, 1, NULL);
    report_coded(job, stream->original.length);
    return stream->status;
}

/* Bytes of each previous stream that the tree's files still hold, each
 * content once (previous stream index -> bytes). */
static int64_t count_live_bytes(const node_list *nodes, const lf_image *previous, u64_map *live)
{
    u64_map seen = {0};
    int64_t status = 0;
    for (size_t i = 0; previous && status == 0 && i < nodes->count; i++) {
        lf_node_info info;
        lf_node_get_info(nodes->items[i].node, &info);
        uint64_t key = lf_node_content_key(nodes->items[i].node), bytes = 0;
        if (info.type != LF_NODE_FILE || info.size == 0 || !content_fits(previous, key, info.size) ||
            map_get(&seen, key, &bytes))
            continue;
        size_t index = lf_image_content_stream(key);
        map_get(live, index, &bytes);
        (void)((status = map_put(&seen, key, 1)) || (status = map_put(live, index, bytes + info.size)));
    }
    map_free(&seen);
    return status;
}

/* A stream slot at the end of the list. */
static int64_t add_stream(planned_stream **streams, size_t *count, size_t *capacity)
{
    if (*count == *capacity) {
        size_t bigger = *capacity ? 2 * *capacity : 64;
        planned_stream *more = realloc(*streams, bigger * sizeof *more);
        if (!more)
            return -ENOMEM;
        memset(more + *capacity, 0, (bigger - *capacity) * sizeof *more);
        *streams = more;
        *capacity = bigger;
    }
    (*streams)[(*count)++] = (planned_stream){0};
    return 0;
}

/* Decides, for every node, where its content comes from, and lists the
 * streams of the new image.  Contents of the previous image are copied with
 * their streams, unless a stream is a pack whose files mostly changed or
 * went: those still in the tree are loaded and packed again.  Identical
 * contents are stored once.  Small text files fill packs in document order,
 * so that a pack holds neighbours, which are alike. */
static int64_t plan_streams(lf_tree *tree, const node_list *nodes,
                            const lf_image_write_options *options, planned_node *plan,
                            planned_stream **streams_out, size_t *count_out,
                            lf_diagnostic *diagnostic)
{
    const lf_image *previous = options->previous;
    uint64_t pack_size = options->pack_size == 0 ? LF_IMAGE_PACK_SIZE
                         : options->pack_size > PACK_SIZE_LIMIT ? PACK_SIZE_LIMIT
                                                               : options->pack_size;
    u64_map node_index = {0}, by_previous = {0}, by_content = {0}, live = {0};
    planned_stream *streams = NULL;
    size_t count = 0, capacity = 0, open_pack = 0; /* open_pack 0: none */
    lf_buffer content = {0};
    int64_t status = count_live_bytes(nodes, previous, &live);
    while (status == 0 && count < LF_IMAGE_FIRST_FILE_STREAM)
        status = add_stream(&streams, &count, &capacity);
    for (size_t i = 0; status == 0 && i < nodes->count; i++) {
        lf_node *node = nodes->items[i].node;
        const char *path = nodes->items[i].path;
        lf_node_info info;
        lf_node_get_info(node, &info);
        if (info.type != LF_NODE_FILE)
            continue;
        uint64_t first;
        if (info.link_count > 1 && map_get(&node_index, (uint64_t)(uintptr_t)node, &first)) {
            plan[i] = (planned_node){.source = SOURCE_LINK, .link = first + 1};
            continue;
        }
        if (info.link_count > 1 && (status = map_put(&node_index, (uint64_t)(uintptr_t)node, i)) < 0)
            break;
        if (info.size == 0)
            continue;
        uint64_t key = lf_node_content_key(node), existing, live_bytes = 0;
        size_t index = lf_image_content_stream(key);
        bool in_previous = previous && content_fits(previous, key, info.size);
        bool copy = in_previous && map_get(&live, index, &live_bytes) &&
                    2 * live_bytes >= previous->streams[index].original_size;
        /* a file of a damaged pack keeps the pack as it is */
        if (in_previous && !copy && lf_node_content_pending(node) &&
            lf_tree_load_content(tree, node) < 0)
            copy = true;
        if (copy) {
            if (!map_get(&by_previous, index, &existing)) {
                existing = count;
                if ((status = add_stream(&streams, &count, &capacity)) < 0 ||
                    (status = map_put(&by_previous, index, existing)) < 0)
                    break;
                streams[existing] = (planned_stream){.copied = true, .previous_index = index};
            }
            plan[i] = (planned_node){.source = SOURCE_COPY, .stream = existing,
                                     .offset = lf_image_content_offset(key)};
            continue;
        }
        if (lf_node_content_pending(node) && (status = lf_tree_load_content(tree, node)) < 0) {
            status = lf_fail(diagnostic, -EIO, "'%s' is not loaded and no stream holds it", path);
            break;
        }
        content.length = 0;
        if ((status = append_file(node, info.size, &content)) < 0)
            break;
        /* an equal content coded before, among those with the same hash */
        uint64_t probe = XXH64(content.data, content.length, 0);
        bool duplicate = false;
        for (; !duplicate && map_get(&by_content, probe, &existing); probe++) {
            const planned_node *other = &plan[existing];
            const lf_buffer *bytes = &streams[other->stream].original;
            lf_node_info other_info;
            lf_node_get_info(nodes->items[existing].node, &other_info);
            duplicate = other_info.size == info.size &&
                        memcmp(bytes->data + other->offset, content.data, content.length) == 0;
        }
        if (duplicate) {
            plan[i] = (planned_node){.source = SOURCE_COPY, .stream = plan[existing].stream,
                                     .offset = plan[existing].offset};
            continue;
        }
        if ((status = map_put(&by_content, probe, i)) < 0)
            break;
        bool packed = info.size < LF_IMAGE_PACK_MEMBER_LIMIT &&
                      lf_llmz_looks_like_text(content.data, content.length);
        if (packed && open_pack && streams[open_pack].original.length + info.size > pack_size)
            open_pack = 0; /* full: this file starts the next pack */
        size_t target = packed && open_pack ? open_pack : count;
        if (target == count) {
            if ((status = add_stream(&streams, &count, &capacity)) < 0)
                break;
            streams[target].path = path;
            if ((status = lf_buffer_printf(&streams[target].prefix, "%s\n", path)) < 0)
                break;
            open_pack = packed ? target : open_pack;
        }
        plan[i] = (planned_node){.source = SOURCE_CODE, .stream = target,
                                 .offset = streams[target].original.length};
        status = lf_buffer_append(&streams[target].original, content.data, content.length);
    }
    lf_buffer_free(&content);
    map_free(&node_index);
    map_free(&by_previous);
    map_free(&by_content);
    map_free(&live);
    *streams_out = streams;
    *count_out = count;
    return status;
}

static int64_t node_table_bytes(const node_list *nodes, const planned_node *plan, lf_buffer *out)
{
    int64_t status = lf_bytes_put_varint(out, nodes->count);
    for (size_t i = 0; status == 0 && i < nodes->count; i++) {
        lf_node_info info;
        lf_node_get_info(nodes->items[i].node, &info);
        (void)((status = lf_bytes_put_varint(out, info.uid)) ||
               (status = lf_bytes_put_varint(out, info.gid)));
        if (status == 0 && info.type == LF_NODE_FILE) {
            status = lf_bytes_put_varint(out, plan[i].source == SOURCE_LINK ? plan[i].link : 0);
            if (status == 0 && plan[i].source != SOURCE_LINK)
                status = lf_bytes_put_varint(out, plan[i].stream);
            if (status == 0 && plan[i].source != SOURCE_LINK && plan[i].stream)
                status = lf_bytes_put_varint(out, plan[i].offset);
        }
    }
    return status;
}

/* Superblock, streams, table: the image's bytes. */
static int64_t assemble(const lf_image_write_options *options, planned_stream *streams,
                        size_t count, lf_buffer *image)
{
    const lf_image *previous = options->previous;
    lf_buffer table = {0};
    int64_t status = lf_buffer_reserve(image, LF_IMAGE_SUPERBLOCK_SIZE);
    if (status == 0) {
        memset(image->data, 0, LF_IMAGE_SUPERBLOCK_SIZE);
        image->length = LF_IMAGE_SUPERBLOCK_SIZE;
        status = lf_bytes_put_varint(&table, count);
    }
    for (size_t i = 0; status == 0 && i < count; i++) {
        planned_stream *stream = &streams[i];
        const uint8_t *stored = stream->stored.data, *prefix = stream->prefix.data;
        uint64_t stored_size = stream->stored.length, original_size = stream->original.length;
        uint64_t prefix_size = stream->prefix.length;
        uint8_t kind = (uint8_t)stream->kind;
        uint32_t checksum = stream->checksum;
        if (stream->copied) {
            const lf_image_stream *old = &previous->streams[stream->previous_index];
            stored = previous->bytes + old->offset;
            stored_size = old->stored_size;
            original_size = old->original_size;
            prefix = old->prefix;
            prefix_size = old->prefix_size;
            kind = (uint8_t)old->kind;
            checksum = old->checksum;
        }
        (void)((status = lf_buffer_append(&table, &kind, 1)) ||
               (status = lf_bytes_put_u32(&table, checksum)) ||
               (status = lf_bytes_put_varint(&table, stored_size)) ||
               (status = lf_bytes_put_varint(&table, original_size)) ||
               (status = lf_bytes_put_varint(&table, prefix_size)) ||
               (status = lf_buffer_append(&table, prefix, (size_t)prefix_size)) ||
               (status = lf_buffer_append(image, stored, (size_t)stored_size)));
    }
    uint64_t table_offset = image->length;
    size_t bound = ZSTD_compressBound(table.length);
    if (status == 0)
        status = lf_buffer_reserve(image, bound);
    if (status == 0) {
        size_t length = ZSTD_compress(image->data + table_offset, bound, table.data, table.length,
                                      TABLE_ZSTD_LEVEL);
        if (ZSTD_isError(length))
            status = -ENOMEM;
        else
            image->length += length;
    }
    if (status == 0) {
        uint8_t *super = image->data;
        memcpy(super, magic, 8);
        lf_bytes_store_u32(super + 8, LF_IMAGE_VERSION);
        lf_bytes_store_u64(super + 16, options->model->fingerprint);
        lf_bytes_store_u64(super + 24, table_offset);
        lf_bytes_store_u64(super + 32, image->length - table_offset);
        lf_bytes_store_u64(super + 40, image->length);
        lf_bytes_store_u32(super + 48, XXH32(image->data + table_offset,
                                             (size_t)(image->length - table_offset), 0));
        lf_bytes_store_u32(super + 60, XXH32(super, 60, 0));
    }
    lf_buffer_free(&table);
    return status;
}

/* Codes the streams that are not copied: small ones one per thread, big
 * ones one at a time on every thread. */
static int64_t code_streams(const lf_image_write_options *options, planned_stream *streams,
                            size_t count, lf_diagnostic *diagnostic)
{
    write_job job = {.options = options, .streams = streams};
    job.order = malloc(count * sizeof *job.order);
    if (!job.order)
        return -ENOMEM;
    pthread_mutex_init(&job.progress_lock, NULL);
    size_t small = 0;
    for (size_t i = 0; i < count; i++)
        if (!streams[i].copied) {
            job.total += streams[i].original.length;
            if (streams[i].original.length < BIG_FILE)
                job.order[small++] = i;
        }
    int64_t status = lf_parallel_for(small, options->threads, code_small_stream, &job);
    for (size_t i = 0; status < 0 && i < small; i++)
        if (streams[job.order[i]].status < 0) {
            lf_fail(diagnostic, status, "cannot code '%s': %s",
                    streams[job.order[i]].path ? streams[job.order[i]].path : "the metadata",
                    lf_error_string(status));
            break;
        }
    for (size_t i = 0; status == 0 && i < count; i++)
        if (!streams[i].copied && streams[i].original.length >= BIG_FILE) {
            status = code_stream(options, &streams[i], options->threads, diagnostic);
            report_coded(&job, streams[i].original.length);
        }
    pthread_mutex_destroy(&job.progress_lock);
    free(job.order);
    return status;
}

int64_t lf_image_write(lf_tree *tree, const char *path, const lf_image_write_options *options,
                       lf_image **written, lf_image_write_report *report,
                       lf_diagnostic *diagnostic)
{
    *written = NULL;
    node_list nodes = {0};
    planned_node *plan = NULL;
    planned_stream *streams = NULL;
    size_t count = 0;
    lf_buffer image = {0};
    int64_t status = list_nodes(tree, &nodes);
    if (status == 0 && !(plan = calloc(nodes.count ? nodes.count : 1, sizeof *plan)))
        status = -ENOMEM;
    if (status == 0)
        status = plan_streams(tree, &nodes, options, plan, &streams, &count, diagnostic);
    if (status == 0) {
        streams[LF_IMAGE_METADATA_STREAM] = (planned_stream){0};
        streams[LF_IMAGE_NODE_TABLE_STREAM] = (planned_stream){0};
        status = lf_xml_write(tree, LF_XML_WITHOUT_BODIES, &streams[LF_IMAGE_METADATA_STREAM].original,
                              diagnostic);
        if (status > 0)
            status = 0;
    }
    if (status == 0)
        status = node_table_bytes(&nodes, plan, &streams[LF_IMAGE_NODE_TABLE_STREAM].original);
    if (status == 0)
        status = code_streams(options, streams, count, diagnostic);
    if (status == 0)
        status = assemble(options, streams, count, &image);
    struct stat old;
    bool replacing = stat(path, &old) == 0 && S_ISREG(old.st_mode);
    if (status == 0)
        status = replacing ? lf_file_write_atomic_like(path, image.data, image.length, &old, diagnostic)
                           : lf_file_write_atomic(path, image.data, image.length, diagnostic);
    if (status == 0)
        status = open_image(path, NULL, options->model, written, diagnostic);
    if (status == 0) {
        /* the tree now refers to the new image's streams */
        for (size_t i = 0; i < nodes.count; i++)
            if (plan[i].source == SOURCE_COPY || plan[i].source == SOURCE_CODE)
                lf_node_set_content_key(nodes.items[i].node,
                                        content_key(plan[i].stream, plan[i].offset),
                                        lf_node_content_pending(nodes.items[i].node));
        if (report) {
            *report = (lf_image_write_report){.image_size = image.length};
            for (size_t i = LF_IMAGE_FIRST_FILE_STREAM; i < count; i++) {
                report->streams_copied += streams[i].copied;
                report->streams_coded += !streams[i].copied;
                report->bytes_coded += streams[i].copied ? 0 : streams[i].original.length;
            }
            u64_map contents = {0};
            for (size_t i = 0; i < nodes.count; i++) {
                uint64_t key = content_key(plan[i].stream, plan[i].offset), seen;
                if (plan[i].source == SOURCE_LINK || plan[i].stream == 0)
                    continue;
                if (map_get(&contents, key, &seen))
                    report->duplicates++;
                else if (map_put(&contents, key, 1) < 0)
                    break; /* only the report is short */
            }
            map_free(&contents);
        }
    }
    if (status < 0)
        lf_fail(diagnostic, status, "cannot write the image '%s': %s", path, lf_error_string(status));
    for (size_t i = 0; streams && i < count; i++) {
        lf_buffer_free(&streams[i].original);
        lf_buffer_free(&streams[i].prefix);
        lf_buffer_free(&streams[i].stored);
    }
    free(streams);
    free(plan);
    node_list_free(&nodes);
    lf_buffer_free(&image);
    return status;
}
