/* The engine filesystem: the seed's LLMFuse, where the model implements
 * the filesystem.  The state is one XML document (docs/FORMAT.md §1); each
 * FUSE operation becomes a prompt in the dataset's form (§4: `<R>` or
 * `<W>`, the operation line, `---`, the state) and the model's completion
 * is the answer: a read's result, an error, or the whole new state.
 *
 * Answers are decoded under the guard (engine/guard.h), which holds
 * changes to the XML syntax the strict parser accepts and to the rule
 * below (entries the operation does not name are copied from the old
 * state as they are), and readdir lists to their shape. Every
 * answer is validated before it is used: a read's result must have
 * the form of one (a JSON list of names, bytes within the size asked...),
 * a new state must parse with the strict parser, differ from the old one
 * only at the paths the operation names (and their parent directories'
 * times) and, after a write or truncate, hold at its path exactly the
 * bytes the operation leaves there (lf_sim_holds_bytes_written: a
 * checksum on data, the one thing a filesystem must never get wrong
 * silently).  An invalid answer is logged; a change then gets a few second
 * opinions (retries), and fails with EIO, the state as it was, when none
 * is valid.  getattr is answered from the validated state,
 * as the seed did: `ls -l` on a directory costs one model call, not one
 * per entry. */
#ifndef LLMFUSE_FUSE_ENGINE_FS_H
#define LLMFUSE_FUSE_ENGINE_FS_H

#include <stdbool.h>

#include "common/error.h"

typedef enum lf_engine_kind {
    LF_ENGINE_MODEL, /* the transformer answers */
    LF_ENGINE_EXACT, /* the simulator's exact answers: the reference the model is measured by */
} lf_engine_kind;

/* Second opinions after an invalid answer (lf_engine_fs_config.retries). */
enum { LF_ENGINE_RETRIES = 4, LF_ENGINE_RETRIES_MAX = 16 };

typedef struct lf_engine_fs_config {
    lf_engine_kind kind;
    const char *model_path; /* GGUF file (LF_ENGINE_MODEL) */
    /* Loaded at mount and saved (atomically) at fsync and unmount: XML, or
     * an .llmz archive of it coded with the model when the name ends in
     * .llmz.  NULL: an empty root directory, not saved. */
    const char *state_path;
    /* Also computes the exact answer of every operation and reports each
     * divergence (and a count at unmount). */
    bool verify;
    /* After an invalid answer to a change (LF_ENGINE_MODEL), up to this
     * many second opinions, at most LF_ENGINE_RETRIES_MAX: the completion
     * again, branching from the greedy one at one of its most doubtful
     * tokens (lf_generate_doubtful_choices), most doubtful first; the first
     * valid one answers.  0: the greedy answer or EIO. */
    unsigned retries;
    /* Answers decoded without the guard (engine/guard.h) and without
     * copying (lf_generator_copy_bias): the model's plain greedy choices,
     * for measuring the model alone. */
    bool unguarded;
    /* Appends each operation's prompt and exact completion to this file as
     * a dataset line (docs/FORMAT.md §4): what real programs ask of a
     * filesystem, for `llmfuse eval` or fine-tuning.  NULL: no record. */
    const char *record_path;
    const char *mount_options;
    bool foreground;
} lf_engine_fs_config;

/* Mounts at mountpoint and serves until unmounted or signalled, like
 * lf_image_fs_serve. */
int64_t lf_engine_fs_serve(const lf_engine_fs_config *config, const char *mountpoint,
                           lf_diagnostic *diagnostic);

#endif
