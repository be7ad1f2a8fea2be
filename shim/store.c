/* capsule-shim: each session's record on disk (STATE/sessions/ID/record.json), so a shim that
 * was killed or upgraded finds its sessions again: live sandboxes are re-adopted (their executor
 * takes a new connection), dead ones restart on the next call with their files. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container.h"
#include "json.h"
#include "shim-util.h"
#include "shim.h"
#include "utils.h"

int
store_save (struct shim *s, struct session *se)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_free_ char *path = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  const char *text;
  size_t len;
  if (se->status != SESSION_RUNNING || se->dir == NULL)
    return 0;
  path = xasprintf ("%s/record.json", se->dir);
  json_w_open_object (w);
  json_w_kv_int (w, "version", 1);
  json_w_kv_string (w, "id", se->id);
  json_w_kv_string (w, "name", se->name);
  json_w_kv_string (w, "tenant", se->tenant);
  json_w_kv_string (w, "tier", se->tier->name);
  json_w_kv_int (w, "created_at", se->created_at);
  json_w_kv_int (w, "last_active_at", se->last_active_at);
  json_w_kv_int (w, "expires_minutes", se->expires_minutes);
  json_w_key (w, "files");
  json_w_open_array (w);
  for (size_t i = 0; i < se->n_files; i++)
    {
      json_w_open_object (w);
      json_w_kv_string (w, "id", se->files[i].id);
      json_w_kv_string (w, "path", se->files[i].path);
      json_w_kv_int (w, "bytes", se->files[i].bytes);
      json_w_kv_int (w, "created_at", se->files[i].created_at);
      json_w_kv_bool (w, "from_user", se->files[i].from_user);
      json_w_close_object (w);
    }
  json_w_close_array (w);
  json_w_close_object (w);
  text = json_writer_text (w, &len);
  se->saved_active_at = se->last_active_at;
  if (write_file_atomic (path, text, len, 0600, &err) < 0)
    {
      fprintf (stderr, "capsule-shim: %s: save the record: %s\n", se->id, err->msg);
      return -1;
    }
  (void)s;
  return 0;
}

static bool
is_mount_point (const char *path)
{
  _cleanup_free_ char *parent = xasprintf ("%s/..", path);
  struct stat a, b;
  return stat (path, &a) == 0 && stat (parent, &b) == 0 && a.st_dev != b.st_dev;
}

static long long
get_int (const json_value *v, const char *key)
{
  json_value *x = json_get (v, key);
  return json_is_integer (x) ? json_integer (x) : 0;
}

static void
load_files (struct session *se, const json_value *files)
{
  for (size_t i = 0; i < json_array_len (files); i++)
    {
      const json_value *f = json_array_get (files, i);
      const char *id = json_string (json_get (f, "id"));
      const char *path = json_string (json_get (f, "path"));
      struct cfile *c;
      if (!shim_id_valid (id, "cfile_") || path == NULL)
        continue;
      c = files_register (se, path, get_int (f, "bytes"),
                          json_is_bool (json_get (f, "from_user"))
                              && json_bool (json_get (f, "from_user")));
      free (c->id);
      c->id = xstrdup (id);
      c->created_at = get_int (f, "created_at");
    }
}

/* The sandbox of a re-adopted session: alive (connect again) or gone (start on the next call). */
static void
adopt_sandbox (struct shim *s, struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  pid_t pid = sandbox_running (s, se);
  if (pid > 0)
    {
      se->pid = pid;
      se->pidfd = syscall (SYS_pidfd_open, pid, 0);
      se->starts = 1;
      sandbox_await_executor (s, se);
      if (se->pidfd >= 0)
        {
          se->pid_w = (struct watcher){ W_PIDFD, se };
          shim_watch (s, se->pidfd, &se->pid_w, false);
        }
      return;
    }
  container_delete (s->runtime_root, se->id, true, &err);
  se->sb = SB_NONE;
  se->starts = 1; /* the next call starts a fresh interpreter and says so */
}

static struct session *
load_one (struct shim *s, const char *dir, const char *id)
{
  _cleanup_free_ char *path = xasprintf ("%s/record.json", dir), *text = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_ json_value *doc = NULL;
  const struct tier *tier;
  struct session *se;
  if (read_file_at (AT_FDCWD, path, 64 << 20, &text, NULL, &err) < 0
      || (doc = json_parse (text, path, &err)) == NULL)
    {
      fprintf (stderr, "capsule-shim: %s: %s\n", id, err->msg);
      return NULL;
    }
  tier = tiers_find (&s->tiers, json_string (json_get (doc, "tier")));
  if (tier == NULL || strcmp (json_string (json_get (doc, "id")) ?: "", id) != 0)
    {
      fprintf (stderr, "capsule-shim: %s: the record names no known tier; left alone\n", id);
      return NULL;
    }
  se = xmalloc0 (sizeof *se);
  se->seq = ++s->next_seq;
  se->id = xstrdup (id);
  se->name = xstrdup (json_string (json_get (doc, "name")) ?: "");
  se->tenant = xstrdup (json_string (json_get (doc, "tenant")) ?: "default");
  se->tier = tier;
  se->created_at = get_int (doc, "created_at");
  se->last_active_at = se->saved_active_at = get_int (doc, "last_active_at");
  se->expires_minutes = get_int (doc, "expires_minutes");
  se->status = SESSION_RUNNING;
  se->exec_fd = se->pidfd = -1;
  se->dir = xstrdup (dir);
  se->data_dir = xasprintf ("%s/data", dir);
  se->run_dir = xasprintf ("%s/run", dir);
  se->data_mounted = is_mount_point (se->data_dir);
  se->run_mounted = is_mount_point (se->run_dir);
  load_files (se, json_get (doc, "files"));
  return se;
}

int
store_load_all (struct shim *s)
{
  _cleanup_free_ char *root = xasprintf ("%s/sessions", s->cfg.state_dir);
  DIR *d = opendir (root);
  struct dirent *de;
  int n = 0;
  if (d == NULL)
    return 0;
  while ((de = readdir (d)))
    {
      _cleanup_free_ char *dir = NULL, *record = NULL;
      _cleanup_error_ capsule_error *err = NULL;
      struct session *se;
      if (!shim_id_valid (de->d_name, "cntr_"))
        continue;
      dir = xasprintf ("%s/%s", root, de->d_name);
      record = xasprintf ("%s/record.json", dir);
      if (access (record, F_OK) < 0)
        {
          /* a warm sandbox or a create that never finished: nobody's, remove it */
          struct session tmp = { .id = de->d_name, .dir = dir, .exec_fd = -1, .pidfd = -1 };
          tmp.data_dir = xasprintf ("%s/data", dir);
          tmp.data_mounted = is_mount_point (tmp.data_dir);
          tmp.run_dir = xasprintf ("%s/run", dir);
          tmp.run_mounted = is_mount_point (tmp.run_dir);
          tmp.sb = SB_READY;
          session_discard (s, &tmp);
          free (tmp.data_dir);
          free (tmp.run_dir);
          continue;
        }
      se = load_one (s, dir, de->d_name);
      if (se == NULL)
        continue;
      if (se->data_mounted && sleep_image_complete (s, se) && sandbox_running (s, se) == 0)
        {
          /* asleep (or its checkpoint finished while no shim ran): restorable on the next call */
          se->sb = SB_ASLEEP;
          se->next = s->sessions;
          s->sessions = se;
          n++;
          continue;
        }
      if (!se->data_mounted || pools_charge (&s->pools, se->tenant, se->tier->memory, &err) < 0)
        {
          /* its files are gone (the host rebooted) or its tenant's pool shrank: it cannot come
             back as it was; it is expired, honestly */
          fprintf (stderr, "capsule-shim: %s: %s\n", se->id,
                   se->data_mounted ? err->msg : "its workspace is gone; expired");
          se->next = s->sessions;
          s->sessions = se;
          se->sb = SB_READY; /* so that expiry stops its sandbox, if one still runs */
          session_expire (s, se, false);
          continue;
        }
      se->charged = true;
      se->next = s->sessions;
      s->sessions = se;
      sleep_image_remove (s, se); /* a restore that finished while no shim ran: live, no image */
      adopt_sandbox (s, se);
      n++;
    }
  closedir (d);
  return n;
}
