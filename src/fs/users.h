/* User and group names <-> numeric ids, from the system databases
 * (getpwuid_r & co).  An id with no name is shown as its decimal number, and
 * a decimal string maps back to that number, so every id survives a trip
 * through the XML form even on a machine that lacks the name. */
#ifndef LLMFUSE_FS_USERS_H
#define LLMFUSE_FS_USERS_H

#include <stddef.h>
#include <stdint.h>

/* Writes the name (NUL-terminated, truncated to size) and returns 0. */
int lf_users_user_name(uint32_t uid, char *name, size_t size);
int lf_users_group_name(uint32_t gid, char *name, size_t size);
/* Returns 0 and the id, or -ENOENT for a name that is neither known nor a
 * decimal number. */
int lf_users_user_id(const char *name, uint32_t *uid);
int lf_users_group_id(const char *name, uint32_t *gid);

#endif
