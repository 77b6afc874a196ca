#include "sim/simulator.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/random.h"
#include "fs/xml.h"
#include "sim/content.h"
#include "sim/oplines.h"
#include "sim/sandbox.h"
#include "sim/start_tree.h"

enum {
    EPISODE_MAX_OPERATIONS = 40,
    /* A write example holds the state twice (prompt and completion) plus
     * what the operation adds: an episode goes on while twice the state
     * and this much more fit in max_bytes. */
    GROWTH_MARGIN = 300,
    /* Room in an example for the op line besides its data. */
    OP_LINE_OVERHEAD = 300,
    MIN_WRITE_BYTES = 120,
    MAX_WRITE_BYTES = 400,
    /* What `echo word > file` or `echo line >> file` writes: a share of the
     * writes are this short, so that a shell session on the engine mount is
     * in the distribution (see DECISIONS.md, "Writes and renames as shell
     * tools make them"). */
    SHORT_WRITE_PERCENT = 25,
    SHORT_WRITE_MAX_BYTES = 40,
    /* mv tries renameat2(RENAME_NOREPLACE) first wherever it may not
     * replace: half the renames to a new name carry the flag. */
    NOREPLACE_PERCENT = 50,
    MAX_NEW_DEPTH = 6,
    FAILURE_PERCENT = 15, /* operations aimed at an error */
    KIND_ATTEMPTS = 20,   /* draws before an operation without targets gives up */
};

/* The evaluation stream: the same seed, a different generator state. */
#define EVAL_STREAM UINT64_C(0x6576616c75617465) /* "evaluate" */
/* utimens times: 2015-01-01 up to the epoch, older than anything new. */
#define UTIMENS_EARLIEST INT64_C(1420070400)

static const unsigned default_weights[LF_SIM_OP_COUNT] = {
    [LF_SIM_GETATTR] = 8, [LF_SIM_READDIR] = 8,  [LF_SIM_READ] = 11,    [LF_SIM_READLINK] = 4,
    [LF_SIM_WRITE] = 12,  [LF_SIM_CREATE] = 9,   [LF_SIM_MKDIR] = 8,    [LF_SIM_UNLINK] = 6,
    [LF_SIM_RMDIR] = 5,   [LF_SIM_CHMOD] = 6,    [LF_SIM_CHOWN] = 5,    [LF_SIM_TRUNCATE] = 5,
    [LF_SIM_RENAME] = 7,  [LF_SIM_SYMLINK] = 3,  [LF_SIM_UTIMENS] = 3,
};

void lf_sim_config_default(lf_sim_config *config)
{
    *config = (lf_sim_config){.max_bytes = LF_SIM_DEFAULT_MAX_BYTES, .mount = true,
                              .report = stderr};
    memcpy(config->weights, default_weights, sizeof default_weights);
}

int64_t lf_sim_parse_weights(const char *text, unsigned weights[LF_SIM_OP_COUNT],
                             lf_diagnostic *diag)
{
    for (const char *item = text;;) {
        const char *end = item + strcspn(item, ",");
        const char *equals = memchr(item, '=', (size_t)(end - item));
        char name[32];
        if (!equals || (size_t)(equals - item) >= sizeof name)
            return lf_fail(diag, -EINVAL, "'%.*s' is not OP=WEIGHT", (int)(end - item), item);
        memcpy(name, item, (size_t)(equals - item));
        name[equals - item] = '\0';
        int64_t op = lf_sim_op_from_name(name);
        if (op < 0)
            return lf_fail(diag, -EINVAL, "no operation named '%s'", name);
        char *number_end;
        unsigned long weight = strtoul(equals + 1, &number_end, 10);
        if (!isdigit((unsigned char)equals[1]) || number_end != end || weight > 1000000)
            return lf_fail(diag, -EINVAL, "the weight of %s must be a whole number (0 to 1000000)",
                           name);
        weights[op] = (unsigned)weight;
        if (*end == '\0')
            return 0;
        item = end + 1;
    }
}

/* ---------------------------------------------------------------- */
/* A set of prompt hashes                                            */

typedef struct hash_set {
    uint64_t *slots; /* 0 = empty; a hash of 0 is stored as 1 */
    size_t capacity, count;
} hash_set;

static bool hash_set_contains(const hash_set *set, uint64_t hash)
{
    hash = hash ? hash : 1;
    for (size_t i = hash & (set->capacity - 1); set->capacity && set->slots[i];
         i = (i + 1) & (set->capacity - 1))
        if (set->slots[i] == hash)
            return true;
    return false;
}

static int64_t hash_set_insert(hash_set *set, uint64_t hash)
{
    if (2 * (set->count + 1) > set->capacity) { /* at most half full */
        hash_set grown = {.capacity = set->capacity ? set->capacity * 2 : 1024};
        if (!(grown.slots = calloc(grown.capacity, sizeof *grown.slots)))
            return -ENOMEM;
        for (size_t i = 0; i < set->capacity; i++)
            if (set->slots[i])
                hash_set_insert(&grown, set->slots[i]);
        free(set->slots);
        *set = grown;
    }
    hash = hash ? hash : 1;
    size_t i = hash & (set->capacity - 1);
    while (set->slots[i] && set->slots[i] != hash)
        i = (i + 1) & (set->capacity - 1);
    if (!set->slots[i]) {
        set->slots[i] = hash;
        set->count++;
    }
    return 0;
}

/* ---------------------------------------------------------------- */
/* The state's nodes, for picking targets                            */

enum {
    PICK_ROOT = 1,
    PICK_DIRECTORY = 2, /* other than the root */
    PICK_FILE = 4,
    PICK_SYMLINK = 8,
    PICK_EMPTY = 16,    /* directories: only empty ones */
    PICK_NONEMPTY = 32, /* directories: only non-empty ones */
    PICK_ANY = PICK_ROOT | PICK_DIRECTORY | PICK_FILE | PICK_SYMLINK,
};

typedef struct entry {
    char path[LF_SIM_PATH_MAX];
    const lf_node *node;
    lf_node_info info;
    int depth;
} entry;

typedef struct catalog {
    entry *entries;
    size_t count, capacity;
} catalog;

static void join_path(char out[LF_SIM_PATH_MAX], const char *directory, const char *name)
{
    int length = snprintf(out, LF_SIM_PATH_MAX, "%s/%s",
                          strcmp(directory, "/") == 0 ? "" : directory, name);
    /* the generator's depth and name lengths keep every path far shorter:
     * a longer one is a bug in the generator */
    if (length <= 0 || length >= LF_SIM_PATH_MAX)
        abort();
}

static int64_t catalog_add(catalog *list, const char *path, const lf_node *node, int depth)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 64;
        entry *entries = realloc(list->entries, capacity * sizeof *entries);
        if (!entries)
            return -ENOMEM;
        list->entries = entries;
        list->capacity = capacity;
    }
    entry *added = &list->entries[list->count++];
    snprintf(added->path, sizeof added->path, "%s", path);
    added->node = node;
    added->depth = depth;
    lf_node_get_info(node, &added->info);
    return 0;
}

static int64_t catalog_directory(catalog *list, const lf_node *directory, const char *path,
                                 int depth)
{
    int64_t status = 0;
    for (size_t i = 0; status == 0 && i < lf_node_child_count(directory); i++) {
        const char *name;
        const lf_node *child = lf_node_child(directory, i, &name);
        char child_path[LF_SIM_PATH_MAX];
        join_path(child_path, path, name);
        status = catalog_add(list, child_path, child, depth + 1);
        lf_node_info info;
        lf_node_get_info(child, &info);
        if (status == 0 && info.type == LF_NODE_DIRECTORY)
            status = catalog_directory(list, child, child_path, depth + 1);
    }
    return status;
}

static bool entry_matches(const entry *candidate, unsigned classes)
{
    lf_node_type type = candidate->info.type;
    if (candidate->depth == 0)
        return classes & PICK_ROOT;
    if (type == LF_NODE_DIRECTORY) {
        bool empty = lf_node_child_count(candidate->node) == 0;
        return (classes & PICK_DIRECTORY) && !((classes & PICK_EMPTY) && !empty) &&
               !((classes & PICK_NONEMPTY) && empty);
    }
    return classes & (type == LF_NODE_FILE ? PICK_FILE : PICK_SYMLINK);
}

/* A random entry of the classes other than `except`, or NULL if none. */
static const entry *pick_entry(lf_random *random, const catalog *list, unsigned classes,
                               const entry *except)
{
    size_t matching = 0;
    for (size_t i = 0; i < list->count; i++)
        matching += &list->entries[i] != except && entry_matches(&list->entries[i], classes);
    if (matching == 0)
        return NULL;
    size_t chosen = lf_random_below(random, matching);
    for (size_t i = 0;; i++)
        if (&list->entries[i] != except && entry_matches(&list->entries[i], classes) &&
            chosen-- == 0)
            return &list->entries[i];
}

/* ---------------------------------------------------------------- */
/* Sampling operations                                               */

typedef struct simulator {
    const lf_sim_config *config;
    lf_sim_sandbox *sandbox;
    lf_random random;
    lf_tree *tree;
    int64_t now;         /* the virtual clock */
    lf_buffer state_xml; /* the state the next operation applies to */
    catalog nodes;       /* the state's nodes, rebuilt for each operation */
    hash_set prompts; /* hashes of the prompts written */
    lf_sim_stats *stats;
    lf_sim_sink_fn sink;
    void *sink_context;
    lf_diagnostic *diag;
} simulator;

static bool set_path(char path[LF_SIM_PATH_MAX], const entry *chosen)
{
    if (chosen)
        snprintf(path, LF_SIM_PATH_MAX, "%s", chosen->path);
    return chosen != NULL;
}

static void new_name(simulator *sim, lf_node_type type, char name[LF_SIM_CONTENT_NAME_MAX])
{
    if (type == LF_NODE_DIRECTORY)
        lf_sim_content_directory_name(&sim->random, name);
    else if (type == LF_NODE_FILE)
        lf_sim_content_file_name(&sim->random, name);
    else
        lf_sim_content_symlink_name(&sim->random, name);
}

/* A path for a new node of the type: a name the directory lacks in a
 * directory not too deep.  Sets *directory to where it goes if asked. */
static bool set_new_path(simulator *sim, lf_node_type type, char path[LF_SIM_PATH_MAX],
                         const entry **directory)
{
    const entry *parent = NULL;
    for (int attempt = 0; attempt < 8 && !parent; attempt++) {
        parent = pick_entry(&sim->random, &sim->nodes, PICK_ROOT | PICK_DIRECTORY, NULL);
        if (parent->depth >= MAX_NEW_DEPTH)
            parent = NULL;
    }
    if (!parent)
        return false;
    char name[LF_SIM_CONTENT_NAME_MAX];
    for (int attempt = 0; attempt < 8; attempt++) {
        new_name(sim, type, name);
        if (!lf_node_lookup(parent->node, name))
            break;
        /* Taken: a numbered variant, as people do ("notes2.txt"). */
        size_t length = strlen(name);
        snprintf(name + length, LF_SIM_CONTENT_NAME_MAX - length, "%d",
                 (int)lf_random_range(&sim->random, 2, 9));
    }
    if (lf_node_lookup(parent->node, name))
        return false;
    join_path(path, parent->path, name);
    if (directory)
        *directory = parent;
    return true;
}

/* A path that does not resolve: a missing name (ENOENT), or a name below a
 * missing directory (ENOENT) or below a file (ENOTDIR).  An operation that
 * creates its path fails only on the last two. */
static bool set_failing_path(simulator *sim, bool creating, char path[LF_SIM_PATH_MAX])
{
    uint64_t shape = creating ? 2 + lf_random_below(&sim->random, 2)
                              : lf_random_below(&sim->random, 4);
    const entry *file = shape == 3 ? pick_entry(&sim->random, &sim->nodes, PICK_FILE, NULL) : NULL;
    char name[LF_SIM_CONTENT_NAME_MAX];
    if (file) {
        lf_sim_content_file_name(&sim->random, name);
        join_path(path, file->path, name);
        return true;
    }
    if (!set_new_path(sim, shape == 0 ? LF_NODE_DIRECTORY : LF_NODE_FILE, path, NULL))
        return false;
    if (shape >= 2) {
        char parent[LF_SIM_PATH_MAX];
        snprintf(parent, sizeof parent, "%s", path);
        lf_sim_content_file_name(&sim->random, name);
        join_path(path, parent, name);
    }
    return true;
}

/* A path the operation fails on: half the time a node of the classes it
 * refuses (a directory to read, a name to create that exists), otherwise
 * one that does not resolve. */
static bool set_refused_path(simulator *sim, unsigned refused, bool creating,
                             char path[LF_SIM_PATH_MAX])
{
    return (lf_random_chance(&sim->random, 1, 2) &&
            set_path(path, pick_entry(&sim->random, &sim->nodes, refused, NULL))) ||
           set_failing_path(sim, creating, path);
}

/* The start of the UTF-8 character at position: offsets and lengths the
 * simulator picks never split one, so what it reads stays text. */
static uint64_t character_start(const lf_node *file, uint64_t position)
{
    uint8_t byte;
    while (position > 0 && lf_node_read(file, &byte, 1, position) == 1 && (byte & 0xc0) == 0x80)
        position--;
    return position;
}

static const char *base_name(const char *path) { return strrchr(path, '/') + 1; }

static void choose_read_range(simulator *sim, const entry *file, lf_sim_operation *op)
{
    /* Mostly what cat asks for; sometimes a slice. */
    op->size = 4096;
    op->offset = 0;
    uint64_t size = file->info.size;
    if (file->info.type != LF_NODE_FILE || size < 2 || lf_random_chance(&sim->random, 4, 5))
        return;
    op->offset = character_start(file->node, lf_random_below(&sim->random, size));
    uint64_t end = op->offset + (uint64_t)lf_random_range(&sim->random, 1, 512);
    if (end < size)
        end = character_start(file->node, end);
    op->size = end > op->offset ? end - op->offset : 1;
}

/* write and truncate aim at files, and now and then a symlink, which
 * they follow. */
static const entry *pick_written_file(simulator *sim)
{
    unsigned classes = lf_random_chance(&sim->random, 1, 10) ? PICK_SYMLINK : PICK_FILE;
    return pick_entry(&sim->random, &sim->nodes, classes, NULL);
}

static bool sample_write(simulator *sim, bool fail, size_t room, lf_sim_operation *op)
{
    if (room == 0)
        return false;
    const entry *target = NULL;
    if (fail ? !set_refused_path(sim, PICK_ROOT | PICK_DIRECTORY, false, op->path)
             : !set_path(op->path, target = pick_written_file(sim)))
        return false;
    uint64_t size = target && target->info.type == LF_NODE_FILE ? target->info.size : 0;
    uint64_t shape = lf_random_below(&sim->random, 100);
    if (size == 0 || shape < 45)
        op->offset = 0;
    else if (shape < 85)
        op->offset = size; /* appending */
    else if (shape < 97)
        op->offset = character_start(target->node, lf_random_below(&sim->random, size));
    else
        op->offset = size + (uint64_t)lf_random_range(&sim->random, 1, 64); /* leaves a hole */
    /* At least a line's worth where there is room, so that writes are
     * whole lines rather than cut ones; or a word or a short line. */
    bool short_write = lf_random_chance(&sim->random, SHORT_WRITE_PERCENT, 100);
    size_t most = short_write ? SHORT_WRITE_MAX_BYTES : MAX_WRITE_BYTES;
    size_t limit = room < most ? room : most;
    size_t least = short_write ? 1 : limit < MIN_WRITE_BYTES ? limit : MIN_WRITE_BYTES;
    size_t length = (size_t)lf_random_range(&sim->random, (int64_t)least, (int64_t)limit);
    /* Text in the style of the file written to: a whole body at its
     * start, more of the same further on; a short write echoes a line. */
    const char *name = base_name(op->path);
    int64_t written = short_write ? lf_sim_content_line(&sim->random, length, &op->data)
                      : op->offset == 0
                          ? lf_sim_content_body(&sim->random, name, length, &op->data)
                          : lf_sim_content_continuation(&sim->random, name, length, &op->data);
    return written > 0;
}

static bool sample_truncate(simulator *sim, bool fail, size_t room, lf_sim_operation *op)
{
    if (fail)
        return set_refused_path(sim, PICK_ROOT | PICK_DIRECTORY, false, op->path);
    const entry *target = pick_written_file(sim);
    if (!set_path(op->path, target))
        return false;
    uint64_t size = target->info.type == LF_NODE_FILE ? target->info.size : 0;
    uint64_t shape = lf_random_below(&sim->random, 100);
    if (shape < 20)
        op->length = 0;
    else if (shape < 75 && size > 0) /* shorter, on a character boundary */
        op->length = (int64_t)character_start(target->node, lf_random_below(&sim->random, size));
    else if (shape < 92)
        op->length = (int64_t)size;
    else /* longer: zeros at the end, and the body becomes base64 */
        op->length = (int64_t)size + lf_random_range(&sim->random, 1, (int64_t)room / 4 + 1);
    return true;
}

static bool sample_rename(simulator *sim, bool fail, lf_sim_operation *op)
{
    lf_random *random = &sim->random;
    const catalog *nodes = &sim->nodes;
    const entry *source =
        pick_entry(random, nodes, PICK_DIRECTORY | PICK_FILE | PICK_SYMLINK, NULL);
    if (!source)
        return false;
    set_path(op->path, source);
    lf_node_type type = source->info.type;
    bool directory = type == LF_NODE_DIRECTORY;
    if (fail) {
        switch (lf_random_below(random, 4)) {
        case 0: /* ENOENT */
            return set_failing_path(sim, false, op->path) &&
                   set_new_path(sim, type, op->other, NULL);
        case 1: /* EEXIST */
            op->flags = RENAME_NOREPLACE;
            return set_path(op->other, pick_entry(random, nodes, PICK_ANY & ~PICK_ROOT, source));
        case 2: /* ENOTDIR or EISDIR: onto the other type */
            return set_path(op->other, pick_entry(random, nodes,
                                                  directory ? PICK_FILE | PICK_SYMLINK
                                                            : PICK_DIRECTORY,
                                                  source));
        default: /* ENOTEMPTY, or EINVAL into itself */
            return directory &&
                   set_path(op->other, pick_entry(random, nodes, PICK_DIRECTORY | PICK_NONEMPTY,
                                                  source));
        }
    }
    if (lf_random_chance(random, 1, 4)) /* replacing a node of the same kind */
        return set_path(op->other, pick_entry(random, nodes,
                                              directory ? PICK_DIRECTORY | PICK_EMPTY
                                                        : PICK_FILE | PICK_SYMLINK,
                                              source));
    if (lf_random_chance(random, NOREPLACE_PERCENT, 100))
        op->flags = RENAME_NOREPLACE;
    return set_new_path(sim, type, op->other, NULL);
}

static void sample_times(simulator *sim, lf_sim_operation *op)
{
    lf_random *random = &sim->random;
    uint64_t shape = lf_random_below(random, 20);
    struct timespec chosen = {.tv_sec =
                                  lf_random_range(random, UTIMENS_EARLIEST, LF_SIM_EPOCH - 1)};
    op->times_now = shape < 6; /* touch */
    op->times[0] = shape < 17 ? chosen : (struct timespec){.tv_nsec = UTIME_OMIT}; /* touch -d */
    op->times[1] = chosen;                                                        /* touch -m -d */
}

/* Fills op for its kind: mostly a target the operation succeeds on, and
 * with `fail` one it fails on.  False if the state has no such target. */
static bool sample_targets(simulator *sim, bool fail, size_t room, lf_sim_operation *op)
{
    lf_random *random = &sim->random;
    const catalog *nodes = &sim->nodes;
    const entry *target;
    const entry *directory;
    switch (op->op) {
    case LF_SIM_GETATTR:
        return fail ? set_failing_path(sim, false, op->path)
                    : set_path(op->path, pick_entry(random, nodes, PICK_ANY, NULL));
    case LF_SIM_READDIR:
        return fail ? set_refused_path(sim, PICK_FILE, false, op->path)
                    : set_path(op->path,
                               pick_entry(random, nodes, PICK_ROOT | PICK_DIRECTORY, NULL));
    case LF_SIM_READ:
        op->size = 4096;
        if (fail)
            return set_refused_path(sim, PICK_ROOT | PICK_DIRECTORY, false, op->path);
        if (!set_path(op->path, target = pick_written_file(sim)))
            return false;
        choose_read_range(sim, target, op);
        return true;
    case LF_SIM_READLINK:
        return fail ? set_refused_path(sim, PICK_FILE, false, op->path)
                    : set_path(op->path, pick_entry(random, nodes, PICK_SYMLINK, NULL));
    case LF_SIM_WRITE:
        return sample_write(sim, fail, room, op);
    case LF_SIM_CREATE:
    case LF_SIM_MKDIR:
    case LF_SIM_SYMLINK: {
        lf_node_type type = op->op == LF_SIM_CREATE  ? LF_NODE_FILE
                            : op->op == LF_SIM_MKDIR ? LF_NODE_DIRECTORY
                                                     : LF_NODE_SYMLINK;
        directory = NULL;
        if (fail ? !set_refused_path(sim, PICK_ANY & ~PICK_ROOT, true, op->path) /* EEXIST */
                 : !set_new_path(sim, type, op->path, &directory))
            return false;
        uint32_t permissions = lf_sim_start_tree_permissions(random, type, base_name(op->path));
        op->mode = type == LF_NODE_FILE ? S_IFREG | permissions : permissions;
        if (type == LF_NODE_SYMLINK) {
            if (directory)
                lf_sim_start_tree_symlink_target(random, directory->node, op->other);
            else
                lf_sim_content_file_name(random, op->other);
        }
        return true;
    }
    case LF_SIM_UNLINK:
        return fail ? set_refused_path(sim, PICK_DIRECTORY, false, op->path)
                    : set_path(op->path, pick_entry(random, nodes, PICK_FILE | PICK_SYMLINK, NULL));
    case LF_SIM_RMDIR:
        if (!fail &&
            set_path(op->path, pick_entry(random, nodes, PICK_DIRECTORY | PICK_EMPTY, NULL)))
            return true;
        /* ENOTEMPTY (also when no directory is empty) for half the failures
         * where a directory has entries, what `rmdir` of a used directory
         * meets; else ENOTDIR or ENOENT. */
        if (lf_random_chance(random, 1, 2) &&
            set_path(op->path, pick_entry(random, nodes, PICK_DIRECTORY | PICK_NONEMPTY, NULL)))
            return true;
        return set_refused_path(sim, PICK_FILE | PICK_SYMLINK, false, op->path);
    case LF_SIM_CHMOD:
        /* The file type is added later, from what the path resolves to. */
        target = fail ? NULL : pick_entry(random, nodes, PICK_ANY, NULL);
        op->mode = lf_sim_start_tree_permissions(
            random,
            target && target->info.type == LF_NODE_DIRECTORY ? LF_NODE_DIRECTORY : LF_NODE_FILE,
            target ? base_name(target->path) : "");
        return fail ? set_failing_path(sim, false, op->path) : set_path(op->path, target);
    case LF_SIM_CHOWN: {
        lf_sim_owner owner = lf_sim_start_tree_owner(random);
        uint64_t shape = lf_random_below(random, 20);
        op->uid = shape < 3 ? UINT32_MAX : owner.uid; /* chgrp */
        op->gid = shape == 3 ? UINT32_MAX : owner.gid;
        return fail ? set_failing_path(sim, false, op->path)
                    : set_path(op->path, pick_entry(random, nodes, PICK_ANY, NULL));
    }
    case LF_SIM_TRUNCATE:
        return sample_truncate(sim, fail, room, op);
    case LF_SIM_RENAME:
        return sample_rename(sim, fail, op);
    case LF_SIM_UTIMENS:
        sample_times(sim, op);
        return fail ? set_failing_path(sim, false, op->path)
                    : set_path(op->path, pick_entry(random, nodes, PICK_ANY, NULL));
    case LF_SIM_OP_COUNT:
        break;
    }
    return false;
}

static lf_sim_op weighted_op(simulator *sim)
{
    const unsigned *weights = sim->config->weights;
    uint64_t total = 0;
    for (int op = 0; op < LF_SIM_OP_COUNT; op++)
        total += weights[op];
    uint64_t draw = lf_random_below(&sim->random, total);
    int op = 0;
    while (draw >= weights[op])
        draw -= weights[op++];
    return (lf_sim_op)op;
}

/* Draws an operation for the current state.  `room` bounds what a write
 * may add.  False if none of a few draws had a target. */
static bool sample_operation(simulator *sim, size_t room, lf_sim_operation *op)
{
    for (int attempt = 0; attempt < KIND_ATTEMPTS; attempt++) {
        lf_sim_operation_free(op);
        *op = (lf_sim_operation){.op = weighted_op(sim), .uid = UINT32_MAX, .gid = UINT32_MAX};
        bool fail = lf_random_chance(&sim->random, FAILURE_PERCENT, 100);
        if (sample_targets(sim, fail, room, op))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------- */
/* Running and checking an operation                                 */

/* chmod's mode carries the file type of what the path resolves to, as
 * libfuse passes it; the sandbox (through the mount, when there is one)
 * says what that is. */
static void add_file_type(simulator *sim, lf_sim_operation *op)
{
    char path[LF_SIM_PATH_MAX * 2];
    snprintf(path, sizeof path, "%s%s", lf_sim_sandbox_root(sim->sandbox), op->path);
    struct stat attributes;
    if (stat(path, &attributes) == 0)
        op->mode |= attributes.st_mode & S_IFMT;
}

/* A read's completion (the value, or the error) for one side's outcome. */
static int64_t read_completion(const lf_sim_operation *op, const lf_sim_outcome *outcome,
                               lf_buffer *out)
{
    if (outcome->status < 0)
        return lf_sim_completion_error(outcome->status, out);
    return lf_sim_completion_read(op, outcome, out);
}

static bool same_bytes(const lf_buffer *a, const lf_buffer *b)
{
    return a->length == b->length && (a->length == 0 || memcmp(a->data, b->data, a->length) == 0);
}

static void report_disagreement(simulator *sim, lf_buffer *op_line, int64_t real_status,
                                int64_t tree_status, lf_buffer *real_result,
                                lf_buffer *tree_result, lf_buffer *real_state,
                                lf_buffer *tree_state)
{
    FILE *report = sim->config->report;
    fprintf(report,
            "llmfuse gen: the sandbox (%s) and the tree disagree on\n  %s\n"
            "sandbox: %s, tree: %s\n",
            lf_sim_sandbox_is_mounted(sim->sandbox) ? "through the loopback mount" : "syscalls",
            lf_buffer_string(op_line), lf_error_name(real_status),
            lf_error_name(tree_status));
    fprintf(report, "sandbox result: %s\ntree result: %s\n", lf_buffer_string(real_result),
            lf_buffer_string(tree_result));
    fprintf(report, "state before:\n%s\nsandbox after:\n%s\ntree after:\n%s\n",
            lf_buffer_string(&sim->state_xml), lf_buffer_string(real_state),
            lf_buffer_string(tree_state));
}

/* Runs op on both sides and checks that they agree.  On success, result
 * holds the completion and after the new state's XML. */
static int64_t run_checked(simulator *sim, const lf_sim_operation *op, lf_buffer *op_line,
                           int64_t *op_status, lf_buffer *result, lf_buffer *after)
{
    lf_sim_outcome real = {0}, expected = {0};
    lf_buffer real_result = {0}, compared = {0}, real_state = {0}, compared_state = {0};
    lf_tree *scanned = NULL;
    int64_t status = lf_sim_operation_run_real(op, lf_sim_sandbox_root(sim->sandbox), &real);
    if (status == 0)
        status = lf_sim_operation_run_tree(op, sim->tree, &expected);
    bool read = lf_sim_op_is_read(op->op);
    if (status == 0 && read)
        status = read_completion(op, &real, &real_result);
    if (status == 0 && read)
        status = read_completion(op, &expected, result);
    /* The tree lists and writes entries newest first, the disk in its own
     * order: the names must agree, not their order. */
    if (status == 0 && op->op == LF_SIM_READDIR)
        status = lf_sim_outcome_sort_names(&expected);
    if (status == 0 && read)
        status = read_completion(op, &expected, &compared);
    if (status == 0)
        status = lf_sim_sandbox_scan(sim->sandbox, sim->now, &scanned, sim->diag);
    if (status == 0)
        status = lf_xml_write(scanned, LF_XML_SORTED, &real_state, sim->diag);
    if (status >= 0)
        status = lf_xml_write(sim->tree, LF_XML_SORTED, &compared_state, sim->diag);
    if (status >= 0)
        status = lf_xml_write(sim->tree, 0, after, sim->diag);
    if (status >= 0 && (real.status != expected.status || !same_bytes(&real_result, &compared) ||
                        !same_bytes(&real_state, &compared_state))) {
        report_disagreement(sim, op_line, real.status, expected.status, &real_result, &compared,
                            &real_state, &compared_state);
        status = lf_fail(sim->diag, -EIO, "the sandbox and the tree disagree on %s",
                         lf_buffer_string(op_line));
    }
    if (status >= 0 && !read) /* a write's completion: the new state, or the error */
        status = expected.status < 0 ? lf_sim_completion_error(expected.status, result)
                                     : lf_buffer_append(result, after->data, after->length);
    *op_status = expected.status;
    lf_sim_outcome_free(&real);
    lf_sim_outcome_free(&expected);
    lf_buffer_free(&real_result);
    lf_buffer_free(&compared);
    lf_buffer_free(&real_state);
    lf_buffer_free(&compared_state);
    lf_tree_free(scanned);
    return status < 0 ? status : 0;
}

/* Hands the example to the sink unless it is too large or its prompt was
 * written before, in either split: the splits share no prompt, and neither
 * repeats one (a repeated prompt has the same completion). */
static int64_t emit(simulator *sim, lf_sim_split split, const lf_sim_example *example,
                    size_t *produced)
{
    size_t bytes = example->prompt_length + example->completion_length;
    if (bytes > sim->config->max_bytes) {
        sim->stats->oversized++;
        return 0;
    }
    uint64_t hash = XXH64(example->prompt, example->prompt_length, 0);
    if (hash_set_contains(&sim->prompts, hash)) {
        sim->stats->duplicates++;
        return 0;
    }
    int64_t status = hash_set_insert(&sim->prompts, hash);
    if (status == 0)
        status = sim->sink(sim->sink_context, split, example);
    if (status < 0)
        return status;
    lf_sim_op_stats *op_stats = &sim->stats->ops[example->operation->op];
    op_stats->examples++;
    op_stats->errors += example->status < 0;
    op_stats->bytes += bytes;
    (*produced)++;
    return 0;
}

/* One operation on the current state: sampled, run, checked, emitted.
 * Sets *ended when the state has no room or target left. */
static int64_t step(simulator *sim, lf_sim_split split, size_t *produced, bool *ended)
{
    size_t max_bytes = sim->config->max_bytes;
    if (2 * sim->state_xml.length + GROWTH_MARGIN > max_bytes) {
        *ended = true;
        return 0;
    }
    size_t room = (max_bytes - 2 * sim->state_xml.length - OP_LINE_OVERHEAD) / 2;
    lf_sim_operation op = {0};
    sim->nodes.count = 0;
    int64_t status = catalog_add(&sim->nodes, "/", lf_tree_root(sim->tree), 0);
    if (status == 0)
        status = catalog_directory(&sim->nodes, lf_tree_root(sim->tree), "/", 0);
    if (status < 0)
        return lf_fail(sim->diag, status, "out of memory");
    if (!sample_operation(sim, room, &op)) {
        lf_sim_operation_free(&op);
        *ended = true;
        return 0;
    }
    if (op.op == LF_SIM_CHMOD)
        add_file_type(sim, &op);
    sim->now = op.now = lf_sim_virtual_now(sim->tree);
    sim->stats->operations++;

    lf_buffer op_line = {0}, prompt = {0}, result = {0}, after = {0};
    status = lf_sim_opline_format(&op, &op_line);
    if (status == 0)
        status = lf_buffer_printf(&prompt, "<%c>\n%s\n---\n", lf_sim_op_is_read(op.op) ? 'R' : 'W',
                                  lf_buffer_string(&op_line));
    if (status == 0)
        status = lf_buffer_append(&prompt, sim->state_xml.data, sim->state_xml.length);
    int64_t op_status = 0;
    if (status == 0)
        status = run_checked(sim, &op, &op_line, &op_status, &result, &after);
    if (status == 0) {
        lf_sim_example example = {.operation = &op,
                                  .prompt = (const char *)prompt.data,
                                  .prompt_length = prompt.length,
                                  .completion = result.data,
                                  .completion_length = result.length,
                                  .status = op_status};
        status = emit(sim, split, &example, produced);
    }
    if (status == 0) { /* the new state is the next operation's */
        lf_buffer swap = sim->state_xml;
        sim->state_xml = after;
        after = swap;
    }
    lf_buffer_free(&op_line);
    lf_buffer_free(&prompt);
    lf_buffer_free(&result);
    lf_buffer_free(&after);
    lf_sim_operation_free(&op);
    return status;
}

/* A fresh starting tree and up to EPISODE_MAX_OPERATIONS operations on it. */
static int64_t run_episode(simulator *sim, lf_sim_split split, size_t wanted, size_t *produced)
{
    size_t budget = sim->config->max_bytes / 2 - GROWTH_MARGIN;
    size_t target = (size_t)lf_random_range(&sim->random, 0, (int64_t)budget);
    lf_tree_free(sim->tree);
    sim->tree = NULL;
    int64_t status = lf_sim_start_tree_build(&sim->random, target, &sim->tree, sim->diag);
    if (status < 0)
        return status;
    lf_sim_use_virtual_clock(sim->tree, &sim->now);
    sim->stats->episodes++;
    sim->state_xml.length = 0;
    status = lf_xml_write(sim->tree, 0, &sim->state_xml, sim->diag);
    if (status >= 0)
        status = lf_sim_sandbox_load(sim->sandbox, sim->tree, sim->diag);
    /* The loaded sandbox must already be the tree (in any order). */
    lf_tree *scanned = NULL;
    lf_buffer loaded = {0}, sorted = {0};
    if (status >= 0)
        status = lf_sim_sandbox_scan(sim->sandbox, LF_SIM_EPOCH, &scanned, sim->diag);
    if (status >= 0)
        status = lf_xml_write(scanned, LF_XML_SORTED, &loaded, sim->diag);
    if (status >= 0)
        status = lf_xml_write(sim->tree, LF_XML_SORTED, &sorted, sim->diag);
    if (status >= 0 && !same_bytes(&loaded, &sorted)) {
        fprintf(sim->config->report, "llmfuse gen: sandbox:\n%s\ntree:\n%s\n",
                lf_buffer_string(&loaded), lf_buffer_string(&sorted));
        status = lf_fail(sim->diag, -EIO, "the sandbox does not hold the starting tree");
    }
    lf_buffer_free(&loaded);
    lf_buffer_free(&sorted);
    lf_tree_free(scanned);
    int64_t operations = lf_random_range(&sim->random, 1, EPISODE_MAX_OPERATIONS);
    bool ended = false;
    for (int64_t i = 0; status >= 0 && i < operations && !ended && *produced < wanted; i++)
        status = step(sim, split, produced, &ended);
    return status < 0 ? status : 0;
}

static int64_t generate_split(simulator *sim, lf_sim_split split, uint64_t seed, size_t wanted)
{
    lf_random_seed(&sim->random, seed);
    size_t produced = 0;
    int64_t status = 0;
    while (status == 0 && produced < wanted)
        status = run_episode(sim, split, wanted, &produced);
    return status;
}

static bool fuse_usable(void) { return access("/dev/fuse", R_OK | W_OK) == 0; }

int64_t lf_sim_generate(const lf_sim_config *config, lf_sim_sink_fn sink, void *context,
                        lf_sim_stats *stats, lf_diagnostic *diag)
{
    *stats = (lf_sim_stats){0};
    uint64_t total_weight = 0;
    for (int op = 0; op < LF_SIM_OP_COUNT; op++)
        total_weight += config->weights[op];
    if (total_weight == 0)
        return lf_fail(diag, -EINVAL, "every operation has weight 0");
    if (config->max_bytes < LF_SIM_MIN_MAX_BYTES)
        return lf_fail(diag, -EINVAL, "the example size bound must be at least %d bytes",
                       LF_SIM_MIN_MAX_BYTES);
    if (geteuid() != 0)
        return lf_fail(diag, -EPERM, "the simulator needs root: its sandbox holds files of "
                                     "several owners");
    simulator sim = {.config = config, .stats = stats, .sink = sink, .sink_context = context,
                     .diag = diag};
    int64_t status = lf_sim_sandbox_open(&sim.sandbox, diag);
    if (status < 0)
        return status;
    lf_diagnostic mount_diag = {0};
    if (config->mount && fuse_usable() &&
        (status = lf_sim_sandbox_mount(sim.sandbox, &mount_diag)) < 0)
        fprintf(config->report, "llmfuse gen: no loopback mount (%s); using plain system calls\n",
                mount_diag.message[0] ? mount_diag.message : lf_error_string(status));
    stats->mounted = lf_sim_sandbox_is_mounted(sim.sandbox);
    status = generate_split(&sim, LF_SIM_TRAIN, config->seed, config->train_count);
    if (status == 0)
        status = generate_split(&sim, LF_SIM_EVAL, config->seed ^ EVAL_STREAM, config->eval_count);
    lf_sim_sandbox_close(sim.sandbox);
    lf_tree_free(sim.tree);
    lf_buffer_free(&sim.state_xml);
    free(sim.nodes.entries);
    free(sim.prompts.slots);
    return status;
}
