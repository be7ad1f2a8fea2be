/* capsule-gateway: the Model Context Protocol server, whatever the transport.  JSON-RPC 2.0
 * messages (no batches: 2025-06-18), initialize and its version negotiation, the tools
 * (python, upload_file, download_file, list_files, reset) and the session's files as
 * resources.  Each session has one sandbox (a container of the shim, of the session's
 * tenant), made on first use and deleted when the session ends or has been idle too long. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "mcp.h"
#include "shim-util.h"
#include "utils.h"

#define MCP_URI_PREFIX    "capsule://files/"
#define MCP_LIST_MAX      1000 /* files one listing shows */
#define MCP_PROGRESS_TAIL 2000 /* bytes of stdout a progress message carries */
#define MCP_BUSY_MAX      16   /* requests under way in one session */
#define MCP_EARLY_CANCELS 32   /* cancels kept for requests still to come */

struct mcp_config mcp_cfg = {
  .idle_s = 1800,
  .file_max = 16u << 20,
  .max_sessions = 1024,
  .max_per_tenant = 128,
};

static const char *const versions[] = { "2025-06-18", "2025-03-26", "2024-11-05", NULL };
static const char *const tiers[] = { "1g", "4g", "16g", "64g", NULL };

/* A tools/call under way, so that notifications/cancelled finds its cell. */
struct running
{
  char *req_id;       /* the request's id as JSON */
  char *container_id; /* while its cell is the session's one in the shim */
  bool cancelled;
  struct running *next;
};

struct mcp_session
{
  char id[33];
  char tenant[KEY_TENANT_MAX + 1];
  char *protocol;
  char *memory_limit; /* initialize's choice; NULL: the tenant's default */
  int refs;           /* the rest: under mcp.lock */
  bool listed, ended;
  int64_t last_used_ms;
  int busy; /* requests under way: not idle */
  char *container_id;
  char *tier;                   /* the container's memory_limit */
  pthread_mutex_t sandbox_lock; /* one create at a time */
  pthread_mutex_t exec_lock;    /* one cell at a time: an interrupt is for the cell it names */
  struct running *running;
  /* cancels of requests not seen yet: over HTTP the notification may overtake its request */
  char *early_cancels[MCP_EARLY_CANCELS];
  size_t next_early;
  struct mcp_session *next;
};

static struct
{
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct mcp_session *list;
  size_t n;
  bool stopping;
  bool reaper;
  pthread_t reaper_thread;
} mcp = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

bool
mcp_version_supported (const char *v)
{
  for (const char *const *p = versions; v && *p; p++)
    if (strcmp (*p, v) == 0)
      return true;
  return false;
}

bool
mcp_tier_valid (const char *t)
{
  for (const char *const *p = tiers; t && *p; p++)
    if (strcmp (*p, t) == 0)
      return true;
  return false;
}

/* ------------------------------------------------------------------ JSON-RPC */

char *
mcp_error_text (const char *id_json, int code, const char *message)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  json_w_open_object (w);
  json_w_kv_string (w, "jsonrpc", "2.0");
  json_w_key (w, "id");
  json_w_raw (w, id_json ? id_json : "null");
  json_w_key (w, "error");
  json_w_open_object (w);
  json_w_kv_int (w, "code", code);
  json_w_kv_string (w, "message", message);
  json_w_close_object (w);
  json_w_close_object (w);
  return xstrdup (json_writer_text (w, NULL));
}

static char *mcp_error_fmt (const char *id_json, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static char *
mcp_error_fmt (const char *id_json, int code, const char *fmt, ...)
{
  _cleanup_free_ char *msg = NULL;
  va_list ap;
  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    abort ();
  va_end (ap);
  return mcp_error_text (id_json, code, msg);
}

static char *
result_text (const char *id_json, const char *result_json)
{
  return xasprintf ("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}", id_json, result_json);
}

const char *
mcp_method (const json_value *msg)
{
  return json_string (json_get (msg, "method"));
}

enum mcp_kind
mcp_parse (const char *text, size_t len, json_value **ret_msg, char **ret_error)
{
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_ json_value *m = NULL;
  json_value *id, *method, *params;
  *ret_msg = NULL;
  *ret_error = NULL;
  m = json_parse_n (text, len, 0, "the message", &err);
  if (m == NULL)
    {
      *ret_error = mcp_error_fmt (NULL, MCP_PARSE_ERROR, "parse error: %s", err->msg);
      return MCP_BAD;
    }
  if (json_has_nul (m))
    {
      *ret_error = mcp_error_text (NULL, MCP_PARSE_ERROR, "the message holds a \\u0000 escape");
      return MCP_BAD;
    }
  if (json_is_array (m))
    {
      *ret_error = mcp_error_text (NULL, MCP_INVALID_REQUEST,
                                   "JSON-RPC batches are not supported (MCP 2025-06-18): send one "
                                   "message at a time");
      return MCP_BAD;
    }
  if (!json_is_object (m) || json_string (json_get (m, "jsonrpc")) == NULL
      || strcmp (json_string (json_get (m, "jsonrpc")), "2.0") != 0)
    {
      *ret_error = mcp_error_text (NULL, MCP_INVALID_REQUEST,
                                   "not a JSON-RPC 2.0 message (an object with \"jsonrpc\": "
                                   "\"2.0\")");
      return MCP_BAD;
    }
  id = json_get (m, "id");
  method = json_get (m, "method");
  params = json_get (m, "params");
  if (method == NULL && id && (json_get (m, "result") || json_get (m, "error")))
    {
      *ret_msg = steal_pointer (&m);
      return MCP_RESPONSE;
    }
  if (id && (json_is_null (id) || !(json_is_string (id) || json_is_integer (id))))
    {
      *ret_error = mcp_error_text (NULL, MCP_INVALID_REQUEST,
                                   "a request's id must be a string or an integer");
      return MCP_BAD;
    }
  if (!json_is_string (method) || (params && !json_is_object (params)))
    {
      _cleanup_free_ char *idt = id ? rpc_id_text (id) : NULL;
      *ret_error = mcp_error_text (idt, MCP_INVALID_REQUEST,
                                   "a request needs a string method, and params (if any) must be "
                                   "an object");
      return MCP_BAD;
    }
  *ret_msg = steal_pointer (&m);
  return id ? MCP_REQUEST : MCP_NOTIFICATION;
}

/* ------------------------------------------------------------------ sessions */

static void
session_free (struct mcp_session *s)
{
  pthread_mutex_destroy (&s->sandbox_lock);
  pthread_mutex_destroy (&s->exec_lock);
  for (size_t i = 0; i < MCP_EARLY_CANCELS; i++)
    free (s->early_cancels[i]);
  free (s->tier);
  free (s->protocol);
  free (s->memory_limit);
  free (s->container_id);
  free (s);
}

static size_t
tenant_sessions (const char *tenant)
{
  size_t n = 0;
  for (struct mcp_session *s = mcp.list; s; s = s->next)
    n += strcmp (s->tenant, tenant) == 0;
  return n;
}

struct mcp_session *
mcp_session_new (const char *tenant, bool listed, capsule_error **err)
{
  struct mcp_session *s;
  unsigned char r[16];
  if (getrandom (r, sizeof r, 0) != sizeof r)
    {
      capsule_error_make (err, errno, "getrandom");
      return NULL;
    }
  s = xmalloc0 (sizeof *s);
  for (size_t i = 0; i < sizeof r; i++)
    snprintf (s->id + 2 * i, 3, "%02x", r[i]);
  snprintf (s->tenant, sizeof s->tenant, "%s", tenant);
  s->refs = 1;
  s->listed = listed;
  s->last_used_ms = shim_monotonic_ms ();
  pthread_mutex_init (&s->sandbox_lock, NULL);
  pthread_mutex_init (&s->exec_lock, NULL);
  if (!listed)
    return s;
  pthread_mutex_lock (&mcp.lock);
  if (mcp.stopping || mcp.n >= mcp_cfg.max_sessions
      || tenant_sessions (tenant) >= mcp_cfg.max_per_tenant)
    {
      bool all = mcp.n >= mcp_cfg.max_sessions;
      pthread_mutex_unlock (&mcp.lock);
      session_free (s);
      capsule_error_make (err, EAGAIN,
                          all ? "the server holds as many MCP sessions as it takes; end one first"
                              : "this key's tenant holds %zu MCP sessions, the most it may; end "
                                "one first (DELETE /mcp)",
                          mcp_cfg.max_per_tenant);
      return NULL;
    }
  s->refs++; /* the map's */
  s->next = mcp.list;
  mcp.list = s;
  mcp.n++;
  pthread_mutex_unlock (&mcp.lock);
  return s;
}

struct mcp_session *
mcp_session_find (const char *id, const char *tenant)
{
  struct mcp_session *found = NULL;
  if (id == NULL || strlen (id) != 32)
    return NULL;
  pthread_mutex_lock (&mcp.lock);
  for (struct mcp_session *s = mcp.list; s; s = s->next)
    /* another tenant's session is as absent as one that never was */
    if (!s->ended && strcmp (s->id, id) == 0 && strcmp (s->tenant, tenant) == 0)
      {
        found = s;
        s->refs++;
        s->last_used_ms = shim_monotonic_ms ();
        break;
      }
  pthread_mutex_unlock (&mcp.lock);
  return found;
}

const char *
mcp_session_id (const struct mcp_session *s)
{
  return s->id;
}

bool
mcp_session_set_tier (struct mcp_session *s, const char *mem)
{
  if (!mcp_tier_valid (mem))
    return false;
  free (s->memory_limit);
  s->memory_limit = xstrdup (mem);
  return true;
}

const char *
mcp_session_protocol (const struct mcp_session *s)
{
  return s->protocol;
}

void
mcp_session_unref (struct mcp_session *s)
{
  bool last;
  if (s == NULL)
    return;
  pthread_mutex_lock (&mcp.lock);
  last = --s->refs == 0;
  s->last_used_ms = shim_monotonic_ms ();
  pthread_mutex_unlock (&mcp.lock);
  if (last)
    session_free (s);
}

static void
delete_container (struct shimc *c, const char *tenant, const char *cid)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_ json_value *m = NULL;
  json_w_open_object (w);
  json_w_kv_string (w, "tenant", tenant);
  json_w_kv_string (w, "container_id", cid);
  json_w_close_object (w);
  c->wait_ms = 0;
  c->tick_ms = 0;
  if (shimc_call (c, gw.shim_socket, "containers.delete", json_writer_text (w, NULL), NULL, NULL,
                  &m, &err)
      < 0)
    fprintf (stderr, "capsule-gateway: mcp: the sandbox %s was not deleted: %s\n", cid, err->msg);
}

void
mcp_session_end (struct mcp_session *s, struct shimc *c)
{
  _cleanup_free_ char *cid = NULL;
  bool unlinked = false;
  pthread_mutex_lock (&mcp.lock);
  if (!s->ended)
    {
      s->ended = true;
      if (s->listed)
        {
          for (struct mcp_session **p = &mcp.list; *p; p = &(*p)->next)
            if (*p == s)
              {
                *p = s->next;
                mcp.n--;
                unlinked = true;
                break;
              }
        }
    }
  pthread_mutex_unlock (&mcp.lock);
  /* a create under way finishes first: its container is this session's to delete */
  pthread_mutex_lock (&s->sandbox_lock);
  cid = steal_pointer (&s->container_id);
  pthread_mutex_unlock (&s->sandbox_lock);
  if (cid)
    delete_container (c, s->tenant, cid);
  if (unlinked)
    mcp_session_unref (s); /* the map's */
}

static void *
reaper (void *arg)
{
  struct shimc c = { .fd = -1, .in_fd = -1 };
  (void)arg;
  pthread_mutex_lock (&mcp.lock);
  while (!mcp.stopping)
    {
      struct timespec ts;
      struct mcp_session *idle = NULL;
      int64_t now = shim_monotonic_ms ();
      for (struct mcp_session *s = mcp.list; s; s = s->next)
        if (!s->ended && s->busy == 0 && now - s->last_used_ms >= (int64_t)mcp_cfg.idle_s * 1000)
          {
            idle = s;
            s->refs++;
            break;
          }
      if (idle)
        {
          pthread_mutex_unlock (&mcp.lock);
          fprintf (stderr, "capsule-gateway: mcp: session %.8s… of %s idle for %d s: ended\n",
                   idle->id, idle->tenant, mcp_cfg.idle_s);
          mcp_session_end (idle, &c);
          mcp_session_unref (idle);
          pthread_mutex_lock (&mcp.lock);
          continue;
        }
      clock_gettime (CLOCK_REALTIME, &ts);
      ts.tv_sec += mcp_cfg.idle_s < 20 ? 1 : 5;
      pthread_cond_timedwait (&mcp.wake, &mcp.lock, &ts);
    }
  pthread_mutex_unlock (&mcp.lock);
  shimc_close (&c);
  return NULL;
}

int
mcp_start (capsule_error **err)
{
  int r = pthread_create (&mcp.reaper_thread, NULL, reaper, NULL);
  if (r != 0)
    return capsule_error_make (err, r, "a thread for MCP sessions");
  mcp.reaper = true;
  return 0;
}

void
mcp_shutdown (void)
{
  struct shimc c = { .fd = -1, .in_fd = -1 };
  pthread_mutex_lock (&mcp.lock);
  mcp.stopping = true;
  pthread_cond_broadcast (&mcp.wake);
  pthread_mutex_unlock (&mcp.lock);
  if (mcp.reaper)
    pthread_join (mcp.reaper_thread, NULL);
  mcp.reaper = false;
  for (;;)
    {
      struct mcp_session *s;
      pthread_mutex_lock (&mcp.lock);
      s = mcp.list;
      if (s)
        s->refs++;
      pthread_mutex_unlock (&mcp.lock);
      if (s == NULL)
        break;
      mcp_session_end (s, &c);
      mcp_session_unref (s);
    }
  shimc_close (&c);
}

/* Requests under way in S, after adding D. */
static int
set_busy (struct mcp_session *s, int d)
{
  int n;
  pthread_mutex_lock (&mcp.lock);
  n = s->busy += d;
  s->last_used_ms = shim_monotonic_ms ();
  pthread_mutex_unlock (&mcp.lock);
  return n;
}

/* ------------------------------------------------------------------ the shim */

/* The shim's answer to METHOD: its result (inside *RET_MSG), or NULL with the reason in
   *RET_WHY and the shim's error code (data.code, may be NULL) in *RET_CODE. */
static json_value *
shim_call (struct mcp_ctx *x, const char *method, const char *params, shimc_notify_fn notify,
           void *ctx, json_value **ret_msg, char **ret_why, const char **ret_code)
{
  _cleanup_error_ capsule_error *err = NULL;
  json_value *r, *e;
  *ret_msg = NULL;
  *ret_why = NULL;
  if (ret_code)
    *ret_code = NULL;
  if (strcmp (method, "containers.exec") != 0)
    x->shim->wait_ms = 0;
  if (shimc_call (x->shim, gw.shim_socket, method, params, notify, ctx, ret_msg, &err) < 0)
    {
      *ret_why = xasprintf ("the code interpreter is not reachable: %s", err->msg);
      fprintf (stderr, "capsule-gateway: mcp: %s\n", err->msg);
      if (ret_code)
        *ret_code = err->status == ETIMEDOUT ? "shim_timeout" : "shim_unavailable";
      return NULL;
    }
  r = json_get (*ret_msg, "result");
  if (r)
    return r;
  e = json_get (*ret_msg, "error");
  *ret_why = xstrdup (json_string (json_get (json_get (e, "data"), "message"))
                          ?: json_string (json_get (e, "message")) ?: "the shim failed");
  if (ret_code)
    *ret_code = json_string (json_get (json_get (e, "data"), "code"));
  return NULL;
}

static json_writer *
params_new (const struct mcp_session *s, const char *cid)
{
  json_writer *w = json_writer_new (false);
  json_w_open_object (w);
  json_w_kv_string (w, "tenant", s->tenant);
  if (cid)
    json_w_kv_string (w, "container_id", cid);
  return w;
}

static const char *
params_done (json_writer *w)
{
  json_w_close_object (w);
  return json_writer_text (w, NULL);
}

/* The session's container id (a copy), or NULL when it has none yet. */
static char *
container_of (struct mcp_session *s)
{
  char *cid;
  pthread_mutex_lock (&s->sandbox_lock);
  cid = s->container_id ? xstrdup (s->container_id) : NULL;
  pthread_mutex_unlock (&s->sandbox_lock);
  return cid;
}

/* The container is gone (expired at the shim, deleted by hand): forgotten, so that the next
   call makes a new one. */
static void
forget_container (struct mcp_session *s, const char *cid)
{
  pthread_mutex_lock (&s->sandbox_lock);
  if (s->container_id && strcmp (s->container_id, cid) == 0)
    {
      free (s->container_id);
      s->container_id = NULL;
    }
  pthread_mutex_unlock (&s->sandbox_lock);
}

static bool
gone (const char *code)
{
  return code && (strcmp (code, "not_found") == 0 || strcmp (code, "container_expired") == 0);
}

/* The session's container, made now (of tier MEM, else initialize's, else the tenant's
   default) if it has none; NULL with the reason in *RET_WHY. */
static char *
ensure_container (struct mcp_session *s, struct mcp_ctx *x, const char *mem, char **ret_why)
{
  _cleanup_json_writer_ json_writer *w = NULL;
  _cleanup_json_ json_value *m = NULL;
  _cleanup_free_ char *name = NULL;
  json_value *r;
  const char *cid;
  char *ret = NULL;
  pthread_mutex_lock (&s->sandbox_lock);
  if (s->ended)
    {
      *ret_why = xstrdup ("the MCP session has ended");
      goto out;
    }
  if (s->container_id)
    {
      if (mem && s->tier && strcmp (mem, s->tier) != 0)
        {
          *ret_why = xasprintf ("the session's sandbox runs with memory_limit %s already; the "
                                "tier is chosen by the first call (a new MCP session can have "
                                "another)",
                                s->tier);
          goto out;
        }
      ret = xstrdup (s->container_id);
      goto out;
    }
  w = params_new (s, NULL);
  name = xasprintf ("mcp-%.8s", s->id);
  json_w_kv_string (w, "name", name);
  if (mem || s->memory_limit)
    json_w_kv_string (w, "memory_limit", mem ? mem : s->memory_limit);
  /* the shim's own expiry is a backstop for a gateway that died: a little after ours */
  json_w_key (w, "expires_after");
  json_w_open_object (w);
  json_w_kv_string (w, "anchor", "last_active_at");
  json_w_kv_int (w, "minutes", (mcp_cfg.idle_s + 59) / 60 + 5);
  json_w_close_object (w);
  r = shim_call (x, "containers.create", params_done (w), NULL, NULL, &m, ret_why, NULL);
  if (r == NULL)
    goto out;
  cid = json_string (json_get (r, "id"));
  if (cid == NULL)
    {
      *ret_why = xstrdup ("the shim answered no container id");
      goto out;
    }
  s->container_id = xstrdup (cid);
  free (s->tier);
  s->tier = json_string (json_get (r, "memory_limit"))
                ? xstrdup (json_string (json_get (r, "memory_limit")))
                : NULL;
  ret = xstrdup (cid);
out:
  pthread_mutex_unlock (&s->sandbox_lock);
  return ret;
}

/* ------------------------------------------------------------------ tool results */

struct result
{
  json_writer *w; /* inside content's array */
  bool error;
};

static void
result_init (struct result *r)
{
  r->w = json_writer_new (false);
  r->error = false;
  json_w_open_object (r->w);
  json_w_key (r->w, "content");
  json_w_open_array (r->w);
}

static void
add_text (struct result *r, const char *text)
{
  json_w_open_object (r->w);
  json_w_kv_string (r->w, "type", "text");
  json_w_kv_string (r->w, "text", text);
  json_w_close_object (r->w);
}

static char *
result_done (struct result *r)
{
  char *t;
  json_w_close_array (r->w);
  json_w_kv_bool (r->w, "isError", r->error);
  json_w_close_object (r->w);
  t = xstrdup (json_writer_text (r->w, NULL));
  json_writer_free (r->w);
  r->w = NULL;
  return t;
}

/* A tool that could not do its work: a result the model reads, not a protocol error. */
static char *tool_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static char *
tool_error (const char *fmt, ...)
{
  _cleanup_free_ char *msg = NULL;
  struct result r;
  va_list ap;
  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    abort ();
  va_end (ap);
  result_init (&r);
  add_text (&r, msg);
  r.error = true;
  return result_done (&r);
}

/* capsule://files/REL, REL percent-encoded but for its slashes */
static char *
file_uri (const char *rel)
{
  static const char hex[] = "0123456789ABCDEF";
  struct buf b = { 0 };
  char *ret;
  buf_append (&b, MCP_URI_PREFIX, strlen (MCP_URI_PREFIX));
  for (const unsigned char *p = (const unsigned char *)rel; *p; p++)
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
        || strchr ("-._~/", *p))
      buf_append (&b, p, 1);
    else
      {
        char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
        buf_append (&b, e, 3);
      }
  buf_append (&b, "", 1);
  ret = xstrdup (buf_bytes (&b));
  buf_release (&b);
  return ret;
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* The path a capsule://files/ URI names (decoded, not yet checked); NULL when it is none. */
static char *
uri_path (const char *uri)
{
  size_t n = strlen (MCP_URI_PREFIX);
  char *out, *o;
  if (uri == NULL || strncmp (uri, MCP_URI_PREFIX, n) != 0)
    return NULL;
  uri += n;
  o = out = xmalloc0 (strlen (uri) + 1);
  for (; *uri; uri++)
    if (*uri == '%')
      {
        int h = hexval (uri[1]), l = h < 0 ? -1 : hexval (uri[2]);
        if (l < 0 || (h == 0 && l == 0))
          {
            free (out);
            return NULL;
          }
        *o++ = (char)(h * 16 + l);
        uri += 2;
      }
    else if (*uri == '?' || *uri == '#')
      break;
    else
      *o++ = *uri;
  return out;
}

/* PATH (relative to /mnt/data or under it) as the path relative to /mnt/data; NULL with the
   reason in *RET_WHY. */
static char *
data_path (const char *path, char **ret_why)
{
  struct rpc_error *e;
  char *rel = NULL;
  if (path == NULL)
    {
      *ret_why = xstrdup ("'path' must be a string");
      return NULL;
    }
  e = files_normalise (path, &rel);
  if (e)
    {
      *ret_why = xstrdup (e->message);
      rpc_error_free (e);
      return NULL;
    }
  return rel;
}

static void
add_link (struct result *r, const json_value *f)
{
  const char *path = json_string (json_get (f, "path")) ?: "";
  const char *rel = strncmp (path, "/mnt/data/", 10) == 0 ? path + 10 : path;
  json_value *bytes = json_get (f, "bytes");
  _cleanup_free_ char *uri = file_uri (rel);
  json_w_open_object (r->w);
  json_w_kv_string (r->w, "type", "resource_link");
  json_w_kv_string (r->w, "uri", uri);
  json_w_kv_string (r->w, "name", rel);
  json_w_kv_string (r->w, "title", path);
  json_w_kv_string (r->w, "mimeType", content_type_of (rel));
  if (json_is_integer (bytes))
    json_w_kv_int (r->w, "size", json_integer (bytes));
  json_w_close_object (r->w);
}

/* The bytes of file FID of container CID, at most mcp_cfg.file_max, as base64; NULL with the
   reason. */
static char *
file_base64 (struct mcp_session *s, struct mcp_ctx *x, const char *cid, const char *fid,
             char **ret_why)
{
  _cleanup_json_writer_ json_writer *w = params_new (s, cid);
  _cleanup_json_ json_value *m = NULL;
  _cleanup_close_ int fd = -1;
  _cleanup_free_ char *data = NULL;
  struct stat st;
  ssize_t n;
  json_w_kv_string (w, "file_id", fid);
  json_w_kv_bool (w, "content_fd", true);
  if (shim_call (x, "files.content", params_done (w), NULL, NULL, &m, ret_why, NULL) == NULL)
    return NULL;
  fd = shimc_take_fd (x->shim);
  if (fd < 0 || fstat (fd, &st) < 0)
    {
      *ret_why = xstrdup ("the shim sent no content");
      return NULL;
    }
  if ((uint64_t)st.st_size > mcp_cfg.file_max)
    {
      *ret_why = xasprintf ("the file is %lld bytes, over the %llu-byte limit of this server",
                            (long long)st.st_size, (unsigned long long)mcp_cfg.file_max);
      return NULL;
    }
  data = xmalloc0 (st.st_size + 1);
  n = st.st_size ? pread (fd, data, st.st_size, 0) : 0;
  if (n != st.st_size)
    {
      *ret_why = xstrdup ("the file's content did not read");
      return NULL;
    }
  return base64_encode (data, st.st_size);
}

/* The file of container CID at REL: its object (in *RET_MSG's tree), or NULL. */
static const json_value *
find_file (struct mcp_session *s, struct mcp_ctx *x, const char *cid, const char *rel,
           json_value **ret_msg, char **ret_why, const char **ret_code)
{
  _cleanup_free_ char *full = xasprintf ("/mnt/data/%s", rel);
  _cleanup_free_ char *after = NULL;
  for (int page = 0; page < MCP_LIST_MAX / 100 + 1; page++)
    {
      _cleanup_json_writer_ json_writer *w = params_new (s, cid);
      json_value *r, *data;
      json_w_kv_int (w, "limit", 100);
      json_w_kv_string (w, "order", "asc");
      if (after)
        json_w_kv_string (w, "after", after);
      json_free (*ret_msg);
      r = shim_call (x, "files.list", params_done (w), NULL, NULL, ret_msg, ret_why, ret_code);
      if (r == NULL)
        return NULL;
      data = json_get (r, "data");
      for (size_t i = 0; i < json_array_len (data); i++)
        {
          json_value *f = json_array_get (data, i);
          const char *p = json_string (json_get (f, "path"));
          if (p && strcmp (p, full) == 0)
            return f;
        }
      if (!json_bool (json_get (r, "has_more")) || json_string (json_get (r, "last_id")) == NULL)
        break;
      free (after);
      after = xstrdup (json_string (json_get (r, "last_id")));
    }
  *ret_why = xasprintf ("there is no file %s", full);
  if (ret_code)
    *ret_code = "no_such_file";
  return NULL;
}

/* ------------------------------------------------------------------ the tools */

struct progress
{
  struct mcp_ctx *x;
  const json_value *token;
  int64_t started_ms, last_ms;
  long long count;
  struct buf out; /* stdout so far (its tail) */
};

static void
progress_send (struct progress *p)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_free_ char *msg = NULL, *tail = NULL;
  int64_t now = shim_monotonic_ms ();
  size_t n = buf_size (&p->out);
  const char *t = buf_bytes (&p->out);
  if (n > MCP_PROGRESS_TAIL)
    {
      t += n - MCP_PROGRESS_TAIL;
      n = MCP_PROGRESS_TAIL;
    }
  tail = strndup (t ? t : "", n);
  msg = xasprintf ("running for %lld s%s%s", (long long)((now - p->started_ms) / 1000),
                   n ? "; stdout so far:\n" : "", tail);
  p->last_ms = now;
  json_w_open_object (w);
  json_w_kv_string (w, "jsonrpc", "2.0");
  json_w_kv_string (w, "method", "notifications/progress");
  json_w_key (w, "params");
  json_w_open_object (w);
  json_w_key (w, "progressToken");
  w_value (w, p->token);
  json_w_kv_int (w, "progress", ++p->count);
  json_w_kv_string (w, "message", msg);
  json_w_close_object (w);
  json_w_close_object (w);
  p->x->notify (p->x->notify_ctx, json_writer_text (w, NULL));
}

/* The shim's exec.output notifications and the ticks between them (MSG NULL). */
static int
progress_notify (void *ctx, const json_value *msg)
{
  struct progress *p = ctx;
  int64_t now = shim_monotonic_ms ();
  if (msg)
    {
      json_value *pr = json_get (msg, "params");
      const char *stream = json_string (json_get (pr, "stream"));
      const char *text = json_string (json_get (pr, "text"));
      if (stream && strcmp (stream, "stdout") == 0 && text)
        {
          buf_append (&p->out, text, strlen (text));
          if (buf_size (&p->out) > 4 * MCP_PROGRESS_TAIL)
            buf_consume (&p->out, buf_size (&p->out) - MCP_PROGRESS_TAIL);
        }
    }
  /* a cell that runs longer than a second says so, once a second */
  if (p->token && now - p->started_ms >= 1000 && now - p->last_ms >= 1000)
    progress_send (p);
  return 0;
}

/* A tools/call under way (notifications/cancelled marks it). */
static void
track (struct mcp_session *s, const char *req_id)
{
  struct running *r = xmalloc0 (sizeof *r);
  r->req_id = xstrdup (req_id);
  pthread_mutex_lock (&mcp.lock);
  for (size_t i = 0; i < MCP_EARLY_CANCELS; i++)
    if (s->early_cancels[i] && strcmp (s->early_cancels[i], req_id) == 0)
      {
        free (s->early_cancels[i]);
        s->early_cancels[i] = NULL;
        r->cancelled = true;
      }
  r->next = s->running;
  s->running = r;
  pthread_mutex_unlock (&mcp.lock);
}

/* Its cell goes to container CID now (or, with CID NULL, is done): false when it was cancelled
   before it started. */
static bool
track_cell (struct mcp_session *s, const char *req_id, const char *cid)
{
  bool go = true;
  pthread_mutex_lock (&mcp.lock);
  for (struct running *r = s->running; r; r = r->next)
    if (strcmp (r->req_id, req_id) == 0)
      {
        free (r->container_id);
        r->container_id = cid && !r->cancelled ? xstrdup (cid) : NULL;
        go = !r->cancelled;
        break;
      }
  pthread_mutex_unlock (&mcp.lock);
  return go;
}

/* Done with the request REQ_ID: was it cancelled? */
static bool
untrack (struct mcp_session *s, const char *req_id)
{
  bool cancelled = false;
  pthread_mutex_lock (&mcp.lock);
  for (struct running **p = &s->running; *p; p = &(*p)->next)
    if (strcmp ((*p)->req_id, req_id) == 0)
      {
        struct running *r = *p;
        *p = r->next;
        cancelled = r->cancelled;
        free (r->req_id);
        free (r->container_id);
        free (r);
        break;
      }
  pthread_mutex_unlock (&mcp.lock);
  return cancelled;
}

static const char *
status_note (const char *status, bool restarted, long long timeout_ms)
{
  static __thread char t[256];
  if (strcmp (status, "failed") == 0)
    return "the code raised an exception (the traceback is above); the interpreter keeps its "
           "state";
  if (strcmp (status, "timeout") == 0)
    {
      snprintf (t, sizeof t, "the cell ran past its timeout of %lld ms and was %s", timeout_ms,
                restarted ? "killed: the interpreter was restarted, its variables are lost "
                            "(files in /mnt/data are kept)"
                          : "interrupted (KeyboardInterrupt); variables are kept");
      return t;
    }
  if (strcmp (status, "interrupted") == 0)
    return "the cell was interrupted (cancelled); variables are kept";
  if (strcmp (status, "oom") == 0)
    return "the cell ran out of memory and was killed: the interpreter was restarted, its "
           "variables are lost (files in /mnt/data are kept); use less memory or a larger tier "
           "(memory_limit)";
  return NULL;
}

static char *
python_run (struct mcp_session *s, struct mcp_ctx *x, const char *req_id, const json_value *args,
            const json_value *token)
{
  const char *code = json_string (json_get (args, "code"));
  json_value *t = json_get (args, "timeout_ms"), *mem = json_get (args, "memory_limit");
  _cleanup_free_ char *cid = NULL, *why = NULL;
  _cleanup_json_writer_ json_writer *w = NULL;
  _cleanup_json_ json_value *m = NULL;
  struct progress p = { 0 };
  const char *status, *errcode = NULL, *logs = NULL, *note;
  json_value *r, *outputs, *files;
  long long timeout_ms = 60000;
  struct result res;
  if (code == NULL)
    return tool_error ("python needs 'code', a string of Python source");
  if (t && (!json_is_integer (t) || json_integer (t) < 1 || json_integer (t) > 3600000))
    return tool_error ("'timeout_ms' must be an integer number of milliseconds, 1 to 3600000");
  if (t)
    timeout_ms = json_integer (t);
  if (mem && !mcp_tier_valid (json_string (mem)))
    return tool_error ("'memory_limit' must be one of 1g, 4g, 16g, 64g");
  cid = ensure_container (s, x, json_string (mem), &why);
  if (cid == NULL)
    return tool_error ("no sandbox for this session: %s", why);
  w = params_new (s, cid);
  json_w_kv_string (w, "code", code);
  json_w_kv_int (w, "timeout_ms", timeout_ms);
  json_w_kv_bool (w, "stream", x->notify != NULL && token != NULL);
  /* the cell's own deadline, then the interrupt's grace and a fresh interpreter */
  x->shim->wait_ms = (int)timeout_ms + 120000;
  x->shim->tick_ms = x->notify && token ? 250 : 0;
  p.x = x;
  p.token = token;
  pthread_mutex_lock (&s->exec_lock);
  if (!track_cell (s, req_id, cid))
    {
      pthread_mutex_unlock (&s->exec_lock);
      return NULL;
    }
  p.started_ms = p.last_ms = shim_monotonic_ms ();
  r = shim_call (x, "containers.exec", params_done (w), x->notify && token ? progress_notify : NULL,
                 &p, &m, &why, &errcode);
  track_cell (s, req_id, NULL);
  pthread_mutex_unlock (&s->exec_lock);
  x->shim->tick_ms = 0;
  buf_release (&p.out);
  if (r == NULL)
    {
      if (gone (errcode))
        {
          forget_container (s, cid);
          return tool_error ("the session's sandbox is gone (%s); the next call starts a new one, "
                             "with a fresh interpreter and no files",
                             why);
        }
      return tool_error ("the code did not run: %s", why);
    }
  status = json_string (json_get (r, "status")) ?: "failed";
  outputs = json_get (r, "outputs");
  files = json_get (r, "files");
  result_init (&res);
  res.error = strcmp (status, "completed") != 0;
  for (size_t i = 0; i < json_array_len (outputs); i++)
    {
      json_value *o = json_array_get (outputs, i);
      const char *type = json_string (json_get (o, "type"));
      if (type && strcmp (type, "logs") == 0)
        logs = json_string (json_get (o, "logs"));
    }
  note = status_note (status, json_bool (json_get (r, "interpreter_restarted")), timeout_ms);
  {
    _cleanup_free_ char *text = xasprintf ("%s%s%s%s%s",
                                           logs && logs[0] ? logs
                                           : note          ? ""
                                                           : "(no output)\n",
                                           note ? "[" : "", note ? note : "", note ? "]\n" : "",
                                           json_string (json_get (r, "notice")) ?: "");
    add_text (&res, text);
  }
  for (size_t i = 0; i < json_array_len (outputs); i++)
    {
      json_value *o = json_array_get (outputs, i);
      const char *type = json_string (json_get (o, "type"));
      const char *fid = json_string (json_get (o, "file_id"));
      _cleanup_free_ char *b64 = NULL, *ewhy = NULL;
      if (type == NULL || strcmp (type, "image") != 0 || fid == NULL)
        continue;
      b64 = file_base64 (s, x, cid, fid, &ewhy);
      if (b64 == NULL)
        {
          _cleanup_free_ char *tx = xasprintf ("(a figure was made but is not sent: %s)", ewhy);
          add_text (&res, tx);
          continue;
        }
      json_w_open_object (res.w);
      json_w_kv_string (res.w, "type", "image");
      json_w_kv_string (res.w, "data", b64);
      json_w_kv_string (res.w, "mimeType", "image/png");
      json_w_close_object (res.w);
    }
  for (size_t i = 0; i < json_array_len (files); i++)
    add_link (&res, json_array_get (files, i));
  return result_done (&res);
}

/* python, answered NULL when the client cancelled it */
static char *
tool_python (struct mcp_session *s, struct mcp_ctx *x, const char *req_id, const json_value *args,
             const json_value *token)
{
  char *r;
  track (s, req_id);
  r = python_run (s, x, req_id, args, token);
  if (untrack (s, req_id))
    {
      free (r);
      return NULL;
    }
  return r;
}

static char *
tool_upload (struct mcp_session *s, struct mcp_ctx *x, const json_value *args)
{
  const char *content = json_string (json_get (args, "content"));
  _cleanup_free_ char *rel = NULL, *why = NULL, *cid = NULL, *full = NULL;
  _cleanup_free_ unsigned char *data = NULL;
  _cleanup_json_writer_ json_writer *w = NULL;
  _cleanup_json_ json_value *m = NULL;
  const char *code = NULL;
  json_value *r;
  size_t len = 0, clen;
  struct result res;
  if ((rel = data_path (json_string (json_get (args, "path")), &why)) == NULL)
    return tool_error ("upload_file: %s", why);
  if (content == NULL)
    return tool_error ("upload_file needs 'content', the file's bytes in base64");
  clen = strlen (content);
  if (base64_decoded_max (clen) > mcp_cfg.file_max + 2)
    return tool_error ("upload_file: the file is larger than the %llu-byte limit",
                       (unsigned long long)mcp_cfg.file_max);
  if (base64_decode (content, clen, &data, &len) < 0)
    return tool_error ("upload_file: 'content' is not valid base64");
  if (len > mcp_cfg.file_max)
    return tool_error ("upload_file: the file is %zu bytes, over the %llu-byte limit", len,
                       (unsigned long long)mcp_cfg.file_max);
  if ((cid = ensure_container (s, x, NULL, &why)) == NULL)
    return tool_error ("no sandbox for this session: %s", why);
  full = xasprintf ("/mnt/data/%s", rel);
  w = params_new (s, cid);
  json_w_kv_string (w, "path", full);
  json_w_kv_string (w, "content", content);
  r = shim_call (x, "files.create", params_done (w), NULL, NULL, &m, &why, &code);
  if (r == NULL)
    {
      if (gone (code))
        forget_container (s, cid);
      return tool_error ("upload_file: %s", why);
    }
  result_init (&res);
  {
    _cleanup_free_ char *t = xasprintf ("uploaded %s (%zu bytes)", full, len);
    add_text (&res, t);
  }
  add_link (&res, r);
  return result_done (&res);
}

static char *
tool_download (struct mcp_session *s, struct mcp_ctx *x, const json_value *args)
{
  _cleanup_free_ char *rel = NULL, *why = NULL, *cid = NULL, *b64 = NULL, *uri = NULL;
  _cleanup_json_ json_value *m = NULL;
  const json_value *f;
  const char *code = NULL;
  struct result res;
  if ((rel = data_path (json_string (json_get (args, "path")), &why)) == NULL)
    return tool_error ("download_file: %s", why);
  if ((cid = container_of (s)) == NULL)
    return tool_error ("download_file: there is no file /mnt/data/%s (nothing ran yet)", rel);
  f = find_file (s, x, cid, rel, &m, &why, &code);
  if (f == NULL)
    {
      if (gone (code))
        forget_container (s, cid);
      return tool_error ("download_file: %s", why);
    }
  b64 = file_base64 (s, x, cid, json_string (json_get (f, "id")), &why);
  if (b64 == NULL)
    return tool_error ("download_file: %s", why);
  uri = file_uri (rel);
  result_init (&res);
  json_w_open_object (res.w);
  json_w_kv_string (res.w, "type", "resource");
  json_w_key (res.w, "resource");
  json_w_open_object (res.w);
  json_w_kv_string (res.w, "uri", uri);
  json_w_kv_string (res.w, "mimeType", content_type_of (rel));
  json_w_kv_string (res.w, "blob", b64);
  json_w_close_object (res.w);
  json_w_close_object (res.w);
  return result_done (&res);
}

/* Every file of the session's sandbox: a text listing, then a resource link each. */
static char *
tool_list (struct mcp_session *s, struct mcp_ctx *x)
{
  _cleanup_free_ char *cid = container_of (s), *head = NULL;
  json_value *pages[MCP_LIST_MAX / 100] = { 0 };
  size_t n_pages = 0, count = 0;
  struct buf text = { 0 };
  struct result res;
  bool more = false;
  char *ret;
  while (cid && n_pages < ARRAY_SIZE (pages))
    {
      _cleanup_json_writer_ json_writer *w = params_new (s, cid);
      _cleanup_free_ char *why = NULL;
      const char *code = NULL, *last;
      json_value *r;
      json_w_kv_int (w, "limit", 100);
      json_w_kv_string (w, "order", "asc");
      if (n_pages)
        json_w_kv_string (
            w, "after",
            json_string (json_get (json_get (pages[n_pages - 1], "result"), "last_id")));
      r = shim_call (x, "files.list", params_done (w), NULL, NULL, &pages[n_pages], &why, &code);
      n_pages++;
      if (r == NULL)
        {
          for (size_t i = 0; i < n_pages; i++)
            json_free (pages[i]);
          if (gone (code))
            forget_container (s, cid);
          return tool_error ("list_files: %s", why);
        }
      for (size_t i = 0; i < json_array_len (json_get (r, "data")); i++)
        {
          json_value *f = json_array_get (json_get (r, "data"), i);
          _cleanup_free_ char *line
              = xasprintf ("%s (%lld bytes)\n", json_string (json_get (f, "path")) ?: "?",
                           json_integer (json_get (f, "bytes")));
          buf_append (&text, line, strlen (line));
          count++;
        }
      more = json_bool (json_get (r, "has_more"));
      last = json_string (json_get (r, "last_id"));
      if (!more || last == NULL)
        break;
    }
  buf_append (&text, "", 1);
  head = xasprintf ("%zu file%s in /mnt/data%s%s%s", count, count == 1 ? "" : "s",
                    more ? " (the first ones; there are more)" : "", count ? ":\n" : "",
                    buf_bytes (&text));
  buf_release (&text);
  result_init (&res);
  add_text (&res, head);
  for (size_t p = 0; p < n_pages; p++)
    {
      json_value *data = json_get (json_get (pages[p], "result"), "data");
      for (size_t i = 0; i < json_array_len (data); i++)
        add_link (&res, json_array_get (data, i));
      json_free (pages[p]);
    }
  ret = result_done (&res);
  return ret;
}

static char *
tool_reset (struct mcp_session *s, struct mcp_ctx *x)
{
  _cleanup_free_ char *cid = container_of (s), *why = NULL;
  _cleanup_json_writer_ json_writer *w = NULL;
  _cleanup_json_ json_value *m = NULL;
  const char *code = NULL;
  struct result res;
  if (cid)
    {
      w = params_new (s, cid);
      if (shim_call (x, "containers.reset", params_done (w), NULL, NULL, &m, &why, &code) == NULL)
        {
          if (gone (code))
            forget_container (s, cid);
          return tool_error ("reset: %s", why);
        }
    }
  result_init (&res);
  add_text (&res, "the next python call runs in a fresh interpreter: variables and imports are "
                  "gone, the files in /mnt/data are kept");
  return result_done (&res);
}

/* ------------------------------------------------------------------ the methods */

static const char tools_json[]
    = "{\"tools\":["
      "{\"name\":\"python\",\"title\":\"Run Python\","
      "\"description\":\"Run Python 3 code in a persistent, sandboxed interpreter (like a Jupyter "
      "kernel): variables, imports and functions persist between calls. The working directory "
      "is /mnt/data, where uploaded files are and where files to keep or return should be "
      "written. Returns stdout, stderr, the value of the last expression and any traceback as "
      "text; each matplotlib figure as a PNG image; each file the code created or changed as a "
      "resource link. The sandbox has no network access. numpy, pandas, matplotlib and the "
      "usual data stack are installed.\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
      "\"code\":{\"type\":\"string\",\"description\":\"Python source to run, as in a notebook "
      "cell; the last expression's value is returned\"},"
      "\"timeout_ms\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600000,\"description\":"
      "\"Stop the code after this many milliseconds (default 60000)\"},"
      "\"memory_limit\":{\"type\":\"string\",\"enum\":[\"1g\",\"4g\",\"16g\",\"64g\"],"
      "\"description\":\"The sandbox's memory, chosen when the session's first call makes "
      "it\"}},\"required\":[\"code\"],\"additionalProperties\":false}},"
      "{\"name\":\"upload_file\",\"title\":\"Upload a file\","
      "\"description\":\"Write a file into /mnt/data of the sandbox, for the python tool to "
      "read. Replaces a file of the same path.\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
      "\"path\":{\"type\":\"string\",\"description\":\"Path relative to /mnt/data (or absolute "
      "under it), e.g. 'sales.csv' or 'input/sales.csv'\"},"
      "\"content\":{\"type\":\"string\",\"contentEncoding\":\"base64\",\"description\":\"The "
      "file's bytes, base64-encoded\"}},\"required\":[\"path\",\"content\"],"
      "\"additionalProperties\":false}},"
      "{\"name\":\"download_file\",\"title\":\"Download a file\","
      "\"description\":\"Read a file from /mnt/data of the sandbox; returns it as an embedded "
      "resource (base64 blob with its MIME type).\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
      "\"path\":{\"type\":\"string\",\"description\":\"Path relative to /mnt/data (or absolute "
      "under it)\"}},\"required\":[\"path\"],\"additionalProperties\":false}},"
      "{\"name\":\"list_files\",\"title\":\"List files\","
      "\"description\":\"List the files in /mnt/data of the sandbox with their sizes.\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}},"
      "{\"name\":\"reset\",\"title\":\"Reset the interpreter\","
      "\"description\":\"Restart the Python interpreter: variables, imports and definitions "
      "are gone, the files in /mnt/data are kept.\","
      "\"inputSchema\":{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}}"
      "]}";

static char *
m_initialize (struct mcp_session *s, const char *id, const json_value *params)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  const char *want = json_string (json_get (params, "protocolVersion"));
  json_value *cap
      = json_get (json_get (json_get (params, "capabilities"), "experimental"), "capsule");
  json_value *mem = json_get (cap, "memory_limit");
  if (want == NULL)
    return mcp_error_text (id, MCP_INVALID_PARAMS, "initialize needs params.protocolVersion");
  if (mem && !mcp_tier_valid (json_string (mem)))
    return mcp_error_text (id, MCP_INVALID_PARAMS,
                           "capabilities.experimental.capsule.memory_limit must be one of 1g, "
                           "4g, 16g, 64g");
  free (s->protocol);
  /* the client's version when we speak it, else our latest: the client decides */
  s->protocol = xstrdup (mcp_version_supported (want) ? want : MCP_LATEST_VERSION);
  if (mem)
    {
      free (s->memory_limit);
      s->memory_limit = xstrdup (json_string (mem));
    }
  json_w_open_object (w);
  json_w_kv_string (w, "protocolVersion", s->protocol);
  json_w_key (w, "capabilities");
  json_w_open_object (w);
  json_w_key (w, "tools");
  json_w_open_object (w);
  json_w_kv_bool (w, "listChanged", false);
  json_w_close_object (w);
  json_w_key (w, "resources");
  json_w_open_object (w);
  json_w_kv_bool (w, "subscribe", false);
  json_w_kv_bool (w, "listChanged", false);
  json_w_close_object (w);
  json_w_close_object (w);
  json_w_key (w, "serverInfo");
  json_w_open_object (w);
  json_w_kv_string (w, "name", "capsule");
  json_w_kv_string (w, "title", "capsule code interpreter");
  json_w_kv_string (w, "version", CAPSULE_VERSION);
  json_w_close_object (w);
  json_w_kv_string (w, "instructions",
                    "Use the python tool to run code in a persistent sandboxed interpreter; files "
                    "live in /mnt/data (upload_file, download_file, list_files; also as "
                    "capsule://files/ resources). One sandbox per MCP session.");
  json_w_close_object (w);
  return result_text (id, json_writer_text (w, NULL));
}

static char *
m_tools_call (struct mcp_session *s, const char *id, const json_value *params, struct mcp_ctx *x)
{
  const char *name = json_string (json_get (params, "name"));
  json_value *args = json_get (params, "arguments");
  json_value *token = json_get (json_get (params, "_meta"), "progressToken");
  _cleanup_free_ char *r = NULL;
  static const char *const no_args[] = { "list_files", "reset", NULL };
  if (name == NULL)
    return mcp_error_text (id, MCP_INVALID_PARAMS, "tools/call needs params.name");
  if (args && !json_is_object (args))
    return mcp_error_text (id, MCP_INVALID_PARAMS, "params.arguments must be an object");
  if (token && !json_is_string (token) && !json_is_integer (token))
    return mcp_error_text (id, MCP_INVALID_PARAMS,
                           "_meta.progressToken must be a string or an integer");
  for (const char *const *n = no_args; *n; n++)
    if (strcmp (name, *n) == 0 && json_object_len (args) > 0)
      return mcp_error_fmt (id, MCP_INVALID_PARAMS, "the tool %s takes no arguments", name);
  if (strcmp (name, "python") == 0)
    r = tool_python (s, x, id, args, token);
  else if (strcmp (name, "upload_file") == 0)
    r = tool_upload (s, x, args);
  else if (strcmp (name, "download_file") == 0)
    r = tool_download (s, x, args);
  else if (strcmp (name, "list_files") == 0)
    r = tool_list (s, x);
  else if (strcmp (name, "reset") == 0)
    r = tool_reset (s, x);
  else
    {
      _cleanup_free_ char *safe = json_utf8_sanitise (name);
      return mcp_error_fmt (id, MCP_INVALID_PARAMS, "Unknown tool: %.100s", safe);
    }
  if (r == NULL)
    return NULL; /* cancelled */
  return result_text (id, r);
}

static char *
m_resources_list (struct mcp_session *s, const char *id, const json_value *params,
                  struct mcp_ctx *x)
{
  _cleanup_free_ char *cid = container_of (s), *why = NULL;
  _cleanup_json_writer_ json_writer *w = json_writer_new (false), *p = NULL;
  _cleanup_json_ json_value *m = NULL;
  json_value *cursor = json_get (params, "cursor"), *r = NULL, *data;
  const char *code = NULL;
  if (cursor && (!json_is_string (cursor) || !shim_id_valid (json_string (cursor), "cfile_")))
    return mcp_error_text (id, MCP_INVALID_PARAMS, "params.cursor is not a cursor of ours");
  if (cid)
    {
      p = params_new (s, cid);
      json_w_kv_int (p, "limit", 100);
      json_w_kv_string (p, "order", "asc");
      if (cursor)
        json_w_kv_string (p, "after", json_string (cursor));
      r = shim_call (x, "files.list", params_done (p), NULL, NULL, &m, &why, &code);
      if (r == NULL)
        {
          if (gone (code))
            forget_container (s, cid);
          else
            return mcp_error_text (id, MCP_INTERNAL_ERROR, why);
        }
    }
  data = json_get (r, "data");
  json_w_open_object (w);
  json_w_key (w, "resources");
  json_w_open_array (w);
  for (size_t i = 0; i < json_array_len (data); i++)
    {
      json_value *f = json_array_get (data, i);
      const char *path = json_string (json_get (f, "path")) ?: "";
      const char *rel = strncmp (path, "/mnt/data/", 10) == 0 ? path + 10 : path;
      _cleanup_free_ char *uri = file_uri (rel);
      json_w_open_object (w);
      json_w_kv_string (w, "uri", uri);
      json_w_kv_string (w, "name", rel);
      json_w_kv_string (w, "title", path);
      json_w_kv_string (w, "mimeType", content_type_of (rel));
      json_w_kv_int (w, "size", json_integer (json_get (f, "bytes")));
      json_w_close_object (w);
    }
  json_w_close_array (w);
  if (json_bool (json_get (r, "has_more")) && json_string (json_get (r, "last_id")))
    json_w_kv_string (w, "nextCursor", json_string (json_get (r, "last_id")));
  json_w_close_object (w);
  return result_text (id, json_writer_text (w, NULL));
}

static char *
m_resources_read (struct mcp_session *s, const char *id, const json_value *params,
                  struct mcp_ctx *x)
{
  const char *uri = json_string (json_get (params, "uri"));
  _cleanup_free_ char *path = uri_path (uri), *rel = NULL, *why = NULL, *cid = NULL;
  _cleanup_free_ char *b64 = NULL, *canon = NULL;
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_json_ json_value *m = NULL;
  const json_value *f;
  const char *code = NULL;
  if (uri == NULL)
    return mcp_error_text (id, MCP_INVALID_PARAMS, "resources/read needs params.uri");
  if (path == NULL)
    return mcp_error_text (id, MCP_INVALID_PARAMS,
                           "the resources here are capsule://files/PATH (percent-encoded)");
  if ((rel = data_path (path, &why)) == NULL)
    return mcp_error_text (id, MCP_INVALID_PARAMS, why);
  /* -32002: the specification's "resource not found" */
  if ((cid = container_of (s)) == NULL)
    return mcp_error_fmt (id, -32002, "Resource not found: there is no file /mnt/data/%s", rel);
  f = find_file (s, x, cid, rel, &m, &why, &code);
  if (f == NULL)
    {
      if (gone (code))
        forget_container (s, cid);
      if (code && strcmp (code, "no_such_file") == 0)
        return mcp_error_fmt (id, -32002, "Resource not found: %s", why);
      return mcp_error_text (id, MCP_INTERNAL_ERROR, why);
    }
  b64 = file_base64 (s, x, cid, json_string (json_get (f, "id")), &why);
  if (b64 == NULL)
    return mcp_error_text (id, MCP_INTERNAL_ERROR, why);
  canon = file_uri (rel);
  json_w_open_object (w);
  json_w_key (w, "contents");
  json_w_open_array (w);
  json_w_open_object (w);
  json_w_kv_string (w, "uri", canon);
  json_w_kv_string (w, "mimeType", content_type_of (rel));
  json_w_kv_string (w, "blob", b64);
  json_w_close_object (w);
  json_w_close_array (w);
  json_w_close_object (w);
  return result_text (id, json_writer_text (w, NULL));
}

char *
mcp_request (struct mcp_session *s, const json_value *msg, struct mcp_ctx *x)
{
  _cleanup_free_ char *id = rpc_id_text (json_get (msg, "id"));
  const char *method = mcp_method (msg);
  json_value *params = json_get (msg, "params");
  char *ret;
  if (strcmp (method, "initialize") == 0)
    return m_initialize (s, id, params);
  if (strcmp (method, "ping") == 0)
    return result_text (id, "{}");
  if (s->protocol == NULL)
    return mcp_error_fmt (id, MCP_INVALID_REQUEST,
                          "the session is not initialized: send initialize before %.64s", method);
  if (set_busy (s, 1) > MCP_BUSY_MAX)
    {
      set_busy (s, -1);
      return mcp_error_fmt (id, MCP_SERVER_ERROR,
                            "this session has %d requests under way, the most it may; wait for "
                            "their answers",
                            MCP_BUSY_MAX);
    }
  if (strcmp (method, "tools/list") == 0)
    ret = result_text (id, tools_json);
  else if (strcmp (method, "tools/call") == 0)
    ret = m_tools_call (s, id, params, x);
  else if (strcmp (method, "resources/list") == 0)
    ret = m_resources_list (s, id, params, x);
  else if (strcmp (method, "resources/templates/list") == 0)
    ret = result_text (id, "{\"resourceTemplates\":[{\"uriTemplate\":\"capsule://files/{+path}\","
                           "\"name\":\"sandbox file\",\"title\":\"A file in /mnt/data of the "
                           "session's sandbox\"}]}");
  else if (strcmp (method, "resources/read") == 0)
    ret = m_resources_read (s, id, params, x);
  else
    {
      _cleanup_free_ char *safe = json_utf8_sanitise (method);
      ret = mcp_error_fmt (id, MCP_METHOD_NOT_FOUND, "Method not found: %.64s", safe);
    }
  set_busy (s, -1);
  return ret;
}

void
mcp_notification (struct mcp_session *s, const json_value *msg, struct mcp_ctx *x)
{
  const char *method = mcp_method (msg);
  json_value *params = json_get (msg, "params");
  _cleanup_free_ char *rid = NULL, *cid = NULL;
  if (strcmp (method, "notifications/cancelled") != 0)
    return; /* initialized, roots/list_changed, ...: nothing to do */
  rid = rpc_id_text (json_get (params, "requestId"));
  if (rid == NULL || json_get (params, "requestId") == NULL)
    return;
  pthread_mutex_lock (&mcp.lock);
  {
    struct running *r = s->running;
    for (; r; r = r->next)
      if (strcmp (r->req_id, rid) == 0)
        break;
    if (r && !r->cancelled)
      {
        /* one that did not start yet never will */
        r->cancelled = true;
        cid = r->container_id ? xstrdup (r->container_id) : NULL;
      }
    else if (r == NULL)
      {
        /* its request may still be on its way (ids are not reused within a session) */
        free (s->early_cancels[s->next_early]);
        s->early_cancels[s->next_early] = xstrdup (rid);
        s->next_early = (s->next_early + 1) % MCP_EARLY_CANCELS;
      }
  }
  pthread_mutex_unlock (&mcp.lock);
  if (cid)
    {
      _cleanup_json_writer_ json_writer *w = params_new (s, cid);
      _cleanup_json_ json_value *m = NULL;
      _cleanup_free_ char *why = NULL;
      if (shim_call (x, "containers.interrupt", params_done (w), NULL, NULL, &m, &why, NULL)
          == NULL)
        fprintf (stderr, "capsule-gateway: mcp: the cancelled cell was not interrupted: %s\n", why);
    }
}
