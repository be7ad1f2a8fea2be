/* capsule: the one channel between the runtime and a container process it is setting up.
 *
 * A SOCK_SEQPACKET socket pair carries fixed-size messages; each sync point has one message type,
 * named the same on both sides (crun's linux.c does the same).  Errors in the child travel back as
 * SYNC_ERROR with the child's whole message, so the runtime prints one line naming the cause. */
#pragma once

#include <stdint.h>

#include "error.h"

enum sync_type
{
  SYNC_ERROR = 1,  /* child → parent: text, errno */
  SYNC_USERNS,     /* child → parent: I unshared a user namespace; write my maps */
  SYNC_GO,         /* parent → child: maps written, cgroup entered; carry on */
  SYNC_PID,        /* child → parent: value = pid of the container process (double fork) */
  SYNC_HOOKS,      /* child → parent: run prestart and createRuntime hooks now */
  SYNC_HOOKS_DONE, /* parent → child */
  SYNC_READY,      /* child → parent: set up, waiting for start */
  SYNC_DONE,       /* parent → child: state recorded; you may outlive me */
  SYNC_ACK,        /* child → parent */
};

struct sync_msg
{
  int32_t type;
  int32_t err;
  int64_t value;
  char text[2048];
};

int sync_send (int fd, int type, int64_t value, capsule_error **err);
/* Receive one message; a SYNC_ERROR becomes *err (and -1); EXPECT other than 0 must match. */
int sync_recv (int fd, int expect, struct sync_msg *ret, capsule_error **err);
/* In the child: report ERR to the parent and exit. */
_Noreturn void sync_fail (int fd, capsule_error *err);
