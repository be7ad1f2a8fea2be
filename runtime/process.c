/* capsule: the last steps of a container process before exec. */
#define _GNU_SOURCE
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caps.h"
#include "utils.h"

static const char *
env_path (const struct spec_process *p)
{
  for (size_t i = 0; p->env && p->env[i]; i++)
    if (strncmp (p->env[i], "PATH=", 5) == 0)
      return p->env[i] + 5;
  return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

static bool
is_executable (const char *path)
{
  struct stat st;
  return stat (path, &st) == 0 && S_ISREG (st.st_mode) && access (path, X_OK) == 0;
}

char *
process_find_executable (const struct spec_process *p, capsule_error **err)
{
  const char *name = p->args[0];
  _cleanup_free_ char *dirs = NULL;
  char *save = NULL;
  if (strchr (name, '/'))
    {
      if (is_executable (name))
        return xstrdup (name);
      capsule_error_make (err, errno ? errno : EACCES, "process.args[0]: cannot execute `%s`",
                          name);
      return NULL;
    }
  dirs = xstrdup (env_path (p));
  for (char *d = strtok_r (dirs, ":", &save); d; d = strtok_r (NULL, ":", &save))
    {
      _cleanup_free_ char *cand = xasprintf ("%s/%s", d[0] ? d : ".", name);
      if (is_executable (cand))
        return steal_pointer (&cand);
    }
  capsule_error_make (err, ENOENT, "process.args[0]: executable `%s` not found in $PATH (%s)", name,
                      env_path (p));
  return NULL;
}

/* The home directory of UID in the container's /etc/passwd (the caller has entered its root), or
   NULL: no such file, no such user, or something that is no plain file (a hostile rootfs may
   put a fifo or a device there). */
static char *
passwd_home (uid_t uid)
{
  enum
  {
    MAX_PASSWD = 4 << 20
  };
  _cleanup_close_ int fd = open ("/etc/passwd", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  struct stat st;
  char *save = NULL;
  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_size > MAX_PASSWD)
    return NULL;
  text = xmalloc0 (st.st_size + 1);
  while (len < (size_t)st.st_size)
    {
      ssize_t r = read (fd, text + len, st.st_size - len);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      len += r;
    }
  text[len] = '\0';
  for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      /* name:password:uid:gid:gecos:home:shell */
      char *f[7] = { NULL };
      size_t n = 0;
      uint64_t v;
      for (char *p = line; n < 7; n++)
        {
          f[n] = p;
          p = strchr (p, ':');
          if (p == NULL)
            {
              n++;
              break;
            }
          *p++ = '\0';
        }
      if (n < 6 || parse_u64 (f[2], &v) < 0 || v != uid)
        continue;
      return f[5][0] ? xstrdup (f[5]) : NULL;
    }
  return NULL;
}

void
process_set_home (struct spec_process *p)
{
  size_t n = strv_length (p->env), slot = n;
  _cleanup_free_ char *home = NULL;
  for (size_t i = 0; i < n; i++)
    if (strncmp (p->env[i], "HOME=", 5) == 0)
      {
        if (p->env[i][5] != '\0')
          return;
        slot = i;
      }
  home = passwd_home (p->uid);
  if (slot == n)
    {
      p->env = xrealloc (p->env, (n + 2) * sizeof (char *));
      p->env[n + 1] = NULL;
    }
  else
    free (p->env[slot]);
  p->env[slot] = xasprintf ("HOME=%s", home ? home : "/");
}

int
process_set_rlimits (const struct spec_process *p, capsule_error **err)
{
  for (size_t i = 0; i < p->n_rlimits; i++)
    {
      struct rlimit rl = { p->rlimits[i].soft, p->rlimits[i].hard };
      if (setrlimit (p->rlimits[i].resource, &rl) < 0)
        {
          struct rlimit cur = { 0, 0 };
          getrlimit (p->rlimits[i].resource, &cur);
          return capsule_error_make (err, errno,
                                     "process.rlimits[%zu]: set soft %llu hard %llu (the "
                                     "current hard limit is %llu; raising it needs "
                                     "CAP_SYS_RESOURCE)",
                                     i, (unsigned long long)rl.rlim_cur,
                                     (unsigned long long)rl.rlim_max,
                                     (unsigned long long)cur.rlim_max);
        }
    }
  return 0;
}

int
process_drop_privileges (const struct spec_process *p, const struct seccomp_program *seccomp,
                         capsule_error **err)
{
  uint64_t bounding = p->has_capabilities ? p->caps[CAPSET_BOUNDING] : 0;
  if (seccomp && seccomp->filter && !p->no_new_privileges && seccomp_install (seccomp, err) < 0)
    return -1;
  if (prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return capsule_error_make (err, errno, "PR_SET_KEEPCAPS");
  if (caps_drop_bounding (bounding, err) < 0)
    return -1;
  if (setgroups (p->n_additional_gids, p->additional_gids) < 0
      && (errno != EPERM || p->n_additional_gids > 0))
    return capsule_error_make (err, errno, "process.user.additionalGids: setgroups");
  if (setresgid (p->gid, p->gid, p->gid) < 0)
    return capsule_error_make (err, errno, "process.user.gid: become gid %u", p->gid);
  if (setresuid (p->uid, p->uid, p->uid) < 0)
    return capsule_error_make (err, errno, "process.user.uid: become uid %u", p->uid);
  if (caps_apply (p, err) < 0)
    return capsule_error_wrap (err, "process.capabilities");
  if (prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
    return capsule_error_make (err, errno, "PR_SET_KEEPCAPS");
  umask (p->umask);
  return 0;
}

int
process_make_cwd (const struct spec_process *p, capsule_error **err)
{
  _cleanup_free_ char *copy = xstrdup (p->cwd), *prefix = xstrdup ("");
  _cleanup_close_ int root = open ("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  _cleanup_close_ int parent = -1;
  char *save = NULL;
  if (root < 0)
    return capsule_error_make (err, errno, "process.cwd: open the container's root");
  parent = dup (root);
  if (parent < 0)
    return capsule_error_make (err, errno, "dup");
  for (char *comp = strtok_r (copy, "/", &save); comp; comp = strtok_r (NULL, "/", &save))
    {
      /* Each prefix resolved afresh beneath the root, symlinks (absolute or with "..") as the
         container sees them, so nothing is made outside it. */
      struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                              .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
      char *next = xasprintf ("%s%s%s", prefix, prefix[0] ? "/" : "", comp);
      int fd;
      free (prefix);
      prefix = next;
      fd = syscall (SYS_openat2, root, prefix, &how, sizeof how);
      if (fd < 0 && errno == ENOENT && strcmp (comp, "..") != 0 && strcmp (comp, ".") != 0)
        {
          /* PARENT is where the prefix so far resolved: comp is one plain name in it. */
          if (mkdirat (parent, comp, 0755) < 0 && errno != EEXIST)
            return capsule_error_make (err, errno, "process.cwd: create `%s`", p->cwd);
          fd = syscall (SYS_openat2, root, prefix, &how, sizeof how);
        }
      if (fd < 0)
        return 0; /* not a directory, out of reach: process_chdir says why */
      close (parent);
      parent = fd;
    }
  return 0;
}

int
process_chdir (const struct spec_process *p, capsule_error **err)
{
  char here[PATH_MAX];

  if (chdir (p->cwd) < 0)
    return capsule_error_make (err, errno, "process.cwd: chdir `%s`", p->cwd);
  /* A cwd reached through a descriptor the runtime still holds (`/proc/self/fd/N`, CVE-2024-21626)
     lies outside the root: the kernel then answers getcwd with "(unreachable)…", which libc turns
     into ENOENT.  Nothing may run with such a cwd. */
  if (getcwd (here, sizeof here) == NULL)
    {
      if (errno == ENOENT)
        return capsule_error_make (err, EPERM, "process.cwd: `%s` is outside the container",
                                   p->cwd);
      return capsule_error_make (err, errno, "process.cwd: getcwd after chdir `%s`", p->cwd);
    }
  if (here[0] != '/')
    return capsule_error_make (err, EPERM, "process.cwd: `%s` is outside the container", p->cwd);
  return 0;
}

int
process_finalize (const struct spec_process *p, const struct seccomp_program *seccomp,
                  capsule_error **err)
{
  if (p->no_new_privileges && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return capsule_error_make (err, errno, "process.noNewPrivileges");
  if (seccomp && seccomp->filter && p->no_new_privileges && seccomp_install (seccomp, err) < 0)
    return -1;
  return 0;
}

int
process_exec (const struct spec_process *p, const char *path, int preserve_fds, capsule_error **err)
{
  char *const empty[] = { NULL };
  syscall (SYS_close_range, 3 + preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
  execve (path, p->args, p->env ? p->env : empty);
  return capsule_error_make (err, errno, "exec `%s`", path);
}

void
process_wait_forwarding (pid_t pid, const sigset_t *mask, int *ret_status)
{
  for (;;)
    {
      siginfo_t si;
      int sig = sigwaitinfo (mask, &si);
      if (sig < 0)
        continue;
      if (sig != SIGCHLD)
        {
          kill (pid, sig);
          continue;
        }
      for (;;)
        {
          int status;
          pid_t r = waitpid (-1, &status, WNOHANG);
          if (r <= 0)
            break;
          if (r == pid)
            {
              *ret_status = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
              return;
            }
        }
    }
}

void
process_reset_signals (void)
{
  sigset_t none;
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      signal (s, SIG_DFL);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
}
