/* Realistic names and file bodies for the simulator's trees: directory
 * names like "usr14" or "cache_old", file names like "log767.rs" or
 * "Makefile", and bodies that suit the name: C, Rust, Python and shell
 * code, configuration (INI, YAML, JSON, TOML), logs, Markdown and prose.
 *
 * Everything is drawn from the caller's PRNG, so a seed reproduces it.
 * Bodies are UTF-8 text (mostly ASCII, with a little accented and symbol
 * text) without CR or control characters other than TAB and LF, and never
 * contain "ERROR:" — the dataset's error completions start with it, and a
 * read must never look like one. */
#ifndef LLMFUSE_SIM_CONTENT_H
#define LLMFUSE_SIM_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buffer.h"
#include "common/random.h"

/* Names are at most this long, NUL included. */
#define LF_SIM_CONTENT_NAME_MAX 64

void lf_sim_content_directory_name(lf_random *random, char name[LF_SIM_CONTENT_NAME_MAX]);
void lf_sim_content_file_name(lf_random *random, char name[LF_SIM_CONTENT_NAME_MAX]);
/* A name for a new symlink: "current", "latest", "lib.so.1"-like. */
void lf_sim_content_symlink_name(lf_random *random, char name[LF_SIM_CONTENT_NAME_MAX]);

/* Appends at most `length` bytes of text in the style the file name's
 * extension suggests: whole lines, cut only when not even one fits.
 * Returns the number of bytes appended. */
int64_t lf_sim_content_body(lf_random *random, const char *file_name, size_t length,
                            lf_buffer *out);
/* The same without the opening lines (#include, #!/bin/sh, a JSON brace):
 * text that continues a body, for appending. */
int64_t lf_sim_content_continuation(lf_random *random, const char *file_name, size_t length,
                                    lf_buffer *out);

/* At most `length` bytes of what a shell's echo writes into any file: a
 * word or a short line (a few of them when there is room). */
int64_t lf_sim_content_line(lf_random *random, size_t length, lf_buffer *out);

/* Whether a file named so is a script (created executable more often). */
bool lf_sim_content_is_script(const char *file_name);

#endif
