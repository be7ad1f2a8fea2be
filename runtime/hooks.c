/* capsule: running OCI hooks. */
#define _GNU_SOURCE
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "utils.h"

static int
wait_with_timeout (pid_t pid, int timeout, int *ret_status, capsule_error **err)
{
  _cleanup_close_ int pidfd = syscall (SYS_pidfd_open, pid, 0);
  if (pidfd >= 0 && timeout > 0)
    {
      struct pollfd p = { .fd = pidfd, .events = POLLIN };
      int r;
      do
        r = poll (&p, 1, timeout * 1000);
      while (r < 0 && errno == EINTR);
      if (r == 0)
        {
          kill (pid, SIGKILL);
          waitpid (pid, NULL, 0);
          return capsule_error_make (err, ETIMEDOUT, "timed out after %d s", timeout);
        }
    }
  while (waitpid (pid, ret_status, 0) < 0)
    if (errno != EINTR)
      return capsule_error_make (err, errno, "waitpid");
  return 0;
}

static int
run_one (const struct spec_hook *h, const char *state_json, capsule_error **err)
{
  int in[2];
  int status;
  pid_t pid;
  char *const default_args[] = { h->path, NULL };
  char *const empty_env[] = { NULL };

  if (pipe2 (in, O_CLOEXEC) < 0)
    return capsule_error_make (err, errno, "pipe");
  pid = fork ();
  if (pid < 0)
    {
      close (in[0]);
      close (in[1]);
      return capsule_error_make (err, errno, "fork");
    }
  if (pid == 0)
    {
      dup2 (in[0], 0);
      /* stdout of a hook must not mix with what the runtime prints (state JSON, pids) */
      dup2 (2, 1);
      execve (h->path, h->args ? h->args : default_args, h->env ? h->env : empty_env);
      dprintf (2, "capsule: exec hook %s: %s\n", h->path, strerror (errno));
      _exit (127);
    }
  close (in[0]);
  signal (SIGPIPE, SIG_IGN);
  write_all (in[1], state_json, strlen (state_json)); /* a hook may ignore its stdin */
  close (in[1]);
  if (wait_with_timeout (pid, h->timeout, &status, err) < 0)
    return -1;
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    return 0;
  if (WIFEXITED (status))
    return capsule_error_make (err, 0, "exited with status %d", WEXITSTATUS (status));
  return capsule_error_make (err, 0, "killed by signal %d", WTERMSIG (status));
}

int
hooks_run (const struct spec *s, enum spec_hook_kind kind, const char *state_json,
           capsule_error **err)
{
  for (size_t i = 0; i < s->n_hooks[kind]; i++)
    if (run_one (&s->hooks[kind][i], state_json, err) < 0)
      return capsule_error_wrap (err, "hooks.%s[%zu] (%s)", spec_hook_names[kind], i,
                                 s->hooks[kind][i].path);
  return 0;
}
