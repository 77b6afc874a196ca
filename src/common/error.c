#include "common/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *name;
} errno_names[] = {
    {EPERM, "EPERM"},   {ENOENT, "ENOENT"},       {EIO, "EIO"},         {EBADF, "EBADF"},
    {ENOMEM, "ENOMEM"}, {EACCES, "EACCES"},       {EBUSY, "EBUSY"},     {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"},   {ENOTDIR, "ENOTDIR"},     {EISDIR, "EISDIR"},   {EINVAL, "EINVAL"},
    {EFBIG, "EFBIG"},   {ENOSPC, "ENOSPC"},       {EROFS, "EROFS"},     {EMLINK, "EMLINK"},
    {ERANGE, "ERANGE"}, {ENAMETOOLONG, "ENAMETOOLONG"}, {ENOTEMPTY, "ENOTEMPTY"},
    {ELOOP, "ELOOP"},   {EOVERFLOW, "EOVERFLOW"}, {EILSEQ, "EILSEQ"},   {ENOTSUP, "ENOTSUP"},
    {ENOSYS, "ENOSYS"}, {ENODATA, "ENODATA"},     {EFAULT, "EFAULT"},   {ENXIO, "ENXIO"},
    {ETXTBSY, "ETXTBSY"}, {ESPIPE, "ESPIPE"},     {ENODEV, "ENODEV"},   {E2BIG, "E2BIG"},
};

static const struct {
    int code;
    const char *name;
    const char *text;
} project_errors[] = {
    {LF_EFORMAT, "EFORMAT", "malformed input"},
    {LF_ECHECKSUM, "ECHECKSUM", "checksum mismatch"},
    {LF_ETRUNCATED, "ETRUNCATED", "input is truncated"},
    {LF_EVERSION, "EVERSION", "unsupported format version"},
    {LF_EMODEL, "EMODEL", "made with a different model"},
    {LF_EUNREPRESENTABLE, "EUNREPRESENTABLE", "value cannot be represented in the format"},
};

const char *lf_error_name(int64_t status)
{
    int64_t code = -status;
    for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
        if (errno_names[i].code == code)
            return errno_names[i].name;
    for (size_t i = 0; i < sizeof project_errors / sizeof project_errors[0]; i++)
        if (project_errors[i].code == code)
            return project_errors[i].name;
    return status >= 0 ? "OK" : "EUNKNOWN";
}

const char *lf_error_string(int64_t status)
{
    int64_t code = -status;
    for (size_t i = 0; i < sizeof project_errors / sizeof project_errors[0]; i++)
        if (project_errors[i].code == code)
            return project_errors[i].text;
    if (status >= 0)
        return "success";
    return strerror((int)code);
}

int64_t lf_fail(lf_diagnostic *diagnostic, int64_t status, const char *format, ...)
{
    if (diagnostic && diagnostic->message[0] == '\0') {
        va_list args;
        va_start(args, format);
        vsnprintf(diagnostic->message, sizeof diagnostic->message, format, args);
        va_end(args);
    }
    return status;
}
