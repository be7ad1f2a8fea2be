/* capsule: ptys for containers. */
#define _GNU_SOURCE
#include "terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "utils.h"

int
terminal_connect (const char *path, capsule_error **err)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd;
  if (strlen (path) >= sizeof addr.sun_path)
    return capsule_error_make (err, ENAMETOOLONG, "--console-socket `%s`", path);
  strcpy (addr.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return capsule_error_make (err, errno, "socket");
  if (connect (fd, (struct sockaddr *)&addr, sizeof addr) < 0)
    {
      int e = errno;
      close (fd);
      return capsule_error_make (err, e, "--console-socket: connect to `%s`", path);
    }
  return fd;
}

static int
send_fd (int sock, int fd, capsule_error **err)
{
  char data = 'M';
  struct iovec iov = { &data, 1 };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u = { 0 };
  struct msghdr msg
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *c = CMSG_FIRSTHDR (&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (c), &fd, sizeof (int));
  if (sendmsg (sock, &msg, MSG_NOSIGNAL) < 0)
    return capsule_error_make (err, errno, "send the terminal to the console socket");
  return 0;
}

int
terminal_recv_master (int sock, capsule_error **err)
{
  char data;
  struct iovec iov = { &data, 1 };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *c;
  int fd;
  if (recvmsg (sock, &msg, MSG_CMSG_CLOEXEC) <= 0)
    return capsule_error_make (err, errno, "receive the container's terminal");
  c = CMSG_FIRSTHDR (&msg);
  if (c == NULL || c->cmsg_type != SCM_RIGHTS)
    return capsule_error_make (err, EPROTO, "receive the container's terminal: no fd came");
  memcpy (&fd, CMSG_DATA (c), sizeof (int));
  return fd;
}

int
terminal_setup_child (int sock, capsule_error **err)
{
  _cleanup_close_ int master = open ("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  _cleanup_close_ int slave = -1;
  int n = 0, unlock = 0;
  char path[64];
  if (master < 0)
    return capsule_error_make (err, errno, "process.terminal: open /dev/ptmx");
  if (ioctl (master, TIOCSPTLCK, &unlock) < 0 || ioctl (master, TIOCGPTN, &n) < 0)
    return capsule_error_make (err, errno, "process.terminal: unlock the pty");
  snprintf (path, sizeof path, "/dev/pts/%d", n);
  /* The peer of this very master, not whatever the name /dev/pts/N points at in a /dev/pts the
     image or a shared mount may control; by name only on kernels before 4.13. */
  slave = ioctl (master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
  if (slave < 0 && (errno == EINVAL || errno == ENOTTY))
    {
      struct stat st;
      slave = open (path, O_RDWR | O_NOCTTY | O_NOFOLLOW);
      if (slave >= 0 && (fstat (slave, &st) < 0 || !S_ISCHR (st.st_mode)))
        {
          close (slave);
          return capsule_error_make (err, EPERM, "process.terminal: %s is not a terminal", path);
        }
    }
  if (slave < 0)
    return capsule_error_make (err, errno, "process.terminal: open %s", path);
  if (setsid () < 0 && errno != EPERM)
    return capsule_error_make (err, errno, "process.terminal: setsid");
  if (ioctl (slave, TIOCSCTTY, 0) < 0)
    return capsule_error_make (err, errno, "process.terminal: make %s the controlling terminal",
                               path);
  for (int fd = 0; fd < 3; fd++)
    if (dup2 (slave, fd) < 0)
      return capsule_error_make (err, errno, "process.terminal: dup2");
  if (send_fd (sock, master, err) < 0)
    return -1;
  close (sock);
  return 0;
}

static void
copy_once (int from, int to)
{
  char buf[16384];
  ssize_t n = read (from, buf, sizeof buf);
  if (n > 0)
    write_all (to, buf, n);
}

static void
follow_size (int master)
{
  struct winsize ws;
  if (ioctl (0, TIOCGWINSZ, &ws) == 0)
    ioctl (master, TIOCSWINSZ, &ws);
}

void
terminal_proxy (int master, pid_t pid, const sigset_t *mask, int *ret_status)
{
  struct termios saved, raw;
  bool restore = isatty (0) && tcgetattr (0, &saved) == 0;
  _cleanup_close_ int sfd = signalfd (-1, mask, SFD_CLOEXEC);
  bool stdin_open = true, master_open = true;
  if (restore)
    {
      raw = saved;
      cfmakeraw (&raw);
      tcsetattr (0, TCSANOW, &raw);
      follow_size (master);
    }
  for (;;)
    {
      struct pollfd p[3] = { { sfd, POLLIN, 0 },
                             { master_open ? master : -1, POLLIN, 0 },
                             { stdin_open ? 0 : -1, POLLIN, 0 } };
      if (poll (p, 3, -1) < 0 && errno != EINTR)
        break;
      if (p[1].revents & POLLIN)
        copy_once (master, 1);
      else if (p[1].revents & (POLLHUP | POLLERR))
        master_open = false; /* every slave closed: wait for the exit */
      if (p[2].revents & (POLLIN | POLLHUP))
        {
          char buf[16384];
          ssize_t n = read (0, buf, sizeof buf);
          if (n > 0)
            write_all (master, buf, n);
          else
            stdin_open = false;
        }
      if (p[0].revents & POLLIN)
        {
          struct signalfd_siginfo si;
          if (read (sfd, &si, sizeof si) != sizeof si)
            continue;
          if (si.ssi_signo == SIGWINCH)
            follow_size (master);
          else if (si.ssi_signo != SIGCHLD)
            kill (pid, si.ssi_signo);
          else
            {
              int status;
              pid_t r;
              while ((r = waitpid (-1, &status, WNOHANG)) > 0)
                if (r == pid)
                  {
                    /* what the process wrote last */
                    while (poll (&p[1], 1, 0) > 0 && (p[1].revents & POLLIN))
                      copy_once (master, 1);
                    *ret_status
                        = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
                    if (restore)
                      tcsetattr (0, TCSANOW, &saved);
                    return;
                  }
            }
        }
    }
  if (restore)
    tcsetattr (0, TCSANOW, &saved);
  *ret_status = 255;
}
