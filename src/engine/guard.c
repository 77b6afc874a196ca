#include "engine/guard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum place {
    START,            /* nothing yet: a state starts with '<', an error does not */
    TEXT,             /* between tags: only the next '<' */
    DONE,             /* after </filesystem>: only the end */
    TAG_START,        /* after '<' */
    TAG_NAME,
    TAG_INSIDE,       /* between attributes */
    AFTER_VALUE,      /* after an attribute's closing quote */
    ATTRIBUTE_NAME,
    ATTRIBUTE_EQUALS, /* after '=', before the opening quote */
    ATTRIBUTE_VALUE,
    TAG_SLASH,        /* after the '/' of an empty-element tag */
    END_TAG,          /* inside </…> */
    BODY_TEXT,
    BODY_ENTITY,      /* inside &…; in a body */
    BODY_BASE64,
    BODY_CLOSE,       /* the body is complete: "</body></file>" follows */
    SHAPE,            /* in a getattr or readdir answer's template (answer_template) */
    SHAPE_ESCAPE,     /* after a backslash in one of its strings */
    UNKNOWN           /* an entity the guard does not know, or no memory: refuses nothing */
};

static const char body_close[] = "</body></file>";

/* The elements of a state and their attributes (docs/FORMAT.md §1.3), as
 * the parser knows them: attributes as bits of attributes_seen. */
static const char *const attribute_names[] = {"path",  "name", "mode",   "owner",   "group",
                                              "mtime", "size", "target", "encoding"};
enum { NODE_ATTRIBUTES = 0x3f, SIZE_BIT = 0x40, TARGET_BIT = 0x80, ENCODING_BIT = 0x100 };
static const struct element {
    const char *name;
    uint32_t allowed, required;
} elements[] = {
    {"filesystem", 0, 0},
    {"directory", NODE_ATTRIBUTES, NODE_ATTRIBUTES},
    {"file", NODE_ATTRIBUTES | SIZE_BIT, NODE_ATTRIBUTES | SIZE_BIT},
    {"symlink", NODE_ATTRIBUTES | TARGET_BIT, NODE_ATTRIBUTES | TARGET_BIT},
    {"body", ENCODING_BIT, 0},
};

/* Memory records, laid out as a stack:
 *   directory: [size_t parent record or SIZE_MAX][size_t prefix length][prefix]
 *     where prefix is what its entries' paths start with ("" for the root
 *     "/", "docs/" for docs);
 *   entry:     [size_t name length][name]
 *     one per entry of the innermost directory, after its record. */
enum { WORD = sizeof(size_t) };

void lf_guard_memory_free(lf_guard_memory *memory)
{
    free(memory->data);
    memory->data = NULL;
    memory->capacity = 0;
}

void lf_guard_start(lf_guard *guard, lf_guard_memory *memory, const lf_guard_plan *plan)
{
    memset(guard, 0, sizeof *guard);
    guard->memory = memory;
    guard->plan = plan;
    guard->place = START;
    guard->directory = SIZE_MAX;
    guard->content = -1;
}

/* Room to write memory [start, end). A trial (a copy that may be dropped)
 * must not write below the top of the guard it came from, which needs what
 * is there: one that would (it closed a directory and went on within the
 * same token) stops refusing instead, as it does when memory runs out. */
static bool room(lf_guard *guard, size_t start, size_t end)
{
    lf_guard_memory *memory = guard->memory;
    if (start < guard->floor) {
        guard->place = UNKNOWN;
        return false;
    }
    if (end <= memory->capacity)
        return true;
    size_t capacity = memory->capacity ? memory->capacity : 4096;
    while (capacity < end)
        capacity *= 2;
    uint8_t *data = realloc(memory->data, capacity);
    if (!data) {
        guard->failed = true;
        guard->place = UNKNOWN;
        return false;
    }
    memory->data = data;
    memory->capacity = capacity;
    return true;
}

static size_t read_word(const lf_guard *guard, size_t at)
{
    size_t word;
    memcpy(&word, guard->memory->data + at, WORD);
    return word;
}

static void write_word(lf_guard *guard, size_t at, size_t word)
{
    memcpy(guard->memory->data + at, &word, WORD);
}

static size_t prefix_length(const lf_guard *guard)
{
    return guard->directory == SIZE_MAX ? 0 : read_word(guard, guard->directory + WORD);
}

static const uint8_t *prefix(const lf_guard *guard)
{
    return guard->memory->data + guard->directory + 2 * WORD;
}

/* Where a path's name is written while it is read: the entry record that
 * the tag's end keeps. */
static size_t name_at(const lf_guard *guard)
{
    return guard->used + WORD;
}

static bool is_name_byte(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
}

static bool is_base64_byte(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Appends c to a short name, keeping at most `most` bytes: a longer one is
 * never one the guard looks for, and stays unequal to them. */
static void append_capped(char *text, uint8_t *length, size_t most, uint8_t c)
{
    if (*length < most)
        text[(*length)++] = (char)c;
    else
        *length = (uint8_t)(most + 1); /* "too long": matches nothing */
    text[*length <= most ? *length : most] = '\0';
}

static bool named(const char *text, size_t length, const char *name)
{
    return length == strlen(name) && memcmp(text, name, length) == 0;
}

static bool in_tag(const lf_guard *guard, const char *name)
{
    return named(guard->tag, guard->tag_length, name);
}

static bool is_entry_tag(const lf_guard *guard)
{
    return in_tag(guard, "directory") || in_tag(guard, "file") || in_tag(guard, "symlink");
}

/* The current tag's element, NULL for a name the parser does not know. */
static const struct element *element_of(const lf_guard *guard)
{
    for (size_t i = 0; i < sizeof elements / sizeof *elements; i++)
        if (in_tag(guard, elements[i].name))
            return &elements[i];
    return NULL;
}

/* The current attribute's bit, 0 for a name the parser does not know. */
static uint32_t attribute_bit(const lf_guard *guard)
{
    for (uint32_t bit = 0; bit < sizeof attribute_names / sizeof *attribute_names; bit++)
        if (named(guard->attribute, guard->attribute_length, attribute_names[bit]))
            return 1u << bit;
    return 0;
}

/* A decimal size (leading zeros allowed, as the parser allows them). */
static bool parse_size(const char *text, uint32_t length, uint64_t *size)
{
    if (length == 0 || length > 19)
        return false;
    uint64_t value = 0;
    for (uint32_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        value = value * 10 + (uint64_t)(text[i] - '0');
    }
    *size = value;
    return true;
}

/* Whether the innermost directory already has an entry of this name. */
static bool has_sibling(const lf_guard *guard, const uint8_t *name, size_t length)
{
    if (guard->directory == SIZE_MAX)
        return false;
    for (size_t at = guard->directory + 2 * WORD + prefix_length(guard); at < guard->used;) {
        size_t other = read_word(guard, at);
        if (other == length && memcmp(guard->memory->data + at + WORD, name, length) == 0)
            return true;
        at += WORD + other;
    }
    return false;
}

/* ---------------------------------------------------------------- */
/* Plans: what the operation does not name is copied                */

/* Paths as a state writes them: "/" for the root, "docs/a.txt" below it. */
static bool is_root(const uint8_t *path, size_t length)
{
    return length == 1 && path[0] == '/';
}

/* Whether path is top or lies below it. */
static bool path_within(const uint8_t *path, size_t length, const uint8_t *top, size_t top_length)
{
    if (is_root(top, top_length))
        return true;
    return length >= top_length && memcmp(path, top, top_length) == 0 &&
           (length == top_length || path[top_length] == '/');
}

/* Whether directory is path's parent (the root for "a"). */
static bool path_is_parent(const uint8_t *directory, size_t directory_length, const uint8_t *path,
                           size_t length)
{
    if (is_root(path, length))
        return false;
    size_t slash = length;
    while (slash > 0 && path[slash - 1] != '/')
        slash--;
    if (slash == 0)
        return is_root(directory, directory_length);
    return directory_length == slash - 1 && memcmp(directory, path, slash - 1) == 0;
}

/* Whether an operation naming `named` may change what lies at path: the
 * named path itself and, when it moves a subtree (below), what lies below
 * it. The root is never moved: rename of "/" fails. */
static bool named_covers(const uint8_t *named, size_t named_length, const uint8_t *path, size_t length,
                         bool below)
{
    if (below && !is_root(named, named_length))
        return path_within(path, length, named, named_length);
    return length == named_length && memcmp(path, named, length) == 0;
}

bool lf_guard_may_change(const char *path, size_t length, const char *const *named,
                         size_t named_count, bool below)
{
    for (size_t i = 0; i < named_count; i++) {
        const uint8_t *top = (const uint8_t *)named[i];
        size_t top_length = strlen(named[i]);
        if (named_covers(top, top_length, (const uint8_t *)path, length, below) ||
            path_is_parent((const uint8_t *)path, length, top, top_length))
            return true;
    }
    return false;
}

bool lf_guard_plan_may_change(const lf_guard_plan *plan, const char *path, size_t length)
{
    return lf_guard_may_change(path, length, (const char *const *)plan->named, plan->named_count,
                               plan->below);
}

static bool plan_may_change(const lf_guard_plan *plan, const uint8_t *path, size_t length)
{
    return lf_guard_plan_may_change(plan, (const char *)path, length);
}

static bool is_named(const lf_guard_plan *plan, int index, const uint8_t *path, size_t length)
{
    return index >= 0 && strlen(plan->named[index]) == length &&
           memcmp(plan->named[index], path, length) == 0;
}

/* The path a successful operation makes (create, mkdir, symlink, a
 * rename's new path), NULL for none. */
static const char *plan_present(const lf_guard_plan *plan)
{
    return plan->present >= 0 ? plan->named[plan->present] : NULL;
}

/* Whether a successful operation leaves no entry at path (unlink, rmdir,
 * a rename's old path). */
static bool must_be_absent(const lf_guard_plan *plan, const uint8_t *path, size_t length)
{
    return is_named(plan, plan->absent, path, length);
}

/* Whether the plan holds the guard here: it has one and is not copying. */
static bool planning(const lf_guard *guard)
{
    return guard->plan && guard->copy_at >= guard->copy_end;
}

static const lf_guard_kept *due_entry(const lf_guard *guard)
{
    const lf_guard_plan *plan = guard->plan;
    return guard->next_kept < plan->kept_count ? &plan->kept[guard->next_kept] : NULL;
}

static const uint8_t *kept_path(const lf_guard_plan *plan, const lf_guard_kept *kept)
{
    return plan->state + kept->path_start;
}

/* Whether a kept entry that is still due lies within path. */
static bool holds_due(const lf_guard *guard, const uint8_t *path, size_t length)
{
    const lf_guard_plan *plan = guard->plan;
    for (uint32_t i = guard->next_kept; i < plan->kept_count; i++)
        if (path_within(kept_path(plan, &plan->kept[i]), plan->kept[i].path_length, path, length))
            return true;
    return false;
}

/* Whether path is an old entry still to come in the plan's order (kept,
 * or keeping its place): it may be written only when due. */
static bool is_queued(const lf_guard *guard, const uint8_t *path, size_t length)
{
    const lf_guard_plan *plan = guard->plan;
    for (uint32_t i = guard->next_kept; i < plan->kept_count; i++)
        if (plan->kept[i].path_length == length && memcmp(kept_path(plan, &plan->kept[i]), path, length) == 0)
            return true;
    return false;
}

/* The path of the directory the next entry goes in; false at the top,
 * where the next entry is the root. */
static bool directory_path(const lf_guard *guard, const uint8_t **path, size_t *length)
{
    if (guard->directory == SIZE_MAX)
        return false;
    size_t prefix_bytes = prefix_length(guard);
    *path = prefix_bytes ? prefix(guard) : (const uint8_t *)"/";
    *length = prefix_bytes ? prefix_bytes - 1 : 1;
    return true;
}

typedef struct candidate {
    const uint8_t *path;
    size_t length;
    const lf_guard_kept *kept; /* NULL for a path that may change */
} candidate;

/* The paths an entry with this tag (NULL: any entry tag) may take here
 * under the plan: the due kept entry when it is this directory's, and the
 * children of this directory on the way to a named path that may change,
 * are not written yet, and are due if they hold kept entries (the old
 * order is kept, and what a directory holds is written in it).  Returns
 * how many, or SIZE_MAX within a named path, where the plan allows
 * anything. */
static size_t plan_candidates(const lf_guard *guard, const char *tag,
                              candidate out[1 + LF_GUARD_NAMED_MAX])
{
    const lf_guard_plan *plan = guard->plan;
    const uint8_t *directory = NULL;
    size_t directory_length = 0, count = 0;
    bool top = !directory_path(guard, &directory, &directory_length);
    for (size_t i = 0; !top && plan->below && i < plan->named_count; i++)
        if (named_covers((const uint8_t *)plan->named[i], strlen(plan->named[i]), directory,
                         directory_length, true))
            return SIZE_MAX;
    const lf_guard_kept *due = due_entry(guard);
    const uint8_t *due_path = due ? kept_path(plan, due) : NULL;
    if (due && (!tag || strcmp(tag, due->tag) == 0) &&
        (top ? is_root(due_path, due->path_length)
             : path_is_parent(directory, directory_length, due_path, due->path_length)))
        out[count++] = (candidate){due_path, due->path_length, due};
    for (size_t i = 0; i < plan->named_count; i++) {
        const uint8_t *named = (const uint8_t *)plan->named[i];
        size_t named_length = strlen(plan->named[i]), step = 1;
        if (!top) { /* this directory's child on the way to the named path */
            if (!path_within(named, named_length, directory, directory_length))
                continue;
            size_t skip = prefix_length(guard);
            for (step = skip; step < named_length && named[step] != '/'; step++)
                ;
            if (has_sibling(guard, named + skip, step - skip))
                continue;
        }
        const uint8_t *path = top ? (const uint8_t *)"/" : named;
        if (!plan_may_change(plan, path, step) || is_queued(guard, path, step))
            continue;
        /* a directory that holds kept entries stays one, written when they
         * are due; that wins over what a successful operation would leave
         * (an unlink or mkdir of a full directory fails) */
        bool holds = holds_due(guard, path, step);
        if (holds && (!due || !path_within(due_path, due->path_length, path, step) ||
                      (tag && strcmp(tag, "directory") != 0)))
            continue;
        if (!holds && must_be_absent(plan, path, step))
            continue;
        if (!holds && is_named(plan, plan->present, path, step) && tag && plan->present_tag &&
            strcmp(tag, plan->present_tag) != 0)
            continue; /* what the operation makes, made as something else */
        const char *present = plan_present(plan);
        if (present && tag && strcmp(tag, "directory") != 0 &&
            path_is_parent(path, step, (const uint8_t *)present, strlen(present)))
            continue; /* the directory it makes something in */
        bool seen = false;
        for (size_t j = 0; j < count; j++)
            seen |= out[j].length == step && memcmp(out[j].path, path, step) == 0;
        if (!seen)
            out[count++] = (candidate){path, step, NULL};
    }
    return count;
}

/* Whether an entry tag may open here under the plan. */
static bool plan_allows_tag(const lf_guard *guard, const char *tag)
{
    candidate candidates[1 + LF_GUARD_NAMED_MAX];
    return plan_candidates(guard, tag, candidates) > 0;
}

/* The candidate whose path the path value written so far (length bytes,
 * the last one just written) begins (whole: is); NULL for none. */
static const candidate *plan_path_match(const lf_guard *guard, size_t length, bool whole,
                                        const candidate *candidates, size_t count)
{
    size_t skip = prefix_length(guard);
    const uint8_t *written = guard->memory->data + name_at(guard);
    for (size_t i = 0; i < count; i++) {
        const candidate *c = &candidates[i];
        if ((whole ? c->length == length : c->length >= length) &&
            (length <= skip || memcmp(c->path + skip, written, length - skip) == 0))
            return c;
    }
    return NULL;
}

/* A path value under the plan, length bytes so far (whole: its closing
 * quote has come): false to refuse it. A whole path that is the due kept
 * entry's starts the copy of that entry. */
static bool plan_take_path(lf_guard *guard, size_t length, bool whole)
{
    candidate candidates[1 + LF_GUARD_NAMED_MAX];
    char tag[LF_GUARD_NAME_MAX + 1];
    memcpy(tag, guard->tag, sizeof tag);
    size_t count = plan_candidates(guard, tag, candidates);
    if (count == SIZE_MAX)
        return true;
    const candidate *match = plan_path_match(guard, length, whole, candidates, count);
    if (!match)
        return false;
    if (whole && match->kept) {
        guard->copy_at = match->kept->copy_start;
        guard->copy_end = match->kept->copy_end;
        guard->next_kept = match->kept->after;
    }
    for (size_t i = 0; whole && !match->kept && i < guard->plan->named_count; i++)
        if (strlen(guard->plan->named[i]) == match->length &&
            memcmp(guard->plan->named[i], match->path, match->length) == 0 &&
            guard->plan->content_attribute[i])
            guard->content = (int)i;
    if (whole && guard->copy_at >= guard->copy_end) { /* the model writes what it holds */
        const char *present = plan_present(guard->plan);
        guard->must_hold = holds_due(guard, match->path, match->length) ||
                           (present && path_is_parent(match->path, match->length,
                                                      (const uint8_t *)present, strlen(present)));
    }
    return true;
}

/* Whether the innermost open element may end here under the plan: not a
 * directory while a kept entry within it is due, nor the state while any
 * is. */
static bool plan_allows_end(const lf_guard *guard, const char *element)
{
    const uint8_t *directory;
    size_t directory_length;
    if (!planning(guard))
        return true;
    if (strcmp(element, "filesystem") == 0)
        return !due_entry(guard);
    if (strcmp(element, "directory") != 0 || !directory_path(guard, &directory, &directory_length))
        return true;
    const lf_guard_kept *due = due_entry(guard);
    if (due && path_within(kept_path(guard->plan, due), due->path_length, directory, directory_length))
        return false;
    /* the entry the operation makes, when this is its directory */
    const char *present = plan_present(guard->plan);
    if (!present || !path_is_parent(directory, directory_length, (const uint8_t *)present, strlen(present)))
        return true;
    size_t skip = prefix_length(guard);
    return has_sibling(guard, (const uint8_t *)present + skip, strlen(present) - skip);
}

static const char mtime_shape[] = "dddd-dd-ddTdd:dd:dd"; /* digits where 'd' */

/* Whether byte `at` of a value may be c, for the values whose syntax the
 * parser checks: size (decimal), mode (octal, at most 7777), mtime. */
static bool value_byte_fits(const lf_guard *guard, uint32_t at, uint8_t c)
{
    bool digit = c >= '0' && c <= '9';
    if (named(guard->attribute, guard->attribute_length, "size"))
        return digit;
    if (named(guard->attribute, guard->attribute_length, "mtime"))
        return at < sizeof mtime_shape - 1 &&
               (mtime_shape[at] == 'd' ? digit : c == (uint8_t)mtime_shape[at]);
    if (named(guard->attribute, guard->attribute_length, "mode")) {
        if (c < '0' || c > '7' || at >= LF_GUARD_VALUE_MAX)
            return false;
        uint32_t mode = 0; /* the digits so far are at most 07777 (leading zeros allowed) */
        for (uint32_t i = 0; i < at; i++)
            mode = mode * 8 + (uint32_t)(guard->value[i] - '0');
        return mode * 8 + (uint32_t)(c - '0') <= 07777;
    }
    return true;
}

/* Whether a value may end here (its closing quote). */
static bool value_complete(const lf_guard *guard)
{
    bool number = named(guard->attribute, guard->attribute_length, "size") ||
                  named(guard->attribute, guard->attribute_length, "mode");
    if (number)
        return guard->value_length > 0;
    if (named(guard->attribute, guard->attribute_length, "mtime"))
        return guard->value_length == sizeof mtime_shape - 1;
    return true;
}

/* A byte of an attribute value; false to refuse it. A path is the
 * directory's prefix and then one name (kept in memory); a name is that
 * name again. */
static bool take_value_byte(lf_guard *guard, uint8_t c)
{
    if (c == '<')
        return false;
    uint32_t at = guard->value_length;
    bool entry = is_entry_tag(guard);
    if (!value_byte_fits(guard, at, c))
        return false;
    if (entry && named(guard->attribute, guard->attribute_length, "path")) {
        size_t skip = prefix_length(guard);
        if (at < skip) {
            if (c != prefix(guard)[at])
                return false;
        } else {
            if (c == '/' && guard->directory != SIZE_MAX)
                return false;
            size_t write_at = name_at(guard) + (at - skip);
            if (!room(guard, write_at, write_at + 1))
                return true;
            guard->memory->data[write_at] = c;
            if (planning(guard) && !plan_take_path(guard, at + 1, false))
                return false;
        }
    } else if (entry && guard->named && named(guard->attribute, guard->attribute_length, "name")) {
        if (at >= guard->name_length || guard->memory->data[guard->name_start + at] != c)
            return false;
    }
    if (at < LF_GUARD_VALUE_MAX)
        guard->value[at] = (char)c;
    guard->value_length++;
    return true;
}

/* The closing quote of an attribute value; false to refuse it. */
static bool end_attribute(lf_guard *guard)
{
    const char *value = guard->value;
    uint32_t length = guard->value_length;
    bool short_value = length <= LF_GUARD_VALUE_MAX;
    if (!value_complete(guard))
        return false;
    if (is_entry_tag(guard)) {
        if (named(guard->attribute, guard->attribute_length, "path")) {
            size_t skip = prefix_length(guard);
            if (length < skip)
                return false;
            size_t name_length = length - skip;
            if (guard->directory != SIZE_MAX &&
                (name_length == 0 ||
                 has_sibling(guard, guard->memory->data + name_at(guard), name_length)))
                return false;
            if (planning(guard) && !plan_take_path(guard, length, true))
                return false;
            guard->named = true;
            guard->name_start = name_at(guard);
            guard->name_length = name_length;
        } else if (named(guard->attribute, guard->attribute_length, "name") && guard->named &&
                   length != guard->name_length) {
            return false;
        }
    }
    if (in_tag(guard, "file") && named(guard->attribute, guard->attribute_length, "size"))
        guard->size_known = short_value && parse_size(value, length, &guard->size);
    else if (in_tag(guard, "body") && named(guard->attribute, guard->attribute_length, "encoding"))
        guard->base64 = short_value && named(value, length, "base64");
    return true;
}

/* An entry's tag has ended: its name joins its directory's, and a
 * directory that is not empty opens. */
static void end_entry(lf_guard *guard, bool self_closing)
{
    if (!guard->named)
        return;
    size_t name_length = guard->name_length, record = guard->used;
    if (!room(guard, record, record + WORD + name_length))
        return;
    write_word(guard, record, name_length);
    size_t end = record + WORD + name_length;
    guard->used = end;
    guard->named = false;
    if (self_closing || !in_tag(guard, "directory"))
        return;
    /* the root "/" holds "name", every other directory "its/path/name" */
    bool root = guard->directory == SIZE_MAX;
    const uint8_t *name = guard->memory->data + record + WORD;
    size_t parent_length = prefix_length(guard);
    size_t length = root && name_length == 1 && name[0] == '/' ? 0 : parent_length + name_length + 1;
    if (!room(guard, end, end + 2 * WORD + length))
        return;
    uint8_t *data = guard->memory->data;
    write_word(guard, end, guard->directory);
    write_word(guard, end + WORD, length);
    if (length) {
        if (!root)
            memcpy(data + end + 2 * WORD, prefix(guard), parent_length);
        memcpy(data + end + 2 * WORD + parent_length, data + record + WORD, name_length);
        data[end + 2 * WORD + length - 1] = '/';
    }
    guard->directory = end;
    guard->used = end + 2 * WORD + length;
}

/* The '>' of a start tag: a <body> of a known size opens a counted body;
 * any other tag but <file> forgets the size. */
static void end_start_tag(lf_guard *guard, bool self_closing)
{
    guard->place = self_closing && in_tag(guard, "filesystem") ? DONE : TEXT;
    if (in_tag(guard, "directory") && guard->depth == 0)
        guard->root_written = true;
    if (in_tag(guard, "body"))
        guard->file_has_body = true;
    if (!self_closing) {
        guard->in_filesystem |= in_tag(guard, "filesystem");
        guard->depth += in_tag(guard, "directory");
        guard->in_symlink = in_tag(guard, "symlink");
        guard->in_body = in_tag(guard, "body");
        if (in_tag(guard, "file")) {
            guard->in_file = true;
            guard->file_has_body = false;
        }
    }
    if (is_entry_tag(guard))
        end_entry(guard, self_closing);
    if (guard->failed || in_tag(guard, "file"))
        return;
    bool counted = in_tag(guard, "body") && !self_closing && guard->size_known;
    guard->size_known = false;
    if (!counted)
        return;
    guard->body_written = 0;
    if (guard->base64) {
        guard->body_expected = (guard->size + 2) / 3 * 4;
        guard->padding = (uint8_t)((3 - guard->size % 3) % 3);
        guard->place = BODY_BASE64;
    } else {
        guard->body_expected = guard->size;
        guard->place = BODY_TEXT;
    }
    if (guard->body_expected == 0)
        guard->place = BODY_CLOSE;
}

/* The '>' of an end tag: </directory> closes the innermost directory. */
static void end_end_tag(lf_guard *guard)
{
    guard->place = in_tag(guard, "filesystem") ? DONE : TEXT;
    if (in_tag(guard, "body"))
        guard->in_body = false;
    else if (in_tag(guard, "file"))
        guard->in_file = false;
    else if (in_tag(guard, "symlink"))
        guard->in_symlink = false;
    else if (in_tag(guard, "filesystem"))
        guard->in_filesystem = false;
    else if (in_tag(guard, "directory")) {
        guard->depth--;
        if (guard->directory != SIZE_MAX) {
            guard->used = guard->directory;
            guard->directory = read_word(guard, guard->directory);
        }
    }
}

/* UTF-8 bytes of a code point, 0 for none. */
static uint64_t utf8_length(uint64_t code_point)
{
    return code_point < 0x80 ? 1 : code_point < 0x800 ? 2 : code_point < 0x10000 ? 3
           : code_point < 0x110000                    ? 4
                                                      : 0;
}

/* The bytes an entity's name (between '&' and ';') stands for, 0 for a
 * name the guard does not know. */
static uint64_t entity_bytes(const char *name, uint8_t length)
{
    static const char *const predefined[] = {"amp", "lt", "gt", "quot", "apos"};
    for (size_t i = 0; i < sizeof predefined / sizeof *predefined; i++)
        if (named(name, length, predefined[i]))
            return 1;
    if (length < 2 || name[0] != '#')
        return 0;
    bool hex = name[1] == 'x';
    uint64_t code_point = 0;
    uint8_t digits = 0;
    for (uint8_t i = hex ? 2 : 1; i < length; i++, digits++) {
        char c = name[i];
        int digit = c >= '0' && c <= '9'          ? c - '0'
                    : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
        if (digit < 0 || code_point > 0x10FFFF)
            return 0;
        code_point = code_point * (hex ? 16 : 10) + (uint64_t)digit;
    }
    return digits ? utf8_length(code_point) : 0;
}

static bool starts_with(const char *name, const char *text, size_t length)
{
    return strlen(name) >= length && memcmp(name, text, length) == 0;
}

/* Whether the innermost directory has no entry yet: its end would make
 * <directory ...></directory>, which the canonical form writes as
 * <directory ... />. */
static bool directory_is_empty(const lf_guard *guard)
{
    return guard->directory != SIZE_MAX &&
           guard->used == guard->directory + 2 * WORD + prefix_length(guard);
}

/* Whether an element may open here. */
static bool may_open(const lf_guard *guard, const char *element)
{
    bool entry = strcmp(element, "directory") == 0 || strcmp(element, "file") == 0 ||
                 strcmp(element, "symlink") == 0;
    if (guard->in_body || guard->in_symlink)
        return false;
    if (guard->in_file)
        return strcmp(element, "body") == 0 && !guard->file_has_body;
    if (guard->depth > 0)
        return entry && (!planning(guard) || plan_allows_tag(guard, element));
    if (guard->in_filesystem)
        return strcmp(element, "directory") == 0 && !guard->root_written;
    return strcmp(element, "filesystem") == 0;
}

/* The element an end tag closes: the innermost open one, NULL for none. */
static const char *innermost(const lf_guard *guard)
{
    return guard->in_body      ? "body"
           : guard->in_file    ? (guard->file_has_body ? "file" : NULL)
           : guard->in_symlink ? "symlink"
           : guard->depth > 0  ? "directory"
           : guard->in_filesystem ? "filesystem"
                                  : NULL;
}

/* Appends c to the tag's name: false when no element that may open here
 * (a start tag) or the innermost open element (an end tag) starts so, so
 * that a tag is never begun that could not be finished. */
static bool extend_tag(lf_guard *guard, uint8_t c, bool end_tag)
{
    append_capped(guard->tag, &guard->tag_length, LF_GUARD_NAME_MAX, c);
    if (end_tag)
        return innermost(guard) && starts_with(innermost(guard), guard->tag, guard->tag_length);
    for (size_t i = 0; i < sizeof elements / sizeof *elements; i++)
        if (starts_with(elements[i].name, guard->tag, guard->tag_length) &&
            may_open(guard, elements[i].name))
            return true;
    return false;
}

/* The attributes the current tag may still take: under a plan an entry
 * gives its path first, which the plan needs to know what it is. */
static uint32_t open_attributes(const lf_guard *guard)
{
    uint32_t open = element_of(guard)->allowed & ~guard->attributes_seen;
    enum { PATH_BIT = 1 };
    if (guard->plan && is_entry_tag(guard) && !(guard->attributes_seen & PATH_BIT))
        open &= PATH_BIT;
    return open;
}

/* Appends c to the attribute's name: false when no attribute the element
 * may still take starts so. */
static bool extend_attribute(lf_guard *guard, uint8_t c)
{
    append_capped(guard->attribute, &guard->attribute_length, LF_GUARD_NAME_MAX, c);
    uint32_t open = open_attributes(guard);
    for (uint32_t bit = 0; bit < sizeof attribute_names / sizeof *attribute_names; bit++)
        if ((open & (1u << bit)) &&
            starts_with(attribute_names[bit], guard->attribute, guard->attribute_length))
            return true;
    return false;
}

/* A byte inside a tag (TAG_START to END_TAG); false to refuse it. Tags
 * are held to the canonical syntax: known elements and attributes (refused
 * at their first byte that no known name has there), each attribute once,
 * double quotes, whitespace between attributes. */
static bool take_tag_byte(lf_guard *guard, uint8_t c)
{
    switch ((enum place)guard->place) {
    case TAG_START:
        guard->tag_length = 0;
        guard->tag[0] = '\0';
        guard->attributes_seen = 0;
        guard->base64 = false;
        guard->must_hold = false;
        guard->content = -1;
        if (c != '/' && !is_name_byte(c))
            return false;
        if (c == '/') {
            guard->place = END_TAG;
            return innermost(guard) != NULL && plan_allows_end(guard, innermost(guard)) &&
                   !(strcmp(innermost(guard), "directory") == 0 && directory_is_empty(guard));
        }
        guard->place = TAG_NAME;
        return extend_tag(guard, c, false);
    case TAG_NAME:
        if (is_name_byte(c))
            return extend_tag(guard, c, false);
        if (!element_of(guard) || !may_open(guard, element_of(guard)->name))
            return false;
        guard->place = AFTER_VALUE; /* where a space or the tag's end may follow */
        return take_tag_byte(guard, c);
    case TAG_INSIDE:
    case AFTER_VALUE:
        if (c == ' ' && guard->place == AFTER_VALUE) {
            guard->place = TAG_INSIDE;
        } else if (c == '/' || c == '>') {
            uint32_t required = element_of(guard)->required;
            if ((guard->attributes_seen & required) != required)
                return false;
            if (c == '/' && in_tag(guard, "file"))
                return false; /* a file without a body */
            if (c == '/' && (guard->must_hold ||
                             (in_tag(guard, "filesystem") && !plan_allows_end(guard, "filesystem"))))
                return false; /* an element without the kept entries it holds */
            if (c == '/' && in_tag(guard, "body") && guard->size_known && guard->size > 0)
                return false; /* <body /> for a file that has bytes */
            if (c == '/') {
                guard->place = TAG_SLASH;
            } else {
                bool directory = in_tag(guard, "directory");
                end_start_tag(guard, false);
                /* an empty directory is written <directory ... />: under a
                 * plan, one that can hold nothing here must close so */
                candidate candidates[1 + LF_GUARD_NAMED_MAX];
                if (directory && planning(guard) && !guard->failed &&
                    plan_candidates(guard, NULL, candidates) == 0)
                    return false;
            }
        } else if (guard->place == TAG_INSIDE && is_name_byte(c)) {
            guard->attribute_length = 0;
            guard->place = ATTRIBUTE_NAME;
            return extend_attribute(guard, c);
        } else {
            return false;
        }
        return true;
    case ATTRIBUTE_NAME:
        if (is_name_byte(c))
            return extend_attribute(guard, c);
        uint32_t bit = attribute_bit(guard);
        if (c != '=' || !(bit & open_attributes(guard)))
            return false;
        guard->attributes_seen |= bit;
        guard->place = ATTRIBUTE_EQUALS;
        return true;
    case ATTRIBUTE_EQUALS:
        if (c != '"')
            return false;
        guard->value_length = 0;
        guard->place = ATTRIBUTE_VALUE;
        if (guard->content >= 0 && (guard->attributes_seen & NODE_ATTRIBUTES) == NODE_ATTRIBUTES &&
            named(guard->attribute, guard->attribute_length,
                  guard->plan->content_attribute[guard->content])) {
            guard->copy_at = guard->plan->content_start[guard->content];
            guard->copy_end = guard->plan->content_end[guard->content];
        }
        return true;
    case ATTRIBUTE_VALUE:
        if (c != '"')
            return take_value_byte(guard, c);
        if (!end_attribute(guard))
            return false;
        guard->place = AFTER_VALUE;
        return true;
    case TAG_SLASH:
        if (c != '>')
            return false;
        end_start_tag(guard, true);
        return true;
    case END_TAG:
        if (c != '>')
            return is_name_byte(c) && extend_tag(guard, c, true);
        if (!innermost(guard) || !in_tag(guard, innermost(guard)))
            return false;
        end_end_tag(guard);
        return true;
    default:
        return true;
    }
}

/* A byte of a counted body (BODY_TEXT to BODY_CLOSE); false to refuse it. */
static bool take_body_byte(lf_guard *guard, uint8_t c)
{
    switch ((enum place)guard->place) {
    case BODY_TEXT:
        if (c == '&') {
            guard->entity_length = 0;
            guard->place = BODY_ENTITY;
        } else if (c == '<') {
            return false; /* the body's end, before its last byte */
        } else {
            guard->body_written++;
        }
        if (guard->body_written == guard->body_expected)
            guard->place = BODY_CLOSE;
        return true;
    case BODY_ENTITY: {
        if (c != ';') {
            append_capped(guard->entity, &guard->entity_length, LF_GUARD_ENTITY_MAX, c);
            if (guard->entity_length > LF_GUARD_ENTITY_MAX)
                guard->place = UNKNOWN;
            return true;
        }
        uint64_t bytes = entity_bytes(guard->entity, guard->entity_length);
        if (bytes == 0) {
            guard->place = UNKNOWN;
            return true;
        }
        if (guard->body_written + bytes > guard->body_expected)
            return false;
        guard->body_written += bytes;
        guard->place = guard->body_written == guard->body_expected ? BODY_CLOSE : BODY_TEXT;
        return true;
    }
    case BODY_BASE64:
        if (guard->body_written >= guard->body_expected - guard->padding ? c != '='
                                                                          : !is_base64_byte(c))
            return false;
        if (++guard->body_written == guard->body_expected)
            guard->place = BODY_CLOSE;
        return true;
    case BODY_CLOSE:
        /* body_written counts the closing tags' bytes from here */
        if (c != (uint8_t)body_close[guard->body_written - guard->body_expected])
            return false;
        if (++guard->body_written - guard->body_expected == sizeof body_close - 1) {
            guard->place = TEXT;
            guard->in_body = guard->in_file = false;
        }
        return true;
    default:
        return true;
    }
}

/* ---------------------------------------------------------------- */
/* The shapes of getattr and readdir answers                         */

/* Python's json.dumps of the seed's getattr dictionary and listing
 * (docs/FORMAT.md §4), as templates: an upper-case letter is a field that
 * runs up to the template's next byte, which it cannot hold. O: an octal
 * mode up to 7777; D: a decimal size; T: an entry type; M: an mtime; S: a
 * JSON string's inside; N: a readdir name (a string, not one listed
 * before); L: the rest of a listing, `,"N"` any number of times, then `]`. */
static const char getattr_template[] =
    "{\"mode\": \"O\", \"size\": D, \"type\": \"T\", \"mtime\": \"M\", \"owner\": \"S\", \"group\": \"S\"}";
static const char readdir_template[] = "[\".\",\"..\"L,\"N\"";
enum { LIST_AT = 9 }; /* readdir_template's L: after a name, the listing goes on there */
static const char *const entry_types[] = {"file", "directory", "symlink"};

static const char *answer_template(const lf_guard *guard)
{
    return guard->plan->answer == LF_GUARD_ANSWER_GETATTR ? getattr_template : readdir_template;
}

/* Whether the field's bytes so far (in guard->value) may end here. */
static bool field_complete(const lf_guard *guard, char field)
{
    if (field == 'T') {
        for (size_t i = 0; i < sizeof entry_types / sizeof *entry_types; i++)
            if (named(guard->value, guard->value_length, entry_types[i]))
                return true;
        return false;
    }
    if (field == 'N' && guard->value_length == 0)
        return false;
    return field == 'S' || field == 'N' || value_complete(guard);
}

/* Whether c may be the field's next byte. */
static bool field_byte_fits(const lf_guard *guard, char field, uint8_t c)
{
    uint32_t at = guard->value_length;
    switch (field) {
    case 'T':
        for (size_t i = 0; i < sizeof entry_types / sizeof *entry_types; i++)
            if (at < strlen(entry_types[i]) && starts_with(entry_types[i], guard->value, at) &&
                entry_types[i][at] == c)
                return true;
        return false;
    case 'S':
    case 'N': /* a JSON string's inside, ASCII as json.dumps writes it; no '/' in a name */
        return c >= 0x20 && c < 0x7f && c != '"' && !(field == 'N' && c == '/');
    default:
        return value_byte_fits(guard, at, c);
    }
}

/* The attribute whose value rules a field follows. */
static void start_field(lf_guard *guard, char field)
{
    const char *rules = field == 'O' ? "mode" : field == 'D' ? "size" : field == 'M' ? "mtime" : "";
    guard->attribute_length = (uint8_t)strlen(rules);
    memcpy(guard->attribute, rules, guard->attribute_length + 1);
    guard->value_length = 0;
}

/* A readdir name is complete: false when it was listed before (".."
 * and "." always were), else it joins the list (in memory, as directory
 * entries are kept). */
static bool list_name(lf_guard *guard)
{
    size_t length = guard->value_length, record = guard->used;
    const uint8_t *name = guard->memory->data + record + WORD;
    if ((length == 1 || length == 2) && memcmp(name, "..", length) == 0)
        return false;
    for (size_t at = 0; at < record;) {
        size_t other = read_word(guard, at);
        if (other == length && memcmp(guard->memory->data + at + WORD, name, length) == 0)
            return false;
        at += WORD + other;
    }
    if (!room(guard, record, record + WORD))
        return true;
    write_word(guard, record, length);
    guard->used = record + WORD + length;
    return true;
}

/* A byte of a getattr or readdir answer (place SHAPE or SHAPE_ESCAPE);
 * false to refuse it. value holds a field's bytes; a readdir name is
 * written to memory above the names listed, as a path's name is. */
static bool take_shape_byte(lf_guard *guard, uint8_t c)
{
    const char *template = answer_template(guard);
    char field = template[guard->template_at];
    bool in_field = field >= 'A' && field <= 'Z';
    if (field == 'N' || guard->place == SHAPE_ESCAPE) { /* names are kept whole for the list */
        size_t write_at = guard->used + WORD + guard->value_length;
        if (field == 'N' && !room(guard, write_at, write_at + 1))
            return true;
        if (field == 'N')
            guard->memory->data[write_at] = c;
    }
    if (guard->place == SHAPE_ESCAPE) { /* \" \\ \/ \b \f \n \r \t \uXXXX: one byte of it suffices */
        if (!memchr("\"\\/bfnrtu", c, 10))
            return false;
        guard->place = SHAPE;
        guard->value_length++;
        return true;
    }
    if (field == 'L') {
        if (c == ']') {
            guard->place = DONE;
            return true;
        }
        if (c != ',')
            return false;
        guard->template_at = LIST_AT + 2; /* on to "N" */
        return true;
    }
    if (in_field && c == (uint8_t)template[guard->template_at + 1] && field_complete(guard, field)) {
        if (field == 'N' && !list_name(guard))
            return false;
        guard->template_at = (uint16_t)(guard->template_at + 2);
    } else if (in_field) {
        if (c == '\\' && (field == 'S' || field == 'N')) {
            guard->place = SHAPE_ESCAPE;
            guard->value_length++;
            return true;
        }
        if (!field_byte_fits(guard, field, c))
            return false;
        if (guard->value_length < LF_GUARD_VALUE_MAX)
            guard->value[guard->value_length] = (char)c;
        guard->value_length++;
        return true;
    } else if (c == (uint8_t)template[guard->template_at]) {
        guard->template_at++;
    } else {
        return false;
    }
    if (template == readdir_template && template[guard->template_at] == '\0')
        guard->template_at = LIST_AT;
    char next = template[guard->template_at];
    if (next == '\0')
        guard->place = DONE;
    else if (next >= 'A' && next <= 'Z')
        start_field(guard, next);
    return true;
}

static bool take_syntax_byte(lf_guard *guard, uint8_t c)
{
    switch ((enum place)guard->place) {
    case START:
        if (guard->plan && guard->plan->answer != LF_GUARD_ANSWER_STATE) {
            guard->place = SHAPE;
            if (c != '{' && c != '[') { /* an error, not a getattr or readdir answer */
                guard->place = UNKNOWN;
                return true;
            }
            return take_shape_byte(guard, c);
        }
        guard->place = c == '<' ? TAG_START : UNKNOWN;
        return true;
    case SHAPE:
    case SHAPE_ESCAPE:
        return take_shape_byte(guard, c);
    case TEXT:
        if (c != '<')
            return false;
        guard->place = TAG_START;
        return true;
    case DONE:
        return false;
    case UNKNOWN:
        return true;
    case BODY_TEXT:
    case BODY_ENTITY:
    case BODY_BASE64:
    case BODY_CLOSE:
        return take_body_byte(guard, c);
    default:
        return take_tag_byte(guard, c);
    }
}

/* A byte of the state, held to the old state's byte while copying. */
static bool take_byte(lf_guard *guard, uint8_t c)
{
    if (guard->copy_at < guard->copy_end && guard->place != UNKNOWN) {
        if (c != guard->plan->state[guard->copy_at])
            return false;
        bool taken = take_syntax_byte(guard, c); /* the plan's rules sleep until the copy ends */
        guard->copy_at++;
        return taken;
    }
    return take_syntax_byte(guard, c);
}

/* Takes the bytes into a copy of the guard, writing memory from floor up. */
static bool try_bytes(const lf_guard *guard, const uint8_t *bytes, size_t length, size_t floor,
                      lf_guard *trial)
{
    *trial = *guard;
    trial->floor = floor;
    for (size_t i = 0; i < length; i++)
        if (!take_byte(trial, bytes[i]))
            return false;
    return true;
}

bool lf_guard_take(lf_guard *guard, const uint8_t *bytes, size_t length)
{
    lf_guard trial;
    if (!try_bytes(guard, bytes, length, 0, &trial))
        return false;
    *guard = trial;
    return true;
}

bool lf_guard_may_end(const lf_guard *guard)
{
    return guard->place == START || guard->place == DONE || guard->place == UNKNOWN;
}

static bool allows(const lf_guard *guard, const lf_tokenizer *tokenizer, uint32_t token)
{
    if (!guard)
        return true;
    if (token == LF_TOKEN_ENDOFTEXT)
        return lf_guard_may_end(guard);
    size_t length;
    const uint8_t *bytes = lf_tokenizer_token_bytes(tokenizer, token, &length);
    lf_guard trial;
    return bytes && try_bytes(guard, bytes, length, guard->used, &trial);
}

bool lf_guard_best_two(const lf_guard *guard, const lf_tokenizer *tokenizer, const float *logits,
                       uint32_t vocabulary, uint32_t *best, uint32_t *second)
{
    bool have_best = false, have_second = false;
    for (uint32_t token = 0; token < vocabulary; token++) {
        /* strict comparisons: the lowest id among equals, as argmax */
        if (!have_best || logits[token] > logits[*best]) {
            if (!allows(guard, tokenizer, token))
                continue;
            if (have_best) {
                *second = *best;
                have_second = true;
            }
            *best = token;
            have_best = true;
        } else if (!have_second || logits[token] > logits[*second]) {
            if (!allows(guard, tokenizer, token))
                continue;
            *second = token;
            have_second = true;
        }
    }
    if (have_best && !have_second)
        *second = *best;
    return have_best;
}

/* ---------------------------------------------------------------- */
/* Making plans                                                      */

void lf_guard_plan_free(lf_guard_plan *plan)
{
    free(plan->state);
    free(plan->kept);
    for (size_t i = 0; i < plan->named_count; i++)
        free(plan->named[i]);
    *plan = (lf_guard_plan){.absent = -1, .present = -1};
}

/* An entry element of the old state, as the scan finds it. */
typedef struct scanned {
    size_t path_start, path_length, copy_start, tag_end, end;
    size_t target_start, target_length; /* a symlink's */
    const char *tag;
} scanned;

/* Where the attribute value after `key="` starts in [from, to), or 0. */
static size_t value_after(const uint8_t *state, size_t from, size_t to, const char *key)
{
    size_t key_length = strlen(key);
    for (size_t at = from; at + key_length <= to; at++)
        if (memcmp(state + at, key, key_length) == 0)
            return at + key_length;
    return 0;
}

static size_t value_length(const uint8_t *state, size_t start, size_t size)
{
    const uint8_t *quote = memchr(state + start, '"', size - start);
    return quote ? (size_t)(quote - state) - start : size - start;
}

/* The entries of a canonical state (one the guard takes whole: '<' only
 * at tags, '"' only around values), in document order; 1 when an entry
 * does not give its path first, -ENOMEM. */
static int64_t scan_entries(const uint8_t *state, size_t size, scanned **entries, size_t *count)
{
    static const char *const tags[] = {"directory", "file", "symlink"};
    size_t capacity = 0, depth = 0, *open = NULL; /* open elements: an entry's index or SIZE_MAX */
    size_t open_capacity = 0;
    int64_t status = 0;
    *entries = NULL;
    *count = 0;
    for (size_t at = 0; status == 0 && at < size; at++) {
        if (state[at] != '<')
            continue;
        size_t end = at + 1;
        bool quoted = false;
        while (end < size && (quoted || state[end] != '>'))
            quoted ^= state[end++] == '"';
        if (end >= size)
            break;
        if (state[at + 1] == '/') {
            size_t closed = depth ? open[--depth] : SIZE_MAX;
            if (closed != SIZE_MAX)
                (*entries)[closed].end = end + 1;
            at = end;
            continue;
        }
        size_t name_end = at + 1;
        while (name_end < end && state[name_end] != ' ' && state[name_end] != '/')
            name_end++;
        const char *tag = NULL;
        for (size_t i = 0; i < sizeof tags / sizeof *tags; i++)
            if (strlen(tags[i]) == name_end - at - 1 && memcmp(state + at + 1, tags[i], name_end - at - 1) == 0)
                tag = tags[i];
        bool self_closing = state[end - 1] == '/';
        size_t index = SIZE_MAX;
        if (tag) {
            static const char path_first[] = " path=\"";
            if (end - name_end < sizeof path_first ||
                memcmp(state + name_end, path_first, sizeof path_first - 1) != 0) {
                status = 1;
                break;
            }
            if (*count == capacity) {
                capacity = capacity ? 2 * capacity : 64;
                scanned *grown = realloc(*entries, capacity * sizeof *grown);
                if (!grown) {
                    status = -ENOMEM;
                    break;
                }
                *entries = grown;
            }
            scanned *entry = &(*entries)[*count];
            *entry = (scanned){.tag = tag, .path_start = name_end + sizeof path_first - 1,
                               .tag_end = end + 1, .end = end + 1};
            entry->path_length = value_length(state, entry->path_start, end);
            entry->copy_start = entry->path_start + entry->path_length + 1;
            entry->target_start = value_after(state, entry->copy_start, end, " target=\"");
            if (entry->target_start)
                entry->target_length = value_length(state, entry->target_start, end);
            index = (*count)++;
        }
        if (!self_closing) {
            if (depth == open_capacity) {
                open_capacity = open_capacity ? 2 * open_capacity : 16;
                size_t *grown = realloc(open, open_capacity * sizeof *grown);
                if (!grown) {
                    status = -ENOMEM;
                    break;
                }
                open = grown;
            }
            open[depth++] = index;
        }
        at = end;
    }
    free(open);
    if (status != 0) {
        free(*entries);
        *entries = NULL;
    }
    return status;
}

/* Adds a named path (as the state writes it), once; false when there is
 * no room, -ENOMEM aside. */
static int64_t add_named(lf_guard_plan *plan, const uint8_t *path, size_t length)
{
    for (size_t i = 0; i < plan->named_count; i++)
        if (strlen(plan->named[i]) == length && memcmp(plan->named[i], path, length) == 0)
            return 0;
    if (plan->named_count == LF_GUARD_NAMED_MAX)
        return 0;
    char *copy = malloc(length + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, path, length);
    copy[length] = '\0';
    plan->named[plan->named_count++] = copy;
    return 0;
}

/* The path a symlink's target names, from the directory the link is in
 * ("." and ".." resolved); false for a target it does not read (an
 * entity, an empty one, more than out holds). */
static bool resolve_target(const uint8_t *link, size_t link_length, const uint8_t *target,
                           size_t target_length, char *out, size_t out_size, size_t *length)
{
    if (target_length == 0 || memchr(target, '&', target_length))
        return false;
    size_t used = 0;
    if (target[0] != '/') { /* relative: start in the link's directory */
        size_t slash = link_length;
        while (slash > 0 && link[slash - 1] != '/')
            slash--;
        if (slash > out_size)
            return false;
        memcpy(out, link, slash ? slash - 1 : 0);
        used = slash ? slash - 1 : 0;
    }
    for (size_t at = 0; at < target_length;) {
        size_t end = at;
        while (end < target_length && target[end] != '/')
            end++;
        size_t part = end - at;
        if (part == 2 && target[at] == '.' && target[at + 1] == '.') {
            while (used > 0 && out[used - 1] != '/')
                used--;
            used = used ? used - 1 : 0;
        } else if (part > 0 && !(part == 1 && target[at] == '.')) {
            if (used + 1 + part > out_size)
                return false;
            if (used)
                out[used++] = '/';
            memcpy(out + used, target + at, part);
            used += part;
        }
        at = end + 1;
    }
    if (used == 0)
        out[used++] = '/';
    *length = used;
    return true;
}

/* What an operation line says: the paths it names, as a state writes
 * them, and what the operation does with them when it succeeds. */
typedef struct operation_line {
    const uint8_t *paths[2];
    size_t lengths[2], count;
    bool rename;
    bool keeps_content;  /* chmod, chown, utimens, rename */
    bool follow;         /* it acts on what a named symlink points to */
    bool removes;        /* unlink, rmdir */
    const char *makes;   /* create, mkdir, symlink: the tag of what it makes */
} operation_line;

/* A plan for state (canonical, one the guard takes whole) and an
 * operation; 1 when the state is not one. */
static int64_t plan_make(lf_guard_plan *plan, const uint8_t *state, size_t size,
                         const operation_line *operation)
{
    lf_guard_memory memory = {0};
    lf_guard check;
    lf_guard_start(&check, &memory, NULL);
    bool whole = lf_guard_take(&check, state, size) && check.place == DONE;
    bool failed = check.failed;
    lf_guard_memory_free(&memory);
    if (failed)
        return -ENOMEM;
    if (!whole)
        return 1;
    scanned *entries;
    size_t count;
    int64_t status = scan_entries(state, size, &entries, &count);
    if (status != 0)
        return status;
    plan->state = malloc(size);
    plan->kept = malloc((count ? count : 1) * sizeof *plan->kept);
    status = plan->state && plan->kept ? 0 : -ENOMEM;
    if (status == 0)
        memcpy(plan->state, state, size);
    plan->state_size = size;
    for (size_t i = 0; status == 0 && i < operation->count; i++)
        status = add_named(plan, operation->paths[i], operation->lengths[i]);
    /* what a successful operation removes and makes: named[0] is its path,
     * named[1] a rename's new one (when it is another) */
    const char *old_tag = NULL;
    for (size_t j = 0; status == 0 && j < count; j++)
        if (entries[j].path_length == operation->lengths[0] &&
            memcmp(state + entries[j].path_start, operation->paths[0], operation->lengths[0]) == 0)
            old_tag = entries[j].tag;
    plan->below = operation->rename;
    if (status == 0 && operation->rename && plan->named_count == 2) {
        plan->absent = 0;
        plan->present = 1;
        plan->present_tag = old_tag;
    } else if (status == 0 && operation->removes) {
        plan->absent = 0;
    } else if (status == 0 && operation->makes) {
        plan->present = 0; /* a create through a symlink leaves the symlink */
        plan->present_tag = old_tag && strcmp(old_tag, "symlink") == 0 ? NULL : operation->makes;
    }
    /* named symlinks add what they point to, and so on down a chain */
    for (size_t i = 0; operation->follow && status == 0 && i < plan->named_count; i++)
        for (size_t j = 0; status == 0 && j < count; j++) {
            char target[1024];
            size_t target_length;
            if (entries[j].tag[0] == 's' && entries[j].path_length == strlen(plan->named[i]) &&
                memcmp(state + entries[j].path_start, plan->named[i], entries[j].path_length) == 0 &&
                resolve_target(state + entries[j].path_start, entries[j].path_length,
                               state + entries[j].target_start, entries[j].target_length, target,
                               sizeof target, &target_length))
                status = add_named(plan, (const uint8_t *)target, target_length);
        }
    /* what the new entries at named paths keep of the old ones */
    for (size_t i = 0; operation->keeps_content && status == 0 && i < plan->named_count; i++) {
        const char *source = plan->named[operation->rename && i == 1 ? 0 : i];
        if (operation->rename && i == 0 && plan->named_count == 2)
            continue; /* the old path is gone */
        for (size_t j = 0; j < count; j++) {
            const scanned *entry = &entries[j];
            if (entry->path_length != strlen(source) ||
                memcmp(state + entry->path_start, source, entry->path_length) != 0)
                continue;
            const char *attribute = entry->tag[0] == 'f' ? "size" : entry->tag[0] == 's' ? "target" : NULL;
            size_t start = attribute ? value_after(state, entry->copy_start, entry->tag_end,
                                                   entry->tag[0] == 'f' ? " size=\"" : " target=\"")
                                     : 0;
            if (start) {
                plan->content_attribute[i] = attribute;
                plan->content_start[i] = start;
                plan->content_end[i] = entry->end;
            }
        }
    }
    for (size_t i = 0; status == 0 && i < count; i++) {
        const scanned *entry = &entries[i];
        const uint8_t *path = state + entry->path_start;
        if (plan_may_change(plan, path, entry->path_length)) {
            /* a directory on the way to a named path, in a directory whose
             * listing is kept: it keeps its place, nothing is copied */
            size_t parent = entry->path_length;
            while (parent > 0 && path[parent - 1] != '/')
                parent--;
            bool top = parent == 0;
            if (!is_root(path, entry->path_length) &&
                !plan_may_change(plan, top ? (const uint8_t *)"/" : path, top ? 1 : parent - 1))
                plan->kept[plan->kept_count++] = (lf_guard_kept){
                    .path_start = entry->path_start,
                    .path_length = entry->path_length,
                    .copy_start = entry->copy_start,
                    .copy_end = entry->copy_start,
                    .tag = entry->tag,
                };
            continue;
        }
        bool named_below = false;
        for (size_t j = 0; j < plan->named_count; j++)
            named_below |= path_within((const uint8_t *)plan->named[j], strlen(plan->named[j]), path,
                                       entry->path_length);
        plan->kept[plan->kept_count++] = (lf_guard_kept){
            .path_start = entry->path_start,
            .path_length = entry->path_length,
            .copy_start = entry->copy_start,
            .copy_end = named_below ? entry->tag_end : entry->end,
            .tag = entry->tag,
        };
    }
    /* what follows each copy: the first kept entry past its end */
    for (uint32_t i = 0; status == 0 && i < plan->kept_count; i++) {
        uint32_t after = i + 1;
        while (after < plan->kept_count && plan->kept[after].path_start < plan->kept[i].copy_end)
            after++;
        plan->kept[i].after = after;
    }
    free(entries);
    if (status != 0)
        lf_guard_plan_free(plan);
    return status;
}

int64_t lf_guard_plan_keeps_content(const lf_guard_plan *plan, const uint8_t *state, size_t size)
{
    scanned *entries = NULL;
    size_t count = 0;
    bool kept = true;
    for (size_t i = 0; kept && i < plan->named_count; i++) {
        if (!plan->content_attribute[i])
            continue;
        if (!entries) {
            int64_t status = scan_entries(state, size, &entries, &count);
            if (status != 0)
                return status < 0 ? status : 0;
        }
        char key[16];
        snprintf(key, sizeof key, " %s=\"", plan->content_attribute[i]);
        size_t old_length = plan->content_end[i] - plan->content_start[i];
        for (size_t j = 0; j < count; j++) {
            const scanned *entry = &entries[j];
            if (entry->path_length != strlen(plan->named[i]) ||
                memcmp(state + entry->path_start, plan->named[i], entry->path_length) != 0)
                continue;
            size_t start = value_after(state, entry->copy_start, entry->tag_end, key);
            kept = start && entry->end - start == old_length &&
                   memcmp(state + start, plan->state + plan->content_start[i], old_length) == 0;
        }
    }
    free(entries);
    return kept ? 1 : 0;
}

/* Reads `opening` at *at, then a path up to the next quote: absolute and
 * plain (no character the state would write as an entity), converted to
 * how a state writes it. */
static bool read_path(const uint8_t *prompt, size_t size, size_t *at, const char *opening,
                      const uint8_t **path, size_t *length)
{
    size_t opening_length = strlen(opening);
    if (size - *at < opening_length || memcmp(prompt + *at, opening, opening_length) != 0)
        return false;
    size_t start = *at + opening_length, end = start;
    while (end < size && prompt[end] != '\'') {
        uint8_t c = prompt[end];
        if (c < 0x20 || c == '&' || c == '<' || c == '>' || c == '"')
            return false;
        end++;
    }
    if (end >= size || end == start || prompt[start] != '/')
        return false;
    *path = end - start == 1 ? prompt + start : prompt + start + 1;
    *length = end - start == 1 ? 1 : end - start - 1;
    *at = end + 1;
    return true;
}

/* Whether the prompt's operation, its name ending at end, is this one. */
static bool operation_is(const uint8_t *prompt, size_t end, const char *name)
{
    return end - 4 == strlen(name) && memcmp(prompt + 4, name, end - 4) == 0;
}

int64_t lf_guard_plan_prompt(lf_guard_plan *plan, const uint8_t *prompt, size_t prompt_size)
{
    lf_guard_plan_free(plan);
    static const char getattr[] = "<R>\ngetattr(", readdir[] = "<R>\nreaddir(";
    if (prompt_size >= sizeof getattr - 1 && memcmp(prompt, getattr, sizeof getattr - 1) == 0)
        plan->answer = LF_GUARD_ANSWER_GETATTR;
    if (prompt_size >= sizeof readdir - 1 && memcmp(prompt, readdir, sizeof readdir - 1) == 0)
        plan->answer = LF_GUARD_ANSWER_READDIR;
    if (plan->answer != LF_GUARD_ANSWER_STATE)
        return 0;
    if (prompt_size < 4 || memcmp(prompt, "<W>\n", 4) != 0)
        return 1;
    size_t at = 4;
    while (at < prompt_size && prompt[at] >= 'a' && prompt[at] <= 'z')
        at++;
    operation_line operation = {.rename = operation_is(prompt, at, "rename")};
    operation.keeps_content = operation.rename || operation_is(prompt, at, "chmod") ||
                              operation_is(prompt, at, "chown") || operation_is(prompt, at, "utimens");
    operation.removes = operation_is(prompt, at, "unlink") || operation_is(prompt, at, "rmdir");
    /* rename, unlink and rmdir act on a symlink itself, the others on what it names */
    operation.follow = !operation.rename && !operation.removes;
    operation.makes = operation_is(prompt, at, "create")    ? "file"
                      : operation_is(prompt, at, "mkdir")   ? "directory"
                      : operation_is(prompt, at, "symlink") ? "symlink"
                                                            : NULL;
    operation.count = operation.rename ? 2 : 1;
    if (!read_path(prompt, prompt_size, &at, "('", &operation.paths[0], &operation.lengths[0]) ||
        (operation.rename &&
         !read_path(prompt, prompt_size, &at, ", new_path='", &operation.paths[1], &operation.lengths[1])))
        return 1;
    /* the state follows the operation line's "\n---\n"; write data is raw
     * and could hold that too, so the first one the guard reads as a whole
     * state is taken */
    static const char separator[] = "\n---\n<filesystem>";
    size_t separator_length = sizeof separator - 1;
    for (; at + separator_length <= prompt_size; at++) {
        if (memcmp(prompt + at, separator, separator_length) != 0)
            continue;
        size_t state = at + 5;
        int64_t status = plan_make(plan, prompt + state, prompt_size - state, &operation);
        if (status != 1)
            return status;
    }
    return 1;
}
