/* capsule: capabilities through libcap. */
#define _GNU_SOURCE
#include "caps.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "utils.h"

int
caps_parse_name (const char *name)
{
  char lower[64];
  cap_value_t v;
  size_t n = strlen (name);
  if (n == 0 || n >= sizeof lower || strncasecmp (name, "CAP_", 4) != 0)
    return -1;
  for (size_t i = 0; i <= n; i++)
    lower[i] = tolower ((unsigned char)name[i]);
  if (cap_from_name (lower, &v) < 0 || v < 0 || v > 63)
    return -1;
  return v;
}

/* Asked of the kernel, not read from /proc/sys/kernel/cap_last_cap: inside the container that
   file is whatever the image put at that path when no procfs is mounted on /proc, and a small
   number there would leave the higher capabilities in the bounding set.  PR_CAPBSET_READ answers
   EINVAL past the last capability the kernel knows (libcap probes the same way). */
int
caps_last_cap (void)
{
  static int cached = -1;
  if (cached >= 0)
    return cached;
  for (int c = 63; c > 0; c--)
    if (prctl (PR_CAPBSET_READ, c, 0, 0, 0) >= 0)
      return cached = c;
  return cached = CAP_LAST_CAP;
}

int
caps_drop_bounding (uint64_t keep, capsule_error **err)
{
  int last = caps_last_cap ();
  for (int c = 0; c <= last; c++)
    {
      if (keep & (1ULL << c))
        continue;
      if (prctl (PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
        return capsule_error_make (err, errno, "drop capability %d from the bounding set", c);
    }
  return 0;
}

static void
cap_set_bits (cap_t caps, cap_flag_t flag, uint64_t bits, int last)
{
  for (int c = 0; c <= last; c++)
    if (bits & (1ULL << c))
      {
        cap_value_t v = c;
        cap_set_flag (caps, flag, 1, &v, CAP_SET);
      }
}

int
caps_apply (const struct spec_process *p, capsule_error **err)
{
  int last = caps_last_cap ();
  cap_t caps = cap_init ();
  int r;
  if (caps == NULL)
    return capsule_error_make (err, errno, "cap_init");
  if (p->has_capabilities)
    {
      cap_set_bits (caps, CAP_EFFECTIVE, p->caps[CAPSET_EFFECTIVE], last);
      cap_set_bits (caps, CAP_PERMITTED, p->caps[CAPSET_PERMITTED], last);
      cap_set_bits (caps, CAP_INHERITABLE, p->caps[CAPSET_INHERITABLE], last);
    }
  r = cap_set_proc (caps);
  cap_free (caps);
  if (r < 0)
    return capsule_error_make (err, errno, "set capabilities");
  if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return capsule_error_make (err, errno, "clear ambient capabilities");
  if (!p->has_capabilities)
    return 0;
  for (int c = 0; c <= last; c++)
    if (p->caps[CAPSET_AMBIENT] & (1ULL << c))
      if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
        return capsule_error_make (err, errno,
                                   "raise ambient capability %d (it must also be permitted and "
                                   "inheritable)",
                                   c);
  return 0;
}
