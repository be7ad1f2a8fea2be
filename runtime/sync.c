/* capsule: messages over the runtime/container sync socket. */
#define _GNU_SOURCE
#include "sync.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The peer went away: the reason it sent before going may still wait in our queue.  (A unix
   socket reports the reset once, ahead of what is queued: so read twice.) */
static int
pending_error (int fd, capsule_error **err)
{
  struct sync_msg m;
  for (int tries = 0; tries < 2; tries++)
    {
      ssize_t r = recv (fd, &m, sizeof m, MSG_DONTWAIT);
      if (r == (ssize_t)sizeof m && m.type == SYNC_ERROR)
        {
          m.text[sizeof m.text - 1] = '\0';
          capsule_error_make (err, 0, "%s", m.text);
          if (*err)
            (*err)->status = m.err;
          return -1;
        }
      if (r >= 0 || errno != ECONNRESET)
        break;
    }
  return 0;
}

int
sync_send (int fd, int type, int64_t value, capsule_error **err)
{
  struct sync_msg m = { .type = type, .value = value };
  ssize_t r;
  do
    r = send (fd, &m, sizeof m, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r != (ssize_t)sizeof m)
    {
      int e = errno;
      if ((e == EPIPE || e == ECONNRESET) && pending_error (fd, err) < 0)
        return -1;
      return capsule_error_make (err, e, "sync: send message %d", type);
    }
  return 0;
}

int
sync_recv (int fd, int expect, struct sync_msg *ret, capsule_error **err)
{
  struct sync_msg m;
  ssize_t r;
  do
    r = recv (fd, &m, sizeof m, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno == ECONNRESET)
    {
      if (pending_error (fd, err) < 0)
        return -1;
      return capsule_error_make (err, ECONNRESET, "sync: receive");
    }
  if (r < 0)
    return capsule_error_make (err, errno, "sync: receive");
  if (r == 0)
    return capsule_error_make (err, 0, "the container process exited during set-up");
  if (r != (ssize_t)sizeof m)
    return capsule_error_make (err, 0, "sync: short message (%zd bytes)", r);
  m.text[sizeof m.text - 1] = '\0';
  if (m.type == SYNC_ERROR)
    {
      capsule_error_make (err, 0, "%s", m.text);
      if (*err)
        (*err)->status = m.err;
      return -1;
    }
  if (expect && m.type != expect)
    return capsule_error_make (err, 0, "sync: expected message %d, got %d", expect, m.type);
  if (ret)
    *ret = m;
  return 0;
}

void
sync_fail (int fd, capsule_error *err)
{
  struct sync_msg m = { .type = SYNC_ERROR, .err = err ? err->status : 0 };
  snprintf (m.text, sizeof m.text, "%s", err && err->msg ? err->msg : "unknown error");
  if (send (fd, &m, sizeof m, MSG_NOSIGNAL) < 0)
    {
      /* nobody is listening: say it where a person may see it */
      dprintf (2, "capsule: %s\n", m.text);
    }
  _exit (127);
}
