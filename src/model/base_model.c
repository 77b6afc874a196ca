#include "model/base_model.h"

/* The assembler copies the file into read-only data at build time
 * (CMake passes its path and rebuilds this file when it changes); 64-byte
 * alignment keeps the int8 matrices as aligned as a mapped file's. */
__asm__(".section .rodata\n"
        ".balign 64\n"
        "lf_base_model_start:\n"
        ".incbin \"" LLMFUSE_BASE_MODEL_PATH "\"\n"
        "lf_base_model_end:\n"
        ".previous\n");

extern const uint8_t lf_base_model_start[] __asm__("lf_base_model_start");
extern const uint8_t lf_base_model_end[] __asm__("lf_base_model_end");

const uint8_t *lf_base_model_image(uint64_t *size)
{
    *size = (uint64_t)(lf_base_model_end - lf_base_model_start);
    return lf_base_model_start;
}
