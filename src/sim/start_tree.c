#include "sim/start_tree.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs/xml.h"
#include "sim/content.h"

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

enum {
    MAX_DEPTH = 5,
    MAX_DIRECTORIES = 64,
    /* Bytes of one node's element besides its path, name and body: the
     * longest attribute values (www-data, a 4-digit mode, a size). */
    NODE_OVERHEAD = 150,
    /* A body grows when escaped ("<" is "&lt;"): keep this share spare. */
    ESCAPE_SLACK_PERCENT = 25,
};

lf_sim_owner lf_sim_start_tree_owner(lf_random *random)
{
    static const struct {
        lf_sim_owner owner;
        unsigned weight;
    } owners[] = {
        {{0, 0}, 70},  {{65534, 65534}, 8}, {{33, 33}, 8}, /* root, nobody:nogroup, www-data */
        {{1, 1}, 6},   {{2, 2}, 4},         {{3, 3}, 4},   /* daemon, bin, sys */
    };
    uint64_t draw = lf_random_below(random, 100);
    size_t i = 0;
    while (draw >= owners[i].weight) {
        draw -= owners[i].weight;
        i++;
    }
    lf_sim_owner owner = owners[i].owner;
    if (lf_random_chance(random, 3, 20))
        owner.gid = 0;
    return owner;
}

uint32_t lf_sim_start_tree_permissions(lf_random *random, lf_node_type type, const char *name)
{
    static const uint32_t directory_modes[] = {0755, 0755, 0755, 0755, 0755, 0755, 0755,
                                               0700, 0750, 0775, 01777, 02775};
    static const uint32_t file_modes[] = {0644, 0644, 0644, 0644, 0644, 0644, 0644, 0644,
                                          0600, 0640, 0664, 0444, 0755, 04755};
    switch (type) {
    case LF_NODE_DIRECTORY:
        return directory_modes[lf_random_below(random, COUNT(directory_modes))];
    case LF_NODE_FILE:
        if (lf_sim_content_is_script(name) && lf_random_chance(random, 7, 10))
            return 0755;
        return file_modes[lf_random_below(random, COUNT(file_modes))];
    case LF_NODE_SYMLINK:
        break;
    }
    return 0777;
}

void lf_sim_start_tree_symlink_target(lf_random *random, const lf_node *directory,
                                      char target[LF_SIM_PATH_MAX])
{
    target[0] = '\0';
    size_t length = 0;
    /* Down from the link's directory: a child, sometimes a grandchild. */
    for (int depth = 0; depth < 3; depth++) {
        size_t children = lf_node_child_count(directory);
        if (children == 0 || (depth > 0 && lf_random_chance(random, 1, 2)))
            break;
        const char *name;
        const lf_node *child = lf_node_child(directory, lf_random_below(random, children), &name);
        length += (size_t)snprintf(target + length, LF_SIM_PATH_MAX - length, "%s%s",
                                   depth > 0 ? "/" : "", name);
        lf_node_info info;
        lf_node_get_info(child, &info);
        if (info.type != LF_NODE_DIRECTORY)
            break;
        directory = child;
    }
    if (length == 0 || length >= LF_SIM_PATH_MAX || lf_random_chance(random, 1, 5)) {
        char name[LF_SIM_CONTENT_NAME_MAX];
        lf_sim_content_file_name(random, name);
        snprintf(target, LF_SIM_PATH_MAX, "%s", name); /* most likely dangling */
    }
}

static struct timespec random_past_time(lf_random *random)
{
    static const int64_t two_years = 2 * 365 * 86400;
    int64_t seconds = lf_random_chance(random, 3, 10)
                          ? LF_SIM_EPOCH
                          : LF_SIM_EPOCH - (int64_t)lf_random_below(random, two_years);
    return (struct timespec){.tv_sec = seconds};
}

typedef struct directory_slot {
    lf_node *node;
    char path[LF_SIM_PATH_MAX];
    int depth;
} directory_slot;

static size_t body_length(lf_random *random, int64_t room)
{
    size_t length;
    uint64_t shape = lf_random_below(random, 10);
    if (shape == 0)
        length = 0;
    else if (shape < 6)
        length = (size_t)lf_random_range(random, 20, 300);
    else
        length = (size_t)lf_random_range(random, 300, 1500);
    size_t limit = room > 0 ? (size_t)room * (100 - ESCAPE_SLACK_PERCENT) / 100 : 0;
    return length < limit ? length : limit;
}

static int64_t xml_length(const lf_tree *tree, lf_buffer *scratch, lf_diagnostic *diag)
{
    scratch->length = 0;
    return lf_xml_write(tree, 0, scratch, diag);
}

/* Adds one random node under a random directory.  Returns 1 if added, 0 if
 * it would not fit (or its name was taken), or an error. */
static int64_t add_random_node(lf_random *random, lf_tree *tree, directory_slot *directories,
                               size_t *directory_count, int64_t room, lf_buffer *body)
{
    directory_slot *parent = &directories[lf_random_below(random, *directory_count)];
    uint64_t kind = lf_random_below(random, 100);
    lf_node_info info = {.type = kind < 25   ? LF_NODE_DIRECTORY
                                 : kind < 88 ? LF_NODE_FILE
                                             : LF_NODE_SYMLINK};
    if (info.type == LF_NODE_DIRECTORY &&
        (parent->depth >= MAX_DEPTH || *directory_count >= MAX_DIRECTORIES))
        info.type = LF_NODE_FILE;
    char name[LF_SIM_CONTENT_NAME_MAX], target[LF_SIM_PATH_MAX];
    if (info.type == LF_NODE_DIRECTORY)
        lf_sim_content_directory_name(random, name);
    else if (info.type == LF_NODE_FILE)
        lf_sim_content_file_name(random, name);
    else
        lf_sim_content_symlink_name(random, name);
    char path[LF_SIM_PATH_MAX];
    /* The root's path is "/": children are "/name", not "//name". */
    int path_length = snprintf(path, sizeof path, "%s/%s", parent->depth ? parent->path : "", name);
    room -= NODE_OVERHEAD + path_length + (int64_t)strlen(name);
    if (room < 0 || path_length >= (int)sizeof path || lf_node_lookup(parent->node, name))
        return 0;
    if (info.type == LF_NODE_SYMLINK) {
        lf_sim_start_tree_symlink_target(random, parent->node, target);
        info.symlink_target = target;
        room -= (int64_t)strlen(target);
        if (room < 0)
            return 0;
    }
    lf_sim_owner owner = lf_sim_start_tree_owner(random);
    info.uid = owner.uid;
    info.gid = owner.gid;
    info.permissions = lf_sim_start_tree_permissions(random, info.type, name);
    info.mtime = random_past_time(random);
    info.atime = info.ctime = info.mtime;
    body->length = 0;
    if (info.type == LF_NODE_FILE) {
        int64_t status = lf_sim_content_body(random, name, body_length(random, room), body);
        if (status < 0)
            return status;
    }
    lf_node *node;
    int64_t status = lf_tree_add_node(tree, parent->node, name, &info, &node);
    if (status == 0 && info.type == LF_NODE_FILE)
        status = lf_node_write(node, body->data, body->length, 0);
    if (status < 0)
        return status;
    if (info.type == LF_NODE_DIRECTORY) {
        directory_slot *slot = &directories[(*directory_count)++];
        slot->node = node;
        slot->depth = parent->depth + 1;
        memcpy(slot->path, path, sizeof path);
    }
    return 1;
}

int64_t lf_sim_start_tree_build(lf_random *random, size_t xml_budget, lf_tree **out,
                                lf_diagnostic *diag)
{
    lf_tree *tree = lf_tree_new();
    if (!tree)
        return lf_fail(diag, -ENOMEM, "out of memory");
    struct timespec epoch = {.tv_sec = LF_SIM_EPOCH};
    lf_node_info root_info = {.type = LF_NODE_DIRECTORY, .permissions = 0755,
                              .atime = epoch, .mtime = epoch, .ctime = epoch};
    directory_slot directories[MAX_DIRECTORIES];
    size_t directory_count = 1;
    directories[0] = (directory_slot){.path = "/"};
    lf_buffer scratch = {0}, body = {0};
    int64_t status = lf_tree_make_root(tree, &root_info, &directories[0].node);
    int64_t length = status < 0 ? status : xml_length(tree, &scratch, diag);
    /* Nodes until a few in a row no longer fit. */
    for (int misses = 0; length >= 0 && misses < 8;) {
        status = add_random_node(random, tree, directories, &directory_count,
                                 (int64_t)xml_budget - length, &body);
        if (status < 0)
            break;
        misses = status == 0 ? misses + 1 : 0;
        if (status == 1)
            length = xml_length(tree, &scratch, diag);
    }
    if (length < 0)
        status = length;
    lf_buffer_free(&scratch);
    lf_buffer_free(&body);
    if (status < 0) {
        lf_tree_free(tree);
        return lf_fail(diag, status, "cannot build a starting tree: %s", lf_error_string(status));
    }
    *out = tree;
    return 0;
}
