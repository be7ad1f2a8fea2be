/* capsule-gateway: API keys and their tenants.  The file holds only hashes of the keys; a key
 * presented is hashed and compared with every entry, whatever matched before, so the time an
 * answer takes says nothing about which bytes were right. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "utils.h"

#define KEYS_FILE_MAX (4u << 20)
#define KEYS_MAX      100000

bool
tenant_name_valid (const char *t)
{
  size_t n = strlen (t);
  /* it names a directory of the file store */
  if (n == 0 || n > KEY_TENANT_MAX || strcmp (t, ".") == 0 || strcmp (t, "..") == 0)
    return false;
  for (const char *p = t; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || strchr ("_.-", *p)))
      return false;
  return true;
}

static void
sha256 (const void *data, size_t len, unsigned char ret[32])
{
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, data, len, ret) < 0)
    abort ();
}

void
sha256_hex (const void *data, size_t len, char ret[65])
{
  unsigned char d[32];
  sha256 (data, len, d);
  for (int i = 0; i < 32; i++)
    sprintf (ret + 2 * i, "%02x", d[i]);
}

static int
hexval (char c)
{
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

int
keys_load (const char *path, struct keys *ret, capsule_error **err)
{
  _cleanup_free_ char *text = NULL;
  size_t len, lineno = 0;
  struct keys k = { 0 };
  char *save = NULL;
  if (read_file_at (AT_FDCWD, path, KEYS_FILE_MAX, &text, &len, err) < 0)
    return capsule_error_wrap (err, "keys file %s", path);
  if (memchr (text, 0, len))
    return capsule_error_make (err, 0, "keys file %s: holds a NUL byte", path);
  for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      char *p = line, *hex, *tenant, *end;
      struct key_entry e = { 0 };
      lineno++;
      while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
      if (*p == '#' || *p == 0)
        continue;
      end = p + strlen (p);
      while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = 0;
      if (strncmp (p, "sha256:", 7) != 0)
        goto bad;
      hex = p + 7;
      for (int i = 0; i < 32; i++)
        {
          int hi = hexval (hex[2 * i]), lo = hi < 0 ? -1 : hexval (hex[2 * i + 1]);
          if (hi < 0 || lo < 0)
            goto bad;
          e.digest[i] = (unsigned char)(hi << 4 | lo);
        }
      tenant = hex + 64;
      if (*tenant != ' ' && *tenant != '\t')
        goto bad;
      while (*tenant == ' ' || *tenant == '\t')
        tenant++;
      /* the line ends with the tenant: anything after it is a mistake, never ignored */
      if (tenant[strcspn (tenant, " \t\r")] != 0)
        goto bad;
      if (!tenant_name_valid (tenant))
        {
          keys_release (&k);
          return capsule_error_make (err, 0,
                                     "keys file %s:%zu: the tenant must be 1 to 64 letters, "
                                     "digits, '_', '.' or '-'",
                                     path, lineno);
        }
      strcpy (e.tenant, tenant);
      if (k.n >= KEYS_MAX)
        {
          keys_release (&k);
          return capsule_error_make (err, 0, "keys file %s: more than %d keys", path, KEYS_MAX);
        }
      k.e = xrealloc (k.e, (k.n + 1) * sizeof *k.e);
      k.e[k.n++] = e;
      continue;
    bad:
      keys_release (&k);
      return capsule_error_make (
          err, 0,
          "keys file %s:%zu: expected \"sha256:<64 hex digits> TENANT\" and nothing after it", path,
          lineno);
    }
  *ret = k;
  return 0;
}

void
keys_release (struct keys *k)
{
  free (k->e);
  k->e = NULL;
  k->n = 0;
}

bool
keys_lookup (const struct keys *k, const char *key, size_t key_len,
             char ret_tenant[KEY_TENANT_MAX + 1])
{
  unsigned char d[32];
  const struct key_entry *found = NULL;
  sha256 (key, key_len, d);
  for (size_t i = 0; i < k->n; i++)
    {
      unsigned char diff = 0;
      for (int j = 0; j < 32; j++)
        diff |= (unsigned char)(d[j] ^ k->e[i].digest[j]);
      /* no branch on which entry: the same work whatever matched */
      uintptr_t mask = (uintptr_t)0 - (uintptr_t)(diff == 0);
      found = (const struct key_entry *)(((uintptr_t)&k->e[i] & mask) | ((uintptr_t)found & ~mask));
    }
  if (found == NULL)
    return false;
  strcpy (ret_tenant, found->tenant);
  return true;
}
