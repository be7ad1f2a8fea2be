/* capsulectl: the command-line client of capsule-shim.
 *
 *   capsulectl [--socket PATH] [--json] [--tenant T] COMMAND ...
 *     status
 *     create [--name N] [--memory 1g] [--tenant T] [--expires MINUTES]
 *     ls | rm ID
 *     exec ID [CODE | -] [--timeout MS] [--images DIR]   (code from stdin with "-" or no CODE)
 *     upload ID LOCAL [PATH] | files ID | download ID FILE_ID|PATH [LOCAL]
 *
 * Prints what a person wants to read (logs, where images went); --json prints the result
 * objects as the shim sends them.  Exit status: 0 ok, 1 the call failed, 2 bad usage, 3 the
 * code raised or timed out (exec). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "json.h"
#include "rpc.h"
#include "shim-util.h"
#include "utils.h"

#define DEFAULT_SOCKET "/run/capsule-shim.sock"

static const char *socket_path = DEFAULT_SOCKET;
static char *tenant_json; /* every call names this tenant (the shim checks it on each) */
static bool raw_json;
static int sock = -1;
static struct line_reader reader = { .max = RPC_MAX_MESSAGE };

static int die (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static int
die (const char *fmt, ...)
{
  va_list ap;
  fputs ("capsulectl: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  return 1;
}

static int
connect_shim (void)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen (socket_path) >= sizeof addr.sun_path)
    return die ("socket path too long: %s", socket_path);
  strcpy (addr.sun_path, socket_path);
  sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0 || connect (sock, (struct sockaddr *)&addr, sizeof addr) < 0)
    return die ("connect to %s: %s (is capsule-shim running?)", socket_path, strerror (errno));
  return 0;
}

static json_value *
read_message (void)
{
  for (;;)
    {
      char *line, chunk[65536];
      size_t len;
      ssize_t n;
      enum line_status st = line_reader_next (&reader, &line, &len);
      if (st == LINE_OK)
        {
          capsule_error *err = NULL;
          json_value *v = json_parse_n (line, len, JSON_NUL_REPLACE, "answer", &err);
          capsule_error_free (err);
          if (v)
            return v;
          continue;
        }
      n = read (sock, chunk, sizeof chunk);
      if (n <= 0)
        return NULL;
      line_reader_feed (&reader, chunk, n);
    }
}

/* Send METHOD with PARAMS_JSON and wait for its answer; exec.output notifications are printed as
   they come.  Returns the whole answer (result or error). */
static json_value *
call (const char *method, const char *params_json)
{
  static int next_id;
  _cleanup_free_ char *with_tenant = NULL, *req = NULL;
  if (tenant_json && strcmp (method, "shim.status") != 0 && params_json[0] == '{')
    params_json = with_tenant = xasprintf ("{\"tenant\":%s%s%s", tenant_json,
                                           params_json[1] == '}' ? "" : ",", params_json + 1);
  req = xasprintf ("{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\",\"params\":%s}\n", ++next_id,
                   method, params_json);
  if (write_all (sock, req, strlen (req)) < 0)
    {
      die ("send: %s", strerror (errno));
      return NULL;
    }
  for (;;)
    {
      json_value *m = read_message ();
      json_value *id;
      if (m == NULL)
        {
          die ("the shim closed the connection");
          return NULL;
        }
      id = json_get (m, "id");
      if (id == NULL)
        {
          json_value *p = json_get (m, "params");
          const char *text = json_string (json_get (p, "text"));
          const char *stream = json_string (json_get (p, "stream"));
          if (text && !raw_json)
            fputs (text, stream && strcmp (stream, "stderr") == 0 ? stderr : stdout);
          fflush (NULL);
          json_free (m);
          continue;
        }
      if (json_is_integer (id) && json_integer (id) == next_id)
        return m;
      json_free (m);
    }
}

static char *
quote (const char *s)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  json_w_string (w, s);
  return xstrdup (json_writer_text (w, NULL));
}

/* The result of M, or NULL after printing its error. */
static json_value *
result_of (json_value *m)
{
  json_value *e = json_get (m, "error");
  if (m == NULL)
    return NULL;
  if (e)
    {
      const char *msg = json_string (json_get (json_get (e, "data"), "message"));
      die ("%s", msg ? msg : json_string (json_get (e, "message")));
      return NULL;
    }
  return json_get (m, "result");
}

static void
w_value (json_writer *w, json_value *v)
{
  if (json_is_object (v))
    {
      json_w_open_object (w);
      for (size_t i = 0; i < json_object_len (v); i++)
        {
          json_w_key (w, json_object_key (v, i));
          w_value (w, json_object_value (v, i));
        }
      json_w_close_object (w);
    }
  else if (json_is_array (v))
    {
      json_w_open_array (w);
      for (size_t i = 0; i < json_array_len (v); i++)
        w_value (w, json_array_get (v, i));
      json_w_close_array (w);
    }
  else if (json_is_string (v))
    json_w_string (w, json_string (v));
  else if (json_is_integer (v))
    json_w_int (w, json_integer (v));
  else if (json_is_bool (v))
    json_w_bool (w, json_bool (v));
  else if (json_is_number (v))
    {
      uint64_t u;
      char t[32];
      if (json_u64 (v, &u) == 0)
        {
          snprintf (t, sizeof t, "%" PRIu64, u);
          json_w_raw (w, t);
        }
      else
        json_w_int (w, (long long)json_double (v));
    }
  else
    json_w_null (w);
}

static void
print_json (json_value *v)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (true);
  w_value (w, v);
  printf ("%s\n", json_writer_text (w, NULL));
}

/* ------------------------------------------------------------------ commands */

static int
finish (json_value *m, void (*human) (json_value *))
{
  json_value *r = result_of (m);
  int rc = r ? 0 : 1;
  if (r && raw_json)
    print_json (r);
  else if (r)
    human (r);
  json_free (m);
  return rc;
}

static void
h_container (json_value *r)
{
  printf ("%s\t%s\t%s\t%s\n", json_string (json_get (r, "id")),
          json_string (json_get (r, "status")), json_string (json_get (r, "memory_limit")),
          json_string (json_get (r, "name")));
}

static void
h_list (json_value *r)
{
  json_value *data = json_get (r, "data");
  for (size_t i = 0; i < json_array_len (data); i++)
    h_container (json_array_get (data, i));
}

static void
h_file (json_value *f)
{
  printf ("%s\t%lld\t%s\t%s\n", json_string (json_get (f, "id")),
          json_integer (json_get (f, "bytes")), json_string (json_get (f, "source")),
          json_string (json_get (f, "path")));
}

static void
h_files (json_value *r)
{
  json_value *data = json_get (r, "data");
  for (size_t i = 0; i < json_array_len (data); i++)
    h_file (json_array_get (data, i));
}

static void
h_status (json_value *r)
{
  print_json (r);
}

/* id, status and capsule's sandbox state (live, checkpointed, ...) */
static void
h_sandbox (json_value *r)
{
  printf ("%s\t%s\t%s\n", json_string (json_get (r, "id")), json_string (json_get (r, "status")),
          json_string (json_get (r, "sandbox")));
}

static void
h_deleted (json_value *r)
{
  printf ("deleted %s\n", json_string (json_get (r, "id")));
}

static int
cmd_create (int argc, char **argv)
{
  static const struct option opts[] = {
    { "name", required_argument, NULL, 'n' },
    { "memory", required_argument, NULL, 'm' },
    { "tenant", required_argument, NULL, 't' },
    { "expires", required_argument, NULL, 'e' },
    { NULL, 0, NULL, 0 },
  };
  _cleanup_free_ char *name = quote ("capsulectl"), *mem = NULL, *exp = NULL;
  _cleanup_free_ char *params = NULL;
  int o;
  while ((o = getopt_long (argc, argv, "+n:m:t:e:", opts, NULL)) != -1)
    switch (o)
      {
      case 'n':
        free (name);
        name = quote (optarg);
        break;
      case 'm':
        mem = quote (optarg);
        break;
      case 't':
        free (tenant_json);
        tenant_json = quote (optarg);
        break;
      case 'e':
        exp = xasprintf ("{\"anchor\":\"last_active_at\",\"minutes\":%d}", atoi (optarg));
        break;
      default:
        return 2;
      }
  params = xasprintf ("{\"name\":%s%s%s%s%s}", name, mem ? ",\"memory_limit\":" : "",
                      mem ? mem : "", exp ? ",\"expires_after\":" : "", exp ? exp : "");
  return finish (call ("containers.create", params), h_container);
}

static char *
read_stream (FILE *f, size_t max)
{
  struct buf b = { 0 };
  char chunk[65536];
  size_t n;
  char *ret;
  while ((n = fread (chunk, 1, sizeof chunk, f)) > 0)
    {
      buf_append (&b, chunk, n);
      if (b.len > max)
        {
          buf_release (&b);
          return NULL;
        }
    }
  ret = b.data ? b.data : xstrdup ("");
  return ret;
}

static int
save_file (const char *cid, const char *file_id, const char *dest, bool quiet)
{
  _cleanup_free_ char *params
      = xasprintf ("{\"container_id\":\"%s\",\"file_id\":\"%s\"}", cid, file_id);
  _cleanup_json_ json_value *m = call ("files.content", params);
  json_value *r = result_of (m);
  const char *b64 = json_string (json_get (r, "content"));
  _cleanup_free_ unsigned char *data = NULL;
  size_t len;
  if (b64 == NULL)
    return 1;
  if (base64_decode (b64, strlen (b64), &data, &len) < 0)
    return die ("the shim sent content that is not base64");
  if (strcmp (dest, "-") == 0)
    return write_all (1, data, len) < 0;
  {
    _cleanup_error_ capsule_error *err = NULL;
    if (write_file_at (AT_FDCWD, dest, data, len, 0644, &err) < 0)
      return die ("%s", err->msg);
  }
  if (!quiet)
    fprintf (stderr, "saved %s (%zu bytes)\n", dest, len);
  return 0;
}

static int
cmd_exec (int argc, char **argv)
{
  static const struct option opts[] = { { "timeout", required_argument, NULL, 't' },
                                        { "images", required_argument, NULL, 'i' },
                                        { NULL, 0, NULL, 0 } };
  const char *images = NULL, *cid;
  _cleanup_free_ char *code = NULL, *qcode = NULL, *params = NULL;
  _cleanup_json_ json_value *m = NULL;
  json_value *r, *outputs, *err;
  long timeout = 0;
  int o, rc = 0;
  while ((o = getopt_long (argc, argv, "+t:i:", opts, NULL)) != -1)
    switch (o)
      {
      case 't':
        timeout = atol (optarg);
        break;
      case 'i':
        images = optarg;
        break;
      default:
        return 2;
      }
  if (optind >= argc)
    return die ("exec: which container?") + 1;
  cid = argv[optind++];
  if (optind < argc && strcmp (argv[optind], "-") != 0)
    code = xstrdup (argv[optind]);
  else
    code = read_stream (stdin, 1 << 20);
  if (code == NULL)
    return die ("exec: code larger than 1 MiB");
  qcode = quote (code);
  if (timeout > 0)
    params = xasprintf ("{\"container_id\":\"%s\",\"code\":%s,\"stream\":true,\"timeout_ms\":%ld}",
                        cid, qcode, timeout);
  else
    params = xasprintf ("{\"container_id\":\"%s\",\"code\":%s,\"stream\":true}", cid, qcode);
  m = call ("containers.exec", params);
  r = result_of (m);
  if (r == NULL)
    return 1;
  if (raw_json)
    print_json (r);
  else if (json_string (json_get (r, "result")))
    printf ("%s\n", json_string (json_get (r, "result")));
  err = json_get (r, "error");
  if (json_is_object (err) && !raw_json)
    {
      json_value *tb = json_get (err, "traceback");
      for (size_t i = 0; i < json_array_len (tb); i++)
        {
          const char *line = json_string (json_array_get (tb, i));
          size_t n = line ? strlen (line) : 0;
          if (n)
            fprintf (stderr, "%s%s", line, line[n - 1] == '\n' ? "" : "\n");
        }
      if (json_array_len (tb) == 0)
        fprintf (stderr, "%s: %s\n", json_string (json_get (err, "ename")),
                 json_string (json_get (err, "evalue")));
    }
  if (json_is_object (err))
    rc = 3;
  outputs = json_get (r, "outputs");
  for (size_t i = 0; images && i < json_array_len (outputs); i++)
    {
      json_value *out = json_array_get (outputs, i);
      const char *path = json_string (json_get (out, "path"));
      _cleanup_free_ char *dest = NULL;
      if (json_string (json_get (out, "type")) == NULL
          || strcmp (json_string (json_get (out, "type")), "image") != 0 || path == NULL)
        continue;
      dest = xasprintf ("%s/%s", images, strrchr (path, '/') + 1);
      if (save_file (cid, json_string (json_get (out, "file_id")), dest, raw_json))
        rc = 1;
    }
  return rc;
}

static int
cmd_upload (int argc, char **argv)
{
  _cleanup_free_ char *data = NULL, *b64 = NULL, *params = NULL, *qpath = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  const char *remote;
  size_t len = 0;
  if (argc - optind < 2)
    return die ("upload ID LOCAL [PATH]") + 1;
  remote = argc - optind > 2                 ? argv[optind + 2]
           : strrchr (argv[optind + 1], '/') ? strrchr (argv[optind + 1], '/') + 1
                                             : argv[optind + 1];
  if (read_file_at (AT_FDCWD, argv[optind + 1], 1u << 30, &data, &len, &err) < 0)
    return die ("%s", err->msg);
  b64 = base64_encode (data, len);
  qpath = quote (remote);
  params = xasprintf ("{\"container_id\":\"%s\",\"path\":%s,\"content\":\"%s\"}", argv[optind],
                      qpath, b64);
  return finish (call ("files.create", params), h_file);
}

static int
cmd_download (int argc, char **argv)
{
  const char *cid, *which, *dest;
  _cleanup_free_ char *params = NULL, *fid = NULL;
  if (argc - optind < 2)
    return die ("download ID FILE_ID|PATH [LOCAL]") + 1;
  cid = argv[optind];
  which = argv[optind + 1];
  if (strncmp (which, "cfile_", 6) == 0)
    fid = xstrdup (which);
  else
    {
      /* find the file by its path */
      _cleanup_json_ json_value *m = NULL;
      json_value *data;
      _cleanup_free_ char *want
          = which[0] == '/' ? xstrdup (which) : xasprintf ("/mnt/data/%s", which);
      params = xasprintf ("{\"container_id\":\"%s\",\"limit\":100}", cid);
      m = call ("files.list", params);
      data = json_get (result_of (m), "data");
      for (size_t i = 0; i < json_array_len (data) && !fid; i++)
        if (strcmp (json_string (json_get (json_array_get (data, i), "path")), want) == 0)
          fid = xstrdup (json_string (json_get (json_array_get (data, i), "id")));
      if (fid == NULL)
        return die ("no file %s in %s", want, cid);
    }
  dest = argc - optind > 2 ? argv[optind + 2] : "-";
  return save_file (cid, fid, dest, false);
}

static int
cmd_one_id (int argc, char **argv, const char *method, void (*human) (json_value *))
{
  _cleanup_free_ char *params = NULL;
  if (optind >= argc)
    return die ("%s: which container?", method) + 1;
  params = xasprintf ("{\"container_id\":\"%s\",\"limit\":100}", argv[optind]);
  if (strcmp (method, "files.list") != 0)
    params = (free (params), xasprintf ("{\"container_id\":\"%s\"}", argv[optind]));
  return finish (call (method, params), human);
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = { { "socket", required_argument, NULL, 's' },
                                        { "json", no_argument, NULL, 'j' },
                                        { "tenant", required_argument, NULL, 't' },
                                        { "help", no_argument, NULL, 'h' },
                                        { NULL, 0, NULL, 0 } };
  const char *cmd;
  int o;
  while ((o = getopt_long (argc, argv, "+s:jt:h", opts, NULL)) != -1)
    switch (o)
      {
      case 's':
        socket_path = optarg;
        break;
      case 't':
        tenant_json = quote (optarg);
        break;
      case 'j':
        raw_json = true;
        break;
      case 'h':
        puts ("usage: capsulectl [--socket PATH] [--json] [--tenant T] status | create [--name N] "
              "[--memory "
              "1g] [--tenant T] [--expires MIN] | ls | get ID | rm ID | checkpoint ID | exec ID "
              "[CODE|-] [--timeout MS] "
              "[--images DIR] | upload ID LOCAL [PATH] | files ID | download ID FILE_ID|PATH "
              "[LOCAL]");
        return 0;
      default:
        return 2;
      }
  if (optind >= argc)
    return die ("which command? (capsulectl --help)") + 1;
  cmd = argv[optind++];
  if (connect_shim ())
    return 1;
  argc -= optind - 1;
  argv += optind - 1;
  optind = 1;
  if (strcmp (cmd, "status") == 0)
    return finish (call ("shim.status", "{}"), h_status);
  if (strcmp (cmd, "create") == 0)
    return cmd_create (argc, argv);
  if (strcmp (cmd, "ls") == 0)
    return finish (call ("containers.list", "{\"limit\":100}"), h_list);
  if (strcmp (cmd, "rm") == 0)
    return cmd_one_id (argc, argv, "containers.delete", h_deleted);
  if (strcmp (cmd, "exec") == 0)
    return cmd_exec (argc, argv);
  if (strcmp (cmd, "get") == 0)
    return cmd_one_id (argc, argv, "containers.retrieve", h_sandbox);
  if (strcmp (cmd, "checkpoint") == 0)
    return cmd_one_id (argc, argv, "containers.checkpoint", h_sandbox);
  if (strcmp (cmd, "upload") == 0)
    return cmd_upload (argc, argv);
  if (strcmp (cmd, "files") == 0)
    return cmd_one_id (argc, argv, "files.list", h_files);
  if (strcmp (cmd, "download") == 0)
    return cmd_download (argc, argv);
  return die ("unknown command \"%s\" (capsulectl --help)", cmd) + 1;
}
