/* capsule: config.json → struct spec, with one clear error line per bad field. */
#define _GNU_SOURCE
#include "spec.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "caps.h"
#include "seccomp-filter.h"
#include "utils.h"

const char *const spec_hook_names[HOOK_KINDS] = {
  "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
};

/* Every parse helper gets the document name and the dotted field path for its messages. */
struct ctx
{
  const char *what;
  capsule_error **err;
};

static int bad (struct ctx *c, const char *path, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static int
bad (struct ctx *c, const char *path, const char *fmt, ...)
{
  _cleanup_free_ char *msg = NULL;
  va_list ap;
  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    msg = NULL;
  va_end (ap);
  return capsule_error_make (c->err, 0, "%s: %s: %s", c->what, path, msg ? msg : "invalid");
}

static int
wrong_type (struct ctx *c, const char *path, const char *expected, const json_value *v)
{
  return bad (c, path, "expected %s, got %s", expected, json_type_name (v));
}

static char *
sub (const char *path, const char *key)
{
  return path[0] ? xasprintf ("%s.%s", path, key) : xstrdup (key);
}

static char *
idx (const char *path, size_t i)
{
  return xasprintf ("%s[%zu]", path, i);
}

/* The member's path ("linux.seccomp.syscalls[3].action") is only spelled out for an error. */
#define LAZY_PATH (p ? p : (p = sub (path, key)))

static int
opt_string (struct ctx *c, const json_value *obj, const char *path, const char *key, bool required,
            char **ret)
{
  json_value *v = json_get (obj, key);
  _cleanup_free_ char *p = NULL;
  if (v == NULL || json_is_null (v))
    {
      if (required)
        return bad (c, LAZY_PATH, "missing");
      return 0;
    }
  if (!json_is_string (v))
    return wrong_type (c, LAZY_PATH, "a string", v);
  if (strlen (json_string (v)) > PATH_MAX * 4)
    return bad (c, LAZY_PATH, "too long");
  free (*ret);
  *ret = xstrdup (json_string (v));
  return 0;
}

static int
opt_bool (struct ctx *c, const json_value *obj, const char *path, const char *key, bool *ret)
{
  json_value *v = json_get (obj, key);
  _cleanup_free_ char *p = NULL;
  if (v == NULL || json_is_null (v))
    return 0;
  if (!json_is_bool (v))
    return wrong_type (c, LAZY_PATH, "a boolean", v);
  *ret = json_bool (v);
  return 0;
}

/* An integer within [min, max]; *present tells whether it was there. */
static int
opt_int (struct ctx *c, const json_value *obj, const char *path, const char *key, long long min,
         long long max, bool *present, long long *ret)
{
  json_value *v = json_get (obj, key);
  _cleanup_free_ char *p = NULL;
  if (v == NULL || json_is_null (v))
    return 0;
  if (!json_is_integer (v))
    return wrong_type (c, LAZY_PATH, "an integer", v);
  if (json_integer (v) < min || json_integer (v) > max)
    return bad (c, LAZY_PATH, "%lld is out of range [%lld, %lld]", json_integer (v), min, max);
  *ret = json_integer (v);
  if (present)
    *present = true;
  return 0;
}

static int
opt_u64 (struct ctx *c, const json_value *obj, const char *path, const char *key, bool *present,
         uint64_t *ret)
{
  json_value *v = json_get (obj, key);
  _cleanup_free_ char *p = NULL;
  if (v == NULL || json_is_null (v))
    return 0;
  if (!json_is_integer (v) && !json_is_number (v))
    return wrong_type (c, LAZY_PATH, "an unsigned integer", v);
  if (json_u64 (v, ret) < 0)
    return bad (c, LAZY_PATH, "not an unsigned integer");
  if (present)
    *present = true;
  return 0;
}

/* NULL-terminated array of strings; a missing member leaves *ret untouched. */
static int
opt_strv (struct ctx *c, const json_value *obj, const char *path, const char *key, size_t max,
          char ***ret)
{
  json_value *v = json_get (obj, key);
  _cleanup_free_ char *p = NULL;
  char **out;
  size_t n;
  if (v == NULL || json_is_null (v))
    return 0;
  if (!json_is_array (v))
    return wrong_type (c, LAZY_PATH, "an array of strings", v);
  n = json_array_len (v);
  if (n > max)
    return bad (c, LAZY_PATH, "more than %zu entries", max);
  out = xmalloc0 ((n + 1) * sizeof (char *));
  for (size_t i = 0; i < n; i++)
    {
      json_value *e = json_array_get (v, i);
      if (!json_is_string (e))
        {
          _cleanup_free_ char *pi = idx (LAZY_PATH, i);
          strv_free (out);
          return wrong_type (c, pi, "a string", e);
        }
      out[i] = xstrdup (json_string (e));
    }
  strv_free (*ret);
  *ret = out;
  return 0;
}

static int
want_object (struct ctx *c, const json_value *v, const char *path)
{
  if (v != NULL && !json_is_object (v) && !json_is_null (v))
    return wrong_type (c, path, "an object", v);
  return 0;
}

static int
want_array (struct ctx *c, const json_value *v, const char *path, size_t max)
{
  if (v == NULL || json_is_null (v))
    return 0;
  if (!json_is_array (v))
    return wrong_type (c, path, "an array", v);
  if (json_array_len (v) > max)
    return bad (c, path, "more than %zu entries", max);
  return 0;
}

static bool
path_has_dotdot (const char *p)
{
  for (const char *s = p; (s = strstr (s, "..")); s += 2)
    if ((s == p || s[-1] == '/') && (s[2] == '\0' || s[2] == '/'))
      return true;
  return false;
}

/* ---- mount options ---- */

struct mount_opt
{
  const char *name;
  bool clear;
  unsigned long flag;
};

static const struct mount_opt mount_flags[] = {
  { "ro", false, MS_RDONLY },
  { "rw", true, MS_RDONLY },
  { "nosuid", false, MS_NOSUID },
  { "suid", true, MS_NOSUID },
  { "nodev", false, MS_NODEV },
  { "dev", true, MS_NODEV },
  { "noexec", false, MS_NOEXEC },
  { "exec", true, MS_NOEXEC },
  { "sync", false, MS_SYNCHRONOUS },
  { "async", true, MS_SYNCHRONOUS },
  { "dirsync", false, MS_DIRSYNC },
  { "remount", false, MS_REMOUNT },
  { "mand", false, MS_MANDLOCK },
  { "nomand", true, MS_MANDLOCK },
  { "atime", true, MS_NOATIME },
  { "noatime", false, MS_NOATIME },
  { "diratime", true, MS_NODIRATIME },
  { "nodiratime", false, MS_NODIRATIME },
  { "relatime", false, MS_RELATIME },
  { "norelatime", true, MS_RELATIME },
  { "strictatime", false, MS_STRICTATIME },
  { "nostrictatime", true, MS_STRICTATIME },
  { "bind", false, MS_BIND },
  { "rbind", false, MS_BIND | MS_REC },
};

static const struct mount_opt propagation_flags[] = {
  { "private", false, MS_PRIVATE },       { "rprivate", false, MS_PRIVATE | MS_REC },
  { "shared", false, MS_SHARED },         { "rshared", false, MS_SHARED | MS_REC },
  { "slave", false, MS_SLAVE },           { "rslave", false, MS_SLAVE | MS_REC },
  { "unbindable", false, MS_UNBINDABLE }, { "runbindable", false, MS_UNBINDABLE | MS_REC },
};

static const struct mount_opt *
find_opt (const struct mount_opt *table, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (table[i].name, name) == 0)
      return &table[i];
  return NULL;
}

int
spec_mount_options_parse (struct spec_mount *m, char **options, const char *where,
                          capsule_error **err)
{
  size_t data_len = 0;
  _cleanup_free_ char *data = NULL;

  for (size_t i = 0; options && options[i]; i++)
    {
      const char *o = options[i];
      const struct mount_opt *f;
      if ((f = find_opt (mount_flags, ARRAY_SIZE (mount_flags), o)))
        {
          if (f->clear)
            {
              m->flags &= ~f->flag;
              m->clear_flags |= f->flag;
            }
          else
            {
              m->flags |= f->flag;
              m->clear_flags &= ~f->flag;
            }
          continue;
        }
      if ((f = find_opt (propagation_flags, ARRAY_SIZE (propagation_flags), o)))
        {
          m->propagation = f->flag;
          continue;
        }
      if (strcmp (o, "rro") == 0)
        {
          m->recursive_readonly = true;
          m->flags |= MS_RDONLY;
          continue;
        }
      if (strcmp (o, "tmpcopyup") == 0 || strcmp (o, "rrw") == 0)
        continue;
      if (strcmp (o, "idmap") == 0 || strcmp (o, "ridmap") == 0)
        {
          m->idmap = true;
          m->idmap_recursive = o[0] == 'r';
          continue;
        }
      if (strchr (o, ',') != NULL)
        return capsule_error_make (err, 0, "%s: option \"%s\" holds a comma", where, o);
      data = realloc (data, data_len + strlen (o) + 2);
      if (data == NULL)
        abort ();
      if (data_len)
        data[data_len++] = ',';
      strcpy (data + data_len, o);
      data_len += strlen (o);
    }
  free (m->data);
  m->data = steal_pointer (&data);
  return 0;
}

/* ---- process ---- */

static const struct
{
  const char *name;
  int resource;
} rlimit_names[] = {
  { "RLIMIT_AS", RLIMIT_AS },
  { "RLIMIT_CORE", RLIMIT_CORE },
  { "RLIMIT_CPU", RLIMIT_CPU },
  { "RLIMIT_DATA", RLIMIT_DATA },
  { "RLIMIT_FSIZE", RLIMIT_FSIZE },
  { "RLIMIT_LOCKS", RLIMIT_LOCKS },
  { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
  { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
  { "RLIMIT_NICE", RLIMIT_NICE },
  { "RLIMIT_NOFILE", RLIMIT_NOFILE },
  { "RLIMIT_NPROC", RLIMIT_NPROC },
  { "RLIMIT_RSS", RLIMIT_RSS },
  { "RLIMIT_RTPRIO", RLIMIT_RTPRIO },
  { "RLIMIT_RTTIME", RLIMIT_RTTIME },
  { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
  { "RLIMIT_STACK", RLIMIT_STACK },
};

int
spec_rlimit_parse (const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE (rlimit_names); i++)
    if (strcmp (rlimit_names[i].name, name) == 0)
      return rlimit_names[i].resource;
  return -1;
}

static int
parse_rlimits (struct ctx *c, const json_value *proc, struct spec_process *p)
{
  json_value *v = json_get (proc, "rlimits");
  const char *path = "process.rlimits";
  if (want_array (c, v, path, 64) < 0)
    return -1;
  p->n_rlimits = json_array_len (v);
  p->rlimits = xmalloc0 (p->n_rlimits * sizeof *p->rlimits);
  for (size_t i = 0; i < p->n_rlimits; i++)
    {
      json_value *e = json_array_get (v, i);
      _cleanup_free_ char *pi = idx (path, i);
      _cleanup_free_ char *type = NULL;
      bool has_soft = false, has_hard = false;
      if (!json_is_object (e))
        return wrong_type (c, pi, "an object", e);
      if (opt_string (c, e, pi, "type", true, &type) < 0)
        return -1;
      p->rlimits[i].resource = spec_rlimit_parse (type);
      if (p->rlimits[i].resource < 0)
        {
          _cleanup_free_ char *pt = sub (pi, "type");
          return bad (c, pt, "unknown rlimit \"%s\"", type);
        }
      if (opt_u64 (c, e, pi, "soft", &has_soft, &p->rlimits[i].soft) < 0
          || opt_u64 (c, e, pi, "hard", &has_hard, &p->rlimits[i].hard) < 0)
        return -1;
      if (!has_soft || !has_hard)
        return bad (c, pi, "needs both \"soft\" and \"hard\"");
      if (p->rlimits[i].soft > p->rlimits[i].hard)
        return bad (c, pi, "soft limit %llu is above the hard limit %llu",
                    (unsigned long long)p->rlimits[i].soft, (unsigned long long)p->rlimits[i].hard);
      for (size_t j = 0; j < i; j++)
        if (p->rlimits[j].resource == p->rlimits[i].resource)
          return bad (c, pi, "\"%s\" is set twice", type);
    }
  return 0;
}

static const char *const capset_names[SPEC_N_CAPSETS]
    = { "bounding", "effective", "permitted", "inheritable", "ambient" };

static int
parse_capabilities (struct ctx *c, const json_value *proc, struct spec_process *p)
{
  json_value *v = json_get (proc, "capabilities");
  if (v == NULL || json_is_null (v))
    return 0;
  if (want_object (c, v, "process.capabilities") < 0)
    return -1;
  p->has_capabilities = true;
  for (int s = 0; s < SPEC_N_CAPSETS; s++)
    {
      _cleanup_strv_ char **names = NULL;
      _cleanup_free_ char *ps = xasprintf ("process.capabilities.%s", capset_names[s]);
      if (opt_strv (c, v, "process.capabilities", capset_names[s], 128, &names) < 0)
        return -1;
      for (size_t i = 0; names && names[i]; i++)
        {
          int cap = caps_parse_name (names[i]);
          if (cap < 0)
            {
              _cleanup_free_ char *pi = idx (ps, i);
              return bad (c, pi, "unknown capability \"%s\"", names[i]);
            }
          p->caps[s] |= 1ULL << cap;
        }
    }
  return 0;
}

static int
parse_user (struct ctx *c, const json_value *proc, struct spec_process *p)
{
  json_value *u = json_get (proc, "user");
  json_value *gids;
  long long v;
  if (want_object (c, u, "process.user") < 0)
    return -1;
  if (u == NULL)
    return 0;
  v = 0;
  if (opt_int (c, u, "process.user", "uid", 0, UINT32_MAX - 1, NULL, &v) < 0)
    return -1;
  p->uid = v;
  v = 0;
  if (opt_int (c, u, "process.user", "gid", 0, UINT32_MAX - 1, NULL, &v) < 0)
    return -1;
  p->gid = v;
  v = -1;
  if (opt_int (c, u, "process.user", "umask", 0, 0777, &p->has_umask, &v) < 0)
    return -1;
  p->umask = p->has_umask ? (mode_t)v : 0022;
  gids = json_get (u, "additionalGids");
  if (want_array (c, gids, "process.user.additionalGids", 1024) < 0)
    return -1;
  p->n_additional_gids = json_array_len (gids);
  p->additional_gids = xmalloc0 (p->n_additional_gids * sizeof (gid_t));
  for (size_t i = 0; i < p->n_additional_gids; i++)
    {
      json_value *g = json_array_get (gids, i);
      if (!json_is_integer (g) || json_integer (g) < 0 || json_integer (g) >= UINT32_MAX)
        {
          _cleanup_free_ char *pi = idx ("process.user.additionalGids", i);
          return bad (c, pi, "expected a group id");
        }
      p->additional_gids[i] = json_integer (g);
    }
  return 0;
}

static int
parse_process_obj (struct ctx *c, const json_value *v, struct spec_process **ret)
{
  struct spec_process *p = xmalloc0 (sizeof *p);
  long long oom = 0;
  int r = -1;

  p->umask = 0022;
  if (!json_is_object (v))
    {
      wrong_type (c, "process", "an object", v);
      goto out;
    }
  if (opt_bool (c, v, "process", "terminal", &p->terminal) < 0
      || opt_strv (c, v, "process", "args", 65536, &p->args) < 0
      || opt_strv (c, v, "process", "env", 65536, &p->env) < 0
      || opt_string (c, v, "process", "cwd", true, &p->cwd) < 0
      || opt_bool (c, v, "process", "noNewPrivileges", &p->no_new_privileges) < 0
      || opt_int (c, v, "process", "oomScoreAdj", -1000, 1000, &p->has_oom_score_adj, &oom) < 0
      || parse_user (c, v, p) < 0 || parse_rlimits (c, v, p) < 0
      || parse_capabilities (c, v, p) < 0)
    goto out;
  p->oom_score_adj = oom;
  if (p->args == NULL || p->args[0] == NULL || p->args[0][0] == '\0')
    {
      bad (c, "process.args", "must name a program to run");
      goto out;
    }
  if (p->cwd[0] != '/')
    {
      bad (c, "process.cwd", "\"%s\" is not an absolute path", p->cwd);
      goto out;
    }
  for (size_t i = 0; p->env && p->env[i]; i++)
    if (strchr (p->env[i], '=') == NULL)
      {
        _cleanup_free_ char *pi = idx ("process.env", i);
        bad (c, pi, "\"%s\" is not of the form NAME=VALUE", p->env[i]);
        goto out;
      }
  *ret = steal_pointer (&p);
  r = 0;
out:
  spec_process_free (p);
  return r;
}

/* ---- root, mounts, namespaces, id mappings ---- */

static int
parse_root (struct ctx *c, const json_value *doc, const char *bundle, struct spec *s)
{
  json_value *root = json_get (doc, "root");
  _cleanup_free_ char *path = NULL;
  if (root == NULL)
    return bad (c, "root", "missing");
  if (want_object (c, root, "root") < 0 || opt_string (c, root, "root", "path", true, &path) < 0
      || opt_bool (c, root, "root", "readonly", &s->root_readonly) < 0)
    return -1;
  if (path[0] == '\0')
    return bad (c, "root.path", "empty");
  s->root_path = path[0] == '/' ? xstrdup (path) : xasprintf ("%s/%s", bundle, path);
  return 0;
}

static int parse_idmaps_at (struct ctx *c, const json_value *obj, const char *where,
                            const char *key, struct spec_idmap **ret, size_t *ret_n);

static int
parse_mounts (struct ctx *c, const json_value *doc, struct spec *s)
{
  json_value *v = json_get (doc, "mounts");
  if (want_array (c, v, "mounts", 1024) < 0)
    return -1;
  s->n_mounts = json_array_len (v);
  s->mounts = xmalloc0 (s->n_mounts * sizeof *s->mounts);
  for (size_t i = 0; i < s->n_mounts; i++)
    {
      json_value *e = json_array_get (v, i);
      struct spec_mount *m = &s->mounts[i];
      _cleanup_free_ char *pi = idx ("mounts", i);
      _cleanup_strv_ char **options = NULL;
      if (!json_is_object (e))
        return wrong_type (c, pi, "an object", e);
      if (opt_string (c, e, pi, "destination", true, &m->destination) < 0
          || opt_string (c, e, pi, "type", false, &m->type) < 0
          || opt_string (c, e, pi, "source", false, &m->source) < 0
          || opt_strv (c, e, pi, "options", 256, &options) < 0)
        return -1;
      if (path_has_dotdot (m->destination))
        {
          _cleanup_free_ char *pd = sub (pi, "destination");
          return bad (c, pd, "\"%s\" contains \"..\"", m->destination);
        }
      if (m->destination[0] != '/')
        {
          _cleanup_free_ char *pd = sub (pi, "destination");
          return bad (c, pd, "\"%s\" is not an absolute path", m->destination);
        }
      {
        _cleanup_free_ char *po = sub (pi, "options");
        _cleanup_free_ char *where = xasprintf ("%s: %s", c->what, po);
        if (spec_mount_options_parse (m, options, where, c->err) < 0)
          return -1;
      }
      if (m->type == NULL && !(m->flags & MS_BIND))
        return bad (c, pi, "has no type and is not a bind mount");
      if (m->type && strcmp (m->type, "bind") == 0)
        m->flags |= MS_BIND;
      if ((m->flags & MS_BIND) && (m->source == NULL || m->source[0] == '\0'))
        return bad (c, pi, "bind mount without a source");
      if (parse_idmaps_at (c, e, pi, "uidMappings", &m->uid_mappings, &m->n_uid_mappings) < 0
          || parse_idmaps_at (c, e, pi, "gidMappings", &m->gid_mappings, &m->n_gid_mappings) < 0)
        return -1;
      if (m->n_uid_mappings || m->n_gid_mappings)
        m->idmap = true;
      if ((m->n_uid_mappings == 0) != (m->n_gid_mappings == 0))
        return bad (c, pi, "an idmapped mount needs both uidMappings and gidMappings");
      if (m->idmap && !(m->flags & MS_BIND))
        return bad (c, pi, "only a bind mount can be idmapped");
    }
  return 0;
}

static const struct
{
  const char *name;
  int type;
} ns_names[] = {
  { "pid", CLONE_NEWPID },       { "network", CLONE_NEWNET }, { "mount", CLONE_NEWNS },
  { "ipc", CLONE_NEWIPC },       { "uts", CLONE_NEWUTS },     { "user", CLONE_NEWUSER },
  { "cgroup", CLONE_NEWCGROUP },
};

int
spec_namespace_parse (const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE (ns_names); i++)
    if (strcmp (ns_names[i].name, name) == 0)
      return ns_names[i].type;
  return 0;
}

const char *
spec_namespace_name (int type)
{
  for (size_t i = 0; i < ARRAY_SIZE (ns_names); i++)
    if (ns_names[i].type == type)
      return ns_names[i].name;
  return "?";
}

static int
parse_namespaces (struct ctx *c, const json_value *linux_, struct spec *s)
{
  json_value *v = json_get (linux_, "namespaces");
  if (want_array (c, v, "linux.namespaces", 16) < 0)
    return -1;
  s->n_namespaces = json_array_len (v);
  s->namespaces = xmalloc0 (s->n_namespaces * sizeof *s->namespaces);
  for (size_t i = 0; i < s->n_namespaces; i++)
    {
      json_value *e = json_array_get (v, i);
      _cleanup_free_ char *pi = idx ("linux.namespaces", i);
      _cleanup_free_ char *type = NULL;
      if (!json_is_object (e))
        return wrong_type (c, pi, "an object", e);
      if (opt_string (c, e, pi, "type", true, &type) < 0
          || opt_string (c, e, pi, "path", false, &s->namespaces[i].path) < 0)
        return -1;
      s->namespaces[i].type = spec_namespace_parse (type);
      if (s->namespaces[i].type == 0)
        {
          _cleanup_free_ char *pt = sub (pi, "type");
          return bad (c, pt, "unknown or unsupported namespace \"%s\"", type);
        }
      if (s->namespaces[i].path && s->namespaces[i].path[0] != '/')
        {
          _cleanup_free_ char *pp = sub (pi, "path");
          return bad (c, pp, "\"%s\" is not an absolute path", s->namespaces[i].path);
        }
      for (size_t j = 0; j < i; j++)
        if (s->namespaces[j].type == s->namespaces[i].type)
          return bad (c, pi, "namespace \"%s\" is listed twice", type);
    }
  return 0;
}

static int
parse_idmaps_at (struct ctx *c, const json_value *obj, const char *where, const char *key,
                 struct spec_idmap **ret, size_t *ret_n)
{
  json_value *v = json_get (obj, key);
  _cleanup_free_ char *path = xasprintf ("%s.%s", where, key);
  if (want_array (c, v, path, 340) < 0)
    return -1;
  *ret_n = json_array_len (v);
  *ret = xmalloc0 (*ret_n * sizeof **ret);
  for (size_t i = 0; i < *ret_n; i++)
    {
      json_value *e = json_array_get (v, i);
      _cleanup_free_ char *pi = idx (path, i);
      long long cid = -1, hid = -1, size = -1;
      if (!json_is_object (e))
        return wrong_type (c, pi, "an object", e);
      if (opt_int (c, e, pi, "containerID", 0, UINT32_MAX - 1, NULL, &cid) < 0
          || opt_int (c, e, pi, "hostID", 0, UINT32_MAX - 1, NULL, &hid) < 0
          || opt_int (c, e, pi, "size", 1, UINT32_MAX, NULL, &size) < 0)
        return -1;
      if (cid < 0 || hid < 0 || size < 0)
        return bad (c, pi, "needs containerID, hostID and size");
      (*ret)[i] = (struct spec_idmap){ cid, hid, size };
    }
  return 0;
}

static int
parse_idmaps (struct ctx *c, const json_value *linux_, const char *key, struct spec_idmap **ret,
              size_t *ret_n)
{
  return parse_idmaps_at (c, linux_, "linux", key, ret, ret_n);
}

/* ---- devices, sysctl, resources ---- */

/* A device is a node anywhere in the rootfs, as runc allows (not only under /dev): an absolute
   path whose "//" and trailing "/" go (runc cleans them too), with a last name and no "..". */
static int
device_path_clean (char *path)
{
  char *w = path;
  const char *last;
  if (path[0] != '/')
    return -1;
  for (const char *r = path; *r; r++)
    if (!(*r == '/' && (r[1] == '/' || r[1] == '\0')))
      *w++ = *r;
  *w = '\0';
  if (path[0] == '\0')
    return -1;
  last = strrchr (path, '/') + 1;
  if (strcmp (last, ".") == 0 || strcmp (last, "") == 0 || strstr (path, "/../")
      || strcmp (last, "..") == 0 || strstr (path, "/./"))
    return -1;
  return 0;
}

static int
parse_devices (struct ctx *c, const json_value *linux_, struct spec *s)
{
  json_value *v = json_get (linux_, "devices");
  if (want_array (c, v, "linux.devices", 1024) < 0)
    return -1;
  s->n_devices = json_array_len (v);
  s->devices = xmalloc0 (s->n_devices * sizeof *s->devices);
  for (size_t i = 0; i < s->n_devices; i++)
    {
      json_value *e = json_array_get (v, i);
      struct spec_device *d = &s->devices[i];
      _cleanup_free_ char *pi = idx ("linux.devices", i);
      _cleanup_free_ char *type = NULL;
      long long major = 0, minor = 0, mode = 0666, uid = 0, gid = 0;
      if (!json_is_object (e))
        return wrong_type (c, pi, "an object", e);
      if (opt_string (c, e, pi, "path", true, &d->path) < 0
          || opt_string (c, e, pi, "type", true, &type) < 0
          || opt_int (c, e, pi, "major", 0, UINT32_MAX, NULL, &major) < 0
          || opt_int (c, e, pi, "minor", 0, UINT32_MAX, NULL, &minor) < 0
          || opt_int (c, e, pi, "fileMode", 0, 07777, &d->has_mode, &mode) < 0
          || opt_int (c, e, pi, "uid", 0, UINT32_MAX - 1, NULL, &uid) < 0
          || opt_int (c, e, pi, "gid", 0, UINT32_MAX - 1, NULL, &gid) < 0)
        return -1;
      if (strlen (type) != 1 || !strchr ("cbup", type[0]))
        {
          _cleanup_free_ char *pt = sub (pi, "type");
          return bad (c, pt, "unknown device type \"%s\"", type);
        }
      {
        _cleanup_free_ char *given = xstrdup (d->path);
        if (device_path_clean (d->path) < 0)
          {
            _cleanup_free_ char *pp = sub (pi, "path");
            return bad (c, pp, "\"%s\" is not an absolute path of a file without \"..\"", given);
          }
      }
      d->type = type[0] == 'u' ? 'c' : type[0];
      d->major = major;
      d->minor = minor;
      d->mode = mode;
      d->uid = uid;
      d->gid = gid;
    }
  return 0;
}

static int
parse_sysctl (struct ctx *c, const json_value *linux_, struct spec *s)
{
  json_value *v = json_get (linux_, "sysctl");
  if (want_object (c, v, "linux.sysctl") < 0)
    return -1;
  s->n_sysctl = json_object_len (v);
  s->sysctl_keys = xmalloc0 ((s->n_sysctl + 1) * sizeof (char *));
  s->sysctl_values = xmalloc0 ((s->n_sysctl + 1) * sizeof (char *));
  for (size_t i = 0; i < s->n_sysctl; i++)
    {
      const char *key = json_object_key (v, i);
      json_value *val = json_object_value (v, i);
      _cleanup_free_ char *pk = xasprintf ("linux.sysctl.%s", key);
      if (!json_is_string (val))
        return wrong_type (c, pk, "a string", val);
      if (key[0] == '\0' || key[0] == '.' || key[0] == '/' || strstr (key, "..")
          || strchr (key, '/') || strlen (key) > 256)
        return bad (c, pk, "not a valid sysctl name");
      s->sysctl_keys[i] = xstrdup (key);
      s->sysctl_values[i] = xstrdup (json_string (val));
    }
  return 0;
}

static int
parse_device_rules (struct ctx *c, const json_value *res, struct spec_resources *r)
{
  json_value *v = json_get (res, "devices");
  if (want_array (c, v, "linux.resources.devices", 1024) < 0)
    return -1;
  r->n_devices = json_array_len (v);
  r->devices = xmalloc0 (r->n_devices * sizeof *r->devices);
  for (size_t i = 0; i < r->n_devices; i++)
    {
      json_value *e = json_array_get (v, i);
      struct spec_device_rule *d = &r->devices[i];
      _cleanup_free_ char *pi = idx ("linux.resources.devices", i);
      _cleanup_free_ char *type = NULL, *access = NULL;
      long long major = -1, minor = -1;
      if (!json_is_object (e))
        return wrong_type (c, pi, "an object", e);
      if (opt_bool (c, e, pi, "allow", &d->allow) < 0
          || opt_string (c, e, pi, "type", false, &type) < 0
          || opt_string (c, e, pi, "access", false, &access) < 0
          || opt_int (c, e, pi, "major", -1, UINT32_MAX, NULL, &major) < 0
          || opt_int (c, e, pi, "minor", -1, UINT32_MAX, NULL, &minor) < 0)
        return -1;
      d->type = type ? type[0] : 'a';
      if (type && (strlen (type) != 1 || !strchr ("acb", type[0])))
        return bad (c, pi, "unknown device type \"%s\"", type);
      if (access && (strlen (access) > 3 || strspn (access, "rwm") != strlen (access)))
        return bad (c, pi, "access \"%s\" is not made of r, w, m", access);
      strcpy (d->access, access ? access : "rwm");
      d->major = major;
      d->minor = minor;
    }
  return 0;
}

static int
parse_resources_value (struct ctx *c, const json_value *v, struct spec_resources **ret)
{
  json_value *mem, *pids, *cpu, *blkio, *unified;
  struct spec_resources *r;
  bool has;
  if (want_object (c, v, "linux.resources") < 0)
    return -1;
  if (v == NULL || json_is_null (v))
    return 0;
  r = *ret = xmalloc0 (sizeof *r);
  r->cpu_quota = 0;
  mem = json_get (v, "memory");
  if (want_object (c, mem, "linux.resources.memory") < 0
      || opt_int (c, mem, "linux.resources.memory", "limit", -1, INT64_MAX, &r->has_memory_limit,
                  (long long *)&r->memory_limit)
             < 0
      || opt_int (c, mem, "linux.resources.memory", "reservation", -1, INT64_MAX,
                  &r->has_memory_reservation, (long long *)&r->memory_reservation)
             < 0
      || opt_int (c, mem, "linux.resources.memory", "swap", -1, INT64_MAX, &r->has_memory_swap,
                  (long long *)&r->memory_swap)
             < 0
      || opt_bool (c, mem, "linux.resources.memory", "disableOOMKiller", &r->disable_oom_killer)
             < 0)
    return -1;
  if (r->has_memory_limit && r->memory_limit == 0)
    r->has_memory_limit = false; /* runc treats 0 as "not set" */
  if (r->has_memory_limit && r->memory_limit > 0 && r->memory_limit < 256 * 1024)
    return bad (c, "linux.resources.memory.limit", "%lld bytes is too small to run anything",
                (long long)r->memory_limit);
  if (r->has_memory_swap && r->has_memory_limit && r->memory_swap > 0 && r->memory_limit > 0
      && r->memory_swap < r->memory_limit)
    return bad (c, "linux.resources.memory.swap",
                "must be at least the memory limit (it counts memory plus swap)");
  pids = json_get (v, "pids");
  if (want_object (c, pids, "linux.resources.pids") < 0
      || opt_int (c, pids, "linux.resources.pids", "limit", -1, INT64_MAX, &r->has_pids_limit,
                  (long long *)&r->pids_limit)
             < 0)
    return -1;
  if (r->has_pids_limit && r->pids_limit == 0)
    r->has_pids_limit = false;
  cpu = json_get (v, "cpu");
  has = false;
  if (want_object (c, cpu, "linux.resources.cpu") < 0
      || opt_u64 (c, cpu, "linux.resources.cpu", "shares", &has, &r->cpu_shares) < 0
      || opt_int (c, cpu, "linux.resources.cpu", "quota", -1, INT64_MAX, &has,
                  (long long *)&r->cpu_quota)
             < 0
      || opt_u64 (c, cpu, "linux.resources.cpu", "period", &has, &r->cpu_period) < 0
      || opt_string (c, cpu, "linux.resources.cpu", "cpus", false, &r->cpus) < 0
      || opt_string (c, cpu, "linux.resources.cpu", "mems", false, &r->mems) < 0)
    return -1;
  if (r->cpu_shares && (r->cpu_shares < 2 || r->cpu_shares > 262144))
    return bad (c, "linux.resources.cpu.shares", "%llu is out of range [2, 262144]",
                (unsigned long long)r->cpu_shares);
  if (r->cpu_period && (r->cpu_period < 1000 || r->cpu_period > 1000000))
    return bad (c, "linux.resources.cpu.period", "%llu is out of range [1000, 1000000]",
                (unsigned long long)r->cpu_period);
  if (r->cpu_quota > 0 && r->cpu_quota < 1000)
    return bad (c, "linux.resources.cpu.quota", "%lld is below the kernel's minimum of 1000",
                (long long)r->cpu_quota);
  blkio = json_get (v, "blockIO");
  has = false;
  if (want_object (c, blkio, "linux.resources.blockIO") < 0
      || opt_u64 (c, blkio, "linux.resources.blockIO", "weight", &has, &r->blkio_weight) < 0)
    return -1;
  if (r->blkio_weight && (r->blkio_weight < 10 || r->blkio_weight > 1000))
    return bad (c, "linux.resources.blockIO.weight", "%llu is out of range [10, 1000]",
                (unsigned long long)r->blkio_weight);
  if (parse_device_rules (c, v, r) < 0)
    return -1;
  unified = json_get (v, "unified");
  if (want_object (c, unified, "linux.resources.unified") < 0)
    return -1;
  r->n_unified = json_object_len (unified);
  r->unified_keys = xmalloc0 ((r->n_unified + 1) * sizeof (char *));
  r->unified_values = xmalloc0 ((r->n_unified + 1) * sizeof (char *));
  for (size_t i = 0; i < r->n_unified; i++)
    {
      const char *key = json_object_key (unified, i);
      json_value *val = json_object_value (unified, i);
      _cleanup_free_ char *pk = xasprintf ("linux.resources.unified.%s", key);
      if (!json_is_string (val))
        return wrong_type (c, pk, "a string", val);
      if (strchr (key, '/') || key[0] == '.' || strchr (key, '.') == NULL)
        return bad (c, pk, "not a cgroup v2 file name");
      r->unified_keys[i] = xstrdup (key);
      r->unified_values[i] = xstrdup (json_string (val));
    }
  return 0;
}

static int
parse_resources (struct ctx *c, const json_value *linux_, struct spec *s)
{
  return parse_resources_value (c, json_get (linux_, "resources"), &s->resources);
}

/* ---- seccomp ---- */

static int
parse_seccomp_args (struct ctx *c, const json_value *e, const char *pi,
                    struct spec_seccomp_rule *rule)
{
  json_value *args = json_get (e, "args");
  _cleanup_free_ char *pa = sub (pi, "args");
  if (want_array (c, args, pa, 6) < 0)
    return -1;
  rule->n_args = json_array_len (args);
  rule->args = xmalloc0 (rule->n_args * sizeof *rule->args);
  for (size_t k = 0; k < rule->n_args; k++)
    {
      json_value *a = json_array_get (args, k);
      _cleanup_free_ char *pk = idx (pa, k);
      _cleanup_free_ char *op = NULL;
      long long index = -1;
      if (!json_is_object (a))
        return wrong_type (c, pk, "an object", a);
      if (opt_int (c, a, pk, "index", 0, 5, NULL, &index) < 0
          || opt_u64 (c, a, pk, "value", NULL, &rule->args[k].value) < 0
          || opt_u64 (c, a, pk, "valueTwo", NULL, &rule->args[k].value_two) < 0
          || opt_string (c, a, pk, "op", true, &op) < 0)
        return -1;
      if (index < 0)
        return bad (c, pk, "missing \"index\"");
      rule->args[k].index = index;
      rule->args[k].op = seccomp_op_parse (op);
      if (rule->args[k].op < 0)
        {
          _cleanup_free_ char *po = sub (pk, "op");
          return bad (c, po, "unknown operator \"%s\"", op);
        }
    }
  return 0;
}

static int
parse_seccomp_action (struct ctx *c, const json_value *obj, const char *path, const char *key,
                      uint32_t *ret)
{
  _cleanup_free_ char *name = NULL;
  _cleanup_free_ char *pk = sub (path, key);
  long long errno_ret = EPERM;
  bool has_errno = false;
  if (opt_string (c, obj, path, key, true, &name) < 0)
    return -1;
  if (opt_int (c, obj, path, strcmp (key, "defaultAction") == 0 ? "defaultErrnoRet" : "errnoRet", 0,
               4095, &has_errno, &errno_ret)
      < 0)
    return -1;
  if (seccomp_action_parse (name, errno_ret, ret) < 0)
    return bad (c, pk, "unknown action \"%s\"", name);
  return 0;
}

static int
parse_seccomp (struct ctx *c, const json_value *linux_, struct spec *s)
{
  json_value *v = json_get (linux_, "seccomp");
  json_value *syscalls;
  struct spec_seccomp *sc;
  _cleanup_strv_ char **archs = NULL, **flags = NULL;
  if (want_object (c, v, "linux.seccomp") < 0)
    return -1;
  if (v == NULL || json_is_null (v))
    return 0;
  sc = s->seccomp = xmalloc0 (sizeof *sc);
  if (parse_seccomp_action (c, v, "linux.seccomp", "defaultAction", &sc->default_action) < 0
      || opt_strv (c, v, "linux.seccomp", "architectures", 32, &archs) < 0
      || opt_strv (c, v, "linux.seccomp", "flags", 8, &flags) < 0)
    return -1;
  sc->n_archs = strv_length (archs);
  sc->archs = xmalloc0 (sc->n_archs * sizeof *sc->archs);
  for (size_t i = 0; i < sc->n_archs; i++)
    if (seccomp_arch_parse (archs[i], &sc->archs[i]) < 0)
      {
        _cleanup_free_ char *pi = idx ("linux.seccomp.architectures", i);
        return bad (c, pi, "unknown architecture \"%s\"", archs[i]);
      }
  for (size_t i = 0; flags && flags[i]; i++)
    if (seccomp_flag_parse (flags[i], &sc->flags) < 0)
      {
        _cleanup_free_ char *pi = idx ("linux.seccomp.flags", i);
        return bad (c, pi, "unknown flag \"%s\"", flags[i]);
      }
  syscalls = json_get (v, "syscalls");
  if (want_array (c, syscalls, "linux.seccomp.syscalls", 4096) < 0)
    return -1;
  sc->n_rules = json_array_len (syscalls);
  sc->rules = xmalloc0 (sc->n_rules * sizeof *sc->rules);
  for (size_t i = 0; i < sc->n_rules; i++)
    {
      json_value *e = json_array_get (syscalls, i);
      _cleanup_free_ char *pi = idx ("linux.seccomp.syscalls", i);
      if (!json_is_object (e))
        return wrong_type (c, pi, "an object", e);
      if (opt_strv (c, e, pi, "names", 1024, &sc->rules[i].names) < 0
          || parse_seccomp_action (c, e, pi, "action", &sc->rules[i].action) < 0
          || parse_seccomp_args (c, e, pi, &sc->rules[i]) < 0)
        return -1;
      if (sc->rules[i].names == NULL || sc->rules[i].names[0] == NULL)
        return bad (c, pi, "has no syscall names");
    }
  return 0;
}

/* ---- hooks, annotations ---- */

static int
parse_hooks (struct ctx *c, const json_value *doc, struct spec *s)
{
  json_value *hooks = json_get (doc, "hooks");
  if (want_object (c, hooks, "hooks") < 0)
    return -1;
  for (int k = 0; k < HOOK_KINDS; k++)
    {
      json_value *v = json_get (hooks, spec_hook_names[k]);
      _cleanup_free_ char *pk = xasprintf ("hooks.%s", spec_hook_names[k]);
      if (want_array (c, v, pk, 64) < 0)
        return -1;
      s->n_hooks[k] = json_array_len (v);
      s->hooks[k] = xmalloc0 (s->n_hooks[k] * sizeof (struct spec_hook));
      for (size_t i = 0; i < s->n_hooks[k]; i++)
        {
          json_value *e = json_array_get (v, i);
          struct spec_hook *h = &s->hooks[k][i];
          _cleanup_free_ char *pi = idx (pk, i);
          long long timeout = 0;
          if (!json_is_object (e))
            return wrong_type (c, pi, "an object", e);
          if (opt_string (c, e, pi, "path", true, &h->path) < 0
              || opt_strv (c, e, pi, "args", 4096, &h->args) < 0
              || opt_strv (c, e, pi, "env", 4096, &h->env) < 0
              || opt_int (c, e, pi, "timeout", 1, INT32_MAX, NULL, &timeout) < 0)
            return -1;
          if (h->path[0] != '/')
            {
              _cleanup_free_ char *pp = sub (pi, "path");
              return bad (c, pp, "\"%s\" is not an absolute path", h->path);
            }
          h->timeout = timeout;
        }
    }
  return 0;
}

static int
parse_annotations (struct ctx *c, const json_value *doc, struct spec *s)
{
  json_value *v = json_get (doc, "annotations");
  if (want_object (c, v, "annotations") < 0)
    return -1;
  s->n_annotations = json_object_len (v);
  s->annotation_keys = xmalloc0 ((s->n_annotations + 1) * sizeof (char *));
  s->annotation_values = xmalloc0 ((s->n_annotations + 1) * sizeof (char *));
  for (size_t i = 0; i < s->n_annotations; i++)
    {
      json_value *val = json_object_value (v, i);
      if (!json_is_string (val))
        {
          _cleanup_free_ char *pk = xasprintf ("annotations.%s", json_object_key (v, i));
          return wrong_type (c, pk, "a string", val);
        }
      s->annotation_keys[i] = xstrdup (json_object_key (v, i));
      s->annotation_values[i] = xstrdup (json_string (val));
    }
  return 0;
}

/* linux.memoryPolicy: {"mode": "MPOL_BIND", "nodes": "0-1,3", "flags": ["MPOL_F_STATIC_NODES"]} */
static int
parse_memory_policy (struct ctx *c, const json_value *linux_, struct spec *s)
{
  static const struct
  {
    const char *name;
    int value;
    bool nodes; /* takes a node list */
  } modes[] = {
    { "MPOL_DEFAULT", 0, false },
    { "MPOL_PREFERRED", 1, true },
    { "MPOL_BIND", 2, true },
    { "MPOL_INTERLEAVE", 3, true },
    { "MPOL_LOCAL", 4, false },
    { "MPOL_PREFERRED_MANY", 5, true },
    { "MPOL_WEIGHTED_INTERLEAVE", 6, true },
  };
  static const struct
  {
    const char *name;
    int value;
  } flags[] = {
    { "MPOL_F_NUMA_BALANCING", 1 << 13 },
    { "MPOL_F_RELATIVE_NODES", 1 << 14 },
    { "MPOL_F_STATIC_NODES", 1 << 15 },
  };
  json_value *v = json_get (linux_, "memoryPolicy");
  _cleanup_free_ char *mode = NULL, *nodes = NULL;
  _cleanup_strv_ char **fl = NULL;
  size_t m;
  if (v == NULL || json_is_null (v))
    return 0;
  if (want_object (c, v, "linux.memoryPolicy") < 0
      || opt_string (c, v, "linux.memoryPolicy", "mode", true, &mode) < 0
      || opt_string (c, v, "linux.memoryPolicy", "nodes", false, &nodes) < 0
      || opt_strv (c, v, "linux.memoryPolicy", "flags", 8, &fl) < 0)
    return -1;
  for (m = 0; m < ARRAY_SIZE (modes); m++)
    if (strcmp (mode, modes[m].name) == 0)
      break;
  if (m == ARRAY_SIZE (modes))
    return bad (c, "linux.memoryPolicy.mode", "unknown mode \"%s\"", mode);
  s->has_mempolicy = true;
  s->mempolicy_mode = modes[m].value;
  for (char **f = fl; f && *f; f++)
    {
      size_t i;
      for (i = 0; i < ARRAY_SIZE (flags); i++)
        if (strcmp (*f, flags[i].name) == 0)
          break;
      if (i == ARRAY_SIZE (flags))
        return bad (c, "linux.memoryPolicy.flags", "unknown flag \"%s\"", *f);
      s->mempolicy_mode |= flags[i].value;
    }
  if (nodes && nodes[0] && !modes[m].nodes)
    return bad (c, "linux.memoryPolicy.nodes", "%s takes no nodes", mode);
  if ((nodes == NULL || nodes[0] == '\0') && modes[m].nodes && m != 1)
    return bad (c, "linux.memoryPolicy.nodes", "%s needs nodes", mode);
  if (nodes == NULL || nodes[0] == '\0')
    return 0;
  /* a list of node numbers and ranges: "0-3,5" */
  for (const char *p = nodes; *p;)
    {
      char *end;
      unsigned long a, b;
      if (*p < '0' || *p > '9')
        return bad (c, "linux.memoryPolicy.nodes", "\"%s\" is not a list of nodes", nodes);
      a = b = strtoul (p, &end, 10);
      if (*end == '-')
        {
          if (end[1] < '0' || end[1] > '9')
            return bad (c, "linux.memoryPolicy.nodes", "\"%s\" is not a list of nodes", nodes);
          b = strtoul (end + 1, &end, 10);
        }
      if (a > b || b >= SPEC_MAX_NUMA_NODES)
        return bad (c, "linux.memoryPolicy.nodes", "\"%s\": nodes are 0 to %d, low-high", nodes,
                    SPEC_MAX_NUMA_NODES - 1);
      for (unsigned long n = a; n <= b; n++)
        s->mempolicy_nodes[n / (8 * sizeof (unsigned long))]
            |= 1UL << (n % (8 * sizeof (unsigned long)));
      if (*end == ',' && end[1] != '\0')
        end++;
      else if (*end != '\0')
        return bad (c, "linux.memoryPolicy.nodes", "\"%s\" is not a list of nodes", nodes);
      p = end;
    }
  s->mempolicy_has_nodes = true;
  return 0;
}

static int
parse_linux (struct ctx *c, const json_value *doc, struct spec *s)
{
  json_value *l = json_get (doc, "linux");
  _cleanup_free_ char *prop = NULL;
  if (want_object (c, l, "linux") < 0)
    return -1;
  if (parse_namespaces (c, l, s) < 0
      || parse_idmaps (c, l, "uidMappings", &s->uid_mappings, &s->n_uid_mappings) < 0
      || parse_idmaps (c, l, "gidMappings", &s->gid_mappings, &s->n_gid_mappings) < 0
      || opt_strv (c, l, "linux", "maskedPaths", 1024, &s->masked_paths) < 0
      || opt_strv (c, l, "linux", "readonlyPaths", 1024, &s->readonly_paths) < 0
      || parse_devices (c, l, s) < 0 || parse_sysctl (c, l, s) < 0 || parse_resources (c, l, s) < 0
      || parse_seccomp (c, l, s) < 0 || parse_memory_policy (c, l, s) < 0
      || opt_string (c, l, "linux", "cgroupsPath", false, &s->cgroups_path) < 0
      || opt_string (c, l, "linux", "rootfsPropagation", false, &prop) < 0)
    return -1;
  if (prop)
    {
      const struct mount_opt *f
          = find_opt (propagation_flags, ARRAY_SIZE (propagation_flags), prop);
      if (f == NULL)
        return bad (c, "linux.rootfsPropagation", "unknown propagation \"%s\"", prop);
      s->rootfs_propagation = f->flag;
    }
  for (char **p = s->masked_paths; p && *p; p++)
    if ((*p)[0] != '/')
      return bad (c, "linux.maskedPaths", "\"%s\" is not an absolute path", *p);
  for (char **p = s->readonly_paths; p && *p; p++)
    if ((*p)[0] != '/')
      return bad (c, "linux.readonlyPaths", "\"%s\" is not an absolute path", *p);
  return 0;
}

/* As runc and crun: a sysctl is set only where the container has a namespace of its own for it,
   never on the host's kernel. */
static int
check_sysctl (struct ctx *c, const struct spec *s, const char *key)
{
  static const char *const ipc[]
      = { "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
          "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced" };
  _cleanup_free_ char *pk = xasprintf ("linux.sysctl.%s", key);
  bool is_ipc = strncmp (key, "fs.mqueue.", strlen ("fs.mqueue.")) == 0;
  bool uts = spec_namespace (s, CLONE_NEWUTS) != NULL;
  for (size_t i = 0; i < ARRAY_SIZE (ipc); i++)
    if (strcmp (key, ipc[i]) == 0)
      is_ipc = true;
  if (is_ipc)
    return spec_namespace (s, CLONE_NEWIPC)
               ? 0
               : bad (c, pk, "an ipc sysctl needs an ipc namespace (add {\"type\": \"ipc\"})");
  if (strncmp (key, "net.", 4) == 0)
    return spec_namespace (s, CLONE_NEWNET)
               ? 0
               : bad (c, pk,
                      "a net sysctl needs a network namespace (add {\"type\": \"network\"})");
  if (strcmp (key, "kernel.domainname") == 0)
    return uts ? 0 : bad (c, pk, "needs a uts namespace (add {\"type\": \"uts\"})");
  if (strcmp (key, "kernel.hostname") == 0 && uts)
    return bad (c, pk, "conflicts with the \"hostname\" field: set that instead");
  return bad (c, pk, "not in a namespace of the container's: it would change the host");
}

static int
check_consistency (struct ctx *c, struct spec *s)
{
  const struct spec_namespace *user = spec_namespace (s, CLONE_NEWUSER);
  if (user && user->path == NULL && (s->n_uid_mappings == 0 || s->n_gid_mappings == 0))
    return bad (c, "linux.uidMappings", "a new user namespace needs uidMappings and gidMappings");
  if (user == NULL && (s->n_uid_mappings || s->n_gid_mappings))
    return bad (c, "linux.uidMappings", "mappings given without a user namespace");
  if (s->hostname && s->hostname[0] && spec_namespace (s, CLONE_NEWUTS) == NULL)
    return bad (c, "hostname", "setting a hostname needs a uts namespace");
  if (s->hostname && strlen (s->hostname) > 64)
    return bad (c, "hostname", "longer than 64 characters");
  if (s->domainname && strlen (s->domainname) > 64)
    return bad (c, "domainname", "longer than 64 characters");
  for (size_t i = 0; i < s->n_sysctl; i++)
    if (check_sysctl (c, s, s->sysctl_keys[i]) < 0)
      return -1;
  for (size_t i = 0; i < s->n_mounts; i++)
    if (s->mounts[i].idmap && s->mounts[i].n_uid_mappings == 0 && user == NULL)
      {
        _cleanup_free_ char *pi = idx ("mounts", i);
        return bad (c, pi,
                    "an idmapped mount without uidMappings of its own needs a user namespace");
      }
  return 0;
}

/* Every string of a spec is used as a C string: one with a NUL would be cut short there. */
static int
refuse_nul (const json_value *doc, const char *what, capsule_error **err)
{
  if (!json_has_nul (doc))
    return 0;
  return capsule_error_make (err, EINVAL,
                             "%s: a string holds \\u0000 (NUL), which no path, name, argument or "
                             "value may",
                             what);
}

struct spec *
spec_parse (const char *text, const char *what, const char *bundle, capsule_error **err)
{
  _cleanup_json_ json_value *doc = json_parse (text, what, err);
  _cleanup_spec_ struct spec *s = NULL;
  struct ctx c = { what, err };
  json_value *proc;

  if (doc == NULL || refuse_nul (doc, what, err) < 0)
    return NULL;
  if (!json_is_object (doc))
    {
      capsule_error_make (err, 0, "%s: expected a JSON object, got %s", what, json_type_name (doc));
      return NULL;
    }
  s = xmalloc0 (sizeof *s);
  s->bundle = xstrdup (bundle);
  if (opt_string (&c, doc, "", "ociVersion", true, &s->oci_version) < 0)
    return NULL;
  if (strncmp (s->oci_version, "1.", 2) != 0)
    {
      bad (&c, "ociVersion", "version \"%s\" is not 1.x", s->oci_version);
      return NULL;
    }
  proc = json_get (doc, "process");
  if (proc == NULL || json_is_null (proc))
    {
      bad (&c, "process", "missing");
      return NULL;
    }
  if (parse_process_obj (&c, proc, &s->process) < 0 || parse_root (&c, doc, bundle, s) < 0
      || opt_string (&c, doc, "", "hostname", false, &s->hostname) < 0
      || opt_string (&c, doc, "", "domainname", false, &s->domainname) < 0
      || parse_mounts (&c, doc, s) < 0 || parse_linux (&c, doc, s) < 0
      || parse_hooks (&c, doc, s) < 0 || parse_annotations (&c, doc, s) < 0
      || check_consistency (&c, s) < 0)
    return NULL;
  return steal_pointer (&s);
}

struct spec *
spec_load (const char *bundle, capsule_error **err)
{
  _cleanup_free_ char *abs = realpath (bundle, NULL);
  _cleanup_free_ char *text = NULL;
  _cleanup_free_ char *path = NULL;
  size_t len = 0;
  if (abs == NULL)
    {
      capsule_error_make (err, errno, "bundle `%s`", bundle);
      return NULL;
    }
  path = xasprintf ("%s/config.json", abs);
  if (json_read_at (AT_FDCWD, path, SPEC_MAX_SIZE, "config.json", &text, &len, err) < 0)
    return NULL;
  if (len == 0)
    {
      capsule_error_make (err, 0, "config.json: empty file");
      return NULL;
    }
  return spec_parse (text, "config.json", abs, err);
}

struct spec_process *
spec_process_parse (const char *text, const char *what, capsule_error **err)
{
  _cleanup_json_ json_value *doc = json_parse (text, what, err);
  struct spec_process *p = NULL;
  struct ctx c = { what, err };
  if (doc == NULL || refuse_nul (doc, what, err) < 0)
    return NULL;
  if (parse_process_obj (&c, doc, &p) < 0)
    return NULL;
  return p;
}

struct spec_resources *
spec_resources_parse (const char *text, const char *what, capsule_error **err)
{
  _cleanup_json_ json_value *doc = json_parse (text, what, err);
  struct spec_resources *r = NULL;
  struct ctx c = { what, err };
  if (doc == NULL || refuse_nul (doc, what, err) < 0)
    return NULL;
  if (!json_is_object (doc))
    {
      capsule_error_make (err, 0, "%s: expected a JSON object, got %s", what, json_type_name (doc));
      return NULL;
    }
  if (parse_resources_value (&c, doc, &r) < 0)
    return spec_resources_free (r);
  return r;
}

struct spec_resources *
spec_resources_free (struct spec_resources *r)
{
  if (r == NULL)
    return NULL;
  free (r->cpus);
  free (r->mems);
  free (r->devices);
  strv_free (r->unified_keys);
  strv_free (r->unified_values);
  free (r);
  return NULL;
}

struct spec_process *
spec_process_free (struct spec_process *p)
{
  if (p == NULL)
    return NULL;
  strv_free (p->args);
  strv_free (p->env);
  free (p->cwd);
  free (p->additional_gids);
  free (p->rlimits);
  free (p);
  return NULL;
}

struct spec *
spec_free (struct spec *s)
{
  if (s == NULL)
    return NULL;
  free (s->oci_version);
  free (s->bundle);
  free (s->root_path);
  free (s->hostname);
  free (s->domainname);
  spec_process_free (s->process);
  for (size_t i = 0; i < s->n_mounts; i++)
    {
      free (s->mounts[i].destination);
      free (s->mounts[i].type);
      free (s->mounts[i].source);
      free (s->mounts[i].data);
      free (s->mounts[i].uid_mappings);
      free (s->mounts[i].gid_mappings);
    }
  free (s->mounts);
  for (size_t i = 0; i < s->n_namespaces; i++)
    free (s->namespaces[i].path);
  free (s->namespaces);
  free (s->uid_mappings);
  free (s->gid_mappings);
  strv_free (s->masked_paths);
  strv_free (s->readonly_paths);
  for (size_t i = 0; i < s->n_devices; i++)
    free (s->devices[i].path);
  free (s->devices);
  strv_free (s->sysctl_keys);
  strv_free (s->sysctl_values);
  if (s->seccomp)
    {
      for (size_t i = 0; i < s->seccomp->n_rules; i++)
        {
          strv_free (s->seccomp->rules[i].names);
          free (s->seccomp->rules[i].args);
        }
      free (s->seccomp->rules);
      free (s->seccomp->archs);
      free (s->seccomp);
    }
  spec_resources_free (s->resources);
  free (s->cgroups_path);
  for (int k = 0; k < HOOK_KINDS; k++)
    {
      for (size_t i = 0; i < s->n_hooks[k]; i++)
        {
          free (s->hooks[k][i].path);
          strv_free (s->hooks[k][i].args);
          strv_free (s->hooks[k][i].env);
        }
      free (s->hooks[k]);
    }
  strv_free (s->annotation_keys);
  strv_free (s->annotation_values);
  free (s);
  return NULL;
}

const struct spec_namespace *
spec_namespace (const struct spec *s, int type)
{
  for (size_t i = 0; i < s->n_namespaces; i++)
    if (s->namespaces[i].type == type)
      return &s->namespaces[i];
  return NULL;
}

const char *
spec_annotation (const struct spec *s, const char *key)
{
  for (size_t i = 0; i < s->n_annotations; i++)
    if (strcmp (s->annotation_keys[i], key) == 0)
      return s->annotation_values[i];
  return NULL;
}
