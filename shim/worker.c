/* capsule-shim: forked workers (see worker.h). */
#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "utils.h"

#define WORKER_MSG_MAX 4000 /* fits a pipe's buffer: the worker never blocks writing it */

static void
finish (struct worker *w, int status)
{
  char msg[WORKER_MSG_MAX + 1];
  ssize_t n = read (w->err_fd, msg, WORKER_MSG_MAX);
  capsule_error *err = NULL;
  bool ok = WIFEXITED (status) && WEXITSTATUS (status) == 0;
  close (w->err_fd);
  w->err_fd = -1;
  w->pid = 0;
  loop_timer_stop (w->loop, &w->deadline);
  if (!ok)
    {
      if (n > 0)
        {
          msg[n] = '\0';
          capsule_error_make (&err, 0, "%s", msg);
        }
      else if (WIFSIGNALED (status))
        capsule_error_make (&err, 0, "the %s worker was killed by signal %d", w->what,
                            WTERMSIG (status));
      else
        capsule_error_make (&err, 0, "the %s worker failed (status %d)", w->what,
                            WEXITSTATUS (status));
    }
  w->done (w, ok, err);
  capsule_error_free (err);
}

static void
on_exit_status (struct loop_child *c, int status)
{
  finish (c->data, status);
}

static void
on_deadline (struct loop_timer *t)
{
  struct worker *w = t->data;
  if (w->pid > 0)
    kill (-w->pid, SIGKILL); /* its exit comes as usual and says it was killed */
}

void
worker_init (struct worker *w, struct loop *l, worker_done_fn done, void *data)
{
  *w = (struct worker){ .loop = l, .err_fd = -1, .done = done, .data = data };
  w->child = (struct loop_child){ .fn = on_exit_status, .data = w };
  w->deadline = (struct loop_timer){ .fn = on_deadline, .data = w };
}

static _Noreturn void
run_child (int err_fd, worker_fn fn, void *arg)
{
  _cleanup_error_ capsule_error *err = NULL;
  sigset_t none;
  if (err_fd != 3)
    {
      dup2 (err_fd, 3);
      close (err_fd);
    }
  /* nothing of the shim's (clients, other sessions' executor sockets) stays open here: criu
     would find the far end of a connection it dumps alive, and a client would not see EOF */
  close_range (4, ~0U, 0);
  setpgid (0, 0);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  signal (SIGPIPE, SIG_DFL);
  if (fn (arg, &err) < 0)
    {
      const char *m = err && err->msg ? err->msg : "failed";
      size_t n = strlen (m);
      write_all (3, m, n > WORKER_MSG_MAX ? WORKER_MSG_MAX : n);
      _exit (1);
    }
  _exit (0);
}

int
worker_start (struct worker *w, const char *what, worker_fn fn, void *arg, int64_t deadline_ms,
              capsule_error **err)
{
  int p[2];
  pid_t pid;
  if (w->pid > 0)
    return capsule_error_make (err, EBUSY, "a %s worker already runs", w->what);
  if (pipe2 (p, O_CLOEXEC) < 0)
    return capsule_error_make (err, errno, "%s worker: pipe", what);
  fflush (NULL);
  pid = fork ();
  if (pid < 0)
    {
      int e = errno;
      close (p[0]);
      close (p[1]);
      return capsule_error_make (err, e, "fork a %s worker", what);
    }
  if (pid == 0)
    {
      close (p[0]);
      run_child (p[1], fn, arg);
    }
  close (p[1]);
  fcntl (p[0], F_SETFL, O_NONBLOCK);
  setpgid (pid, pid); /* as the worker does: whichever runs first, the group exists */
  w->pid = pid;
  w->err_fd = p[0];
  w->what = what;
  w->started_ms = loop_now_ms ();
  w->deadline_ms = w->started_ms + deadline_ms;
  loop_child_add (w->loop, &w->child, pid);
  loop_timer_in (w->loop, &w->deadline, deadline_ms);
  return 0;
}

void
worker_cancel (struct worker *w)
{
  if (w->pid <= 0)
    return;
  kill (-w->pid, SIGKILL);
  loop_child_del (w->loop, &w->child);
  loop_timer_stop (w->loop, &w->deadline);
  close (w->err_fd);
  w->err_fd = -1;
  w->pid = 0;
}

/* Until the worker's deadline, then it is killed as the loop's timer would have (the loop, which
   waits here, cannot run that timer): a stuck worker must not keep the shim from ending. */
static void
wait_until_deadline (struct worker *w)
{
  _cleanup_close_ int pidfd = syscall (SYS_pidfd_open, w->pid, 0);
  struct pollfd p = { .fd = pidfd, .events = POLLIN };
  int64_t left;
  if (pidfd < 0)
    return; /* waitpid alone, then */
  while ((left = w->deadline_ms - loop_now_ms ()) > 0)
    {
      int r = poll (&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
      if (r > 0 || (r < 0 && errno != EINTR))
        return;
    }
  fprintf (stderr, "capsule-shim: the %s worker %d passed its deadline: killed\n", w->what,
           (int)w->pid);
  kill (-w->pid, SIGKILL);
}

void
worker_wait (struct worker *w)
{
  int status = 0;
  pid_t pid = w->pid;
  if (pid <= 0)
    return;
  loop_child_del (w->loop, &w->child);
  wait_until_deadline (w);
  for (;;)
    {
      if (waitpid (pid, &status, 0) == pid)
        break;
      if (errno == EINTR)
        continue;
      /* the loop reaped it already */
      if (!loop_child_reaped (w->loop, pid, &status))
        status = W_EXITCODE (1, 0);
      break;
    }
  finish (w, status);
}
