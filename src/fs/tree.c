#include "fs/tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/users.h"

/* File content is a sorted array of fixed-size chunks; a missing chunk is a
 * hole that reads as zeros, which makes sparse files cheap and keeps every
 * lookup a binary search. */
enum { CHUNK_SIZE = 4096 };

typedef struct lf_chunk {
    uint64_t index; /* offset / CHUNK_SIZE */
    uint8_t *data;  /* CHUNK_SIZE bytes */
} lf_chunk;

typedef struct lf_entry {
    char *name;
    lf_node *node;
} lf_entry;

struct lf_node {
    lf_node_type type;
    uint32_t permissions;
    uint32_t uid, gid;
    char *owner, *group;
    struct timespec atime, mtime, ctime;
    uint32_t link_count;
    uint64_t inode_number;

    /* directories: one parent (NULL for the root); entries in the state's
     * order (docs/FORMAT.md §1.2: newest first), and by_name, the indexes of
     * the entries sorted by name, for lookups */
    lf_node *parent;
    lf_entry *entries;
    size_t *by_name;
    size_t entry_count, entry_capacity;

    /* files */
    uint64_t size;
    lf_chunk *chunks;
    size_t chunk_count, chunk_capacity;
    /* The stream the content equals (0: none) and whether the content is
     * out of memory; a pending file has no chunks.  See tree.h. */
    uint64_t content_key;
    bool content_pending;

    /* The owning tree, so that content changes made through lf_node_* keep
     * the tree's chunk count (statfs usage) right without a tree argument. */
    lf_tree *tree;

    /* symlinks */
    char *target;
};

struct lf_tree {
    lf_node *root;
    uint64_t next_inode_number;
    uint64_t node_count;
    uint64_t chunk_count; /* chunks held by all files: memory in use */
    lf_tree_clock_fn clock;
    void *clock_context;
    uint32_t uid, gid;
    lf_tree_content_loader_fn loader;
    void *loader_context;
    bool loading; /* a loader is running: path operations must not recurse */
};

/* ------------------------------------------------------------------ */
/* Tree and node lifetime                                              */

static void realtime_clock(void *context, struct timespec *now)
{
    (void)context;
    clock_gettime(CLOCK_REALTIME, now);
}

lf_tree *lf_tree_new(void)
{
    lf_tree *tree = calloc(1, sizeof *tree);
    if (!tree)
        return NULL;
    tree->next_inode_number = 1;
    tree->clock = realtime_clock;
    return tree;
}

void lf_tree_set_clock(lf_tree *tree, lf_tree_clock_fn clock, void *context)
{
    tree->clock = clock ? clock : realtime_clock;
    tree->clock_context = context;
}

void lf_tree_set_credentials(lf_tree *tree, uint32_t uid, uint32_t gid)
{
    tree->uid = uid;
    tree->gid = gid;
}

static struct timespec tree_now(lf_tree *tree)
{
    struct timespec now;
    tree->clock(tree->clock_context, &now);
    return now;
}

static void free_node(lf_tree *tree, lf_node *node)
{
    for (size_t i = 0; i < node->chunk_count; i++)
        free(node->chunks[i].data);
    tree->chunk_count -= node->chunk_count;
    tree->node_count--;
    free(node->chunks);
    free(node->entries);
    free(node->by_name);
    free(node->owner);
    free(node->group);
    free(node->target);
    free(node);
}

/* Drops one name of a non-directory node; the node goes with its last name. */
static void release_link(lf_tree *tree, lf_node *node)
{
    if (--node->link_count == 0)
        free_node(tree, node);
}

/* Iterative post-order walk so that arbitrarily deep trees (from XML) cannot
 * exhaust the stack. */
static void free_subtree(lf_tree *tree, lf_node *top)
{
    lf_node *stop = top->parent;
    lf_node *node = top;
    while (node != stop) {
        if (node->type == LF_NODE_DIRECTORY && node->entry_count > 0) {
            lf_entry entry = node->entries[--node->entry_count];
            free(entry.name);
            if (entry.node->type == LF_NODE_DIRECTORY)
                node = entry.node;
            else
                release_link(tree, entry.node);
            continue;
        }
        lf_node *parent = node->parent;
        free_node(tree, node);
        node = parent;
    }
}

void lf_tree_free(lf_tree *tree)
{
    if (!tree)
        return;
    if (tree->root)
        free_subtree(tree, tree->root);
    free(tree);
}

static int set_string(char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return -ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

/* Sets an owner or group id together with its name from the system. */
static int set_identity(uint32_t *id_field, char **name_field, uint32_t id,
                        int (*name_of)(uint32_t id, char *name, size_t size))
{
    char name[64];
    name_of(id, name, sizeof name);
    int status = set_string(name_field, name);
    if (status == 0)
        *id_field = id;
    return status;
}

static int set_owner(lf_node *node, uint32_t uid)
{
    return set_identity(&node->uid, &node->owner, uid, lf_users_user_name);
}

static int set_group(lf_node *node, uint32_t gid)
{
    return set_identity(&node->gid, &node->group, gid, lf_users_group_name);
}

/* A detached node with the given attributes; names default from the ids. */
static int64_t new_node(lf_tree *tree, const lf_node_info *attributes, lf_node **out)
{
    lf_node *node = calloc(1, sizeof *node);
    if (!node)
        return -ENOMEM;
    tree->node_count++;
    node->tree = tree;
    node->type = attributes->type;
    node->permissions = attributes->permissions & 07777;
    node->uid = attributes->uid;
    node->gid = attributes->gid;
    node->atime = attributes->atime;
    node->mtime = attributes->mtime;
    node->ctime = attributes->ctime;
    node->link_count = attributes->type == LF_NODE_DIRECTORY ? 2 : 1;
    node->inode_number = tree->next_inode_number++;
    int status = 0;
    if (attributes->owner)
        status = set_string(&node->owner, attributes->owner);
    else
        status = set_owner(node, attributes->uid);
    if (status == 0 && attributes->group)
        status = set_string(&node->group, attributes->group);
    else if (status == 0)
        status = set_group(node, attributes->gid);
    if (status == 0 && attributes->type == LF_NODE_SYMLINK) {
        status = set_string(&node->target, attributes->symlink_target ? attributes->symlink_target : "");
        node->size = strlen(node->target);
    }
    if (status < 0) {
        free_node(tree, node);
        return status;
    }
    *out = node;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Directory entries                                                   */

/* The rank of name among the entries sorted by name, or the rank it would
 * take (with *found false). */
static size_t name_rank(const lf_node *directory, const char *name, bool *found)
{
    size_t low = 0, high = directory->entry_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        int order = strcmp(directory->entries[directory->by_name[middle]].name, name);
        if (order == 0) {
            *found = true;
            return middle;
        }
        if (order < 0)
            low = middle + 1;
        else
            high = middle;
    }
    *found = false;
    return low;
}

lf_node *lf_node_lookup(const lf_node *directory, const char *name)
{
    if (directory->type != LF_NODE_DIRECTORY)
        return NULL;
    bool found;
    size_t rank = name_rank(directory, name, &found);
    return found ? directory->entries[directory->by_name[rank]].node : NULL;
}

/* Where attach puts an entry: an operation puts its new name first, as a
 * newest-first directory lists it; building from a document, a scan or an
 * image keeps their order by appending. */
enum { NEWEST_FIRST = 0 };
static size_t appended(const lf_node *directory) { return directory->entry_count; }

/* Links node under name (which must be absent) at position in the entries'
 * order (at most entry_count); keeps link counts. */
static int64_t attach(lf_node *directory, const char *name, lf_node *node, size_t position)
{
    bool found;
    size_t rank = name_rank(directory, name, &found);
    if (found)
        return -EEXIST;
    if (directory->entry_count == directory->entry_capacity) {
        size_t capacity = directory->entry_capacity ? directory->entry_capacity * 2 : 8;
        lf_entry *entries = realloc(directory->entries, capacity * sizeof *entries);
        if (!entries)
            return -ENOMEM;
        directory->entries = entries;
        size_t *by_name = realloc(directory->by_name, capacity * sizeof *by_name);
        if (!by_name)
            return -ENOMEM;
        directory->by_name = by_name;
        directory->entry_capacity = capacity;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    size_t count = directory->entry_count;
    memmove(&directory->entries[position + 1], &directory->entries[position],
            (count - position) * sizeof *directory->entries);
    directory->entries[position] = (lf_entry){copy, node};
    for (size_t i = 0; i < count; i++)
        directory->by_name[i] += directory->by_name[i] >= position;
    memmove(&directory->by_name[rank + 1], &directory->by_name[rank],
            (count - rank) * sizeof *directory->by_name);
    directory->by_name[rank] = position;
    directory->entry_count++;
    if (node->type == LF_NODE_DIRECTORY) {
        node->parent = directory;
        directory->link_count++; /* the child's ".." */
    }
    return 0;
}

/* Unlinks name from directory and returns its node (not freed) and, in
 * *position if not NULL, where its entry was. */
static lf_node *detach(lf_node *directory, const char *name, size_t *position)
{
    bool found;
    size_t rank = name_rank(directory, name, &found);
    if (!found)
        return NULL;
    size_t index = directory->by_name[rank], count = directory->entry_count;
    lf_node *node = directory->entries[index].node;
    free(directory->entries[index].name);
    memmove(&directory->entries[index], &directory->entries[index + 1],
            (count - index - 1) * sizeof *directory->entries);
    memmove(&directory->by_name[rank], &directory->by_name[rank + 1],
            (count - rank - 1) * sizeof *directory->by_name);
    directory->entry_count--;
    for (size_t i = 0; i < directory->entry_count; i++)
        directory->by_name[i] -= directory->by_name[i] > index;
    if (position)
        *position = index;
    if (node->type == LF_NODE_DIRECTORY) {
        node->parent = NULL;
        directory->link_count--;
    }
    return node;
}

static int64_t check_name(const char *name)
{
    size_t length = strlen(name);
    if (length == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -EINVAL;
    if (length > LF_TREE_NAME_MAX)
        return -ENAMETOOLONG;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Building and walking                                                */

int64_t lf_tree_make_root(lf_tree *tree, const lf_node_info *attributes, lf_node **root)
{
    if (tree->root)
        return -EEXIST;
    lf_node_info directory = *attributes;
    directory.type = LF_NODE_DIRECTORY;
    lf_node *node;
    int64_t status = new_node(tree, &directory, &node);
    if (status < 0)
        return status;
    tree->root = node;
    if (root)
        *root = node;
    return 0;
}

lf_node *lf_tree_root(const lf_tree *tree) { return tree->root; }

static int64_t add_node_at(lf_tree *tree, lf_node *parent, const char *name,
                           const lf_node_info *attributes, size_t position, lf_node **node)
{
    if (parent->type != LF_NODE_DIRECTORY)
        return -ENOTDIR;
    int64_t status = check_name(name);
    if (status < 0)
        return status;
    if (lf_node_lookup(parent, name))
        return -EEXIST;
    lf_node *child;
    status = new_node(tree, attributes, &child);
    if (status < 0)
        return status;
    status = attach(parent, name, child, position);
    if (status < 0) {
        free_node(tree, child);
        return status;
    }
    if (node)
        *node = child;
    return 0;
}

int64_t lf_tree_add_node(lf_tree *tree, lf_node *parent, const char *name,
                         const lf_node_info *attributes, lf_node **node)
{
    return add_node_at(tree, parent, name, attributes, appended(parent), node);
}

static int64_t add_link_at(lf_node *parent, const char *name, lf_node *file, size_t position)
{
    if (parent->type != LF_NODE_DIRECTORY)
        return -ENOTDIR;
    if (file->type == LF_NODE_DIRECTORY)
        return -EPERM;
    int64_t status = check_name(name);
    if (status < 0)
        return status;
    status = attach(parent, name, file, position);
    if (status == 0)
        file->link_count++;
    return status;
}

int64_t lf_tree_add_link(lf_tree *tree, lf_node *parent, const char *name, lf_node *file)
{
    (void)tree;
    return add_link_at(parent, name, file, appended(parent));
}

void lf_node_get_info(const lf_node *node, lf_node_info *info)
{
    *info = (lf_node_info){
        .type = node->type,
        .permissions = node->permissions,
        .uid = node->uid,
        .gid = node->gid,
        .owner = node->owner,
        .group = node->group,
        .atime = node->atime,
        .mtime = node->mtime,
        .ctime = node->ctime,
        .size = node->type == LF_NODE_DIRECTORY ? 0 : node->size,
        .link_count = node->link_count,
        .inode_number = node->inode_number,
        .symlink_target = node->target,
    };
}

size_t lf_node_child_count(const lf_node *directory)
{
    return directory->type == LF_NODE_DIRECTORY ? directory->entry_count : 0;
}

lf_node *lf_node_child(const lf_node *directory, size_t index, const char **name)
{
    if (directory->type != LF_NODE_DIRECTORY || index >= directory->entry_count)
        return NULL;
    if (name)
        *name = directory->entries[index].name;
    return directory->entries[index].node;
}

lf_node *lf_node_child_by_name(const lf_node *directory, size_t rank, const char **name)
{
    if (directory->type != LF_NODE_DIRECTORY || rank >= directory->entry_count)
        return NULL;
    return lf_node_child(directory, directory->by_name[rank], name);
}

/* ------------------------------------------------------------------ */
/* File content                                                        */

static size_t chunk_position(const lf_node *file, uint64_t index, bool *found)
{
    size_t low = 0, high = file->chunk_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (file->chunks[middle].index == index) {
            *found = true;
            return middle;
        }
        if (file->chunks[middle].index < index)
            low = middle + 1;
        else
            high = middle;
    }
    *found = false;
    return low;
}

int64_t lf_node_read(const lf_node *file, void *buffer, size_t size, uint64_t offset)
{
    if (file->type == LF_NODE_DIRECTORY)
        return -EISDIR;
    if (file->type != LF_NODE_FILE)
        return -EINVAL;
    if (offset >= file->size)
        return 0;
    if (size > file->size - offset)
        size = (size_t)(file->size - offset);
    uint8_t *out = buffer;
    size_t done = 0;
    while (done < size) {
        uint64_t position = offset + done;
        uint64_t index = position / CHUNK_SIZE;
        size_t within = (size_t)(position % CHUNK_SIZE);
        size_t piece = CHUNK_SIZE - within;
        if (piece > size - done)
            piece = size - done;
        bool found;
        size_t slot = chunk_position(file, index, &found);
        if (found)
            memcpy(out + done, file->chunks[slot].data + within, piece);
        else
            memset(out + done, 0, piece);
        done += piece;
    }
    return (int64_t)size;
}

/* The chunk holding `index`, allocated zeroed when absent. */
static uint8_t *chunk_for_write(lf_node *file, uint64_t index)
{
    bool found;
    size_t slot = chunk_position(file, index, &found);
    if (found)
        return file->chunks[slot].data;
    if (file->chunk_count == file->chunk_capacity) {
        size_t capacity = file->chunk_capacity ? file->chunk_capacity * 2 : 4;
        lf_chunk *chunks = realloc(file->chunks, capacity * sizeof *chunks);
        if (!chunks)
            return NULL;
        file->chunks = chunks;
        file->chunk_capacity = capacity;
    }
    uint8_t *data = calloc(1, CHUNK_SIZE);
    if (!data)
        return NULL;
    memmove(&file->chunks[slot + 1], &file->chunks[slot],
            (file->chunk_count - slot) * sizeof *file->chunks);
    file->chunks[slot] = (lf_chunk){index, data};
    file->chunk_count++;
    file->tree->chunk_count++;
    return data;
}

static int64_t write_content(lf_node *file, const void *data, size_t size, uint64_t offset)
{
    if (file->type == LF_NODE_DIRECTORY)
        return -EISDIR;
    if (file->type != LF_NODE_FILE)
        return -EINVAL;
    if (size == 0)
        return 0;
    if (offset >= LF_TREE_MAX_FILE_SIZE)
        return -EFBIG;
    if (size > LF_TREE_MAX_FILE_SIZE - offset)
        size = (size_t)(LF_TREE_MAX_FILE_SIZE - offset); /* a short write, as the kernel does */
    const uint8_t *in = data;
    size_t done = 0;
    while (done < size) {
        uint64_t position = offset + done;
        size_t within = (size_t)(position % CHUNK_SIZE);
        size_t piece = CHUNK_SIZE - within;
        if (piece > size - done)
            piece = size - done;
        uint8_t *chunk = chunk_for_write(file, position / CHUNK_SIZE);
        if (!chunk)
            break;
        memcpy(chunk + within, in + done, piece);
        done += piece;
        if (offset + done > file->size)
            file->size = offset + done;
    }
    if (done == 0)
        return -ENOMEM;
    file->content_key = 0; /* the bytes no longer (necessarily) equal the stream */
    return (int64_t)done;
}

int64_t lf_node_write(lf_node *file, const void *data, size_t size, uint64_t offset)
{
    return write_content(file, data, size, offset);
}

/* Frees a file's content (its size is kept). */
static void drop_chunks(lf_node *file)
{
    for (size_t i = 0; i < file->chunk_count; i++)
        free(file->chunks[i].data);
    file->tree->chunk_count -= file->chunk_count;
    free(file->chunks);
    file->chunks = NULL;
    file->chunk_count = 0;
    file->chunk_capacity = 0;
}

static int64_t resize_content(lf_node *file, uint64_t size)
{
    if (file->type == LF_NODE_DIRECTORY)
        return -EISDIR;
    if (file->type != LF_NODE_FILE)
        return -EINVAL;
    if (size > LF_TREE_MAX_FILE_SIZE)
        return -EFBIG;
    if (size < file->size) {
        /* Drop whole chunks past the end and zero the tail of the last one,
         * so that growing the file again reads zeros there. */
        uint64_t keep = (size + CHUNK_SIZE - 1) / CHUNK_SIZE;
        size_t kept = file->chunk_count;
        while (kept > 0 && file->chunks[kept - 1].index >= keep) {
            free(file->chunks[--kept].data);
            file->tree->chunk_count--;
        }
        file->chunk_count = kept;
        if (size % CHUNK_SIZE && kept > 0 && file->chunks[kept - 1].index == size / CHUNK_SIZE) {
            size_t within = (size_t)(size % CHUNK_SIZE);
            memset(file->chunks[kept - 1].data + within, 0, CHUNK_SIZE - within);
        }
    }
    if (size != file->size)
        file->content_key = 0;
    file->size = size;
    return 0;
}

int64_t lf_node_set_size(lf_node *file, uint64_t size)
{
    return resize_content(file, size);
}

int64_t lf_node_for_each_extent(const lf_node *file,
                                int64_t (*visit)(void *context, uint64_t offset,
                                                 const uint8_t *data, size_t length),
                                void *context)
{
    if (file->type != LF_NODE_FILE)
        return -EINVAL;
    for (size_t i = 0; i < file->chunk_count; i++) {
        uint64_t offset = file->chunks[i].index * CHUNK_SIZE;
        uint64_t length = file->size - offset < CHUNK_SIZE ? file->size - offset : CHUNK_SIZE;
        int64_t status = visit(context, offset, file->chunks[i].data, (size_t)length);
        if (status < 0)
            return status;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Content backed by stored streams                                    */

void lf_tree_set_content_loader(lf_tree *tree, lf_tree_content_loader_fn loader, void *context)
{
    tree->loader = loader;
    tree->loader_context = context;
}

void lf_node_set_content_key(lf_node *file, uint64_t key, bool pending)
{
    if (file->type != LF_NODE_FILE)
        return;
    file->content_key = key;
    if (pending && key != 0) {
        drop_chunks(file);
        file->content_pending = true;
    }
}

uint64_t lf_node_content_key(const lf_node *file)
{
    return file->type == LF_NODE_FILE ? file->content_key : 0;
}

bool lf_node_content_pending(const lf_node *file)
{
    return file->type == LF_NODE_FILE && file->content_pending;
}

int64_t lf_tree_load_content(lf_tree *tree, lf_node *file)
{
    if (file->type != LF_NODE_FILE || !file->content_pending)
        return 0;
    if (tree->loading)
        return -EDEADLK;
    if (!tree->loader)
        return -EIO;
    /* The loader fills the file through lf_node_write, which clears the key
     * as for any write: keep it and the size here and restore them after. */
    uint64_t key = file->content_key, size = file->size;
    tree->loading = true;
    int64_t status = tree->loader(tree->loader_context, file, key);
    tree->loading = false;
    if (status >= 0 && file->size != size)
        status = -EIO; /* a stream longer or shorter than the file is not its content */
    if (status < 0) {
        drop_chunks(file);
        file->size = size;
        file->content_key = key;
        return status;
    }
    file->content_key = key;
    file->content_pending = false;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Path resolution                                                     */

enum {
    RESOLVE_FOLLOW = 1, /* follow a symlink in the final component */
    RESOLVE_PARENT = 2, /* the caller creates or removes the final name: a
                           trailing slash does not force following */
};

typedef enum last_kind { LAST_NORMAL, LAST_DOT, LAST_DOTDOT, LAST_ROOT } last_kind;

typedef struct resolution {
    lf_node *parent; /* directory holding the final component */
    lf_node *node;   /* the final node, NULL when the name is absent */
    char name[LF_TREE_NAME_MAX + 1];
    last_kind kind;
    bool trailing_slash;
    /* -ENAMETOOLONG when the final name cannot exist. Linux reports it only
     * when it looks that name up, after checks on the parents, so operations
     * that create or remove return it at that point. */
    int64_t final_lookup_error;
} resolution;

static lf_node *parent_of(lf_tree *tree, lf_node *directory)
{
    return directory->parent ? directory->parent : tree->root;
}

/* Replaces the consumed part of the working path with a symlink's target:
 * the walk continues at target + "/" + remainder (the slash only when a
 * remainder follows or the link was named with a trailing slash). */
static int64_t splice_symlink(char **work, const char *target, const char *remainder,
                              bool trailing_slash)
{
    size_t target_length = strlen(target), remainder_length = strlen(remainder);
    bool slash = remainder_length > 0 || trailing_slash;
    char *joined = malloc(target_length + 1 + remainder_length + 1);
    if (!joined)
        return -ENOMEM;
    memcpy(joined, target, target_length);
    if (slash)
        joined[target_length] = '/';
    memcpy(joined + target_length + slash, remainder, remainder_length + 1);
    free(*work);
    *work = joined;
    return 0;
}

/* Walks path as Linux's namei does. */
static int64_t resolve(lf_tree *tree, const char *path, int flags, resolution *out)
{
    if (!tree->root)
        return -ENOENT;
    if (path[0] == '\0')
        return -ENOENT;
    if (strlen(path) >= LF_TREE_PATH_MAX)
        return -ENAMETOOLONG;
    if (path[0] != '/')
        return -EINVAL;
    char *work = strdup(path);
    if (!work)
        return -ENOMEM;
    lf_node *current = tree->root;
    int followed = 0;
    int64_t status = 0;
    const char *cursor = work;
    *out = (resolution){.kind = LAST_ROOT, .node = tree->root};
    for (;;) {
        if (*cursor == '/') {
            current = tree->root;
            while (*cursor == '/')
                cursor++;
        }
        if (*cursor == '\0') { /* the path named the root (or a symlink led there) */
            *out = (resolution){.kind = LAST_ROOT, .node = current, .parent = NULL};
            break;
        }
        const char *start = cursor;
        while (*cursor && *cursor != '/')
            cursor++;
        size_t length = (size_t)(cursor - start);
        const char *rest = cursor;
        while (*rest == '/')
            rest++;
        bool last = *rest == '\0';
        bool trailing = last && *cursor == '/';
        if (length > LF_TREE_NAME_MAX) {
            if (last && (flags & RESOLVE_PARENT)) {
                *out = (resolution){.parent = current, .final_lookup_error = -ENAMETOOLONG,
                                    .trailing_slash = trailing};
                break;
            }
            status = -ENAMETOOLONG;
            break;
        }
        char name[LF_TREE_NAME_MAX + 1];
        memcpy(name, start, length);
        name[length] = '\0';

        lf_node *next;
        last_kind kind = LAST_NORMAL;
        if (strcmp(name, ".") == 0) {
            next = current;
            kind = LAST_DOT;
        } else if (strcmp(name, "..") == 0) {
            next = parent_of(tree, current);
            kind = LAST_DOTDOT;
        } else {
            next = lf_node_lookup(current, name);
        }

        if (last) {
            /* A trailing slash makes a lookup follow the link, but an
             * operation on the name itself sees the link (and fails). */
            bool follow = (flags & RESOLVE_PARENT) ? (flags & RESOLVE_FOLLOW) && !trailing
                                                   : (flags & RESOLVE_FOLLOW) || trailing;
            if (next && next->type == LF_NODE_SYMLINK && follow) {
                if (++followed > LF_TREE_SYMLINK_FOLLOW_MAX) {
                    status = -ELOOP;
                    break;
                }
                status = splice_symlink(&work, next->target, "", trailing);
                if (status < 0)
                    break;
                cursor = work; /* a relative target continues in this directory */
                continue;
            }
            out->parent = current;
            out->node = next;
            out->kind = kind;
            out->trailing_slash = trailing;
            memcpy(out->name, name, length + 1);
            if (trailing && next && next->type != LF_NODE_DIRECTORY && !(flags & RESOLVE_PARENT))
                status = -ENOTDIR;
            break;
        }
        if (!next) {
            status = -ENOENT;
            break;
        }
        if (next->type == LF_NODE_SYMLINK) {
            if (++followed > LF_TREE_SYMLINK_FOLLOW_MAX) {
                status = -ELOOP;
                break;
            }
            char *remainder = strdup(rest);
            if (!remainder) {
                status = -ENOMEM;
                break;
            }
            status = splice_symlink(&work, next->target, remainder, false);
            free(remainder);
            if (status < 0)
                break;
            cursor = work;
            continue;
        }
        if (next->type != LF_NODE_DIRECTORY) {
            status = -ENOTDIR;
            break;
        }
        current = next;
        cursor = rest;
    }
    free(work);
    return status;
}

/* A lookup that must find an existing node. */
static int64_t resolve_existing(lf_tree *tree, const char *path, int flags, lf_node **node)
{
    resolution found;
    int64_t status = resolve(tree, path, flags, &found);
    if (status < 0)
        return status;
    if (!found.node)
        return -ENOENT;
    *node = found.node;
    return 0;
}

/* A lookup of a name that must not exist yet (mkdir, symlink, link):
 * EEXIST for an existing node, ".", ".." or "/", then the final name's
 * lookup error, in the order Linux's filename_create checks them. */
static int64_t resolve_new(lf_tree *tree, const char *path, resolution *found)
{
    int64_t status = resolve(tree, path, RESOLVE_PARENT, found);
    if (status < 0)
        return status;
    if (found->kind != LAST_NORMAL || found->node)
        return -EEXIST;
    return found->final_lookup_error;
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */

static void fill_stat(const lf_node *node, struct stat *out)
{
    static const mode_t type_bits[] = {
        [LF_NODE_DIRECTORY] = S_IFDIR, [LF_NODE_FILE] = S_IFREG, [LF_NODE_SYMLINK] = S_IFLNK};
    memset(out, 0, sizeof *out);
    out->st_ino = (ino_t)node->inode_number;
    out->st_mode = type_bits[node->type] | node->permissions;
    out->st_nlink = node->link_count;
    out->st_uid = node->uid;
    out->st_gid = node->gid;
    out->st_size = node->type == LF_NODE_DIRECTORY ? CHUNK_SIZE : (off_t)node->size;
    out->st_blksize = CHUNK_SIZE;
    /* A pending file counts as fully allocated: its real extents are not
     * known without a load, and 0 blocks would make tools such as tar take
     * it for a hole and skip reading it. */
    uint64_t chunks = node->content_pending ? (node->size + CHUNK_SIZE - 1) / CHUNK_SIZE
                                            : node->chunk_count;
    out->st_blocks = node->type == LF_NODE_DIRECTORY ? CHUNK_SIZE / 512
                                                     : (blkcnt_t)chunks * (CHUNK_SIZE / 512);
    out->st_atim = node->atime;
    out->st_mtim = node->mtime;
    out->st_ctim = node->ctime;
}

static void touch_modified(lf_node *node, struct timespec now)
{
    node->mtime = now;
    node->ctime = now;
}

int64_t lf_tree_getattr(lf_tree *tree, const char *path, struct stat *out)
{
    lf_node *node;
    int64_t status = resolve_existing(tree, path, 0, &node);
    if (status < 0)
        return status;
    fill_stat(node, out);
    return 0;
}

int64_t lf_tree_readdir(lf_tree *tree, const char *path, lf_readdir_fn callback, void *context)
{
    lf_node *directory;
    int64_t status = resolve_existing(tree, path, RESOLVE_FOLLOW, &directory);
    if (status < 0)
        return status;
    if (directory->type != LF_NODE_DIRECTORY)
        return -ENOTDIR;
    struct stat attributes;
    int64_t delivered = 0;
    fill_stat(directory, &attributes);
    if (callback(context, ".", &attributes))
        return 1;
    delivered++;
    fill_stat(parent_of(tree, directory), &attributes);
    if (callback(context, "..", &attributes))
        return 2;
    delivered++;
    for (size_t i = 0; i < directory->entry_count; i++) {
        fill_stat(directory->entries[i].node, &attributes);
        delivered++;
        if (callback(context, directory->entries[i].name, &attributes))
            break;
    }
    return delivered;
}

int64_t lf_tree_read(lf_tree *tree, const char *path, void *buffer, size_t size, uint64_t offset)
{
    lf_node *file;
    int64_t status = resolve_existing(tree, path, RESOLVE_FOLLOW, &file);
    if (status < 0)
        return status;
    /* A read that covers no byte needs no content (and fails as it would). */
    if (size > 0 && offset < file->size && (status = lf_tree_load_content(tree, file)) < 0)
        return status;
    return lf_node_read(file, buffer, size, offset);
}

int64_t lf_tree_write(lf_tree *tree, const char *path, const void *data, size_t size,
                      uint64_t offset)
{
    lf_node *file;
    int64_t status = resolve_existing(tree, path, RESOLVE_FOLLOW, &file);
    if (status < 0)
        return status;
    /* The write lands on the stored content, so that must be in memory. */
    if (size > 0 && offset < LF_TREE_MAX_FILE_SIZE && (status = lf_tree_load_content(tree, file)) < 0)
        return status;
    status = write_content(file, data, size, offset);
    if (status > 0)
        touch_modified(file, tree_now(tree));
    return status;
}

/* A node made by an operation: owned by the tree's credentials; the group
 * comes from a set-group-ID parent, as on Linux. */
static int64_t create_child(lf_tree *tree, lf_node *parent, const char *name, lf_node_type type,
                            uint32_t permissions, const char *target, lf_node **out)
{
    struct timespec now = tree_now(tree);
    bool inherit_group = parent->permissions & S_ISGID;
    lf_node_info attributes = {
        .type = type,
        .permissions = permissions,
        .uid = tree->uid,
        .gid = inherit_group ? parent->gid : tree->gid,
        .owner = NULL,
        .group = inherit_group ? parent->group : NULL,
        .atime = now,
        .mtime = now,
        .ctime = now,
        .symlink_target = target,
    };
    if (type == LF_NODE_DIRECTORY && inherit_group)
        attributes.permissions |= S_ISGID;
    int64_t status = add_node_at(tree, parent, name, &attributes, NEWEST_FIRST, out);
    if (status == 0)
        touch_modified(parent, now);
    return status;
}

int64_t lf_tree_create(lf_tree *tree, const char *path, uint32_t mode, bool exclusive)
{
    resolution found;
    int64_t status = resolve(tree, path, RESOLVE_PARENT | (exclusive ? 0 : RESOLVE_FOLLOW), &found);
    if (status < 0)
        return status;
    if (found.trailing_slash && found.kind == LAST_NORMAL)
        return -EISDIR; /* checked before the name is looked up, as in Linux's open_last_lookups */
    if (found.final_lookup_error)
        return found.final_lookup_error;
    if (found.node) {
        if (exclusive)
            return -EEXIST;
        return found.node->type == LF_NODE_DIRECTORY ? -EISDIR : 0;
    }
    return create_child(tree, found.parent, found.name, LF_NODE_FILE, mode & 07777, NULL, NULL);
}

int64_t lf_tree_mkdir(lf_tree *tree, const char *path, uint32_t mode)
{
    resolution found;
    int64_t status = resolve_new(tree, path, &found);
    if (status < 0)
        return status;
    return create_child(tree, found.parent, found.name, LF_NODE_DIRECTORY, mode & 01777, NULL, NULL);
}

int64_t lf_tree_unlink(lf_tree *tree, const char *path)
{
    resolution found;
    int64_t status = resolve(tree, path, RESOLVE_PARENT, &found);
    if (status < 0)
        return status;
    if (found.kind != LAST_NORMAL)
        return -EISDIR;
    if (found.final_lookup_error)
        return found.final_lookup_error;
    if (!found.node)
        return -ENOENT;
    if (found.node->type == LF_NODE_DIRECTORY)
        return -EISDIR;
    if (found.trailing_slash)
        return -ENOTDIR;
    struct timespec now = tree_now(tree);
    lf_node *node = detach(found.parent, found.name, NULL);
    touch_modified(found.parent, now);
    node->ctime = now;
    release_link(tree, node);
    return 0;
}

int64_t lf_tree_rmdir(lf_tree *tree, const char *path)
{
    resolution found;
    int64_t status = resolve(tree, path, RESOLVE_PARENT, &found);
    if (status < 0)
        return status;
    switch (found.kind) {
    case LAST_DOT:
        return -EINVAL;
    case LAST_DOTDOT:
        return -ENOTEMPTY;
    case LAST_ROOT:
        return -EBUSY;
    case LAST_NORMAL:
        break;
    }
    if (found.final_lookup_error)
        return found.final_lookup_error;
    if (!found.node)
        return -ENOENT;
    if (found.node->type != LF_NODE_DIRECTORY)
        return -ENOTDIR;
    if (found.node->entry_count > 0)
        return -ENOTEMPTY;
    touch_modified(found.parent, tree_now(tree));
    free_node(tree, detach(found.parent, found.name, NULL));
    return 0;
}

static bool is_ancestor_or_self(lf_node *ancestor, lf_node *node)
{
    for (; node; node = node->parent)
        if (node == ancestor)
            return true;
    return false;
}

int64_t lf_tree_rename(lf_tree *tree, const char *from, const char *to, unsigned flags)
{
    if (flags & ~(unsigned)RENAME_NOREPLACE)
        return -EINVAL;
    resolution old, new;
    int64_t status = resolve(tree, from, RESOLVE_PARENT, &old);
    if (status < 0)
        return status;
    status = resolve(tree, to, RESOLVE_PARENT, &new);
    if (status < 0)
        return status;
    /* The checks below follow the order of Linux's do_renameat2 and vfs_rename. */
    if (old.kind != LAST_NORMAL)
        return -EBUSY;
    if (new.kind != LAST_NORMAL)
        return flags & RENAME_NOREPLACE ? -EEXIST : -EBUSY;
    if (old.final_lookup_error)
        return old.final_lookup_error;
    if (!old.node)
        return -ENOENT;
    if (new.final_lookup_error)
        return new.final_lookup_error;
    if ((flags & RENAME_NOREPLACE) && new.node)
        return -EEXIST;
    bool moving_directory = old.node->type == LF_NODE_DIRECTORY;
    if (!moving_directory && (old.trailing_slash || new.trailing_slash))
        return -ENOTDIR;
    if (old.parent != new.parent) {
        if (is_ancestor_or_self(old.node, new.parent))
            return -EINVAL;
        if (new.node && is_ancestor_or_self(new.node, old.parent))
            return -ENOTEMPTY;
    }
    if (old.node == new.node)
        return 0;
    if (new.node) {
        bool replacing_directory = new.node->type == LF_NODE_DIRECTORY;
        if (moving_directory && !replacing_directory)
            return -ENOTDIR;
        if (!moving_directory && replacing_directory)
            return -EISDIR;
        if (replacing_directory && new.node->entry_count > 0)
            return -ENOTEMPTY;
    }
    struct timespec now = tree_now(tree);
    if (new.node) {
        lf_node *replaced = detach(new.parent, new.name, NULL);
        replaced->ctime = now;
        if (replaced->type == LF_NODE_DIRECTORY)
            free_node(tree, replaced);
        else
            release_link(tree, replaced);
    }
    size_t old_position;
    lf_node *moved = detach(old.parent, old.name, &old_position);
    status = attach(new.parent, new.name, moved, NEWEST_FIRST);
    if (status < 0) { /* out of memory: put it back where it was */
        attach(old.parent, old.name, moved, old_position);
        return status;
    }
    moved->ctime = now;
    touch_modified(old.parent, now);
    touch_modified(new.parent, now);
    return 0;
}

int64_t lf_tree_chmod(lf_tree *tree, const char *path, uint32_t mode)
{
    lf_node *node;
    int64_t status = resolve_existing(tree, path, RESOLVE_FOLLOW, &node);
    if (status < 0)
        return status;
    node->permissions = mode & 07777;
    node->ctime = tree_now(tree);
    return 0;
}

int64_t lf_tree_chown(lf_tree *tree, const char *path, uint32_t uid, uint32_t gid)
{
    lf_node *node;
    int64_t status = resolve_existing(tree, path, 0, &node);
    if (status < 0)
        return status;
    if (uid != UINT32_MAX && (status = set_owner(node, uid)) < 0)
        return status;
    if (gid != UINT32_MAX && (status = set_group(node, gid)) < 0)
        return status;
    /* Linux drops set-user-ID, and set-group-ID when group-executable, from
     * non-directories on every chown, root's included. */
    if (node->type != LF_NODE_DIRECTORY) {
        node->permissions &= ~(uint32_t)S_ISUID;
        if (node->permissions & S_IXGRP)
            node->permissions &= ~(uint32_t)S_ISGID;
    }
    node->ctime = tree_now(tree);
    return 0;
}

int64_t lf_tree_truncate(lf_tree *tree, const char *path, int64_t length)
{
    if (length < 0)
        return -EINVAL;
    lf_node *file;
    int64_t status = resolve_existing(tree, path, RESOLVE_FOLLOW, &file);
    if (status < 0)
        return status;
    /* Emptying a pending file needs none of its stored bytes, and keeping
     * its size changes none of them; anything else keeps or extends the
     * stored prefix, which must be loaded first. */
    if (file->type == LF_NODE_FILE && file->content_pending && (uint64_t)length != file->size &&
        (uint64_t)length <= LF_TREE_MAX_FILE_SIZE) {
        if (length == 0)
            file->content_pending = false; /* resize_content clears the key */
        else if ((status = lf_tree_load_content(tree, file)) < 0)
            return status;
    }
    /* Like ext4 (unlike tmpfs), even a truncate to the current size counts
     * as a modification. */
    status = resize_content(file, (uint64_t)length);
    if (status == 0)
        touch_modified(file, tree_now(tree));
    return status;
}

int64_t lf_tree_symlink(lf_tree *tree, const char *target, const char *link_path)
{
    if (target[0] == '\0')
        return -ENOENT;
    if (strlen(target) >= LF_TREE_PATH_MAX)
        return -ENAMETOOLONG;
    resolution found;
    int64_t status = resolve_new(tree, link_path, &found);
    if (status < 0)
        return status;
    if (found.trailing_slash)
        return -ENOENT;
    return create_child(tree, found.parent, found.name, LF_NODE_SYMLINK, 0777, target, NULL);
}

int64_t lf_tree_readlink(lf_tree *tree, const char *path, char *buffer, size_t size)
{
    lf_node *node;
    int64_t status = resolve_existing(tree, path, 0, &node);
    if (status < 0)
        return status;
    if (node->type != LF_NODE_SYMLINK || size == 0)
        return -EINVAL;
    size_t length = strlen(node->target);
    if (length > size)
        length = size;
    memcpy(buffer, node->target, length);
    return (int64_t)length;
}

int64_t lf_tree_relink(lf_tree *tree, const char *existing, const char *path)
{
    lf_node *file;
    int64_t status = resolve_existing(tree, existing, 0, &file);
    if (status < 0)
        return status;
    resolution found;
    status = resolve(tree, path, RESOLVE_PARENT, &found);
    if (status < 0)
        return status;
    if (!found.node || found.kind != LAST_NORMAL)
        return -ENOENT;
    if (file->type == LF_NODE_DIRECTORY || found.node->type == LF_NODE_DIRECTORY)
        return -EPERM;
    if (found.node == file)
        return 0;
    bool present;
    size_t rank = name_rank(found.parent, found.name, &present);
    lf_entry *entry = &found.parent->entries[found.parent->by_name[rank]];
    release_link(tree, entry->node);
    entry->node = file;
    file->link_count++;
    return 0;
}

int64_t lf_tree_link(lf_tree *tree, const char *existing, const char *new_path)
{
    lf_node *node;
    int64_t status = resolve_existing(tree, existing, 0, &node);
    if (status < 0)
        return status;
    resolution found;
    status = resolve_new(tree, new_path, &found);
    if (status < 0)
        return status;
    if (found.trailing_slash)
        return -ENOENT;
    if (node->type == LF_NODE_DIRECTORY)
        return -EPERM;
    status = add_link_at(found.parent, found.name, node, NEWEST_FIRST);
    if (status < 0)
        return status;
    struct timespec now = tree_now(tree);
    node->ctime = now;
    touch_modified(found.parent, now);
    return 0;
}

static bool valid_time_request(const struct timespec *time)
{
    return time->tv_nsec == UTIME_NOW || time->tv_nsec == UTIME_OMIT ||
           (time->tv_nsec >= 0 && time->tv_nsec < 1000000000);
}

int64_t lf_tree_utimens(lf_tree *tree, const char *path, const struct timespec times[2])
{
    struct timespec now = tree_now(tree);
    struct timespec requested[2] = {{.tv_nsec = UTIME_NOW}, {.tv_nsec = UTIME_NOW}};
    if (times) {
        requested[0] = times[0];
        requested[1] = times[1];
    }
    /* Linux returns before even looking the path up. */
    if (requested[0].tv_nsec == UTIME_OMIT && requested[1].tv_nsec == UTIME_OMIT)
        return 0;
    if (!valid_time_request(&requested[0]) || !valid_time_request(&requested[1]))
        return -EINVAL;
    lf_node *node;
    int64_t status = resolve_existing(tree, path, 0, &node);
    if (status < 0)
        return status;
    struct timespec *fields[2] = {&node->atime, &node->mtime};
    for (int i = 0; i < 2; i++) {
        if (requested[i].tv_nsec == UTIME_OMIT)
            continue;
        *fields[i] = requested[i].tv_nsec == UTIME_NOW ? now : requested[i];
    }
    node->ctime = now;
    return 0;
}

int64_t lf_tree_statfs(lf_tree *tree, struct statvfs *out)
{
    /* The tree lives in memory: report a large fixed capacity so tools that
     * check free space before writing proceed, and real usage within it. */
    const uint64_t total_blocks = UINT64_C(1) << 28; /* 1 TiB of 4 KiB blocks */
    const uint64_t total_files = UINT64_C(1) << 32;
    memset(out, 0, sizeof *out);
    out->f_bsize = CHUNK_SIZE;
    out->f_frsize = CHUNK_SIZE;
    out->f_blocks = total_blocks;
    out->f_bfree = total_blocks - (tree->chunk_count < total_blocks ? tree->chunk_count : total_blocks);
    out->f_bavail = out->f_bfree;
    out->f_files = total_files;
    out->f_ffree = total_files - tree->node_count;
    out->f_favail = out->f_ffree;
    out->f_namemax = LF_TREE_NAME_MAX;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Comparing trees                                                     */

static bool same_content(const lf_node *a, const lf_node *b)
{
    uint8_t first[CHUNK_SIZE], second[CHUNK_SIZE];
    for (uint64_t offset = 0; offset < a->size; offset += CHUNK_SIZE) {
        int64_t length = lf_node_read(a, first, CHUNK_SIZE, offset);
        if (length != lf_node_read(b, second, CHUNK_SIZE, offset) ||
            memcmp(first, second, (size_t)length) != 0)
            return false;
    }
    return true;
}

/* Attributes as the state shows them (the XML's), and content. */
static bool same_node(const lf_node *a, const lf_node *b)
{
    if (a->type != b->type || a->permissions != b->permissions || a->uid != b->uid ||
        a->gid != b->gid || strcmp(a->owner, b->owner) || strcmp(a->group, b->group) ||
        a->mtime.tv_sec != b->mtime.tv_sec)
        return false;
    if (a->type == LF_NODE_SYMLINK)
        return strcmp(a->target, b->target) == 0;
    return a->type != LF_NODE_FILE || (a->size == b->size && same_content(a, b));
}

/* Whether the names the two directories share come in the same order. */
static bool same_order(const lf_node *old, const lf_node *new)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < old->entry_count && !lf_node_lookup(new, old->entries[i].name))
            i++;
        while (j < new->entry_count && !lf_node_lookup(old, new->entries[j].name))
            j++;
        if (i == old->entry_count || j == new->entry_count)
            return i == old->entry_count && j == new->entry_count;
        if (strcmp(old->entries[i].name, new->entries[j].name) != 0)
            return false;
        i++, j++;
    }
}

typedef struct comparison {
    lf_tree_change_fn changed;
    void *context;
    char path[LF_TREE_PATH_MAX];
} comparison;

/* path holds the directories' path, of length length ("" for the root). */
static int64_t compare_directories(comparison *self, const lf_node *old, const lf_node *new,
                                   size_t length)
{
    if (!same_order(old, new)) {
        int64_t stop = self->changed(self->context, length ? self->path : "/");
        if (stop)
            return stop;
    }
    size_t i = 0, j = 0;
    while (i < old->entry_count || j < new->entry_count) {
        const char *old_name = NULL, *new_name = NULL;
        const lf_node *old_child = lf_node_child_by_name(old, i, &old_name);
        const lf_node *new_child = lf_node_child_by_name(new, j, &new_name);
        int order = !old_child ? 1 : !new_child ? -1 : strcmp(old_name, new_name);
        const char *name = order <= 0 ? old_name : new_name;
        size_t child_length = length + 1 + strlen(name);
        if (child_length >= sizeof self->path)
            return -ENAMETOOLONG;
        self->path[length] = '/';
        memcpy(self->path + length + 1, name, child_length - length);
        int64_t stop = order != 0 || !same_node(old_child, new_child)
                           ? self->changed(self->context, self->path)
                           : 0;
        if (!stop && order == 0 && old_child->type == LF_NODE_DIRECTORY &&
            new_child->type == LF_NODE_DIRECTORY)
            stop = compare_directories(self, old_child, new_child, child_length);
        if (stop)
            return stop;
        i += order <= 0;
        j += order >= 0;
    }
    return 0;
}

int64_t lf_tree_compare(const lf_tree *old, const lf_tree *new, lf_tree_change_fn changed,
                        void *context)
{
    comparison *self = malloc(sizeof *self);
    if (!self)
        return -ENOMEM;
    *self = (comparison){.changed = changed, .context = context};
    int64_t status = 0;
    if (!old->root || !new->root || !same_node(old->root, new->root))
        status = changed(context, "/");
    if (!status && old->root && new->root)
        status = compare_directories(self, old->root, new->root, 0);
    free(self);
    return status;
}
