/* capsule-shim: the methods of the API, one table.  Objects, fields, ids, pagination and errors
 * are those of OpenAI's Containers and Container Files API (shim/PROTOCOL.md).  The tenant of a
 * call comes from its `tenant` parameter (the gateway sets it from the caller's key; a local
 * client without one is the tenant "default") and is checked on every call: a container of
 * another tenant does not exist for it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "files.h"
#include "json.h"
#include "shim-util.h"
#include "shim.h"
#include "workspace.h"
#include "utils.h"

#define NAME_MAX_CHARS     256
#define CODE_MAX_BYTES     (1u << 20)
#define EXPIRY_MAX_MINUTES 1440
#define TENANT_DEFAULT     "default"

/* ------------------------------------------------------------------ objects */

static const char *
status_name (enum session_status st)
{
  return st == SESSION_RUNNING ? "running" : st == SESSION_EXPIRED ? "expired" : "deleted";
}

static void
w_container (json_writer *w, struct session *se)
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
  json_w_key (w, "network_policy");
  json_w_open_object (w);
  json_w_kv_string (w, "type", "disabled");
  json_w_close_object (w);
  /* capsule's own additions */
  json_w_kv_string (w, "tenant", se->tenant);
  json_w_kv_string (w, "sandbox", session_sandbox_state (se));
  json_w_close_object (w);
}

static char *
container_json (struct session *se)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  w_container (w, se);
  return xstrdup (json_writer_text (w, NULL));
}

static void
w_file (json_writer *w, const char *container_id, const struct cfile *f)
{
  _cleanup_free_ char *full = xasprintf ("/mnt/data/%s", f->path);
  json_w_open_object (w);
  json_w_kv_string (w, "id", f->id);
  json_w_kv_string (w, "object", "container.file");
  json_w_kv_string (w, "container_id", container_id);
  json_w_kv_int (w, "created_at", f->created_at);
  json_w_kv_int (w, "bytes", f->bytes);
  /* a name that is not UTF-8 is shown with U+FFFD in place of its bad bytes (the writer does
     that); the id still names the file exactly */
  json_w_kv_string (w, "path", full);
  json_w_kv_string (w, "source", f->from_user ? "user" : "assistant");
  json_w_close_object (w);
}

static char *
file_json (struct session *se, const struct cfile *f)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  w_file (w, se->id, f);
  return xstrdup (json_writer_text (w, NULL));
}

/* ------------------------------------------------------------------ the execution object */

static char *
logs_text (const json_value *r, const struct cell_outcome *o)
{
  const char *out = json_string (json_get (r, "stdout"));
  const char *err = json_string (json_get (r, "stderr"));
  const char *res = json_string (json_get (r, "result"));
  json_value *tb = json_get (json_get (r, "error"), "traceback");
  struct buf b = { 0 };
  char *ret;
  if (out)
    buf_append (&b, out, strlen (out));
  if (err)
    buf_append (&b, err, strlen (err));
  if (res)
    {
      buf_append (&b, res, strlen (res));
      buf_append (&b, "\n", 1);
    }
  for (size_t i = 0; i < json_array_len (tb); i++)
    {
      const char *line = json_string (json_array_get (tb, i));
      if (line)
        {
          buf_append (&b, line, strlen (line));
          if (line[0] && line[strlen (line) - 1] != '\n')
            buf_append (&b, "\n", 1);
        }
    }
  if (o->ename)
    {
      _cleanup_free_ char *t = xasprintf ("%s: %s\n", o->ename, o->evalue);
      buf_append (&b, t, strlen (t));
    }
  ret = xstrdup (buf_bytes (&b));
  buf_release (&b);
  return ret;
}

static void
w_error (json_writer *w, const json_value *r, const struct cell_outcome *o)
{
  json_value *e = json_get (r, "error");
  json_value *tb = json_get (e, "traceback");
  json_w_key (w, "error");
  if (o->ename)
    {
      json_w_open_object (w);
      json_w_kv_string (w, "ename", o->ename);
      json_w_kv_string (w, "evalue", o->evalue);
      json_w_key (w, "traceback");
      json_w_open_array (w);
      json_w_close_array (w);
      json_w_close_object (w);
      return;
    }
  if (!json_is_object (e))
    {
      json_w_null (w);
      return;
    }
  json_w_open_object (w);
  json_w_kv_string (w, "ename", json_string (json_get (e, "ename")));
  json_w_kv_string (w, "evalue", json_string (json_get (e, "evalue")));
  json_w_key (w, "traceback");
  json_w_open_array (w);
  for (size_t i = 0; i < json_array_len (tb); i++)
    json_w_string (w, json_string (json_array_get (tb, i)));
  json_w_close_array (w);
  json_w_close_object (w);
}

static char *
execution_json (struct session *se, const struct cell *c, const struct cell_outcome *o)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_free_ char *logs = logs_text (o->result, o);
  const json_value *r = o->result;
  json_value *count = json_get (r, "execution_count");

  json_w_open_object (w);
  json_w_kv_string (w, "object", "container.execution");
  json_w_kv_string (w, "id", c->exec_id);
  json_w_kv_string (w, "container_id", se->id);
  json_w_kv_string (w, "status", o->status);
  json_w_key (w, "execution_count");
  if (json_is_integer (count))
    json_w_int (w, json_integer (count));
  else
    json_w_null (w);
  json_w_kv_string (w, "stdout", json_string (json_get (r, "stdout")) ?: "");
  json_w_kv_string (w, "stderr", json_string (json_get (r, "stderr")) ?: "");
  json_w_kv_string (w, "result", json_string (json_get (r, "result")));
  w_error (w, r, o);
  json_w_kv_bool (w, "interpreter_restarted", c->restarted);
  if (c->notice)
    json_w_kv_string (w, "notice", c->notice);
  json_w_kv_bool (w, "restored", c->restored);
  if (c->restored)
    json_w_kv_int (w, "restore_ms", c->restore_ms);
  json_w_kv_int (w, "duration_ms", o->duration_ms);
  json_w_key (w, "outputs");
  json_w_open_array (w);
  json_w_open_object (w);
  json_w_kv_string (w, "type", "logs");
  json_w_kv_string (w, "logs", logs);
  json_w_close_object (w);
  for (size_t i = 0; i < o->n_images; i++)
    {
      _cleanup_free_ char *full = xasprintf ("/mnt/data/%s", o->images[i]->path);
      json_w_open_object (w);
      json_w_kv_string (w, "type", "image");
      json_w_kv_string (w, "file_id", o->images[i]->id);
      json_w_kv_string (w, "path", full);
      json_w_close_object (w);
    }
  json_w_close_array (w);
  json_w_key (w, "files");
  json_w_open_array (w);
  for (size_t i = 0; i < o->n_images; i++)
    w_file (w, se->id, o->images[i]);
  for (size_t i = 0; i < o->n_files; i++)
    w_file (w, se->id, o->files[i]);
  json_w_close_array (w);
  json_w_close_object (w);
  return xstrdup (json_writer_text (w, NULL));
}

/* ------------------------------------------------------------------ helpers */

static const char *
tenant_of (const json_value *params)
{
  return json_string (json_get (params, "tenant")) ?: TENANT_DEFAULT;
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

static struct rpc_error *
lookup (struct shim *s, const json_value *params, bool need_running, struct session **ret)
{
  const char *id = json_string (json_get (params, "container_id"));
  struct session *se = id ? sessions_find (&s->sessions, id) : NULL;
  /* a tombstone of a record that no longer read belongs to nobody it could name */
  if (se == NULL || se->status == SESSION_DELETED || se->status == SESSION_WARM
      || (strcmp (se->tenant, tenant_of (params)) != 0 && !se->record_broken))
    return rpc_error_new (404, "not_found", "container_id", "no container with id '%s'",
                          id ? id : "");
  if (need_running && se->status == SESSION_EXPIRED)
    return rpc_error_new (400, "container_expired", "container_id",
                          "container %s has expired; its files and interpreter state are gone",
                          se->id);
  session_touch (se);
  *ret = se;
  return NULL;
}

/* A container whose files may be read and written: its workspace is mounted.  Only between a
   create and its answer is it not, and a client cannot know the id before that answer. */
static struct rpc_error *
lookup_workspace (struct shim *s, const json_value *params, struct session **ret)
{
  struct rpc_error *e = lookup (s, params, true, ret);
  if (e == NULL && !workspace_ready ((*ret)->dir))
    e = rpc_error_new (409, "container_starting", "container_id",
                       "container %s is still starting; its files are not there yet", (*ret)->id);
  return e;
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
  if (order && strcmp (order, "asc") != 0 && strcmp (order, "desc") != 0)
    return rpc_error_new (400, "invalid_value", "order", "order must be 'asc' or 'desc'");
  *asc = order && strcmp (order, "asc") == 0;
  *after = json_string (json_get (params, "after"));
  return NULL;
}

typedef const char *(*item_id_fn) (void *item);
typedef void (*item_write_fn) (json_writer *w, void *ctx, void *item);

/* The list envelope over ITEMS (in ascending creation order). */
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
  w_container (w, item);
}

static const char *
file_id_of (void *item)
{
  return ((struct cfile *)item)->id;
}

static void
file_write (json_writer *w, void *ctx, void *item)
{
  w_file (w, ((struct session *)ctx)->id, item);
}

/* ------------------------------------------------------------------ containers.* */

static struct rpc_error *
create_params (struct shim *s, const json_value *params, const struct tier **tier, int64_t *minutes)
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
  if (!tenant_valid (tenant_of (params)))
    return rpc_error_new (400, "invalid_value", "tenant",
                          "tenant must be 1 to 64 letters, digits, '_', '.' or '-'");
  if (json_array_len (ids) > 100)
    return rpc_error_new (400, "invalid_value", "file_ids", "at most 100 file_ids");
  for (size_t i = 0; i < json_array_len (ids); i++)
    if (!json_is_string (json_array_get (ids, i)))
      return rpc_error_new (400, "invalid_type", "file_ids", "file_ids must hold strings");
  return NULL;
}

/* A file of FID among the running containers of TENANT, and whose. */
static struct cfile *
tenant_file (struct shim *s, const char *tenant, const char *fid, struct session **from)
{
  for (struct session *o = s->sessions.list; o; o = o->next)
    {
      struct cfile *f;
      if (o->status == SESSION_RUNNING && strcmp (o->tenant, tenant) == 0
          && (f = files_find (&o->files, fid)))
        {
          *from = o;
          return f;
        }
    }
  return NULL;
}

/* file_ids: container files of the same tenant, each named before anything is made */
static struct rpc_error *
check_file_ids (struct shim *s, const char *tenant, const json_value *ids, char ***ret)
{
  size_t n = json_array_len (ids);
  char **v = xmalloc0 ((n + 1) * sizeof (char *));
  for (size_t i = 0; i < n; i++)
    {
      const char *fid = json_string (json_array_get (ids, i));
      struct session *from;
      if (fid == NULL || tenant_file (s, tenant, fid, &from) == NULL)
        {
          strv_free (v);
          return rpc_error_new (404, "not_found", "file_ids", "no file with id '%s'",
                                fid ? fid : "");
        }
      v[i] = xstrdup (fid);
    }
  *ret = v;
  return NULL;
}

/* ... copied into the new workspace once it is there (the sandbox's start made it) */
static struct rpc_error *
copy_files_in (struct shim *s, struct session *se, char **fids)
{
  for (size_t i = 0; fids && fids[i]; i++)
    {
      struct session *from = NULL;
      struct cfile *f = tenant_file (s, se->tenant, fids[i], &from);
      _cleanup_free_ char *data = NULL;
      _cleanup_error_ capsule_error *err = NULL;
      size_t len = 0;
      if (f == NULL) /* deleted while the sandbox started */
        return rpc_error_new (404, "not_found", "file_ids", "no file with id '%s'", fids[i]);
      if (files_read (from->data_dir, f->path, s->cfg.max_upload, &data, &len, &err) < 0
          || files_write (se->data_dir, f->path, data, len, s->cfg.host_uid_base + SANDBOX_UID,
                          &err)
                 < 0)
        return rpc_error_from (400, "file_copy_failed", steal_pointer (&err));
      files_register (&se->files, f->path, len, true);
    }
  return NULL;
}

struct create_wait
{
  struct shim *s;
  struct call *c;
  char **fids;
};

/* The sandbox is up (or failed): the files come in, then the answer. */
static struct rpc_error *
create_finish (struct shim *s, struct session *se, char **fids, char **ret)
{
  struct rpc_error *e = copy_files_in (s, se, fids);
  if (e)
    {
      session_delete (se);
      return e;
    }
  store_save (se);
  *ret = container_json (se);
  return NULL;
}

static void
create_done (void *ctx, struct session *se, struct rpc_error *e)
{
  struct create_wait *w = ctx;
  char *result = NULL;
  if (e == NULL)
    e = create_finish (w->s, se, w->fids, &result);
  if (e)
    call_error (w->c, e);
  else
    call_reply (w->c, result);
  call_free (w->c);
  strv_free (w->fids);
  free (w);
}

static struct rpc_error *
m_containers_create (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct shim *s = ctx;
  const struct tier *tier = NULL;
  int64_t minutes = 0;
  _cleanup_strv_ char **fids = NULL;
  struct rpc_error *e = create_params (s, params, &tier, &minutes);
  struct session *se;
  struct create_wait *w;
  if (e || (e = check_file_ids (s, tenant_of (params), json_get (params, "file_ids"), &fids)))
    return e;
  e = session_create (&s->sessions, json_string (json_get (params, "name")), tenant_of (params),
                      tier, minutes, &se);
  if (e)
    return e;
  if ((e = session_start (se)))
    return e;
  if (session_ready (se))
    return create_finish (s, se, fids, ret);
  w = xmalloc0 (sizeof *w);
  w->s = s;
  w->c = call_keep (c);
  w->fids = steal_pointer (&fids);
  session_await_ready (se, create_done, w);
  return NULL; /* answered when the interpreter is up */
}

static int
cmp_seq (const void *a, const void *b)
{
  const struct session *x = *(void *const *)a, *y = *(void *const *)b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static struct rpc_error *
m_containers_list (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct shim *s = ctx;
  const char *name = json_string (json_get (params, "name"));
  const char *tenant = tenant_of (params);
  const char *after;
  long long limit;
  bool asc;
  struct rpc_error *e = list_params (params, &limit, &asc, &after);
  _cleanup_free_ void **items = NULL;
  size_t n = 0;
  (void)c;
  if (e)
    return e;
  for (struct session *se = s->sessions.list; se; se = se->next)
    n++;
  items = xmalloc0 ((n + 1) * sizeof (void *));
  n = 0;
  for (struct session *se = s->sessions.list; se; se = se->next)
    if (se->status != SESSION_WARM && se->status != SESSION_DELETED && !se->record_broken
        && strcmp (se->tenant, tenant) == 0 && (name == NULL || strcmp (se->name, name) == 0))
      items[n++] = se;
  qsort (items, n, sizeof (void *), cmp_seq);
  return paginate (items, n, limit, asc, after, session_id_of, session_write, NULL, ret);
}

static struct rpc_error *
m_containers_retrieve (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (ctx, params, false, &se);
  (void)c;
  if (e)
    return e;
  *ret = container_json (se);
  return NULL;
}

static struct rpc_error *
m_containers_delete (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (ctx, params, false, &se);
  (void)c;
  if (e)
    return e;
  *ret = xasprintf ("{\"id\":\"%s\",\"object\":\"container.deleted\",\"deleted\":true}", se->id);
  session_delete (se);
  return NULL;
}

static void
cell_output (void *ctx, struct session *se, struct cell *cl, const char *stream, const char *text)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  json_w_open_object (w);
  json_w_kv_string (w, "id", cl->exec_id);
  json_w_kv_string (w, "container_id", se->id);
  json_w_kv_string (w, "stream", stream);
  json_w_kv_string (w, "text", text);
  json_w_close_object (w);
  call_notify (ctx, "exec.output", json_writer_text (w, NULL));
}

static void
cell_done (void *ctx, struct session *se, struct cell *cl, const struct cell_outcome *o,
           struct rpc_error *e)
{
  struct call *c = ctx;
  if (e)
    call_error (c, e);
  else
    call_reply (c, execution_json (se, cl, o));
  call_free (c);
}

static struct rpc_error *
m_containers_exec (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct shim *s = ctx;
  struct session *se;
  struct rpc_error *e = lookup (s, params, true, &se);
  const char *code = json_string (json_get (params, "code"));
  json_value *t = json_get (params, "timeout_ms");
  json_value *stream = json_get (params, "stream");
  struct cell *cl;
  if (e)
    return e;
  if (strlen (code) > CODE_MAX_BYTES)
    return rpc_error_new (413, "code_too_large", "code", "code is over %u bytes", CODE_MAX_BYTES);
  if (t && (json_integer (t) < 1 || json_integer (t) > s->cfg.exec_timeout_max_ms))
    return rpc_error_new (400, "invalid_value", "timeout_ms", "timeout_ms must be from 1 to %lld",
                          (long long)s->cfg.exec_timeout_max_ms);
  cl = xmalloc0 (sizeof *cl);
  cl->code = xstrdup (code);
  cl->timeout_ms = t ? json_integer (t) : s->cfg.exec_timeout_default_ms;
  cl->stream = stream && json_bool (stream);
  cl->output = cell_output;
  cl->done = cell_done;
  cl->ctx = call_keep (c);
  e = session_exec (se, cl);
  if (e)
    {
      call_free (cl->ctx);
      cell_free (cl);
      return e;
    }
  *ret = NULL;
  return NULL;
}

static struct rpc_error *
m_containers_interrupt (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (ctx, params, true, &se);
  (void)c;
  if (e)
    return e;
  *ret = xasprintf ("{\"id\":\"%s\",\"object\":\"container.interrupt\",\"interrupted\":%s}", se->id,
                    session_interrupt (se) ? "true" : "false");
  return NULL;
}

static void
checkpoint_done (void *ctx, struct session *se, struct rpc_error *e)
{
  struct call *c = ctx;
  if (e)
    call_error (c, e);
  else
    call_reply (c, container_json (se));
  call_free (c);
}

/* containers.reset: the next cell runs in a fresh interpreter; the files stay. */
static struct rpc_error *
m_containers_reset (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (ctx, params, true, &se);
  (void)c;
  if (e)
    return e;
  if ((e = session_reset (se)))
    return e;
  *ret = xasprintf ("{\"id\":\"%s\",\"object\":\"container.reset\",\"reset\":true}", se->id);
  return NULL;
}

/* containers.checkpoint: put the session to sleep now (a node being drained); answered with the
   container object once it is on disk.  The next call wakes it. */
static struct rpc_error *
m_containers_checkpoint (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup (ctx, params, true, &se);
  struct call *k;
  if (e)
    return e;
  k = call_keep (c);
  e = session_checkpoint (se, checkpoint_done, k);
  if (e)
    call_free (k);
  *ret = NULL;
  return e;
}

/* ------------------------------------------------------------------ files.* */

/* content_fd: the bytes of the descriptor that came with the call (SCM_RIGHTS), from offset 0,
   read (never mapped: the sender could shrink it under us) up to the upload limit. */
static bool
local_fs (long type)
{
  switch ((unsigned long)type)
    {
    case 0x01021994: /* tmpfs and shmem: memfds */
    case 0xEF53:     /* ext2/3/4 */
    case 0x58465342: /* xfs */
    case 0x9123683E: /* btrfs */
    case 0x794C7630: /* overlay */
      return true;
    default:
      return false;
    }
}

static struct rpc_error *
read_content_fd (struct shim *s, int fd_, unsigned char **ret, size_t *ret_len)
{
  struct statfs sfs;
  _cleanup_close_ int fd = fd_;
  _cleanup_free_ unsigned char *data = NULL;
  size_t len = 0, cap;
  struct stat st;
  if (fd < 0)
    return rpc_error_new (400, "missing_required_parameter", "content_fd",
                          "content_fd: no descriptor came with the call");
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    return rpc_error_new (400, "invalid_value", "content_fd",
                          "content_fd must be a regular file or a memfd");
  /* read in the loop, so only where a read cannot wait on anyone: a memfd, or a file on a
     local disk (the gateway's store).  A FUSE, network, proc or trace file (trace_pipe is a
     "regular" file) could block every other client's call. */
  if (fstatfs (fd, &sfs) < 0 || !local_fs (sfs.f_type))
    return rpc_error_new (400, "invalid_value", "content_fd",
                          "content_fd must be a memfd or a file on a local disk (tmpfs, ext4, "
                          "xfs, btrfs, overlay), not one that a read could wait on");
  if ((uint64_t)st.st_size > s->cfg.max_upload)
    return rpc_error_new (413, "file_too_large", "content_fd",
                          "the file is %lld bytes, over the %llu-byte upload limit",
                          (long long)st.st_size, (unsigned long long)s->cfg.max_upload);
  cap = st.st_size + 1;
  data = xmalloc0 (cap);
  for (;;)
    {
      ssize_t n = pread (fd, data + len, cap - len, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return rpc_error_new (400, "file_unreadable", "content_fd", "content_fd: %s",
                              strerror (errno));
      if (n == 0)
        break;
      len += n;
      if (len == cap)
        {
          if (cap > s->cfg.max_upload)
            return rpc_error_new (413, "file_too_large", "content_fd",
                                  "the file grew past the %llu-byte upload limit",
                                  (unsigned long long)s->cfg.max_upload);
          cap = cap * 2 > s->cfg.max_upload + 1 ? s->cfg.max_upload + 1 : cap * 2;
          data = xrealloc (data, cap);
        }
    }
  *ret = steal_pointer (&data);
  *ret_len = len;
  return NULL;
}

static struct rpc_error *
m_files_create (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct shim *s = ctx;
  struct session *se;
  json_value *by_fd = json_get (params, "content_fd");
  /* taken before anything can fail: a descriptor left queued would be the next call's */
  _cleanup_close_ int fd = by_fd && json_bool (by_fd) ? call_take_fd (c) : -1;
  struct rpc_error *e = lookup_workspace (s, params, &se);
  const char *content = json_string (json_get (params, "content"));
  const char *path = json_string (json_get (params, "path"));
  _cleanup_free_ char *rel = NULL, *fallback = NULL;
  _cleanup_free_ unsigned char *data = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  size_t clen, len = 0;
  struct cfile *f;
  if (e)
    return e;
  if (by_fd && json_bool (by_fd))
    {
      if (content)
        return rpc_error_new (400, "invalid_value", "content",
                              "give content or content_fd, not both");
      if ((e = read_content_fd (s, steal_fd (&fd), &data, &len)))
        return e;
    }
  else if (content == NULL)
    return rpc_error_new (400, "missing_required_parameter", "content",
                          "missing required parameter 'content'");
  else
    {
      clen = strlen (content);
      if (base64_decoded_max (clen) > s->cfg.max_upload + 2)
        return rpc_error_new (413, "file_too_large", "content",
                              "the file is larger than the %llu-byte upload limit",
                              (unsigned long long)s->cfg.max_upload);
      if (base64_decode (content, clen, &data, &len) < 0)
        return rpc_error_new (400, "invalid_value", "content", "content is not valid base64");
    }
  if (len > s->cfg.max_upload)
    return rpc_error_new (413, "file_too_large", "content",
                          "the file is %zu bytes, over the %llu-byte upload limit", len,
                          (unsigned long long)s->cfg.max_upload);
  if (path == NULL)
    path = fallback = xasprintf ("upload-%lld", (long long)shim_now ());
  if ((e = files_normalise (path, &rel)))
    return e;
  if (files_write (se->data_dir, rel, data, len, s->cfg.host_uid_base + SANDBOX_UID, &err) < 0)
    {
      bool full = err->status == ENOSPC;
      return rpc_error_from (full ? 413 : 400, full ? "workspace_full" : "file_write_failed",
                             steal_pointer (&err));
    }
  f = session_file_written (se, rel, len, true);
  if (f == NULL)
    return rpc_error_new (400, "too_many_files", "path",
                          "the container holds %d files, the most it tracks", FILES_MAX);
  *ret = file_json (se, f);
  return NULL;
}

static struct rpc_error *
m_files_list (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct rpc_error *e = lookup_workspace (ctx, params, &se);
  const char *after;
  long long limit;
  bool asc;
  _cleanup_free_ void **items = NULL;
  (void)c;
  if (e || (e = list_params (params, &limit, &asc, &after)))
    return e;
  session_rescan (se);
  items = xmalloc0 ((se->files.n + 1) * sizeof (void *));
  for (size_t i = 0; i < se->files.n; i++)
    items[i] = se->files.v[i];
  return paginate (items, se->files.n, limit, asc, after, file_id_of, file_write, se, ret);
}

static struct rpc_error *
lookup_file (struct shim *s, const json_value *params, struct session **ret_se,
             struct cfile **ret_f)
{
  const char *fid = json_string (json_get (params, "file_id"));
  struct rpc_error *e = lookup_workspace (s, params, ret_se);
  if (e)
    return e;
  *ret_f = files_find (&(*ret_se)->files, fid);
  if (*ret_f == NULL)
    return rpc_error_new (404, "not_found", "file_id", "no file with id '%s' in container %s", fid,
                          (*ret_se)->id);
  return NULL;
}

static struct rpc_error *
m_files_retrieve (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct cfile *f;
  struct rpc_error *e = lookup_file (ctx, params, &se, &f);
  (void)c;
  if (e)
    return e;
  *ret = file_json (se, f);
  return NULL;
}

static struct rpc_error *
m_files_content (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct shim *s = ctx;
  struct session *se;
  struct cfile *f;
  struct rpc_error *e = lookup_file (s, params, &se, &f);
  json_value *by_fd = json_get (params, "content_fd");
  _cleanup_free_ char *data = NULL, *b64 = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  size_t len;
  (void)c;
  if (e)
    return e;
  if (files_read (se->data_dir, f->path, s->cfg.max_upload, &data, &len, &err) < 0)
    {
      int st = err->status == ENOENT ? 404 : err->status == EFBIG ? 413 : 400;
      return rpc_error_from (st, st == 404 ? "not_found" : "file_unreadable", steal_pointer (&err));
    }
  f->bytes = len;
  json_w_open_object (w);
  json_w_kv_string (w, "id", f->id);
  json_w_kv_string (w, "object", "container.file.content");
  json_w_kv_int (w, "bytes", len);
  if (by_fd && json_bool (by_fd))
    {
      /* the bytes travel as a sealed memfd with the answer (SCM_RIGHTS), not as base64 */
      _cleanup_close_ int mfd = memfd_create ("capsule-file", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (mfd < 0 || write_all (mfd, data, len) < 0 || lseek (mfd, 0, SEEK_SET) < 0
          || fcntl (mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return rpc_error_new (500, "server_error", "content_fd", "no memfd for the file: %s",
                              strerror (errno));
      json_w_close_object (w);
      call_reply_fd (c, xstrdup (json_writer_text (w, NULL)), steal_fd (&mfd));
      *ret = NULL;
      return NULL;
    }
  b64 = base64_encode (data, len);
  json_w_kv_string (w, "content", b64);
  json_w_close_object (w);
  *ret = xstrdup (json_writer_text (w, NULL));
  return NULL;
}

static struct rpc_error *
m_files_delete (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct session *se;
  struct cfile *f;
  struct rpc_error *e = lookup_file (ctx, params, &se, &f);
  _cleanup_error_ capsule_error *err = NULL;
  (void)c;
  if (e)
    return e;
  if (files_unlink (se->data_dir, f->path, &err) < 0)
    return rpc_error_from (400, "file_delete_failed", steal_pointer (&err));
  *ret
      = xasprintf ("{\"id\":\"%s\",\"object\":\"container.file.deleted\",\"deleted\":true}", f->id);
  session_file_deleted (se, f);
  return NULL;
}

/* ------------------------------------------------------------------ shim.status */

static struct rpc_error *
m_shim_status (void *ctx, struct call *c, const json_value *params, char **ret)
{
  struct shim *s = ctx;
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  int running = 0, expired = 0, live = 0, starting = 0, busy = 0, warm = 0, asleep = 0;
  int primed = 0;
  (void)c;
  (void)params;
  for (struct session *se = s->sessions.list; se; se = se->next)
    {
      enum sandbox_state st = se->sb ? se->sb->state : SB_NONE;
      bool run = se->status == SESSION_RUNNING;
      running += run;
      warm += se->status == SESSION_WARM && st == SB_READY;
      primed += se->status == SESSION_WARM && st == SB_READY && se->primed;
      expired += se->status == SESSION_EXPIRED;
      live += run && st == SB_READY;
      starting += run && st == SB_STARTING;
      busy += se->queue != NULL;
      asleep += run && st == SB_ASLEEP;
    }
  json_w_open_object (w);
  json_w_kv_string (w, "object", "shim.status");
  json_w_kv_string (w, "version", CAPSULE_VERSION);
  json_w_kv_int (w, "uptime_ms", loop_now_ms () - s->started_ms);
  json_w_kv_string (w, "image", s->host.image_is_host ? "host" : s->host.image_root);
  /* each session's root: its own overlay of the image, or the image read-only and why */
  json_w_kv_string (w, "root", s->host.overlay ? "overlay" : "read-only");
  if (!s->host.overlay && s->host.overlay_reason)
    json_w_kv_string (w, "root_reason", s->host.overlay_reason);
  /* where workspaces are: ext4 images on disk, or tmpfs (memory) and why */
  json_w_kv_string (w, "workspace", s->host.store_disk ? "disk" : "tmpfs");
  if (!s->host.store_disk && s->host.store_reason)
    json_w_kv_string (w, "workspace_reason", s->host.store_reason);
  json_w_kv_int (w, "clients", s->server.n_clients);
  json_w_key (w, "sessions");
  json_w_open_object (w);
  json_w_kv_int (w, "running", running);
  json_w_kv_int (w, "expired", expired);
  json_w_kv_int (w, "live", live);
  json_w_kv_int (w, "starting", starting);
  json_w_kv_int (w, "busy", busy);
  json_w_kv_int (w, "warm", warm);
  json_w_kv_int (w, "warm_primed", primed);
  json_w_kv_int (w, "checkpointed", asleep);
  json_w_close_object (w);
  json_w_kv_int (w, "warm_claims", s->sessions.warm_claims);
  json_w_kv_string (w, "checkpoint",
                    s->sessions.checkpoint_unavailable ? "unavailable" : "available");
  if (s->sessions.checkpoint_unavailable)
    json_w_kv_string (w, "checkpoint_reason", s->sessions.checkpoint_unavailable);
  json_w_kv_int (w, "checkpoint_after_seconds",
                 s->sessions.checkpoint_unavailable ? 0 : (long long)s->tiers.checkpoint_after_s);
  json_w_key (w, "pools");
  json_w_open_array (w);
  for (size_t i = 0; i < s->sessions.pools.n; i++)
    {
      const struct pool_entry *p = &s->sessions.pools.e[i];
      _cleanup_free_ char *used = format_size (p->used);
      _cleanup_free_ char *total = format_size (p->total);
      json_w_open_object (w);
      json_w_kv_string (w, "tenant", p->tenant);
      json_w_kv_int (w, "used_bytes", p->used);
      json_w_kv_int (w, "total_bytes", p->total);
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

/* ------------------------------------------------------------------ the table */

#define TENANT                                                                                     \
  {                                                                                                \
    "tenant", P_STRING, false                                                                      \
  }
#define END                                                                                        \
  {                                                                                                \
    NULL, 0, false                                                                                 \
  }

static const struct param_spec p_create[] = {
  { "name", P_STRING, true },
  { "memory_limit", P_STRING, false },
  { "expires_after", P_OBJECT, false },
  { "file_ids", P_ARRAY, false },
  TENANT,
  END,
};
static const struct param_spec p_list[] = {
  { "limit", P_INT, false },
  { "order", P_STRING, false },
  { "after", P_STRING, false },
  { "name", P_STRING, false },
  TENANT,
  END,
};
static const struct param_spec p_container[] = { { "container_id", P_STRING, true }, TENANT, END };
static const struct param_spec p_exec[] = {
  { "container_id", P_STRING, true },
  { "code", P_STRING, true },
  { "timeout_ms", P_INT, false },
  { "stream", P_BOOL, false },
  TENANT,
  END,
};
static const struct param_spec p_files_create[] = {
  { "container_id", P_STRING, true },
  { "path", P_STRING, false },
  { "content", P_STRING, false },
  { "content_fd", P_BOOL, false }, /* the bytes come as a descriptor with the call */
  TENANT,
  END,
};
static const struct param_spec p_files_list[] = {
  { "container_id", P_STRING, true },
  { "limit", P_INT, false },
  { "order", P_STRING, false },
  { "after", P_STRING, false },
  TENANT,
  END,
};
static const struct param_spec p_file[]
    = { { "container_id", P_STRING, true }, { "file_id", P_STRING, true }, TENANT, END };
static const struct param_spec p_file_content[] = {
  { "container_id", P_STRING, true },
  { "file_id", P_STRING, true },
  { "content_fd", P_BOOL, false }, /* answer with a memfd instead of base64 */
  TENANT,
  END,
};
static const struct param_spec p_none[] = { END };

const struct method shim_methods[] = {
  { "containers.create", m_containers_create, p_create, true },
  { "containers.list", m_containers_list, p_list, false },
  { "containers.retrieve", m_containers_retrieve, p_container, false },
  { "containers.delete", m_containers_delete, p_container, false },
  { "containers.exec", m_containers_exec, p_exec, true },
  { "containers.interrupt", m_containers_interrupt, p_container, false },
  { "containers.reset", m_containers_reset, p_container, false },
  { "containers.checkpoint", m_containers_checkpoint, p_container, false },
  { "files.create", m_files_create, p_files_create, false },
  { "files.list", m_files_list, p_files_list, false },
  { "files.retrieve", m_files_retrieve, p_file, false },
  { "files.content", m_files_content, p_file_content, false },
  { "files.delete", m_files_delete, p_file, false },
  { "shim.status", m_shim_status, p_none, false },
};
const size_t shim_n_methods = ARRAY_SIZE (shim_methods);
