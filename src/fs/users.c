#include "fs/users.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lookups are rare (a handful of distinct owners per tree) and the _r variants
 * keep them thread-safe; the scratch buffer covers any sane passwd line. */
enum { SCRATCH_SIZE = 16384 };

static void copy_name(const char *source, char *name, size_t size)
{
    snprintf(name, size, "%s", source);
}

int lf_users_user_name(uint32_t uid, char *name, size_t size)
{
    char scratch[SCRATCH_SIZE];
    struct passwd entry, *found = NULL;
    if (getpwuid_r((uid_t)uid, &entry, scratch, sizeof scratch, &found) == 0 && found)
        copy_name(found->pw_name, name, size);
    else
        snprintf(name, size, "%u", uid);
    return 0;
}

int lf_users_group_name(uint32_t gid, char *name, size_t size)
{
    char scratch[SCRATCH_SIZE];
    struct group entry, *found = NULL;
    if (getgrgid_r((gid_t)gid, &entry, scratch, sizeof scratch, &found) == 0 && found)
        copy_name(found->gr_name, name, size);
    else
        snprintf(name, size, "%u", gid);
    return 0;
}

static int parse_decimal_id(const char *name, uint32_t *id)
{
    if (name[0] < '0' || name[0] > '9' || (name[0] == '0' && name[1] != '\0'))
        return -ENOENT;
    char *end;
    errno = 0;
    unsigned long value = strtoul(name, &end, 10);
    if (errno || *end != '\0' || value > UINT32_MAX - 1) /* -1 means "unchanged" in chown */
        return -ENOENT;
    *id = (uint32_t)value;
    return 0;
}

int lf_users_user_id(const char *name, uint32_t *uid)
{
    char scratch[SCRATCH_SIZE];
    struct passwd entry, *found = NULL;
    if (getpwnam_r(name, &entry, scratch, sizeof scratch, &found) == 0 && found) {
        *uid = (uint32_t)found->pw_uid;
        return 0;
    }
    return parse_decimal_id(name, uid);
}

int lf_users_group_id(const char *name, uint32_t *gid)
{
    char scratch[SCRATCH_SIZE];
    struct group entry, *found = NULL;
    if (getgrnam_r(name, &entry, scratch, sizeof scratch, &found) == 0 && found) {
        *gid = (uint32_t)found->gr_gid;
        return 0;
    }
    return parse_decimal_id(name, gid);
}
