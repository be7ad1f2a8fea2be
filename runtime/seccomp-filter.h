/* capsule: the OCI linux.seccomp object compiled to a BPF program with libseccomp.
 *
 * The filter is compiled in the runtime before the container exists, so a bad profile fails early
 * and the container's last step before exec is one seccomp(2) call with ready BPF. */
#pragma once

#include <stdint.h>
#include <stddef.h>

#include "error.h"
#include "spec.h"

struct seccomp_program
{
  void *filter; /* struct sock_filter[] */
  size_t len;   /* number of instructions */
  unsigned flags;
};

int seccomp_action_parse (const char *name, int errno_ret, uint32_t *ret);
int seccomp_arch_parse (const char *name, uint32_t *ret);
int seccomp_op_parse (const char *name);
int seccomp_flag_parse (const char *name, unsigned *flags);

/* Compile SC for this machine.  *ret_unknown counts names libseccomp does not know (skipped, as
 * runc does: profiles list syscalls of every architecture). */
int seccomp_compile (const struct spec_seccomp *sc, struct seccomp_program *ret,
                     size_t *ret_unknown, capsule_error **err);
void seccomp_program_release (struct seccomp_program *p);
/* As seccomp_compile, through a cache of compiled programs in CACHE_DIR (libseccomp needs tens of
 * milliseconds for a full profile; the cache makes it a file read).  The key hashes the whole
 * profile, the libseccomp version and capsule's. */
int seccomp_compile_cached (const struct spec_seccomp *sc, const char *cache_dir,
                            struct seccomp_program *ret, capsule_error **err);
/* The cache key of a profile (exposed for tests). */
uint64_t seccomp_profile_hash (const struct spec_seccomp *sc);
/* Install the program in the calling thread (needs no_new_privs or CAP_SYS_ADMIN). */
int seccomp_install (const struct seccomp_program *p, capsule_error **err);
