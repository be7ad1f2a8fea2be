/* capsule: container records on disk. */
#define _GNU_SOURCE
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "json.h"
#include "utils.h"

const char *
container_status_name (enum container_status s)
{
  static const char *const names[] = { "creating", "created", "running", "paused", "stopped" };
  return names[s];
}

char *
state_dir (const char *root, const char *id)
{
  return xasprintf ("%s/%s", root, id);
}

int
state_save (const char *root, const struct container_state *st, capsule_error **err)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_free_ char *path = xasprintf ("%s/%s/state.json", root, st->id);
  const char *text;
  size_t len;

  json_w_open_object (w);
  json_w_kv_string (w, "id", st->id);
  json_w_kv_string (w, "bundle", st->bundle);
  json_w_kv_string (w, "rootfs", st->rootfs);
  json_w_kv_string (w, "created", st->created);
  json_w_kv_bool (w, "creating", st->creating);
  json_w_kv_int (w, "pid", st->pid);
  json_w_kv_int (w, "startTime", st->start_time);
  json_w_kv_int (w, "memoryLimit", st->memory_limit);
  json_w_kv_int (w, "cgroupVersion", st->cgroup_version);
  json_w_kv_string (w, "cgroupRoot", st->cgroup_root);
  json_w_kv_string (w, "cgroupPath", st->cgroup_path);
  json_w_key (w, "cgroupV1Paths");
  json_w_open_array (w);
  for (size_t i = 0; i < ARRAY_SIZE (st->v1_paths); i++)
    json_w_string (w, st->v1_paths[i]);
  json_w_close_array (w);
  json_w_key (w, "annotations");
  json_w_open_object (w);
  for (size_t i = 0; i < st->n_annotations; i++)
    json_w_kv_string (w, st->annotation_keys[i], st->annotation_values[i]);
  json_w_close_object (w);
  json_w_close_object (w);
  text = json_writer_text (w, &len);
  return write_file_atomic (path, text, len, 0600, err);
}

static char *
dup_string (json_value *doc, const char *key)
{
  const char *s = json_string (json_get (doc, key));
  return s ? xstrdup (s) : NULL;
}

static long long
get_int (json_value *doc, const char *key)
{
  json_value *v = json_get (doc, key);
  return json_is_integer (v) ? json_integer (v) : 0;
}

int
state_load (const char *root, const char *id, struct container_state **ret, capsule_error **err)
{
  _cleanup_free_ char *path = NULL, *text = NULL;
  _cleanup_json_ json_value *doc = NULL;
  struct container_state *st;
  json_value *v1, *ann;
  size_t len;

  if (!container_id_valid (id))
    return capsule_error_make (err, EINVAL, "invalid container id \"%s\"", id);
  path = xasprintf ("%s/%s/state.json", root, id);
  if (read_file_at (AT_FDCWD, path, 1 << 20, &text, &len, err) < 0)
    {
      if ((*err)->status == ENOENT)
        {
          _cleanup_free_ char *dir = state_dir (root, id);
          struct stat sb;
          capsule_error_release (err);
          if (stat (dir, &sb) == 0)
            return capsule_error_make (err, ENOENT,
                                       "container `%s` has no state yet (create "
                                       "is under way or was interrupted; `delete` cleans it up)",
                                       id);
          return capsule_error_make (err, ENOENT, "container `%s` does not exist", id);
        }
      return -1;
    }
  doc = json_parse_n (text, len, JSON_NUL_REFUSE, path, err);
  if (doc == NULL)
    return -1;
  st = xmalloc0 (sizeof *st);
  st->id = xstrdup (id);
  st->bundle = dup_string (doc, "bundle");
  st->rootfs = dup_string (doc, "rootfs");
  st->created = dup_string (doc, "created");
  st->creating
      = json_is_bool (json_get (doc, "creating")) && json_bool (json_get (doc, "creating"));
  st->pid = get_int (doc, "pid");
  st->start_time = get_int (doc, "startTime");
  st->memory_limit = get_int (doc, "memoryLimit");
  st->cgroup_version = get_int (doc, "cgroupVersion");
  st->cgroup_root = dup_string (doc, "cgroupRoot");
  st->cgroup_path = dup_string (doc, "cgroupPath");
  v1 = json_get (doc, "cgroupV1Paths");
  for (size_t i = 0; i < json_array_len (v1) && i < ARRAY_SIZE (st->v1_paths); i++)
    {
      const char *s = json_string (json_array_get (v1, i));
      st->v1_paths[i] = s ? xstrdup (s) : NULL;
    }
  ann = json_get (doc, "annotations");
  st->n_annotations = json_object_len (ann);
  st->annotation_keys = xmalloc0 ((st->n_annotations + 1) * sizeof (char *));
  st->annotation_values = xmalloc0 ((st->n_annotations + 1) * sizeof (char *));
  for (size_t i = 0; i < st->n_annotations; i++)
    {
      st->annotation_keys[i] = xstrdup (json_object_key (ann, i));
      st->annotation_values[i] = xstrdup (json_string (json_object_value (ann, i)) ?: "");
    }
  *ret = st;
  return 0;
}

struct container_state *
state_free (struct container_state *st)
{
  if (st == NULL)
    return NULL;
  free (st->id);
  free (st->bundle);
  free (st->rootfs);
  free (st->created);
  free (st->cgroup_root);
  free (st->cgroup_path);
  for (size_t i = 0; i < ARRAY_SIZE (st->v1_paths); i++)
    free (st->v1_paths[i]);
  strv_free (st->annotation_keys);
  strv_free (st->annotation_values);
  free (st);
  return NULL;
}

bool
state_process_alive (const struct container_state *st)
{
  uint64_t start;
  if (st->pid <= 0)
    return false;
  if (proc_start_time (st->pid, &start) < 0 || start != st->start_time)
    return false;
  /* a zombie is not running */
  {
    char path[64], buf[512];
    _cleanup_close_ int fd = -1;
    ssize_t n;
    char *p;
    snprintf (path, sizeof path, "/proc/%d/stat", st->pid);
    fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return false;
    n = read (fd, buf, sizeof buf - 1);
    if (n <= 0)
      return false;
    buf[n] = '\0';
    p = strrchr (buf, ')');
    if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
      return false;
  }
  return true;
}

struct cgroup *
state_cgroup (const struct container_state *st)
{
  if (st->cgroup_version == 0 || st->cgroup_path == NULL)
    return NULL;
  return cgroup_from_state (st->cgroup_version, st->cgroup_root, st->cgroup_path, st->v1_paths);
}

enum container_status
state_status (const char *root, const struct container_state *st)
{
  _cleanup_free_ char *fifo = NULL;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  bool frozen = false;
  if (st->creating)
    return state_process_alive (st) ? STATUS_CREATING : STATUS_STOPPED;
  if (!state_process_alive (st))
    return STATUS_STOPPED;
  fifo = xasprintf ("%s/%s/exec.fifo", root, st->id);
  if (access (fifo, F_OK) == 0)
    return STATUS_CREATED;
  cg = state_cgroup (st);
  if (cg && cg->ops->is_frozen (cg, &frozen, &err) == 0 && frozen)
    return STATUS_PAUSED;
  return STATUS_RUNNING;
}

char *
state_json (const struct container_state *st, enum container_status status, bool oom_killed)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (true);
  json_w_open_object (w);
  json_w_kv_string (w, "ociVersion", OCI_VERSION);
  json_w_kv_string (w, "id", st->id);
  json_w_kv_string (w, "status", container_status_name (status));
  json_w_kv_int (w, "pid", status == STATUS_STOPPED ? 0 : st->pid);
  json_w_kv_string (w, "bundle", st->bundle);
  json_w_kv_string (w, "rootfs", st->rootfs);
  json_w_kv_string (w, "created", st->created);
  json_w_kv_string (w, "owner", "");
  json_w_key (w, "annotations");
  json_w_open_object (w);
  for (size_t i = 0; i < st->n_annotations; i++)
    json_w_kv_string (w, st->annotation_keys[i], st->annotation_values[i]);
  json_w_close_object (w);
  json_w_kv_bool (w, "oomKilled", oom_killed);
  json_w_close_object (w);
  return xstrdup (json_writer_text (w, NULL));
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

int
state_list (const char *root, char ***ret, capsule_error **err)
{
  DIR *d = opendir (root);
  struct dirent *de;
  char **ids = NULL;
  size_t n = 0;
  if (d == NULL)
    {
      if (errno == ENOENT)
        {
          *ret = xmalloc0 (sizeof (char *));
          return 0;
        }
      return capsule_error_make (err, errno, "open `%s`", root);
    }
  while ((de = readdir (d)))
    {
      if (de->d_name[0] == '.' || !container_id_valid (de->d_name))
        continue;
      ids = realloc (ids, (n + 2) * sizeof (char *));
      if (ids == NULL)
        abort ();
      ids[n++] = xstrdup (de->d_name);
      ids[n] = NULL;
    }
  closedir (d);
  if (ids == NULL)
    ids = xmalloc0 (sizeof (char *));
  qsort (ids, n, sizeof (char *), cmp_str);
  *ret = ids;
  return 0;
}

int
state_lock (const char *root, const char *id, capsule_error **err)
{
  _cleanup_free_ char *dir = state_dir (root, id);
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return capsule_error_make (err, ENOENT, "container `%s` does not exist", id);
      return capsule_error_make (err, errno, "open `%s`", dir);
    }
  if (flock (fd, LOCK_EX) < 0)
    {
      int e = errno;
      close (fd);
      return capsule_error_make (err, e, "lock `%s`", dir);
    }
  return fd;
}
