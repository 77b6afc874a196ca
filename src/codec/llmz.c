#include "codec/llmz.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "common/bytes.h"
#include "common/parallel.h"

static const uint8_t magic[4] = {'L', 'L', 'M', 'Z'};

/* Fuzz builds look past checksums so the fuzzer reaches what lies behind
 * them (the OSS-Fuzz convention); no other build defines this. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define checksum_differs(computed, stored) ((void)(computed), (void)(stored), false)
#else
#define checksum_differs(computed, stored) ((computed) != (stored))
#endif

/* zstd's level for the fallback: strong enough to win on binaries, fast
 * enough (tens of MB/s) to cost nothing beside the model. */
enum { ZSTD_FALLBACK_LEVEL = 12 };

const char *lf_llmz_method_name(lf_llmz_method method)
{
    switch (method) {
    case LF_LLMZ_STORED:
        return "stored";
    case LF_LLMZ_ZSTD:
        return "zstd";
    case LF_LLMZ_MODEL:
        return "model";
    }
    return "unknown";
}

/* ------------------------------------------------------------------ */
/* Header                                                              */

void lf_llmz_header_free(lf_llmz_header *header)
{
    free(header->segments);
    *header = (lf_llmz_header){0};
}

static int64_t truncated(lf_diagnostic *diagnostic, const char *what)
{
    return lf_fail(diagnostic, -LF_ETRUNCATED, "archive is truncated: it ends inside the %s", what);
}

int64_t lf_llmz_read_header(const uint8_t *archive, uint64_t size, lf_llmz_header *header,
                            lf_diagnostic *diagnostic)
{
    *header = (lf_llmz_header){0};
    lf_bytes_reader in = {archive, size, 0};
    uint8_t found[4];
    if (!lf_bytes_get(&in, found, 4))
        return size == 0 ? lf_fail(diagnostic, -LF_EFORMAT, "not an llmz archive: empty file")
                         : truncated(diagnostic, "magic number");
    if (memcmp(found, magic, 4) != 0)
        return lf_fail(diagnostic, -LF_EFORMAT, "not an llmz archive (bad magic number)");
    if (!lf_bytes_get(&in, &header->version, 1))
        return truncated(diagnostic, "header");
    if (header->version != LF_LLMZ_VERSION)
        return lf_fail(diagnostic, -LF_EVERSION,
                       "unsupported llmz format version %u (this build reads version %u; or the "
                       "header is corrupted)",
                       header->version, LF_LLMZ_VERSION);
    uint64_t count;
    int64_t status;
    if (!lf_bytes_get_u64(&in, &header->fingerprint))
        return truncated(diagnostic, "header");
    if ((status = lf_bytes_get_varint(&in, &count)) < 0)
        return status == -LF_ETRUNCATED ? truncated(diagnostic, "header")
                                        : lf_fail(diagnostic, status, "corrupted segment count");
    /* Each segment takes at least 6 bytes of table: bounds the allocation. */
    if (count > (size - in.position) / 6)
        return lf_fail(diagnostic, -LF_EFORMAT, "corrupted header: %" PRIu64 " segments cannot fit",
                       count);
    header->segments = calloc(count ? count : 1, sizeof *header->segments);
    if (!header->segments)
        return -ENOMEM;
    header->segment_count = (size_t)count;
    for (size_t i = 0; i < header->segment_count; i++) {
        lf_llmz_segment *segment = &header->segments[i];
        /* A stored segment's payload is its original bytes: one size and
         * one checksum serve both. */
        uint8_t method = 0;
        if (!lf_bytes_get(&in, &method, 1))
            status = -LF_ETRUNCATED;
        else if ((status = lf_bytes_get_varint(&in, &segment->original_size)) == 0 &&
                 method != LF_LLMZ_STORED)
            status = lf_bytes_get_varint(&in, &segment->stored_size);
        if (status == 0 && !lf_bytes_get_u32(&in, &segment->original_checksum))
            status = -LF_ETRUNCATED;
        if (status == 0 && method != LF_LLMZ_STORED && !lf_bytes_get_u32(&in, &segment->payload_checksum))
            status = -LF_ETRUNCATED;
        segment->method = (lf_llmz_method)method;
        if (method == LF_LLMZ_STORED) {
            segment->stored_size = segment->original_size;
            segment->payload_checksum = segment->original_checksum;
        }
        if (status < 0) {
            lf_llmz_header_free(header);
            return status == -LF_ETRUNCATED ? truncated(diagnostic, "segment table")
                                            : lf_fail(diagnostic, status, "corrupted segment table");
        }
    }
    uint32_t table_checksum;
    if (!lf_bytes_get_u32(&in, &table_checksum)) {
        lf_llmz_header_free(header);
        return truncated(diagnostic, "segment table");
    }
    if (checksum_differs(XXH32(archive, (size_t)in.position - 4, 0), table_checksum)) {
        lf_llmz_header_free(header);
        return lf_fail(diagnostic, -LF_ECHECKSUM, "header or segment table is corrupted (checksum mismatch)");
    }
    header->header_size = in.position;
    /* The checksum held: what remains wrong is a damaged or forged table. */
    uint64_t payload_offset = in.position, original_offset = 0;
    for (size_t i = 0; i < header->segment_count; i++) {
        lf_llmz_segment *segment = &header->segments[i];
        const char *problem = NULL;
        if (segment->method > LF_LLMZ_MODEL)
            problem = "unknown coding method";
        else if (segment->stored_size > size || segment->original_size > UINT64_MAX - original_offset)
            problem = "impossible size";
        if (problem) {
            lf_llmz_header_free(header);
            return lf_fail(diagnostic, -LF_EFORMAT, "segment %zu: %s", i, problem);
        }
        segment->payload_offset = payload_offset;
        segment->original_offset = original_offset;
        payload_offset += segment->stored_size;
        original_offset += segment->original_size;
    }
    header->original_size = original_offset;
    if (payload_offset > size) {
        lf_llmz_header_free(header);
        return lf_fail(diagnostic, -LF_ETRUNCATED,
                       "archive is truncated: %" PRIu64 " bytes, the table describes %" PRIu64, size,
                       payload_offset);
    }
    if (payload_offset < size) {
        lf_llmz_header_free(header);
        return lf_fail(diagnostic, -LF_EFORMAT,
                       "%" PRIu64 " unexpected bytes after the last segment", size - payload_offset);
    }
    return 0;
}

/* Jobs are runs of consecutive segments that the model codes together, one
 * thread each: enough runs that none holds more than the batch size, a
 * multiple of the thread count (while segments last), split where the
 * bytes (the work) are about equal, so that threads finish together. With
 * fewer runs than threads (one segment), a model with step_threads gets
 * the spare threads inside each run's predictions, up to that many. The split never changes
 * the bytes, so it is free to follow the thread count. */
typedef struct job_plan {
    size_t count;
    size_t *starts; /* count + 1: run j is segments starts[j] .. starts[j + 1] - 1 */
    unsigned job_threads, step_threads; /* runs at once, threads inside each */
} job_plan;

static int64_t plan_jobs(const lf_llmz_options *options, const lf_llmz_segment *segments,
                         size_t segment_count, job_plan *plan)
{
    unsigned threads = options->threads ? options->threads : lf_parallel_default_threads();
    size_t batch = options->batch_size ? options->batch_size : options->model->batch_size;
    batch = batch ? batch : 1;
    plan->starts = malloc((segment_count + 1) * sizeof *plan->starts);
    if (!plan->starts)
        return -ENOMEM;
    unsigned __int128 total = 0;
    for (size_t i = 0; i < segment_count; i++)
        total += segments[i].original_size;
    size_t jobs = (segment_count + batch - 1) / batch;
    jobs = (jobs + threads - 1) / threads * threads;
    if (jobs > segment_count)
        jobs = segment_count;
    bool fits = false;
    for (; !fits; jobs++) { /* more runs until none is over the batch */
        fits = true;
        size_t i = 0;
        unsigned __int128 done = 0;
        for (size_t j = 0; j < jobs; j++) {
            /* run j ends at the boundary nearest (j + 1) / jobs of the bytes,
             * keeping a segment for each run after it */
            unsigned __int128 target = total * (j + 1) / jobs;
            plan->starts[j] = i;
            do
                done += segments[i++].original_size;
            while (i < segment_count - (jobs - 1 - j) && done + segments[i].original_size / 2 <= target);
            fits = fits && i - plan->starts[j] <= batch;
        }
        plan->starts[jobs] = segment_count;
        plan->count = jobs;
    }
    plan->job_threads = threads;
    plan->step_threads = 1;
    if (options->model->step_threads > 1 && plan->count > 0 && plan->count < threads) {
        plan->job_threads = (unsigned)plan->count;
        plan->step_threads = threads / (unsigned)plan->count;
        if (plan->step_threads > options->model->step_threads)
            plan->step_threads = options->model->step_threads;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Compression                                                         */

typedef struct compression {
    const lf_llmz_options *options;
    job_plan plan;
    const uint8_t *data;
    uint64_t size;
    size_t segment_count;
    lf_llmz_segment *segments;
    lf_buffer *payloads; /* the chosen payload of each segment */
    pthread_mutex_t progress_lock;
    uint64_t done;
} compression;

static void report_progress(const lf_llmz_options *options, pthread_mutex_t *lock, uint64_t *done,
                            uint64_t bytes, uint64_t total)
{
    if (!options->progress)
        return;
    pthread_mutex_lock(lock);
    *done += bytes;
    options->progress(options->progress_context, *done, total);
    pthread_mutex_unlock(lock);
}

/* Keeps whichever of the model's, zstd's and the plain bytes is smallest. */
static int64_t choose_method(const uint8_t *original, lf_llmz_segment *segment, lf_buffer *payload)
{
    segment->method = LF_LLMZ_MODEL;
    size_t bound = ZSTD_compressBound((size_t)segment->original_size);
    if (payload->length > 64) { /* below that, zstd's frame overhead alone loses */
        uint8_t *zstd = malloc(bound);
        if (!zstd)
            return -ENOMEM;
        size_t length = ZSTD_compress(zstd, bound, original, (size_t)segment->original_size,
                                      ZSTD_FALLBACK_LEVEL);
        if (!ZSTD_isError(length) && length < payload->length) {
            payload->length = 0;
            int64_t status = lf_buffer_append(payload, zstd, length);
            if (status < 0) {
                free(zstd);
                return status;
            }
            segment->method = LF_LLMZ_ZSTD;
        }
        free(zstd);
    }
    if (payload->length >= segment->original_size) {
        payload->length = 0;
        int64_t status = lf_buffer_append(payload, original, (size_t)segment->original_size);
        if (status < 0)
            return status;
        segment->method = LF_LLMZ_STORED;
    }
    segment->stored_size = payload->length;
    segment->payload_checksum = XXH32(payload->data, payload->length, 0);
    segment->original_checksum = XXH32(original, (size_t)segment->original_size, 0);
    return 0;
}

/* Job = one run of consecutive segments, coded together by the model. */
static int64_t compress_batch(void *context, size_t batch_index)
{
    compression *job = context;
    size_t first = job->plan.starts[batch_index];
    size_t count = job->plan.starts[batch_index + 1] - first;
    lf_span *spans = calloc(count, sizeof *spans);
    if (!spans)
        return -ENOMEM;
    uint64_t bytes = 0;
    for (size_t i = 0; i < count; i++) {
        lf_llmz_segment *segment = &job->segments[first + i];
        spans[i] = (lf_span){job->data + segment->original_offset, (size_t)segment->original_size};
        bytes += segment->original_size;
    }
    int64_t status = lf_model_encode(job->options->model, job->options->prefix, spans, count, false,
                                     job->plan.step_threads, &job->payloads[first]);
    for (size_t i = 0; status == 0 && i < count; i++)
        status = choose_method(spans[i].data, &job->segments[first + i], &job->payloads[first + i]);
    free(spans);
    report_progress(job->options, &job->progress_lock, &job->done, bytes, job->size);
    return status;
}

/* The archive of data coded with options->model, appended to out. */
static int64_t compress_with(const uint8_t *data, uint64_t size, const lf_llmz_options *options,
                             lf_buffer *out, lf_diagnostic *diagnostic)
{
    const lf_model *model = options->model;
    uint64_t segment_size = options->segment_size ? options->segment_size : model->segment_size;
    size_t count = (size_t)((size + segment_size - 1) / segment_size);
    /* Two cores decode a 64 KiB - 1 MiB input in about half the time as two
     * segments, for about 2% more bytes (docs/DECISIONS.md) */
    bool even = !options->segment_size && !options->whole_segments && model->even_segments;
    if (even && count == 1 && size > segment_size / 16)
        count = 2;
    if (even && count > 1 && count % 2)
        count++;
    compression job = {.options = options, .data = data, .size = size, .segment_count = count};
    job.segments = calloc(count ? count : 1, sizeof *job.segments);
    job.payloads = calloc(count ? count : 1, sizeof *job.payloads);
    int64_t status = job.segments && job.payloads ? 0 : -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        /* even: sizes differ by at most a byte, the longer ones first */
        uint64_t offset = even ? i * (size / count) + (i < size % count ? i : size % count)
                               : (uint64_t)i * segment_size;
        uint64_t length = even ? size / count + (i < size % count)
                               : i + 1 < count ? segment_size : size - offset;
        job.segments[i].original_offset = offset;
        job.segments[i].original_size = length;
    }
    pthread_mutex_init(&job.progress_lock, NULL);
    if (status == 0)
        status = plan_jobs(options, job.segments, count, &job.plan);
    if (status == 0)
        status = lf_parallel_for(job.plan.count, job.plan.job_threads, compress_batch, &job);

    size_t start = out->length;
    if (status == 0) {
        (void)((status = lf_buffer_append(out, magic, 4)) ||
               (status = lf_buffer_append(out, &(uint8_t){LF_LLMZ_VERSION}, 1)) ||
               (status = lf_bytes_put_u64(out, model->fingerprint)) || (status = lf_bytes_put_varint(out, count)));
    }
    for (size_t i = 0; status == 0 && i < count; i++) {
        const lf_llmz_segment *segment = &job.segments[i];
        bool coded = segment->method != LF_LLMZ_STORED;
        (void)((status = lf_buffer_append(out, &(uint8_t){(uint8_t)segment->method}, 1)) ||
               (status = lf_bytes_put_varint(out, segment->original_size)) ||
               (coded && (status = lf_bytes_put_varint(out, segment->stored_size))) ||
               (status = lf_bytes_put_u32(out, segment->original_checksum)) ||
               (coded && (status = lf_bytes_put_u32(out, segment->payload_checksum))));
    }
    if (status == 0)
        status = lf_bytes_put_u32(out, XXH32(out->data + start, out->length - start, 0));
    for (size_t i = 0; status == 0 && i < count; i++)
        status = lf_buffer_append(out, job.payloads[i].data, job.payloads[i].length);
    if (status < 0)
        out->length = start;
    for (size_t i = 0; job.payloads && i < count; i++)
        lf_buffer_free(&job.payloads[i]);
    free(job.payloads);
    free(job.segments);
    free(job.plan.starts);
    pthread_mutex_destroy(&job.progress_lock);
    if (status < 0)
        return lf_fail(diagnostic, status, "compression failed: %s", lf_error_string(status));
    return 0;
}

bool lf_llmz_looks_like_text(const uint8_t *data, uint64_t size)
{
    uint64_t controls = 0;
    for (uint64_t i = 0; i < size; i++)
        controls += data[i] < 0x20 && data[i] != '\t' && data[i] != '\n' && data[i] != '\r' &&
                    data[i] != '\f' && data[i] != '\v' && data[i] != 0x1B;
    return controls <= size / 100;
}

int64_t lf_llmz_compress(const uint8_t *data, uint64_t size, const lf_llmz_options *options,
                         lf_buffer *out, lf_diagnostic *diagnostic)
{
    size_t start = out->length;
    /* a model with a fallback is for text: binary data goes to the
     * fallback alone, which costs a fraction of the time */
    bool text = !options->model->fallback || lf_llmz_looks_like_text(data, size);
    int64_t status = text ? compress_with(data, size, options, out, diagnostic) : 0;
    if (status < 0 || !options->model->fallback)
        return status;
    /* the fallback model's archive replaces the first when smaller; the
     * copy keeps the prefix, which decompression gives either model */
    lf_llmz_options fallback_options = *options;
    lf_model *fallback = NULL;
    lf_buffer other = {0};
    status = lf_model_open(options->model->fallback, &fallback, diagnostic);
    if (status == 0) {
        fallback_options.model = fallback;
        status = compress_with(data, size, &fallback_options, &other, diagnostic);
    }
    if (status == 0 && (!text || other.length < out->length - start)) {
        out->length = start;
        status = lf_buffer_append(out, other.data, other.length);
    }
    if (status < 0)
        out->length = start;
    lf_buffer_free(&other);
    lf_model_free(fallback);
    return status;
}

/* ------------------------------------------------------------------ */
/* Decompression                                                       */

typedef struct decompression {
    const lf_llmz_options *options;
    job_plan plan;
    const uint8_t *archive;
    const lf_llmz_header *header;
    uint8_t *output;
    lf_diagnostic *diagnostics; /* one per batch, so the reported error is deterministic */
    pthread_mutex_t progress_lock;
    uint64_t done;
} decompression;

static int64_t damaged(lf_diagnostic *diagnostic, int64_t status, size_t index,
                       const lf_llmz_segment *segment, const char *what)
{
    return lf_fail(diagnostic, status,
                   "segment %zu (original bytes %" PRIu64 "..%" PRIu64 ", %s) is damaged: %s", index,
                   segment->original_offset, segment->original_offset + segment->original_size,
                   lf_llmz_method_name(segment->method), what);
}

static int64_t decompress_batch(void *context, size_t batch_index)
{
    decompression *job = context;
    const lf_llmz_header *header = job->header;
    size_t first = job->plan.starts[batch_index];
    size_t count = job->plan.starts[batch_index + 1] - first;
    lf_diagnostic *diagnostic = &job->diagnostics[batch_index];
    /* The segments the model decodes, as one batch. */
    lf_span *spans = calloc(count, sizeof *spans);
    uint64_t *sizes = malloc(count * sizeof *sizes);
    size_t *model_indexes = malloc(count * sizeof *model_indexes), model_count = 0;
    lf_buffer *decoded = calloc(count, sizeof *decoded);
    int64_t status = spans && sizes && model_indexes && decoded ? 0 : -ENOMEM;
    for (size_t i = first; i < first + count && status == 0; i++) {
        const lf_llmz_segment *segment = &header->segments[i];
        const uint8_t *payload = job->archive + segment->payload_offset;
        uint8_t *destination = job->output + segment->original_offset;
        if (segment->method == LF_LLMZ_STORED) {
            memcpy(destination, payload, (size_t)segment->stored_size);
        } else if (segment->method == LF_LLMZ_ZSTD) {
            size_t length = ZSTD_decompress(destination, (size_t)segment->original_size, payload,
                                            (size_t)segment->stored_size);
            if (ZSTD_isError(length) || length != segment->original_size)
                status = damaged(diagnostic, -LF_EFORMAT, i, segment,
                                 ZSTD_isError(length) ? ZSTD_getErrorName(length) : "wrong size");
        } else {
            spans[model_count] = (lf_span){payload, (size_t)segment->stored_size};
            sizes[model_count] = segment->original_size;
            model_indexes[model_count++] = i;
        }
    }
    if (status == 0 && model_count > 0) {
        status = lf_model_decode(job->options->model, job->options->prefix, spans, sizes,
                                 model_count, job->plan.step_threads, decoded);
        for (size_t k = 0; k < model_count; k++) {
            const lf_llmz_segment *segment = &header->segments[model_indexes[k]];
            if (status == 0 && decoded[k].length != segment->original_size)
                status = -LF_EFORMAT;
            if (status == 0 && decoded[k].length) /* an empty segment has no buffer to copy */
                memcpy(job->output + segment->original_offset, decoded[k].data, decoded[k].length);
            else if (status != -ENOMEM)
                status = damaged(diagnostic, status, model_indexes[k], segment,
                                 "the model's decoding failed");
            lf_buffer_free(&decoded[k]);
        }
    }
    free(spans);
    free(sizes);
    free(model_indexes);
    free(decoded);
    for (size_t i = first; i < first + count && status == 0; i++) {
        const lf_llmz_segment *segment = &header->segments[i];
        if (XXH32(job->output + segment->original_offset, (size_t)segment->original_size, 0) !=
            segment->original_checksum)
            status = damaged(diagnostic, -LF_ECHECKSUM, i, segment,
                             "decoded bytes do not match their checksum");
    }
    uint64_t bytes = 0;
    for (size_t i = first; i < first + count; i++)
        bytes += header->segments[i].original_size;
    report_progress(job->options, &job->progress_lock, &job->done, bytes, header->original_size);
    return status;
}

int64_t lf_llmz_decompress(const uint8_t *archive, uint64_t size, const lf_llmz_options *options,
                           lf_buffer *out, lf_diagnostic *diagnostic)
{
    lf_llmz_header header;
    int64_t status = lf_llmz_read_header(archive, size, &header, diagnostic);
    if (status < 0)
        return status;
    const lf_model *model = options->model;
    if (header.fingerprint != model->fingerprint) {
        status = lf_fail(diagnostic, -LF_EMODEL,
                         "archive was made with model %016" PRIx64 ", not with '%s' (%016" PRIx64 ")",
                         header.fingerprint, model->name, model->fingerprint);
        lf_llmz_header_free(&header);
        return status;
    }
    size_t start = out->length;
    if (header.original_size > SIZE_MAX - start ||
        (status = lf_buffer_reserve(out, (size_t)header.original_size)) < 0) {
        status = lf_fail(diagnostic, -ENOMEM, "cannot hold the %" PRIu64 " bytes the archive holds",
                         header.original_size);
        lf_llmz_header_free(&header);
        return status;
    }
    /* Every payload is checked before any model time is spent: damage
     * anywhere fails at once (a checksum runs at memory speed). */
    for (size_t i = 0; i < header.segment_count; i++) {
        const lf_llmz_segment *segment = &header.segments[i];
        if (checksum_differs(XXH32(archive + segment->payload_offset, (size_t)segment->stored_size, 0),
                             segment->payload_checksum)) {
            status = damaged(diagnostic, -LF_ECHECKSUM, i, segment, "payload checksum mismatch");
            lf_llmz_header_free(&header);
            return status;
        }
    }
    decompression job = {.options = options, .archive = archive, .header = &header,
                         .output = out->data + start};
    status = plan_jobs(options, header.segments, header.segment_count, &job.plan);
    size_t batches = job.plan.count;
    job.diagnostics = status == 0 ? calloc(batches ? batches : 1, sizeof *job.diagnostics) : NULL;
    pthread_mutex_init(&job.progress_lock, NULL);
    status = job.diagnostics ? lf_parallel_for(batches, job.plan.job_threads, decompress_batch, &job)
                             : -ENOMEM;
    if (status < 0) {
        for (size_t i = 0; job.diagnostics && i < batches; i++)
            if (job.diagnostics[i].message[0]) {
                lf_fail(diagnostic, status, "%s", job.diagnostics[i].message);
                break;
            }
    } else {
        out->length = start + (size_t)header.original_size;
    }
    free(job.diagnostics);
    free(job.plan.starts);
    pthread_mutex_destroy(&job.progress_lock);
    lf_llmz_header_free(&header);
    return status;
}
