#include "sim/oplines.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "fs/users.h"
#include "fs/xml.h"

/* The seed's file handles: what its FUSE layer happened to pass, kept so
 * the lines read like the seed's (read and write fh=4, readdir fh=0,
 * getattr and truncate of a path fh=None). */
#define FILE_HANDLE "4"

/* chown's "leave unchanged" is -1 to the syscall and in the line. */
static long long id_text(uint32_t id) { return id == UINT32_MAX ? -1 : (long long)id; }

/* A utimensat time request as the XML writes times, quoted, or the special
 * value's name. */
static int64_t append_time_request(lf_buffer *out, const struct timespec *time)
{
    if (time->tv_nsec == UTIME_NOW)
        return lf_buffer_append_string(out, "UTIME_NOW");
    if (time->tv_nsec == UTIME_OMIT)
        return lf_buffer_append_string(out, "UTIME_OMIT");
    int64_t status = lf_buffer_append_string(out, "'");
    if (status == 0)
        status = lf_xml_append_time(out, (int64_t)time->tv_sec);
    return status < 0 ? status : lf_buffer_append_string(out, "'");
}

int64_t lf_sim_opline_format(const lf_sim_operation *op, lf_buffer *out)
{
    const char *name = lf_sim_op_name(op->op);
    int status = lf_buffer_printf(out, "%s('%s'", name, op->path);
    if (status < 0)
        return status;
    switch (op->op) {
    case LF_SIM_GETATTR:
        status = lf_buffer_append_string(out, ", fh=None");
        break;
    case LF_SIM_READDIR:
        status = lf_buffer_append_string(out, ", fh=0");
        break;
    case LF_SIM_READ:
        status = lf_buffer_printf(out, ", size=%llu, offset=%llu, fh=" FILE_HANDLE,
                                  (unsigned long long)op->size, (unsigned long long)op->offset);
        break;
    case LF_SIM_WRITE:
        status = lf_buffer_append_string(out, ", data=");
        if (status == 0)
            status = lf_buffer_append(out, op->data.data, op->data.length);
        if (status == 0)
            status = lf_buffer_printf(out, ", data_length=%zu, offset=%llu, end=%llu, fh=" FILE_HANDLE,
                                      op->data.length, (unsigned long long)op->offset,
                                      (unsigned long long)(op->offset + op->data.length));
        break;
    case LF_SIM_CREATE:
    case LF_SIM_MKDIR:
    case LF_SIM_CHMOD:
        status = lf_buffer_printf(out, ", mode=0o%o", op->mode);
        break;
    case LF_SIM_CHOWN:
        status = lf_buffer_printf(out, ", uid=%lld, gid=%lld", id_text(op->uid), id_text(op->gid));
        break;
    case LF_SIM_TRUNCATE:
        status = lf_buffer_printf(out, ", length=%lld, fh=None", (long long)op->length);
        break;
    case LF_SIM_RENAME:
        status = lf_buffer_printf(out, ", new_path='%s'", op->other);
        if (status == 0 && op->flags)
            status = lf_buffer_printf(out, ", flags=%u", op->flags);
        break;
    case LF_SIM_SYMLINK:
        status = lf_buffer_printf(out, ", target='%s'", op->other);
        break;
    case LF_SIM_UTIMENS:
        if (op->times_now) {
            status = lf_buffer_append_string(out, ", times=None");
            break;
        }
        status = lf_buffer_append_string(out, ", times=(");
        if (status == 0)
            status = append_time_request(out, &op->times[0]);
        if (status == 0)
            status = lf_buffer_append_string(out, ", ");
        if (status == 0)
            status = append_time_request(out, &op->times[1]);
        if (status == 0)
            status = lf_buffer_append_string(out, ")");
        break;
    case LF_SIM_READLINK:
    case LF_SIM_UNLINK:
    case LF_SIM_RMDIR:
        break;
    case LF_SIM_OP_COUNT:
        return -EINVAL;
    }
    /* The clock's reading, so that the times an answer sets are copied, not
     * computed (docs/DECISIONS.md, "Arithmetic out of the answers"). */
    if (status == 0 && lf_sim_op_sets_time(op->op)) {
        status = lf_buffer_append_string(out, ", now='");
        if (status == 0)
            status = lf_xml_append_time(out, op->now);
        if (status == 0)
            status = lf_buffer_append_string(out, "'");
    }
    return status < 0 ? status : lf_buffer_append_string(out, ")");
}

/* jansson escapes non-ASCII as \u00E9, Python as \u00e9. */
static void lowercase_unicode_escapes(char *json)
{
    for (char *c = json; *c; c++) {
        if (*c != '\\')
            continue;
        if (c[1] == 'u')
            for (int i = 2; i < 6; i++)
                c[i] = (char)tolower((unsigned char)c[i]);
        c++; /* past the escaped character: an escaped backslash followed by 'u'
              * is not the start of an escape */
    }
}

/* Appends the JSON text of value (consumed) as Python's json.dumps writes
 * it: ASCII only, with the separators flags choose. */
static int64_t append_json(lf_buffer *out, json_t *value, size_t flags)
{
    char *text = value ? json_dumps(value, flags | JSON_ENSURE_ASCII) : NULL;
    json_decref(value);
    if (!text)
        return -LF_EUNREPRESENTABLE;
    lowercase_unicode_escapes(text);
    int64_t status = lf_buffer_append_string(out, text);
    free(text);
    return status;
}

/* Python's json.dumps(names, separators=(',', ':')), the seed's listing. */
static int64_t append_listing(const lf_buffer *names, lf_buffer *out)
{
    json_t *list = json_array();
    for (size_t at = 0; list && at < names->length;) {
        const char *name = (const char *)names->data + at;
        json_t *entry = json_string(name);
        if (!entry || json_array_append_new(list, entry) != 0) {
            json_decref(list);
            return -LF_EUNREPRESENTABLE;
        }
        at += strlen(name) + 1;
    }
    return append_json(out, list, JSON_COMPACT);
}

static const char *type_name(mode_t mode)
{
    return S_ISDIR(mode) ? "directory" : S_ISLNK(mode) ? "symlink" : "file";
}

/* The seed's getattr dictionary as Python's json.dumps writes it, with mode
 * and mtime as the XML writes them (octal permission digits, a UTC time),
 * so that answering is copying from the state, not arithmetic: the seed's
 * decimal mode and seconds since 1970 cost a small model most of its
 * getattr answers (docs/DECISIONS.md).  Sizes of directories are 0, the
 * tree's, rather than whatever the disk filesystem reports. */
static int64_t append_attributes(const struct stat *attributes, lf_buffer *out)
{
    char owner[256], group[256], mode[16];
    lf_buffer mtime = {0};
    lf_users_user_name(attributes->st_uid, owner, sizeof owner);
    lf_users_group_name(attributes->st_gid, group, sizeof group);
    snprintf(mode, sizeof mode, "%o", (unsigned)(attributes->st_mode & 07777));
    json_int_t size = S_ISDIR(attributes->st_mode) ? 0 : (json_int_t)attributes->st_size;
    int64_t status = lf_xml_append_time(&mtime, (int64_t)attributes->st_mtim.tv_sec);
    if (status == 0) {
        json_t *object = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s}", "mode", mode, "size", size, "type",
                                   type_name(attributes->st_mode), "mtime",
                                   lf_buffer_string(&mtime), "owner", owner, "group", group);
        /* Not compact: jansson then separates like Python, ", " and ": ". */
        status = append_json(out, object, 0);
    }
    lf_buffer_free(&mtime);
    return status;
}

int64_t lf_sim_completion_read(const lf_sim_operation *operation, const lf_sim_outcome *outcome,
                               lf_buffer *out)
{
    switch (operation->op) {
    case LF_SIM_GETATTR:
        return append_attributes(&outcome->attributes, out);
    case LF_SIM_READDIR:
        return append_listing(&outcome->bytes, out);
    case LF_SIM_READ:
    case LF_SIM_READLINK:
        return lf_buffer_append(out, outcome->bytes.data, outcome->bytes.length);
    default:
        return -EINVAL;
    }
}

int64_t lf_sim_completion_error(int64_t status, lf_buffer *out)
{
    return lf_buffer_printf(out, "ERROR: %s", lf_error_name(status));
}

static int64_t newest_mtime(const lf_node *node)
{
    lf_node_info info;
    lf_node_get_info(node, &info);
    int64_t newest = info.mtime.tv_sec;
    for (size_t i = 0; info.type == LF_NODE_DIRECTORY && i < lf_node_child_count(node); i++) {
        int64_t child = newest_mtime(lf_node_child(node, i, NULL));
        newest = child > newest ? child : newest;
    }
    return newest;
}

int64_t lf_sim_virtual_now(const lf_tree *tree)
{
    const lf_node *root = lf_tree_root(tree);
    return root ? newest_mtime(root) + 1 : 1;
}

static void virtual_clock(void *context, struct timespec *now)
{
    *now = (struct timespec){.tv_sec = *(const int64_t *)context};
}

void lf_sim_use_virtual_clock(lf_tree *tree, const int64_t *now)
{
    lf_tree_set_clock(tree, virtual_clock, (void *)now);
}

/* Runs the operation on state (canonical XML) at operation->now: *tree is
 * the state after it (to free), *outcome what the call returned. */
static int64_t run_on_state(const uint8_t *state, size_t state_size, const lf_sim_operation *operation,
                            lf_tree **tree, lf_sim_outcome *outcome, lf_diagnostic *diagnostic)
{
    *tree = NULL;
    int64_t status = lf_xml_parse(state, state_size, 0, tree, diagnostic);
    if (status < 0)
        return status;
    lf_sim_use_virtual_clock(*tree, &operation->now);
    return lf_sim_operation_run_tree(operation, *tree, outcome);
}

int64_t lf_sim_exact_completion(const uint8_t *state, size_t state_size,
                                const lf_sim_operation *operation, lf_buffer *completion,
                                int64_t *result, lf_diagnostic *diagnostic)
{
    lf_tree *tree;
    lf_sim_outcome outcome = {0};
    int64_t status = run_on_state(state, state_size, operation, &tree, &outcome, diagnostic);
    if (status == 0) {
        *result = outcome.status;
        if (outcome.status < 0)
            status = lf_sim_completion_error(outcome.status, completion);
        else if (lf_sim_op_is_read(operation->op))
            status = lf_sim_completion_read(operation, &outcome, completion);
        else if ((status = lf_xml_write(tree, 0, completion, diagnostic)) > 0)
            status = 0;
    }
    lf_sim_outcome_free(&outcome);
    lf_tree_free(tree);
    return status;
}

/* A file's bytes, through symlinks as open() follows them. */
static int64_t read_file_bytes(lf_tree *tree, const char *path, lf_buffer *out)
{
    enum { CHUNK = 4096 };
    out->length = 0;
    for (;;) {
        if (lf_buffer_reserve(out, CHUNK) < 0)
            return -ENOMEM;
        int64_t got = lf_tree_read(tree, path, out->data + out->length, CHUNK, out->length);
        if (got <= 0)
            return got;
        out->length += (size_t)got;
    }
}

int64_t lf_sim_holds_bytes_written(const uint8_t *state, size_t state_size,
                                   const lf_sim_operation *operation, lf_tree *tree)
{
    if (operation->op != LF_SIM_WRITE && operation->op != LF_SIM_TRUNCATE)
        return 1;
    lf_tree *expected_tree;
    lf_sim_outcome outcome = {0};
    lf_buffer expected = {0}, held = {0};
    int64_t status = run_on_state(state, state_size, operation, &expected_tree, &outcome, NULL);
    if (status == 0 && outcome.status >= 0)
        status = read_file_bytes(expected_tree, operation->path, &expected);
    if (status == 0 && outcome.status >= 0) {
        int64_t read = read_file_bytes(tree, operation->path, &held);
        status = read == -ENOMEM ? read
                 : read == 0 && held.length == expected.length &&
                         (held.length == 0 || memcmp(held.data, expected.data, held.length) == 0)
                     ? 1
                     : 0;
    } else if (status == 0) {
        status = 1; /* the operation fails: no bytes to hold */
    }
    lf_buffer_free(&expected);
    lf_buffer_free(&held);
    lf_sim_outcome_free(&outcome);
    lf_tree_free(expected_tree);
    return status;
}
