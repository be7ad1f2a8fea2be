/* capsule-init: a tiny init for sandboxes (as tini is for Docker).
 *
 *   capsule-init [-s] [--] PROGRAM [ARGS...]
 *
 * Runs PROGRAM as its child, forwards the signals a supervisor sends (INT, TERM, HUP, QUIT, USR1,
 * USR2, WINCH) to it, reaps every zombie that lands on it, and exits with PROGRAM's status (128 +
 * signal when PROGRAM was killed).  As pid 1 of a pid namespace it is the reaper of everything in
 * the sandbox, and signals that the kernel would not deliver to a pid 1 without a handler still
 * reach the real program.  -s makes it a child subreaper when it is not pid 1 (tests use this). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

static int
usage (void)
{
  fputs ("usage: capsule-init [-s] [--] PROGRAM [ARGS...]\n", stderr);
  return 2;
}

static int
status_code (int status)
{
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

int
main (int argc, char **argv)
{
  sigset_t all, old;
  pid_t child;
  int i = 1;

  if (i < argc && strcmp (argv[i], "-s") == 0)
    {
      if (prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        perror ("capsule-init: PR_SET_CHILD_SUBREAPER");
      i++;
    }
  if (i < argc && strcmp (argv[i], "--") == 0)
    i++;
  if (i >= argc)
    return usage ();

  sigfillset (&all);
  sigprocmask (SIG_BLOCK, &all, &old);
  child = fork ();
  if (child < 0)
    {
      perror ("capsule-init: fork");
      return 1;
    }
  if (child == 0)
    {
      sigprocmask (SIG_SETMASK, &old, NULL);
      /* a new process group, so a terminal's ^C reaches us and we decide */
      setpgid (0, 0);
      execvp (argv[i], argv + i);
      fprintf (stderr, "capsule-init: exec %s: %s\n", argv[i], strerror (errno));
      _exit (127);
    }
  for (;;)
    {
      siginfo_t si;
      int sig = sigwaitinfo (&all, &si);
      if (sig < 0)
        continue;
      if (sig != SIGCHLD)
        {
          for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++)
            if (forwarded[k] == sig)
              kill (child, sig);
          continue;
        }
      for (;;)
        {
          int status;
          pid_t r = waitpid (-1, &status, WNOHANG);
          if (r <= 0)
            break;
          if (r == child)
            return status_code (status);
        }
    }
}
