/* The engine filesystem (engine_fs.h): FUSE operations as prompts, model
 * completions as answers, each validated before the state changes.  One
 * thread serves requests: the model is the bottleneck, and the state is
 * one document that every write replaces. */
#include "fuse/engine_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "codec/llmz.h"
#include "common/file.h"
#include "engine/generate.h"
#include "engine/guard.h"
#include "fs/tree.h"
#include "fs/xml.h"
#include "fuse/serve.h"
#include "model/model.h"
#include "sim/dataset.h"
#include "sim/oplines.h"

/* The dataset's reads ask for 4096 bytes; bigger kernel reads are split. */
/* A completion longer than this is a model that has lost its way (states
 * in training stay far below it; a write's answer is about as long as its
 * prompt's state). */
enum { READ_SIZE = 4096, MAX_COMPLETION_TOKENS = 1024, LOGGED_ANSWER_BYTES = 300 };

static const char empty_state[] =
    "<filesystem><directory path=\"/\" name=\"/\" mode=\"755\" owner=\"root\" group=\"root\" "
    "mtime=\"2025-01-01T00:00:00\" /></filesystem>";

typedef struct engine_fs {
    const lf_engine_fs_config *config;
    char *state_path; /* absolute, or NULL */
    lf_generator *generator; /* LF_ENGINE_MODEL */
    lf_model *codec_model;   /* for .llmz states */
    lf_buffer state;         /* the canonical XML */
    lf_tree *tree;           /* the same, parsed: getattr's answers */
    FILE *record;            /* --record, or NULL */
    bool record_failure_reported;
    uint64_t operations, invalid, recovered, divergences;
    uint64_t guarded; /* answers in which the guard changed a token */
    lf_guard_plan rule; /* what the current change may do, read from its prompt */
    bool ruled;         /* ...when a plan could be made (else the operation's paths) */
} engine_fs;

static engine_fs *current(void) { return fuse_get_context()->private_data; }

static void say(const engine_fs *self, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void say(const engine_fs *self, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    if (self->config->foreground) {
        fputs("llmfuse engine: ", stderr);
        vfprintf(stderr, format, arguments);
        fputc('\n', stderr);
    } else {
        vsyslog(LOG_WARNING, format, arguments);
    }
    va_end(arguments);
}

/* ---------------------------------------------------------------- */
/* Asking the model                                                  */

/* Answers are logged up to LOGGED_ANSWER_BYTES: enough to see what went wrong. */
static int logged_length(const lf_buffer *answer)
{
    return (int)(answer->length < LOGGED_ANSWER_BYTES ? answer->length : LOGGED_ANSWER_BYTES);
}

/* The prompt of an operation on the current state (docs/FORMAT.md §4.1). */
static int64_t format_prompt(const engine_fs *self, const lf_sim_operation *operation, lf_buffer *prompt)
{
    lf_buffer line = {0};
    int64_t status = lf_sim_opline_format(operation, &line);
    if (status == 0)
        status = lf_buffer_printf(prompt, "<%c>\n%s\n---\n", lf_sim_op_is_read(operation->op) ? 'R' : 'W',
                                  lf_buffer_string(&line));
    if (status == 0)
        status = lf_buffer_append(prompt, self->state.data, self->state.length);
    lf_buffer_free(&line);
    return status;
}

/* Appends the operation's dataset line to the record, flushed so that a
 * killed engine leaves whole lines.  As the loopback's log, a record that
 * cannot be written is reported once and the operation goes on. */
static void record_example(engine_fs *self, const lf_sim_operation *operation,
                           const lf_buffer *prompt, const lf_buffer *exact, int64_t result)
{
    lf_sim_example example = {.operation = operation,
                              .prompt = (const char *)prompt->data,
                              .prompt_length = prompt->length,
                              .completion = exact->data,
                              .completion_length = exact->length,
                              .status = result};
    lf_buffer line = {0};
    lf_diagnostic diagnostic = {0};
    int64_t status = lf_sim_dataset_line(&example, &line, &diagnostic);
    if (status == 0 && (fwrite(line.data, 1, line.length, self->record) != line.length ||
                        fflush(self->record) != 0))
        status = -EIO;
    if (status < 0 && !self->record_failure_reported) {
        say(self, "cannot record %s (no more failures are reported): %s",
            lf_sim_op_name(operation->op),
            diagnostic.message[0] ? diagnostic.message : strerror((int)-status));
        self->record_failure_reported = true;
    }
    lf_buffer_free(&line);
}

/* Reads that answer with data: a file's bytes, a symlink's target. */
static bool reads_data(lf_sim_op op) { return op == LF_SIM_READ || op == LF_SIM_READLINK; }

/* An operation put to the engine: its prompt, and the exact answer when
 * --verify or --record wants it or the answer is data to check. */
typedef struct question {
    const lf_sim_operation *operation;
    lf_buffer prompt, exact;
} question;

static void question_free(question *asked)
{
    lf_buffer_free(&asked->prompt);
    lf_buffer_free(&asked->exact);
}

/* Puts an operation to the engine: the prompt, the exact answer where it
 * is wanted (recorded with --record), and the first completion: the
 * model's greedy one, or the exact one. A change whose new state would
 * not fit the model's context with its prompt is not asked: -ENOSPC, the
 * filesystem is full (the model never learned longer examples; a
 * shorter answer, such as an rm's, still fits). */
static int64_t ask(engine_fs *self, const lf_sim_operation *operation, question *asked,
                   lf_buffer *completion)
{
    self->operations++;
    *asked = (question){.operation = operation};
    int64_t result = 0, status = 0;
    bool model = self->config->kind == LF_ENGINE_MODEL;
    bool change = !lf_sim_op_is_read(operation->op);
    if (!model || self->config->verify || self->record || reads_data(operation->op) || change)
        status = lf_sim_exact_completion(self->state.data, self->state.length, operation,
                                         &asked->exact, &result, NULL);
    if (status == 0)
        status = format_prompt(self, operation, &asked->prompt);
    if (status == 0 && self->record)
        record_example(self, operation, &asked->prompt, &asked->exact, result);
    if (status == 0 && model && change) {
        status = lf_generator_fits(self->generator, asked->prompt.data, asked->prompt.length,
                                   asked->exact.data, asked->exact.length);
        if (status == 0)
            say(self, "%s of '%s': the new state would not fit the model's context with its "
                      "prompt: ENOSPC",
                lf_sim_op_name(operation->op), operation->path);
        status = status == 0 ? -ENOSPC : status < 0 ? status : 0;
    }
    if (status == 0 && !model)
        status = lf_buffer_append(completion, asked->exact.data, asked->exact.length);
    else if (status == 0) {
        lf_generate_stats stats;
        status = lf_generate_complete(self->generator, asked->prompt.data, asked->prompt.length,
                                      NULL, MAX_COMPLETION_TOKENS, completion, &stats);
        self->guarded += status == 0 && stats.guard_changes > 0;
    }
    return status;
}

/* With --verify, reports the answer the engine settled on when it is not
 * the exact one. */
static void verify(engine_fs *self, const question *asked, const lf_buffer *completion)
{
    const lf_buffer *exact = &asked->exact;
    if (self->config->kind != LF_ENGINE_MODEL || !self->config->verify ||
        (completion->length == exact->length &&
         (exact->length == 0 || memcmp(completion->data, exact->data, exact->length) == 0)))
        return;
    self->divergences++;
    lf_buffer line = {0};
    lf_sim_opline_format(asked->operation, &line);
    say(self, "verify: divergence at %s: the model answered '%.*s'%s, the exact answer is '%.*s'%s",
        lf_buffer_string(&line), logged_length(completion), (const char *)completion->data,
        completion->length > LOGGED_ANSWER_BYTES ? "..." : "", logged_length(exact),
        (const char *)exact->data, exact->length > LOGGED_ANSWER_BYTES ? "..." : "");
    lf_buffer_free(&line);
}

static void log_invalid(const engine_fs *self, const lf_sim_operation *operation,
                        const lf_buffer *completion, const char *why)
{
    lf_buffer line = {0};
    lf_sim_opline_format(operation, &line);
    say(self, "invalid answer to %s (%s): '%.*s'%s", lf_buffer_string(&line), why,
        logged_length(completion), (const char *)completion->data,
        completion->length > LOGGED_ANSWER_BYTES ? "..." : "");
    lf_buffer_free(&line);
}

static int invalid_answer(engine_fs *self, const lf_sim_operation *operation,
                          const lf_buffer *completion, const char *why)
{
    self->invalid++;
    log_invalid(self, operation, completion, why);
    return -EIO;
}

/* "ERROR: ENOENT" -> -ENOENT; 0 when the completion is not an error, 1 for
 * an error name that is not one. */
static int error_of(const lf_buffer *completion)
{
    static const char prefix[] = "ERROR: ";
    if (completion->length < sizeof prefix - 1 || memcmp(completion->data, prefix, sizeof prefix - 1))
        return 0;
    size_t length = completion->length - (sizeof prefix - 1);
    const char *name = (const char *)completion->data + sizeof prefix - 1;
    for (int code = 1; code < 134; code++) {
        const char *known = lf_error_name(-code);
        if (strlen(known) == length && memcmp(known, name, length) == 0)
            return -code;
    }
    return 1;
}

/* ---------------------------------------------------------------- */
/* Validating a new state                                            */

static bool is_root_path(const char *path)
{
    return strcmp(path, "/") == 0;
}

/* A path as a state writes it: "/" for the root, "docs/a" for "/docs/a". */
static const char *state_path(const char *path)
{
    return path[0] == '/' && path[1] ? path + 1 : path;
}

/* The rule the guard holds answers to (lf_guard_may_change): a change is
 * allowed at the operation's path, at a rename's new path, below them for a
 * rename, and at their parent directories (whose times an operation
 * moves). The plan made from the prompt has it (and the targets of named
 * symlinks); a prompt it cannot read has the operation's own paths. */
static bool change_allowed(const engine_fs *self, const lf_sim_operation *operation, const char *path)
{
    path = state_path(path);
    if (self->ruled)
        return lf_guard_plan_may_change(&self->rule, path, strlen(path));
    const char *named[] = {state_path(operation->path),
                           operation->op == LF_SIM_RENAME ? state_path(operation->other) : ""};
    bool rename = operation->op == LF_SIM_RENAME;
    return lf_guard_may_change(path, strlen(path), named, rename ? 2 : 1, rename);
}

typedef struct change_check {
    const engine_fs *self;
    const lf_sim_operation *operation;
    char outside[LF_TREE_PATH_MAX]; /* the first changed path the operation does not name */
} change_check;

static int64_t check_change(void *context, const char *path)
{
    change_check *check = context;
    if (change_allowed(check->self, check->operation, path))
        return 0;
    snprintf(check->outside, sizeof check->outside, "%s", path);
    return 1;
}

/* Whether the new state (tree, and canonical as XML) holds what a
 * successful operation leaves (the plan's absent and present paths, the
 * content it keeps); else *why says what is missing. */
static bool leaves_what_it_should(const engine_fs *self, lf_tree *tree, const lf_buffer *canonical,
                                  char *why, size_t why_size)
{
    const lf_guard_plan *plan = &self->rule;
    char path[LF_TREE_PATH_MAX];
    struct stat attributes;
    if (!self->ruled)
        return true;
    if (lf_guard_plan_keeps_content(plan, canonical->data, canonical->length) != 1) {
        snprintf(why, why_size, "the operation changes no file's bytes or symlink's target, "
                                "the state has new ones at '%.100s'", plan->named[plan->named_count - 1]);
        return false;
    }
    if (plan->absent >= 0) {
        const char *named = plan->named[plan->absent];
        snprintf(path, sizeof path, "%s%s", is_root_path(named) ? "" : "/", named);
        if (lf_tree_getattr(tree, path, &attributes) == 0) {
            snprintf(why, why_size, "'%.100s' is still there after the operation that removes it", path);
            return false;
        }
    }
    if (plan->present < 0)
        return true;
    const char *named = plan->named[plan->present];
    snprintf(path, sizeof path, "%s%s", is_root_path(named) ? "" : "/", named);
    const char *tag = plan->present_tag;
    bool there = lf_tree_getattr(tree, path, &attributes) == 0;
    bool kind = there && (!tag || (strcmp(tag, "file") == 0 && S_ISREG(attributes.st_mode)) ||
                          (strcmp(tag, "directory") == 0 && S_ISDIR(attributes.st_mode)) ||
                          (strcmp(tag, "symlink") == 0 && S_ISLNK(attributes.st_mode)));
    if (!kind)
        snprintf(why, why_size, "the operation makes '%.100s'%s%s, the state has %s", path,
                 tag ? " as a " : "", tag ? tag : "", there ? "another kind there" : "nothing there");
    return kind;
}

/* Parses and checks a new state; on success it replaces the current one.
 * Returns 0, 1 for an invalid state (*why says why), or -ENOMEM. */
static int adopt_state(engine_fs *self, const lf_sim_operation *operation,
                       const lf_buffer *completion, char *why, size_t why_size)
{
    lf_tree *tree = NULL;
    lf_diagnostic diagnostic = {0};
    if (lf_xml_parse(completion->data, completion->length, 0, &tree, &diagnostic) < 0) {
        snprintf(why, why_size, "%s", diagnostic.message);
        return 1;
    }
    lf_buffer canonical = {0};
    change_check *check = calloc(1, sizeof *check);
    int status = !check || lf_xml_write(tree, 0, &canonical, NULL) < 0 ? -ENOMEM : 0;
    if (status == 0) {
        check->self = self;
        check->operation = operation;
        int64_t outside = lf_tree_compare(self->tree, tree, check_change, check);
        if (outside < 0)
            status = (int)outside;
        else if (outside > 0) {
            snprintf(why, why_size, "the state changed at '%.100s', which the operation does not name",
                     check->outside);
            status = 1;
        } else if (!leaves_what_it_should(self, tree, &canonical, why, why_size)) {
            status = 1;
        } else {
            /* a filesystem may fail, never hand back bytes nobody wrote
             * (docs/DECISIONS.md, "Written bytes are checked") */
            int64_t holds = lf_sim_holds_bytes_written(self->state.data, self->state.length,
                                                       operation, tree);
            status = holds < 0 ? (int)holds : holds == 0;
            if (holds == 0)
                snprintf(why, why_size, "'%.100s' does not hold the bytes the %s leaves there",
                         operation->path, lf_sim_op_name(operation->op));
        }
    }
    if (status == 0) {
        lf_tree_free(self->tree);
        self->tree = tree;
        tree = NULL;
        lf_buffer_free(&self->state);
        self->state = canonical;
        canonical = (lf_buffer){0};
    }
    free(check);
    lf_buffer_free(&canonical);
    lf_tree_free(tree);
    return status;
}

/* What an answer does to the engine: 0 when it stands (a state adopted,
 * data handed out), the -errno it answered, or 1 when it is invalid
 * (logged). `answer_wanted`: the first answer was not an error, and a
 * second opinion must not be one either: at its first token a branch can
 * swap the model's "it succeeds" for an error it did not believe
 * (measured: EISDIR for an append). */
typedef int (*answer_taker)(engine_fs *self, const question *asked, const lf_buffer *completion,
                            bool answer_wanted);

static int take_invalid(engine_fs *self, const question *asked, const lf_buffer *completion,
                        const char *why)
{
    log_invalid(self, asked->operation, completion, why);
    return 1;
}

/* An answer to a change: an error, or a new state that is adopted. */
static int take_change(engine_fs *self, const question *asked, const lf_buffer *completion,
                       bool answer_wanted)
{
    int outcome = error_of(completion);
    if (outcome == 1)
        return take_invalid(self, asked, completion, "not an errno name");
    if (outcome < 0 && answer_wanted)
        return take_invalid(self, asked, completion,
                            "a second opinion that is an error where the first answer was a state");
    if (outcome < 0)
        return outcome;
    char why[sizeof ((lf_diagnostic *)0)->message] = "";
    outcome = adopt_state(self, asked->operation, completion, why, sizeof why);
    return outcome == 1 ? take_invalid(self, asked, completion, why) : outcome;
}

/* An answer to a read: an error, or what it reads. Data is held to what
 * the validated state holds there, as a write's bytes are (docs/
 * DECISIONS.md, "Read bytes are checked"): bytes nobody wrote are never
 * handed out. */
static int take_read(engine_fs *self, const question *asked, const lf_buffer *completion,
                     bool answer_wanted)
{
    int outcome = error_of(completion);
    if (outcome == 1)
        return take_invalid(self, asked, completion, "not an errno name");
    if (outcome < 0 && answer_wanted)
        return take_invalid(self, asked, completion,
                            "a second opinion that is an error where the first answer was data");
    const lf_buffer *exact = &asked->exact;
    if (outcome == 0 && self->config->kind == LF_ENGINE_MODEL && reads_data(asked->operation->op) &&
        (completion->length != exact->length ||
         (exact->length && memcmp(completion->data, exact->data, exact->length) != 0)))
        return take_invalid(self, asked, completion,
                            asked->operation->op == LF_SIM_READ ? "not the bytes the file holds there"
                                                                : "not where the symlink points");
    return outcome;
}

/* Takes the answer to an asked operation; after an invalid one, asks the
 * model again on its most doubtful choices (--retries) until one stands.
 * Returns 0, the -errno answered, or -EIO when no answer was valid (the
 * state as it was). */
static int settle(engine_fs *self, const question *asked, lf_buffer *completion, answer_taker take)
{
    lf_generate_branch branches[LF_ENGINE_RETRIES_MAX];
    size_t branch_count = 0;
    if (self->config->kind == LF_ENGINE_MODEL)
        branch_count = lf_generate_doubtful_choices(
            self->generator, self->config->retries < LF_ENGINE_RETRIES_MAX ? self->config->retries
                                                                          : LF_ENGINE_RETRIES_MAX,
            branches);
    int outcome = take(self, asked, completion, false);
    bool answer_wanted = error_of(completion) == 0;
    for (size_t retry = 0; outcome == 1 && retry < branch_count; retry++) {
        completion->length = 0;
        int64_t status = lf_generate_complete(self->generator, asked->prompt.data,
                                              asked->prompt.length, &branches[retry],
                                              MAX_COMPLETION_TOKENS, completion, NULL);
        outcome = status < 0 ? (int)status : take(self, asked, completion, answer_wanted);
        if (outcome != 1) {
            self->recovered++;
            say(self, "second opinion %zu of %zu (the runner-up at completion token %u) answers it",
                retry + 1, branch_count, branches[retry].position);
        }
    }
    if (outcome == 1) {
        self->invalid++;
        outcome = -EIO;
    }
    return outcome;
}

/* Runs a write-kind operation: an error, or a new state. */
static int run_change(lf_sim_operation *operation)
{
    engine_fs *self = current();
    operation->now = lf_sim_virtual_now(self->tree);
    question asked;
    lf_buffer completion = {0};
    int64_t status = ask(self, operation, &asked, &completion);
    if (status == 0) {
        status = lf_guard_plan_prompt(&self->rule, asked.prompt.data, asked.prompt.length);
        self->ruled = status == 0;
        status = status < 0 ? status : 0;
    }
    int outcome = status < 0 ? (int)status : settle(self, &asked, &completion, take_change);
    if (status == 0) /* the engine asked the model: compare its answer */
        verify(self, &asked, &completion);
    question_free(&asked);
    lf_buffer_free(&completion);
    lf_sim_operation_free(operation);
    return outcome;
}

/* Runs a read-kind operation: the completion, or an error. */
static int run_read(lf_sim_operation *operation, lf_buffer *completion)
{
    engine_fs *self = current();
    question asked;
    int64_t status = ask(self, operation, &asked, completion);
    int error = status < 0 ? (int)status : settle(self, &asked, completion, take_read);
    if (status == 0)
        verify(self, &asked, completion);
    question_free(&asked);
    return error;
}

/* Copies a path into an operation's path field (LF_SIM_PATH_MAX bytes). */
static int set_path(char *field, const char *path)
{
    if (strlen(path) >= LF_SIM_PATH_MAX)
        return -ENAMETOOLONG;
    strcpy(field, path);
    return 0;
}

/* ---------------------------------------------------------------- */
/* Operations                                                        */

static int engine_getattr(const char *path, struct stat *attributes, struct fuse_file_info *file)
{
    (void)file;
    int64_t status = lf_tree_getattr(current()->tree, path, attributes);
    return status < 0 ? (int)status : 0;
}

static int engine_readdir(const char *path, void *buffer, fuse_fill_dir_t fill, off_t offset,
                          struct fuse_file_info *file, enum fuse_readdir_flags flags)
{
    (void)offset;
    (void)file;
    (void)flags;
    lf_sim_operation operation = {.op = LF_SIM_READDIR};
    lf_buffer completion = {0};
    int status = set_path(operation.path, path);
    if (status == 0)
        status = run_read(&operation, &completion);
    json_t *names = status == 0 ? json_loadb((const char *)completion.data, completion.length, 0, NULL) : NULL;
    if (status == 0 && !json_is_array(names))
        status = invalid_answer(current(), &operation, &completion, "not a JSON list of names");
    size_t index;
    json_t *name;
    json_array_foreach(status == 0 ? names : NULL, index, name) {
        if (!json_is_string(name)) {
            status = invalid_answer(current(), &operation, &completion, "a name is not a string");
            break;
        }
    }
    json_array_foreach(status == 0 ? names : NULL, index, name) {
        struct stat attributes = {0};
        lf_buffer child = {0};
        if (lf_buffer_printf(&child, "%s/%s", strcmp(path, "/") ? path : "", json_string_value(name)) == 0)
            lf_tree_getattr(current()->tree, lf_buffer_string(&child), &attributes);
        lf_buffer_free(&child);
        if (fill(buffer, json_string_value(name), &attributes, 0, 0))
            break;
    }
    json_decref(names);
    lf_buffer_free(&completion);
    lf_sim_operation_free(&operation);
    return status;
}

static int engine_truncate(const char *path, off_t length, struct fuse_file_info *file);

static int engine_open(const char *path, struct fuse_file_info *file)
{
    struct stat attributes;
    int64_t status = lf_tree_getattr(current()->tree, path, &attributes);
    if (status < 0)
        return (int)status;
    if (S_ISDIR(attributes.st_mode))
        return -EISDIR;
    /* with atomic O_TRUNC (libfuse asks for it) the kernel sends no
     * truncate of its own: it is the filesystem's */
    if ((file->flags & O_TRUNC) && attributes.st_size > 0)
        return engine_truncate(path, 0, file);
    return 0;
}

static int engine_read(const char *path, char *buffer, size_t size, off_t offset,
                       struct fuse_file_info *file)
{
    (void)file;
    size_t done = 0;
    while (done < size) {
        lf_sim_operation operation = {.op = LF_SIM_READ, .size = READ_SIZE,
                                      .offset = (uint64_t)offset + done};
        lf_buffer completion = {0};
        int status = set_path(operation.path, path);
        if (status == 0)
            status = run_read(&operation, &completion);
        if (status == 0 && completion.length > READ_SIZE)
            status = invalid_answer(current(), &operation, &completion, "more bytes than asked for");
        size_t length = completion.length < size - done ? completion.length : size - done;
        if (status == 0)
            memcpy(buffer + done, completion.data, length);
        bool short_read = completion.length < READ_SIZE;
        lf_buffer_free(&completion);
        lf_sim_operation_free(&operation);
        if (status < 0)
            return done ? (int)done : status;
        done += length;
        if (short_read)
            break;
    }
    return (int)done;
}

static int engine_readlink(const char *path, char *buffer, size_t size)
{
    lf_sim_operation operation = {.op = LF_SIM_READLINK};
    lf_buffer completion = {0};
    int status = set_path(operation.path, path);
    if (status == 0)
        status = run_read(&operation, &completion);
    if (status == 0 && size > 0) {
        size_t length = completion.length < size - 1 ? completion.length : size - 1;
        memcpy(buffer, completion.data, length);
        buffer[length] = '\0';
    }
    lf_buffer_free(&completion);
    lf_sim_operation_free(&operation);
    return status;
}

static int engine_write(const char *path, const char *data, size_t size, off_t offset,
                        struct fuse_file_info *file)
{
    (void)file;
    lf_sim_operation operation = {.op = LF_SIM_WRITE, .offset = (uint64_t)offset};
    int status = set_path(operation.path, path);
    if (status == 0 && lf_buffer_append(&operation.data, data, size) < 0)
        status = -ENOMEM;
    if (status == 0)
        status = run_change(&operation);
    lf_sim_operation_free(&operation);
    return status < 0 ? status : (int)size;
}

static int engine_create(const char *path, mode_t mode, struct fuse_file_info *file)
{
    (void)file;
    lf_sim_operation operation = {.op = LF_SIM_CREATE, .mode = S_IFREG | (mode & 07777)};
    int status = set_path(operation.path, path);
    return status < 0 ? status : run_change(&operation);
}

static int engine_mkdir(const char *path, mode_t mode)
{
    lf_sim_operation operation = {.op = LF_SIM_MKDIR, .mode = mode & 07777};
    int status = set_path(operation.path, path);
    return status < 0 ? status : run_change(&operation);
}

static int engine_unlink(const char *path)
{
    lf_sim_operation operation = {.op = LF_SIM_UNLINK};
    int status = set_path(operation.path, path);
    return status < 0 ? status : run_change(&operation);
}

static int engine_rmdir(const char *path)
{
    lf_sim_operation operation = {.op = LF_SIM_RMDIR};
    int status = set_path(operation.path, path);
    return status < 0 ? status : run_change(&operation);
}

static int engine_rename(const char *from, const char *to, unsigned int flags)
{
    if (flags & ~(unsigned)RENAME_NOREPLACE)
        return -EINVAL;
    lf_sim_operation operation = {.op = LF_SIM_RENAME, .flags = flags};
    int status = set_path(operation.path, from);
    if (status == 0)
        status = set_path(operation.other, to);
    return status < 0 ? status : run_change(&operation);
}

static int engine_chmod(const char *path, mode_t mode, struct fuse_file_info *file)
{
    (void)file;
    /* the kernel passes the mode with the changed inode's file type, as
     * the dataset's lines carry it */
    lf_sim_operation operation = {.op = LF_SIM_CHMOD, .mode = mode};
    int status = set_path(operation.path, path);
    return status < 0 ? status : run_change(&operation);
}

static int engine_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *file)
{
    (void)file;
    lf_sim_operation operation = {.op = LF_SIM_CHOWN, .uid = uid, .gid = gid};
    int status = set_path(operation.path, path);
    return status < 0 ? status : run_change(&operation);
}

static int engine_truncate(const char *path, off_t length, struct fuse_file_info *file)
{
    (void)file;
    lf_sim_operation operation = {.op = LF_SIM_TRUNCATE, .length = length};
    int status = set_path(operation.path, path);
    return status < 0 ? status : run_change(&operation);
}

static int engine_symlink(const char *target, const char *path)
{
    lf_sim_operation operation = {.op = LF_SIM_SYMLINK};
    int status = set_path(operation.path, path);
    if (status == 0)
        status = set_path(operation.other, target);
    return status < 0 ? status : run_change(&operation);
}

static int engine_utimens(const char *path, const struct timespec times[2],
                          struct fuse_file_info *file)
{
    (void)file;
    lf_sim_operation operation = {.op = LF_SIM_UTIMENS};
    operation.times_now = !times || (times[0].tv_nsec == UTIME_NOW && times[1].tv_nsec == UTIME_NOW);
    for (int i = 0; times && i < 2; i++) {
        operation.times[i] = times[i];
        /* the dataset's times are whole seconds */
        if (times[i].tv_nsec != UTIME_NOW && times[i].tv_nsec != UTIME_OMIT)
            operation.times[i].tv_nsec = 0;
    }
    int status = set_path(operation.path, path);
    return status < 0 ? status : run_change(&operation);
}

/* The state cannot show that two names share a file. */
static int engine_link(const char *existing, const char *path)
{
    (void)existing;
    (void)path;
    return -EPERM;
}

static int engine_statfs(const char *path, struct statvfs *out)
{
    (void)path;
    int64_t status = lf_tree_statfs(current()->tree, out);
    return status < 0 ? (int)status : 0;
}

static int save_state(engine_fs *self);

static int engine_fsync(const char *path, int datasync, struct fuse_file_info *file)
{
    (void)path;
    (void)datasync;
    (void)file;
    return save_state(current());
}

static void *engine_init(struct fuse_conn_info *connection, struct fuse_config *config)
{
    (void)connection;
    /* every answer may change any attribute: the kernel must ask */
    config->attr_timeout = 0;
    config->entry_timeout = 0;
    config->negative_timeout = 0;
    return current();
}

static const struct fuse_operations operations = {
    .init = engine_init,
    .getattr = engine_getattr,
    .readdir = engine_readdir,
    .open = engine_open,
    .read = engine_read,
    .readlink = engine_readlink,
    .write = engine_write,
    .create = engine_create,
    .mkdir = engine_mkdir,
    .unlink = engine_unlink,
    .rmdir = engine_rmdir,
    .rename = engine_rename,
    .chmod = engine_chmod,
    .chown = engine_chown,
    .truncate = engine_truncate,
    .symlink = engine_symlink,
    .utimens = engine_utimens,
    .link = engine_link,
    .statfs = engine_statfs,
    .fsync = engine_fsync,
};

/* ---------------------------------------------------------------- */
/* The state file                                                    */

static bool is_compressed(const char *path)
{
    size_t length = strlen(path);
    return length > 5 && strcmp(path + length - 5, ".llmz") == 0;
}

static int64_t load_state(engine_fs *self, lf_diagnostic *diagnostic)
{
    lf_buffer document = {0};
    int64_t status = 0;
    struct stat existing;
    if (!self->state_path || stat(self->state_path, &existing) != 0) {
        status = lf_buffer_append_string(&document, empty_state);
    } else {
        lf_buffer file = {0};
        status = lf_file_read_all(self->state_path, &file, diagnostic);
        if (status == 0 && is_compressed(self->state_path)) {
            lf_llmz_options options = {.model = self->codec_model};
            status = lf_llmz_decompress(file.data, file.length, &options, &document, diagnostic);
        } else if (status == 0) {
            document = file;
            file = (lf_buffer){0};
        }
        lf_buffer_free(&file);
    }
    if (status == 0)
        status = lf_xml_parse(document.data, document.length, 0, &self->tree, diagnostic);
    if (status == 0 && !lf_tree_root(self->tree))
        status = lf_fail(diagnostic, -LF_EFORMAT, "the state has no root directory");
    if (status == 0 && (status = lf_xml_write(self->tree, 0, &self->state, diagnostic)) > 0)
        status = 0;
    lf_buffer_free(&document);
    if (status < 0 && self->state_path)
        lf_fail(diagnostic, status, "%s: %s", self->state_path, lf_error_string(status));
    return status;
}

static int save_state(engine_fs *self)
{
    if (!self->state_path)
        return 0;
    lf_buffer bytes = {0};
    lf_diagnostic diagnostic = {0};
    int64_t status = 0;
    if (is_compressed(self->state_path)) {
        lf_llmz_options options = {.model = self->codec_model};
        status = lf_llmz_compress(self->state.data, self->state.length, &options, &bytes, &diagnostic);
    } else {
        status = lf_buffer_append(&bytes, self->state.data, self->state.length);
    }
    if (status == 0)
        status = lf_file_write_atomic(self->state_path, bytes.data, bytes.length, &diagnostic);
    if (status < 0)
        say(self, "cannot save the state: %s", diagnostic.message[0] ? diagnostic.message
                                                                      : lf_error_string(status));
    lf_buffer_free(&bytes);
    return status < 0 ? -EIO : 0;
}

/* ---------------------------------------------------------------- */
/* Mounting                                                          */

static void close_engine(engine_fs *self)
{
    lf_guard_plan_free(&self->rule);
    lf_generator_free(self->generator);
    lf_model_free(self->codec_model);
    lf_tree_free(self->tree);
    lf_buffer_free(&self->state);
    if (self->record)
        fclose(self->record);
    free(self->state_path);
}

static int64_t open_engine(const lf_engine_fs_config *config, engine_fs *self, lf_diagnostic *diagnostic)
{
    *self = (engine_fs){.config = config};
    int64_t status = 0;
    if (config->state_path) {
        /* absolute: a daemon's working directory is / */
        char *directory = realpath(".", NULL);
        if (!directory)
            return lf_fail(diagnostic, -errno, "cannot resolve the working directory");
        lf_buffer path = {0};
        status = config->state_path[0] == '/' ? lf_buffer_append_string(&path, config->state_path)
                                              : lf_buffer_printf(&path, "%s/%s", directory, config->state_path);
        free(directory);
        if (status < 0)
            return status;
        self->state_path = (char *)lf_buffer_string(&path);
    }
    const char *model = config->model_path ? config->model_path : LF_MODEL_DEFAULT;
    if (config->kind == LF_ENGINE_MODEL && !config->model_path)
        status = lf_fail(diagnostic, -EINVAL, "name the filesystem model with -m (models/fs.gguf)");
    else if (config->kind == LF_ENGINE_MODEL)
        status = lf_generator_open(model, &self->generator, diagnostic);
    if (status == 0 && self->generator) {
        lf_generator_guard_states(self->generator, !config->unguarded);
        if (config->unguarded)
            lf_generator_copy_bias(self->generator, 0);
    }
    if (status == 0 && self->state_path && is_compressed(self->state_path))
        status = lf_model_open(model, &self->codec_model, diagnostic);
    if (status == 0)
        status = load_state(self, diagnostic);
    /* opened here, before a daemon changes its working directory */
    if (status == 0 && config->record_path && !(self->record = fopen(config->record_path, "a")))
        status = lf_fail(diagnostic, -errno, "cannot open '%s' to record: %s", config->record_path,
                         strerror(errno));
    if (status < 0)
        close_engine(self);
    return status;
}

int64_t lf_engine_fs_serve(const lf_engine_fs_config *config, const char *mountpoint,
                           lf_diagnostic *diagnostic)
{
    engine_fs self;
    int64_t status = open_engine(config, &self, diagnostic);
    if (status < 0)
        return status;
    lf_fuse_serve_options options = {.name = "llmfuse-engine", .mount_options = config->mount_options,
                                     .foreground = config->foreground};
    status = lf_fuse_serve(&operations, &self, mountpoint, &options, diagnostic);
    if (save_state(&self) < 0 && status == 0)
        status = lf_fail(diagnostic, -EIO, "the state could not be saved");
    if (config->verify || self.invalid || self.recovered)
        say(&self, "%llu operations, %llu invalid answers (%llu more set right by second opinions), "
                   "%llu divergences from the exact answers, %llu answers shaped by the guard",
            (unsigned long long)self.operations, (unsigned long long)self.invalid,
            (unsigned long long)self.recovered, (unsigned long long)self.divergences,
            (unsigned long long)self.guarded);
    close_engine(&self);
    return status;
}
