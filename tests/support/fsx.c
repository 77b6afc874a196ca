/* lf_fsx: an fsx-style exerciser (after xfstests' fsx). It hammers one file
 * with random writes, reads, truncates, size checks, fsyncs and reopens, and
 * compares every result with an in-memory shadow copy of what the file must
 * hold. It is meant to run inside a FUSE mount of our filesystems, so a
 * mismatch is reported precisely: the op, the first differing offset, the
 * bytes on both sides and the last operations that led there.
 *
 * Exit status: 0 no mismatch, 1 mismatch, 2 usage or system-call error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/random.h"

enum { EXIT_MATCH = 0, EXIT_MISMATCH = 1, EXIT_SYSTEM = 2 };

enum {
    RING_SIZE = 32,         /* operations shown after a mismatch */
    MAX_OP_LENGTH = 65536,  /* longest single read or write */
    VERIFY_EVERY = 1000,    /* full-file comparison period, in operations */
    SHOWN_BYTES = 16,       /* bytes printed on each side of a mismatch */
    TRUNCATING_REOPENS = 16 /* one reopen in this many also truncates */
};

/* Largest --max-size: the shadow copy and the read buffer live in memory. */
#define MAX_FILE_SIZE (UINT64_C(1) << 30)

typedef enum op_kind {
    OP_WRITE,
    OP_READ,
    OP_TRUNCATE,
    OP_STAT,
    OP_FSYNC,
    OP_REOPEN,
    OP_REOPEN_TRUNCATE
} op_kind;

/* One operation as the ring remembers it; offset and length mean what the
 * kind says (the new size for a truncate). */
typedef struct op_record {
    uint64_t number;
    op_kind kind;
    uint64_t offset, length;
    uint64_t size_before, size_after;
} op_record;

typedef struct fsx_options {
    const char *path;
    uint64_t ops, seed, max_size;
    uint64_t reopen_every; /* 0: never reopen */
    uint64_t inject_fault; /* op number; 0: no fault */
} fsx_options;

/* The byte --inject-fault flips, followed until a check sees it or an
 * operation legitimately replaces it (then the injection proved nothing and
 * a warning says so). */
typedef struct injected_fault {
    bool pending;  /* due, waiting for the file to have a byte */
    bool active;   /* flipped and still wrong in the shadow */
    uint64_t op, offset;
    uint64_t healed_by; /* op number that replaced the byte; 0: none */
} injected_fault;

typedef struct fsx_state {
    fsx_options options;
    int fd;
    lf_random random;
    /* What the file must hold: max_size bytes, always zero past
     * shadow_size, so a file that grows (by a write past the end or a
     * truncate) has its zeros ready. */
    uint8_t *shadow;
    uint64_t shadow_size;
    uint8_t *scratch; /* what reads return: max_size + MAX_OP_LENGTH bytes */
    op_record ring[RING_SIZE];
    uint64_t recorded;  /* operations recorded so far */
    op_record *current; /* the operation under way; NULL during a verify */
    uint64_t op_number; /* the latest operation started */
    injected_fault fault;
} fsx_state;

/* ---- Options ---------------------------------------------------------- */

static void print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: lf_fsx FILE [--ops N] [--seed S] [--max-size BYTES] [--reopen-every K]\n"
            "              [--inject-fault OP]\n"
            "Hammers FILE with random operations and checks it against a shadow copy.\n"
            "Defaults: --ops 100000 --seed 1 --max-size 262144 --reopen-every 1000 (0: never).\n"
            "--inject-fault OP flips one shadow byte at operation OP to prove the checks work.\n"
            "Exit 0: no mismatch; 1: mismatch (report on stderr); 2: usage or system error.\n");
}

static _Noreturn void usage_error(const char *message, const char *argument)
{
    fprintf(stderr, "lf_fsx: %s%s%s\n", message, argument ? ": " : "", argument ? argument : "");
    print_usage(stderr);
    exit(EXIT_SYSTEM);
}

/* Strict decimal: strtoull alone would accept "-1", "12abc" and "". */
static uint64_t parse_count(const char *option, const char *text)
{
    errno = 0;
    char *end;
    unsigned long long value = strtoull(text, &end, 10);
    if (*text < '0' || *text > '9' || errno != 0 || *end != '\0') {
        fprintf(stderr, "lf_fsx: %s wants a decimal number below 2^64, not '%s'\n", option, text);
        print_usage(stderr);
        exit(EXIT_SYSTEM);
    }
    return (uint64_t)value;
}

static void check_options(const fsx_options *options)
{
    if (!options->path)
        usage_error("no FILE given", NULL);
    if (options->max_size == 0 || options->max_size > MAX_FILE_SIZE)
        usage_error("--max-size must be between 1 and 1073741824", NULL);
    if (options->inject_fault > options->ops)
        usage_error("--inject-fault names an operation after the last one", NULL);
}

static fsx_options parse_options(int argc, char **argv)
{
    fsx_options options = {.ops = 100000, .seed = 1, .max_size = 256 * 1024, .reopen_every = 1000};
    static const struct option long_options[] = {
        {"ops", required_argument, NULL, 'n'},          {"seed", required_argument, NULL, 's'},
        {"max-size", required_argument, NULL, 'm'},     {"reopen-every", required_argument, NULL, 'r'},
        {"inject-fault", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int option;
    while ((option = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (option) {
        case 'n': options.ops = parse_count("--ops", optarg); break;
        case 's': options.seed = parse_count("--seed", optarg); break;
        case 'm': options.max_size = parse_count("--max-size", optarg); break;
        case 'r': options.reopen_every = parse_count("--reopen-every", optarg); break;
        case 'f': options.inject_fault = parse_count("--inject-fault", optarg); break;
        case 'h': print_usage(stdout); exit(EXIT_MATCH);
        default: print_usage(stderr); exit(EXIT_SYSTEM);
        }
    }
    if (optind + 1 < argc)
        usage_error("more than one FILE", argv[optind + 1]);
    options.path = optind < argc ? argv[optind] : NULL;
    check_options(&options);
    return options;
}

/* ---- The ring of recent operations and the reports -------------------- */

static const char *op_name(op_kind kind)
{
    switch (kind) {
    case OP_WRITE: return "write";
    case OP_READ: return "read";
    case OP_TRUNCATE: return "truncate";
    case OP_STAT: return "fstat";
    case OP_FSYNC: return "fsync";
    case OP_REOPEN: return "reopen";
    case OP_REOPEN_TRUNCATE: return "reopen O_TRUNC";
    }
    return "?";
}

static void describe_op(const op_record *op, char *out, size_t size)
{
    switch (op->kind) {
    case OP_WRITE:
    case OP_READ:
        snprintf(out, size, "%s offset %" PRIu64 " (0x%" PRIx64 ") length %" PRIu64 " end %" PRIu64, op_name(op->kind),
                 op->offset, op->offset, op->length, op->offset + op->length);
        break;
    case OP_TRUNCATE:
        snprintf(out, size, "truncate to %" PRIu64 " (0x%" PRIx64 ")", op->offset, op->offset);
        break;
    default: snprintf(out, size, "%s", op_name(op->kind)); break;
    }
}

static op_record *begin_op(fsx_state *state, op_kind kind, uint64_t offset, uint64_t length)
{
    op_record *op = &state->ring[state->recorded++ % RING_SIZE];
    *op = (op_record){.number = state->op_number, .kind = kind, .offset = offset, .length = length,
                      .size_before = state->shadow_size, .size_after = state->shadow_size};
    state->current = op;
    return op;
}

static void end_op(fsx_state *state)
{
    state->current->size_after = state->shadow_size;
    state->current = NULL;
}

static void print_ring(const fsx_state *state)
{
    uint64_t count = state->recorded < RING_SIZE ? state->recorded : RING_SIZE;
    fprintf(stderr, "lf_fsx: last %" PRIu64 " operations, oldest first (size: expected file size before -> after):\n",
            count);
    for (uint64_t i = state->recorded - count; i < state->recorded; i++) {
        const op_record *op = &state->ring[i % RING_SIZE];
        char text[160];
        describe_op(op, text, sizeof text);
        fprintf(stderr, "lf_fsx:   op %" PRIu64 ": %s; size %" PRIu64 " -> %" PRIu64 "\n", op->number, text,
                op->size_before, op->size_after);
    }
}

/* Names where a report happened: the op under way, or the full-file
 * verify that follows an op. */
static void print_where(const fsx_state *state, const char *what)
{
    fprintf(stderr, "lf_fsx: %s in ", what);
    if (state->current) {
        char text[160];
        describe_op(state->current, text, sizeof text);
        fprintf(stderr, "op %" PRIu64 " (%s)", state->current->number, text);
    } else {
        fprintf(stderr, "the full-file verify after op %" PRIu64, state->op_number);
    }
    fprintf(stderr, " of %" PRIu64 " on %s (seed %" PRIu64 ")\n", state->options.ops, state->options.path,
            state->options.seed);
}

static _Noreturn void fail_system(const fsx_state *state, const char *call)
{
    int error = errno;
    fprintf(stderr, "lf_fsx: %s: %s\n", call, strerror(error));
    print_where(state, "system-call error");
    print_ring(state);
    exit(EXIT_SYSTEM);
}

/* The injected fault is no secret once a check has failed: saying where it
 * went lets whoever reads the report check the offset found against it. */
static void print_fault_note(const fsx_state *state)
{
    const injected_fault *fault = &state->fault;
    if (fault->op != 0)
        fprintf(stderr, "lf_fsx: note: --inject-fault flipped the shadow's byte at offset %" PRIu64 " (0x%" PRIx64
                        ") in op %" PRIu64 "\n",
                fault->offset, fault->offset, fault->op);
}

static void print_bytes(const char *label, const uint8_t *bytes, size_t count)
{
    fprintf(stderr, "lf_fsx:   %s", label);
    size_t shown = count < SHOWN_BYTES ? count : SHOWN_BYTES;
    for (size_t i = 0; i < shown; i++)
        fprintf(stderr, " %02x", bytes[i]);
    fprintf(stderr, "%s\n", count == 0 ? " (end of file)" : count > shown ? " ..." : "");
}

static _Noreturn void finish_mismatch_report(const fsx_state *state)
{
    print_fault_note(state);
    print_ring(state);
    exit(EXIT_MISMATCH);
}

static _Noreturn void report_size_mismatch(const fsx_state *state, uint64_t actual_size)
{
    print_where(state, "MISMATCH");
    fprintf(stderr, "lf_fsx: file size %" PRIu64 " (0x%" PRIx64 "), expected %" PRIu64 " (0x%" PRIx64 ")\n",
            actual_size, actual_size, state->shadow_size, state->shadow_size);
    uint64_t first = actual_size < state->shadow_size ? actual_size : state->shadow_size;
    fprintf(stderr, "lf_fsx: first differing offset %" PRIu64 " (0x%" PRIx64 "): the shorter side ends there\n",
            first, first);
    finish_mismatch_report(state);
}

static size_t first_difference(const uint8_t *expected, const uint8_t *actual, size_t count)
{
    size_t i = 0;
    while (i < count && expected[i] == actual[i])
        i++;
    return i;
}

/* Compares what a read of the file at offset returned with the shadow and
 * reports the first difference, in bytes or in length (a short or long read). */
static void check_read(const fsx_state *state, uint64_t offset, const uint8_t *expected, size_t expected_count,
                       const uint8_t *actual, size_t actual_count)
{
    size_t common = expected_count < actual_count ? expected_count : actual_count;
    size_t first = first_difference(expected, actual, common);
    if (first == common && expected_count == actual_count)
        return;
    print_where(state, "MISMATCH");
    if (expected_count != actual_count)
        fprintf(stderr, "lf_fsx: read returned %zu bytes, expected %zu (expected file size %" PRIu64 ")\n",
                actual_count, expected_count, state->shadow_size);
    uint64_t at = offset + first;
    fprintf(stderr, "lf_fsx: first differing offset %" PRIu64 " (0x%" PRIx64 "):\n", at, at);
    print_bytes("expected:", expected + first, expected_count - first);
    print_bytes("actual:  ", actual + first, actual_count - first);
    finish_mismatch_report(state);
}

/* ---- File access ------------------------------------------------------ */

/* pread until count bytes or end of file: a short pread is legal, a short
 * total is the end of the file. Returns the bytes read, or -1. */
static ssize_t read_fully(int fd, uint8_t *out, size_t count, uint64_t offset)
{
    size_t done = 0;
    while (done < count) {
        ssize_t got = pread(fd, out + done, count - done, (off_t)(offset + done));
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        done += (size_t)got;
    }
    return (ssize_t)done;
}

static int write_fully(int fd, const uint8_t *bytes, size_t count, uint64_t offset)
{
    size_t done = 0;
    while (done < count) {
        ssize_t put = pwrite(fd, bytes + done, count - done, (off_t)(offset + done));
        if (put < 0)
            return -1;
        if (put == 0) { /* no progress and no error: would loop forever */
            errno = EIO;
            return -1;
        }
        done += (size_t)put;
    }
    return 0;
}


/* ---- Shadow bookkeeping and the injected fault ------------------------ */

/* The flipped byte stops being wrong when an operation replaces it; if no
 * check saw it first, the injection proved nothing, and the end says so. */
static void note_fault_replaced(fsx_state *state, uint64_t start, uint64_t end)
{
    injected_fault *fault = &state->fault;
    if (fault->active && fault->offset >= start && fault->offset < end) {
        fault->active = false;
        fault->healed_by = state->op_number;
    }
}

static void set_shadow_size(fsx_state *state, uint64_t size)
{
    if (size < state->shadow_size) {
        /* keep the zeros past the end that a later growth relies on */
        memset(state->shadow + size, 0, state->shadow_size - size);
        note_fault_replaced(state, size, state->shadow_size);
    }
    state->shadow_size = size;
}

/* Flips a byte inside the file's current size; the position comes from a
 * generator of its own so that the operations stay those of the plain run. */
static void inject_fault_if_due(fsx_state *state)
{
    injected_fault *fault = &state->fault;
    if (state->op_number == state->options.inject_fault)
        fault->pending = true;
    if (!fault->pending || state->shadow_size == 0)
        return; /* an empty file has no byte to flip yet */
    lf_random position;
    lf_random_seed(&position, state->options.seed ^ state->options.inject_fault);
    fault->offset = lf_random_below(&position, state->shadow_size);
    fault->op = state->op_number;
    state->shadow[fault->offset] ^= 0xff;
    fault->pending = false;
    fault->active = true;
}

static void warn_if_fault_unseen(const fsx_state *state)
{
    const injected_fault *fault = &state->fault;
    if (fault->pending)
        fprintf(stderr, "lf_fsx: warning: --inject-fault %" PRIu64 " never found a byte to flip (the file stayed empty)\n",
                state->options.inject_fault);
    else if (fault->healed_by)
        fprintf(stderr, "lf_fsx: warning: the byte --inject-fault flipped in op %" PRIu64 " (offset %" PRIu64
                        ") was replaced by op %" PRIu64 " before any check read it\n",
                fault->op, fault->offset, fault->healed_by);
}

/* ---- Random choices --------------------------------------------------- */

/* Writes favour small lengths, as real programs do: the bit length is
 * uniform, so about as many writes are under 16 bytes as over 16 KiB. */
static uint64_t draw_skewed_length(lf_random *random)
{
    return 1 + lf_random_below(random, UINT64_C(1) << lf_random_below(random, 17));
}

/* Reads are mostly long (uniform up to 64 KiB) so that a wrong byte is found
 * soon after it appears, before a write or truncate replaces it. */
static uint64_t draw_read_length(lf_random *random)
{
    if (lf_random_chance(random, 1, 4))
        return draw_skewed_length(random);
    return 1 + lf_random_below(random, MAX_OP_LENGTH);
}

/* Eight bytes per draw: the writes need a lot of them. */
static void fill_random(lf_random *random, uint8_t *out, size_t count)
{
    for (size_t i = 0; i < count; i += 8) {
        uint64_t value = lf_random_next(random);
        for (size_t j = i; j < i + 8 && j < count; j++, value >>= 8)
            out[j] = (uint8_t)value;
    }
}

static op_kind draw_op_kind(fsx_state *state)
{
    lf_random *random = &state->random;
    /* about one op in reopen-every, so the period is not a pattern the
     * filesystem could happen to fit */
    uint64_t every = state->options.reopen_every;
    if (every && lf_random_below(random, every) == 0)
        return lf_random_chance(random, 1, TRUNCATING_REOPENS) ? OP_REOPEN_TRUNCATE : OP_REOPEN;
    /* Out of 100. Truncates stay rare: each one that shrinks the file
     * discards bytes no check has read since they were last written. */
    uint64_t roll = lf_random_below(random, 100);
    if (roll < 38)
        return OP_WRITE;
    if (roll < 83)
        return OP_READ;
    if (roll < 87)
        return OP_TRUNCATE;
    if (roll < 98)
        return OP_STAT;
    return OP_FSYNC;
}

/* ---- Operations ------------------------------------------------------- */

/* A random range anywhere below max-size: it may start past the end of the
 * file, leaving a hole that must read as zeros. */
static void do_write(fsx_state *state)
{
    uint64_t offset = lf_random_below(&state->random, state->options.max_size);
    uint64_t length = draw_skewed_length(&state->random);
    if (length > state->options.max_size - offset)
        length = state->options.max_size - offset;
    begin_op(state, OP_WRITE, offset, length);
    uint8_t *bytes = state->scratch;
    fill_random(&state->random, bytes, length);
    if (write_fully(state->fd, bytes, length, offset) != 0)
        fail_system(state, "pwrite");
    memcpy(state->shadow + offset, bytes, length);
    note_fault_replaced(state, offset, offset + length);
    if (offset + length > state->shadow_size)
        state->shadow_size = offset + length;
    end_op(state);
}

/* A random range that may run past the end of the file: then the read must
 * come back short, with exactly the bytes up to the end. */
static void do_read(fsx_state *state)
{
    uint64_t offset = lf_random_below(&state->random, state->options.max_size);
    uint64_t length = draw_read_length(&state->random);
    begin_op(state, OP_READ, offset, length);
    ssize_t got = read_fully(state->fd, state->scratch, length, offset);
    if (got < 0)
        fail_system(state, "pread");
    uint64_t expected = offset >= state->shadow_size ? 0 : state->shadow_size - offset;
    if (expected > length)
        expected = length;
    check_read(state, offset, state->shadow + offset, expected, state->scratch, (size_t)got);
    end_op(state);
}

/* Half the new sizes are anywhere up to max-size; half stay within 64 KiB
 * of the current size, where a shrink then a growth inside one block shows
 * stale bytes that should have become zeros (fsx's classic catch). */
static uint64_t draw_truncate_size(fsx_state *state)
{
    lf_random *random = &state->random;
    uint64_t max_size = state->options.max_size;
    if (lf_random_chance(random, 1, 2))
        return lf_random_below(random, max_size + 1);
    int64_t size = (int64_t)state->shadow_size + lf_random_range(random, -MAX_OP_LENGTH, MAX_OP_LENGTH);
    if (size < 0)
        return 0;
    return (uint64_t)size > max_size ? max_size : (uint64_t)size;
}

/* Shrinks or grows; a grown region must read as zeros, which the shadow's
 * zero tail already holds. */
static void do_truncate(fsx_state *state)
{
    uint64_t size = draw_truncate_size(state);
    begin_op(state, OP_TRUNCATE, size, 0);
    if (ftruncate(state->fd, (off_t)size) != 0)
        fail_system(state, "ftruncate");
    set_shadow_size(state, size);
    end_op(state);
}

static void check_size(fsx_state *state)
{
    struct stat status;
    if (fstat(state->fd, &status) != 0)
        fail_system(state, "fstat");
    if ((uint64_t)status.st_size != state->shadow_size)
        report_size_mismatch(state, (uint64_t)status.st_size);
}

static void do_stat(fsx_state *state)
{
    begin_op(state, OP_STAT, 0, 0);
    check_size(state);
    end_op(state);
}

static void do_fsync(fsx_state *state)
{
    begin_op(state, OP_FSYNC, 0, 0);
    if (fsync(state->fd) != 0)
        fail_system(state, "fsync");
    end_op(state);
}

/* close can report a write the filesystem deferred (FUSE's flush), and the
 * reopened descriptor must see everything written through the old one. */
static void do_reopen(fsx_state *state, bool truncate)
{
    begin_op(state, truncate ? OP_REOPEN_TRUNCATE : OP_REOPEN, 0, 0);
    if (close(state->fd) != 0)
        fail_system(state, "close");
    state->fd = open(state->options.path, O_RDWR | (truncate ? O_TRUNC : 0));
    if (state->fd < 0)
        fail_system(state, "open");
    if (truncate)
        set_shadow_size(state, 0);
    end_op(state);
}

/* The whole file against the shadow: the size, then every byte. One byte
 * more than expected is asked for, so a file that is too long shows. */
static void verify_whole_file(fsx_state *state)
{
    check_size(state);
    ssize_t got = read_fully(state->fd, state->scratch, state->shadow_size + 1, 0);
    if (got < 0)
        fail_system(state, "pread");
    check_read(state, 0, state->shadow, state->shadow_size, state->scratch, (size_t)got);
}

static void run_op(fsx_state *state)
{
    switch (draw_op_kind(state)) {
    case OP_WRITE: do_write(state); break;
    case OP_READ: do_read(state); break;
    case OP_TRUNCATE: do_truncate(state); break;
    case OP_STAT: do_stat(state); break;
    case OP_FSYNC: do_fsync(state); break;
    case OP_REOPEN: do_reopen(state, false); break;
    case OP_REOPEN_TRUNCATE: do_reopen(state, true); break;
    }
}

/* ---- Main ------------------------------------------------------------- */

static void start(fsx_state *state, const fsx_options *options)
{
    *state = (fsx_state){.options = *options, .fd = -1};
    lf_random_seed(&state->random, options->seed);
    state->shadow = calloc(options->max_size, 1);
    state->scratch = malloc(options->max_size + MAX_OP_LENGTH);
    if (!state->shadow || !state->scratch) {
        fprintf(stderr, "lf_fsx: out of memory for a %" PRIu64 "-byte shadow copy\n", options->max_size);
        exit(EXIT_SYSTEM);
    }
    state->fd = open(options->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (state->fd < 0) {
        fprintf(stderr, "lf_fsx: cannot create %s: %s\n", options->path, strerror(errno));
        exit(EXIT_SYSTEM);
    }
}

static void finish(fsx_state *state)
{
    verify_whole_file(state);
    if (close(state->fd) != 0)
        fail_system(state, "close");
    warn_if_fault_unseen(state);
    free(state->shadow);
    free(state->scratch);
}

int main(int argc, char **argv)
{
    fsx_options options = parse_options(argc, argv);
    fsx_state state;
    start(&state, &options);
    for (state.op_number = 1; state.op_number <= options.ops; state.op_number++) {
        inject_fault_if_due(&state);
        run_op(&state);
        if (state.op_number % VERIFY_EVERY == 0)
            verify_whole_file(&state);
    }
    state.op_number = options.ops; /* the final verify follows the last op */
    finish(&state);
    printf("lf_fsx: %" PRIu64 " operations on %s, no mismatch (seed %" PRIu64 ")\n", options.ops, options.path,
           options.seed);
    return EXIT_MATCH;
}
