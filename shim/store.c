/* capsule-shim: each session's record on disk (STATE/sessions/ID/record.json), so a shim that
 * was killed or upgraded finds its sessions again.  Paths that are not UTF-8 (a file name the
 * sandbox made) are kept as hex, so the record always reads back. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "session.h"
#include "shim-util.h"
#include "utils.h"

#define RECORD_MAX (64u << 20)

int
store_save (struct session *se)
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
  if (se->context_key)
    json_w_kv_string (w, "context_key", se->context_key);
  json_w_key (w, "files");
  json_w_open_array (w);
  for (size_t i = 0; i < se->files.n; i++)
    {
      const struct cfile *f = se->files.v[i];
      json_w_open_object (w);
      json_w_kv_string (w, "id", f->id);
      if (json_utf8_valid (f->path))
        json_w_kv_string (w, "path", f->path);
      else
        {
          _cleanup_free_ char *hex = hex_encode_string (f->path);
          json_w_kv_string (w, "path_hex", hex);
        }
      json_w_kv_int (w, "bytes", f->bytes);
      json_w_kv_int (w, "created_at", f->created_at);
      json_w_kv_bool (w, "from_user", f->from_user);
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
  return 0;
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
      const char *hex = json_string (json_get (f, "path_hex"));
      _cleanup_free_ char *raw = NULL;
      struct cfile *c;
      if (path == NULL && hex)
        path = raw = hex_decode_string (hex);
      if (!shim_id_valid (id, "cfile_") || path == NULL)
        continue;
      c = files_register (&se->files, path, get_int (f, "bytes"),
                          json_is_bool (json_get (f, "from_user"))
                              && json_bool (json_get (f, "from_user")));
      if (c == NULL || files_set_id (&se->files, c, id) < 0)
        continue;
      c->created_at = get_int (f, "created_at");
    }
}

/* A session from its record; record_broken when the record does not read (the caller ends it
   honestly). */
struct session *
store_load (struct sessions *ss, const char *dir, const char *id)
{
  _cleanup_free_ char *path = xasprintf ("%s/record.json", dir), *text = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_ json_value *doc = NULL;
  const struct tier *tier = NULL;
  struct session *se = session_alloc (ss, id, NULL, SESSION_RUNNING);
  const char *why = NULL;
  (void)dir;
  size_t len;
  if (read_file_at (AT_FDCWD, path, RECORD_MAX, &text, &len, &err) < 0
      || (doc = json_parse_n (text, len, JSON_NUL_REFUSE, path, &err)) == NULL)
    why = err->msg;
  else if ((tier = tiers_find (ss->tiers, json_string (json_get (doc, "tier")))) == NULL)
    why = "the record names no known tier";
  else if (strcmp (json_string (json_get (doc, "id")) ?: "", id) != 0)
    why = "the record names another container";
  free (se->name);
  free (se->tenant);
  se->name = xstrdup (doc ? json_string (json_get (doc, "name")) ?: "" : "");
  se->tenant = xstrdup (doc ? json_string (json_get (doc, "tenant")) ?: "default" : "");
  se->tier = tier ? tier : tiers_find (ss->tiers, ss->tiers->default_tier);
  if (why)
    {
      fprintf (stderr, "capsule-shim: %s: %s: it cannot be taken up; expired\n", id, why);
      se->record_broken = true;
      return se;
    }
  if (doc && json_string (json_get (doc, "context_key")))
    se->context_key = xstrdup (json_string (json_get (doc, "context_key")));
  se->created_at = get_int (doc, "created_at");
  se->last_active_at = se->saved_active_at = get_int (doc, "last_active_at");
  se->expires_minutes = get_int (doc, "expires_minutes");
  load_files (se, json_get (doc, "files"));
  return se;
}
