/* capsule-gateway: OpenAI's Containers, Container Files and Files API over HTTP, so that the
 * OpenAI SDKs work against capsule unchanged.
 *
 *   capsule-gateway --keys FILE [--listen ADDR:PORT] [--shim-socket PATH] [--state-dir DIR]
 *                   [--max-upload SIZE] [--files-quota SIZE] [--upload-budget SIZE]
 *                   [--max-connections N] [--timeout SECONDS] [--min-rate BYTES]
 *                   [--shim-timeout SECONDS] [--public-url URL]
 *                   [--tls-cert PEM --tls-key PEM] [--mcp-idle SECONDS]
 *   capsule-gateway --mcp-stdio [--tenant NAME] [--memory-limit TIER] [--shim-socket PATH]
 *
 * /mcp is the Model Context Protocol's endpoint (Streamable HTTP); --mcp-stdio serves one MCP
 * session on stdin and stdout instead, for a client that spawns its server.
 *
 * Runs unprivileged: it needs the shim's socket (its group) and a state directory of its own. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "api.h"
#include "gateway.h"
#include "mcp.h"
#include "utils.h"

#define DEFAULT_LISTEN    "127.0.0.1:8080"
#define DEFAULT_SOCKET    "/run/capsule-shim.sock"
#define DEFAULT_STATE_DIR "/var/lib/capsule-gateway"

struct gateway gw;

static const char usage[]
    = "usage: capsule-gateway --keys FILE [--listen ADDR:PORT] [--shim-socket PATH]\n"
      "                       [--state-dir DIR] [--max-upload SIZE] [--files-quota SIZE]\n"
      "                       [--upload-budget SIZE]\n"
      "                       [--max-connections N] [--timeout SECONDS] [--min-rate BYTES]\n"
      "                       [--shim-timeout SECONDS] [--public-url URL]\n"
      "                       [--tls-cert PEM --tls-key PEM] [--mcp-idle SECONDS]\n"
      "       capsule-gateway --mcp-stdio [--tenant NAME] [--memory-limit 1g|4g|16g|64g]\n"
      "                       [--shim-socket PATH] [--shim-timeout SECONDS] [--mcp-idle SECONDS]\n";

static int fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static int
fail (const char *fmt, ...)
{
  va_list ap;
  fputs ("capsule-gateway: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  return 1;
}

/* "127.0.0.1:8080", "[::1]:8080", ":8080" (every IPv4 address). */
static int
parse_listen (const char *s, struct sockaddr_storage *ret, bool *ret_v6)
{
  const char *colon = strrchr (s, ':');
  _cleanup_free_ char *host = NULL;
  uint64_t port;
  if (colon == NULL || parse_u64 (colon + 1, &port) < 0 || port > 65535)
    return -1;
  host = strndup (s, colon - s);
  memset (ret, 0, sizeof *ret);
  if (host[0] == '[')
    {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)ret;
      size_t n = strlen (host);
      if (n < 2 || host[n - 1] != ']')
        return -1;
      host[n - 1] = 0;
      a->sin6_family = AF_INET6;
      a->sin6_port = htons (port);
      *ret_v6 = true;
      return inet_pton (AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -1;
    }
  {
    struct sockaddr_in *a = (struct sockaddr_in *)ret;
    a->sin_family = AF_INET;
    a->sin_port = htons (port);
    *ret_v6 = false;
    if (host[0] == 0)
      {
        a->sin_addr.s_addr = htonl (INADDR_ANY);
        return 0;
      }
    return inet_pton (AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
  }
}

static int
reload_keys (void)
{
  _cleanup_error_ capsule_error *err = NULL;
  struct keys k = { 0 }, old;
  if (keys_load (gw.keys_path, &k, &err) < 0)
    return fail ("%s", err->msg);
  pthread_mutex_lock (&gw.keys_lock);
  old = gw.keys;
  gw.keys = k;
  pthread_mutex_unlock (&gw.keys_lock);
  keys_release (&old);
  return 0;
}

static void
log_panic (void *cls, const char *file, unsigned int line, const char *reason)
{
  (void)cls;
  fail ("libmicrohttpd: %s:%u: %s", file, line, reason ? reason : "");
  abort ();
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "listen", required_argument, NULL, 'l' },
    { "shim-socket", required_argument, NULL, 's' },
    { "keys", required_argument, NULL, 'k' },
    { "state-dir", required_argument, NULL, 'd' },
    { "max-upload", required_argument, NULL, 'u' },
    { "files-quota", required_argument, NULL, 'q' },
    { "upload-budget", required_argument, NULL, 'b' },
    { "max-connections", required_argument, NULL, 'c' },
    { "timeout", required_argument, NULL, 't' },
    { "min-rate", required_argument, NULL, 'r' },
    { "shim-timeout", required_argument, NULL, 'w' },
    { "public-url", required_argument, NULL, 'p' },
    { "tls-cert", required_argument, NULL, 'C' },
    { "tls-key", required_argument, NULL, 'K' },
    { "mcp-stdio", no_argument, NULL, 'M' },
    { "tenant", required_argument, NULL, 'T' },
    { "memory-limit", required_argument, NULL, 'm' },
    { "mcp-idle", required_argument, NULL, 'i' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *listen = DEFAULT_LISTEN, *state_dir = DEFAULT_STATE_DIR;
  const char *tls_cert = NULL, *tls_key = NULL;
  _cleanup_free_ char *cert = NULL, *key = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  uint64_t quota = 1ull << 30, max_conn = 128, timeout = 30, min_rate = 64 << 10;
  struct sockaddr_storage addr;
  struct MHD_Daemon *d;
  const union MHD_DaemonInfo *info;
  unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
                       | MHD_USE_POLL | MHD_USE_ERROR_LOG;
  bool v6 = false, mcp_stdio = false;
  const char *tenant = "local", *memory_limit = NULL;
  sigset_t sigs;
  int o;

  gw.shim_socket = DEFAULT_SOCKET;
  gw.shim_wait_ms = 60000;
  gw.upload_budget = 512ull << 20;
  gw.max_upload = 64ull << 20;
  gw.max_body = 2ull << 20; /* a cell's code is at most 1 MiB, as JSON maybe twice that */
  pthread_mutex_init (&gw.keys_lock, NULL);
  while ((o = getopt_long (argc, argv, "h", opts, NULL)) != -1)
    switch (o)
      {
      case 'l':
        listen = optarg;
        break;
      case 's':
        gw.shim_socket = optarg;
        break;
      case 'k':
        gw.keys_path = optarg;
        break;
      case 'd':
        state_dir = optarg;
        break;
      case 'u':
        if (parse_size (optarg, &gw.max_upload) < 0 || gw.max_upload == 0)
          return fail ("--max-upload: \"%s\" is not a size like 64m", optarg);
        break;
      case 'q':
        if (parse_size (optarg, &quota) < 0)
          return fail ("--files-quota: \"%s\" is not a size like 1g", optarg);
        break;
      case 'b':
        if (parse_size (optarg, &gw.upload_budget) < 0)
          return fail ("--upload-budget: \"%s\" is not a size like 512m", optarg);
        break;
      case 'c':
        if (parse_u64 (optarg, &max_conn) < 0 || max_conn < 1 || max_conn > 200)
          return fail ("--max-connections: from 1 to 200 (the shim takes 256 clients)");
        break;
      case 't':
        if (parse_u64 (optarg, &timeout) < 0 || timeout < 1 || timeout > 3600)
          return fail ("--timeout: seconds, from 1 to 3600");
        break;
      case 'r':
        if (parse_size (optarg, &min_rate) < 0 || min_rate < 1 || min_rate > (1ull << 30))
          return fail ("--min-rate: bytes a second, from 1 to 1g (like 64k)");
        break;
      case 'w':
        {
          uint64_t w;
          if (parse_u64 (optarg, &w) < 0 || w < 1 || w > 3600)
            return fail ("--shim-timeout: seconds, from 1 to 3600");
          gw.shim_wait_ms = (int)w * 1000;
        }
        break;
      case 'p':
        gw.public_url = optarg;
        break;
      case 'C':
        tls_cert = optarg;
        break;
      case 'K':
        tls_key = optarg;
        break;
      case 'M':
        mcp_stdio = true;
        break;
      case 'T':
        tenant = optarg;
        break;
      case 'm':
        memory_limit = optarg;
        break;
      case 'i':
        {
          uint64_t i;
          if (parse_u64 (optarg, &i) < 0 || i < 1 || i > 7 * 86400)
            return fail ("--mcp-idle: seconds, from 1 to 604800");
          mcp_cfg.idle_s = (int)i;
        }
        break;
      case 'h':
        fputs (usage, stdout);
        return 0;
      default:
        fputs (usage, stderr);
        return 2;
      }
  if (mcp_cfg.file_max > gw.max_upload)
    mcp_cfg.file_max = gw.max_upload;
  if (optind != argc)
    {
      fputs (usage, stderr);
      return 2;
    }
  if (mcp_stdio)
    {
      if (!tenant_name_valid (tenant))
        return fail ("--tenant: 1 to 64 letters, digits, '_', '.' or '-'");
      if (memory_limit && !mcp_tier_valid (memory_limit))
        return fail ("--memory-limit: one of 1g, 4g, 16g, 64g");
      return mcp_stdio_main (tenant, memory_limit);
    }
  if (gw.keys_path == NULL)
    {
      fputs (usage, stderr);
      return 2;
    }
  if (parse_listen (listen, &addr, &v6) < 0)
    return fail ("--listen: \"%s\" is not ADDR:PORT (or [ADDR]:PORT)", listen);
  if (!tls_cert != !tls_key)
    return fail ("--tls-cert and --tls-key go together");
  if (tls_cert)
    {
      size_t len;
      if (read_file_at (AT_FDCWD, tls_cert, 1 << 20, &cert, &len, &err) < 0
          || read_file_at (AT_FDCWD, tls_key, 1 << 20, &key, &len, &err) < 0)
        return fail ("%s", err->msg);
      flags |= MHD_USE_TLS;
      gw.tls = true;
    }
  if (reload_keys () != 0)
    return 1;
  if (fstore_init (&gw.store, state_dir, quota, &err) < 0)
    return fail ("state directory %s: %s", state_dir, err->msg);
  gw.auto_dir = xasprintf ("%s/auto", state_dir);

  /* signals are taken here, by sigwaitinfo; every thread MHD starts inherits the mask */
  sigemptyset (&sigs);
  sigaddset (&sigs, SIGHUP);
  sigaddset (&sigs, SIGTERM);
  sigaddset (&sigs, SIGINT);
  pthread_sigmask (SIG_BLOCK, &sigs, NULL);
  signal (SIGPIPE, SIG_IGN);
  MHD_set_panic_func (log_panic, NULL);

  guard_configure ((unsigned)timeout, min_rate);
  if (guard_start (&err) < 0)
    return fail ("%s", err->msg);
  if (v6)
    flags |= MHD_USE_IPv6;
  d = MHD_start_daemon (
      flags, 0, NULL, NULL, api_handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)max_conn, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      (unsigned int)max_conn, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)timeout,
      /* the request line and headers of a request must fit here (libmicrohttpd's HTML 431
         beyond); api.c answers a request whose headers pass HEADERS_MAX, in OpenAI's shape.
         The pool's pages are touched only as they are used. */
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_POOL, MHD_OPTION_NOTIFY_COMPLETED,
      api_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, api_connection, NULL,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_STRICT_FOR_CLIENT, 1,
      tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
      MHD_OPTION_END);
  if (d == NULL)
    return fail ("cannot listen on %s: %s", listen, strerror (errno));
  if (mcp_start (&err) < 0)
    return fail ("%s", err->msg);
  info = MHD_get_daemon_info (d, MHD_DAEMON_INFO_BIND_PORT);
  /* tests and scripts wait for this line (a port of 0 picks one) */
  fprintf (stderr, "capsule-gateway: listening on %s port %u, shim %s\n", listen,
           info ? info->port : 0, gw.shim_socket);

  for (;;)
    {
      int sig = sigwaitinfo (&sigs, NULL);
      if (sig == SIGHUP)
        {
          if (reload_keys () == 0)
            fprintf (stderr, "capsule-gateway: keys reloaded from %s\n", gw.keys_path);
          continue;
        }
      if (sig == SIGTERM || sig == SIGINT)
        break;
    }
  MHD_stop_daemon (d);
  /* MCP sessions live in this process: their sandboxes go with it */
  mcp_shutdown ();
  keys_release (&gw.keys);
  return 0;
}
