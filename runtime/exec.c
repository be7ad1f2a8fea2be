/* capsule: exec, a new process inside a running container.
 *
 * The runtime forks a helper that joins every namespace of the container's process at once
 * (setns on a pidfd), forks again so the pid namespace takes effect, and the grandchild becomes
 * the spec's process: the container's cgroup, user, capabilities, no_new_privs and seccomp. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container.h"
#include "process.h"
#include "seccomp-filter.h"
#include "sync.h"
#include "terminal.h"
#include "utils.h"

static const struct
{
  const char *name;
  int flag;
} ns_files[] = {
  { "user", CLONE_NEWUSER },     { "mnt", CLONE_NEWNS },  { "pid", CLONE_NEWPID },
  { "net", CLONE_NEWNET },       { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS },
  { "cgroup", CLONE_NEWCGROUP },
};

/* The namespaces of PID that differ from ours: those are the ones to join. */
static int
foreign_namespaces (pid_t pid)
{
  int flags = 0;
  for (size_t i = 0; i < ARRAY_SIZE (ns_files); i++)
    {
      char theirs[64], ours[64];
      struct stat a, b;
      snprintf (theirs, sizeof theirs, "/proc/%d/ns/%s", pid, ns_files[i].name);
      snprintf (ours, sizeof ours, "/proc/self/ns/%s", ns_files[i].name);
      if (stat (theirs, &a) == 0 && stat (ours, &b) == 0 && a.st_ino != b.st_ino)
        flags |= ns_files[i].flag;
    }
  return flags;
}

static int
parse_user (const char *user, struct spec_process *p, capsule_error **err)
{
  _cleanup_free_ char *copy = xstrdup (user);
  char *colon = strchr (copy, ':');
  uint64_t v;
  if (colon)
    *colon = '\0';
  if (parse_u64 (copy, &v) < 0 || v >= UINT32_MAX)
    return capsule_error_make (err, EINVAL, "--user \"%s\": expected UID[:GID] numbers", user);
  p->uid = v;
  if (colon)
    {
      if (parse_u64 (colon + 1, &v) < 0 || v >= UINT32_MAX)
        return capsule_error_make (err, EINVAL, "--user \"%s\": expected UID[:GID] numbers", user);
      p->gid = v;
    }
  return 0;
}

static struct spec_process *
build_process (const struct spec *s, const struct exec_opts *e, capsule_error **err)
{
  struct spec_process *p;
  if (e->process_file)
    {
      _cleanup_free_ char *text = NULL;
      if (json_read_at (AT_FDCWD, e->process_file, SPEC_MAX_SIZE, e->process_file, &text, NULL, err)
          < 0)
        {
          capsule_error_wrap (err, "--process");
          return NULL;
        }
      return spec_process_parse (text, e->process_file, err);
    }
  if (e->args == NULL || e->args[0] == NULL)
    {
      capsule_error_make (err, EINVAL, "exec: give a command or --process FILE");
      return NULL;
    }
  /* The container's own process is the template: same user, capabilities, rlimits, env. */
  p = xmalloc0 (sizeof *p);
  *p = *s->process;
  p->args = NULL;
  p->env = NULL;
  p->cwd = xstrdup (e->cwd ? e->cwd : s->process->cwd);
  p->additional_gids = xmalloc0 (s->process->n_additional_gids * sizeof (gid_t) + 1);
  memcpy (p->additional_gids, s->process->additional_gids,
          s->process->n_additional_gids * sizeof (gid_t));
  p->rlimits = xmalloc0 (s->process->n_rlimits * sizeof *p->rlimits + 1);
  memcpy (p->rlimits, s->process->rlimits, s->process->n_rlimits * sizeof *p->rlimits);
  p->terminal = false;
  {
    size_t n = strv_length (e->args), ne = strv_length (s->process->env), ee = strv_length (e->env);
    p->args = xmalloc0 ((n + 1) * sizeof (char *));
    for (size_t i = 0; i < n; i++)
      p->args[i] = xstrdup (e->args[i]);
    p->env = xmalloc0 ((ne + ee + 1) * sizeof (char *));
    for (size_t i = 0; i < ne; i++)
      p->env[i] = xstrdup (s->process->env[i]);
    for (size_t i = 0; i < ee; i++)
      p->env[ne + i] = xstrdup (e->env[i]);
  }
  if (e->user && parse_user (e->user, p, err) < 0)
    return spec_process_free (p);
  if (e->no_new_privs)
    p->no_new_privileges = true;
  p->terminal = e->tty;
  return p;
}

struct exec_ctx
{
  const struct container_state *st;
  struct spec_process *proc;
  const struct seccomp_program *seccomp;
  int ns_flags;
  int pidfd;
  int sync;
  int preserve_fds;
  int console_fd; /* the pty master goes here, -1 without a terminal */
};

static int
exec_enter (struct exec_ctx *x, capsule_error **err)
{
  struct sync_msg m;
  pid_t pid;
  if (x->ns_flags && setns (x->pidfd, x->ns_flags) < 0)
    return capsule_error_make (err, errno, "join the namespaces of container `%s`", x->st->id);
  /* the pid namespace applies to children: fork once more */
  pid = fork ();
  if (pid < 0)
    return capsule_error_make (err, errno, "fork");
  if (pid > 0)
    {
      sync_send (x->sync, SYNC_PID, pid, NULL);
      _exit (0);
    }
  return sync_recv (x->sync, SYNC_GO, &m, err);
}

static _Noreturn void
exec_child (struct exec_ctx *x)
{
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_free_ char *exe = NULL;

  prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  process_reset_signals ();
  if (exec_enter (x, &err) < 0)
    sync_fail (x->sync, err);
  if ((x->ns_flags & CLONE_NEWUSER) && x->proc->uid == 0)
    {
      setresgid (0, 0, 0);
      setresuid (0, 0, 0);
    }
  /* A session and process group of its own, as runc gives it (its caller's are outside the
     container's pid namespace: getpgrp() would say 0). */
  setsid ();
  process_set_home (x->proc);
  if (x->console_fd >= 0 && terminal_setup_child (x->console_fd, &err) < 0)
    sync_fail (x->sync, err);
  if (process_set_rlimits (x->proc, &err) < 0)
    sync_fail (x->sync, err);
  exe = process_find_executable (x->proc, &err);
  if (exe == NULL || process_drop_privileges (x->proc, x->seccomp, &err) < 0
      || process_chdir (x->proc, &err) < 0 || process_finalize (x->proc, x->seccomp, &err) < 0)
    sync_fail (x->sync, err);
  prctl (PR_SET_PDEATHSIG, 0, 0, 0, 0);
  process_exec (x->proc, exe, x->preserve_fds, &err);
  sync_fail (x->sync, err);
}

static int
exec_parent (struct exec_ctx *x, const struct cgroup *cg_const, pid_t helper, pid_t *ret_pid,
             capsule_error **err)
{
  struct cgroup *cg = (struct cgroup *)cg_const;
  struct sync_msg m;
  if (sync_recv (x->sync, SYNC_PID, &m, err) < 0)
    return -1;
  waitpid (helper, NULL, 0);
  *ret_pid = m.value;
  if (cg && cg->ops->enter (cg, m.value, err) < 0)
    return capsule_error_wrap (err, "exec: join the container's cgroup");
  if (sync_send (x->sync, SYNC_GO, 0, err) < 0)
    return -1;
  /* Either an error comes back, or the socket closes on a successful exec (it is CLOEXEC). */
  if (sync_recv (x->sync, 0, &m, err) < 0)
    {
      if ((*err)->msg && strstr ((*err)->msg, "exited during set-up"))
        {
          capsule_error_release (err);
          return 0;
        }
      return -1;
    }
  return capsule_error_make (err, 0, "exec: unexpected message %d", m.type);
}

static int
exec_checks (const char *root, const struct container_state *st, capsule_error **err)
{
  enum container_status status = state_status (root, st);
  if (status != STATUS_RUNNING && status != STATUS_CREATED)
    return capsule_error_make (err, 0, "cannot exec in container `%s`: it is %s", st->id,
                               container_status_name (status));
  return 0;
}

int
container_exec (const char *root, const char *id, const struct exec_opts *e, int *ret_status,
                capsule_error **err)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_spec_ struct spec *s = NULL;
  _cleanup_spec_process_ struct spec_process *proc = NULL;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  _cleanup_close_ int pidfd = -1;
  struct seccomp_program seccomp = { 0 };
  struct exec_ctx x = { 0 };
  int sv[2] = { -1, -1 }, console[2] = { -1, -1 };
  sigset_t mask, old;
  pid_t helper, pid = 0;
  int r = -1;
  static const int sigs[]
      = { SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

  if (!container_id_valid (id))
    return capsule_error_make (err, EINVAL, "invalid container id \"%s\"", id);
  if (state_load (root, id, &st, err) < 0 || exec_checks (root, st, err) < 0)
    return -1;
  s = spec_load (st->bundle, err);
  if (s == NULL)
    return capsule_error_wrap (err, "exec: the bundle of container `%s`", id);
  proc = build_process (s, e, err);
  if (proc == NULL)
    return -1;
  if (s->seccomp)
    {
      _cleanup_free_ char *cache = xasprintf ("%s/.seccomp-cache", root);
      if (seccomp_compile_cached (s->seccomp, cache, &seccomp, err) < 0)
        return -1;
    }
  pidfd = syscall (SYS_pidfd_open, st->pid, 0);
  if (pidfd < 0 || !state_process_alive (st))
    {
      seccomp_program_release (&seccomp);
      return capsule_error_make (err, ESRCH, "container `%s` is not running", id);
    }
  cg = state_cgroup (st);
  sigemptyset (&mask);
  for (size_t i = 0; i < ARRAY_SIZE (sigs); i++)
    sigaddset (&mask, sigs[i]);
  sigprocmask (SIG_BLOCK, &mask, &old);
  prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    {
      capsule_error_make (err, errno, "socketpair");
      goto out;
    }
  if (proc->terminal || e->tty)
    {
      int cv[2];
      if (e->console_socket)
        console[1] = terminal_connect (e->console_socket, err);
      else if (e->detach)
        {
          capsule_error_make (err, 0, "exec: a terminal with --detach needs --console-socket");
          goto out;
        }
      else if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cv) == 0)
        console[0] = cv[0], console[1] = cv[1];
      else
        capsule_error_make (err, errno, "socketpair");
      if (console[1] < 0)
        goto out;
    }
  x = (struct exec_ctx){ .st = st,
                         .proc = proc,
                         .seccomp = seccomp.filter ? &seccomp : NULL,
                         .ns_flags = foreign_namespaces (st->pid),
                         .pidfd = pidfd,
                         .sync = sv[1],
                         .preserve_fds = e->preserve_fds,
                         .console_fd = console[1] };
  helper = fork ();
  if (helper < 0)
    {
      capsule_error_make (err, errno, "fork");
      goto out;
    }
  if (helper == 0)
    {
      close (sv[0]);
      exec_child (&x);
    }
  close (sv[1]);
  sv[1] = -1;
  if (console[1] >= 0)
    close (console[1]);
  console[1] = -1;
  x.sync = sv[0];
  if (exec_parent (&x, cg, helper, &pid, err) < 0)
    {
      if (pid > 0)
        kill (pid, SIGKILL);
      goto out;
    }
  if (e->pid_file)
    {
      _cleanup_free_ char *text = xasprintf ("%d", pid);
      if (write_file_atomic (e->pid_file, text, strlen (text), 0644, err) < 0)
        goto out;
    }
  *ret_status = 0;
  if (console[0] >= 0)
    {
      _cleanup_close_ int master = terminal_recv_master (console[0], err);
      if (master < 0)
        {
          kill (pid, SIGKILL);
          goto out;
        }
      terminal_proxy (master, pid, &mask, ret_status);
    }
  else if (!e->detach)
    process_wait_forwarding (pid, &mask, ret_status);
  r = 0;
out:
  for (int i = 0; i < 2; i++)
    if (console[i] >= 0)
      close (console[i]);
  if (sv[0] >= 0)
    close (sv[0]);
  if (sv[1] >= 0)
    close (sv[1]);
  seccomp_program_release (&seccomp);
  sigprocmask (SIG_SETMASK, &old, NULL);
  return r;
}
