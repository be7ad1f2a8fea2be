/* capsule-shim: a session's files under /mnt/data: the registry (ids, paths, sizes) and the
 * host-side file operations, which never follow anything the sandbox planted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "rpc.h"
#include "shim-util.h"

#define FILES_MAX 10000 /* files a session's registry tracks */

struct cfile
{
  char *id;
  char *path; /* relative to /mnt/data; bytes as the file system has them (maybe not UTF-8) */
  uint64_t bytes;
  int64_t created_at;
  bool from_user;
  bool seen;     /* during a rescan */
  uint64_t mark; /* listed by this result already */
};

/* In registration order, with an index by id and by path. */
struct files
{
  struct cfile **v;
  size_t n, cap;
  struct strmap by_id, by_path;
  bool truncated; /* the last rescan met more than it may walk */
};

struct cfile *files_find (struct files *fs, const char *id);
struct cfile *files_find_path (struct files *fs, const char *rel);
/* Register REL (or update it); NULL when the registry is full. */
struct cfile *files_register (struct files *fs, const char *rel, uint64_t bytes, bool from_user);
/* Give F the id ID (a record read back); -1 when another file has it. */
int files_set_id (struct files *fs, struct cfile *f, const char *id);
void files_forget (struct files *fs, struct cfile *f);
void files_release (struct files *fs);
/* Bring the registry in line with what is under DATA_DIR (bounded walk). */
void files_rescan (struct files *fs, const char *data_dir);

/* Normalise a user path: relative to /mnt/data or absolute under it; refuses "..", NUL, empty
 * components, control characters, over-long names.  Returns the path relative to the data dir. */
struct rpc_error *files_normalise (const char *path, char **ret_rel);

/* Open the data directory (O_PATH). */
int files_data_fd (const char *data_dir, capsule_error **err);
/* Write DATA as REL (through a temporary file and rename), owned by UID. */
int files_write (const char *data_dir, const char *rel, const void *data, size_t len, uid_t uid,
                 capsule_error **err);
int files_read (const char *data_dir, const char *rel, size_t max, char **ret, size_t *ret_len,
                capsule_error **err);
int files_unlink (const char *data_dir, const char *rel, capsule_error **err);
