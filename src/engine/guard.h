/* The guard: constrained decoding for the model's answers (docs/DECISIONS.md,
 * "The state guard", "The guard copies what the operation does not name"):
 * the XML states it writes in answer to <W> prompts and, with a plan, the
 * JSON of getattr and readdir answers.
 *
 * The guard follows the completion byte by byte and refuses only bytes
 * that would make the state fail the strict parser (docs/FORMAT.md §1.7)
 * given what the model itself has already written:
 *   - a body that disagrees with the file's size: text past `size` bytes,
 *     the body's end before it, `<body />` for a non-empty file, base64 of
 *     another length or with `=` anywhere but the padding the length
 *     implies; after the last byte only `</body></file>` may follow;
 *   - an entry's path that is not its directory's path plus one name, a
 *     name that is not the path's last component, a name a sibling has;
 *   - anything but the canonical tag syntax: an unknown element or
 *     attribute (refused at its first byte no known name has), one given
 *     twice, a tag that closes without its required attributes, a file
 *     without a body, single quotes, anything but one space between
 *     attributes, `<` in a value, a size that is not decimal, a mode that
 *     is not octal up to 7777, an mtime not shaped YYYY-MM-DDTHH:MM:SS,
 *     anything between elements or after </filesystem>, an end before it;
 *   - elements out of place: a state is one <filesystem> holding one
 *     <directory>, entries in directories, one <body> in each file, and
 *     each end tag closes the innermost open element.
 * A completion that does not start with `<` (an error) is not guarded.
 * Copying a number from the operation line (a truncate's length, a
 * write's end) is easy for the model; counting bytes over BPE tokens is not
 * (a cut lands a few bytes off, a run of zeros in base64 does not stop).
 * The guard never adds a byte: the most probable allowed token is taken,
 * and where nothing is refused that is the plain greedy choice.
 *
 * With a plan (lf_guard_plan_prompt), the guard also knows the old state
 * and the paths the operation names, and holds the answer to the rule the
 * engine validates it by (docs/DECISIONS.md, "The guard copies what the
 * operation does not name"): the new state differs from the old only at
 * the named paths, their parent directories and, for a rename, what lies
 * below them. Every other entry is written where and as the old state has
 * it: its path when it is due (entries in the old order, none skipped),
 * then its tag and, unless a named path lies below it, all it holds, byte
 * for byte. A directory may not end, nor the state, while such an entry is
 * due in it. A successful operation's answer also holds what it leaves:
 * unlink and rmdir remove the named path, create, mkdir and symlink make
 * it (as a file, directory, symlink) before its directory ends, a rename
 * removes the old path and makes the new one; chmod, chown, utimens and a
 * rename keep a named file's body and a named symlink's target, copied
 * from the old state once the entry's other attributes are written. The
 * model chooses what
 * changes, where new entries go, and everything in a renamed subtree.
 * Entries put their path first under a plan, and a directory that can hold
 * nothing is written <directory ... />; without a plan too, no directory
 * ends right after its start tag.
 *
 * A getattr answer is held to json.dumps's dictionary (keys in the seed's
 * order, an octal mode, a decimal size, a known type, an mtime), a readdir
 * answer to its listing: `[".",".."` and then names, none listed twice, no
 * '/' in one. An answer that does not start like one (an error) is not.
 *
 * It holds the model to the canonical form it was trained on (docs/FORMAT.md
 * §1; in bodies `&amp;` `&lt;` `&gt;`, numeric references counted as their
 * UTF-8 bytes); an entity it does not know, or memory that runs out, makes
 * it stop refusing for the rest of the completion and leave the judgement
 * to the parser. */
#ifndef LLMFUSE_ENGINE_GUARD_H
#define LLMFUSE_ENGINE_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/tokenizer.h"

enum { LF_GUARD_NAME_MAX = 16, LF_GUARD_VALUE_MAX = 24, LF_GUARD_ENTITY_MAX = 12 };

/* The directories open around the guard's place, their paths and their
 * entries' names so far: a stack the guard grows and shrinks. A guard and
 * the copies it tries tokens on share one; a copy writes only above the
 * top of the guard it came from, so one that is dropped leaves the
 * original intact. */
typedef struct lf_guard_memory {
    uint8_t *data;
    size_t capacity;
} lf_guard_memory;

void lf_guard_memory_free(lf_guard_memory *memory);

/* An entry of the old state that the operation does not name. */
typedef struct lf_guard_kept {
    size_t path_start, path_length; /* its path attribute's value in the old state */
    size_t copy_start, copy_end;    /* the old state's bytes the answer repeats after
                                       that value's closing quote: to the entry's end,
                                       or to its start tag's end when a named path lies
                                       below it */
    const char *tag;                /* "directory", "file" or "symlink" */
    uint32_t after;                 /* the kept entry that is due after this copy */
} lf_guard_kept;

enum { LF_GUARD_NAMED_MAX = 8 };

/* What a guard knows of a <W> prompt: the old state and the paths the
 * operation names, as the state writes paths ("/" for the root,
 * "docs/a.txt"); a named symlink adds its target, since the dataset's
 * operations follow one (a write to `latest` changes what it points to),
 * except rename, unlink and rmdir, which act on the link. */
typedef enum lf_guard_answer {
    LF_GUARD_ANSWER_STATE,   /* a <W> prompt's: a new state (or an error) */
    LF_GUARD_ANSWER_GETATTR, /* a getattr's dictionary (or an error) */
    LF_GUARD_ANSWER_READDIR, /* a readdir's listing (or an error) */
} lf_guard_answer;

typedef struct lf_guard_plan {
    lf_guard_answer answer;
    uint8_t *state;
    size_t state_size;
    lf_guard_kept *kept; /* in the old state's order */
    uint32_t kept_count;
    char *named[LF_GUARD_NAMED_MAX];
    size_t named_count;
    bool below;              /* what lies below a named path may change: a rename moves it */
    int absent;              /* the named path a successful operation removes (unlink, rmdir,
                                a rename's old path; an index), -1: none */
    int present;             /* the named path it makes (create, mkdir, symlink, a rename's
                                new path), -1: none */
    const char *present_tag; /* ...as "file", "directory" or "symlink"; NULL: any */
    /* chmod, chown, utimens and rename change what is said about an entry,
     * never what a file holds or where a symlink points: the new entry at
     * named[i], once its other attributes are written, repeats the old
     * state's bytes [content_start[i], content_end[i]) from the value of
     * its content_attribute[i] ("size" or "target") to its end; a rename's
     * new path takes its old path's. content_attribute[i] NULL: none. */
    const char *content_attribute[LF_GUARD_NAMED_MAX];
    size_t content_start[LF_GUARD_NAMED_MAX], content_end[LF_GUARD_NAMED_MAX];
} lf_guard_plan;

/* Makes the plan for a prompt "<W>\nop('/path', ...)\n---\n<filesystem>...":
 * the named paths are the operation's first path and a rename's new_path;
 * for "<R>\ngetattr(" and "<R>\nreaddir(" the answer's shape. Returns 0, 1
 * when the prompt is not one a plan can be made for (another read, an
 * operation line or a state it does not read: a <W> answer is then guarded
 * for syntax only), or -ENOMEM. A plan made before is replaced. */
int64_t lf_guard_plan_prompt(lf_guard_plan *plan, const uint8_t *prompt, size_t prompt_size);
void lf_guard_plan_free(lf_guard_plan *plan);

/* The engine's rule (the one lf_guard_plan_prompt's plans enforce):
 * whether a path may change under an operation that names these paths, all
 * written as a state writes them: at a named path, below one when the
 * operation moves a subtree (below: a rename), or at a named path's parent
 * directory, whose times the operation moves. */
bool lf_guard_may_change(const char *path, size_t length, const char *const *named,
                         size_t named_count, bool below);
/* The same for a plan's named paths. */
bool lf_guard_plan_may_change(const lf_guard_plan *plan, const char *path, size_t length);
/* Whether a canonical new state keeps, at the named paths it has, the
 * content the plan says the operation keeps (content_attribute): 1 yes, 0
 * no (or not a state the guard reads), -ENOMEM. */
int64_t lf_guard_plan_keeps_content(const lf_guard_plan *plan, const uint8_t *state, size_t size);

/* Where the guard is in the completion; a plain value: a copy is how a
 * token is tried without committing it. */
typedef struct lf_guard {
    lf_guard_memory *memory;
    const lf_guard_plan *plan;           /* NULL: the guard follows syntax only */
    uint32_t next_kept;                  /* the plan's kept entry that is due */
    size_t copy_at, copy_end;            /* old state bytes still to repeat */
    bool must_hold;                      /* this tag, at a named path, holds kept entries */
    int content;                         /* this tag is at named[content], whose content is
                                            kept (plan->content_attribute); -1: none */
    uint16_t template_at;                /* where a getattr or readdir answer is in its shape */
    uint8_t place;                       /* outside tags, in a tag, in a body... */
    bool failed;                         /* out of memory: refuses nothing more */
    char tag[LF_GUARD_NAME_MAX + 1];     /* the current tag's name */
    char attribute[LF_GUARD_NAME_MAX + 1];
    char value[LF_GUARD_VALUE_MAX + 1];  /* the current attribute's value (its start) */
    uint8_t tag_length, attribute_length;
    uint32_t value_length;               /* all of it */
    uint32_t attributes_seen;            /* bit set over the entry attributes */
    bool base64;                         /* the body tag says encoding="base64" */
    bool in_filesystem, in_file, in_body, in_symlink; /* open elements... */
    bool file_has_body, root_written;
    uint32_t depth;                      /* ...and how many directories */
    bool size_known;                     /* the last <file> tag gave a size */
    uint64_t size;                       /* ...this one */
    uint64_t body_expected;              /* text bytes or base64 characters */
    uint64_t body_written;
    uint8_t padding;                     /* trailing '=' a base64 body must end with */
    char entity[LF_GUARD_ENTITY_MAX + 1];
    uint8_t entity_length;
    size_t used;                         /* memory in use: the stack's top */
    size_t floor;                        /* where a trial may start writing */
    size_t directory;                    /* the innermost open directory's record, or SIZE_MAX */
    bool named;                          /* the entry's path has been read: */
    size_t name_start, name_length;      /* ...its last component, in memory */
} lf_guard;

/* A guard at the start of a completion, using memory (kept between
 * completions to save allocations), following plan (which must outlive
 * it) or, with NULL, syntax only. */
void lf_guard_start(lf_guard *guard, lf_guard_memory *memory, const lf_guard_plan *plan);
/* Whether the bytes may follow what the guard has seen, and if so moves
 * past them; a refused guard is left as it was. */
bool lf_guard_take(lf_guard *guard, const uint8_t *bytes, size_t length);
/* Whether the completion may end here: after </filesystem>, or where the
 * completion is not a state (an error) or the guard stopped following. */
bool lf_guard_may_end(const lf_guard *guard);

/* The two most probable tokens the guard allows after what it has seen
 * (with <|endoftext|> allowed only where the completion may end); the
 * lowest id among equals, as plain greedy decoding; a NULL guard allows
 * every token. *second is *best when only one token is allowed. Returns
 * false when none is. */
bool lf_guard_best_two(const lf_guard *guard, const lf_tokenizer *tokenizer, const float *logits,
                       uint32_t vocabulary, uint32_t *best, uint32_t *second);

#endif
