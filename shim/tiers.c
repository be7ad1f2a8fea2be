/* capsule-shim: tiers and pools. */
#define _GNU_SOURCE
#include "tiers.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "json.h"
#include "utils.h"

static int
size_field (const json_value *obj, const char *what, const char *tier, const char *key,
            bool required, uint64_t *ret, capsule_error **err)
{
  json_value *v = json_get (obj, key);
  if (v == NULL)
    {
      if (required)
        return capsule_error_make (err, 0, "%s: tiers.%s.%s: missing", what, tier, key);
      return 0;
    }
  if (json_is_string (v) && parse_size (json_string (v), ret) == 0 && *ret > 0)
    return 0;
  if (json_is_integer (v) && json_integer (v) > 0)
    {
      *ret = json_integer (v);
      return 0;
    }
  return capsule_error_make (err, 0, "%s: tiers.%s.%s: expected a positive size like \"1g\"", what,
                             tier, key);
}

static int
parse_tier (const json_value *obj, const char *what, const char *name, struct tier *t,
            capsule_error **err)
{
  if (!json_is_object (obj))
    return capsule_error_make (err, 0, "%s: tiers.%s: expected an object", what, name);
  t->name = xstrdup (name);
  t->pids = 1024;
  t->cpu_shares = 1024;
  t->nofile = 1024;
  t->tmp = 256 << 20;
  if (size_field (obj, what, name, "memory", true, &t->memory, err) < 0
      || size_field (obj, what, name, "workspace", true, &t->workspace, err) < 0
      || size_field (obj, what, name, "tmp", false, &t->tmp, err) < 0
      || size_field (obj, what, name, "pids", false, &t->pids, err) < 0
      || size_field (obj, what, name, "cpu_shares", false, &t->cpu_shares, err) < 0
      || size_field (obj, what, name, "nofile", false, &t->nofile, err) < 0)
    return -1;
  if (t->memory < (16 << 20))
    return capsule_error_make (err, 0, "%s: tiers.%s.memory: below 16m", what, name);
  if (t->cpu_shares < 2 || t->cpu_shares > 262144)
    return capsule_error_make (err, 0, "%s: tiers.%s.cpu_shares: out of range [2, 262144]", what,
                               name);
  return 0;
}

static bool
module_name_ok (const char *s)
{
  /* dotted identifiers, as the executor checks them again */
  size_t part = 0, parts = 1;
  if (strlen (s) > 200)
    return false;
  for (const char *p = s; *p; p++)
    {
      if (*p == '.')
        {
          if (part == 0 || ++parts > 8)
            return false;
          part = 0;
          continue;
        }
      if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (part > 0 && *p >= '0' && *p <= '9'))
          || ++part > 64)
        return false;
    }
  return part > 0;
}

static int
parse_prime (const json_value *doc, const char *what, struct tiers *t, capsule_error **err)
{
  json_value *prime = json_get (doc, "prime"), *mods, *plot;
  size_t n;
  t->prime_min_available = 2ULL << 30;
  if (prime == NULL)
    return 0;
  if (!json_is_object (prime))
    return capsule_error_make (err, 0, "%s: prime: expected an object", what);
  mods = json_get (prime, "modules");
  n = mods ? json_array_len (mods) : 0;
  if (mods && (!json_is_array (mods) || n > 32))
    return capsule_error_make (err, 0, "%s: prime.modules: expected at most 32 module names", what);
  t->prime_modules = xmalloc0 ((n + 1) * sizeof (char *));
  for (size_t i = 0; i < n; i++)
    {
      const char *m = json_string (json_array_get (mods, i));
      if (m == NULL || !module_name_ok (m))
        return capsule_error_make (err, 0, "%s: prime.modules[%zu]: not a dotted module name", what,
                                   i);
      t->prime_modules[i] = xstrdup (m);
    }
  plot = json_get (prime, "plot");
  if (plot && !json_is_bool (plot))
    return capsule_error_make (err, 0, "%s: prime.plot: expected true or false", what);
  t->prime_plot = plot && json_bool (plot);
  return size_field (prime, what, "-", "min_available", false, &t->prime_min_available, err);
}

int
tiers_parse (const char *text, const char *what, struct tiers *ret, capsule_error **err)
{
  _cleanup_json_ json_value *doc = json_parse_n (text, strlen (text), JSON_NUL_REFUSE, what, err);
  json_value *tiers, *def;
  struct tiers t = { 0 };
  if (doc == NULL)
    return -1;
  tiers = json_get (doc, "tiers");
  if (!json_is_object (tiers) || json_object_len (tiers) == 0)
    return capsule_error_make (err, 0, "%s: \"tiers\" must be an object of tiers", what);
  if (json_object_len (tiers) > TIERS_MAX)
    return capsule_error_make (err, 0, "%s: more than %d tiers", what, TIERS_MAX);
  for (size_t i = 0; i < json_object_len (tiers); i++)
    {
      if (parse_tier (json_object_value (tiers, i), what, json_object_key (tiers, i), &t.tier[i],
                      err)
          < 0)
        {
          t.n = i + 1;
          tiers_release (&t);
          return -1;
        }
      t.n = i + 1;
    }
  def = json_get (doc, "default");
  t.default_tier = xstrdup (json_string (def) ? json_string (def) : t.tier[0].name);
  if (tiers_find (&t, t.default_tier) == NULL)
    {
      capsule_error_make (err, 0, "%s: default: no tier \"%s\"", what, t.default_tier);
      tiers_release (&t);
      return -1;
    }
  t.pool = 64ULL << 30;
  t.checkpoint_after_s = 300;
  if (size_field (doc, what, "-", "tenant_pool", false, &t.pool, err) < 0
      || size_field (doc, what, "-", "checkpoint_after_seconds", false, &t.checkpoint_after_s, err)
             < 0
      || parse_prime (doc, what, &t, err) < 0)
    {
      tiers_release (&t);
      return -1;
    }
  *ret = t;
  return 0;
}

int
tiers_load (const char *path, struct tiers *ret, capsule_error **err)
{
  _cleanup_free_ char *text = NULL;
  if (json_read_at (AT_FDCWD, path, 1 << 20, path, &text, NULL, err) < 0)
    return capsule_error_wrap (err, "tiers");
  return tiers_parse (text, path, ret, err);
}

void
tiers_release (struct tiers *t)
{
  for (size_t i = 0; i < t->n; i++)
    free (t->tier[i].name);
  free (t->default_tier);
  strv_free (t->prime_modules);
  memset (t, 0, sizeof *t);
}

const struct tier *
tiers_find (const struct tiers *t, const char *name)
{
  for (size_t i = 0; name && i < t->n; i++)
    if (strcmp (t->tier[i].name, name) == 0)
      return &t->tier[i];
  return NULL;
}

char *
tiers_names (const struct tiers *t)
{
  size_t len = 1;
  char *out;
  for (size_t i = 0; i < t->n; i++)
    len += strlen (t->tier[i].name) + 2;
  out = xmalloc0 (len);
  for (size_t i = 0; i < t->n; i++)
    {
      if (i)
        strcat (out, ", ");
      strcat (out, t->tier[i].name);
    }
  return out;
}

char *
format_size (uint64_t b)
{
  static const char units[] = "kmgt";
  for (int i = 3; i >= 0; i--)
    {
      uint64_t u = 1ULL << (10 * (i + 1));
      if (b >= u)
        {
          if (b % u == 0)
            return xasprintf ("%llu%c", (unsigned long long)(b / u), units[i]);
          if (b * 10 % u == 0)
            return xasprintf ("%.1f%c", (double)b / u, units[i]);
        }
    }
  return xasprintf ("%llu", (unsigned long long)b);
}

static struct pool_entry *
pool_entry (struct pools *p, const char *tenant, bool create)
{
  for (size_t i = 0; i < p->n; i++)
    if (strcmp (p->e[i].tenant, tenant) == 0)
      return &p->e[i];
  if (!create)
    return NULL;
  p->e = realloc (p->e, (p->n + 1) * sizeof *p->e);
  if (p->e == NULL)
    abort ();
  p->e[p->n] = (struct pool_entry){ xstrdup (tenant), 0, p->default_total };
  return &p->e[p->n++];
}

int
pools_charge (struct pools *p, const char *tenant, uint64_t bytes, capsule_error **err)
{
  struct pool_entry *e = pool_entry (p, tenant, true);
  if (e->used + bytes > e->total)
    {
      _cleanup_free_ char *used = format_size (e->used), *req = format_size (bytes),
                          *total = format_size (e->total);
      return capsule_error_make (err, 0,
                                 "tenant \"%s\" memory pool exhausted: %s in use + %s requested "
                                 "> %s pool",
                                 tenant, used, req, total);
    }
  e->used += bytes;
  return 0;
}

void
pools_credit (struct pools *p, const char *tenant, uint64_t bytes)
{
  struct pool_entry *e = pool_entry (p, tenant, false);
  if (e)
    e->used = e->used > bytes ? e->used - bytes : 0;
}

const struct pool_entry *
pools_get (struct pools *p, const char *tenant)
{
  return pool_entry (p, tenant, false);
}

void
pools_release (struct pools *p)
{
  for (size_t i = 0; i < p->n; i++)
    free (p->e[i].tenant);
  free (p->e);
  p->e = NULL;
  p->n = 0;
}
