/* capsule-gateway: the Files API's store, one directory per tenant under the state directory:
 * ID.data (the bytes) and ID.json (what the API shows).  An upload streams into a hidden file
 * beside them and becomes a file only whole: renamed into place, then its record written
 * atomically; the record's presence is what makes it exist. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
#include "shim-util.h"
#include "utils.h"

#define FSTORE_FILES_MAX  10000 /* per tenant */
#define FSTORE_RECORD_MAX 16384

void
fobject_free (struct fobject *o)
{
  if (o == NULL)
    return;
  free (o->filename);
  free (o->purpose);
  free (o);
}

static char *
tenant_dir (struct fstore *s, const char *tenant)
{
  return xasprintf ("%s/%s", s->dir, tenant);
}

/* What a gateway that died midway left behind: hidden uploads, and bytes without a record. */
static void
sweep (struct fstore *s)
{
  DIR *d = opendir (s->dir);
  struct dirent *t;
  if (d == NULL)
    return;
  while ((t = readdir (d)))
    {
      int tfd;
      DIR *td;
      struct dirent *f;
      if (t->d_name[0] == '.')
        continue;
      tfd = openat (dirfd (d), t->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (tfd < 0 || (td = fdopendir (tfd)) == NULL)
        {
          if (tfd >= 0)
            close (tfd);
          continue;
        }
      while ((f = readdir (td)))
        {
          size_t l = strlen (f->d_name);
          if (strncmp (f->d_name, ".upload-", 8) == 0)
            unlinkat (dirfd (td), f->d_name, 0);
          else if (l > 5 && strcmp (f->d_name + l - 5, ".data") == 0)
            {
              /* bytes whose record never came (or went first, on a delete) */
              _cleanup_free_ char *rec = xasprintf ("%.*s.json", (int)(l - 5), f->d_name);
              struct stat st;
              if (fstatat (dirfd (td), rec, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
                unlinkat (dirfd (td), f->d_name, 0);
            }
        }
      closedir (td);
    }
  closedir (d);
}

int
fstore_init (struct fstore *s, const char *state_dir, uint64_t quota, capsule_error **err)
{
  s->dir = xasprintf ("%s/files", state_dir);
  s->quota = quota;
  pthread_mutex_init (&s->lock, NULL);
  if (mkdir_p (s->dir, 0700, err) < 0)
    return -1;
  sweep (s);
  return 0;
}

int
fstore_begin (struct fstore *s, const char *tenant, struct fupload *u, capsule_error **err)
{
  _cleanup_free_ char *dir = tenant_dir (s, tenant);
  memset (u, 0, sizeof *u);
  u->fd = -1;
  if (mkdir_p (dir, 0700, err) < 0)
    return -1;
  u->tmp_path = xasprintf ("%s/.upload-XXXXXX", dir);
  u->fd = mkostemp (u->tmp_path, O_CLOEXEC);
  if (u->fd < 0)
    {
      int e = errno;
      free (u->tmp_path);
      u->tmp_path = NULL;
      return capsule_error_make (err, e, "create an upload file in %s", dir);
    }
  u->tenant = xstrdup (tenant);
  return 0;
}

void
fstore_abort (struct fupload *u)
{
  if (u->fd >= 0)
    close (u->fd);
  if (u->tmp_path)
    unlink (u->tmp_path);
  free (u->tmp_path);
  free (u->tenant);
  memset (u, 0, sizeof *u);
  u->fd = -1;
}

void
w_fobject (json_writer *w, const struct fobject *o)
{
  json_w_open_object (w);
  json_w_kv_string (w, "id", o->id);
  json_w_kv_string (w, "object", "file");
  json_w_kv_int (w, "bytes", o->bytes);
  json_w_kv_int (w, "created_at", o->created_at);
  json_w_kv_string (w, "filename", o->filename);
  json_w_kv_string (w, "purpose", o->purpose);
  json_w_kv_string (w, "status", "processed");
  json_w_key (w, "expires_at");
  json_w_null (w);
  json_w_key (w, "status_details");
  json_w_null (w);
  json_w_close_object (w);
}

char *
fobject_json (const struct fobject *o)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  w_fobject (w, o);
  return xstrdup (json_writer_text (w, NULL));
}

static char *
record_json (const struct fobject *o)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  json_w_open_object (w);
  json_w_kv_string (w, "id", o->id);
  json_w_kv_string (w, "filename", o->filename);
  json_w_kv_string (w, "purpose", o->purpose);
  json_w_kv_int (w, "created_at", o->created_at);
  json_w_kv_int (w, "seq", (long long)o->seq);
  json_w_kv_int (w, "bytes", (long long)o->bytes);
  json_w_close_object (w);
  return xstrdup (json_writer_text (w, NULL));
}

static struct fobject *
read_record (int dfd, const char *name)
{
  _cleanup_free_ char *text = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_ json_value *doc = NULL;
  struct fobject *o;
  size_t len;
  const char *id, *fn, *purpose;
  if (read_file_at (dfd, name, FSTORE_RECORD_MAX, &text, &len, &err) < 0
      || (doc = json_parse_n (text, len, JSON_NUL_REFUSE, name, &err)) == NULL)
    return NULL;
  id = json_string (json_get (doc, "id"));
  fn = json_string (json_get (doc, "filename"));
  purpose = json_string (json_get (doc, "purpose"));
  if (id == NULL || fn == NULL || purpose == NULL || !shim_id_valid (id, "file-"))
    return NULL;
  o = xmalloc0 (sizeof *o);
  strcpy (o->id, id);
  o->filename = xstrdup (fn);
  o->purpose = xstrdup (purpose);
  o->created_at = json_integer (json_get (doc, "created_at"));
  o->seq = json_integer (json_get (doc, "seq"));
  o->bytes = json_integer (json_get (doc, "bytes"));
  return o;
}

static int
cmp_seq (const void *a, const void *b)
{
  const struct fobject *x = *(struct fobject *const *)a, *y = *(struct fobject *const *)b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
list_locked (struct fstore *s, const char *tenant, struct fobject ***ret, size_t *ret_n)
{
  _cleanup_free_ char *dir = tenant_dir (s, tenant);
  DIR *d = opendir (dir);
  struct dirent *f;
  struct fobject **v = NULL;
  size_t n = 0;
  if (d == NULL)
    {
      *ret = NULL;
      *ret_n = 0;
      return errno == ENOENT ? 0 : -1;
    }
  while ((f = readdir (d)))
    {
      size_t l = strlen (f->d_name);
      struct fobject *o;
      if (f->d_name[0] == '.' || l < 6 || strcmp (f->d_name + l - 5, ".json") != 0)
        continue;
      if ((o = read_record (dirfd (d), f->d_name)) == NULL)
        continue;
      v = xrealloc (v, (n + 1) * sizeof *v);
      v[n++] = o;
    }
  closedir (d);
  qsort (v, n, sizeof *v, cmp_seq);
  *ret = v;
  *ret_n = n;
  return 0;
}

int
fstore_list (struct fstore *s, const char *tenant, struct fobject ***ret, size_t *ret_n)
{
  int r;
  pthread_mutex_lock (&s->lock);
  r = list_locked (s, tenant, ret, ret_n);
  pthread_mutex_unlock (&s->lock);
  return r;
}

int
fstore_commit (struct fstore *s, struct fupload *u, const char *filename, const char *purpose,
               struct fobject **ret, capsule_error **err)
{
  _cleanup_free_ char *dir = tenant_dir (s, u->tenant);
  _cleanup_free_ char *id = shim_new_id ("file-");
  _cleanup_free_ char *data_path = NULL, *rec_path = NULL, *rec = NULL;
  struct fobject **all = NULL, *o;
  struct timespec now;
  uint64_t used = 0;
  size_t n = 0;
  int r = -1;

  pthread_mutex_lock (&s->lock);
  if (list_locked (s, u->tenant, &all, &n) < 0)
    {
      capsule_error_make (err, errno, "list %s", dir);
      goto out;
    }
  for (size_t i = 0; i < n; i++)
    used += all[i]->bytes;
  if (used + u->bytes > s->quota)
    {
      capsule_error_make (err, EDQUOT,
                          "the file of %llu bytes would take the tenant's files past their quota "
                          "of %llu bytes (%llu used)",
                          (unsigned long long)u->bytes, (unsigned long long)s->quota,
                          (unsigned long long)used);
      goto out;
    }
  if (n >= FSTORE_FILES_MAX)
    {
      capsule_error_make (err, EDQUOT, "the tenant holds %d files, the most it may",
                          FSTORE_FILES_MAX);
      goto out;
    }
  if (fsync (u->fd) < 0)
    {
      capsule_error_make (err, errno, "write the upload");
      goto out;
    }
  clock_gettime (CLOCK_REALTIME, &now);
  o = xmalloc0 (sizeof *o);
  strcpy (o->id, id);
  o->filename = xstrdup (filename);
  o->purpose = xstrdup (purpose);
  o->created_at = now.tv_sec;
  o->seq = (uint64_t)now.tv_sec * 1000000000u + now.tv_nsec;
  o->bytes = u->bytes;
  data_path = xasprintf ("%s/%s.data", dir, id);
  rec_path = xasprintf ("%s/%s.json", dir, id);
  rec = record_json (o);
  if (rename (u->tmp_path, data_path) < 0)
    {
      capsule_error_make (err, errno, "rename the upload into place");
      fobject_free (o);
      goto out;
    }
  free (u->tmp_path);
  u->tmp_path = NULL;
  if (write_file_atomic (rec_path, rec, strlen (rec), 0600, err) < 0)
    {
      unlink (data_path);
      fobject_free (o);
      goto out;
    }
  *ret = o;
  r = 0;
out:
  pthread_mutex_unlock (&s->lock);
  for (size_t i = 0; i < n; i++)
    fobject_free (all[i]);
  free (all);
  return r;
}

struct fobject *
fstore_get (struct fstore *s, const char *tenant, const char *id)
{
  _cleanup_free_ char *dir = NULL, *name = NULL;
  _cleanup_close_ int dfd = -1;
  if (!shim_id_valid (id, "file-"))
    return NULL;
  dir = tenant_dir (s, tenant);
  name = xasprintf ("%s.json", id);
  dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return dfd < 0 ? NULL : read_record (dfd, name);
}

int
fstore_open (struct fstore *s, const char *tenant, const char *id)
{
  _cleanup_free_ char *path = NULL;
  if (!shim_id_valid (id, "file-"))
    return -1;
  path = xasprintf ("%s/%s/%s.data", s->dir, tenant, id);
  return open (path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

int
fstore_delete (struct fstore *s, const char *tenant, const char *id)
{
  _cleanup_free_ char *rec = NULL, *data = NULL;
  int r;
  if (!shim_id_valid (id, "file-"))
    return -1;
  rec = xasprintf ("%s/%s/%s.json", s->dir, tenant, id);
  data = xasprintf ("%s/%s/%s.data", s->dir, tenant, id);
  pthread_mutex_lock (&s->lock);
  /* the record first: without it the file does not exist, whatever else is left */
  r = unlink (rec);
  if (r == 0)
    unlink (data);
  pthread_mutex_unlock (&s->lock);
  return r;
}
