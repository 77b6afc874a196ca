#include "random_tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const name_pieces[] = {
    "a", "B", "readme", ".hidden", "x.txt", "&amp", "<tag>", "q\"uote", "it's", "tab\there",
    "new\nline", "space ", " lead", "ü", "日本語", "émoji-😀", "]]>", "a=b", "%20", "-",
    "very_long_name_component_that_keeps_going_and_going", "0", "~", "#", "{}", "\\",
};
static const char *const owners[] = {"root", "daemon", "bin", "nobody", "alice", "1234", "www-data"};
static const char *const bodies[] = {
    "", "hello llmfuse\n", "a < b && c > d\n", "<body>not a tag</body>", "line\r\nwindows\r\n",
    "tab\tseparated\tvalues\n", "unicode: ü 日本語 😀\n", "]]> cdata end", "\"quotes\" & 'apos'",
    "no newline at end",
};

static void random_name(lf_random *random, char *name, size_t size)
{
    name[0] = '\0';
    int pieces = (int)lf_random_range(random, 1, 3);
    for (int i = 0; i < pieces; i++) {
        const char *piece = name_pieces[lf_random_below(random, sizeof name_pieces / sizeof *name_pieces)];
        if (strlen(name) + strlen(piece) + 1 < size)
            strcat(name, piece);
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        strcat(name, "_");
}

static struct timespec random_time(lf_random *random)
{
    /* Years 0001..9999: seconds from -62135596800 to 253402300799. */
    int64_t seconds = lf_random_chance(random, 1, 2)
                          ? lf_random_range(random, 946684800, 1893456000) /* 2000..2030 */
                          : lf_random_range(random, -62135596800, 253402300799);
    return (struct timespec){.tv_sec = seconds, .tv_nsec = 0};
}

static void random_content(lf_random *random, lf_node *file)
{
    switch (lf_random_below(random, 5)) {
    case 0: /* text from the fixed list, sometimes repeated */
    case 1: {
        const char *body = bodies[lf_random_below(random, sizeof bodies / sizeof *bodies)];
        int repeats = (int)lf_random_range(random, 1, 4);
        for (int i = 0; i < repeats; i++)
            lf_node_write(file, body, strlen(body), (uint64_t)i * strlen(body));
        break;
    }
    case 2: { /* binary */
        uint8_t bytes[300];
        size_t length = (size_t)lf_random_below(random, sizeof bytes);
        lf_random_bytes(random, bytes, length);
        lf_node_write(file, bytes, length, 0);
        break;
    }
    case 3: /* sparse: a hole, then a little data */
        lf_node_write(file, "tail", 4, lf_random_range(random, 1, 9000));
        break;
    default: /* empty */
        break;
    }
}

lf_tree *lf_test_random_tree(lf_random *random, int node_budget)
{
    lf_tree *tree = lf_tree_new();
    lf_node_info info = {.type = LF_NODE_DIRECTORY, .permissions = 0755, .owner = "root",
                         .group = "root", .mtime = random_time(random)};
    lf_node *root;
    lf_tree_make_root(tree, &info, &root);
    lf_node **directories = malloc(sizeof *directories * (size_t)(node_budget + 1));
    int directory_count = 0;
    directories[directory_count++] = root;
    for (int made = 0; made < node_budget; made++) {
        /* Bias toward the newest directory now and then to get deep chains. */
        lf_node *parent = lf_random_chance(random, 1, 4)
                              ? directories[directory_count - 1]
                              : directories[lf_random_below(random, (uint64_t)directory_count)];
        char name[200];
        random_name(random, name, sizeof name);
        info = (lf_node_info){
            .permissions = (uint32_t)(lf_random_chance(random, 1, 2) ? lf_random_below(random, 010000)
                                                                    : 0644),
            .owner = owners[lf_random_below(random, sizeof owners / sizeof *owners)],
            .group = owners[lf_random_below(random, sizeof owners / sizeof *owners)],
            .mtime = random_time(random),
        };
        uint64_t kind = lf_random_below(random, 10);
        info.type = kind < 3 ? LF_NODE_DIRECTORY : kind < 9 ? LF_NODE_FILE : LF_NODE_SYMLINK;
        char target[220];
        if (info.type == LF_NODE_SYMLINK) {
            random_name(random, target, sizeof target);
            info.symlink_target = target;
            info.permissions = 0777;
        }
        lf_node *node;
        if (lf_tree_add_node(tree, parent, name, &info, &node) != 0)
            continue; /* a duplicate name: fine, try another */
        if (info.type == LF_NODE_DIRECTORY)
            directories[directory_count++] = node;
        else if (info.type == LF_NODE_FILE)
            random_content(random, node);
    }
    free(directories);
    return tree;
}
