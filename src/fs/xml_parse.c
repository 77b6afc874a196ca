/* A strict reader of the XML state, on expat.  Strict because the same
 * parser checks a model's completions: whatever it accepts must be a state
 * the writer could have produced, up to whitespace between elements and
 * attribute order.  Nesting is tracked on an explicit stack (expat keeps its
 * own), so input depth never reaches the C stack. */
#include "fs/xml.h"

#include <errno.h>
#include <expat.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "fs/users.h"

/* The id that unknown owner and group names get: the kernel's overflow id. */
#define NOBODY_ID 65534

typedef enum element_kind {
    ELEMENT_FILESYSTEM,
    ELEMENT_DIRECTORY,
    ELEMENT_FILE,
    ELEMENT_SYMLINK,
    ELEMENT_BODY,
} element_kind;

enum attribute {
    ATTRIBUTE_PATH,
    ATTRIBUTE_NAME,
    ATTRIBUTE_MODE,
    ATTRIBUTE_OWNER,
    ATTRIBUTE_GROUP,
    ATTRIBUTE_MTIME,
    ATTRIBUTE_SIZE,
    ATTRIBUTE_TARGET,
    ATTRIBUTE_ENCODING,
    ATTRIBUTE_COUNT
};

static const char *const attribute_names[ATTRIBUTE_COUNT] = {
    "path", "name", "mode", "owner", "group", "mtime", "size", "target", "encoding"};

#define BIT(attribute) (1u << (attribute))
#define NODE_ATTRIBUTES                                                                      \
    (BIT(ATTRIBUTE_PATH) | BIT(ATTRIBUTE_NAME) | BIT(ATTRIBUTE_MODE) | BIT(ATTRIBUTE_OWNER) | \
     BIT(ATTRIBUTE_GROUP) | BIT(ATTRIBUTE_MTIME))

static const struct element_spec {
    const char *tag;
    element_kind kind;
    unsigned allowed, required; /* attribute bit sets */
} element_specs[] = {
    {"filesystem", ELEMENT_FILESYSTEM, 0, 0},
    {"directory", ELEMENT_DIRECTORY, NODE_ATTRIBUTES, NODE_ATTRIBUTES},
    {"file", ELEMENT_FILE, NODE_ATTRIBUTES | BIT(ATTRIBUTE_SIZE),
     NODE_ATTRIBUTES | BIT(ATTRIBUTE_SIZE)},
    {"symlink", ELEMENT_SYMLINK, NODE_ATTRIBUTES | BIT(ATTRIBUTE_TARGET),
     NODE_ATTRIBUTES | BIT(ATTRIBUTE_TARGET)},
    {"body", ELEMENT_BODY, BIT(ATTRIBUTE_ENCODING), 0},
};

typedef struct frame {
    const struct element_spec *spec;
    lf_node *node;             /* directories, files, symlinks */
    size_t parent_path_length; /* what parser.path goes back to when the element ends */
    uint64_t size;             /* files: the size attribute */
    bool has_body;             /* files */
    bool base64;               /* bodies */
} frame;

/* Recently looked-up names and their ids: trees have few distinct owners,
 * and each system lookup reads the user database anew. */
enum { ID_CACHE_SIZE = 8 };

typedef struct id_cache {
    char *names[ID_CACHE_SIZE];
    uint32_t ids[ID_CACHE_SIZE];
    size_t next; /* the slot to replace, round robin */
    int (*lookup)(const char *name, uint32_t *id);
} id_cache;

typedef struct parser {
    XML_Parser expat;
    unsigned flags;
    lf_diagnostic *diag;
    int64_t status;
    lf_tree *tree;
    frame *stack;
    size_t depth, stack_capacity;
    lf_buffer path;    /* path of the innermost open node ("" for the root) */
    lf_buffer body;    /* text of the open body */
    lf_buffer decoded; /* scratch for a base64 body's bytes */
    id_cache owners, groups;
} parser;

/* Records the first error with its position and the element's path (when
 * known), and stops expat; handlers return early once status is set. */
__attribute__((format(printf, 4, 5))) static void fail(parser *p, const char *path,
                                                       int64_t status, const char *format, ...)
{
    if (p->status < 0)
        return;
    char message[384];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    unsigned long long line = XML_GetCurrentLineNumber(p->expat);
    unsigned long long column = XML_GetCurrentColumnNumber(p->expat) + 1;
    if (path)
        lf_fail(p->diag, status, "%llu:%llu: %s (path \"%s\")", line, column, message, path);
    else
        lf_fail(p->diag, status, "%llu:%llu: %s", line, column, message);
    p->status = status;
    XML_StopParser(p->expat, XML_FALSE);
}

static void fail_no_memory(parser *p) { fail(p, NULL, -ENOMEM, "out of memory"); }

/* The path of the innermost open node, for messages. */
static const char *current_path(parser *p)
{
    return p->path.length ? lf_buffer_string(&p->path) : "/";
}

static frame *top(parser *p) { return p->depth ? &p->stack[p->depth - 1] : NULL; }

static frame *push(parser *p, const struct element_spec *spec)
{
    if (p->depth == p->stack_capacity) {
        size_t capacity = p->stack_capacity ? 2 * p->stack_capacity : 16;
        frame *stack = realloc(p->stack, capacity * sizeof *stack);
        if (!stack) {
            fail_no_memory(p);
            return NULL;
        }
        p->stack = stack;
        p->stack_capacity = capacity;
    }
    frame *f = &p->stack[p->depth++];
    *f = (frame){.spec = spec};
    return f;
}

/* --- Attribute values --- */

static bool parse_mode(const char *text, uint32_t *mode)
{
    uint32_t value = 0;
    if (*text == '\0')
        return false;
    for (; *text; text++) {
        if (*text < '0' || *text > '7')
            return false;
        value = value * 8 + (uint32_t)(*text - '0');
        if (value > 07777)
            return false;
    }
    *mode = value;
    return true;
}

static bool parse_size(const char *text, uint64_t *size)
{
    uint64_t value = 0;
    if (*text == '\0')
        return false;
    for (; *text; text++) {
        if (*text < '0' || *text > '9')
            return false;
        unsigned digit = (unsigned)(*text - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    *size = value;
    return true;
}

/* Proleptic Gregorian date -> days since 1970-01-01 (Howard Hinnant's
 * days_from_civil), the inverse of the writer's civil_from_days. */
static int64_t days_from_civil(int64_t year, unsigned month, unsigned day)
{
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    unsigned year_of_era = (unsigned)(year - era * 400);
    unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + (int64_t)day_of_era - 719468;
}

static unsigned days_in_month(unsigned year, unsigned month)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    return month == 2 && leap ? 29 : days[month - 1];
}

/* Exactly YYYY-MM-DDTHH:MM:SS, UTC, years 0001..9999. */
static bool parse_mtime(const char *text, struct timespec *mtime)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (strlen(text) != sizeof shape - 1)
        return false;
    for (size_t i = 0; shape[i]; i++) {
        bool digit = text[i] >= '0' && text[i] <= '9';
        if (shape[i] == 'd' ? !digit : text[i] != shape[i])
            return false;
    }
    unsigned field[6];
    static const unsigned offsets[6] = {0, 5, 8, 11, 14, 17};
    for (size_t i = 0; i < 6; i++) {
        size_t width = i == 0 ? 4 : 2;
        field[i] = 0;
        for (size_t j = 0; j < width; j++)
            field[i] = field[i] * 10 + (unsigned)(text[offsets[i] + j] - '0');
    }
    unsigned year = field[0], month = field[1], day = field[2];
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
        field[3] > 23 || field[4] > 59 || field[5] > 59)
        return false;
    int64_t days = days_from_civil(year, month, day);
    *mtime = (struct timespec){
        .tv_sec = (time_t)(days * 86400 + field[3] * 3600 + field[4] * 60 + field[5])};
    return true;
}

/* Names the system does not know, and that are not decimal ids, map to
 * nobody but keep their text in the tree. */
static bool map_name(parser *p, id_cache *cache, const char *name, uint32_t *id)
{
    for (size_t i = 0; i < ID_CACHE_SIZE && cache->names[i]; i++)
        if (strcmp(cache->names[i], name) == 0) {
            *id = cache->ids[i];
            return true;
        }
    if (cache->lookup(name, id) < 0)
        *id = NOBODY_ID;
    char *copy = strdup(name);
    if (!copy) {
        fail_no_memory(p);
        return false;
    }
    free(cache->names[cache->next]);
    cache->names[cache->next] = copy;
    cache->ids[cache->next] = *id;
    cache->next = (cache->next + 1) % ID_CACHE_SIZE;
    return true;
}

/* --- Elements --- */

typedef struct node_attributes {
    const char *values[ATTRIBUTE_COUNT];
    lf_node_info info;
    uint64_t size; /* files */
} node_attributes;

/* Sorts expat's name/value pairs into a by the element's spec. */
static bool collect_attributes(parser *p, const struct element_spec *spec, const XML_Char **pairs,
                               node_attributes *a)
{
    for (size_t i = 0; pairs[i]; i += 2)
        if (strcmp(pairs[i], "path") == 0)
            a->values[ATTRIBUTE_PATH] = pairs[i + 1];
    const char *path = a->values[ATTRIBUTE_PATH];
    for (size_t i = 0; pairs[i]; i += 2) {
        size_t k = 0;
        while (k < ATTRIBUTE_COUNT && strcmp(pairs[i], attribute_names[k]) != 0)
            k++;
        if (k == ATTRIBUTE_COUNT || !(spec->allowed & BIT(k))) {
            fail(p, path, -LF_EFORMAT, "unknown attribute \"%s\" on <%s>", pairs[i], spec->tag);
            return false;
        }
        a->values[k] = pairs[i + 1];
    }
    for (size_t k = 0; k < ATTRIBUTE_COUNT; k++)
        if ((spec->required & BIT(k)) && !a->values[k]) {
            fail(p, path, -LF_EFORMAT, "<%s> lacks the required attribute \"%s\"", spec->tag,
                 attribute_names[k]);
            return false;
        }
    return true;
}

/* Turns the values every node element shares into a->info. */
static bool convert_node_attributes(parser *p, const struct element_spec *spec,
                                    node_attributes *a)
{
    const char *path = a->values[ATTRIBUTE_PATH];
    lf_node_info *info = &a->info;
    info->type = spec->kind == ELEMENT_DIRECTORY ? LF_NODE_DIRECTORY
                 : spec->kind == ELEMENT_FILE    ? LF_NODE_FILE
                                                 : LF_NODE_SYMLINK;
    if (!parse_mode(a->values[ATTRIBUTE_MODE], &info->permissions)) {
        fail(p, path, -LF_EFORMAT, "bad mode \"%s\": octal up to 7777 expected",
             a->values[ATTRIBUTE_MODE]);
        return false;
    }
    if (!parse_mtime(a->values[ATTRIBUTE_MTIME], &info->mtime)) {
        fail(p, path, -LF_EFORMAT, "bad mtime \"%s\": a date YYYY-MM-DDTHH:MM:SS expected",
             a->values[ATTRIBUTE_MTIME]);
        return false;
    }
    info->atime = info->ctime = info->mtime;
    info->owner = a->values[ATTRIBUTE_OWNER];
    info->group = a->values[ATTRIBUTE_GROUP];
    if (!map_name(p, &p->owners, info->owner, &info->uid) ||
        !map_name(p, &p->groups, info->group, &info->gid))
        return false;
    if (spec->kind == ELEMENT_FILE && !parse_size(a->values[ATTRIBUTE_SIZE], &a->size)) {
        fail(p, path, -LF_EFORMAT, "bad size \"%s\": a decimal byte count expected",
             a->values[ATTRIBUTE_SIZE]);
        return false;
    }
    if (spec->kind == ELEMENT_SYMLINK) {
        info->symlink_target = a->values[ATTRIBUTE_TARGET];
        if (info->symlink_target[0] == '\0') {
            fail(p, path, -LF_EFORMAT, "empty symlink target");
            return false;
        }
    }
    return true;
}

/* The root directory: the one child of <filesystem>. */
static lf_node *make_root(parser *p, const node_attributes *a)
{
    const char *path = a->values[ATTRIBUTE_PATH];
    if (a->info.type != LF_NODE_DIRECTORY) {
        fail(p, path, -LF_EFORMAT, "the root must be a <directory>");
        return NULL;
    }
    if (lf_tree_root(p->tree)) {
        fail(p, path, -LF_EFORMAT, "more than one root directory");
        return NULL;
    }
    if (strcmp(path, "/") != 0 || strcmp(a->values[ATTRIBUTE_NAME], "/") != 0) {
        fail(p, path, -LF_EFORMAT, "the root directory must have path \"/\" and name \"/\"");
        return NULL;
    }
    lf_node *root;
    if (lf_tree_make_root(p->tree, &a->info, &root) < 0) {
        fail_no_memory(p);
        return NULL;
    }
    return root;
}

/* A node inside the directory `parent`, whose path must be the parent's
 * path and the name: paths are redundant, so a disagreement is an error. */
static lf_node *add_child(parser *p, lf_node *parent, const node_attributes *a)
{
    const char *path = a->values[ATTRIBUTE_PATH], *name = a->values[ATTRIBUTE_NAME];
    if ((p->path.length && lf_buffer_append_string(&p->path, "/") < 0) ||
        lf_buffer_append_string(&p->path, name) < 0) {
        fail_no_memory(p);
        return NULL;
    }
    const char *expected = lf_buffer_string(&p->path);
    if (strcmp(path, expected) != 0) {
        fail(p, path, -LF_EFORMAT, "path does not match the element's place: \"%s\" expected",
             expected);
        return NULL;
    }
    lf_node *node;
    int64_t status = lf_tree_add_node(p->tree, parent, name, &a->info, &node);
    if (status == -EEXIST)
        fail(p, path, -LF_EFORMAT, "duplicate name \"%s\" in a directory", name);
    else if (status == -EINVAL)
        fail(p, path, -LF_EFORMAT, "invalid name \"%s\"", name);
    else if (status == -ENAMETOOLONG)
        fail(p, path, -LF_EFORMAT, "name longer than %d bytes", LF_TREE_NAME_MAX);
    else if (status < 0)
        fail_no_memory(p);
    return status < 0 ? NULL : node;
}

static void start_node(parser *p, const struct element_spec *spec, const XML_Char **pairs)
{
    node_attributes a = {0};
    if (!collect_attributes(p, spec, pairs, &a) || !convert_node_attributes(p, spec, &a))
        return;
    frame *parent = top(p);
    size_t parent_path_length = p->path.length;
    lf_node *node;
    if (parent->spec->kind == ELEMENT_FILESYSTEM) {
        node = make_root(p, &a);
    } else if (parent->spec->kind == ELEMENT_DIRECTORY) {
        node = add_child(p, parent->node, &a);
    } else {
        fail(p, a.values[ATTRIBUTE_PATH], -LF_EFORMAT, "<%s> inside <%s>, which has no children",
             spec->tag, parent->spec->tag);
        return;
    }
    frame *f = node ? push(p, spec) : NULL;
    if (!f)
        return;
    f->node = node;
    f->parent_path_length = parent_path_length;
    f->size = a.size;
}

static void start_body(parser *p, const struct element_spec *spec, const XML_Char **pairs)
{
    frame *file = top(p);
    if (file->spec->kind != ELEMENT_FILE) {
        fail(p, NULL, -LF_EFORMAT, "<body> outside a <file>");
        return;
    }
    if (file->has_body) {
        fail(p, current_path(p), -LF_EFORMAT, "a second <body> in a <file>");
        return;
    }
    node_attributes a = {0};
    if (!collect_attributes(p, spec, pairs, &a))
        return;
    const char *encoding = a.values[ATTRIBUTE_ENCODING];
    if (encoding && strcmp(encoding, "base64") != 0) {
        fail(p, current_path(p), -LF_EFORMAT, "unknown body encoding \"%s\"", encoding);
        return;
    }
    file->has_body = true;
    frame *body = push(p, spec);
    if (body)
        body->base64 = encoding != NULL;
    p->body.length = 0;
}

static void XMLCALL start_element(void *context, const XML_Char *tag, const XML_Char **pairs)
{
    parser *p = context;
    if (p->status < 0)
        return;
    const struct element_spec *spec = NULL;
    for (size_t i = 0; i < sizeof element_specs / sizeof element_specs[0]; i++)
        if (strcmp(tag, element_specs[i].tag) == 0)
            spec = &element_specs[i];
    frame *parent = top(p);
    if (!parent && (!spec || spec->kind != ELEMENT_FILESYSTEM))
        fail(p, NULL, -LF_EFORMAT, "the document element is <%s>, not <filesystem>", tag);
    else if (!spec)
        fail(p, NULL, -LF_EFORMAT, "unknown element <%s>", tag);
    else if (parent && parent->spec->kind == ELEMENT_BODY)
        fail(p, current_path(p), -LF_EFORMAT, "<%s> inside <body>, which holds only text", tag);
    else if (spec->kind == ELEMENT_FILESYSTEM && parent)
        fail(p, NULL, -LF_EFORMAT, "<filesystem> inside <%s>", parent->spec->tag);
    else if (spec->kind == ELEMENT_FILESYSTEM) {
        if (collect_attributes(p, spec, pairs, &(node_attributes){0}))
            push(p, spec);
    }
    else if (spec->kind == ELEMENT_BODY)
        start_body(p, spec, pairs);
    else
        start_node(p, spec, pairs);
}

static void end_body(parser *p, const frame *body, frame *file)
{
    lf_buffer *content = &p->body;
    if (body->base64) {
        p->decoded.length = 0;
        int64_t status = lf_base64_decode((const char *)p->body.data, p->body.length, &p->decoded);
        if (status == -ENOMEM) {
            fail_no_memory(p);
            return;
        }
        if (status < 0) {
            fail(p, current_path(p), -LF_EFORMAT, "invalid base64 in <body>");
            return;
        }
        content = &p->decoded;
    }
    if (content->length != file->size) {
        fail(p, current_path(p), -LF_EFORMAT, "size=\"%" PRIu64 "\" but the body has %zu bytes",
             file->size, content->length);
        return;
    }
    if (content->length &&
        lf_node_write(file->node, content->data, content->length, 0) != (int64_t)content->length)
        fail_no_memory(p);
}

static void end_file(parser *p, const frame *file)
{
    if (file->has_body)
        return;
    if (!(p->flags & LF_XML_WITHOUT_BODIES))
        fail(p, current_path(p), -LF_EFORMAT, "<file> without a <body>");
    else if (file->size > LF_TREE_MAX_FILE_SIZE)
        fail(p, current_path(p), -LF_EFORMAT, "size %" PRIu64 " exceeds the largest file (%" PRIu64
             " bytes)", file->size, LF_TREE_MAX_FILE_SIZE);
    else if (lf_node_set_size(file->node, file->size) < 0)
        fail_no_memory(p);
}

static void XMLCALL end_element(void *context, const XML_Char *tag)
{
    (void)tag; /* expat has checked that it matches the start tag */
    parser *p = context;
    if (p->status < 0)
        return;
    frame *f = top(p);
    if (f->spec->kind == ELEMENT_BODY)
        end_body(p, f, f - 1);
    else if (f->spec->kind == ELEMENT_FILE)
        end_file(p, f);
    if (f->node)
        p->path.length = f->parent_path_length;
    p->depth--;
}

static void XMLCALL character_data(void *context, const XML_Char *text, int length)
{
    parser *p = context;
    if (p->status < 0)
        return;
    frame *f = top(p);
    if (f->spec->kind == ELEMENT_BODY) {
        if (lf_buffer_append(&p->body, text, (size_t)length) < 0)
            fail_no_memory(p);
        return;
    }
    /* Indentation between elements is insignificant; anything else is not. */
    for (int i = 0; i < length; i++)
        if (!strchr(" \t\r\n", text[i])) {
            fail(p, f->node ? current_path(p) : NULL, -LF_EFORMAT,
                 "text outside <body>, inside <%s>", f->spec->tag);
            return;
        }
}

/* The format has no comments, processing instructions or document types;
 * refusing DOCTYPE also shuts out entity definitions and their expansion. */
static void XMLCALL comment(void *context, const XML_Char *text)
{
    (void)text;
    parser *p = context;
    fail(p, NULL, -LF_EFORMAT, "comments are not allowed");
}

static void XMLCALL processing_instruction(void *context, const XML_Char *target,
                                           const XML_Char *data)
{
    (void)data;
    parser *p = context;
    fail(p, NULL, -LF_EFORMAT, "processing instruction <?%s?> not allowed", target);
}

static void XMLCALL start_doctype(void *context, const XML_Char *name, const XML_Char *system_id,
                                  const XML_Char *public_id, int has_internal_subset)
{
    (void)name, (void)system_id, (void)public_id, (void)has_internal_subset;
    parser *p = context;
    fail(p, NULL, -LF_EFORMAT, "DOCTYPE is not allowed");
}

static void parse_document(parser *p, const char *data, size_t size)
{
    XML_SetUserData(p->expat, p);
    XML_SetStartDoctypeDeclHandler(p->expat, start_doctype);
    XML_SetElementHandler(p->expat, start_element, end_element);
    XML_SetCharacterDataHandler(p->expat, character_data);
    XML_SetCommentHandler(p->expat, comment);
    XML_SetProcessingInstructionHandler(p->expat, processing_instruction);
    /* XML_Parse takes an int length. */
    const size_t chunk = INT_MAX / 2;
    do {
        size_t length = size < chunk ? size : chunk;
        bool last = length == size;
        if (XML_Parse(p->expat, data, (int)length, last) == XML_STATUS_OK) {
            data += length, size -= length;
            continue;
        }
        enum XML_Error error = XML_GetErrorCode(p->expat);
        if (error == XML_ERROR_NO_MEMORY) {
            p->status = lf_fail(p->diag, -ENOMEM, "out of memory");
        } else if (p->status >= 0) {
            p->status = lf_fail(p->diag, -LF_EFORMAT, "%llu:%llu: XML error: %s",
                                (unsigned long long)XML_GetErrorLineNumber(p->expat),
                                (unsigned long long)XML_GetErrorColumnNumber(p->expat) + 1, XML_ErrorString(error));
        }
        return;
    } while (size > 0);
}

int64_t lf_xml_parse(const void *data, size_t size, unsigned flags, lf_tree **tree,
                     lf_diagnostic *diag)
{
    *tree = NULL;
    parser p = {.flags = flags,
                .diag = diag,
                .tree = lf_tree_new(),
                .owners.lookup = lf_users_user_id,
                .groups.lookup = lf_users_group_id};
    /* Any encoding expat knows is fine: strings reach us as UTF-8. */
    p.expat = XML_ParserCreate(NULL);
    if (!p.tree || !p.expat)
        p.status = lf_fail(diag, -ENOMEM, "out of memory");
    else
        parse_document(&p, data, size);
    if (p.expat)
        XML_ParserFree(p.expat);
    free(p.stack);
    lf_buffer_free(&p.path);
    lf_buffer_free(&p.body);
    lf_buffer_free(&p.decoded);
    for (size_t i = 0; i < ID_CACHE_SIZE; i++) {
        free(p.owners.names[i]);
        free(p.groups.names[i]);
    }
    if (p.status < 0) {
        if (p.tree)
            lf_tree_free(p.tree);
        return p.status;
    }
    *tree = p.tree;
    return 0;
}
