/* gzip recompression (gzip.h). The deflate half follows GNU gzip's
 * deflate.c and trees.c step for step, down to the choices that change no
 * length but change the bits: which of two equally long matches wins,
 * where a block is cut, how equal frequencies are ordered in the Huffman
 * heap. Names follow the algorithm, not gzip's globals. */
#include "codec/gzip.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- deflate's constants (RFC 1951) and gzip -9's parameters ------------- */

enum {
    WINDOW_SIZE = 32768,
    WINDOW_MASK = WINDOW_SIZE - 1,
    HASH_BITS = 15,
    HASH_SIZE = 1 << HASH_BITS,
    HASH_MASK = HASH_SIZE - 1,
    HASH_SHIFT = (HASH_BITS + 2) / 3, /* after 3 shifts a byte has left the hash */
    MIN_MATCH = 3,
    MAX_MATCH = 258,
    MIN_LOOKAHEAD = MAX_MATCH + MIN_MATCH + 1,
    MAX_DISTANCE = WINDOW_SIZE - MIN_LOOKAHEAD,
    TOO_FAR = 4096, /* a 3-byte match further back than this is coded as literals */
    /* level 9 */
    GOOD_LENGTH = 32, /* a previous match this long searches a quarter of the chain */
    MAX_LAZY = 258,
    NICE_LENGTH = 258,
    MAX_CHAIN = 4096,
    SYMBOL_BUFFER = 0x8000, /* literals and matches per block at most (gzip's LIT_BUFSIZE) */

    LENGTH_CODES = 29,
    LITERALS = 256,
    END_OF_BLOCK = 256,
    LITERAL_CODES = LITERALS + 1 + LENGTH_CODES,
    DISTANCE_CODES = 30,
    CODE_LENGTH_CODES = 19,
    HEAP_SIZE = 2 * LITERAL_CODES + 1,
    MAX_BITS = 15,
    MAX_CODE_LENGTH_BITS = 7,
    REPEAT_3_6 = 16,
    REPEAT_ZEROS_3_10 = 17,
    REPEAT_ZEROS_11_138 = 18,
    STORED_BLOCK = 0,
    STATIC_TREES = 1,
    DYNAMIC_TREES = 2,
};

static const uint8_t length_extra_bits[LENGTH_CODES] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
                                                        1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                                        4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint8_t distance_extra_bits[DISTANCE_CODES] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3,
                                                            4, 4, 5, 5, 6, 6, 7, 7, 8, 8,
                                                            9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t code_length_extra_bits[CODE_LENGTH_CODES] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                                  0, 0, 0, 0, 0, 0, 2, 3, 7};
/* The order code-length code lengths are sent in. */
static const uint8_t code_length_order[CODE_LENGTH_CODES] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                                             11, 4,  12, 3, 13, 2, 14, 1, 15};

/* The symbol tables of RFC 1951 §3.2.5, built once per use (cheap). */
typedef struct code_tables {
    uint8_t length_code[256];   /* match length - 3 -> length code */
    uint8_t distance_code[512]; /* see distance_code_of */
    uint16_t length_base[LENGTH_CODES];
    uint16_t distance_base[DISTANCE_CODES];
} code_tables;

static void build_code_tables(code_tables *tables)
{
    unsigned length = 0, code;
    for (code = 0; code < LENGTH_CODES - 1; code++) {
        tables->length_base[code] = (uint16_t)length;
        for (unsigned n = 0; n < (1u << length_extra_bits[code]); n++)
            tables->length_code[length++] = (uint8_t)code;
    }
    /* 258 has two codes (284 + 31 or 285): gzip writes 285 */
    tables->length_base[code] = 0;
    tables->length_code[length - 1] = (uint8_t)code;
    unsigned distance = 0;
    for (code = 0; code < 16; code++) {
        tables->distance_base[code] = (uint16_t)distance;
        for (unsigned n = 0; n < (1u << distance_extra_bits[code]); n++)
            tables->distance_code[distance++] = (uint8_t)code;
    }
    distance >>= 7;
    for (; code < DISTANCE_CODES; code++) {
        tables->distance_base[code] = (uint16_t)(distance << 7);
        for (unsigned n = 0; n < (1u << (distance_extra_bits[code] - 7)); n++)
            tables->distance_code[256 + distance++] = (uint8_t)code;
    }
}

/* distance: match distance - 1 */
static unsigned distance_code_of(const code_tables *tables, unsigned distance)
{
    return distance < 256 ? tables->distance_code[distance]
                          : tables->distance_code[256 + (distance >> 7)];
}

/* ---- Huffman trees, as trees.c builds them ---------------------------------- */

/* One node. As in gzip, a leaf's frequency becomes its code once the code
 * is known, and a node's parent link becomes its bit length: the reuse is
 * part of the behaviour (scan_tree's guard writes a length past the last
 * code). */
typedef struct tree_node {
    union {
        uint16_t frequency;
        uint16_t code;
    };
    union {
        uint16_t parent;
        uint16_t length;
    };
} tree_node;

typedef struct tree_description {
    tree_node *tree;
    const tree_node *static_tree; /* NULL for the code-length tree */
    const uint8_t *extra_bits;
    unsigned extra_base; /* first symbol with extra bits */
    unsigned elements;
    unsigned max_length;
    int max_code; /* largest symbol with a non-zero frequency */
} tree_description;

static uint16_t reverse_bits(unsigned code, unsigned length)
{
    unsigned reversed = 0;
    for (; length > 0; length--, code >>= 1)
        reversed = (reversed << 1) | (code & 1);
    return (uint16_t)reversed;
}

typedef struct deflate_state {
    /* the sliding window: input is read into its upper half, which slides
     * down when strstart nears the end; the slack keeps comparisons past the
     * last byte inside the buffer, as gzip's static arrays do */
    uint8_t window[2 * WINDOW_SIZE + MAX_MATCH + MIN_MATCH];
    uint16_t previous[WINDOW_SIZE]; /* hash chains: previous position with the same hash */
    uint16_t head[HASH_SIZE];       /* newest position of each hash, 0 = none */
    const uint8_t *input;
    size_t input_size, input_read;
    unsigned strstart, lookahead, match_start, previous_length, hash;
    int64_t block_start; /* negative once the block's start slid out of the window */
    bool end_of_input;

    code_tables tables;
    tree_node literal_tree[HEAP_SIZE], distance_tree[2 * DISTANCE_CODES + 1],
        code_length_tree[2 * CODE_LENGTH_CODES + 1];
    tree_node static_literal_tree[LITERAL_CODES + 2], static_distance_tree[DISTANCE_CODES];
    tree_description literal_description, distance_description, code_length_description;
    uint16_t bit_length_count[MAX_BITS + 1];
    int heap[HEAP_SIZE];
    int heap_length, heap_max;
    uint8_t depth[HEAP_SIZE];
    uint64_t optimal_length, static_length; /* bits of the block with its own / the static trees */

    /* the block's symbols: a literal byte, or a match (length - 3, distance - 1) */
    uint8_t symbols[SYMBOL_BUFFER];
    uint16_t distances[SYMBOL_BUFFER];
    bool is_match[SYMBOL_BUFFER];
    unsigned symbol_count, match_count;

    lf_buffer *out;
    uint32_t bit_buffer;
    unsigned bit_count;
    int status; /* the first -ENOMEM of an append */
} deflate_state;

static void put_byte(deflate_state *state, uint8_t byte)
{
    if (state->status == 0)
        state->status = lf_buffer_append(state->out, &byte, 1);
}

/* Bits go out least significant first (RFC 1951 §3.1.1). */
static void send_bits(deflate_state *state, unsigned value, unsigned length)
{
    state->bit_buffer |= (uint32_t)value << state->bit_count;
    state->bit_count += length;
    while (state->bit_count >= 8) {
        put_byte(state, (uint8_t)state->bit_buffer);
        state->bit_buffer >>= 8;
        state->bit_count -= 8;
    }
}

static void flush_bits_to_byte(deflate_state *state)
{
    if (state->bit_count > 0)
        put_byte(state, (uint8_t)state->bit_buffer);
    state->bit_buffer = 0;
    state->bit_count = 0;
}

static void send_code(deflate_state *state, unsigned symbol, const tree_node *tree)
{
    send_bits(state, tree[symbol].code, tree[symbol].length);
}

/* Canonical codes for lengths counted in bit_length_count (RFC 1951
 * §3.2.2), bit-reversed for sending least significant bit first. */
static void generate_codes(deflate_state *state, tree_node *tree, int max_code)
{
    uint16_t next_code[MAX_BITS + 1];
    unsigned code = 0;
    for (unsigned bits = 1; bits <= MAX_BITS; bits++)
        next_code[bits] = (uint16_t)(code = (code + state->bit_length_count[bits - 1]) << 1);
    for (int n = 0; n <= max_code; n++) {
        unsigned length = tree[n].length;
        if (length != 0)
            tree[n].code = reverse_bits(next_code[length]++, length);
    }
}

static void build_static_trees(deflate_state *state)
{
    memset(state->bit_length_count, 0, sizeof state->bit_length_count);
    for (unsigned n = 0; n < LITERAL_CODES + 2; n++) {
        unsigned length = n <= 143 ? 8 : n <= 255 ? 9 : n <= 279 ? 7 : 8;
        state->static_literal_tree[n].length = (uint16_t)length;
        state->bit_length_count[length]++;
    }
    generate_codes(state, state->static_literal_tree, LITERAL_CODES + 1);
    for (unsigned n = 0; n < DISTANCE_CODES; n++) {
        state->static_distance_tree[n].length = 5;
        state->static_distance_tree[n].code = reverse_bits(n, 5);
    }
}

static void start_block(deflate_state *state)
{
    for (unsigned n = 0; n < LITERAL_CODES; n++)
        state->literal_tree[n].frequency = 0;
    for (unsigned n = 0; n < DISTANCE_CODES; n++)
        state->distance_tree[n].frequency = 0;
    for (unsigned n = 0; n < CODE_LENGTH_CODES; n++)
        state->code_length_tree[n].frequency = 0;
    state->literal_tree[END_OF_BLOCK].frequency = 1;
    state->optimal_length = state->static_length = 0;
    state->symbol_count = state->match_count = 0;
}

/* Node n sorts before node m: lower frequency, then lower depth. */
static bool smaller(const deflate_state *state, const tree_node *tree, int n, int m)
{
    return tree[n].frequency < tree[m].frequency ||
           (tree[n].frequency == tree[m].frequency && state->depth[n] <= state->depth[m]);
}

/* Restores the heap property down from position k (the heap starts at 1). */
static void sift_down(deflate_state *state, const tree_node *tree, int k)
{
    int value = state->heap[k];
    for (int j = k << 1; j <= state->heap_length; j <<= 1) {
        if (j < state->heap_length && smaller(state, tree, state->heap[j + 1], state->heap[j]))
            j++;
        if (smaller(state, tree, value, state->heap[j]))
            break;
        state->heap[k] = state->heap[j];
        k = j;
    }
    state->heap[k] = value;
}

/* Bit lengths from the built tree (heap[heap_max..] holds it, root first),
 * limited to max_length the way gzip limits them; adds the block's size
 * with these lengths (and with the static ones) to the running totals. */
static void generate_bit_lengths(deflate_state *state, tree_description *description)
{
    tree_node *tree = description->tree;
    const tree_node *static_tree = description->static_tree;
    int max_code = description->max_code;
    unsigned max_length = description->max_length;
    int overflow = 0, h;
    memset(state->bit_length_count, 0, sizeof state->bit_length_count);
    tree[state->heap[state->heap_max]].length = 0; /* the root */
    for (h = state->heap_max + 1; h < HEAP_SIZE; h++) {
        int n = state->heap[h];
        unsigned bits = tree[tree[n].parent].length + 1u;
        if (bits > max_length) {
            bits = max_length;
            overflow++;
        }
        tree[n].length = (uint16_t)bits;
        if (n > max_code)
            continue; /* not a leaf */
        state->bit_length_count[bits]++;
        unsigned extra = (unsigned)n >= description->extra_base
                             ? description->extra_bits[(unsigned)n - description->extra_base]
                             : 0;
        uint64_t frequency = tree[n].frequency;
        state->optimal_length += frequency * (bits + extra);
        if (static_tree)
            state->static_length += frequency * (static_tree[n].length + extra);
    }
    if (overflow == 0)
        return;
    do { /* move leaves up from the deepest level in pairs */
        unsigned bits = max_length - 1;
        while (state->bit_length_count[bits] == 0)
            bits--;
        state->bit_length_count[bits]--;
        state->bit_length_count[bits + 1] += 2;
        state->bit_length_count[max_length]--;
        overflow -= 2;
    } while (overflow > 0);
    for (unsigned bits = max_length; bits != 0; bits--) {
        for (unsigned n = state->bit_length_count[bits]; n != 0;) {
            int m = state->heap[--h];
            if (m > max_code)
                continue;
            if (tree[m].length != bits) {
                state->optimal_length += ((uint64_t)bits - tree[m].length) * tree[m].frequency;
                tree[m].length = (uint16_t)bits;
            }
            n--;
        }
    }
}

static void build_tree(deflate_state *state, tree_description *description)
{
    tree_node *tree = description->tree;
    int elements = (int)description->elements, max_code = -1, node = elements;
    state->heap_length = 0;
    state->heap_max = HEAP_SIZE;
    for (int n = 0; n < elements; n++) {
        if (tree[n].frequency != 0) {
            state->heap[++state->heap_length] = max_code = n;
            state->depth[n] = 0;
        } else {
            tree[n].length = 0;
        }
    }
    /* at least two codes, so that every code has a bit */
    while (state->heap_length < 2) {
        int added = state->heap[++state->heap_length] = max_code < 2 ? ++max_code : 0;
        tree[added].frequency = 1;
        state->depth[added] = 0;
        state->optimal_length--;
        if (description->static_tree)
            state->static_length -= description->static_tree[added].length;
    }
    description->max_code = max_code;
    for (int n = state->heap_length / 2; n >= 1; n--)
        sift_down(state, tree, n);
    do { /* join the two least frequent nodes */
        int n = state->heap[1];
        state->heap[1] = state->heap[state->heap_length--];
        sift_down(state, tree, 1);
        int m = state->heap[1];
        state->heap[--state->heap_max] = n;
        state->heap[--state->heap_max] = m;
        tree[node].frequency = (uint16_t)(tree[n].frequency + tree[m].frequency);
        state->depth[node] =
            (uint8_t)((state->depth[n] >= state->depth[m] ? state->depth[n] : state->depth[m]) + 1);
        tree[n].parent = tree[m].parent = (uint16_t)node;
        state->heap[1] = node++;
        sift_down(state, tree, 1);
    } while (state->heap_length >= 2);
    state->heap[--state->heap_max] = state->heap[1];
    generate_bit_lengths(state, description);
    generate_codes(state, tree, max_code);
}

/* Walks a tree's code lengths as run-length codes (RFC 1951 §3.2.7):
 * counts them into the code-length tree, or, with send, writes them. */
static void code_length_runs(deflate_state *state, tree_node *tree, int max_code, bool send)
{
    int previous = -1, next = tree[0].length, count = 0;
    int max_count = next == 0 ? 138 : 7, min_count = next == 0 ? 3 : 4;
    tree_node *lengths = state->code_length_tree;
    if (!send)
        tree[max_code + 1].length = 0xffff; /* a guard: ends the last run */
    for (int n = 0; n <= max_code; n++) {
        int current = next;
        next = tree[n + 1].length;
        if (++count < max_count && current == next)
            continue;
        if (count < min_count) {
            if (send)
                do
                    send_code(state, (unsigned)current, lengths);
                while (--count != 0);
            else
                lengths[current].frequency = (uint16_t)(lengths[current].frequency + count);
        } else if (current != 0) {
            if (current != previous) {
                if (send)
                    send_code(state, (unsigned)current, lengths), count--;
                else
                    lengths[current].frequency++;
            }
            if (send)
                send_code(state, REPEAT_3_6, lengths), send_bits(state, (unsigned)count - 3, 2);
            else
                lengths[REPEAT_3_6].frequency++;
        } else if (count <= 10) {
            if (send)
                send_code(state, REPEAT_ZEROS_3_10, lengths),
                    send_bits(state, (unsigned)count - 3, 3);
            else
                lengths[REPEAT_ZEROS_3_10].frequency++;
        } else {
            if (send)
                send_code(state, REPEAT_ZEROS_11_138, lengths),
                    send_bits(state, (unsigned)count - 11, 7);
            else
                lengths[REPEAT_ZEROS_11_138].frequency++;
        }
        count = 0;
        previous = current;
        if (next == 0)
            max_count = 138, min_count = 3;
        else if (current == next)
            max_count = 6, min_count = 3;
        else
            max_count = 7, min_count = 4;
    }
}

/* Builds the code-length tree; returns the index in code_length_order of
 * the last length to send. */
static int build_code_length_tree(deflate_state *state)
{
    code_length_runs(state, state->literal_tree, state->literal_description.max_code, false);
    code_length_runs(state, state->distance_tree, state->distance_description.max_code, false);
    build_tree(state, &state->code_length_description);
    int last;
    for (last = CODE_LENGTH_CODES - 1; last >= 3; last--)
        if (state->code_length_tree[code_length_order[last]].length != 0)
            break;
    state->optimal_length += 3u * ((unsigned)last + 1) + 5 + 5 + 4;
    return last;
}

static void send_block_symbols(deflate_state *state, const tree_node *literals,
                               const tree_node *distances)
{
    const code_tables *tables = &state->tables;
    for (unsigned i = 0, match = 0; i < state->symbol_count; i++) {
        unsigned symbol = state->symbols[i];
        if (!state->is_match[i]) {
            send_code(state, symbol, literals);
            continue;
        }
        unsigned code = tables->length_code[symbol];
        send_code(state, code + LITERALS + 1, literals);
        if (length_extra_bits[code])
            send_bits(state, symbol - tables->length_base[code], length_extra_bits[code]);
        unsigned distance = state->distances[match++];
        code = distance_code_of(tables, distance);
        send_code(state, code, distances);
        if (distance_extra_bits[code])
            send_bits(state, distance - tables->distance_base[code], distance_extra_bits[code]);
    }
    send_code(state, END_OF_BLOCK, literals);
}

/* Ends the block of stored_length input bytes at block (NULL when they
 * slid out of the window): stored, static or dynamic, whichever gzip
 * finds shortest. */
static void flush_block(deflate_state *state, const uint8_t *block, uint64_t stored_length,
                        bool last)
{
    build_tree(state, &state->literal_description);
    build_tree(state, &state->distance_description);
    int last_code_length = build_code_length_tree(state);
    uint64_t optimal_bytes = (state->optimal_length + 3 + 7) >> 3;
    uint64_t static_bytes = (state->static_length + 3 + 7) >> 3;
    if (static_bytes <= optimal_bytes)
        optimal_bytes = static_bytes;
    if (stored_length + 4 <= optimal_bytes && block) {
        send_bits(state, (STORED_BLOCK << 1) + last, 3);
        flush_bits_to_byte(state);
        uint16_t length = (uint16_t)stored_length;
        put_byte(state, (uint8_t)length);
        put_byte(state, (uint8_t)(length >> 8));
        put_byte(state, (uint8_t)~length);
        put_byte(state, (uint8_t)(~length >> 8));
        if (state->status == 0)
            state->status = lf_buffer_append(state->out, block, stored_length);
    } else if (static_bytes == optimal_bytes) {
        send_bits(state, (STATIC_TREES << 1) + last, 3);
        send_block_symbols(state, state->static_literal_tree, state->static_distance_tree);
    } else {
        send_bits(state, (DYNAMIC_TREES << 1) + last, 3);
        unsigned literal_codes = (unsigned)state->literal_description.max_code + 1;
        unsigned distance_codes = (unsigned)state->distance_description.max_code + 1;
        send_bits(state, literal_codes - 257, 5);
        send_bits(state, distance_codes - 1, 5);
        send_bits(state, (unsigned)last_code_length + 1 - 4, 4);
        for (int rank = 0; rank <= last_code_length; rank++)
            send_bits(state, state->code_length_tree[code_length_order[rank]].length, 3);
        code_length_runs(state, state->literal_tree, (int)literal_codes - 1, true);
        code_length_runs(state, state->distance_tree, (int)distance_codes - 1, true);
        send_block_symbols(state, state->literal_tree, state->distance_tree);
    }
    start_block(state);
    if (last)
        flush_bits_to_byte(state);
}

static void flush_current_block(deflate_state *state, bool last)
{
    const uint8_t *block = state->block_start >= 0 ? state->window + state->block_start : NULL;
    flush_block(state, block, (uint64_t)((int64_t)state->strstart - state->block_start), last);
    state->block_start = state->strstart;
}

/* Records a literal (distance 0) or a match; true when the block should
 * end here: its buffers are full, or (gzip's level > 2 heuristic, checked
 * every 4096 symbols) it is mostly short matches that compress well. */
static bool record_symbol(deflate_state *state, unsigned distance, unsigned literal_or_length)
{
    unsigned index = state->symbol_count++;
    state->symbols[index] = (uint8_t)literal_or_length;
    state->is_match[index] = distance != 0;
    if (distance == 0) {
        state->literal_tree[literal_or_length].frequency++;
    } else {
        distance--;
        state->literal_tree[state->tables.length_code[literal_or_length] + LITERALS + 1]
            .frequency++;
        state->distance_tree[distance_code_of(&state->tables, distance)].frequency++;
        state->distances[state->match_count++] = (uint16_t)distance;
    }
    if ((state->symbol_count & 0xfff) == 0) {
        uint64_t out_length = (uint64_t)state->symbol_count * 8;
        uint64_t in_length = (uint64_t)((int64_t)state->strstart - state->block_start);
        for (unsigned code = 0; code < DISTANCE_CODES; code++)
            out_length += (uint64_t)state->distance_tree[code].frequency *
                          (5u + distance_extra_bits[code]);
        out_length >>= 3;
        if (state->match_count < state->symbol_count / 2 && out_length < in_length / 2)
            return true;
    }
    return state->symbol_count == SYMBOL_BUFFER - 1 || state->match_count == SYMBOL_BUFFER;
}

/* ---- matching ------------------------------------------------------------ */

static unsigned read_input(deflate_state *state, uint8_t *to, unsigned wanted)
{
    size_t left = state->input_size - state->input_read;
    unsigned count = left < wanted ? (unsigned)left : wanted;
    if (count)
        memcpy(to, state->input + state->input_read, count);
    state->input_read += count;
    return count;
}

/* Reads more input, first sliding the window down by half when strstart
 * has reached its end. */
static void fill_window(deflate_state *state)
{
    unsigned more = 2 * WINDOW_SIZE - state->lookahead - state->strstart;
    if (state->strstart >= WINDOW_SIZE + MAX_DISTANCE) {
        memcpy(state->window, state->window + WINDOW_SIZE, WINDOW_SIZE);
        state->match_start -= WINDOW_SIZE;
        state->strstart -= WINDOW_SIZE;
        state->block_start -= WINDOW_SIZE;
        for (unsigned n = 0; n < HASH_SIZE; n++)
            state->head[n] = (uint16_t)(state->head[n] >= WINDOW_SIZE ? state->head[n] - WINDOW_SIZE : 0);
        for (unsigned n = 0; n < WINDOW_SIZE; n++)
            state->previous[n] =
                (uint16_t)(state->previous[n] >= WINDOW_SIZE ? state->previous[n] - WINDOW_SIZE : 0);
        more += WINDOW_SIZE;
    }
    if (state->end_of_input)
        return;
    unsigned count = read_input(state, state->window + state->strstart + state->lookahead, more);
    if (count == 0) {
        state->end_of_input = true;
        memset(state->window + state->strstart + state->lookahead, 0, MIN_MATCH - 1);
    } else {
        state->lookahead += count;
    }
}

/* Adds the string at position to its hash chain; returns the chain's
 * previous head (0: none). */
static unsigned insert_string(deflate_state *state, unsigned position)
{
    state->hash = ((state->hash << HASH_SHIFT) ^ state->window[position + MIN_MATCH - 1]) & HASH_MASK;
    unsigned head = state->head[state->hash];
    state->previous[position & WINDOW_MASK] = (uint16_t)head;
    state->head[state->hash] = (uint16_t)position;
    return head;
}

/* The longest match for strstart along the chain from candidate, longer
 * than previous_length; its start in match_start. Byte 2 is not compared:
 * equal hashes with equal bytes 0 and 1 imply it (as in gzip, which this
 * must match even where stale bytes past the input would break that). */
static unsigned longest_match(deflate_state *state, unsigned candidate)
{
    unsigned chain = MAX_CHAIN, best = state->previous_length;
    const uint8_t *scan = state->window + state->strstart;
    unsigned limit = state->strstart > MAX_DISTANCE ? state->strstart - MAX_DISTANCE : 0;
    if (state->previous_length >= GOOD_LENGTH)
        chain >>= 2;
    do {
        const uint8_t *match = state->window + candidate;
        if (match[best] != scan[best] || match[best - 1] != scan[best - 1] ||
            match[0] != scan[0] || match[1] != scan[1])
            continue;
        unsigned length = MIN_MATCH;
        while (length < MAX_MATCH && scan[length] == match[length])
            length++;
        if (length > best) {
            state->match_start = candidate;
            best = length;
            if (length >= NICE_LENGTH)
                break;
        }
    } while ((candidate = state->previous[candidate & WINDOW_MASK]) > limit && --chain != 0);
    return best;
}

/* gzip's lazy evaluation: a match is taken only if the next position
 * does not start a longer one. */
static void deflate_input(deflate_state *state)
{
    state->lookahead = read_input(state, state->window, 2 * WINDOW_SIZE);
    state->end_of_input = state->lookahead == 0;
    while (state->lookahead < MIN_LOOKAHEAD && !state->end_of_input)
        fill_window(state);
    for (unsigned j = 0; j < MIN_MATCH - 1; j++)
        state->hash = ((state->hash << HASH_SHIFT) ^ state->window[j]) & HASH_MASK;

    bool match_available = false;
    unsigned match_length = MIN_MATCH - 1;
    while (state->lookahead != 0) {
        unsigned head = insert_string(state, state->strstart);
        state->previous_length = match_length;
        unsigned previous_match = state->match_start;
        match_length = MIN_MATCH - 1;
        if (head != 0 && state->previous_length < MAX_LAZY &&
            state->strstart - head <= MAX_DISTANCE &&
            state->strstart <= 2 * WINDOW_SIZE - MIN_LOOKAHEAD) {
            match_length = longest_match(state, head);
            if (match_length > state->lookahead)
                match_length = state->lookahead;
            if (match_length == MIN_MATCH && state->strstart - state->match_start > TOO_FAR)
                match_length--;
        }
        if (state->previous_length >= MIN_MATCH && match_length <= state->previous_length) {
            bool flush = record_symbol(state, state->strstart - 1 - previous_match,
                                       state->previous_length - MIN_MATCH);
            /* the match's strings enter the hash chains too */
            state->lookahead -= state->previous_length - 1;
            for (unsigned left = state->previous_length - 2; left != 0; left--)
                insert_string(state, ++state->strstart);
            match_available = false;
            match_length = MIN_MATCH - 1;
            state->strstart++;
            if (flush)
                flush_current_block(state, false);
        } else if (match_available) {
            if (record_symbol(state, 0, state->window[state->strstart - 1]))
                flush_current_block(state, false);
            state->strstart++;
            state->lookahead--;
        } else {
            match_available = true;
            state->strstart++;
            state->lookahead--;
        }
        while (state->lookahead < MIN_LOOKAHEAD && !state->end_of_input)
            fill_window(state);
    }
    if (match_available)
        record_symbol(state, 0, state->window[state->strstart - 1]);
    flush_current_block(state, true);
}

int64_t lf_gzip_deflate(const uint8_t *data, size_t size, lf_buffer *out)
{
    deflate_state *state = calloc(1, sizeof *state);
    if (!state)
        return -ENOMEM;
    state->input = data;
    state->input_size = size;
    state->out = out;
    build_code_tables(&state->tables);
    build_static_trees(state);
    state->literal_description = (tree_description){
        state->literal_tree, state->static_literal_tree, length_extra_bits, LITERALS + 1,
        LITERAL_CODES, MAX_BITS, 0};
    state->distance_description = (tree_description){
        state->distance_tree, state->static_distance_tree, distance_extra_bits, 0,
        DISTANCE_CODES, MAX_BITS, 0};
    state->code_length_description = (tree_description){
        state->code_length_tree, NULL, code_length_extra_bits, 0, CODE_LENGTH_CODES,
        MAX_CODE_LENGTH_BITS, 0};
    start_block(state);
    size_t length_before = out->length;
    deflate_input(state);
    int status = state->status;
    free(state);
    if (status != 0)
        out->length = length_before;
    return status;
}

/* ---- inflate ------------------------------------------------------------- */

typedef struct inflate_state {
    const uint8_t *data;
    size_t size, position; /* position: the next byte to take bits from */
    uint32_t bit_buffer;
    unsigned bit_count;
    lf_buffer *out;
    size_t out_start, limit;
} inflate_state;

/* A canonical Huffman code for decoding: symbols by code length, then value. */
typedef struct huffman {
    uint16_t count[MAX_BITS + 1];
    uint16_t symbol[LITERAL_CODES + 2];
} huffman;

static int64_t take_bits(inflate_state *state, unsigned need, unsigned *value)
{
    while (state->bit_count < need) {
        if (state->position == state->size)
            return -LF_ETRUNCATED;
        state->bit_buffer |= (uint32_t)state->data[state->position++] << state->bit_count;
        state->bit_count += 8;
    }
    *value = state->bit_buffer & ((1u << need) - 1);
    state->bit_buffer >>= need;
    state->bit_count -= need;
    return 0;
}

/* -LF_EFORMAT for a code that uses more codes than its lengths allow; an
 * incomplete code is accepted only when it has at most one symbol. */
static int64_t build_huffman(huffman *code, const uint8_t *lengths, unsigned count)
{
    uint16_t offsets[MAX_BITS + 2];
    memset(code->count, 0, sizeof code->count);
    for (unsigned n = 0; n < count; n++)
        code->count[lengths[n]]++;
    if (code->count[0] == count)
        return 0;
    int left = 1;
    for (unsigned bits = 1; bits <= MAX_BITS; bits++) {
        left = (left << 1) - code->count[bits];
        if (left < 0)
            return -LF_EFORMAT;
    }
    offsets[1] = 0;
    for (unsigned bits = 1; bits <= MAX_BITS; bits++)
        offsets[bits + 1] = (uint16_t)(offsets[bits] + code->count[bits]);
    for (unsigned n = 0; n < count; n++)
        if (lengths[n] != 0)
            code->symbol[offsets[lengths[n]]++] = (uint16_t)n;
    if (left > 0 && count - code->count[0] > 1)
        return -LF_EFORMAT;
    return 0;
}

static int64_t decode_symbol(inflate_state *state, const huffman *code)
{
    int value = 0, first = 0, index = 0;
    for (unsigned bits = 1; bits <= MAX_BITS; bits++) {
        unsigned bit;
        int64_t status = take_bits(state, 1, &bit);
        if (status < 0)
            return status;
        value |= (int)bit;
        int count = code->count[bits];
        if (value - count < first)
            return code->symbol[index + (value - first)];
        index += count;
        first = (first + count) << 1;
        value <<= 1;
    }
    return -LF_EFORMAT;
}

static int64_t put_output(inflate_state *state, const uint8_t *bytes, size_t count)
{
    if (state->out->length - state->out_start + count > state->limit)
        return -LF_EUNREPRESENTABLE;
    return lf_buffer_append(state->out, bytes, count);
}

static int64_t inflate_stored(inflate_state *state)
{
    state->bit_buffer = 0; /* the rest of the byte */
    state->bit_count = 0;
    if (state->size - state->position < 4)
        return -LF_ETRUNCATED;
    const uint8_t *header = state->data + state->position;
    unsigned length = header[0] | (unsigned)header[1] << 8;
    if ((header[2] | (unsigned)header[3] << 8) != (~length & 0xffff))
        return -LF_EFORMAT;
    state->position += 4;
    if (state->size - state->position < length)
        return -LF_ETRUNCATED;
    int64_t status = put_output(state, state->data + state->position, length);
    state->position += length;
    return status;
}

static int64_t inflate_symbols(inflate_state *state, const huffman *literals,
                               const huffman *distances, const code_tables *tables)
{
    for (;;) {
        int64_t symbol = decode_symbol(state, literals);
        if (symbol < 0)
            return symbol;
        if (symbol < LITERALS) {
            uint8_t byte = (uint8_t)symbol;
            int64_t status = put_output(state, &byte, 1);
            if (status < 0)
                return status;
            continue;
        }
        if (symbol == END_OF_BLOCK)
            return 0;
        unsigned code = (unsigned)symbol - LITERALS - 1, extra;
        if (code >= LENGTH_CODES)
            return -LF_EFORMAT;
        int64_t status = take_bits(state, length_extra_bits[code], &extra);
        unsigned length = (code == LENGTH_CODES - 1 ? MAX_MATCH : tables->length_base[code] + MIN_MATCH) + extra;
        int64_t distance_symbol = status < 0 ? status : decode_symbol(state, distances);
        if (distance_symbol < 0)
            return distance_symbol;
        if (distance_symbol >= DISTANCE_CODES)
            return -LF_EFORMAT;
        status = take_bits(state, distance_extra_bits[distance_symbol], &extra);
        size_t distance = tables->distance_base[distance_symbol] + 1u + extra;
        if (status < 0)
            return status;
        if (distance > state->out->length - state->out_start)
            return -LF_EFORMAT;
        if (state->out->length - state->out_start + length > state->limit)
            return -LF_EUNREPRESENTABLE;
        if (lf_buffer_reserve(state->out, length) != 0)
            return -ENOMEM;
        uint8_t *to = state->out->data + state->out->length;
        for (unsigned i = 0; i < length; i++) /* bytes by bytes: the copy may overlap */
            to[i] = to[(ptrdiff_t)i - (ptrdiff_t)distance];
        state->out->length += length;
    }
}

static int64_t inflate_dynamic(inflate_state *state, const code_tables *tables)
{
    unsigned literal_count, distance_count, length_count;
    int64_t status = take_bits(state, 5, &literal_count);
    if (status == 0)
        status = take_bits(state, 5, &distance_count);
    if (status == 0)
        status = take_bits(state, 4, &length_count);
    if (status < 0)
        return status;
    literal_count += 257;
    distance_count += 1;
    length_count += 4;
    if (literal_count > LITERAL_CODES || distance_count > DISTANCE_CODES)
        return -LF_EFORMAT;
    uint8_t lengths[LITERAL_CODES + DISTANCE_CODES] = {0};
    for (unsigned i = 0; i < length_count; i++) {
        unsigned value;
        if ((status = take_bits(state, 3, &value)) < 0)
            return status;
        lengths[code_length_order[i]] = (uint8_t)value;
    }
    huffman length_code, literals, distances;
    if ((status = build_huffman(&length_code, lengths, CODE_LENGTH_CODES)) < 0)
        return status;
    memset(lengths, 0, sizeof lengths);
    for (unsigned n = 0; n < literal_count + distance_count;) {
        int64_t symbol = decode_symbol(state, &length_code);
        if (symbol < 0)
            return symbol;
        if (symbol < 16) {
            lengths[n++] = (uint8_t)symbol;
            continue;
        }
        unsigned repeat, value = 0;
        if (symbol == REPEAT_3_6) {
            if (n == 0)
                return -LF_EFORMAT;
            value = lengths[n - 1];
            status = take_bits(state, 2, &repeat), repeat += 3;
        } else if (symbol == REPEAT_ZEROS_3_10) {
            status = take_bits(state, 3, &repeat), repeat += 3;
        } else {
            status = take_bits(state, 7, &repeat), repeat += 11;
        }
        if (status < 0)
            return status;
        if (n + repeat > literal_count + distance_count)
            return -LF_EFORMAT;
        while (repeat--)
            lengths[n++] = (uint8_t)value;
    }
    if (lengths[END_OF_BLOCK] == 0)
        return -LF_EFORMAT;
    if ((status = build_huffman(&literals, lengths, literal_count)) < 0 ||
        (status = build_huffman(&distances, lengths + literal_count, distance_count)) < 0)
        return status;
    return inflate_symbols(state, &literals, &distances, tables);
}

int64_t lf_gzip_inflate(const uint8_t *data, size_t size, size_t limit, size_t *consumed,
                        lf_buffer *out)
{
    inflate_state state = {.data = data, .size = size, .out = out, .out_start = out->length,
                           .limit = limit};
    code_tables tables;
    build_code_tables(&tables);
    huffman static_literals, static_distances;
    uint8_t lengths[LITERAL_CODES + 2];
    for (unsigned n = 0; n < LITERAL_CODES + 2; n++)
        lengths[n] = n <= 143 ? 8 : n <= 255 ? 9 : n <= 279 ? 7 : 8;
    build_huffman(&static_literals, lengths, LITERAL_CODES + 2);
    memset(lengths, 5, DISTANCE_CODES);
    build_huffman(&static_distances, lengths, DISTANCE_CODES);

    int64_t status = 0;
    unsigned last = 0, type;
    while (status == 0 && !last) {
        status = take_bits(&state, 1, &last);
        if (status == 0)
            status = take_bits(&state, 2, &type);
        if (status < 0)
            break;
        if (type == STORED_BLOCK)
            status = inflate_stored(&state);
        else if (type == STATIC_TREES)
            status = inflate_symbols(&state, &static_literals, &static_distances, &tables);
        else if (type == DYNAMIC_TREES)
            status = inflate_dynamic(&state, &tables);
        else
            status = -LF_EFORMAT;
    }
    if (status < 0) {
        out->length = state.out_start;
        return status;
    }
    *consumed = state.position; /* the last byte's unused bits belong to it */
    return 0;
}

/* ---- the gzip member (RFC 1952) -------------------------------------------- */

uint32_t lf_gzip_crc32(uint32_t crc, const uint8_t *data, size_t size)
{
    static uint32_t table[256];
    static bool ready; /* filling it twice at once writes the same values */
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = n;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        __atomic_store_n(&ready, true, __ATOMIC_RELEASE);
    }
    crc = ~crc;
    for (size_t i = 0; i < size; i++)
        crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

enum { FLAG_TEXT = 1, FLAG_HEADER_CRC = 2, FLAG_EXTRA = 4, FLAG_NAME = 8, FLAG_COMMENT = 16 };

/* The length of the member header at the start of file, or -LF_EFORMAT. */
static int64_t header_length(const uint8_t *file, size_t size)
{
    if (size < 10 || file[0] != 0x1f || file[1] != 0x8b || file[2] != 8 || (file[3] & 0xe0))
        return -LF_EFORMAT;
    size_t at = 10;
    if (file[3] & FLAG_EXTRA) {
        if (size - at < 2)
            return -LF_EFORMAT;
        at += 2 + (file[at] | (size_t)file[at + 1] << 8);
    }
    for (int flag = FLAG_NAME; flag <= FLAG_COMMENT; flag <<= 1) {
        if (!(file[3] & flag))
            continue;
        const uint8_t *end = at < size ? memchr(file + at, 0, size - at) : NULL;
        if (!end)
            return -LF_EFORMAT;
        at = (size_t)(end - file) + 1;
    }
    if (file[3] & FLAG_HEADER_CRC)
        at += 2;
    return at <= size ? (int64_t)at : -LF_EFORMAT;
}

static uint32_t little_endian_32(const uint8_t *bytes)
{
    return bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

int64_t lf_gzip_join(const uint8_t *header, size_t header_size, const uint8_t *text,
                     size_t text_size, lf_buffer *out)
{
    size_t length_before = out->length;
    int64_t status = lf_buffer_append(out, header, header_size);
    if (status == 0)
        status = lf_gzip_deflate(text, text_size, out);
    uint32_t crc = lf_gzip_crc32(0, text, text_size), length = (uint32_t)text_size;
    uint8_t trailer[8];
    for (int i = 0; i < 4; i++) {
        trailer[i] = (uint8_t)(crc >> (8 * i));
        trailer[4 + i] = (uint8_t)(length >> (8 * i));
    }
    if (status == 0)
        status = lf_buffer_append(out, trailer, sizeof trailer);
    if (status != 0)
        out->length = length_before;
    return status;
}

int64_t lf_gzip_split(const uint8_t *file, size_t size, size_t *header_size, lf_buffer *text)
{
    int64_t header = header_length(file, size);
    if (header < 0)
        return header;
    size_t text_start = text->length, deflated_size = 0;
    int64_t status = lf_gzip_inflate(file + header, size - (size_t)header, LF_GZIP_TEXT_LIMIT,
                                     &deflated_size, text);
    if (status == -LF_ETRUNCATED)
        status = -LF_EFORMAT;
    const uint8_t *inflated = text->data ? text->data + text_start : (const uint8_t *)"";
    size_t inflated_size = text->length - text_start;
    /* one member, nothing after it, and its trailer right */
    if (status == 0 && (size - (size_t)header - deflated_size != 8 ||
                        little_endian_32(file + size - 8) != lf_gzip_crc32(0, inflated, inflated_size) ||
                        little_endian_32(file + size - 4) != (uint32_t)inflated_size))
        status = -LF_EFORMAT;
    lf_buffer again = {0};
    if (status == 0)
        status = lf_gzip_deflate(inflated, inflated_size, &again);
    if (status == 0 && (again.length != deflated_size ||
                        memcmp(again.data, file + header, deflated_size) != 0))
        status = -LF_EFORMAT; /* made by another deflate */
    lf_buffer_free(&again);
    if (status < 0) {
        text->length = text_start;
        return status;
    }
    *header_size = (size_t)header;
    return 0;
}
