/* capsule: seccomp through libseccomp. */
#define _GNU_SOURCE
#include "seccomp-filter.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <fcntl.h>

#include "utils.h"

int
seccomp_action_parse (const char *name, int errno_ret, uint32_t *ret)
{
  if (strcmp (name, "SCMP_ACT_KILL") == 0 || strcmp (name, "SCMP_ACT_KILL_THREAD") == 0)
    *ret = SCMP_ACT_KILL_THREAD;
  else if (strcmp (name, "SCMP_ACT_KILL_PROCESS") == 0)
    *ret = SCMP_ACT_KILL_PROCESS;
  else if (strcmp (name, "SCMP_ACT_TRAP") == 0)
    *ret = SCMP_ACT_TRAP;
  else if (strcmp (name, "SCMP_ACT_ERRNO") == 0)
    *ret = SCMP_ACT_ERRNO (errno_ret);
  else if (strcmp (name, "SCMP_ACT_TRACE") == 0)
    *ret = SCMP_ACT_TRACE (errno_ret);
  else if (strcmp (name, "SCMP_ACT_ALLOW") == 0)
    *ret = SCMP_ACT_ALLOW;
  else if (strcmp (name, "SCMP_ACT_LOG") == 0)
    *ret = SCMP_ACT_LOG;
  else
    return -1;
  return 0;
}

int
seccomp_arch_parse (const char *name, uint32_t *ret)
{
  char lower[32];
  size_t n;
  uint32_t a;
  if (strncmp (name, "SCMP_ARCH_", 10) != 0)
    return -1;
  n = strlen (name + 10);
  if (n == 0 || n >= sizeof lower)
    return -1;
  for (size_t i = 0; i <= n; i++)
    lower[i] = (name[10 + i] >= 'A' && name[10 + i] <= 'Z') ? name[10 + i] + 32 : name[10 + i];
  if (strcmp (lower, "native") == 0)
    {
      *ret = SCMP_ARCH_NATIVE;
      return 0;
    }
  a = seccomp_arch_resolve_name (lower);
  if (a == 0)
    return -1;
  *ret = a;
  return 0;
}

int
seccomp_op_parse (const char *name)
{
  static const struct
  {
    const char *name;
    int op;
  } ops[] = {
    { "SCMP_CMP_NE", SCMP_CMP_NE },
    { "SCMP_CMP_LT", SCMP_CMP_LT },
    { "SCMP_CMP_LE", SCMP_CMP_LE },
    { "SCMP_CMP_EQ", SCMP_CMP_EQ },
    { "SCMP_CMP_GE", SCMP_CMP_GE },
    { "SCMP_CMP_GT", SCMP_CMP_GT },
    { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
  };
  for (size_t i = 0; i < ARRAY_SIZE (ops); i++)
    if (strcmp (ops[i].name, name) == 0)
      return ops[i].op;
  return -1;
}

int
seccomp_flag_parse (const char *name, unsigned *flags)
{
  if (strcmp (name, "SECCOMP_FILTER_FLAG_LOG") == 0)
    *flags |= SECCOMP_FILTER_FLAG_LOG;
  else if (strcmp (name, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
    *flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
  else if (strcmp (name, "SECCOMP_FILTER_FLAG_TSYNC") == 0)
    ; /* the container process is single-threaded when the filter goes in */
  else
    return -1;
  return 0;
}

static void
ctx_releasep (scmp_filter_ctx *ctx)
{
  if (*ctx)
    seccomp_release (*ctx);
}

static int
add_archs (scmp_filter_ctx ctx, const struct spec_seccomp *sc, capsule_error **err)
{
  for (size_t i = 0; i < sc->n_archs; i++)
    {
      int r = seccomp_arch_add (ctx, sc->archs[i]);
      if (r < 0 && r != -EEXIST)
        return capsule_error_make (err, -r, "linux.seccomp.architectures[%zu]", i);
    }
  return 0;
}

static int
add_rule (scmp_filter_ctx ctx, const struct spec_seccomp *sc, const struct spec_seccomp_rule *rule,
          size_t i, size_t *unknown, capsule_error **err)
{
  struct scmp_arg_cmp cmps[6];
  for (size_t k = 0; k < rule->n_args; k++)
    cmps[k] = (struct scmp_arg_cmp){ rule->args[k].index, rule->args[k].op, rule->args[k].value,
                                     rule->args[k].value_two };
  if (rule->action == sc->default_action)
    return 0; /* libseccomp refuses rules that repeat the default */
  for (char **n = rule->names; *n; n++)
    {
      int nr = seccomp_syscall_resolve_name (*n);
      int r;
      if (nr == __NR_SCMP_ERROR)
        {
          (*unknown)++;
          continue;
        }
      r = seccomp_rule_add_array (ctx, rule->action, nr, rule->n_args, cmps);
      if (r == -EINVAL && rule->n_args > 1)
        {
          /* Several conditions on one argument cannot be ANDed by libseccomp; like runc, turn
             them into one rule per condition (an OR). */
          for (size_t k = 0; k < rule->n_args && r != 0; k++)
            r = seccomp_rule_add_array (ctx, rule->action, nr, 1, &cmps[k]);
          for (size_t k = 1; k < rule->n_args && r == 0; k++)
            r = seccomp_rule_add_array (ctx, rule->action, nr, 1, &cmps[k]);
        }
      if (r < 0)
        return capsule_error_make (err, -r, "linux.seccomp.syscalls[%zu]: syscall \"%s\"", i, *n);
    }
  return 0;
}

#define SECCOMP_OPTIMIZE 2 /* libseccomp's SCMP_FLTATR_CTL_OPTIMIZE: a binary tree */

int
seccomp_compile (const struct spec_seccomp *sc, struct seccomp_program *ret, size_t *ret_unknown,
                 capsule_error **err)
{
  __attribute__ ((cleanup (ctx_releasep))) scmp_filter_ctx ctx = seccomp_init (sc->default_action);
  _cleanup_close_ int fd = -1;
  struct stat st;
  size_t unknown = 0;
  void *buf;
  int r;

  if (ctx == NULL)
    return capsule_error_make (err, EINVAL, "linux.seccomp: cannot initialise the filter");
  seccomp_attr_set (ctx, SCMP_FLTATR_CTL_NNP, 0);
  /* the syscall numbers as a binary tree, not a list: the kernel checks a program at install
     against every syscall number for its action cache, 296 us for the default profile's 352
     instructions as a list, 95 us for its 429 as a tree; and each call the sandbox makes walks
     a path of log n tests instead of n */
  seccomp_attr_set (ctx, SCMP_FLTATR_CTL_OPTIMIZE, SECCOMP_OPTIMIZE);
  if (add_archs (ctx, sc, err) < 0)
    return -1;
  for (size_t i = 0; i < sc->n_rules; i++)
    if (add_rule (ctx, sc, &sc->rules[i], i, &unknown, err) < 0)
      return -1;
  fd = memfd_create ("seccomp-bpf", MFD_CLOEXEC);
  if (fd < 0)
    return capsule_error_make (err, errno, "memfd_create");
  r = seccomp_export_bpf (ctx, fd);
  if (r < 0)
    return capsule_error_make (err, -r, "linux.seccomp: export the filter");
  if (fstat (fd, &st) < 0)
    return capsule_error_make (err, errno, "fstat");
  if (st.st_size == 0 || st.st_size % sizeof (struct sock_filter) != 0)
    return capsule_error_make (err, EINVAL, "linux.seccomp: libseccomp made no program");
  buf = xmalloc0 (st.st_size);
  if (pread (fd, buf, st.st_size, 0) != st.st_size)
    {
      free (buf);
      return capsule_error_make (err, errno, "read the seccomp program");
    }
  ret->filter = buf;
  ret->len = st.st_size / sizeof (struct sock_filter);
  ret->flags = sc->flags;
  if (ret_unknown)
    *ret_unknown = unknown;
  return 0;
}

void
seccomp_program_release (struct seccomp_program *p)
{
  free (p->filter);
  p->filter = NULL;
  p->len = 0;
}

int
seccomp_install (const struct seccomp_program *p, capsule_error **err)
{
  struct sock_fprog prog = { .len = p->len, .filter = p->filter };
  if (syscall (__NR_seccomp, SECCOMP_SET_MODE_FILTER, p->flags, &prog) < 0)
    return capsule_error_make (err, errno, "install the seccomp filter");
  return 0;
}

static uint64_t
fnv (uint64_t h, const void *data, size_t len)
{
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

#define FNV_VALUE(h, v) fnv ((h), &(v), sizeof (v))

uint64_t
seccomp_profile_hash (const struct spec_seccomp *sc)
{
  const struct scmp_version *v = seccomp_version ();
  uint64_t h = 0xcbf29ce484222325ULL;
  h = fnv (h, CAPSULE_VERSION, sizeof CAPSULE_VERSION);
  h = fnv (h, &(int){ SECCOMP_OPTIMIZE }, sizeof (int)); /* a program compiled otherwise differs */
  h = fnv (h, v, sizeof *v);
  h = FNV_VALUE (h, sc->default_action);
  h = FNV_VALUE (h, sc->flags);
  h = FNV_VALUE (h, sc->n_archs);
  for (size_t i = 0; i < sc->n_archs; i++)
    h = FNV_VALUE (h, sc->archs[i]);
  h = FNV_VALUE (h, sc->n_rules);
  for (size_t i = 0; i < sc->n_rules; i++)
    {
      const struct spec_seccomp_rule *r = &sc->rules[i];
      h = FNV_VALUE (h, r->action);
      for (char **n = r->names; *n; n++)
        h = fnv (h, *n, strlen (*n) + 1);
      h = FNV_VALUE (h, r->n_args);
      for (size_t k = 0; k < r->n_args; k++)
        {
          h = FNV_VALUE (h, r->args[k].index);
          h = FNV_VALUE (h, r->args[k].value);
          h = FNV_VALUE (h, r->args[k].value_two);
          h = FNV_VALUE (h, r->args[k].op);
        }
    }
  return h;
}

static int
cache_read (const char *path, struct seccomp_program *ret, unsigned flags)
{
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  if (read_file_at (AT_FDCWD, path, 1 << 20, &data, &len, NULL) < 0)
    return -1;
  if (len == 0 || len % sizeof (struct sock_filter) != 0)
    return -1;
  ret->filter = steal_pointer (&data);
  ret->len = len / sizeof (struct sock_filter);
  ret->flags = flags;
  return 0;
}

int
seccomp_compile_cached (const struct spec_seccomp *sc, const char *cache_dir,
                        struct seccomp_program *ret, capsule_error **err)
{
  _cleanup_free_ char *path = NULL;
  _cleanup_error_ capsule_error *ignored = NULL;
  if (cache_dir == NULL)
    return seccomp_compile (sc, ret, NULL, err);
  path = xasprintf ("%s/%016llx.bpf", cache_dir, (unsigned long long)seccomp_profile_hash (sc));
  if (cache_read (path, ret, sc->flags) == 0)
    return 0;
  if (seccomp_compile (sc, ret, NULL, err) < 0)
    return -1;
  /* a cache that cannot be written costs speed, not correctness */
  if (mkdir_p (cache_dir, 0700, &ignored) == 0)
    write_file_atomic (path, ret->filter, ret->len * sizeof (struct sock_filter), 0600, &ignored);
  return 0;
}
