/* capsule-gateway: deadlines for the requests themselves.
 *
 * libmicrohttpd's --timeout counts silence only: a client that sends one byte of its headers
 * every few seconds, or a 64 MiB body at a byte a second, is never silent and would hold its
 * connection (one of --max-connections, and a thread) for days.  Every connection is on a
 * list here with the phase it is in; a thread looks at the list four times a second and shuts
 * down the socket of one that is late:
 *   - the request line and headers must be in within --timeout of the connection's start (or
 *     of the end of its previous answer, on a kept-alive connection);
 *   - the body then gets --timeout plus one second for every --min-rate bytes it brought;
 *   - an answer has no deadline here (a streamed execution may run for as long as the cell
 *     does; a reader that stalls is libmicrohttpd's --timeout).
 * shutdown() makes the connection's thread see the end of its input; libmicrohttpd closes and
 * frees the connection there, after its "closed" notification took it off the list, so the
 * descriptor shut here is always still the connection's own. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "gateway.h"
#include "utils.h"

static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static struct guard *guard_head;
static int64_t guard_timeout_ms = 30000;
static uint64_t guard_min_rate = 64 << 10;

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
guard_configure (unsigned timeout_s, uint64_t min_rate)
{
  guard_timeout_ms = (int64_t)timeout_s * 1000;
  guard_min_rate = min_rate ? min_rate : 1;
}

static void
set_phase (struct guard *g, enum guard_phase phase)
{
  pthread_mutex_lock (&guard_lock);
  g->phase = phase;
  g->since_ms = now_ms ();
  g->bytes = 0;
  pthread_mutex_unlock (&guard_lock);
}

void
guard_add (struct guard *g, int fd)
{
  g->fd = fd;
  set_phase (g, GUARD_HEADERS);
  pthread_mutex_lock (&guard_lock);
  g->prev = NULL;
  g->next = guard_head;
  if (guard_head)
    guard_head->prev = g;
  guard_head = g;
  pthread_mutex_unlock (&guard_lock);
}

void
guard_remove (struct guard *g)
{
  pthread_mutex_lock (&guard_lock);
  if (g->prev)
    g->prev->next = g->next;
  else if (guard_head == g)
    guard_head = g->next;
  if (g->next)
    g->next->prev = g->prev;
  g->prev = g->next = NULL;
  g->fd = -1;
  pthread_mutex_unlock (&guard_lock);
}

void
guard_request (struct guard *g)
{
  if (g == NULL)
    return;
  set_phase (g, GUARD_BODY);
}

void
guard_body (struct guard *g, size_t n)
{
  if (g == NULL)
    return;
  pthread_mutex_lock (&guard_lock);
  g->bytes += n;
  pthread_mutex_unlock (&guard_lock);
}

void
guard_answer (struct guard *g)
{
  if (g == NULL)
    return;
  if (g->phase != GUARD_ANSWER)
    set_phase (g, GUARD_ANSWER);
}

void
guard_idle (struct guard *g)
{
  if (g == NULL)
    return;
  set_phase (g, GUARD_HEADERS);
}

static void
sweep (void)
{
  int64_t now = now_ms ();
  pthread_mutex_lock (&guard_lock);
  for (struct guard *g = guard_head; g; g = g->next)
    {
      int64_t allowed;
      if (g->fd < 0)
        continue;
      if (g->phase == GUARD_HEADERS)
        allowed = guard_timeout_ms;
      else if (g->phase == GUARD_BODY)
        allowed = guard_timeout_ms + (int64_t)(g->bytes / guard_min_rate) * 1000;
      else
        continue;
      if (now - g->since_ms <= allowed)
        continue;
      if (g->phase == GUARD_HEADERS)
        fprintf (stderr,
                 "capsule-gateway: a client took too long to send its request (headers not in "
                 "after %lld s): cut off\n",
                 (long long)((now - g->since_ms) / 1000));
      else
        fprintf (stderr,
                 "capsule-gateway: a client took too long to send its request (body: %llu bytes "
                 "in %lld s, slower than --min-rate): cut off\n",
                 (unsigned long long)g->bytes, (long long)((now - g->since_ms) / 1000));
      shutdown (g->fd, SHUT_RDWR);
      g->phase = GUARD_CUT;
    }
  pthread_mutex_unlock (&guard_lock);
}

static void *
guard_main (void *arg)
{
  (void)arg;
  for (;;)
    {
      struct timespec tick = { 0, 250 * 1000 * 1000 };
      while (nanosleep (&tick, &tick) < 0 && errno == EINTR)
        ;
      sweep ();
    }
  return NULL;
}

int
guard_start (capsule_error **err)
{
  pthread_t t;
  int r = pthread_create (&t, NULL, guard_main, NULL);
  if (r != 0)
    return capsule_error_make (err, r, "cannot start the request-deadline thread");
  pthread_detach (t);
  return 0;
}
