/* The canonical XML form: byte for byte what Python's ElementTree writes for
 * the seed's trees, so that states the seed's tools and this writer produce
 * are interchangeable and a model trained on one predicts the other. */
#include "fs/xml.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"

/* mtime is written as a four-digit year, so 0001-01-01T00:00:00 and
 * 9999-12-31T23:59:59 UTC are the first and last representable seconds. */
#define MTIME_MIN INT64_C(-62135596800)
#define MTIME_MAX INT64_C(253402300799)

typedef struct directory_frame {
    const lf_node *directory;
    size_t next_child;
    size_t path_length; /* this directory's path, as a prefix of writer.path */
} directory_frame;

typedef struct writer {
    lf_buffer *out;
    unsigned flags;
    lf_diagnostic *diag;
    lf_buffer path;    /* the current node's path attribute ("" for the root) */
    lf_buffer content; /* scratch for one file's bytes */
    directory_frame *stack;
    size_t depth, stack_capacity;
} writer;

/* Decodes one UTF-8 sequence strictly (no overlongs, surrogates or values
 * past U+10FFFF) and returns its length, or 0 if s does not start with one. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *code_point)
{
    if (s[0] < 0x80) {
        *code_point = s[0];
        return 1;
    }
    size_t length;
    uint32_t value, minimum;
    if ((s[0] & 0xe0) == 0xc0) {
        length = 2, value = s[0] & 0x1fu, minimum = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        length = 3, value = s[0] & 0x0fu, minimum = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        length = 4, value = s[0] & 0x07u, minimum = 0x10000;
    } else {
        return 0;
    }
    if (n < length)
        return 0;
    for (size_t i = 1; i < length; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        value = value << 6 | (s[i] & 0x3fu);
    }
    if (value < minimum || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff))
        return 0;
    *code_point = value;
    return length;
}

/* Whether text survives a trip through an XML 1.0 parser unchanged: valid
 * UTF-8 of XML Chars only.  A raw CR does not (parsers turn CR and CRLF into
 * LF); attributes carry it as "&#13;", element text cannot. */
static bool is_xml_safe(const uint8_t *text, size_t length, bool allow_cr)
{
    for (size_t i = 0; i < length;) {
        uint32_t c;
        size_t step = utf8_decode(text + i, length - i, &c);
        if (step == 0)
            return false;
        bool allowed = c == '\t' || c == '\n' || (c == '\r' && allow_cr) ||
                       (c >= 0x20 && c != 0xfffe && c != 0xffff);
        if (!allowed)
            return false;
        i += step;
    }
    return true;
}

/* ElementTree's escaping: _escape_cdata for text, _escape_attrib for
 * attribute values (which also protects whitespace from normalisation). */
static int append_escaped(lf_buffer *out, const uint8_t *text, size_t length, bool attribute)
{
    size_t run = 0;
    for (size_t i = 0; i < length; i++) {
        const char *entity = NULL;
        switch (text[i]) {
        case '&': entity = "&amp;"; break;
        case '<': entity = "&lt;"; break;
        case '>': entity = "&gt;"; break;
        case '"': entity = attribute ? "&quot;" : NULL; break;
        case '\n': entity = attribute ? "&#10;" : NULL; break;
        case '\r': entity = attribute ? "&#13;" : NULL; break;
        case '\t': entity = attribute ? "&#09;" : NULL; break;
        default: break;
        }
        if (!entity)
            continue;
        int status = lf_buffer_append(out, text + run, i - run);
        if (status == 0)
            status = lf_buffer_append_string(out, entity);
        if (status < 0)
            return status;
        run = i + 1;
    }
    return lf_buffer_append(out, text + run, length - run);
}

/* The path attribute of the node being written, for messages. */
static const char *current_path(writer *w)
{
    return w->path.length ? lf_buffer_string(&w->path) : "/";
}

static int64_t append_attribute(writer *w, const char *key, const char *value)
{
    size_t length = strlen(value);
    if (!is_xml_safe((const uint8_t *)value, length, true))
        return lf_fail(w->diag, -LF_EUNREPRESENTABLE,
                       "%s of \"%s\" is not UTF-8 text that XML can carry", key,
                       current_path(w));
    int status = lf_buffer_printf(w->out, " %s=\"", key);
    if (status == 0)
        status = append_escaped(w->out, (const uint8_t *)value, length, true);
    if (status == 0)
        status = lf_buffer_append_string(w->out, "\"");
    return status;
}

/* Days since 1970-01-01 -> proleptic Gregorian date (Howard Hinnant's
 * civil_from_days): exact for every representable year, unlike gmtime,
 * whose range and behaviour depend on the C library. */
static void civil_from_days(int64_t days, int64_t *year, unsigned *month, unsigned *day)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned day_of_era = (unsigned)(days - era * 146097);
    unsigned year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    unsigned day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    unsigned month_index = (5 * day_of_year + 2) / 153; /* March = 0 */
    *day = day_of_year - (153 * month_index + 2) / 5 + 1;
    *month = month_index < 10 ? month_index + 3 : month_index - 9;
    *year = (int64_t)year_of_era + era * 400 + (*month <= 2);
}

int64_t lf_xml_append_time(lf_buffer *out, int64_t seconds)
{
    if (seconds < MTIME_MIN || seconds > MTIME_MAX)
        return -LF_EUNREPRESENTABLE;
    int64_t days = seconds / 86400, second_of_day = seconds % 86400;
    if (second_of_day < 0)
        days -= 1, second_of_day += 86400;
    int64_t year;
    unsigned month, day;
    civil_from_days(days, &year, &month, &day);
    return lf_buffer_printf(out, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u", year, month, day,
                            (unsigned)(second_of_day / 3600), (unsigned)(second_of_day / 60 % 60),
                            (unsigned)(second_of_day % 60));
}

static int64_t append_mtime(writer *w, const struct timespec *mtime)
{
    int64_t seconds = (int64_t)mtime->tv_sec;
    if (seconds < MTIME_MIN || seconds > MTIME_MAX)
        return lf_fail(w->diag, -LF_EUNREPRESENTABLE,
                       "mtime of \"%s\" (%" PRId64 " s) is outside years 0001..9999",
                       current_path(w), seconds);
    int64_t status = lf_buffer_append_string(w->out, " mtime=\"");
    if (status == 0)
        status = lf_xml_append_time(w->out, seconds);
    return status < 0 ? status : lf_buffer_append_string(w->out, "\"");
}

/* `<tag path name mode owner group mtime`: what every element shares. */
static int64_t append_common(writer *w, const char *tag, const char *name,
                             const lf_node_info *info)
{
    int64_t status = lf_buffer_printf(w->out, "<%s", tag);
    if (status == 0)
        status = append_attribute(w, "path", current_path(w));
    if (status == 0)
        status = append_attribute(w, "name", name);
    if (status == 0)
        status = lf_buffer_printf(w->out, " mode=\"%o\"", info->permissions & 07777);
    if (status == 0)
        status = append_attribute(w, "owner", info->owner);
    if (status == 0)
        status = append_attribute(w, "group", info->group);
    if (status == 0)
        status = append_mtime(w, &info->mtime);
    return status;
}

static int64_t append_body(writer *w, const lf_node *file, uint64_t size)
{
    if (size == 0)
        return lf_buffer_append_string(w->out, "<body />");
    if (size > SIZE_MAX - 1)
        return -ENOMEM;
    w->content.length = 0;
    int64_t status = lf_buffer_reserve(&w->content, (size_t)size);
    if (status < 0)
        return status;
    status = lf_node_read(file, w->content.data, (size_t)size, 0);
    if (status < 0)
        return status;
    w->content.length = (size_t)status;
    bool text = is_xml_safe(w->content.data, w->content.length, false);
    status = lf_buffer_append_string(w->out, text ? "<body>" : "<body encoding=\"base64\">");
    if (status == 0)
        status = text ? append_escaped(w->out, w->content.data, w->content.length, false)
                      : lf_base64_encode(w->content.data, w->content.length, w->out);
    if (status >= 0)
        status = lf_buffer_append_string(w->out, "</body>");
    return status;
}

static int64_t push_directory(writer *w, const lf_node *directory)
{
    if (w->depth == w->stack_capacity) {
        size_t capacity = w->stack_capacity ? 2 * w->stack_capacity : 16;
        directory_frame *stack = realloc(w->stack, capacity * sizeof *stack);
        if (!stack)
            return -ENOMEM;
        w->stack = stack;
        w->stack_capacity = capacity;
    }
    w->stack[w->depth++] = (directory_frame){directory, 0, w->path.length};
    return 0;
}

/* Writes node's element, whose path is already in w->path; a directory with
 * children is left open on the stack for the walk to fill. */
static int64_t append_node(writer *w, const lf_node *node, const char *name)
{
    lf_node_info info;
    lf_node_get_info(node, &info);
    static const char *const tags[] = {
        [LF_NODE_DIRECTORY] = "directory", [LF_NODE_FILE] = "file", [LF_NODE_SYMLINK] = "symlink"};
    int64_t status = append_common(w, tags[info.type], name, &info);
    if (status < 0)
        return status;
    if (info.type == LF_NODE_DIRECTORY) {
        if (lf_node_child_count(node) == 0)
            return lf_buffer_append_string(w->out, " />");
        status = lf_buffer_append_string(w->out, ">");
        return status < 0 ? status : push_directory(w, node);
    }
    if (info.type == LF_NODE_FILE) {
        if (w->flags & LF_XML_WITHOUT_BODIES)
            return lf_buffer_printf(w->out, " size=\"%" PRIu64 "\" />", info.size);
        status = lf_buffer_printf(w->out, " size=\"%" PRIu64 "\">", info.size);
        if (status == 0)
            status = append_body(w, node, info.size);
        return status < 0 ? status : lf_buffer_append_string(w->out, "</file>");
    }
    /* Linux has no empty symlink targets, and the parser refuses them. */
    if (info.symlink_target[0] == '\0')
        return lf_fail(w->diag, -LF_EUNREPRESENTABLE, "empty target of symlink \"%s\"",
                       current_path(w));
    status = append_attribute(w, "target", info.symlink_target);
    return status < 0 ? status : lf_buffer_append_string(w->out, " />");
}

/* Depth-first, with an explicit stack so that no tree is too deep to write. */
static int64_t append_tree(writer *w, const lf_node *root)
{
    int64_t status = append_node(w, root, "/");
    while (status >= 0 && w->depth > 0) {
        directory_frame *frame = &w->stack[w->depth - 1];
        if (frame->next_child == lf_node_child_count(frame->directory)) {
            status = lf_buffer_append_string(w->out, "</directory>");
            w->depth--;
            continue;
        }
        const char *name;
        const lf_node *child = w->flags & LF_XML_SORTED
                                   ? lf_node_child_by_name(frame->directory, frame->next_child++, &name)
                                   : lf_node_child(frame->directory, frame->next_child++, &name);
        w->path.length = frame->path_length;
        if (w->path.length)
            status = lf_buffer_append_string(&w->path, "/");
        if (status >= 0)
            status = lf_buffer_append_string(&w->path, name);
        if (status >= 0)
            status = append_node(w, child, name);
    }
    return status;
}

int64_t lf_xml_write(const lf_tree *tree, unsigned flags, lf_buffer *out, lf_diagnostic *diag)
{
    size_t start = out->length;
    writer w = {.out = out, .flags = flags, .diag = diag};
    const lf_node *root = lf_tree_root(tree);
    int64_t status;
    if (!root) {
        status = lf_buffer_append_string(out, "<filesystem />");
    } else {
        status = lf_buffer_append_string(out, "<filesystem>");
        if (status == 0)
            status = append_tree(&w, root);
        if (status >= 0)
            status = lf_buffer_append_string(out, "</filesystem>");
    }
    lf_buffer_free(&w.path);
    lf_buffer_free(&w.content);
    free(w.stack);
    if (status < 0) {
        out->length = start;
        return status;
    }
    return (int64_t)(out->length - start);
}
