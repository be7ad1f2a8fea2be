/* capsule-shim: memory tiers (policies/tiers.json) and the tenant memory pools they draw from.
 *
 * The runtime knows nothing of tiers: the shim turns a tier into OCI resources (memory limit,
 * pids limit, cpu weight), a workspace size cap and an open-file limit. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TIERS_MAX 16

struct tier
{
  char *name;          /* "1g" */
  uint64_t memory;     /* bytes: memory.max, and the pool charge */
  uint64_t pids;       /* pids.max */
  uint64_t cpu_shares; /* OCI cpu.shares (v2: mapped to cpu.weight) */
  uint64_t workspace;  /* bytes: size cap of /mnt/data */
  uint64_t tmp;        /* bytes: size cap of /tmp */
  uint64_t nofile;     /* RLIMIT_NOFILE */
};

struct tiers
{
  struct tier tier[TIERS_MAX];
  size_t n;
  char *default_tier;
  uint64_t pool; /* default per-tenant pool, bytes */
  uint64_t checkpoint_after_s;
  /* "prime": what warm sandboxes import before a create claims them */
  char **prime_modules;         /* NULL-terminated; NULL when nothing is primed */
  bool prime_plot;              /* and draw a throw-away figure */
  uint64_t prime_min_available; /* bytes of MemAvailable below which nothing is primed */
};

int tiers_parse (const char *text, const char *what, struct tiers *ret, capsule_error **err);
int tiers_load (const char *path, struct tiers *ret, capsule_error **err);
void tiers_release (struct tiers *t);
const struct tier *tiers_find (const struct tiers *t, const char *name);
/* "1g, 4g, 16g, 64g" for messages (malloc'd). */
char *tiers_names (const struct tiers *t);
/* 1073741824 → "1g", 1610612736 → "1.5g", 65536 → "64k" (malloc'd) */
char *format_size (uint64_t bytes);

/* Tenant memory pools. */
struct pool_entry
{
  char *tenant;
  uint64_t used;
  uint64_t total;
};

struct pools
{
  struct pool_entry *e;
  size_t n;
  uint64_t default_total;
};

/* Charge BYTES to TENANT; fails (nothing charged) with a message naming used, requested and
 * total when the pool would be exceeded. */
int pools_charge (struct pools *p, const char *tenant, uint64_t bytes, capsule_error **err);
void pools_credit (struct pools *p, const char *tenant, uint64_t bytes);
const struct pool_entry *pools_get (struct pools *p, const char *tenant);
void pools_release (struct pools *p);
