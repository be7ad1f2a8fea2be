/* capsule-shim: the event loop (see loop.h). */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "utils.h"

int64_t
loop_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ fds */

int
loop_io_add (struct loop *l, struct loop_io *io, int fd, uint32_t events)
{
  struct epoll_event ev = { .events = events, .data.ptr = io };
  io->fd = fd;
  io->events = events;
  return epoll_ctl (l->epfd, EPOLL_CTL_ADD, fd, &ev);
}

void
loop_io_set (struct loop *l, struct loop_io *io, uint32_t events)
{
  struct epoll_event ev = { .events = events, .data.ptr = io };
  if (io->fd < 0 || io->events == events)
    return;
  io->events = events;
  epoll_ctl (l->epfd, EPOLL_CTL_MOD, io->fd, &ev);
}

void
loop_io_del (struct loop *l, struct loop_io *io)
{
  if (io->fd >= 0)
    epoll_ctl (l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
  io->fd = -1;
}

/* ------------------------------------------------------------------ timers: a binary heap */

static void
heap_put (struct loop *l, size_t i, struct loop_timer *t)
{
  l->heap[i] = t;
  t->slot = i + 1;
}

static void
heap_up (struct loop *l, size_t i)
{
  struct loop_timer *t = l->heap[i];
  while (i > 0 && l->heap[(i - 1) / 2]->when_ms > t->when_ms)
    {
      heap_put (l, i, l->heap[(i - 1) / 2]);
      i = (i - 1) / 2;
    }
  heap_put (l, i, t);
}

static void
heap_down (struct loop *l, size_t i)
{
  struct loop_timer *t = l->heap[i];
  for (;;)
    {
      size_t c = 2 * i + 1;
      if (c >= l->n_timers)
        break;
      if (c + 1 < l->n_timers && l->heap[c + 1]->when_ms < l->heap[c]->when_ms)
        c++;
      if (l->heap[c]->when_ms >= t->when_ms)
        break;
      heap_put (l, i, l->heap[c]);
      i = c;
    }
  heap_put (l, i, t);
}

void
loop_timer_stop (struct loop *l, struct loop_timer *t)
{
  size_t i;
  if (t->slot == 0)
    return;
  i = t->slot - 1;
  t->slot = 0;
  if (--l->n_timers == i)
    return;
  {
    struct loop_timer *moved = l->heap[l->n_timers];
    heap_put (l, i, moved);
    heap_up (l, i);
    heap_down (l, moved->slot - 1);
  }
}

void
loop_timer_at (struct loop *l, struct loop_timer *t, int64_t when_ms)
{
  loop_timer_stop (l, t);
  if (l->n_timers == l->cap_timers)
    {
      l->cap_timers = l->cap_timers ? 2 * l->cap_timers : 64;
      l->heap = xrealloc (l->heap, l->cap_timers * sizeof *l->heap);
    }
  t->when_ms = when_ms;
  heap_put (l, l->n_timers++, t);
  heap_up (l, l->n_timers - 1);
}

void
loop_timer_in (struct loop *l, struct loop_timer *t, int64_t ms)
{
  loop_timer_at (l, t, loop_now_ms () + ms);
}

static void
run_due_timers (struct loop *l)
{
  int64_t now = loop_now_ms ();
  /* a timer armed by a callback for "now" runs in the next turn, so a callback that re-arms
     itself at once cannot keep the loop here */
  for (size_t budget = l->n_timers; budget > 0 && l->n_timers > 0; budget--)
    {
      struct loop_timer *t = l->heap[0];
      if (t->when_ms > now)
        break;
      loop_timer_stop (l, t);
      t->fn (t);
    }
}

static int
next_timeout (struct loop *l)
{
  int64_t d;
  if (l->n_timers == 0)
    return -1;
  d = l->heap[0]->when_ms - loop_now_ms ();
  return d <= 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

/* ------------------------------------------------------------------ children */

void
loop_child_add (struct loop *l, struct loop_child *c, pid_t pid)
{
  c->pid = pid;
  c->next = l->children;
  l->children = c;
}

void
loop_child_del (struct loop *l, struct loop_child *c)
{
  for (struct loop_child **p = &l->children; *p; p = &(*p)->next)
    if (*p == c)
      {
        *p = c->next;
        break;
      }
  c->pid = 0;
}

bool
loop_child_reaped (struct loop *l, pid_t pid, int *ret_status)
{
  for (size_t i = 0; i < LOOP_REAPED_KEPT; i++)
    if (l->reaped[i].pid == pid && pid > 0)
      {
        *ret_status = l->reaped[i].status;
        l->reaped[i].pid = 0;
        return true;
      }
  return false;
}

static void
child_exited (struct loop *l, pid_t pid, int status)
{
  for (struct loop_child *c = l->children; c; c = c->next)
    if (c->pid == pid)
      {
        loop_child_del (l, c);
        c->fn (c, status);
        return;
      }
  /* nobody asked (yet): a sandbox's init that died before its owner looked, an orphan we
     adopted as the subreaper */
  l->reaped[l->reaped_next] = (typeof (l->reaped[0])){ pid, status };
  l->reaped_next = (l->reaped_next + 1) % LOOP_REAPED_KEPT;
}

static void
reap (struct loop *l)
{
  for (;;)
    {
      int status;
      pid_t pid = waitpid (-1, &status, WNOHANG);
      if (pid <= 0)
        return;
      child_exited (l, pid, status);
    }
}

/* ------------------------------------------------------------------ signals and the run */

static void
on_signal (struct loop_io *io, uint32_t revents)
{
  struct loop *l = io->data;
  struct signalfd_siginfo si;
  (void)revents;
  while (read (l->signal_fd, &si, sizeof si) == sizeof si)
    {
      if (si.ssi_signo == SIGCHLD)
        reap (l);
      else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
        {
          l->stopping = true;
          if (l->on_stop)
            l->on_stop (l->signal_data);
        }
      else if (si.ssi_signo == SIGHUP && l->on_hup)
        l->on_hup (l->signal_data);
    }
}

int
loop_init (struct loop *l, capsule_error **err)
{
  sigset_t mask;
  *l = (struct loop){ .epfd = -1, .signal_fd = -1 };
  sigemptyset (&mask);
  sigaddset (&mask, SIGCHLD);
  sigaddset (&mask, SIGTERM);
  sigaddset (&mask, SIGINT);
  sigaddset (&mask, SIGHUP);
  sigprocmask (SIG_BLOCK, &mask, NULL);
  l->signal_fd = signalfd (-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  l->epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (l->signal_fd < 0 || l->epfd < 0)
    return capsule_error_make (err, errno, "event loop");
  l->signal_io = (struct loop_io){ .fn = on_signal, .data = l };
  if (loop_io_add (l, &l->signal_io, l->signal_fd, EPOLLIN) < 0)
    return capsule_error_make (err, errno, "event loop: watch signals");
  return 0;
}

void
loop_release (struct loop *l)
{
  if (l->epfd >= 0)
    close (l->epfd);
  if (l->signal_fd >= 0)
    close (l->signal_fd);
  free (l->heap);
  l->heap = NULL;
  l->n_timers = l->cap_timers = 0;
}

void
loop_quit (struct loop *l)
{
  l->stopping = true;
}

int
loop_run (struct loop *l)
{
  while (!l->stopping)
    {
      struct epoll_event ev;
      int n = epoll_wait (l->epfd, &ev, 1, next_timeout (l));
      if (n < 0 && errno != EINTR)
        return -1;
      if (n == 1)
        {
          struct loop_io *io = ev.data.ptr;
          io->fn (io, ev.events);
        }
      run_due_timers (l);
    }
  return 0;
}
