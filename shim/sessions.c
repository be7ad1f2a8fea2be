/* capsule-shim: sessions and the methods of the API (objects as OpenAI's Containers and
 * Container Files API shape them: ../shared/API.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "shim-util.h"
#include "shim.h"
#include "utils.h"

#define NAME_MAX_CHARS     256
#define CODE_MAX_BYTES     (1u << 20)
#define EXPIRY_MAX_MINUTES 1440

/* ------------------------------------------------------------------ session objects */

struct session *
session_find (struct shim *s, const char *id)
{
  for (struct session *se = s->sessions; se; se = se->next)
    if (strcmp (se->id, id) == 0)
      return se;
  return NULL;
}

void
session_touch (struct session *se)
{
  se->last_active_at = shim_now ();
}

static const char *
status_name (enum session_status st)
{
  return st == SESSION_RUNNING ? "running" : st == SESSION_EXPIRED ? "expired" : "deleted";
}

static const char *
sandbox_state_name (const struct session *se)
{
  if (se->status != SESSION_RUNNING)
    return "none";
  switch (se->sb)
    {
    case SB_READY:
      return "live";
    case SB_STARTING:
      return "starting";
    case SB_CHECKPOINTING:
      return "checkpointing";
    case SB_ASLEEP:
      return "checkpointed";
    case SB_RESTORING:
      return "restoring";
    case SB_NONE:
      break;
    }
  return "stopped";
}

static void
w_session (json_writer *w, struct session *se)
{
  json_w_open_object (w);
  json_w_kv_string (w, "id", se->id);
  json_w_kv_string (w, "object", "container");
  json_w_kv_string (w, "name", se->name);
  json_w_kv_int (w, "created_at", se->created_at);
  json_w_kv_string (w, "status", status_name (se->status));
  json_w_kv_int (w, "last_active_at", se->last_active_at);
  json_w_key (w, "expires_after");
  json_w_open_object (w);
  json_w_kv_string (w, "anchor", "last_active_at");
  json_w_kv_int (w, "minutes", se->expires_minutes);
  json_w_close_object (w);
  json_w_kv_string (w, "memory_limit", se->tier->name);
  /* capsule's own additions */
  json_w_kv_string (w, "tenant", se->tenant);
  json_w_kv_string (w, "sandbox", sandbox_state_name (se));
  json_w_close_object (w);
}

char *
session_object_json (struct shim *s, struct session *se)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  (void)s;
  w_session (w, se);
  return xstrdup (json_writer_text (w, NULL));
}

void
session_free (struct session *se)
{
  if (se == NULL)
    return;
  free (se->id);
  free (se->name);
  free (se->tenant);
  free (se->dir);
  free (se->data_dir);
  free (se->run_dir);
  free (se->pending_create.id_json);
  free (se->pending_sleep.id_json);
  if (se->pidfd >= 0)
    close (se->pidfd);
  files_release (se);
  buf_release (&se->exec_in.b);
  buf_release (&se->exec_out);
  free (se);
}

/* Undo everything a session holds on the host: sandbox, workspace mount, directories, pool. */
void
session_discard (struct shim *s, struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  sandbox_stop (s, se);
  if (se->data_mounted && umount2 (se->data_dir, MNT_DETACH) < 0)
    fprintf (stderr, "capsule-shim: %s: unmount workspace: %m\n", se->id);
  se->data_mounted = false;
  if (se->run_mounted && umount2 (se->run_dir, MNT_DETACH) < 0)
    fprintf (stderr, "capsule-shim: %s: unmount the run directory: %m\n", se->id);
  se->run_mounted = false;
  if (se->dir && rm_rf (se->dir, &err) < 0)
    fprintf (stderr, "capsule-shim: %s: %s\n", se->id, err->msg);
  if (se->id && s->cfg.state_dir)
    sleep_image_remove (s, se);
  if (se->charged)
    pools_credit (&s->pools, se->tenant, se->tier->memory);
  se->charged = false;
  files_release (se);
}

static void
unlink_session (struct shim *s, struct session *se)
{
  for (struct session **p = &s->sessions; *p; p = &(*p)->next)
    if (*p == se)
      {
        *p = se->next;
        return;
      }
}

void
session_expire (struct shim *s, struct session *se, bool deleted)
{
  struct rpc_error *e
      = deleted
            ? rpc_error_new (404, "not_found", "container_id", "container %s was deleted", se->id)
            : rpc_error_new (400, "container_expired", "container_id",
                             "container %s expired after %lld minutes without activity", se->id,
                             (long long)se->expires_minutes);
  if (se->pending_create.client_id)
    {
      shim_reply_error (s, &se->pending_create,
                        rpc_error_new (e->http_status, e->err_code, NULL, "%s", e->message));
    }
  execution_fail_all (s, se, e);
  session_discard (s, se);
  se->status = deleted ? SESSION_DELETED : SESSION_EXPIRED;
  se->ended_at = shim_now ();
}

void
sessions_expire_due (struct shim *s, int64_t now)
{
  struct session **p = &s->sessions;
  while (*p)
    {
      struct session *se = *p;
      if (se->status == SESSION_RUNNING && se->queue == NULL
          && now >= se->last_active_at + se->expires_minutes * s->cfg.minute_s)
        session_expire (s, se, false);
      if (se->status == SESSION_EXPIRED && now >= se->ended_at + s->cfg.expired_retention_s)
        {
          *p = se->next;
          session_free (se);
          continue;
        }
      p = &se->next;
    }
}

void
session_ready (struct shim *s, struct session *se)
{
  store_save (s, se);
  if (se->pending_create.client_id || se->pending_create.id_json)
    {
      shim_reply (s, &se->pending_create, session_object_json (s, se));
      free (se->pending_create.id_json);
      se->pending_create = (struct call){ 0 };
    }
  execution_kick (s, se);
}

void
session_start_failed (struct shim *s, struct session *se, capsule_error *err)
{
  if (se->status == SESSION_WARM)
    {
      fprintf (stderr, "capsule-shim: a warm sandbox failed to start: %s\n", err->msg);
      capsule_error_free (err);
      s->warm_failed = true;
      session_drop_warm (s, se);
      return;
    }
  if (se->pending_create.id_json)
    {
      shim_reply_error (s, &se->pending_create, rpc_error_from (500, "sandbox_failed", err));
      free (se->pending_create.id_json);
      se->pending_create = (struct call){ 0 };
      session_discard (s, se);
      unlink_session (s, se);
      session_free (se);
      return;
    }
  execution_fail_all (s, se, rpc_error_from (500, "sandbox_failed", err));
}

/* ------------------------------------------------------------------ helpers for methods */

static struct rpc_error *
lookup (struct shim *s, const json_value *params, bool need_running, struct session **ret)
{
  const char *id = json_string (json_get (params, "container_id"));
  struct session *se = id ? session_find (s, id) : NULL;
  if (se == NULL || se->status == SESSION_DELETED || se->status == SESSION_WARM)
    return rpc_error_new (404, "not_found", "container_id", "no container with id '%s'",
                          id ? id : "");
  if (need_running && se->status == SESSION_EXPIRED)
    return rpc_error_new (400, "container_expired", "container_id",
                          "container %s expired after %lld minutes without activity; its files "
                          "and interpreter state are gone",
                          se->id, (long long)se->expires_minutes);
  if (se->status == SESSION_RUNNING)
    {
      session_touch (se);
      if (se->last_active_at != se->saved_active_at)
        store_save (s, se);
    }
  *ret = se;
  return NULL;
}

static struct rpc_error *
list_params (const json_value *params, long long *limit, bool *asc, const char **after)
{
  json_value *l = json_get (params, "limit");
  const char *order = json_string (json_get (params, "order"));
  *limit = 20;
  if (l)
    {
      *limit = json_integer (l);
      if (*limit < 1 || *limit > 100)
        return rpc_error_new (400, "invalid_value", "limit", "limit must be between 1 and 100");
    }
  *asc = false;
  if (order && strcmp (order, "asc") != 0 && strcmp (order, "desc") != 0)
    return rpc_error_new (400, "invalid_value", "order", "order must be 'asc' or 'desc'");
  *asc = order && strcmp (order, "asc") == 0;
  *after = json_string (json_get (params, "after"));
  return NULL;
}

/* The list envelope over ITEMS (in ascending creation order). */
typedef const char *(*item_id_fn) (void *item);
typedef void (*item_write_fn) (json_writer *w, void *ctx, void *item);

static struct rpc_error *
paginate (void **items, size_t n, long long limit, bool asc, const char *after, item_id_fn id_of,
          item_write_fn write, void *ctx, char **ret)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  size_t start = 0, count = 0;
  const char *first = NULL, *last = NULL;
  if (!asc)
    for (size_t i = 0; i < n / 2; i++)
      {
        void *t = items[i];
        items[i] = items[n - 1 - i];
        items[n - 1 - i] = t;
      }
  if (after)
    {
      while (start < n && strcmp (id_of (items[start]), after) != 0)
        start++;
      if (start == n)
        return rpc_error_new (400, "invalid_value", "after", "cursor '%s' is not in this list",
                              after);
      start++;
    }
  json_w_open_object (w);
  json_w_kv_string (w, "object", "list");
  json_w_key (w, "data");
  json_w_open_array (w);
  for (size_t i = start; i < n && count < (size_t)limit; i++, count++)
    {
      write (w, ctx, items[i]);
      first = first ? first : id_of (items[i]);
      last = id_of (items[i]);
    }
  json_w_close_array (w);
  json_w_kv_string (w, "first_id", first);
  json_w_kv_string (w, "last_id", last);
  json_w_kv_bool (w, "has_more", start + count < n);
  json_w_close_object (w);
  *ret = xstrdup (json_writer_text (w, NULL));
  return NULL;
}

static const char *
session_id_of (void *item)
{
  return ((struct session *)item)->id;
}

static void
session_write (json_writer *w, void *ctx, void *item)
{
  (void)ctx;
  w_session (w, item);
}

static const char *
file_id_of (void *item)
{
  return ((struct cfile *)item)->id;
}

static void
file_write (json_writer *w, void *ctx, void *item)
{
  files_w_object (w, ctx, item);
}

static bool
tenant_valid (const char *t)
{
  size_t n = strlen (t);
  if (n == 0 || n > 64)
    return false;
  for (const char *p = t; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || strchr ("_.-", *p)))
      return false;
  return true;
}

/* ------------------------------------------------------------------ containers.* */

static struct rpc_error *
create_params (struct shim *s, const json_value *params, const struct tier **tier, int64_t *minutes,
               const char **tenant)
{
  const char *name = json_string (json_get (params, "name"));
  const char *mem = json_string (json_get (params, "memory_limit"));
  json_value *exp = json_get (params, "expires_after");
  json_value *ids = json_get (params, "file_ids");
  if (strlen (name) == 0 || strlen (name) > NAME_MAX_CHARS)
    return rpc_error_new (400, "invalid_value", "name", "name must be 1 to %d characters",
                          NAME_MAX_CHARS);
  *tier = tiers_find (&s->tiers, mem ? mem : s->tiers.default_tier);
  if (*tier == NULL)
    {
      _cleanup_free_ char *names = tiers_names (&s->tiers);
      return rpc_error_new (400, "invalid_value", "memory_limit",
                            "memory_limit '%s' is not one of %s", mem, names);
    }
  *minutes = 20;
  if (exp)
    {
      const char *anchor = json_string (json_get (exp, "anchor"));
      json_value *m = json_get (exp, "minutes");
      if (anchor == NULL || strcmp (anchor, "last_active_at") != 0)
        return rpc_error_new (400, "invalid_value", "expires_after.anchor",
                              "expires_after.anchor must be 'last_active_at'");
      if (!json_is_integer (m) || json_integer (m) < 1 || json_integer (m) > EXPIRY_MAX_MINUTES)
        return rpc_error_new (400, "invalid_value", "expires_after.minutes",
                              "expires_after.minutes must be an integer from 1 to %d",
                              EXPIRY_MAX_MINUTES);
      *minutes = json_integer (m);
    }
  *tenant = json_string (json_get (params, "tenant"));
  if (*tenant == NULL)
    *tenant = "default";
  if (!tenant_valid (*tenant))
    return rpc_error_new (400, "invalid_value", "tenant",
                          "tenant must be 1 to 64 letters, digits, '_', '.' or '-'");
  for (size_t i = 0; i < json_array_len (ids); i++)
    if (!json_is_string (json_array_get (ids, i)))
      return rpc_error_new (400, "invalid_type", "file_ids", "file_ids must hold strings");
  return NULL;
}

/* file_ids: container files of the same tenant, copied into the new workspace */
static struct rpc_error *
copy_files_in (struct shim *s, struct session *se, const json_value *ids)
{
  for (size_t i = 0; i < json_array_len (ids); i++)
    {
      const char *fid = json_string (json_array_get (ids, i));
      struct cfile *f = NULL;
      struct session *from = NULL;
      _cleanup_free_ char *data = NULL;
      _cleanup_error_ capsule_error *err = NULL;
      size_t len = 0;
      for (struct session *o = s->sessions; o && f == NULL; o = o->next)
        if (o->status == SESSION_RUNNING && strcmp (o->tenant, se->tenant) == 0
            && (f = files_find (o, fid)))
          from = o;
      if (f == NULL)
        return rpc_error_new (404, "not_found", "file_ids", "no file with id '%s'", fid);
      if (files_read (from, f->path, s->cfg.max_upload, &data, &len, &err) < 0
          || files_write (se, f->path, data, len, s->cfg.host_uid_base + 1000, &err) < 0)
        return rpc_error_from (400, "file_copy_failed", steal_pointer (&err));
      files_register (se, f->path, len, true);
    }
  return NULL;
}

static int
make_dirs (struct shim *s, struct session *se, capsule_error **err)
{
  uid_t uid = s->cfg.host_uid_base + 1000;
  _cleanup_free_ char *opts = xasprintf ("size=%llu,mode=0700,uid=%u,gid=%u,nr_inodes=65536",
                                         (unsigned long long)se->tier->workspace, uid, uid);
  se->dir = xasprintf ("%s/sessions/%s", s->cfg.state_dir, se->id);
  se->data_dir = xasprintf ("%s/data", se->dir);
  se->run_dir = xasprintf ("%s/run", se->dir);
  _cleanup_free_ char *run_opts
      = xasprintf ("size=64k,mode=0700,uid=%u,gid=%u,nr_inodes=16", uid, uid);
  if (mkdir_p (se->data_dir, 0700, err) < 0 || mkdir_p (se->run_dir, 0700, err) < 0
      || chmod (se->dir, 0711) < 0)
    return capsule_error_make (err, errno, "session directory %s", se->dir);
  /* the run directory is where the sandbox's user puts the executor's socket; it is writable
     from the sandbox, so it is a tiny tmpfs, not the state directory's disk */
  if (mount ("capsule-run", se->run_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, run_opts) < 0)
    return capsule_error_make (err, errno, "mount the run directory at %s", se->run_dir);
  se->run_mounted = true;
  if (mount ("capsule-workspace", se->data_dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
    return capsule_error_make (err, errno, "mount the workspace at %s", se->data_dir);
  se->data_mounted = true;
  return 0;
}

static struct session *
session_new (struct shim *s, const struct tier *tier, enum session_status status)
{
  struct session *se = xmalloc0 (sizeof *se);
  se->seq = ++s->next_seq;
  se->id = shim_new_id ("cntr_");
  se->tier = tier;
  se->created_at = se->last_active_at = shim_now ();
  se->exec_fd = se->pidfd = -1;
  se->status = status;
  se->next = s->sessions;
  s->sessions = se;
  return se;
}

void
session_drop_warm (struct shim *s, struct session *se)
{
  session_discard (s, se);
  unlink_session (s, se);
  session_free (se);
}

void
sessions_refill_warm (struct shim *s)
{
  int n = 0;
  for (struct session *se = s->sessions; se; se = se->next)
    n += se->status == SESSION_WARM;
  while (n++ < s->cfg.warm && !s->warm_failed && !s->stopping)
    {
      _cleanup_error_ capsule_error *err = NULL;
      struct session *se
          = session_new (s, tiers_find (&s->tiers, s->tiers.default_tier), SESSION_WARM);
      se->name = xstrdup ("");
      se->tenant = xstrdup ("");
      if (make_dirs (s, se, &err) < 0 || sandbox_start (s, se, &err) < 0)
        {
          fprintf (stderr, "capsule-shim: cannot start a warm sandbox: %s\n", err->msg);
          s->warm_failed = true;
          session_drop_warm (s, se);
        }
    }
}

/* A sandbox of TIER already up and waiting, or NULL. */
static struct session *
take_warm (struct shim *s, const struct tier *tier)
{
  for (struct session *se = s->sessions; se; se = se->next)
    if (se->status == SESSION_WARM && se->sb == SB_READY && se->tier == tier)
      return se;
  return NULL;
}

static struct rpc_error *
m_containers_create (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  const struct tier *tier = NULL;
  const char *tenant = NULL;
  int64_t minutes = 0;
  struct rpc_error *e = create_params (s, params, &tier, &minutes, &tenant);
  _cleanup_error_ capsule_error *err = NULL;
  struct session *se;
  int n = 0;
  if (e)
    return e;
  for (struct session *o = s->sessions; o; o = o->next)
    n += o->status == SESSION_RUNNING;
  if (n >= s->cfg.max_sessions)
    return rpc_error_new (429, "too_many_containers", NULL,
                          "this host runs %d containers, its limit", n);
  if (pools_charge (&s->pools, tenant, tier->memory, &err) < 0)
    return rpc_error_from (429, "memory_pool_exhausted", steal_pointer (&err));
  s->warm_failed = false;
  se = take_warm (s, tier);
  if (se)
    {
      /* claimed: it becomes this container, fresh as if just made */
      free (se->name);
      free (se->tenant);
      se->seq = ++s->next_seq;
      se->status = SESSION_RUNNING;
      se->created_at = se->last_active_at = shim_now ();
    }
  else
    se = session_new (s, tier, SESSION_RUNNING);
  se->name = xstrdup (json_string (json_get (params, "name")));
  se->tenant = xstrdup (tenant);
  se->charged = true;
  se->expires_minutes = minutes;
  if (se->sb == SB_NONE && make_dirs (s, se, &err) < 0)
    e = rpc_error_from (500, "sandbox_failed", steal_pointer (&err));
  if (e == NULL)
    e = copy_files_in (s, se, json_get (params, "file_ids"));
  if (e == NULL && se->sb == SB_NONE && sandbox_start (s, se, &err) < 0)
    e = rpc_error_from (500, "sandbox_failed", steal_pointer (&err));
  if (e)
    {
      session_discard (s, se);
      unlink_session (s, se);
      session_free (se);
      return e;
    }
  if (se->sb == SB_READY)
    {
      store_save (s, se); /* a claimed warm sandbox is someone's now, also after a restart */
      *ret = session_object_json (s, se);
    }
  else
    {
      se->pending_create.client_id = c->client_id;
      se->pending_create.id_json = xstrdup (c->id_json);
      *ret = NULL; /* answered when the interpreter is up */
    }
  /* Refill a little later: starting a Python now would take CPU from the first cell that the
     client is about to send to the sandbox it just got. */
  if (s->warm_refill_ms == 0)
    s->warm_refill_ms = shim_monotonic_ms () + 300;
  return NULL;
}

static int
cmp_seq (const void *a, const void *b)
{
  const struct session *x = *(void *const *)a, *y = *(void *const *)b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static struct rpc_error *
m_containers_list (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  const char *name = json_string (json_get (params, "name"));
  const char *tenant = json_string (json_get (params, "tenant"));
  const char *after;
  long long limit;
  bool asc;
  struct rpc_error *e = list_params (params, &limit, &asc, &after);
  _cleanup_free_ void **items = NULL;
  size_t n = 0;
  (void)c;
  if (e)
    return e;
  for (struct session *se = s->sessions; se; se = se->next)
    n++;
  items = xmalloc0 ((n + 1) * sizeof (void *));
  n = 0;
  for (struct session *se = s->sessions; se; se = se->next)
    if (se->status != SESSION_WARM && (name == NULL || strcmp (se->name, name) == 0)
        && (tenant == NULL || strcmp (se->tenant, tenant) == 0))
      items[n++] = se;
  qsort (items, n, sizeof (void *), cmp_seq);
  return paginate (items, n, limit, asc, after, session_id_of, session_write, NULL, ret);
}

static struct rpc_error *
m_containers_retrieve (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (s, params, false, &se);
  (void)c;
  if (e)
    return e;
  *ret = session_object_json (s, se);
  return NULL;
}

static struct rpc_error *
m_containers_delete (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (s, params, false, &se);
  (void)c;
  if (e)
    return e;
  *ret = xasprintf ("{\"id\":\"%s\",\"object\":\"container.deleted\",\"deleted\":true}", se->id);
  if (se->status == SESSION_RUNNING)
    session_expire (s, se, true);
  unlink_session (s, se);
  session_free (se);
  return NULL;
}

static struct rpc_error *
m_containers_exec (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (s, params, true, &se);
  const char *code = json_string (json_get (params, "code"));
  json_value *t = json_get (params, "timeout_ms");
  json_value *stream = json_get (params, "stream");
  struct exec_call *x;
  if (e)
    return e;
  if (strlen (code) > CODE_MAX_BYTES)
    return rpc_error_new (413, "code_too_large", "code", "code is over %u bytes", CODE_MAX_BYTES);
  if (t && (json_integer (t) < 1 || json_integer (t) > s->cfg.exec_timeout_max_ms))
    return rpc_error_new (400, "invalid_value", "timeout_ms", "timeout_ms must be from 1 to %lld",
                          (long long)s->cfg.exec_timeout_max_ms);
  {
    int queued = 0;
    for (struct exec_call *q = se->queue; q; q = q->next)
      queued++;
    if (queued >= 64)
      return rpc_error_new (429, "too_many_cells", "container_id",
                            "container %s has %d cells waiting; wait for their results", se->id,
                            queued);
  }
  x = xmalloc0 (sizeof *x);
  x->call.client_id = c->client_id;
  x->call.id_json = xstrdup (c->id_json);
  x->exec_id = shim_new_id ("exec_");
  x->code = xstrdup (code);
  x->timeout_ms = t ? json_integer (t) : s->cfg.exec_timeout_default_ms;
  x->stream = stream && json_bool (stream) && c->id_json; /* a notification hears nothing */
  execution_enqueue (s, se, x);
  *ret = NULL;
  return NULL;
}

static struct rpc_error *
m_containers_interrupt (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (s, params, true, &se);
  bool running;
  (void)c;
  if (e)
    return e;
  running = se->queue && se->queue->phase != EXEC_QUEUED && se->pid > 0;
  if (running)
    sandbox_signal (se, SIGINT);
  *ret = xasprintf ("{\"id\":\"%s\",\"object\":\"container.interrupt\",\"interrupted\":%s}", se->id,
                    running ? "true" : "false");
  return NULL;
}

/* ------------------------------------------------------------------ files.* */

static struct rpc_error *
m_files_create (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (s, params, true, &se);
  const char *content = json_string (json_get (params, "content"));
  const char *path = json_string (json_get (params, "path"));
  _cleanup_free_ char *rel = NULL, *fallback = NULL;
  _cleanup_free_ unsigned char *data = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  size_t clen, len = 0;
  struct cfile *f;
  (void)c;
  if (e)
    return e;
  clen = strlen (content);
  if (base64_decoded_max (clen) > s->cfg.max_upload + 2)
    return rpc_error_new (413, "file_too_large", "content",
                          "the file is larger than the %llu-byte upload limit",
                          (unsigned long long)s->cfg.max_upload);
  if (base64_decode (content, clen, &data, &len) < 0)
    return rpc_error_new (400, "invalid_value", "content", "content is not valid base64");
  if (len > s->cfg.max_upload)
    return rpc_error_new (413, "file_too_large", "content",
                          "the file is %zu bytes, over the %llu-byte upload limit", len,
                          (unsigned long long)s->cfg.max_upload);
  if (path == NULL)
    path = fallback = xasprintf ("upload-%lld", (long long)shim_now ());
  if ((e = files_normalise (path, &rel)))
    return e;
  if (files_write (se, rel, data, len, s->cfg.host_uid_base + 1000, &err) < 0)
    {
      bool full = err->status == ENOSPC;
      return rpc_error_from (full ? 413 : 400, full ? "workspace_full" : "file_write_failed",
                             steal_pointer (&err));
    }
  f = files_register (se, rel, len, true);
  store_save (s, se);
  files_w_object (w, se, f);
  *ret = xstrdup (json_writer_text (w, NULL));
  return NULL;
}

static struct rpc_error *
m_files_list (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (s, params, true, &se);
  const char *after;
  long long limit;
  bool asc;
  _cleanup_free_ void **items = NULL;
  (void)c;
  if (e || (e = list_params (params, &limit, &asc, &after)))
    return e;
  files_rescan (se);
  items = xmalloc0 ((se->n_files + 1) * sizeof (void *));
  for (size_t i = 0; i < se->n_files; i++)
    items[i] = &se->files[i];
  return paginate (items, se->n_files, limit, asc, after, file_id_of, file_write, se, ret);
}

static struct rpc_error *
lookup_file (struct shim *s, const json_value *params, struct session **ret_se,
             struct cfile **ret_f)
{
  const char *fid = json_string (json_get (params, "file_id"));
  struct rpc_error *e = lookup (s, params, true, ret_se);
  if (e)
    return e;
  *ret_f = files_find (*ret_se, fid);
  if (*ret_f == NULL)
    return rpc_error_new (404, "not_found", "file_id", "no file with id '%s' in container %s", fid,
                          (*ret_se)->id);
  return NULL;
}

static struct rpc_error *
m_files_retrieve (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct cfile *f;
  struct rpc_error *e = lookup_file (s, params, &se, &f);
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  (void)c;
  if (e)
    return e;
  files_w_object (w, se, f);
  *ret = xstrdup (json_writer_text (w, NULL));
  return NULL;
}

static struct rpc_error *
m_files_content (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct cfile *f;
  struct rpc_error *e = lookup_file (s, params, &se, &f);
  _cleanup_free_ char *data = NULL, *b64 = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  size_t len;
  (void)c;
  if (e)
    return e;
  if (files_read (se, f->path, s->cfg.max_upload, &data, &len, &err) < 0)
    {
      int st = err->status == ENOENT ? 404 : err->status == EFBIG ? 413 : 400;
      return rpc_error_from (st, st == 404 ? "not_found" : "file_unreadable", steal_pointer (&err));
    }
  f->bytes = len;
  b64 = base64_encode (data, len);
  json_w_open_object (w);
  json_w_kv_string (w, "id", f->id);
  json_w_kv_string (w, "object", "container.file.content");
  json_w_kv_int (w, "bytes", len);
  json_w_kv_string (w, "content", b64);
  json_w_close_object (w);
  *ret = xstrdup (json_writer_text (w, NULL));
  return NULL;
}

static struct rpc_error *
m_files_delete (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct cfile *f;
  struct rpc_error *e = lookup_file (s, params, &se, &f);
  _cleanup_error_ capsule_error *err = NULL;
  (void)c;
  if (e)
    return e;
  if (files_unlink (se, f->path, &err) < 0)
    return rpc_error_from (400, "file_delete_failed", steal_pointer (&err));
  *ret
      = xasprintf ("{\"id\":\"%s\",\"object\":\"container.file.deleted\",\"deleted\":true}", f->id);
  for (size_t i = 0; i < se->n_files; i++)
    if (&se->files[i] == f)
      {
        free (f->id);
        free (f->path);
        memmove (f, f + 1, (se->n_files - i - 1) * sizeof *f);
        se->n_files--;
        break;
      }
  store_save (s, se);
  return NULL;
}

/* ------------------------------------------------------------------ shim.status */

static struct rpc_error *
m_shim_status (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  int running = 0, expired = 0, live = 0, starting = 0, busy = 0, warm = 0, asleep = 0;
  (void)c;
  (void)params;
  for (struct session *se = s->sessions; se; se = se->next)
    {
      running += se->status == SESSION_RUNNING;
      warm += se->status == SESSION_WARM && se->sb == SB_READY;
      expired += se->status == SESSION_EXPIRED;
      live += se->status == SESSION_RUNNING && se->sb == SB_READY;
      starting += se->status == SESSION_RUNNING && se->sb == SB_STARTING;
      busy += se->queue != NULL;
      asleep += se->status == SESSION_RUNNING && se->sb == SB_ASLEEP;
    }
  json_w_open_object (w);
  json_w_kv_string (w, "object", "shim.status");
  json_w_kv_string (w, "version", CAPSULE_VERSION);
  json_w_kv_int (w, "uptime_ms", shim_monotonic_ms () - s->started_ms);
  json_w_kv_string (w, "image", s->image_is_host ? "host" : s->image_root);
  json_w_kv_int (w, "clients", s->n_clients);
  json_w_key (w, "sessions");
  json_w_open_object (w);
  json_w_kv_int (w, "running", running);
  json_w_kv_int (w, "expired", expired);
  json_w_kv_int (w, "live", live);
  json_w_kv_int (w, "starting", starting);
  json_w_kv_int (w, "busy", busy);
  json_w_kv_int (w, "warm", warm);
  json_w_kv_int (w, "checkpointed", asleep);
  json_w_close_object (w);
  json_w_kv_string (w, "checkpoint", s->checkpoint_unavailable ? "unavailable" : "available");
  if (s->checkpoint_unavailable)
    json_w_kv_string (w, "checkpoint_reason", s->checkpoint_unavailable);
  json_w_kv_int (w, "checkpoint_after_seconds",
                 s->checkpoint_unavailable ? 0 : (long long)s->tiers.checkpoint_after_s);
  json_w_key (w, "pools");
  json_w_open_array (w);
  for (size_t i = 0; i < s->pools.n; i++)
    {
      _cleanup_free_ char *used = format_size (s->pools.e[i].used);
      _cleanup_free_ char *total = format_size (s->pools.e[i].total);
      json_w_open_object (w);
      json_w_kv_string (w, "tenant", s->pools.e[i].tenant);
      json_w_kv_int (w, "used_bytes", s->pools.e[i].used);
      json_w_kv_int (w, "total_bytes", s->pools.e[i].total);
      json_w_kv_string (w, "used", used);
      json_w_kv_string (w, "total", total);
      json_w_close_object (w);
    }
  json_w_close_array (w);
  json_w_key (w, "tiers");
  json_w_open_array (w);
  for (size_t i = 0; i < s->tiers.n; i++)
    json_w_string (w, s->tiers.tier[i].name);
  json_w_close_array (w);
  json_w_close_object (w);
  *ret = xstrdup (json_writer_text (w, NULL));
  return NULL;
}

/* containers.checkpoint: put the session to sleep now (a node being drained); answered with the
   container object once it is on disk.  The next call wakes it. */
static struct rpc_error *
m_containers_checkpoint (struct shim *s, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (s, params, true, &se);
  if (e)
    return e;
  if (se->sb == SB_ASLEEP)
    {
      *ret = session_object_json (s, se);
      return NULL;
    }
  if (se->pending_sleep.id_json)
    return rpc_error_new (409, "container_busy", "container_id",
                          "container %s is already being checkpointed for another call", se->id);
  /* an idle checkpoint under way: this call is answered when it is done */
  e = se->sb == SB_CHECKPOINTING ? NULL : session_sleep (s, se);
  if (e)
    return e;
  se->pending_sleep.client_id = c->client_id;
  se->pending_sleep.id_json = xstrdup (c->id_json);
  *ret = NULL; /* answered when the worker is done */
  return NULL;
}

/* ------------------------------------------------------------------ the table */

static const struct param_spec p_create[] = {
  { "name", P_STRING, true },           { "memory_limit", P_STRING, false },
  { "expires_after", P_OBJECT, false }, { "file_ids", P_ARRAY, false },
  { "tenant", P_STRING, false },        { NULL, 0, false },
};
static const struct param_spec p_list[] = {
  { "limit", P_INT, false },   { "order", P_STRING, false },  { "after", P_STRING, false },
  { "name", P_STRING, false }, { "tenant", P_STRING, false }, { NULL, 0, false },
};
static const struct param_spec p_container[]
    = { { "container_id", P_STRING, true }, { NULL, 0, false } };
static const struct param_spec p_exec[] = {
  { "container_id", P_STRING, true }, { "code", P_STRING, true }, { "timeout_ms", P_INT, false },
  { "stream", P_BOOL, false },        { NULL, 0, false },
};
static const struct param_spec p_files_create[] = {
  { "container_id", P_STRING, true },
  { "path", P_STRING, false },
  { "content", P_STRING, true },
  { NULL, 0, false },
};
static const struct param_spec p_files_list[] = {
  { "container_id", P_STRING, true }, { "limit", P_INT, false }, { "order", P_STRING, false },
  { "after", P_STRING, false },       { NULL, 0, false },
};
static const struct param_spec p_file[]
    = { { "container_id", P_STRING, true }, { "file_id", P_STRING, true }, { NULL, 0, false } };
static const struct param_spec p_none[] = { { NULL, 0, false } };

static const struct method methods[] = {
  { "containers.create", m_containers_create, p_create },
  { "containers.list", m_containers_list, p_list },
  { "containers.retrieve", m_containers_retrieve, p_container },
  { "containers.delete", m_containers_delete, p_container },
  { "containers.exec", m_containers_exec, p_exec },
  { "containers.interrupt", m_containers_interrupt, p_container },
  { "containers.checkpoint", m_containers_checkpoint, p_container },
  { "files.create", m_files_create, p_files_create },
  { "files.list", m_files_list, p_files_list },
  { "files.retrieve", m_files_retrieve, p_file },
  { "files.content", m_files_content, p_file },
  { "files.delete", m_files_delete, p_file },
  { "shim.status", m_shim_status, p_none },
};

const struct method *
methods_find (const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE (methods); i++)
    if (strcmp (methods[i].name, name) == 0)
      return &methods[i];
  return NULL;
}
